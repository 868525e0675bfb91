//! Watch mode: run a playbook, then run it again whenever one of its files is saved.
//!
//! [`Watch`] is the library behind `dockhand watch`; an embedder drives it the same way:
//!
//! ```no_run
//! use dockhand::watch::{Watch, WatchEvent, WatchOptions};
//! let rt = dockhand::Runtime::builder().root(".").build()?;
//! let watch = Watch::new(&rt, WatchOptions::new("runbook.rhai"));
//! let stop = watch.stopper(); // call stop.stop() from anywhere to end the loop
//! # drop(stop);
//! let history = watch.run(|event| {
//!     if let WatchEvent::Finished { record, .. } = event {
//!         println!("run {}: {:?} in {} ms", record.run, record.status, record.duration_ms);
//!     }
//! })?;
//! # Ok::<(), dockhand::Error>(())
//! ```
//!
//! What is watched, and why it is done this way:
//!
//! * **Exactly the files the last run used**: the playbook, every module file it imported
//!   (as the resolver found them on disk — the resolver's module cache is reset before each
//!   run, so an edited module is always read again), and the files named by *file
//!   parameters* (`config` by default: the `--config services.yaml` every fleet playbook
//!   takes, or its declared default). A run that fails before it could import everything
//!   (a syntax error) keeps the previous set, so fixing a broken module is still seen.
//! * **Parent directories, filtered by path.** Editors rarely write a file in place: vim
//!   renames the original to a backup and writes a new file, others write a temporary file
//!   and rename it over the original, some delete and create. A watch on the file itself
//!   (an inode) dies with the first such save; a watch on its directory sees every variant
//!   as an event naming the file's path. Events for other files in those directories are
//!   ignored. A watched directory that is itself removed or renamed is watched again as
//!   soon as it exists again (checked on every event and after every run).
//! * **A short debounce** ([`DEFAULT_DEBOUNCE`], 30 ms): one save is several events (vim:
//!   rename, create, write, chmod, within a few ms), and a run started on the first of them
//!   could read a truncated file. 30 ms is well above the spread of one save's events on a
//!   local disk and leaves most of the 100 ms budget (save → new run started) for the
//!   debouncer's tick (a quarter of the timeout) and for compiling the playbook.
//! * **A run in progress is cancelled, then awaited**, before the next one starts: the
//!   runtime's cancellation ([`Runtime::cancel_handle`]) stops a blocked host call or a busy
//!   loop within milliseconds, and waiting for the script thread to return means the
//!   journal of the cancelled run is closed (its lock released) and never written again
//!   behind the new run's back. Journal writes are atomic (temp file + rename), so a
//!   cancelled run leaves the previous or the next version, never half a file.
//! * **`every`**: the playbook also runs on a schedule, each run starting `every` after the
//!   start of the previous one (at once if the previous one took longer). A save during the
//!   wait runs it **at once** with the new text, and the schedule continues from that run.
//!   Every run compiles the playbook afresh, so a periodic runbook is hot-reloaded.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use rhai::Map;
use serde::Serialize;

use crate::cancel::CancelReason;
use crate::error::{Error, Result};
use crate::runtime::{RunOutcome, Runtime, Script};

/// How long the debouncer waits for a file's events to settle (see the module docs).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(30);

/// How often a cancellation is repeated until the cancelled run returns. A run that was
/// still compiling when it was cancelled starts with a fresh cancellation token; repeating
/// the cancel stops it as soon as it runs.
const CANCEL_RETRY: Duration = Duration::from_millis(20);

/// Computes the parameter values for a freshly compiled playbook. Called before every run,
/// because a saved playbook may declare different parameters (the CLI parses the command
/// line again against the new declaration).
pub type ValuesFn = dyn Fn(&Script) -> Result<Map> + Send + Sync;

/// What to watch and how.
pub struct WatchOptions {
    /// The playbook to run.
    pub playbook: PathBuf,
    /// Parameter values for each run (default: none, every parameter takes its default).
    pub values: Box<ValuesFn>,
    /// Parameters whose value (given, or declared default) is a file to watch, relative to
    /// the workspace root like `config::load`'s argument. Default: `["config"]`.
    pub file_params: Vec<String>,
    /// More files to watch.
    pub extra_files: Vec<PathBuf>,
    /// Also run periodically.
    pub every: Option<Duration>,
    /// Debounce timeout (see [`DEFAULT_DEBOUNCE`]).
    pub debounce: Duration,
}

