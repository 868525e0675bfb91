//! The run journal as the monitor reads it: a `.dockhand/state/<run>.json` document
//! (written by `stdlib/rebuild` through `state::`) parsed into a [`Journal`] of
//! [`ServiceRec`]s, each in one [`Status`] group, and counted per group ([`Counts`]).
//!
//! `phase` and `status` are parsed into [`crate::journal`]'s enumerations; a value this
//! build does not know (an older journal, a hand edit) is kept as [`Recorded::Unknown`] and
//! shown as unknown, in a group of its own. A missing one is `pending`: the service has not
//! started.
//!
//! Pure data and parsing: no files, no terminal, no Docker.

use std::collections::HashSet;

use serde_json::Value;

pub use crate::journal::{Phase, Recorded, Status};

/// The dashboard's status groups, in the order it lists them.
pub const GROUPS: [Status; 5] = [
    Status::Completed,
    Status::RolledBack,
    Status::Failed,
    Status::InProgress,
    Status::Pending,
];

/// A status group's heading.
pub fn label(s: Status) -> &'static str {
    match s {
        Status::Completed => "completed",
        Status::RolledBack => "rolled back",
        Status::Failed => "failed",
        Status::InProgress => "in progress",
        Status::Pending => "pending",
    }
}

/// One service's journal record.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRec {
    pub name: String,
    pub category: String,
    pub phase: Recorded<Phase>,
    pub status: Recorded<Status>,
    pub reason: Option<String>,
    pub failure: Option<String>,
    pub build_s: Option<f64>,
    pub healthy_ms: Option<f64>,
    pub total_s: Option<f64>,
    /// Time per phase (ms), in the order the rebuild goes through them: build queue, build,
    /// deploy queue, recreate / start-next, health, probe, settle, promote.
    pub phase_ms: Vec<(String, f64)>,
    pub attempts: Option<i64>,
    pub unchanged: bool,
    pub updated_at: Option<String>,
}

/// The run's own record (`_run`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunInfo {
    pub id: String,
    pub project: Option<String>,
    /// running, completed, failed, planned — or `unknown` when the record is missing.
    pub status: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub batch_size: Option<i64>,
}

/// A parsed run journal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Journal {
    pub run: RunInfo,
    /// In the run's own order (`_run.services`), then any other records by name.
    pub services: Vec<ServiceRec>,
    pub updated_at: Option<String>,
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn f64_of(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

/// The phases a record's `phase_ms` may hold, in the order a rebuild goes through them
/// (`push` and `update`: a Swarm service's push and Swarm's update, instead of the recreate).
pub const PHASES: [&str; 11] = [
    "queued",
    "build",
    "push",
    "deploy_queued",
    "recreate",
    "update",
    "start_next",
    "health",
    "probe",
    "settle",
    "promote",
];

/// A record's per-phase times (ms), in [`PHASES`] order; unknown names are left out.
fn phase_ms(r: &Value) -> Vec<(String, f64)> {
    let Some(m) = r.get("phase_ms") else {
        return Vec::new();
    };
    PHASES
        .iter()
        .filter_map(|p| Some((p.to_string(), f64_of(m, p)?)))
        .collect()
}

impl Journal {
    /// Parses a journal file's text; `id` is the run id (its file name) used when the
    /// `_run` record is missing.
    pub fn parse(id: &str, text: &str) -> Result<Journal, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "not valid JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            )
        })?;
        let Some(Value::Object(records)) = v.get("records") else {
            return Err("no \"records\" object (is this a dockhand journal?)".into());
        };
        let meta = records.get("_run");
        let run = match meta {
            Some(m) => RunInfo {
                id: str_of(m, "run").unwrap_or_else(|| id.to_string()),
                project: str_of(m, "project"),
                status: str_of(m, "status").unwrap_or_else(|| "running".into()),
                started_at: str_of(m, "started_at"),
                finished_at: str_of(m, "finished_at"),
                batch_size: m.get("batch_size").and_then(Value::as_i64),
            },
            None => RunInfo {
                id: id.to_string(),
                status: "unknown".into(),
                ..Default::default()
            },
        };
        let order = crate::journal::run_services(meta);
        let rec = |name: &str, r: &Value| ServiceRec {
            name: name.to_string(),
            category: str_of(r, "category").unwrap_or_else(|| "-".into()),
            status: Recorded::of(r, "status").unwrap_or(Recorded::Known(Status::Pending)),
            phase: Recorded::of(r, "phase").unwrap_or(Recorded::Known(Phase::Pending)),
            reason: str_of(r, "reason"),
            failure: str_of(r, "failure"),
            build_s: f64_of(r, "build_s"),
            healthy_ms: f64_of(r, "healthy_ms"),
            total_s: f64_of(r, "total_s"),
            phase_ms: phase_ms(r),
            attempts: r.get("attempts").and_then(Value::as_i64),
            unchanged: r.get("unchanged").and_then(Value::as_bool).unwrap_or(false),
            updated_at: str_of(r, "updated_at"),
        };
        let mut services = Vec::new();
        let mut seen = HashSet::new();
        for name in &order {
            let r = records.get(name).cloned().unwrap_or(Value::Null);
            services.push(rec(name, &r));
            seen.insert(name.clone());
        }
        let mut rest: Vec<_> = records
            .iter()
            .filter(|(k, v)| !k.starts_with('_') && !seen.contains(*k) && v.is_object())
            .collect();
        rest.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in rest {
            services.push(rec(k, v));
        }
        Ok(Journal {
            run,
            services,
            updated_at: str_of(&v, "updated_at"),
        })
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.services {
            c.add(&s.status);
        }
        c
    }

    /// Per category, in first-seen order.
    pub fn categories(&self) -> Vec<(String, Counts)> {
        let mut out: Vec<(String, Counts)> = Vec::new();
        for s in &self.services {
            match out.iter_mut().find(|(c, _)| *c == s.category) {
                Some((_, c)) => c.add(&s.status),
                None => {
                    let mut c = Counts::default();
                    c.add(&s.status);
                    out.push((s.category.clone(), c));
                }
            }
        }
        out
    }

    pub fn with_status(&self, st: Status) -> Vec<&ServiceRec> {
        self.services.iter().filter(|s| s.status.is(st)).collect()
    }

    /// The services whose status this build does not know.
    pub fn with_unknown_status(&self) -> Vec<&ServiceRec> {
        self.services
            .iter()
            .filter(|s| s.status.known().is_none())
            .collect()
    }
}

