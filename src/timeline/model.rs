//! The typed timeline ([`Timeline`], [`Row`], [`Segment`]) and how a journal document
//! becomes one (see the module docs of [`crate::timeline`]).

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::journal::{Recorded, Status};

/// One stretch of a service's rebuild. The first eleven are the journal's `phase_ms` keys
/// (`Push` and `Update`: a Swarm service's push and Swarm's update, instead of a recreate);
/// the rest name what the journal's times leave uncovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Queued,
    Build,
    Push,
    DeployQueued,
    Recreate,
    Update,
    StartNext,
    Health,
    Probe,
    Settle,
    Promote,
    /// A rolled-back service: the failed gate and the rollback after the last timed phase.
    Rollback,
    /// A failed service: what ran after the last timed phase until it failed.
    Failure,
    /// A service still in flight: its current phase, so far.
    InFlight,
    /// A finished service whose journal has no per-phase times (an older dockhand).
    Untimed,
}

impl Step {
    /// The journal's `phase_ms` keys, in the order a rebuild runs them.
    pub const TIMED: [Step; 11] = [
        Step::Queued,
        Step::Build,
        Step::Push,
        Step::DeployQueued,
        Step::Recreate,
        Step::Update,
        Step::StartNext,
        Step::Health,
        Step::Probe,
        Step::Settle,
        Step::Promote,
    ];

    /// Every step, in legend order: the timed ones, then the ones a row ends with.
    pub fn all() -> impl Iterator<Item = Step> {
        Step::TIMED.into_iter().chain([
            Step::Rollback,
            Step::Failure,
            Step::InFlight,
            Step::Untimed,
        ])
    }

    /// The `phase_ms` key (or a name for the others).
    pub fn key(self) -> &'static str {
        match self {
            Step::Queued => "queued",
            Step::Build => "build",
            Step::Push => "push",
            Step::DeployQueued => "deploy_queued",
            Step::Recreate => "recreate",
            Step::Update => "update",
            Step::StartNext => "start_next",
            Step::Health => "health",
            Step::Probe => "probe",
            Step::Settle => "settle",
            Step::Promote => "promote",
            Step::Rollback => "gate_rollback",
            Step::Failure => "failure",
            Step::InFlight => "in_flight",
            Step::Untimed => "untimed",
        }
    }

    /// How a legend names it.
    pub fn label(self) -> &'static str {
        match self {
            Step::Queued => "build queue",
            Step::Build => "build",
            Step::Push => "push",
            Step::DeployQueued => "deploy queue",
            Step::Recreate => "recreate",
            Step::Update => "Swarm update",
            Step::StartNext => "start next",
            Step::Health => "health",
            Step::Probe => "probe (gate)",
            Step::Settle => "settle",
            Step::Promote => "promote",
            Step::Rollback => "gate failed + rollback",
            Step::Failure => "until failure",
            Step::InFlight => "in flight",
            Step::Untimed => "rebuild (no phase times)",
        }
    }

    /// Waiting for a slot rather than working.
    pub fn is_wait(self) -> bool {
        matches!(self, Step::Queued | Step::DeployQueued)
    }
}

/// How a service's rebuild ended (or stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Completed,
    Failed,
    RolledBack,
    InProgress,
    Pending,
    /// A status this build does not know.
    Unknown,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled back",
            Outcome::InProgress => "in progress",
            Outcome::Pending => "pending",
            Outcome::Unknown => "unknown",
        }
    }

    fn of(status: &Recorded<Status>) -> Outcome {
        match status.known() {
            Some(Status::Completed) => Outcome::Completed,
            Some(Status::Failed) => Outcome::Failed,
            Some(Status::RolledBack) => Outcome::RolledBack,
            Some(Status::InProgress) => Outcome::InProgress,
            Some(Status::Pending) => Outcome::Pending,
            None => Outcome::Unknown,
        }
    }
}

/// One bar: `start_ms..end_ms` from the run's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub step: Step,
    pub start_ms: f64,
    pub end_ms: f64,
    /// On the run's critical path.
    pub critical: bool,
}

