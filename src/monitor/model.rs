//! What one frame of the dashboard shows ([`Model`]), and the phase history a live monitor
//! gathers between journal reads ([`History`]). Plain data: the text and TUI renderers draw
//! it, the journal source and the Docker feed fill it.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use super::journal::{Journal, Phase, Recorded, ServiceRec, Status};
use crate::util::human;

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
    match s.phase {
        Recorded::Known(Phase::Completed) if s.unchanged => "image unchanged".into(),
        Recorded::Known(Phase::Completed) => {
            let mut d = Vec::new();
            if let Some(b) = s.build_s {
                d.push(format!("built in {b:.1}s"));
            }
            if let Some(h) = s.healthy_ms {
                d.push(format!("healthy in {h:.0} ms"));
            }
            if !s.phase_ms.is_empty() {
                let phases: Vec<String> = s
                    .phase_ms
                    .iter()
                    .map(|(p, ms)| {
                        format!(
                            "{} {}",
                            p.replace('_', " "),
                            crate::util::human::duration(std::time::Duration::from_millis(
                                *ms as u64
                            ))
                        )
                    })
                    .collect();
                d.push(format!("[{}]", phases.join(" · ")));
            }
            d.join(", ")
        }
        Recorded::Known(Phase::Built) => {
            s.build_s.map(|b| format!("in {b:.1}s")).unwrap_or_default()
        }
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
            let now = (s.phase.to_string(), s.reason.clone());
            if self.last.get(&s.name) == Some(&now) {
                continue;
            }
            self.last.insert(s.name.clone(), now);
            // Everything starts pending: only a pending with a reason (blocked) is news.
            if s.status.is(Status::Pending) && s.reason.is_none() {
                continue;
            }
            self.entries.push(Activity {
                at: at.clone(),
                service: s.name.clone(),
                phase: s.phase.to_string(),
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
    /// For a Swarm service: the task this row is (then `restarts` counts the tasks Swarm
    /// replaced in its slot, and `state` is the task's current state).
    pub task: Option<TaskCell>,
}

/// One current Swarm task of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCell {
    pub slot: i64,
    /// The node's host name (its id when the node list was not readable).
    pub node: String,
    /// What Swarm wants (running, shutdown) and what it is (running, starting, failed…).
    pub desired: String,
    pub current: String,
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
        Some(human::secs_short(
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

/// Journals and rows the renderer tests share.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    pub const IN_PROGRESS: &str = include_str!("../../tests/fixtures/monitor/in-progress.json");
    pub const FINISHED: &str = include_str!("../../tests/fixtures/monitor/finished-rollback.json");
    pub const JUST_STARTED: &str = include_str!("../../tests/fixtures/monitor/just-started.json");
    pub const EMPTY: &str = include_str!("../../tests/fixtures/monitor/empty.json");
    pub const TRUNCATED: &str = include_str!("../../tests/fixtures/monitor/truncated.json");

    pub fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    pub fn model(text: &str, containers: ContainerView) -> Model {
        let j = Journal::parse("fixture", text).unwrap();
        Model::from_journal(j, containers, at("2026-02-04T14:02:00Z"))
    }

    pub fn row(service: &str, health: &str) -> ContainerRow {
        ContainerRow {
            service: service.into(),
            name: format!("monfix_{service}_1"),
            state: "running".into(),
            health: health.into(),
            restarts: Some(0),
            uptime_s: Some(125),
            cpu_percent: Some(1.25),
            mem_bytes: Some(3 * 1024 * 1024 + 300 * 1024),
            task: None,
        }
    }
}
