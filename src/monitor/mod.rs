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
//!
//! Where things are: [`journal`] parses, [`model`] holds a frame, [`text`] and [`tui`]
//! draw it, [`source`] finds and follows the journal, [`containers`] feeds the container
//! panel; this file runs `--once` and the live loop.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ratatui::crossterm::event::{self, Event};

use crate::journal::STATE_DIR;

pub mod containers;
pub mod journal;
pub mod model;
pub mod source;
pub mod text;
pub mod tui;

pub use containers::{DockerFeed, containers_once};
pub use journal::{Counts, Journal, RunInfo, ServiceRec, Status};
pub use model::{Activity, ContainerRow, ContainerView, History, Model};
pub use source::{INTERRUPTED, JournalSource, resolve_run, run_process_alive};
pub use text::render_text;
pub use tui::{is_quit, render};

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
    let now = SystemTime::now();
    let m = src.model(containers, now);
    // The timeline needs the records' own times, which the dashboard's model leaves out:
    // read them from the same journal; without them the dashboard is shown as before. Bars
    // in flight end at the journal's last write, not now: an interrupted run's would
    // otherwise stretch over days and squash the rest.
    let timeline = src
        .run
        .as_deref()
        .and_then(|run| crate::timeline::load(&opts.root, run, None).ok());
    Ok((text::render_text_with(&m, timeline.as_ref()), m.exit_code()))
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