impl WatchOptions {
    pub fn new(playbook: impl Into<PathBuf>) -> Self {
        Self {
            playbook: playbook.into(),
            values: Box::new(|_| Ok(Map::new())),
            file_params: vec!["config".into()],
            extra_files: Vec::new(),
            every: None,
            debounce: DEFAULT_DEBOUNCE,
        }
    }
}

/// Why a run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "trigger", rename_all = "kebab-case")]
pub enum Trigger {
    /// The first run.
    Start,
    /// A watched file changed (path relative to the workspace root).
    Change { file: String },
    /// The `every` schedule.
    Every,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Start => write!(f, "start"),
            Trigger::Change { file } => write!(f, "change of {file}"),
            Trigger::Every => write!(f, "every"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Ran to the end, every check passed (exit code 0).
    Pass,
    /// A check or step failed, or `--timeout` expired (exit code 1).
    Fail,
    /// Did not compile, bad parameters, script error (exit code 2).
    Error,
    /// Cancelled by a save or by stopping the watch (exit code 130).
    Cancelled,
}

/// One line of the run history.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// 1, 2, 3, ...
    pub run: u64,
    #[serde(flatten)]
    pub trigger: Trigger,
    pub status: RunStatus,
    /// The exit code `dockhand run` would have given.
    pub exit_code: i32,
    /// RFC 3339.
    pub started_at: String,
    /// Compile + run, wall time.
    pub duration_ms: u64,
}

