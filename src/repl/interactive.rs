//! The terminal loop: rustyline with history and completion, `...` continuation lines, and
//! Ctrl-C that stops the running input rather than the process.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};

use super::commands::{End, handle_line};
use super::complete::{Names, ReplHelper};
use super::help::FAILURE_HELP;
use super::multiline::is_incomplete;
use super::session::{RunningSlot, Session};
use crate::cancel::CancelReason;
use crate::error::{Error, Result};
use crate::runtime::Runtime;

/// Options of the interactive loop.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// History file; `None` keeps no history.
    pub history: Option<PathBuf>,
    /// Opened by `run --repl-on-failure`: `:retry`, `:continue`, `:abort` end the loop.
    pub failure_mode: bool,
}

/// `DOCKHAND_HISTORY`, else `$XDG_DATA_HOME/dockhand/history`, else
/// `~/.local/share/dockhand/history`.
pub fn default_history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DOCKHAND_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })?;
    Some(data.join("dockhand").join("history"))
}

/// Cancels the running input on every Ctrl-C (SIGINT). At the prompt the terminal is in raw
/// mode and Ctrl-C is a key rustyline reads, so this only fires while an input runs.
///
/// The handler is installed before this returns (not when the task first runs), so a Ctrl-C
/// right after the first prompt cannot fall through to the default action and kill the
/// process.
pub fn spawn_ctrl_c_listener(
    rt: &Runtime,
    running: RunningSlot,
) -> Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let handle = &rt.host().handle;
    let mut sigint = {
        let _in_runtime = handle.enter();
        signal(SignalKind::interrupt())
            .map_err(|e| Error::Internal(format!("cannot listen for Ctrl-C: {e}")))?
    };
    Ok(handle.spawn(async move {
        while sigint.recv().await.is_some() {
            if let Some(c) = crate::util::lock(&running).as_ref() {
                c.cancel(CancelReason::Interrupted);
            }
        }
    }))
}

type Terminal = Editor<ReplHelper, DefaultHistory>;

/// The line editor: history (loaded from `history`), completion from `names`.
fn terminal(names: Arc<Mutex<Names>>, history: Option<&PathBuf>) -> Result<Terminal> {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .max_history_size(5000)
        .map_err(|e| Error::Internal(format!("rustyline: {e}")))?
        .check_cursor_position(false)
        // Like bash: complete the common prefix, list the candidates on a second Tab.
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut rl: Terminal =
        Editor::with_config(config).map_err(|e| Error::Internal(format!("terminal: {e}")))?;
    rl.set_helper(Some(ReplHelper { names }));
    if let Some(h) = history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.load_history(h);
    }
    Ok(rl)
}

/// Reads, evaluates and prints until `:quit`/Ctrl-D (or, in failure mode, a decision).
pub fn interactive(session: &mut Session<'_>, opts: &Options) -> Result<End> {
    let mut names = Names::from_engine(session.runtime().engine());
    names.vars = session.var_names();
    let names = Arc::new(Mutex::new(names));
    let mut rl = terminal(names.clone(), opts.history.as_ref())?;
    let listener = spawn_ctrl_c_listener(session.runtime(), session.running_slot())?;
    if opts.failure_mode {
        eprint!("{FAILURE_HELP}");
    } else {
        eprintln!("dockhand repl — :help for commands, Tab completes, Ctrl-D leaves");
    }
    let mut input = Input::new(opts.failure_mode);
    let end = loop {
        let line = match input.read(&mut rl) {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(End::Quit),
            Err(e) => break Err(e),
        };
        if line.trim().is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line.as_str());
        if let Some(h) = &opts.history {
            let _ = rl.append_history(h);
        }
        if let Some(end) = handle_line(session, &line, opts.failure_mode) {
            break Ok(end);
        }
        crate::util::lock(&names).vars = session.var_names();
    };
    listener.abort();
    end
}

/// Reads one complete input, over as many lines as it takes.
struct Input {
    prompt: &'static str,
    /// Lines in a row that were not UTF-8.
    bad_input: u32,
    /// Compiles what was typed so far, to tell an unfinished input from a wrong one.
    checker: rhai::Engine,
}

impl Input {
    fn new(failure_mode: bool) -> Self {
        let mut checker = crate::engine::bare(&crate::engine::Limits::default());
        checker.set_strict_variables(false);
        Input {
            prompt: if failure_mode {
                "failed> "
            } else {
                "dockhand> "
            },
            bad_input: 0,
            checker,
        }
    }

    /// The next input; `None` at Ctrl-D. Rustyline's own multi-line editing has no
    /// continuation prompt, so an unfinished input is continued here, one `...` line at a
    /// time (each line stays editable).
    fn read(&mut self, rl: &mut Terminal) -> Result<Option<String>> {
        let mut line = String::new();
        let mut current = self.prompt;
        loop {
            match rl.readline(current) {
                Ok(l) => {
                    self.bad_input = 0;
                    if !line.is_empty() {
                        line.push('\n');
                    }
                    line.push_str(&l);
                    if !is_incomplete(&self.checker, &line) {
                        return Ok(Some(line));
                    }
                    current = "...       ";
                }
                // Ctrl-C drops the whole unfinished input.
                Err(ReadlineError::Interrupted) => return Ok(Some(String::new())),
                Err(ReadlineError::Eof) => return Ok(None),
                // Bytes that are not UTF-8 (a paste from a binary, a wrong terminal
                // encoding) drop that line only; the session goes on. Many in a row mean
                // the input is not text at all, and then the session ends.
                Err(ReadlineError::Io(e))
                    if e.kind() == std::io::ErrorKind::InvalidData && self.bad_input < 100 =>
                {
                    self.bad_input += 1;
                    eprintln!("error: that line is not valid UTF-8 text; it was ignored");
                    line.clear();
                    current = self.prompt;
                }
                Err(e) => return Err(Error::Internal(format!("terminal: {e}"))),
            }
        }
    }
}
