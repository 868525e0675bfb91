//! `progress::` — progress bars and spinners for long work, drawn with indicatif.
//!
//! A rebuild of forty services takes minutes; operators want to see how far it got and what
//! is in flight *without* losing the log lines that say what happened. Each bar is a tracing
//! span that `tracing-indicatif` draws below the log output, and log lines (script `print`s
//! included) are written above the bars, so the two never tear each other up.
//!
//! Bars only appear on a terminal, in text log format: in CI logs, under `--log-format
//! json` or when stderr is a file, the calls do nothing and the log lines carry the story.
//! A bar disappears when the last variable holding it goes out of scope, so a spinner made
//! inside a function lives exactly as long as that function's work.
//!
//! ```rhai
//! let bar = progress::bar(services.len(), "rebuild");
//! for s in services {
//!     let sp = progress::spinner(s.name);
//!     sp.set_message("building");
//!     // ...
//!     bar.inc();
//! }
//! ```

use indicatif::ProgressStyle;
use rhai::plugin::*;
use rhai::{Engine, INT};
use tracing::Span;
use tracing_indicatif::span_ext::IndicatifSpanExt;

/// The tracing target of progress spans; the CLI's indicatif layer draws only these.
pub const TARGET: &str = "dockhand::progress";

/// A bar or spinner (cheap to copy; all copies drive the same bar).
#[derive(Debug, Clone)]
pub struct Progress(Span);

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// `label` for a template: braces would be read as placeholders.
fn plain(label: &str) -> String {
    label.replace(['{', '}'], "")
}

#[export_module]
pub mod progress_api {
    use super::*;

    pub type Progress = super::Progress;

    /// A progress bar of `total` steps, labelled `label`: `[00:42] rebuild ████░░ 12/40`.
    pub fn bar(total: INT, label: &str) -> Progress {
        let span = tracing::info_span!(target: "dockhand::progress", "bar", label = label);
        span.pb_set_style(&style(&format!(
            "[{{elapsed_precise}}] {} {{wide_bar:.cyan/blue}} {{pos}}/{{len}} {{msg}}",
            plain(label)
        )));
        span.pb_set_length(u64::try_from(total).unwrap_or(0));
        span.pb_set_position(0);
        span.in_scope(|| {});
        Progress(span)
    }

    /// A spinner for one thing in flight: `⠋ weather-api  building (3s)`.
    pub fn spinner(label: &str) -> Progress {
        let span = tracing::info_span!(target: "dockhand::progress", "spinner", label = label);
        span.pb_set_style(&style(&format!(
            "{{spinner:.green}} {:<28} {{msg}} ({{elapsed}})",
            plain(label)
        )));
        span.in_scope(|| {});
        Progress(span)
    }

    /// Advances the bar by one.
    #[rhai_fn(global, name = "inc", pure)]
    pub fn inc(p: &mut Progress) {
        p.0.pb_inc(1);
    }

    /// Advances the bar by `n`.
    #[rhai_fn(global, name = "inc", pure)]
    pub fn inc_by(p: &mut Progress, n: INT) {
        p.0.pb_inc(u64::try_from(n).unwrap_or(0));
    }

    /// Sets the text shown after the bar or spinner.
    #[rhai_fn(global, pure)]
    pub fn set_message(p: &mut Progress, text: &str) {
        p.0.pb_set_message(text);
    }
}

/// Built once per process: every engine shares it.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(progress_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Progress>("Progress");
    engine.register_static_module("progress", MODULE.clone());
}