/// How many services stand where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub total: usize,
    pub completed: usize,
    pub rolled_back: usize,
    pub failed: usize,
    pub in_progress: usize,
    pub pending: usize,
    /// A status this build does not know.
    pub unknown: usize,
}

impl Counts {
    fn add(&mut self, s: &Recorded<Status>) {
        self.total += 1;
        match s.known() {
            Some(s) => *self.slot(s) += 1,
            None => self.unknown += 1,
        }
    }

    fn slot(&mut self, s: Status) -> &mut usize {
        match s {
            Status::Completed => &mut self.completed,
            Status::RolledBack => &mut self.rolled_back,
            Status::Failed => &mut self.failed,
            Status::InProgress => &mut self.in_progress,
            Status::Pending => &mut self.pending,
        }
    }

    pub fn get(&self, s: Status) -> usize {
        let mut c = *self;
        *c.slot(s)
    }

    /// Finished one way or the other: completed, rolled back or failed.
    pub fn done(&self) -> usize {
        self.completed + self.rolled_back + self.failed
    }

    /// 0.0..=1.0
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.done() as f64 / self.total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::model::fixtures::TRUNCATED;

    #[test]
    fn a_truncated_journal_is_an_error_naming_the_place() {
        let e = Journal::parse("x", TRUNCATED).unwrap_err();
        assert!(e.contains("not valid JSON (line"), "{e}");
        let e = Journal::parse("x", "{\"version\": 1}").unwrap_err();
        assert!(e.contains("records"), "{e}");
    }

    #[test]
    fn phase_times_are_read_in_the_rebuilds_order() {
        let text = r#"{"version":1,"records":{"a":{"phase":"completed","status":"completed","phase_ms":{"settle":2001,"build":3400,"queued":12,"mystery":5,"health":900.5}}}}"#;
        let j = Journal::parse("r", text).unwrap();
        let a = j.services.iter().find(|s| s.name == "a").unwrap();
        let names: Vec<&str> = a.phase_ms.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["queued", "build", "health", "settle"]);
        assert_eq!(a.phase_ms[2].1, 900.5);
    }

    #[test]
    fn unknown_words_are_kept_and_counted_apart() {
        let text = r#"{"records":{"_run":{"services":["a","b","c"]},
            "a":{"phase":"warping","status":"completed"},
            "b":{"phase":"built","status":"error"}}}"#;
        let j = Journal::parse("r", text).unwrap();
        let [a, b, c] = &j.services[..] else {
            panic!("{j:?}")
        };
        assert_eq!(a.phase, Recorded::Unknown("warping".into()));
        assert_eq!(a.status, Recorded::Known(Status::Completed));
        assert_eq!(b.phase, Recorded::Known(Phase::Built));
        assert_eq!(b.status, Recorded::Unknown("error".into()));
        // No record yet: pending.
        assert_eq!(c.status, Recorded::Known(Status::Pending));
        let n = j.counts();
        assert_eq!((n.total, n.completed, n.pending, n.unknown), (3, 1, 1, 1));
        assert_eq!(j.with_unknown_status()[0].name, "b");
    }
}
