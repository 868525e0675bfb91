//! The timeline as compact plain text, for `dockhand monitor --once` and CI logs: one line
//! per service, a character per phase on a shared axis of `width` columns.
//!
//! ```text
//! timeline (0s → 3m05s, one column = 6.2s; * = critical path):
//!    weather-api          |..BBBB,RHHS                    | 1m00s completed
//!  * sports-api           |...BBBBBBrrrrrrr               | 1m52s rolled back
//! ```
//!
//! The same letters are used whatever the run: `.` build queue, `B` build, `,` deploy
//! queue, `R` recreate, `N` start next, `H` health, `P` probe, `S` settle, `^` promote,
//! `r` gate failed + rollback, `X` until failure, `>` in flight, `=` no phase times.

use std::fmt::Write;

use super::model::{Row, Step, Timeline};

/// "0s", "12s", "3m05s", "1h02m": short, for axis ticks and totals.
pub fn duration(ms: f64) -> String {
    let s = (ms / 1000.0).round().max(0.0) as u64;
    if ms > 0.0 && ms < 1000.0 {
        return format!("{:.0}ms", ms);
    }
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A round tick interval giving at most about ten ticks over `span_ms`.
pub fn tick_step(span_ms: f64) -> f64 {
    const STEPS_S: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS_S
        .iter()
        .map(|s| s * 1000.0)
        .find(|ms| span_ms / ms <= 10.0)
        .unwrap_or(span_ms / 10.0)
}

pub fn step_char(s: Step) -> char {
    match s {
        Step::Queued => '.',
        Step::Build => 'B',
        Step::Push => 'p',
        Step::DeployQueued => ',',
        Step::Recreate => 'R',
        Step::Update => 'U',
        Step::StartNext => 'N',
        Step::Health => 'H',
        Step::Probe => 'P',
        Step::Settle => 'S',
        Step::Promote => '^',
        Step::Rollback => 'r',
        Step::Failure => 'X',
        Step::InFlight => '>',
        Step::Untimed => '=',
    }
}

/// A row's bar line of `width` columns over `span_ms`: each column shows the phase that
/// covers most of it; a phase too short for a column of its own still gets one when its
/// column would otherwise be empty.
fn bar(r: &Row, span_ms: f64, width: usize) -> String {
    let col = span_ms / width as f64;
    let mut cells = vec![(' ', 0.0f64); width];
    for s in &r.segments {
        let first = ((s.start_ms / col).floor() as usize).min(width - 1);
        let last = (((s.end_ms / col).ceil() as usize).max(first + 1)).min(width);
        for (i, cell) in cells.iter_mut().enumerate().take(last).skip(first) {
            let (a, b) = (i as f64 * col, (i + 1) as f64 * col);
            let cover = (s.end_ms.min(b) - s.start_ms.max(a)).max(0.0);
            if cover > cell.1 || cell.0 == ' ' {
                *cell = (step_char(s.step), cover);
            }
        }
    }
    cells.into_iter().map(|c| c.0).collect()
}

/// Not a control or bidirectional-override character: a service name must not move the
/// terminal's cursor or flip the rest of the line.
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200E}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The compact text chart (see the module docs); `width` is the number of bar columns.
pub fn render(t: &Timeline, width: usize) -> String {
    let width = width.max(10);
    let span = t.span_ms.max(1000.0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "timeline (0s → {}, one column = {}; * = critical path):",
        duration(t.span_ms),
        duration(span / width as f64)
    );
    for r in &t.rows {
        let mark = if r.is_critical() { '*' } else { ' ' };
        let total = match (r.start_ms(), r.end_ms()) {
            (Some(a), Some(b)) => duration(b - a),
            _ => "-".into(),
        };
        let name: String = r.name.chars().filter(|c| printable(*c)).take(24).collect();
        let line = format!(
            "  {mark} {name:<24} |{}| {total:>6} {}",
            bar(r, span, width),
            r.outcome.label()
        );
        let _ = writeln!(o, "{}", line.trim_end());
    }
    let legend: Vec<String> = t
        .steps_used()
        .into_iter()
        .map(|s| format!("{} {}", step_char(s), s.label()))
        .collect();
    if !legend.is_empty() {
        let _ = writeln!(o, "  legend: {}", legend.join(" · "));
    }
    o
}
