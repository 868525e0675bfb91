//! `dockhand monitor`: a live dashboard of a rebuild run (the seeds'
//! `phase1-monitor-rebuild.sh`), and its plain-text `--once` form for CI logs.
//!
//! The seeds' monitor re-ran `cat .rebuild_state_phase1.json | jq`, `docker-compose ps` and
//! `docker stats --no-stream` in a `clear; sleep 5` loop: it flickered, it read the state
//! file while the rebuild rewrote it, and each refresh cost the engine a full listing.
//! Here the pieces are kept apart so each can be tested on its own:
//!
//! * **The journal** (`.dockhand/state/<run>.json`, written by `stdlib/rebuild` through
//!   `state::`) is parsed into a [`Journal`]. Its writes are atomic renames, so a read sees
//!   the old or the new file; a read that fails anyway keeps the last good copy and says so.
//!   [`JournalSource`] re-reads it only when its size, mtime or inode change, and, unless a
//!   run was named, follows the fleet lock journal (`fleet-<project>`, record `last`) so a
//!   monitor started before the rebuild picks the new run up.
//! * **The containers** come from the docker module's event-fed table (health, restarts,
//!   uptime without re-listing) and the engine's stats (cpu %, memory), gathered by a
//!   background task ([`DockerFeed`]) so a slow engine never blocks a keypress. Without an
//!   engine the container panel says why and the journal panels still work.
//! * **The model** ([`Model`]) is plain data; [`render`] draws it on any ratatui backend
//!   (the tests use `TestBackend`) and [`render_text`] prints it without control codes.
//!   Ratatui diffs frames, so a redraw rewrites only the cells that changed: no flicker.
//!
//! Exit codes of `--once`: 0 when no service of the run failed or was rolled back (also
//! while it is still running), 1 when one did (the same rule as `batch-rebuild.rhai`),
//! 2 when there is no run to show or its journal cannot be read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Gauge, Paragraph, Row, Table, Wrap};
use serde_json::Value;

use crate::host::state::STATE_DIR;

/// What can stop the monitor before it shows anything.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(
        "no rebuild run found in {0}: start one with `dockhand run playbooks/batch-rebuild.rhai`, or name it with --run ID (and --root DIR if the workspace is elsewhere)"
    )]
    NoRun(PathBuf),
    #[error(
        "run id '{0}' must be letters, digits, '-', '_' or '.' (a journal name under .dockhand/state)"
    )]
    BadRun(String),
    #[error("journal {path}: {msg}")]
    Journal { path: PathBuf, msg: String },
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Where a service stands, grouped the way the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Completed,
    RolledBack,
    Failed,
    InProgress,
    Pending,
}

impl Status {
    /// From a record's `status` (pending, in-progress, completed, failed, rolled-back), or
    /// its `phase` when the status is missing or unknown.
    pub fn of(status: Option<&str>, phase: Option<&str>) -> Status {
        match status.or(phase).unwrap_or("pending") {
            "completed" => Status::Completed,
            "rolled-back" => Status::RolledBack,
            "failed" | "error" => Status::Failed,
            "pending" => Status::Pending,
            _ => match phase {
                Some("completed") => Status::Completed,
                Some("rolled-back") => Status::RolledBack,
                Some("failed") => Status::Failed,
                Some("pending") | None => Status::Pending,
                Some(_) => Status::InProgress,
            },
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::RolledBack => "rolled back",
            Status::Failed => "failed",
            Status::InProgress => "in progress",
            Status::Pending => "pending",
        }
    }

    fn color(self) -> Color {
        match self {
            Status::Completed => Color::Green,
            Status::RolledBack => Color::Yellow,
            Status::Failed => Color::Red,
            Status::InProgress => Color::Cyan,
            Status::Pending => Color::Gray,
        }
    }

    pub const ALL: [Status; 5] = [
        Status::Completed,
        Status::RolledBack,
        Status::Failed,
        Status::InProgress,
        Status::Pending,
    ];
}

