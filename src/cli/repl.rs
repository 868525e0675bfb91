//! `dockhand repl`: the interactive prompt. The engine half lives in [`crate::repl`]; this
//! file only turns the command line into a runtime and a session.

use std::path::PathBuf;

use clap::Args;

use super::GlobalOpts;
use crate::error::Result;
use crate::repl::{self, Options, Session};

#[derive(Debug, Args)]
pub struct ReplArgs {
    /// Run these files into the session first (`:reload` runs them again).
    #[arg(long, value_name = "FILE")]
    pub load: Vec<PathBuf>,
    /// Keep no history (default: $DOCKHAND_HISTORY, else $XDG_DATA_HOME/dockhand/history).
    #[arg(long)]
    pub no_history: bool,
}

pub fn repl(global: &GlobalOpts, args: ReplArgs) -> Result<i32> {
    // The global options exactly as `run` applies them, except that Ctrl-C is the REPL's to
    // handle (it stops the running input, not the process), and `--timeout` applies to each
    // input, through the session, not to the runtime as a whole.
    let rt = global.runtime_builder().timeout(None).build()?;
    let mut session = Session::new(&rt);
    session.set_timeout(global.timeout);
    for f in &args.load {
        if let Err(e) = session.load(f) {
            eprint!("{}", crate::runtime::error_text(&e));
        }
    }
    let opts = Options {
        history: (!args.no_history)
            .then(repl::default_history_path)
            .flatten(),
        failure_mode: false,
    };
    repl::interactive(&mut session, &opts)?;
    Ok(0)
}
