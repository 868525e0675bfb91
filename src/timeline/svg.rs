//! The timeline as a self-contained SVG: no scripts, no external fonts, images or styles,
//! so it opens in any browser or viewer offline and can be committed next to a report.
//!
//! Layout, top to bottom: a title (run, project, status, wall time, outcome counts), the
//! time axis, one row per service grouped in category bands (the category's name on its
//! first row), and the legend. Each row shows an outcome swatch, the service name, its
//! phase bars and — for a failure, rollback or blocked start — the reason. Bars on the
//! critical path are outlined in black and their service names are bold. Row height and
//! fonts are fixed, so 2 services and 45 read the same; long names and reasons are cut with
//! an ellipsis and kept whole in the row's tooltip (`<title>`).
//!
//! Every piece of journal text goes through [`esc`]: names and reasons are hostile input,
//! and a stray `<` or a control character would make the file unreadable XML.

use std::fmt::Write;

use super::model::{Outcome, Row, Step, Timeline};
use super::text::{duration, tick_step};

const WIDTH: f64 = 1200.0;
const CAT_X: f64 = 10.0;
const SWATCH_X: f64 = 128.0;
const NAME_X: f64 = 144.0;
const PLOT_X: f64 = 330.0;
const PLOT_W: f64 = WIDTH - PLOT_X - 20.0;
const ROW_H: f64 = 20.0;
const TOP: f64 = 78.0;
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";

/// `s` safe inside XML text and attribute values: the five markup characters escaped and
/// characters XML 1.0 does not allow (most control characters) replaced by U+FFFD.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// At most `n` characters of `s`, with an ellipsis when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut o: String = s.chars().take(n.saturating_sub(1)).collect();
    o.push('…');
    o
}

pub fn step_colour(s: Step) -> &'static str {
    match s {
        Step::Queued => "#d9d9d9",
        Step::Build => "#756bb1",
        Step::DeployQueued => "#bdbdbd",
        Step::Push => "#9e9ac8",
        Step::Recreate | Step::StartNext | Step::Update => "#3182bd",
        Step::Health => "#31a354",
        Step::Probe => "#74c476",
        Step::Settle => "#a1d99b",
        Step::Promote => "#08519c",
        Step::Rollback => "#fd8d3c",
        Step::Failure => "#de2d26",
        Step::InFlight => "#9ecae1",
        Step::Untimed => "#969696",
    }
}

pub fn outcome_colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Completed => "#31a354",
        Outcome::RolledBack => "#e6550d",
        Outcome::Failed => "#de2d26",
        Outcome::InProgress => "#3182bd",
        Outcome::Pending => "#bdbdbd",
        Outcome::Unknown => "#756bb1",
    }
}

struct Scale {
    span: f64,
}

impl Scale {
    fn x(&self, ms: f64) -> f64 {
        PLOT_X + (ms.max(0.0) / self.span) * PLOT_W
    }
}

fn header(o: &mut String, t: &Timeline, height: f64) {
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">"
    );
    let mut title = format!("rebuild {}", t.run);
    if let Some(p) = &t.project {
        title += &format!(" · project {p}");
    }
    let _ = writeln!(o, "<title>{}</title>", esc(&title));
    let _ = writeln!(
        o,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    let _ = writeln!(
        o,
        "<text x=\"{CAT_X}\" y=\"22\" font-family=\"sans-serif\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        esc(&cut(&title, 110))
    );
    let counts: Vec<String> = t
        .counts()
        .iter()
        .map(|(oc, n)| format!("{n} {}", oc.label()))
        .collect();
    let sub = format!(
        "{} · {} services ({}) · wall {} · critical path: {} service(s)",
        t.status,
        t.rows.len(),
        counts.join(", "),
        duration(t.span_ms),
        t.critical.len()
    );
    let _ = writeln!(
        o,
        "<text x=\"{CAT_X}\" y=\"42\" {FONT} fill=\"#444444\">{}</text>",
        esc(&cut(&sub, 160))
    );
}

fn axis(o: &mut String, sc: &Scale, bottom: f64) {
    let step = tick_step(sc.span);
    let mut ms = 0.0;
    while ms <= sc.span + 1.0 {
        let x = sc.x(ms);
        let _ = writeln!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#e5e5e5\"/>",
            TOP - 6.0
        );
        let _ = writeln!(
            o,
            "<text x=\"{x:.1}\" y=\"{:.1}\" {FONT} text-anchor=\"middle\" fill=\"#666666\">{}</text>",
            TOP - 10.0,
            duration(ms)
        );
        ms += step;
    }
}

fn bands(o: &mut String, t: &Timeline) {
    for (i, (cat, range)) in t.bands().iter().enumerate() {
        let y = TOP + range.start as f64 * ROW_H;
        let h = range.len() as f64 * ROW_H;
        let fill = if i % 2 == 0 { "#f7f7f7" } else { "#ffffff" };
        let _ = writeln!(
            o,
            "<rect x=\"0\" y=\"{y:.1}\" width=\"{WIDTH}\" height=\"{h:.1}\" fill=\"{fill}\"/>"
        );
        let _ = writeln!(
            o,
            "<line x1=\"0\" y1=\"{y:.1}\" x2=\"{WIDTH}\" y2=\"{y:.1}\" stroke=\"#cccccc\"/>"
        );
        let _ = writeln!(
            o,
            "<text x=\"{CAT_X}\" y=\"{:.1}\" {FONT} font-style=\"italic\" fill=\"#555555\">{}</text>",
            y + 14.0,
            esc(&cut(cat, 16))
        );
    }
}

