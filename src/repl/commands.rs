//! One complete input at the prompt: a `:` command, or code to evaluate and show.

use std::path::Path;

use rhai::Dynamic;

use super::complete::Names;
use super::help::{FAILURE_HELP, HELP, docs_text, help_for};
use super::render::render;
use super::session::Session;
use crate::error::Result;

/// How an interactive session ended (what [`handle_line`] returns for a line that ends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `:quit` or Ctrl-D (in failure mode: abort).
    Quit,
    /// Failure mode: `:continue` (skip the failed step).
    Continue,
    /// Failure mode: `:retry`.
    Retry,
    /// Failure mode: `:abort`.
    Abort,
}

/// Handles one complete input (a command or code); `Some` ends the loop.
pub fn handle_line(session: &mut Session<'_>, line: &str, failure_mode: bool) -> Option<End> {
    let Some(cmd) = line.trim().strip_prefix(':') else {
        show(session, |s| s.eval(line));
        return None;
    };
    let (cmd, arg) = match cmd.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim()),
        None => (cmd, ""),
    };
    let engine = session.runtime().engine();
    match cmd {
        "q" | "quit" | "exit" => return Some(End::Quit),
        "retry" | "continue" | "skip" | "abort" if failure_mode => {
            return Some(match cmd {
                "retry" => End::Retry,
                "abort" => End::Abort,
                _ => End::Continue,
            });
        }
        "h" | "help" if arg.is_empty() => general_help(session, failure_mode),
        "h" | "help" => match help_for(engine, arg) {
            Some(text) => print!("{text}"),
            None => eprintln!("error: no host function named `{arg}` (try :docs)"),
        },
        "docs" => print!(
            "{}",
            docs_text(
                engine,
                (!arg.is_empty()).then_some(arg.trim_end_matches(':'))
            )
        ),
        "vars" => print!("{}", session.vars()),
        "load" if arg.is_empty() => eprintln!("error: :load needs a file, e.g. :load lib.rhai"),
        "load" => show(session, |s| s.load(Path::new(arg))),
        "reload" => reload(session),
        other => eprintln!("error: unknown command :{other} (see :help)"),
    }
    None
}

/// `:help`: the commands, the host modules and the session's own functions.
fn general_help(session: &Session<'_>, failure_mode: bool) {
    print!("{HELP}");
    if failure_mode {
        print!("\n{FAILURE_HELP}");
    }
    let names = Names::from_engine(session.runtime().engine());
    let modules: Vec<String> = names.modules.keys().map(|m| format!("{m}::")).collect();
    println!("\nhost modules: {}", modules.join(" "));
    let own = session.script_functions();
    if !own.is_empty() {
        println!("your functions: {}", own.join(", "));
    }
}

/// `:reload`: runs the loaded files again, in order.
fn reload(session: &mut Session<'_>) {
    let files = session.loaded().to_vec();
    if files.is_empty() {
        eprintln!("nothing loaded yet (use :load FILE)");
    }
    for f in files {
        eprintln!("reloading {}", f.display());
        show(session, |s| s.load(&f));
    }
}

/// Runs `f` and shows what it produced: new checks and plan entries, then the value (stdout)
/// or the error (stderr), rendered as `dockhand run` renders a run's end.
pub fn show(session: &mut Session<'_>, f: impl FnOnce(&mut Session<'_>) -> Result<Dynamic>) {
    let result = f(session);
    let news = session.take_news();
    if !news.is_empty() {
        print!("{news}");
    }
    match result {
        Ok(v) => print!("{}", render(&v)),
        Err(e) => eprint!("{}", crate::runtime::error_text(&e)),
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
