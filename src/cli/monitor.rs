//! `dockhand monitor`: the live rebuild dashboard, or `--once` as text (see
//! [`crate::monitor`]).

use std::path::PathBuf;

use clap::Args;

use super::GlobalOpts;
use crate::error::{Error, Result};
use crate::monitor::{self, MonitorError, Options};

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The run to show [default: the project's last run, from its fleet journal].
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Compose project: whose last run to pick and whose containers to show
    /// [default: the run's own].
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Print the dashboard once as plain text and exit (for CI logs): exit 1 when a
    /// service of the run failed or was rolled back, 0 otherwise.
    #[arg(long)]
    pub once: bool,
}

fn error(e: MonitorError) -> Error {
    match e {
        MonitorError::Terminal(e) => Error::Internal(format!(
            "the terminal cannot show the dashboard ({e}); use --once for plain text"
        )),
        other => Error::Usage(other.to_string()),
    }
}

pub fn monitor(global: &GlobalOpts, args: MonitorArgs) -> Result<i32> {
    let opts = Options {
        root: global.root.clone().unwrap_or_else(|| PathBuf::from(".")),
        run: args.run,
        project: args.project,
    };
    if args.once {
        let (text, code) = monitor::once(&opts).map_err(error)?;
        print!("{text}");
        return Ok(code);
    }
    monitor::live(&opts).map_err(error)?;
    Ok(0)
}
