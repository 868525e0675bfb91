//! Finding and following a workspace's run journal: which run to show ([`resolve_run`]),
//! re-reading its journal only when it changes ([`JournalSource`]), and telling a live run
//! from one whose process is gone ([`run_process_alive`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use super::MonitorError;
use super::journal::Journal;
use super::model::{ContainerView, History, Model};
use crate::journal::STATE_DIR;

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
    pub(super) run: Option<String>,
    signature: Option<(SystemTime, u64, u64)>,
    pub(super) journal: Option<Journal>,
    pub(super) note: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            m.journal.as_ref().unwrap().services[0].phase.to_string(),
            "built"
        );
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