fn tooltip(r: &Row) -> String {
    let mut t = format!("{} ({}): {}", r.name, r.category, r.outcome.label());
    for s in &r.segments {
        t += &format!("; {} {}", s.step.label(), duration(s.ms()));
    }
    if let Some(why) = &r.reason {
        t += &format!("; {why}");
    }
    t
}

fn row(o: &mut String, i: usize, r: &Row, sc: &Scale) {
    let y = TOP + i as f64 * ROW_H;
    let _ = writeln!(o, "<g><title>{}</title>", esc(&tooltip(r)));
    let _ = writeln!(
        o,
        "<rect x=\"{SWATCH_X}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>",
        y + 5.0,
        outcome_colour(r.outcome)
    );
    let weight = if r.is_critical() { "bold" } else { "normal" };
    let _ = writeln!(
        o,
        "<text x=\"{NAME_X}\" y=\"{:.1}\" {FONT} font-weight=\"{weight}\">{}</text>",
        y + 14.0,
        esc(&cut(&r.name, 26))
    );
    for s in &r.segments {
        let (x0, x1) = (sc.x(s.start_ms), sc.x(s.end_ms));
        let stroke = if s.critical {
            " stroke=\"#000000\" stroke-width=\"1.5\""
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" fill=\"{}\"{stroke}/>",
            y + 4.0,
            (x1 - x0).max(1.0),
            step_colour(s.step)
        );
    }
    let note = match (r.outcome, &r.reason) {
        (Outcome::Completed, _) | (_, None) => None,
        (oc, Some(why)) => Some((oc, why)),
    };
    if let Some((oc, why)) = note {
        reason(o, r, sc, y, outcome_colour(oc), why);
    }
    let _ = writeln!(o, "</g>");
}

/// A failure's reason: after the bar when there is room, else inside its last bar (in
/// black, readable on the rollback and failure colours).
fn reason(o: &mut String, r: &Row, sc: &Scale, y: f64, colour: &str, why: &str) {
    const CHAR_W: f64 = 6.5;
    let end = r.end_ms().map_or(PLOT_X, |e| sc.x(e));
    let after = ((WIDTH - end - 10.0) / CHAR_W) as usize;
    let inside = r
        .segments
        .last()
        .map_or(0.0, |s| sc.x(s.end_ms) - sc.x(s.start_ms));
    let (x, room, fill) = if after >= 24 || inside < 24.0 * CHAR_W {
        (end + 4.0, after.max(12), colour)
    } else {
        let x0 = end - inside;
        (x0 + 4.0, ((inside - 8.0) / CHAR_W) as usize, "#000000")
    };
    let _ = writeln!(
        o,
        "<text x=\"{x:.1}\" y=\"{:.1}\" {FONT} fill=\"{fill}\">{}</text>",
        y + 14.0,
        esc(&cut(why, room))
    );
}

fn legend(o: &mut String, t: &Timeline, y: f64) {
    let used = t.steps_used();
    let mut x = CAT_X;
    let mut y = y;
    for s in used {
        if x > WIDTH - 170.0 {
            x = CAT_X;
            y += 18.0;
        }
        let _ = writeln!(
            o,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{y:.1}\" {FONT}>{}</text>",
            y - 9.0,
            step_colour(s),
            x + 18.0,
            s.label()
        );
        x += 30.0 + 7.0 * s.label().len() as f64;
    }
    y += 18.0;
    x = CAT_X;
    for (oc, _) in t.counts() {
        let _ = writeln!(
            o,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{y:.1}\" {FONT}>{}</text>",
            y - 9.0,
            outcome_colour(oc),
            x + 14.0,
            oc.label()
        );
        x += 26.0 + 7.0 * oc.label().len() as f64;
    }
    let _ = writeln!(
        o,
        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"#ffffff\" stroke=\"#000000\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{y:.1}\" {FONT}>critical path (bold names)</text>",
        y - 9.0,
        x + 18.0
    );
}

/// The timeline as a standalone SVG document (see the module docs).
pub fn render(t: &Timeline) -> String {
    let rows_h = t.rows.len().max(1) as f64 * ROW_H;
    let height = TOP + rows_h + 64.0;
    let sc = Scale {
        span: t.span_ms.max(1000.0),
    };
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    header(&mut o, t, height);
    bands(&mut o, t);
    axis(&mut o, &sc, TOP + rows_h);
    if t.rows.is_empty() {
        let _ = writeln!(
            o,
            "<text x=\"{PLOT_X}\" y=\"{:.1}\" {FONT} fill=\"#666666\">no services in this run's journal</text>",
            TOP + 14.0
        );
    }
    for (i, r) in t.rows.iter().enumerate() {
        row(&mut o, i, r, &sc);
    }
    legend(&mut o, t, TOP + rows_h + 24.0);
    o.push_str("</svg>\n");
    o
}