impl Segment {
    pub fn ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }
}

/// One service.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub category: String,
    pub outcome: Outcome,
    /// The journal's phase word, as written.
    pub phase: String,
    pub reason: Option<String>,
    /// Empty when the service never started (or its record has no times).
    pub segments: Vec<Segment>,
}

impl Row {
    pub fn start_ms(&self) -> Option<f64> {
        self.segments.first().map(|s| s.start_ms)
    }
    pub fn end_ms(&self) -> Option<f64> {
        self.segments.last().map(|s| s.end_ms)
    }
    /// When the build slot was freed: the end of the build, if there was one.
    pub fn build_end_ms(&self) -> Option<f64> {
        let b = self.segments.iter().find(|s| s.step == Step::Build)?;
        Some(b.end_ms)
    }
    pub fn is_critical(&self) -> bool {
        self.segments.iter().any(|s| s.critical)
    }
}

/// A run's timeline. Rows are grouped by category (first-seen order), in the run's order
/// within a category.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub run: String,
    pub project: Option<String>,
    /// The run's status word (`running`, `completed`, `failed`, …).
    pub status: String,
    /// The run's start (time zero), as milliseconds since the Unix epoch.
    pub epoch_ms: Option<f64>,
    /// From time zero to the last bar's end (or the run's end, if later).
    pub span_ms: f64,
    pub rows: Vec<Row>,
    /// Row indices of the critical path, earliest first.
    pub critical: Vec<usize>,
}

impl Timeline {
    /// The steps some row has a bar for, in legend order (what a legend lists).
    pub fn steps_used(&self) -> Vec<Step> {
        Step::all()
            .filter(|s| {
                self.rows
                    .iter()
                    .any(|r| r.segments.iter().any(|g| g.step == *s))
            })
            .collect()
    }
}

fn epoch_ms_of(v: &Value, k: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(v.get(k)?.as_str()?).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0)
}

fn text_of(v: &Value, k: &str) -> Option<String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Shorter than this, a gap the phase times leave is bookkeeping, not a bar.
const GAP_MS: f64 = 50.0;

/// The record's bars, from its `started_at` (epoch ms) on; `open_end` is where a bar of a
/// service still in flight stops.
fn segments(r: &Value, outcome: Outcome, zero: f64, open_end: Option<f64>) -> Vec<Segment> {
    let total_ms = r.get("total_s").and_then(Value::as_f64).map(|s| s * 1000.0);
    let finished = epoch_ms_of(r, "finished_at");
    let start = epoch_ms_of(r, "started_at").or_else(|| Some(finished? - total_ms?));
    let Some(start) = start else {
        return Vec::new();
    };
    let mut t = start - zero;
    let mut out = Vec::new();
    let pm = r.get("phase_ms");
    for step in Step::TIMED {
        let Some(ms) = pm.and_then(|m| m.get(step.key())).and_then(Value::as_f64) else {
            continue;
        };
        if ms <= 0.0 {
            continue;
        }
        out.push(Segment {
            step,
            start_ms: t,
            end_ms: t + ms,
            critical: false,
        });
        t += ms;
    }
    let end = match outcome {
        Outcome::InProgress | Outcome::Unknown => open_end,
        _ => finished
            .or(total_ms.map(|ms| start + ms))
            .or_else(|| epoch_ms_of(r, "updated_at")),
    }
    .map(|e| e - zero);
    let rest = match outcome {
        Outcome::RolledBack => Step::Rollback,
        Outcome::Failed => Step::Failure,
        Outcome::InProgress | Outcome::Unknown => Step::InFlight,
        _ if out.is_empty() => Step::Untimed,
        _ => return out,
    };
    if let Some(end) = end.filter(|e| *e - t > GAP_MS) {
        out.push(Segment {
            step: rest,
            start_ms: t,
            end_ms: end,
            critical: false,
        });
    }
    out
}