/// One service's journal record.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRec {
    pub name: String,
    pub category: String,
    pub phase: String,
    pub status: Status,
    pub reason: Option<String>,
    pub failure: Option<String>,
    pub build_s: Option<f64>,
    pub healthy_ms: Option<f64>,
    pub total_s: Option<f64>,
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
        let order: Vec<String> = meta
            .and_then(|m| m.get("services"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let rec = |name: &str, r: &Value| {
            let phase = str_of(r, "phase");
            let status = str_of(r, "status");
            ServiceRec {
                name: name.to_string(),
                category: str_of(r, "category").unwrap_or_else(|| "-".into()),
                status: Status::of(status.as_deref(), phase.as_deref()),
                phase: phase.unwrap_or_else(|| "pending".into()),
                reason: str_of(r, "reason"),
                failure: str_of(r, "failure"),
                build_s: f64_of(r, "build_s"),
                healthy_ms: f64_of(r, "healthy_ms"),
                total_s: f64_of(r, "total_s"),
                attempts: r.get("attempts").and_then(Value::as_i64),
                unchanged: r.get("unchanged").and_then(Value::as_bool).unwrap_or(false),
                updated_at: str_of(r, "updated_at"),
            }
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
            c.add(s.status);
        }
        c
    }

    /// Per category, in first-seen order.
    pub fn categories(&self) -> Vec<(String, Counts)> {
        let mut out: Vec<(String, Counts)> = Vec::new();
        for s in &self.services {
            match out.iter_mut().find(|(c, _)| *c == s.category) {
                Some((_, c)) => c.add(s.status),
                None => {
                    let mut c = Counts::default();
                    c.add(s.status);
                    out.push((s.category.clone(), c));
                }
            }
        }
        out
    }

    pub fn with_status(&self, st: Status) -> Vec<&ServiceRec> {
        self.services.iter().filter(|s| s.status == st).collect()
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
}

impl Counts {
    fn add(&mut self, s: Status) {
        self.total += 1;
        *self.slot(s) += 1;
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

/// One line of "recent activity".
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// RFC 3339, as the journal writes it (UTC).
    pub at: String,
    pub service: String,
    pub phase: String,
    pub detail: String,
}

fn detail_of(s: &ServiceRec) -> String {
    match s.phase.as_str() {
        "completed" if s.unchanged => "image unchanged".into(),
        "completed" => {
            let mut d = Vec::new();
            if let Some(b) = s.build_s {
                d.push(format!("built in {b:.1}s"));
            }
            if let Some(h) = s.healthy_ms {
                d.push(format!("healthy in {h:.0} ms"));
            }
            d.join(", ")
        }
        "built" => s.build_s.map(|b| format!("in {b:.1}s")).unwrap_or_default(),
        _ => s.reason.clone().unwrap_or_default(),
    }
}

/// Phase changes seen so far. The journal keeps only each service's latest phase; a live
/// monitor sees the phases go by and keeps them, newest first.
#[derive(Debug, Default)]
pub struct History {
    last: HashMap<String, (String, Option<String>)>,
    entries: Vec<Activity>,
}

/// How many activity lines a history keeps.
const HISTORY: usize = 200;

impl History {
    /// Records what changed in `j` since the last call.
    pub fn observe(&mut self, j: &Journal) {
        let mut run_events = Vec::new();
        if let Some(t) = &j.run.started_at {
            run_events.push((t.clone(), "started".to_string()));
        }
        if let Some(t) = &j.run.finished_at {
            run_events.push((t.clone(), j.run.status.clone()));
        }
        for (at, what) in run_events {
            let key = format!("_run:{what}");
            if self.last.get(&key).map(|(p, _)| p) != Some(&at) {
                self.last.insert(key, (at.clone(), None));
                self.entries.push(Activity {
                    at,
                    service: "run".into(),
                    phase: what,
                    detail: j.run.id.clone(),
                });
            }
        }
        for s in &j.services {
            let Some(at) = &s.updated_at else { continue };
            let now = (s.phase.clone(), s.reason.clone());
            if self.last.get(&s.name) == Some(&now) {
                continue;
            }
            self.last.insert(s.name.clone(), now);
            // Everything starts pending: only a pending with a reason (blocked) is news.
            if s.status == Status::Pending && s.reason.is_none() {
                continue;
            }
            self.entries.push(Activity {
                at: at.clone(),
                service: s.name.clone(),
                phase: s.phase.clone(),
                detail: detail_of(s),
            });
        }
        // Newest first; equal times keep the order they were seen in.
        self.entries.sort_by(|a, b| b.at.cmp(&a.at));
        self.entries.truncate(HISTORY);
    }

    pub fn entries(&self) -> &[Activity] {
        &self.entries
    }
}

/// One container row.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRow {
    pub service: String,
    pub name: String,
    pub state: String,
    pub health: String,
    pub restarts: Option<i64>,
    pub uptime_s: Option<i64>,
    pub cpu_percent: Option<f64>,
    pub mem_bytes: Option<u64>,
}

/// What the container panel shows.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerView {
    /// Not asked yet, or still connecting.
    Waiting,
    /// No engine (or it failed): the reason.
    Unavailable(String),
    Rows(Vec<ContainerRow>),
}

/// Everything one frame shows.
#[derive(Debug, Clone)]
pub struct Model {
    pub journal: Option<Journal>,
    /// A problem reading the journal (the last good copy is still shown), or what the
    /// monitor waits for.
    pub note: Option<String>,
    pub activity: Vec<Activity>,
    pub containers: ContainerView,
    /// For elapsed times.
    pub now: SystemTime,
}

impl Model {
    /// A model from one journal read (activity from its records alone).
    pub fn from_journal(j: Journal, containers: ContainerView, now: SystemTime) -> Model {
        let mut h = History::default();
        h.observe(&j);
        Model {
            journal: Some(j),
            note: None,
            activity: h.entries().to_vec(),
            containers,
            now,
        }
    }

    /// Container rows of the run's services (all of them when the run lists none).
    pub fn container_rows(&self) -> Option<Vec<&ContainerRow>> {
        let ContainerView::Rows(rows) = &self.containers else {
            return None;
        };
        let wanted: HashSet<&str> = self
            .journal
            .iter()
            .flat_map(|j| j.services.iter().map(|s| s.name.as_str()))
            .collect();
        Some(
            rows.iter()
                .filter(|r| wanted.is_empty() || wanted.contains(r.service.as_str()))
                .collect(),
        )
    }

    /// "3m12s" since the run started (to its end when it has ended).
    pub fn elapsed(&self) -> Option<String> {
        let j = self.journal.as_ref()?;
        let start = humantime::parse_rfc3339_weak(j.run.started_at.as_deref()?).ok()?;
        let end = j
            .run
            .finished_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .unwrap_or(self.now);
        Some(human_secs(
            end.duration_since(start).unwrap_or_default().as_secs() as i64,
        ))
    }

    /// 1 when a service failed or was rolled back, else 0 (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match &self.journal {
            Some(j) => {
                let c = j.counts();
                i32::from(c.failed + c.rolled_back > 0)
            }
            None => 2,
        }
    }
}

