//! `dockhand repl`: the interactive prompt. The engine half lives in [`crate::repl`]; this
//! file only turns the command line into a runtime and a session.

use std::path::PathBuf;

use clap::Args;

use super::GlobalOpts;
use crate::error::Result;
use crate::repl::{self, Eval, Options, Session};
use crate::runtime::Runtime;

#[derive(Debug, Args)]
pub struct ReplArgs {
    /// Run these files into the session first (`:reload` runs them again).
    #[arg(long, value_name = "FILE")]
    pub load: Vec<PathBuf>,
    /// Keep no history (default: $DOCKHAND_HISTORY, else $XDG_DATA_HOME/dockhand/history).
    #[arg(long)]
    pub no_history: bool,
}

/// The runtime the REPL uses: the global options exactly as `run` applies them, except that
/// Ctrl-C is the REPL's to handle (it stops the running input, not the process), and
/// `--timeout` applies to each input.
pub fn build_runtime(opts: &GlobalOpts) -> Result<Runtime> {
    // The REPL owns Ctrl-C (it stops the running input); `--timeout` applies per input,
    // through the session, not to the runtime as a whole.
    let mut opts = opts.clone();
    opts.timeout = None;
    super::run::runtime_builder(&opts)
        .handle_ctrl_c(false)
        .build()
}

pub fn repl(global: &GlobalOpts, args: ReplArgs) -> Result<i32> {
    let rt = build_runtime(global)?;
    let mut session = Session::new(&rt);
    session.set_timeout(global.timeout);
    for f in &args.load {
        match session.load(f) {
            Eval::Error(se) => eprint!("{se}"),
            Eval::Interrupted => eprintln!("interrupted"),
            Eval::Value(_) => {}
        }
    }
    let opts = Options {
        history: if args.no_history {
            None
        } else {
            repl::default_history_path()
        },
        failure_mode: false,
    };
    repl::interactive(&mut session, &opts)?;
    Ok(0)
}