/// Record names in the run's order (`_run.services`), then the others by name.
fn order(records: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut names = crate::journal::run_services(records.get("_run"));
    let mut seen: HashSet<String> = names.iter().cloned().collect();
    let mut rest: Vec<&String> = records
        .iter()
        .filter(|(k, v)| !k.starts_with('_') && v.is_object() && !seen.contains(*k))
        .map(|(k, _)| k)
        .collect();
    rest.sort();
    for k in rest {
        seen.insert(k.clone());
        names.push(k.clone());
    }
    names.dedup();
    names
}

/// Rows grouped by category, first-seen order, stable within a category.
fn group(rows: Vec<Row>) -> Vec<Row> {
    let mut cats: Vec<String> = Vec::new();
    for r in &rows {
        if !cats.contains(&r.category) {
            cats.push(r.category.clone());
        }
    }
    let mut rows = rows;
    rows.sort_by_key(|r| cats.iter().position(|c| *c == r.category));
    rows
}

impl Timeline {
    /// The timeline of a journal document (`{"records": {...}}`); `id` names the run when
    /// its `_run` record does not. A bar of a service in flight ends at `now` when given,
    /// else at the journal's last write. `None` when the document has no `records`.
    pub fn from_journal(id: &str, doc: &Value, now: Option<SystemTime>) -> Option<Timeline> {
        let records = doc.get("records")?.as_object()?;
        let null = Value::Null;
        let meta = records.get("_run").unwrap_or(&null);
        let now_ms = now
            .and_then(|n| n.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64() * 1000.0);
        let open_end = now_ms.or_else(|| epoch_ms_of(doc, "updated_at"));
        let names = order(records);
        let starts = names
            .iter()
            .filter_map(|n| epoch_ms_of(records.get(n)?, "started_at"));
        let zero = epoch_ms_of(meta, "started_at").or_else(|| starts.reduce(f64::min));
        let mut rows = Vec::new();
        for name in names {
            let r = records.get(&name).unwrap_or(&null);
            let status = Recorded::of(r, "status").unwrap_or(Recorded::Known(Status::Pending));
            let outcome = Outcome::of(&status);
            let rec_end = match (open_end, epoch_ms_of(r, "updated_at")) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            rows.push(Row {
                category: text_of(r, "category").unwrap_or_else(|| "-".into()),
                phase: text_of(r, "phase").unwrap_or_else(|| "pending".into()),
                reason: text_of(r, "reason"),
                segments: match zero {
                    Some(z) => segments(r, outcome, z, rec_end),
                    None => Vec::new(),
                },
                outcome,
                name,
            });
        }
        let rows = group(rows);
        let last_bar = rows.iter().filter_map(Row::end_ms).fold(0.0, f64::max);
        let run_end = zero
            .zip(epoch_ms_of(meta, "finished_at"))
            .map_or(0.0, |(z, f)| f - z);
        let mut t = Timeline {
            run: text_of(meta, "run").unwrap_or_else(|| id.to_string()),
            project: text_of(meta, "project"),
            status: text_of(meta, "status").unwrap_or_else(|| "unknown".into()),
            epoch_ms: zero,
            span_ms: last_bar.max(run_end),
            rows,
            critical: Vec::new(),
        };
        super::critical::mark(&mut t);
        Some(t)
    }

    /// How many rows have each outcome, in [`Outcome`] order (zero counts left out).
    pub fn counts(&self) -> Vec<(Outcome, usize)> {
        let all = [
            Outcome::Completed,
            Outcome::RolledBack,
            Outcome::Failed,
            Outcome::InProgress,
            Outcome::Pending,
            Outcome::Unknown,
        ];
        all.into_iter()
            .map(|o| (o, self.rows.iter().filter(|r| r.outcome == o).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The categories, in row order, with the range of rows each spans.
    pub fn bands(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let mut out: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        for (i, r) in self.rows.iter().enumerate() {
            match out.last_mut() {
                Some((c, range)) if *c == r.category => range.end = i + 1,
                _ => out.push((r.category.clone(), i..i + 1)),
            }
        }
        out
    }
}
