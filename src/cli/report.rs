//! `dockhand report timeline`: a rebuild run drawn as a timeline (see [`crate::timeline`]),
//! as a self-contained SVG, a text chart or a Chrome / Perfetto trace.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::GlobalOpts;
use crate::error::{Error, Result};
use crate::timeline;

const TIMELINE_EXAMPLES: &str = "\
Examples:
  dockhand report timeline -o rebuild.svg           the last run, as a picture
  dockhand report timeline --run phase1-20260204-150000 -o docs/rebuild.svg
  dockhand report timeline --format text            the same chart in the terminal
  dockhand report timeline --format trace -o run.json   open it in ui.perfetto.dev

Reading the picture: one row per service, grouped in category bands; bars are the phases
on the run's shared time axis (build queue, build, deploy queue, recreate or start-next,
health, probe, settle, promote; a rolled-back service ends in an orange 'gate failed +
rollback' bar). The square before a name is the outcome: green completed, orange rolled
back, red failed, blue in progress, grey pending. Bars outlined in black, and bold names,
are the critical path: the chain of work and waits that decided when the run ended.
Hover a row for its exact phase times and failure reason.";

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub what: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Draw a rebuild run as a timeline: one row per service, a bar per phase, the outcome,
    /// category bands and the critical path. Works on a finished run and on one in flight
    /// (bars end at the journal's last write).
    #[command(after_help = TIMELINE_EXAMPLES)]
    Timeline(TimelineArgs),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A standalone SVG picture (no scripts, fonts or links; opens offline).
    #[default]
    Svg,
    /// The compact text chart `dockhand monitor --once` shows.
    Text,
    /// Chrome trace-event JSON, for Perfetto or chrome://tracing.
    Trace,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The run to draw [default: the project's last run, as `dockhand monitor` picks it].
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Compose project whose last run to draw [default: the most recent run of any].
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Svg)]
    pub format: Format,
    /// Columns of the text chart's bars.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub width: usize,
}

pub fn report(global: &GlobalOpts, args: ReportArgs) -> Result<i32> {
    match args.what {
        ReportCommand::Timeline(a) => timeline_report(global, a),
    }
}

fn timeline_report(global: &GlobalOpts, a: TimelineArgs) -> Result<i32> {
    let root = global.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let run = crate::monitor::resolve_run(&root, a.run.as_deref(), a.project.as_deref())
        .map_err(|e| Error::Usage(e.to_string()))?
        .ok_or_else(|| {
            Error::Usage(
                crate::monitor::MonitorError::NoRun(root.join(crate::journal::STATE_DIR))
                    .to_string(),
            )
        })?;
    let t = timeline::load(&root, &run, None).map_err(|e| Error::Usage(e.to_string()))?;
    let body = match a.format {
        Format::Svg => timeline::svg::render(&t),
        Format::Text => timeline::text::render(&t, a.width),
        Format::Trace => {
            serde_json::to_string_pretty(&timeline::trace::chrome_trace(std::slice::from_ref(&t)))
                .unwrap_or_default()
                + "\n"
        }
    };
    match &a.output {
        Some(path) => {
            super::write_output(path, body.as_bytes(), "the timeline")?;
            tracing::info!(
                "wrote the timeline of run {run} ({} services) to {}",
                t.rows.len(),
                path.display()
            );
        }
        None => print!("{body}"),
    }
    Ok(0)
}