/// "45s", "3m12s", "2h05m", "3d04h".
pub fn human_secs(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// "12.3 MiB".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// "14:03:12" of an RFC 3339 time (as written, UTC).
fn clock(at: &str) -> &str {
    at.get(11..19).unwrap_or(at)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn container_cells(r: &ContainerRow) -> [String; 7] {
    let health = if r.state == "running" {
        r.health.clone()
    } else {
        format!("{} ({})", r.state, r.health)
    };
    [
        r.service.clone(),
        r.name.clone(),
        health,
        opt(r.restarts),
        opt(r.uptime_s.map(human_secs)),
        opt(r.cpu_percent.map(|c| format!("{c:.1}"))),
        opt(r.mem_bytes.map(human_bytes)),
    ]
}

const CONTAINER_HEADER: [&str; 7] = [
    "service",
    "container",
    "health",
    "restarts",
    "uptime",
    "cpu %",
    "mem",
];
const CATEGORY_HEADER: [&str; 7] = [
    "category",
    "total",
    "done",
    "completed",
    "failed",
    "running",
    "pending",
];

fn category_cells(name: &str, c: &Counts) -> [String; 7] {
    [
        name.to_string(),
        c.total.to_string(),
        c.done().to_string(),
        c.completed.to_string(),
        (c.failed + c.rolled_back).to_string(),
        c.in_progress.to_string(),
        c.pending.to_string(),
    ]
}

/// What one status group lists: names, with the phase for ones in flight and the reason
/// for failures.
fn group_items(j: &Journal, st: Status) -> Vec<String> {
    j.with_status(st)
        .into_iter()
        .map(|s| match st {
            Status::InProgress => format!("{} ({})", s.name, s.phase),
            Status::Failed | Status::RolledBack => match &s.reason {
                Some(r) => format!("{}: {r}", s.name),
                None => s.name.clone(),
            },
            Status::Pending => match &s.reason {
                Some(r) => format!("{} ({r})", s.name),
                None => s.name.clone(),
            },
            Status::Completed => s.name.clone(),
        })
        .collect()
}

fn title_line(m: &Model) -> String {
    match &m.journal {
        Some(j) => {
            let mut t = format!("run {}", j.run.id);
            if let Some(p) = &j.run.project {
                t += &format!(" · project {p}");
            }
            t += &format!(" · {}", j.run.status);
            if let Some(e) = m.elapsed() {
                t += &format!(" · {e}");
            }
            t
        }
        None => "no run yet".into(),
    }
}

fn progress_label(c: &Counts) -> String {
    format!(
        "{}/{} done ({:.0}%): {} completed, {} rolled back, {} failed, {} in progress, {} pending",
        c.done(),
        c.total,
        c.ratio() * 100.0,
        c.completed,
        c.rolled_back,
        c.failed,
        c.in_progress,
        c.pending
    )
}

/// The dashboard as plain text (no control codes), for `--once`.
pub fn render_text(m: &Model) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "dockhand monitor: {}", title_line(m));
    if let Some(n) = &m.note {
        let _ = writeln!(o, "note: {n}");
    }
    if let Some(j) = &m.journal {
        let c = j.counts();
        let width = 30;
        let filled = (c.ratio() * width as f64).round() as usize;
        let _ = writeln!(
            o,
            "progress: [{}{}] {}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            progress_label(&c)
        );
        let _ = writeln!(o, "\nservices:");
        for st in Status::ALL {
            let items = group_items(j, st);
            let _ = write!(o, "  {} ({})", st.label(), items.len());
            match st {
                Status::Failed | Status::RolledBack => {
                    let _ = writeln!(o);
                    for i in items {
                        let _ = writeln!(o, "    {i}");
                    }
                }
                _ if items.is_empty() => {
                    let _ = writeln!(o);
                }
                _ => {
                    let _ = writeln!(o, ": {}", items.join(", "));
                }
            }
        }
        let _ = writeln!(o, "\ncategories:");
        let mut rows = vec![CATEGORY_HEADER.map(String::from)];
        rows.extend(j.categories().iter().map(|(n, c)| category_cells(n, c)));
        o += &text_table(&rows, "  ");
    }
    let _ = writeln!(o, "\nrecent activity:");
    if m.activity.is_empty() {
        let _ = writeln!(o, "  (none yet)");
    }
    for a in m.activity.iter().take(15) {
        let _ = writeln!(
            o,
            "  {}  {:<24} {:<12} {}",
            clock(&a.at),
            a.service,
            a.phase,
            a.detail
        );
    }
    // no trailing spaces from an empty detail
    o = o.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n";
    let _ = writeln!(o, "\ncontainers:");
    match (&m.containers, m.container_rows()) {
        (ContainerView::Unavailable(why), _) => {
            let _ = writeln!(o, "  unavailable: {why}");
        }
        (_, None) => {
            let _ = writeln!(o, "  (waiting for Docker)");
        }
        (_, Some(rows)) if rows.is_empty() => {
            let _ = writeln!(o, "  (no containers for this run's services)");
        }
        (_, Some(rows)) => {
            let mut t = vec![CONTAINER_HEADER.map(String::from)];
            t.extend(rows.into_iter().map(container_cells));
            o += &text_table(&t, "  ");
        }
    }
    o
}

/// Left-aligned columns, two spaces apart.
fn text_table<const N: usize>(rows: &[[String; N]], indent: &str) -> String {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut o = String::new();
    for r in rows {
        let mut line = indent.to_string();
        for (i, c) in r.iter().enumerate() {
            line += &format!("{c:<width$}  ", width = w[i]);
        }
        o += line.trim_end();
        o.push('\n');
    }
    o
}

fn bordered(title: &str) -> Block<'_> {
    Block::bordered().title(Span::styled(
        format!(" {title} "),
        Style::new().add_modifier(Modifier::BOLD),
    ))
}

