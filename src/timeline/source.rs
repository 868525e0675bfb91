//! Reading run journals for the timeline: one run by id ([`load`]), and the runs a
//! playbook run touched ([`runs_since`]) so `dockhand run --trace FILE` can write the
//! trace of whatever rebuild the playbook ran without knowing its id in advance.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use super::{Timeline, TimelineError};
use crate::journal::STATE_DIR;

fn read(path: &Path) -> Result<Value, TimelineError> {
    let text = std::fs::read_to_string(path).map_err(|source| TimelineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| TimelineError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
    })
}

/// The journal file of `run` under the workspace `root`.
pub fn journal_path(root: &Path, run: &str) -> PathBuf {
    root.join(STATE_DIR).join(format!("{run}.json"))
}

/// The timeline of `run`'s journal; a service in flight ends at `now` when given, else at
/// the journal's last write.
pub fn load(root: &Path, run: &str, now: Option<SystemTime>) -> Result<Timeline, TimelineError> {
    load_at(root, run, now).map(|(t, _)| t)
}

/// The finished timeline of `run` and its journal document (the OTLP export reads fields
/// the timeline does not keep, such as image ids).
pub fn load_with_doc(root: &Path, run: &str) -> Result<(Timeline, Value), TimelineError> {
    load_at(root, run, None)
}

fn load_at(
    root: &Path,
    run: &str,
    now: Option<SystemTime>,
) -> Result<(Timeline, Value), TimelineError> {
    let path = journal_path(root, run);
    let doc = read(&path)?;
    match Timeline::from_journal(run, &doc, now) {
        Some(t) => Ok((t, doc)),
        None => Err(TimelineError::NotJournal(path)),
    }
}

/// The run journals (files with a `_run` record) written at or after `since`, oldest run
/// first. Fleet lock journals and other state files are not runs and are left out.
pub fn runs_since(root: &Path, since: SystemTime) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root.join(STATE_DIR)) else {
        return Vec::new();
    };
    let mut runs = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let fresh = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= since);
        if stem.starts_with('.') || stem.starts_with("fleet-") || !fresh {
            continue;
        }
        let Ok(v) = read(&e.path()) else { continue };
        if let Some(m) = v.get("records").and_then(|r| r.get("_run")) {
            let at = m.get("started_at").and_then(Value::as_str).unwrap_or("");
            runs.push((at.to_string(), stem.to_string()));
        }
    }
    runs.sort();
    runs.into_iter().map(|(_, r)| r).collect()
}

/// Writes the Chrome trace of every run journal written since `since` to `out` (see
/// [`super::trace`]). Returns the runs it holds; none is not an error (the playbook ran
/// no rebuild), the file then holds an empty trace.
pub fn write_trace_since(
    root: &Path,
    since: SystemTime,
    out: &Path,
) -> Result<Vec<String>, TimelineError> {
    let runs = runs_since(root, since);
    let timelines = runs
        .iter()
        .map(|r| load(root, r, None))
        .collect::<Result<Vec<_>, _>>()?;
    let doc = super::trace::chrome_trace(&timelines);
    let text = serde_json::to_string(&doc).unwrap_or_default();
    std::fs::write(out, text).map_err(|source| TimelineError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(runs)
}

/// `dockhand run --trace FILE`: the Chrome / Perfetto trace of the rebuild runs a playbook
/// ran. The playbook names its run itself (or resumes one), so the CLI cannot know the id in
/// advance; instead every run journal written while the playbook ran goes in, one process
/// each. The CLI calls [`TraceOnExit::write`] when the run ends however it ends (failure,
/// timeout, Ctrl-C); a trace that cannot be written is a warning, never another exit code.
#[derive(Debug)]
pub struct TraceOnExit {
    root: PathBuf,
    since: SystemTime,
    path: PathBuf,
}

impl TraceOnExit {
    /// Starts the clock for a run in workspace `root` whose trace goes to `path`.
    pub fn start(root: PathBuf, path: PathBuf) -> TraceOnExit {
        TraceOnExit {
            root,
            // A journal's mtime has the file system's granularity: start a little early.
            since: SystemTime::now() - std::time::Duration::from_secs(1),
            path,
        }
    }

    /// Writes the trace; problems are logged as warnings.
    pub fn write(self) {
        match write_trace_since(&self.root, self.since, &self.path) {
            Ok(runs) if runs.is_empty() => tracing::warn!(
                "--trace: the playbook wrote no rebuild journal; {} holds an empty trace",
                self.path.display()
            ),
            Ok(runs) => tracing::info!(
                "wrote the trace of run {} to {} (open it in ui.perfetto.dev)",
                runs.join(", "),
                self.path.display()
            ),
            Err(e) => tracing::warn!("--trace: {e}"),
        }
    }
}
