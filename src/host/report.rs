//! `report::` — pictures of a rebuild run for reports written by playbooks.
//!
//! Story 12's completion report is Markdown; the timeline of the run it reports on is an
//! SVG next to it (see [`crate::timeline`]). The playbook already reads the run's journal
//! with `fs::read_json`, so these functions take that document and return text: writing
//! the file stays with `fs::write`, under the workspace sandbox and the run's mode
//! (`--dry-run` plans it, `--read-only` refuses it).
//!
//! ```rhai
//! let journal = fs::read_json(`.dockhand/state/${run}.json`);
//! fs::write("docs/planning/phase1-timeline.svg", report::timeline_svg(journal));
//! print(report::timeline_text(journal, 60));
//! ```

use rhai::plugin::*;
use rhai::{Engine, INT};

use super::HostResult;
use crate::timeline::{self, Timeline};

/// The timeline of a journal document, or an error naming what is wrong with it.
fn timeline_of(journal: &Dynamic) -> HostResult<Timeline> {
    let doc: serde_json::Value = rhai::serde::from_dynamic(journal)
        .map_err(|e| super::invalid(format!("report: the journal is not JSON-like data: {e}")))?;
    Timeline::from_journal("run", &doc, None).ok_or_else(|| {
        super::invalid(
            "report: not a run journal (no `records` map); pass fs::read_json(\".dockhand/state/RUN.json\")",
        )
    })
}

#[export_module]
pub mod report_api {
    use super::*;

    /// The run's timeline as a standalone SVG document (one row per service, a bar per
    /// phase, category bands, the critical path), from the journal document read with
    /// `fs::read_json`. Service names and reasons are escaped.
    #[rhai_fn(return_raw)]
    pub fn timeline_svg(ctx: NativeCallContext, journal: Dynamic) -> HostResult<String> {
        super::super::at(ctx.call_position(), || {
            Ok(timeline::svg::render(&timeline_of(&journal)?))
        })
    }

    /// The run's timeline as a compact text chart with `width` bar columns (10 or more),
    /// as `dockhand monitor --once` shows it.
    #[rhai_fn(return_raw)]
    pub fn timeline_text(
        ctx: NativeCallContext,
        journal: Dynamic,
        width: INT,
    ) -> HostResult<String> {
        super::super::at(ctx.call_position(), || {
            let width = usize::try_from(width).unwrap_or(0).clamp(10, 400);
            Ok(timeline::text::render(&timeline_of(&journal)?, width))
        })
    }
}

/// Built once per process, like the other host modules (start-up time).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(report_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_static_module("report", MODULE.clone());
}