/// Draws the dashboard. Pure: everything comes from `m`.
pub fn render(frame: &mut Frame, m: &Model) {
    let [header, gauge, middle, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Min(8),
        Constraint::Min(8),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let mut head = vec![Span::styled(
        format!(" dockhand monitor · {}", title_line(m)),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(n) = &m.note {
        head.push(Span::styled(
            format!("  ({n})"),
            Style::new().fg(Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(head)), header);

    let counts = m.journal.as_ref().map(Journal::counts).unwrap_or_default();
    let bad = counts.failed + counts.rolled_back > 0;
    frame.render_widget(
        Gauge::default()
            .block(bordered("progress"))
            .gauge_style(Style::new().fg(if bad { Color::Yellow } else { Color::Green }))
            .ratio(counts.ratio().clamp(0.0, 1.0))
            .label(progress_label(&counts)),
        gauge,
    );

    let [services, categories] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    render_services(frame, m, services);
    render_categories(frame, m, categories);

    let [activity, containers] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    render_activity(frame, m, activity);
    render_containers(frame, m, containers);

    frame.render_widget(
        Paragraph::new(" q / Esc / Ctrl-C: quit").style(Style::new().fg(Color::DarkGray)),
        footer,
    );
}

fn render_services(frame: &mut Frame, m: &Model, area: Rect) {
    let mut lines = Vec::new();
    match &m.journal {
        None => lines.push(Line::from(
            m.note.clone().unwrap_or_else(|| "waiting for a run".into()),
        )),
        Some(j) => {
            for st in Status::ALL {
                let items = group_items(j, st);
                let head = Span::styled(
                    format!("{} ({})", st.label(), items.len()),
                    Style::new().fg(st.color()).add_modifier(Modifier::BOLD),
                );
                match st {
                    Status::Failed | Status::RolledBack => {
                        lines.push(Line::from(head));
                        for i in items {
                            lines.push(Line::from(format!("  {i}")));
                        }
                    }
                    _ => lines.push(Line::from(vec![
                        head,
                        Span::raw(if items.is_empty() { "" } else { ": " }),
                        Span::raw(items.join(", ")),
                    ])),
                }
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(bordered("services"))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn styled_table<'a, const N: usize>(
    header: [&'a str; N],
    rows: Vec<Row<'a>>,
    widths: [Constraint; N],
    title: &'a str,
) -> Table<'a> {
    Table::new(rows, widths)
        .header(
            Row::new(header.map(Cell::from))
                .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
        )
        .block(bordered(title))
        .column_spacing(1)
}

fn render_categories(frame: &mut Frame, m: &Model, area: Rect) {
    let rows: Vec<Row> = m
        .journal
        .iter()
        .flat_map(|j| j.categories())
        .map(|(n, c)| {
            let style = if c.failed + c.rolled_back > 0 {
                Style::new().fg(Color::Yellow)
            } else if c.completed == c.total {
                Style::new().fg(Color::Green)
            } else {
                Style::new()
            };
            Row::new(category_cells(&n, &c)).style(style)
        })
        .collect();
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    frame.render_widget(
        styled_table(CATEGORY_HEADER, rows, widths, "categories"),
        area,
    );
}

fn render_activity(frame: &mut Frame, m: &Model, area: Rect) {
    let rows: Vec<Line> = m
        .activity
        .iter()
        .take(area.height.saturating_sub(2) as usize)
        .map(|a| {
            let color = match a.phase.as_str() {
                "completed" => Color::Green,
                "failed" => Color::Red,
                "rolled-back" | "rolling-back" => Color::Yellow,
                _ => Color::Reset,
            };
            Line::from(vec![
                Span::styled(clock(&a.at).to_string(), Style::new().fg(Color::DarkGray)),
                Span::raw(format!(" {} ", a.service)),
                Span::styled(a.phase.clone(), Style::new().fg(color)),
                Span::raw(if a.detail.is_empty() {
                    String::new()
                } else {
                    format!(" {}", a.detail)
                }),
            ])
        })
        .collect();
    let p = if rows.is_empty() {
        Paragraph::new("(none yet)")
    } else {
        Paragraph::new(rows)
    };
    frame.render_widget(p.block(bordered("recent activity")), area);
}

fn render_containers(frame: &mut Frame, m: &Model, area: Rect) {
    let msg = match (&m.containers, m.container_rows()) {
        (ContainerView::Unavailable(why), _) => Some(format!("Docker unavailable: {why}")),
        (_, None) => Some("connecting to Docker…".into()),
        (_, Some(rows)) if rows.is_empty() => Some("no containers for this run's services".into()),
        _ => None,
    };
    if let Some(msg) = msg {
        frame.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: true })
                .block(bordered("containers")),
            area,
        );
        return;
    }
    let rows: Vec<Row> = m
        .container_rows()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let color = match r.health.as_str() {
                _ if r.state != "running" => Color::Red,
                "healthy" => Color::Green,
                "unhealthy" => Color::Red,
                "starting" => Color::Yellow,
                _ => Color::Reset,
            };
            let cells = container_cells(r);
            Row::new(
                cells
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i == 2 {
                            Cell::from(c).style(Style::new().fg(color))
                        } else {
                            Cell::from(c)
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    // The container name is the least useful column when space is short.
    let widths = [
        Constraint::Length(20),
        Constraint::Fill(1),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(9),
    ];
    frame.render_widget(
        styled_table(CONTAINER_HEADER, rows, widths, "containers"),
        area,
    );
}

/// Whether a key quits: `q`, Esc or Ctrl-C (raw mode turns Ctrl-C into a key).
pub fn is_quit(k: &KeyEvent) -> bool {
    k.kind != KeyEventKind::Release
        && match k.code {
            KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => k.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

// ---------------------------------------------------------------------------------------
// Finding and following the journal

fn valid_run(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The run to show: `run` if given; else the last run of `project` (its fleet lock
/// journal's `last` record); else the last run of whichever project started one most
/// recently; else the newest journal that has a `_run` record. `None` when there is none.
pub fn resolve_run(
    root: &Path,
    run: Option<&str>,
    project: Option<&str>,
) -> Result<Option<String>, MonitorError> {
    if let Some(r) = run {
        if !valid_run(r) {
            return Err(MonitorError::BadRun(r.to_string()));
        }
        return Ok(Some(r.to_string()));
    }
    let dir = root.join(STATE_DIR);
    let last_of = |v: &Value| {
        let last = v.get("records")?.get("last")?;
        Some((
            last.get("started_at")?.as_str().unwrap_or("").to_string(),
            last.get("run")?.as_str()?.to_string(),
        ))
    };
    if let Some(p) = project {
        let f = dir.join(format!("fleet-{p}.json"));
        return Ok(read_json(&f)
            .as_ref()
            .and_then(last_of)
            .map(|(_, r)| r)
            .filter(|r| valid_run(r)));
    }
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut fleets = Vec::new();
    let mut runs = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if stem.starts_with('.') {
            continue;
        }
        let Some(v) = read_json(&e.path()) else {
            continue;
        };
        if stem.starts_with("fleet-") {
            if let Some(l) = last_of(&v) {
                fleets.push(l);
            }
        } else if let Some(m) = v.get("records").and_then(|r| r.get("_run")) {
            let at = m
                .get("started_at")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            runs.push((at, stem.to_string()));
        }
    }
    let best = |mut v: Vec<(String, String)>| {
        v.sort();
        v.pop().map(|(_, r)| r)
    };
    Ok(best(fleets).filter(|r| valid_run(r)).or_else(|| best(runs)))
}

/// Follows one workspace's run journal: re-reads it when it changes and keeps the phase
/// history. See the module docs.
pub struct JournalSource {
    root: PathBuf,
    run_arg: Option<String>,
    project_arg: Option<String>,
    run: Option<String>,
    signature: Option<(SystemTime, u64, u64)>,
    journal: Option<Journal>,
    note: Option<String>,
    history: History,
}

/// Shown as the run's status when its journal says "running" but no process holds it.
pub const INTERRUPTED: &str = "interrupted (no process is running it; resume with --continue)";

/// Whether the process that opened the run's journal is still alive: the journal's lock
/// file names its holder (`pid N, started ...`, written by `state::open`). `None` when that
/// cannot be told (no lock file, not Linux). The lock itself is not tried: even a brief
/// shared lock could make a run starting at that instant fail to take it.
pub fn run_process_alive(root: &Path, run: &str) -> Option<bool> {
    let text = std::fs::read_to_string(root.join(STATE_DIR).join(format!("{run}.lock"))).ok()?;
    let pid: u32 = text
        .strip_prefix("pid ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new(&format!("/proc/{pid}")).exists())
}

fn signature(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

impl JournalSource {
    pub fn new(root: &Path, run: Option<&str>, project: Option<&str>) -> JournalSource {
        JournalSource {
            root: root.to_path_buf(),
            run_arg: run.map(String::from),
            project_arg: project.map(String::from),
            run: None,
            signature: None,
            journal: None,
            note: None,
            history: History::default(),
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.run
            .as_ref()
            .map(|r| self.root.join(STATE_DIR).join(format!("{r}.json")))
    }

    /// Looks for changes; true when something the model shows changed.
    pub fn poll(&mut self) -> Result<bool, MonitorError> {
        let run = resolve_run(
            &self.root,
            self.run_arg.as_deref(),
            self.project_arg.as_deref(),
        )?;
        let mut changed = false;
        if run != self.run {
            self.run = run;
            self.signature = None;
            self.journal = None;
            self.history = History::default();
            changed = true;
        }
        let Some(path) = self.path() else {
            let note = Some(MonitorError::NoRun(self.root.join(STATE_DIR)).to_string());
            changed |= note != self.note;
            self.note = note;
            return Ok(changed);
        };
        let sig = signature(&path);
        if sig.is_some() && sig == self.signature {
            // The journal did not change, but its writer may have died (killed, machine
            // reboot): a "running" run with no live process is shown as interrupted.
            if let Some(j) = self.journal.as_mut()
                && j.run.status == "running"
                && run_process_alive(&self.root, &j.run.id) == Some(false)
            {
                j.run.status = INTERRUPTED.into();
                changed = true;
            }
            return Ok(changed);
        }
        let id = self.run.clone().unwrap_or_default();
        let note = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("waiting for journal {}", path.display()))
            }
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
            Ok(text) => match Journal::parse(&id, &text) {
                Ok(mut j) => {
                    if j.run.status == "running"
                        && run_process_alive(&self.root, &j.run.id) == Some(false)
                    {
                        j.run.status = INTERRUPTED.into();
                    }
                    self.signature = sig;
                    self.history.observe(&j);
                    changed |= self.journal.as_ref() != Some(&j);
                    self.journal = Some(j);
                    None
                }
                // Kept: the last good copy; the next change is read again.
                Err(e) => Some(format!("journal {}: {e}", path.display())),
            },
        };
        changed |= note != self.note;
        self.note = note;
        Ok(changed)
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// The compose project whose containers to show: `--project`, else the run's.
    pub fn project(&self) -> Option<String> {
        self.project_arg
            .clone()
            .or_else(|| self.journal.as_ref().and_then(|j| j.run.project.clone()))
    }

    pub fn model(&self, containers: ContainerView, now: SystemTime) -> Model {
        Model {
            journal: self.journal.clone(),
            note: self.note.clone(),
            activity: self.history.entries().to_vec(),
            containers,
            now,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Containers

/// CPU % and memory by container id.
type Usage = HashMap<String, (Option<f64>, Option<u64>)>;

/// CPU % and memory in use (less the page cache, as `docker stats` counts it).
fn usage_of(s: &bollard::models::ContainerStatsResponse) -> (Option<f64>, Option<u64>) {
    let total = |c: Option<&bollard::models::ContainerCpuStats>| {
        c.and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
    };
    let system =
        |c: Option<&bollard::models::ContainerCpuStats>| c.and_then(|c| c.system_cpu_usage);
    let (cpu, pre) = (s.cpu_stats.as_ref(), s.precpu_stats.as_ref());
    let cpus = cpu.and_then(|c| c.online_cpus).unwrap_or(1).max(1) as f64;
    let cpu_percent = match (total(cpu), total(pre), system(cpu), system(pre)) {
        (Some(t), Some(tp), Some(sy), Some(syp)) if sy > syp => {
            Some(t.saturating_sub(tp) as f64 / (sy - syp) as f64 * cpus * 100.0)
        }
        _ => None,
    };
    let mem = s.memory_stats.as_ref().and_then(|m| {
        let used = m.usage?;
        let cache = m.stats.as_ref().and_then(|st| {
            st.get("inactive_file")
                .or_else(|| st.get("total_inactive_file"))
                .copied()
        });
        Some(used.saturating_sub(cache.unwrap_or(0)))
    });
    (cpu_percent, mem)
}

async fn stats_of(docker: &bollard::Docker, id: &str) -> Option<(Option<f64>, Option<u64>)> {
    use futures_util::StreamExt;
    let mut st = docker.stats(
        id,
        Some(bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: false,
        }),
    );
    let s = tokio::time::timeout(Duration::from_secs(5), st.next())
        .await
        .ok()??
        .ok()?;
    Some(usage_of(&s))
}

/// Usage of `ids`, all at once (each takes the engine about a second to sample).
async fn usage_all(docker: &bollard::Docker, ids: Vec<String>) -> Usage {
    let asks = ids.into_iter().map(|id| async move {
        let u = stats_of(docker, &id).await;
        (id, u)
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|(id, u)| u.map(|u| (id, u)))
        .collect()
}

fn rows_of(cs: Vec<crate::docker::Container>, usage: &Usage) -> Vec<ContainerRow> {
    cs.into_iter()
        .map(|c| {
            let u = usage.get(&c.id).filter(|_| c.state == "running");
            ContainerRow {
                cpu_percent: u.and_then(|u| u.0),
                mem_bytes: u.and_then(|u| u.1),
                service: if c.service.is_empty() {
                    c.name.clone()
                } else {
                    c.service
                },
                name: c.name,
                state: c.state,
                health: c.health,
                restarts: c.restarts,
                uptime_s: c.uptime_s,
            }
        })
        .collect()
}

fn filter_of(project: &Option<String>) -> crate::docker::Filter {
    crate::docker::Filter {
        project: project.clone(),
        all: true,
        ..Default::default()
    }
}

/// One look at the containers of `project` with their usage (for `--once`).
pub async fn containers_once(project: Option<String>) -> ContainerView {
    let Some(project) = project else {
        return ContainerView::Unavailable(
            "the run names no compose project; pass --project NAME".into(),
        );
    };
    let docker = match crate::docker::connect().await {
        Ok(d) => d,
        Err(e) => return ContainerView::Unavailable(e),
    };
    let mut cs = match crate::docker::list(&docker, &filter_of(&Some(project))).await {
        Ok(cs) => cs,
        Err(e) => return ContainerView::Unavailable(e),
    };
    let ids: Vec<String> = cs.iter().map(|c| c.id.clone()).collect();
    let details = crate::docker::details(&docker, &ids).await;
    for c in &mut cs {
        if let Some(d) = details.get(&c.id).or_else(|| {
            details
                .iter()
                .find(|(k, _)| k.starts_with(&c.id))
                .map(|(_, d)| d)
        }) {
            d.apply(c);
        }
    }
    let running: Vec<String> = cs
        .iter()
        .filter(|c| c.state == "running")
        .map(|c| c.id.clone())
        .collect();
    let usage = usage_all(&docker, running).await;
    ContainerView::Rows(rows_of(cs, &usage))
}

/// Keeps a [`ContainerView`] current in the background: the event-fed container table
/// every second, usage every few seconds. Readers never wait on the engine.
#[derive(Clone)]
pub struct DockerFeed {
    view: Arc<Mutex<ContainerView>>,
    project: Arc<Mutex<Option<String>>>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DockerFeed {
    pub fn start(handle: &tokio::runtime::Handle) -> DockerFeed {
        let feed = DockerFeed {
            view: Arc::new(Mutex::new(ContainerView::Waiting)),
            project: Arc::new(Mutex::new(None)),
        };
        let f = feed.clone();
        handle.spawn(async move { f.follow().await });
        feed
    }

    /// Which compose project to show (the run's, once its journal is read).
    pub fn set_project(&self, p: Option<String>) {
        *guard(&self.project) = p;
    }

    pub fn view(&self) -> ContainerView {
        guard(&self.view).clone()
    }

    fn set(&self, v: ContainerView) {
        *guard(&self.view) = v;
    }

    async fn follow(self) {
        let docker = loop {
            match crate::docker::connect().await {
                Ok(d) => break d,
                Err(e) => {
                    self.set(ContainerView::Unavailable(e));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        };
        let table =
            crate::docker::table::Table::start(&tokio::runtime::Handle::current(), docker.clone());
        let usage: Arc<Mutex<Usage>> = Default::default();
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            let project = guard(&self.project).clone();
            if project.is_none() {
                self.set(ContainerView::Unavailable(
                    "no compose project yet (the run names none; pass --project NAME)".into(),
                ));
            } else {
                match table.query(&docker, &filter_of(&project)).await {
                    Ok(cs) => {
                        let running: Vec<String> = cs
                            .iter()
                            .filter(|c| c.state == "running")
                            .map(|c| c.id.clone())
                            .collect();
                        self.set(ContainerView::Rows(rows_of(cs, &guard(&usage))));
                        // One usage sample at a time; the next starts 2 s after it ends.
                        if !sampling.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            let (d, u, s) = (docker.clone(), usage.clone(), sampling.clone());
                            tokio::spawn(async move {
                                let fresh = usage_all(&d, running).await;
                                *guard(&u) = fresh;
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                s.store(false, std::sync::atomic::Ordering::SeqCst);
                            });
                        }
                    }
                    Err(e) => self.set(ContainerView::Unavailable(e)),
                }
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running it

/// What `dockhand monitor` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    pub run: Option<String>,
    pub project: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, MonitorError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `--once`: the dashboard as text. Returns it and the exit code (module docs).
pub fn once(opts: &Options) -> Result<(String, i32), MonitorError> {
    let mut src = JournalSource::new(&opts.root, opts.run.as_deref(), opts.project.as_deref());
    src.poll()?;
    if src.run.is_none() {
        return Err(MonitorError::NoRun(opts.root.join(STATE_DIR)));
    }
    // Writes are atomic renames, but a journal edited by hand may be caught half-saved:
    // try again briefly before giving up.
    for _ in 0..5 {
        if src.journal.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        src.poll()?;
    }
    if src.journal.is_none() {
        return Err(MonitorError::Journal {
            path: src.path().unwrap_or_default(),
            msg: src.note.clone().unwrap_or_else(|| "cannot be read".into()),
        });
    }
    let rt = runtime()?;
    let containers = rt.block_on(containers_once(src.project()));
    rt.shutdown_background();
    let m = src.model(containers, SystemTime::now());
    Ok((render_text(&m), m.exit_code()))
}

/// Puts the terminal back however the monitor ends (ratatui's panic hook covers panics).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// The live dashboard, until `q`, Esc or Ctrl-C.
pub fn live(opts: &Options) -> Result<(), MonitorError> {
    let mut src = JournalSource::new(&opts.root, opts.run.as_deref(), opts.project.as_deref());
    src.poll()?;
    let rt = runtime()?;
    let feed = DockerFeed::start(rt.handle());
    let result = (|| {
        let _guard = TerminalGuard;
        let mut terminal = ratatui::try_init()?;
        let mut last_poll = Instant::now();
        let mut last_draw: Option<Instant> = None;
        let mut shown = ContainerView::Waiting;
        let mut dirty = true;
        loop {
            if last_poll.elapsed() >= Duration::from_millis(500) {
                dirty |= src.poll()?;
                last_poll = Instant::now();
            }
            feed.set_project(src.project());
            let view = feed.view();
            if view != shown {
                shown = view;
                dirty = true;
            }
            if dirty || last_draw.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                let m = src.model(shown.clone(), SystemTime::now());
                terminal.draw(|f| render(f, &m))?;
                last_draw = Some(Instant::now());
                dirty = false;
            }
            if event::poll(Duration::from_millis(200))? {
                match event::read()? {
                    Event::Key(k) if is_quit(&k) => return Ok(()),
                    Event::Resize(..) => dirty = true,
                    _ => {}
                }
            }
        }
    })();
    rt.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    const IN_PROGRESS: &str = include_str!("../tests/fixtures/monitor/in-progress.json");
    const FINISHED: &str = include_str!("../tests/fixtures/monitor/finished-rollback.json");
    const JUST_STARTED: &str = include_str!("../tests/fixtures/monitor/just-started.json");
    const EMPTY: &str = include_str!("../tests/fixtures/monitor/empty.json");
    const TRUNCATED: &str = include_str!("../tests/fixtures/monitor/truncated.json");

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn model(text: &str, containers: ContainerView) -> Model {
        let j = Journal::parse("fixture", text).unwrap();
        Model::from_journal(j, containers, at("2026-02-04T14:02:00Z"))
    }

    /// The rendered screen, one string per row.
    fn screen(m: &Model, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, m)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
            .collect()
    }

    fn has(screen: &[String], needle: &str) -> bool {
        screen.iter().any(|l| l.contains(needle))
    }

    /// The numbers on the row of a table that starts with `name`.
    fn row_numbers(screen: &[String], name: &str) -> Vec<usize> {
        let line = screen
            .iter()
            .find(|l| l.contains(&format!("│{name} ")) || l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row {name} in\n{}", screen.join("\n")));
        let after = &line[line.find(name).unwrap() + name.len()..];
        after
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect()
    }

    fn row(service: &str, health: &str) -> ContainerRow {
        ContainerRow {
            service: service.into(),
            name: format!("monfix_{service}_1"),
            state: "running".into(),
            health: health.into(),
            restarts: Some(0),
            uptime_s: Some(125),
            cpu_percent: Some(1.25),
            mem_bytes: Some(3 * 1024 * 1024 + 300 * 1024),
        }
    }

    #[test]
    fn in_progress_run_shows_progress_groups_and_categories() {
        let m = model(IN_PROGRESS, ContainerView::Waiting);
        let s = screen(&m, 150, 40);
        let all = s.join("\n");
        assert!(has(&s, "run phase1-20260204-140000"), "{all}");
        assert!(has(&s, "2/8 done (25%)"), "{all}");
        assert!(has(&s, "completed (2): weather-api, ai-core"), "{all}");
        assert!(has(&s, "sports-api (recreated)"), "{all}");
        assert!(has(&s, "ml-service (building)"), "{all}");
        assert!(has(&s, "pending (3)"), "{all}");
        // total, done, completed, failed, running, pending
        assert_eq!(row_numbers(&s, "integration"), [4, 1, 1, 0, 2, 1], "{all}");
        assert_eq!(row_numbers(&s, "ai-ml"), [3, 1, 1, 0, 1, 1], "{all}");
        assert_eq!(row_numbers(&s, "device"), [1, 0, 0, 0, 0, 1], "{all}");
        // newest activity first, with its time
        let act = s
            .iter()
            .position(|l| l.contains("14:01:31 sports-api recreated"));
        let older = s
            .iter()
            .position(|l| l.contains("14:01:12 weather-api completed"));
        assert!(act.is_some() && older.is_some() && act < older, "{all}");
        assert!(has(&s, "elapsed 2m00s") || has(&s, "· 2m00s"), "{all}");
        assert!(has(&s, "connecting to Docker"), "{all}");
    }

    #[test]
    fn finished_run_shows_the_rollback_and_the_failure_with_reasons() {
        let m = model(FINISHED, ContainerView::Waiting);
        let s = screen(&m, 180, 40);
        let all = s.join("\n");
        assert!(has(&s, "5/5 done (100%)"), "{all}");
        assert!(has(&s, "3 completed, 1 rolled back, 1 failed"), "{all}");
        assert!(has(&s, "rolled back (1)"), "{all}");
        assert!(
            has(
                &s,
                "sports-api: not healthy within 60s (health_timeout_s); Docker health: unhealthy"
            ),
            "{all}"
        );
        assert!(has(&s, "energy-forecasting: build failed:"), "{all}");
        assert!(
            has(&s, "failed · 3m05s"),
            "run status and its wall time: {all}"
        );
        assert_eq!(row_numbers(&s, "integration"), [3, 3, 2, 1, 0, 0], "{all}");
        assert_eq!(row_numbers(&s, "analytics"), [2, 2, 1, 1, 0, 0], "{all}");
        assert_eq!(m.exit_code(), 1);
        assert_eq!(model(IN_PROGRESS, ContainerView::Waiting).exit_code(), 0);
    }

    #[test]
    fn container_panel_shows_the_runs_containers_or_why_not() {
        let rows = vec![
            row("weather-api", "healthy"),
            row("sports-api", "starting"),
            row("influxdb", "healthy"),
        ];
        let m = model(FINISHED, ContainerView::Rows(rows));
        let s = screen(&m, 180, 40);
        let all = s.join("\n");
        if std::env::var("SHOW_SCREEN").is_ok() {
            println!("{all}");
        }
        assert!(has(&s, "weather-api"), "{all}");
        let line = s
            .iter()
            .find(|l| l.contains("monfix_sports-api_1"))
            .unwrap();
        for cell in ["starting", "2m05s", "1.2", "3.3 MiB"] {
            assert!(line.contains(cell), "{cell} missing in {line}");
        }
        assert!(!has(&s, "influxdb"), "not one of the run's services: {all}");

        let m = model(
            FINISHED,
            ContainerView::Unavailable("cannot reach Docker at unix:///nowhere".into()),
        );
        let s = screen(&m, 180, 40);
        assert!(
            has(&s, "Docker unavailable: cannot reach Docker"),
            "{}",
            s.join("\n")
        );
        // the journal panels still work
        assert!(has(&s, "5/5 done"));
    }

    #[test]
    fn empty_and_just_started_journals_render() {
        let m = model(EMPTY, ContainerView::Rows(vec![]));
        let s = screen(&m, 120, 30);
        assert!(has(&s, "0/0 done (0%)"), "{}", s.join("\n"));
        let m = model(JUST_STARTED, ContainerView::Rows(vec![]));
        let s = screen(&m, 120, 30);
        assert!(has(&s, "0/2 done (0%)"), "{}", s.join("\n"));
        assert!(has(&s, "pending (2): weather-api, sports-api"));
        assert!(has(&s, "started phase1-20260204-160000"));
        // no journal at all: the reason is shown
        let m = Model {
            journal: None,
            note: Some("no rebuild run found in x".into()),
            activity: vec![],
            containers: ContainerView::Waiting,
            now: SystemTime::now(),
        };
        let s = screen(&m, 120, 30);
        assert!(has(&s, "no rebuild run found in x"));
        assert_eq!(m.exit_code(), 2);
        // a tiny terminal does not panic
        screen(&model(FINISHED, ContainerView::Waiting), 20, 5);
    }

    #[test]
    fn a_truncated_journal_is_an_error_naming_the_place() {
        let e = Journal::parse("x", TRUNCATED).unwrap_err();
        assert!(e.contains("not valid JSON (line"), "{e}");
        let e = Journal::parse("x", "{\"version\": 1}").unwrap_err();
        assert!(e.contains("records"), "{e}");
    }

    #[test]
    fn text_mode_has_the_same_information_and_no_control_codes() {
        let rows = vec![row("weather-api", "healthy")];
        let t = render_text(&model(FINISHED, ContainerView::Rows(rows)));
        assert!(!t.contains('\x1b'), "{t}");
        assert!(t.contains("5/5 done (100%)"), "{t}");
        assert!(t.contains("    energy-forecasting: build failed:"), "{t}");
        assert!(
            t.contains("  analytics    2      2     1          1"),
            "{t}"
        );
        assert!(t.contains("15:02:55  sports-api"), "{t}");
        assert!(t.contains("monfix_weather-api_1  healthy"), "{t}");
        assert!(
            t.lines().all(|l| l == l.trim_end()),
            "trailing spaces:\n{t}"
        );
    }

    #[test]
    fn quit_keys() {
        let key = |c, m| KeyEvent::new(c, m);
        assert!(is_quit(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_quit(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_quit(&key(KeyCode::Char('x'), KeyModifiers::NONE)));
        let mut release = key(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert!(!is_quit(&release));
    }

    fn write_journal(dir: &Path, name: &str, records: Value) {
        let doc = serde_json::json!({ "version": 1, "name": name, "records": records });
        let p = dir.join(STATE_DIR);
        std::fs::create_dir_all(&p).unwrap();
        // as state:: does: a temporary file renamed over the journal
        let tmp = p.join(format!(".{name}.json.tmp-test"));
        std::fs::write(&tmp, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        std::fs::rename(tmp, p.join(format!("{name}.json"))).unwrap();
    }

    #[test]
    fn the_last_run_comes_from_the_fleet_journals() {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        assert_eq!(resolve_run(root, None, None).unwrap(), None);
        write_journal(
            root,
            "fleet-a",
            serde_json::json!({ "last": { "run": "run-a", "started_at": "2026-02-04T10:00:00.000Z" } }),
        );
        write_journal(
            root,
            "fleet-b",
            serde_json::json!({ "last": { "run": "run-b", "started_at": "2026-02-04T11:00:00.000Z" } }),
        );
        assert_eq!(
            resolve_run(root, None, None).unwrap().as_deref(),
            Some("run-b")
        );
        assert_eq!(
            resolve_run(root, None, Some("a")).unwrap().as_deref(),
            Some("run-a")
        );
        assert_eq!(resolve_run(root, None, Some("c")).unwrap(), None);
        assert_eq!(
            resolve_run(root, Some("given"), Some("a"))
                .unwrap()
                .as_deref(),
            Some("given")
        );
        assert!(matches!(
            resolve_run(root, Some("../etc/passwd"), None),
            Err(MonitorError::BadRun(_))
        ));
    }

    #[test]
    fn a_running_run_whose_process_is_gone_shows_as_interrupted() {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        let journal = serde_json::json!({
            "_run": { "run": "r1", "project": "p", "services": ["svc"], "status": "running" },
            "svc": { "service": "svc", "category": "c", "phase": "building", "status": "in-progress" },
        });
        write_journal(root, "r1", journal);
        let lock = root.join(STATE_DIR).join("r1.lock");
        // Held by a live process (this test): still running.
        std::fs::write(
            &lock,
            format!("pid {}, started x, command: t\n", std::process::id()),
        )
        .unwrap();
        let mut src = JournalSource::new(root, Some("r1"), None);
        src.poll().unwrap();
        assert_eq!(src.journal().unwrap().run.status, "running");
        // The holder died (a pid that cannot exist): interrupted, on the next poll even
        // though the journal did not change.
        std::fs::write(&lock, "pid 4294967, started x, command: t\n").unwrap();
        assert!(src.poll().unwrap(), "the status change is a change");
        assert_eq!(src.journal().unwrap().run.status, INTERRUPTED);
        // No lock file: nothing can be told, the journal's word stands.
        assert_eq!(run_process_alive(root, "nope"), None);
    }

    #[test]
    fn a_source_follows_changes_keeps_history_and_survives_a_bad_read() {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        let mut src = JournalSource::new(root, None, Some("p"));
        assert!(src.poll().unwrap(), "the 'no run' note is a change");
        assert!(src.journal().is_none());
        write_journal(
            root,
            "fleet-p",
            serde_json::json!({ "last": { "run": "r1", "started_at": "2026-02-04T10:00:00.000Z" } }),
        );
        let rec = |phase: &str, status: &str, t: &str| {
            serde_json::json!({
                "_run": { "run": "r1", "project": "p", "services": ["svc"], "status": "running",
                          "started_at": "2026-02-04T10:00:00.000Z" },
                "svc": { "service": "svc", "category": "c", "phase": phase, "status": status,
                         "updated_at": t },
            })
        };
        write_journal(
            root,
            "r1",
            rec("building", "in-progress", "2026-02-04T10:00:01.000Z"),
        );
        assert!(src.poll().unwrap());
        assert_eq!(src.project().as_deref(), Some("p"));
        assert!(!src.poll().unwrap(), "unchanged file, no change");
        write_journal(
            root,
            "r1",
            rec("built", "in-progress", "2026-02-04T10:00:05.000Z"),
        );
        assert!(src.poll().unwrap());
        // a half-written file (a hand edit): the last good copy stays, with a note
        std::fs::write(root.join(STATE_DIR).join("r1.json"), "{\"records\": {").unwrap();
        assert!(src.poll().unwrap());
        let m = src.model(ContainerView::Waiting, SystemTime::now());
        assert!(m.note.as_deref().unwrap().contains("not valid JSON"));
        assert_eq!(m.journal.as_ref().unwrap().services[0].phase, "built");
        write_journal(
            root,
            "r1",
            rec("completed", "completed", "2026-02-04T10:00:09.000Z"),
        );
        assert!(src.poll().unwrap());
        let m = src.model(ContainerView::Waiting, SystemTime::now());
        assert!(m.note.is_none());
        let phases: Vec<&str> = m.activity.iter().map(|a| a.phase.as_str()).collect();
        assert_eq!(phases, ["completed", "built", "building", "started"]);
        assert_eq!(m.journal.unwrap().counts().completed, 1);
    }
}