/// What [`Watch::run`] reports, in order, to its callback.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// A run is about to compile and start.
    Started { run: u64, trigger: &'a Trigger },
    /// A run ended; `history` includes it.
    Finished {
        record: &'a RunRecord,
        result: &'a Result<RunOutcome>,
        history: &'a [RunRecord],
    },
    /// The set of watched files changed (absolute paths).
    Watching { files: &'a [PathBuf] },
    /// The file watcher reported a problem (a directory that cannot be watched, lost events).
    Warning { message: String },
}

enum Msg {
    Fs(Vec<PathBuf>),
    FsError(String),
    Done {
        result: Result<RunOutcome>,
        files: Vec<PathBuf>,
    },
    Stop,
}

/// Ends a [`Watch`] from another thread (or a signal handler task): the run in progress is
/// cancelled and awaited, then [`Watch::run`] returns.
#[derive(Clone)]
pub struct Stopper(Sender<Msg>);

impl Stopper {
    pub fn stop(&self) {
        let _ = self.0.send(Msg::Stop);
    }
}

/// A watch loop over one playbook; see the module docs.
pub struct Watch<'rt> {
    rt: &'rt Runtime,
    opts: WatchOptions,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

impl<'rt> Watch<'rt> {
    pub fn new(rt: &'rt Runtime, opts: WatchOptions) -> Self {
        let (tx, rx) = mpsc::channel();
        Self { rt, opts, tx, rx }
    }

    pub fn stopper(&self) -> Stopper {
        Stopper(self.tx.clone())
    }

    /// Runs the playbook, then again on every change, until stopped. Returns the history.
    /// Errors only when the file watcher cannot be set up; a failing run is an event.
    pub fn run(self, on_event: impl FnMut(WatchEvent<'_>)) -> Result<Vec<RunRecord>> {
        let Watch { rt, opts, tx, rx } = self;
        let debouncer = file_watcher(opts.debounce, tx.clone())?;
        let opts = &opts;
        let mut l = Looper::new(rt, opts, debouncer, on_event);
        std::thread::scope(|s| {
            loop {
                if l.running.is_none() {
                    if l.stopping {
                        break;
                    }
                    if let Some(trigger) = l.pending.take() {
                        l.start(trigger);
                        let done = tx.clone();
                        s.spawn(move || {
                            let (result, files) = run_once(rt, opts);
                            let _ = done.send(Msg::Done { result, files });
                        });
                    }
                }
                let Some(msg) = l.next_msg(&rx) else { break };
                l.handle(msg);
            }
        });
        let Looper {
            debouncer, history, ..
        } = l;
        debouncer.stop();
        Ok(history)
    }
}

type FsWatcher = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

/// A file watcher that sends content changes (and its errors) to the loop.
fn file_watcher(debounce: Duration, tx: Sender<Msg>) -> Result<FsWatcher> {
    new_debouncer(debounce, None, move |res: DebounceEventResult| {
        let msg = match res {
            Ok(events) => Msg::Fs(
                events
                    .into_iter()
                    .filter(|e| changes_content(&e.event.kind))
                    .flat_map(|e| e.event.paths)
                    .collect(),
            ),
            Err(errors) => Msg::FsError(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        let _ = tx.send(msg);
    })
    .map_err(|e| Error::Internal(format!("cannot start the file watcher: {e}")))
}

/// The run in progress.
struct Running {
    run: u64,
    trigger: Trigger,
    started: Instant,
    started_at: SystemTime,
}

/// The watch loop's state between two messages.
struct Looper<'a, F: FnMut(WatchEvent<'_>)> {
    rt: &'a Runtime,
    opts: &'a WatchOptions,
    root: PathBuf,
    /// The playbook and the extra files: always watched.
    fixed: BTreeSet<PathBuf>,
    watched: BTreeSet<PathBuf>,
    dirs: Dirs,
    debouncer: FsWatcher,
    on_event: F,
    history: Vec<RunRecord>,
    pending: Option<Trigger>,
    running: Option<Running>,
    cancelling: bool,
    stopping: bool,
    next_tick: Option<Instant>,
    number: u64,
}

impl<'a, F: FnMut(WatchEvent<'_>)> Looper<'a, F> {
    fn new(rt: &'a Runtime, opts: &'a WatchOptions, debouncer: FsWatcher, on_event: F) -> Self {
        let fixed: BTreeSet<PathBuf> = std::iter::once(absolute(&opts.playbook))
            .chain(opts.extra_files.iter().map(|f| absolute(f)))
            .collect();
        let mut l = Looper {
            rt,
            opts,
            root: rt.host().root.clone(),
            watched: fixed.clone(),
            fixed,
            dirs: Dirs::default(),
            debouncer,
            on_event,
            history: Vec::new(),
            pending: Some(Trigger::Start),
            running: None,
            cancelling: false,
            stopping: false,
            next_tick: None,
            number: 0,
        };
        l.dirs.sync(&mut l.debouncer, &l.watched, &mut l.on_event);
        (l.on_event)(WatchEvent::Watching {
            files: &l.watched.iter().cloned().collect::<Vec<_>>(),
        });
        l
    }

    /// Records that a run for `trigger` starts (the caller spawns it).
    fn start(&mut self, trigger: Trigger) {
        self.number += 1;
        (self.on_event)(WatchEvent::Started {
            run: self.number,
            trigger: &trigger,
        });
        self.running = Some(Running {
            run: self.number,
            trigger,
            started: Instant::now(),
            started_at: SystemTime::now(),
        });
        self.cancelling = false;
        self.next_tick = None;
    }

    /// The next message; `Some(None)` when a wait ran out (a cancellation to repeat, or the
    /// `every` schedule); `None` when every sender is gone.
    fn next_msg(&self, rx: &Receiver<Msg>) -> Option<Option<Msg>> {
        let wait = if self.running.is_some() {
            self.cancelling.then_some(CANCEL_RETRY)
        } else {
            self.next_tick
                .map(|t| t.saturating_duration_since(Instant::now()))
        };
        match wait {
            Some(d) => match rx.recv_timeout(d) {
                Ok(m) => Some(Some(m)),
                Err(RecvTimeoutError::Timeout) => Some(None),
                Err(RecvTimeoutError::Disconnected) => None,
            },
            None => rx.recv().ok().map(Some),
        }
    }

    fn handle(&mut self, msg: Option<Msg>) {
        match msg {
            None => {
                if self.running.is_some() {
                    self.rt.cancel_handle().cancel(CancelReason::Interrupted);
                } else if self.next_tick.is_some_and(|t| t <= Instant::now()) {
                    self.pending = Some(Trigger::Every);
                }
            }
            Some(Msg::Fs(paths)) => self.changed(paths),
            Some(Msg::FsError(message)) => (self.on_event)(WatchEvent::Warning {
                message: format!("file watcher: {message}"),
            }),
            Some(Msg::Stop) => {
                self.stopping = true;
                self.pending = None;
                self.cancel_run();
            }
            Some(Msg::Done { result, files }) => self.finished(result, files),
        }
    }

    /// Cancels the run in progress, once.
    fn cancel_run(&mut self) {
        if self.running.is_some() && !self.cancelling {
            self.rt.cancel_handle().cancel(CancelReason::Interrupted);
            self.cancelling = true;
        }
    }

    fn changed(&mut self, paths: Vec<PathBuf>) {
        // A watched directory removed or renamed loses its OS watch: drop it so `sync`
        // adds it again (now, or after a later event or run).
        if paths.iter().any(|p| self.dirs.0.contains(p) && !p.is_dir()) {
            self.dirs.0.retain(|d| d.is_dir());
        }
        self.dirs
            .sync(&mut self.debouncer, &self.watched, &mut self.on_event);
        if let Some(hit) = paths.iter().find(|p| self.watched.contains(*p)) {
            self.pending = Some(Trigger::Change {
                file: crate::host::fs::display_rel(&self.root, hit),
            });
            self.cancel_run();
        }
    }

    fn finished(&mut self, result: Result<RunOutcome>, files: Vec<PathBuf>) {
        let Some(r) = self.running.take() else {
            return;
        };
        let exit_code = match &result {
            Ok(o) => o.exit_code(),
            Err(e) => e.exit_code(),
        };
        let status = match (&result, exit_code) {
            (Err(Error::Interrupted), _) => RunStatus::Cancelled,
            (_, 0) => RunStatus::Pass,
            (_, 1) => RunStatus::Fail,
            (_, 130) => RunStatus::Cancelled,
            _ => RunStatus::Error,
        };
        self.history.push(RunRecord {
            run: r.run,
            trigger: r.trigger,
            status,
            exit_code,
            started_at: humantime::format_rfc3339_millis(r.started_at).to_string(),
            duration_ms: u64::try_from(r.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        // A run that stopped early may not have reached every import: keep watching what
        // the previous run used as well.
        let mut next: BTreeSet<PathBuf> = self.fixed.clone();
        next.extend(files);
        if result.is_err() {
            next.extend(self.watched.iter().cloned());
        }
        if next != self.watched {
            self.watched = next;
            (self.on_event)(WatchEvent::Watching {
                files: &self.watched.iter().cloned().collect::<Vec<_>>(),
            });
        }
        // Watches in place before the run is reported as finished: a save made just after
        // seeing the result must be seen.
        self.dirs
            .sync(&mut self.debouncer, &self.watched, &mut self.on_event);
        if let Some(record) = self.history.last() {
            (self.on_event)(WatchEvent::Finished {
                record,
                result: &result,
                history: &self.history,
            });
        }
        if let Some(every) = self.opts.every
            && !self.stopping
        {
            self.next_tick = Some(r.started + every);
        }
    }
}

/// Compiles (modules afresh) and runs the playbook once; returns the result and the files
/// the run used.
fn run_once(rt: &Runtime, opts: &WatchOptions) -> (Result<RunOutcome>, Vec<PathBuf>) {
    rt.resolver().reset_loaded();
    let mut extra = Vec::new();
    let result = (|| {
        let script = rt.compile_file(&opts.playbook)?;
        let values = (opts.values)(&script)?;
        for name in &opts.file_params {
            let given = values
                .get(name.as_str())
                .and_then(|v| v.clone().into_immutable_string().ok())
                .map(|s| s.to_string());
            let declared = script
                .params
                .iter()
                .find(|p| &p.name == name)
                .and_then(|p| p.default.clone());
            if let Some(path) = given.or(declared)
                && let Ok(full) = crate::host::fs::resolve(&rt.host().root, &path)
            {
                extra.push(full);
            }
        }
        rt.run(&script, values)
    })();
    let mut files = rt.resolver().files();
    files.extend(extra);
    (result, files)
}

/// Whether an event can mean new file content. Not reads (each run opens the files it
/// watches: counting those would re-run forever) nor metadata-only changes (atime, chmod).
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    match kind {
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Any | EventKind::Other => true,
    }
}

/// The canonical path when the file exists, else the absolute path as given.
fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// The directories under an OS watch.
#[derive(Default)]
struct Dirs(HashSet<PathBuf>);

impl Dirs {
    /// Watches the parent directory of every file in `files` and unwatches directories no
    /// longer needed. A directory that does not exist (yet) is retried on the next sync.
    fn sync<W: notify::Watcher, C: notify_debouncer_full::FileIdCache>(
        &mut self,
        debouncer: &mut notify_debouncer_full::Debouncer<W, C>,
        files: &BTreeSet<PathBuf>,
        on_event: &mut impl FnMut(WatchEvent<'_>),
    ) {
        let wanted: HashSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for gone in self.0.difference(&wanted).cloned().collect::<Vec<_>>() {
            let _ = debouncer.unwatch(&gone);
            self.0.remove(&gone);
        }
        for dir in wanted {
            if self.0.contains(&dir) || !dir.is_dir() {
                continue;
            }
            match debouncer.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.0.insert(dir);
                }
                Err(e) => on_event(WatchEvent::Warning {
                    message: format!("cannot watch {}: {e}", dir.display()),
                }),
            }
        }
    }
}
