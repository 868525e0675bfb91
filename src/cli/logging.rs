//! Log output on stderr.
//!
//! Script `print`s are INFO events of target `script`; in text format they are shown as
//! plain lines (a playbook's output should read like a program's, not like a log), and
//! warnings and errors get a `warning:`/`error:` prefix. `--log-format json` emits one JSON
//! object per line for log shippers. `DOCKHAND_LOG` overrides -v/-q: a level, and/or
//! comma-separated `target=level` directives (`info,dockhand::docker=debug,hyper=warn`).
//!
//! The filter is `tracing_subscriber`'s `Targets`, not `EnvFilter`: `EnvFilter`'s span and
//! field directives need a regex engine (`regex-automata`, `regex-syntax`, `matchers`): 3.3%
//! of a clean release build's unit time (`cargo build --timings`), for a syntax dockhand's
//! own events never use.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use super::{GlobalOpts, LogFormat};

struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => {}
            Level::DEBUG => write!(writer, "debug: ")?,
            Level::TRACE => write!(writer, "trace: ")?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

pub fn init(opts: &GlobalOpts) {
    let level = match (opts.quiet, opts.verbose) {
        (q, _) if q >= 2 => "error",
        (1, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let deps = if opts.verbose >= 2 {
        ""
    } else {
        ",hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn"
    };
    let filter = std::env::var("DOCKHAND_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .and_then(|f| match f.parse::<Targets>() {
            Ok(t) => Some(t),
            Err(e) => {
                // Logging is not up yet: say it plainly, once, and go on with -v/-q.
                eprintln!(
                    "warning: DOCKHAND_LOG={f:?} ignored ({e}); expected e.g. \"debug\" or \"info,dockhand::docker=trace\""
                );
                None
            }
        })
        .unwrap_or_else(|| {
            format!("{level}{deps}")
                .parse()
                .unwrap_or_else(|_| Targets::new().with_default(tracing::level_filters::LevelFilter::INFO))
        });
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match opts.log_format {
        LogFormat::Text => {
            // Off a terminal there is nothing to draw: plain lines, no bar machinery.
            if !std::io::stderr().is_terminal() {
                let _ = registry
                    .with(
                        tracing_subscriber::fmt::layer()
                            .with_writer(std::io::stderr)
                            .event_format(Plain),
                    )
                    .try_init();
                return;
            }
            // Progress bars (only `progress::` spans) drawn below the log lines; log lines
            // go through the layer's writer so they print above the bars, never through
            // them. At most 16 bars show (overall + builds + deploys in flight); no
            // "...and N more" footer: tracing-indicatif 0.3's footer asserts it is visible
            // when the last pending bar ends, which a hidden or resized terminal breaks, and
            // a panic there poisons the subscriber for every later log line.
            let bars = tracing_indicatif::IndicatifLayer::new().with_max_progress_bars(16, None);
            let writer = bars.get_stderr_writer();
            let only_progress = tracing_subscriber::filter::filter_fn(|m| {
                m.target() == crate::host::progress::TARGET
            });
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(writer)
                        .event_format(Plain),
                )
                .with(bars.with_filter(only_progress))
                .try_init()
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .json(),
            )
            .try_init(),
    };
}
