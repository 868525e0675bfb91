//! The dashboard as plain text for `--once` (no control codes, no trailing spaces), and the
//! cells and labels the TUI shares with it so both show the same information.

use super::journal::{Counts, GROUPS, Journal, Status, label};
use super::model::{ContainerRow, ContainerView, Model};
use crate::timeline::Timeline;
use crate::util::{human, table};

/// "14:03:12" of an RFC 3339 time (as written, UTC).
pub(super) fn clock(at: &str) -> &str {
    at.get(11..19).unwrap_or(at)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

pub(super) fn container_cells(r: &ContainerRow) -> [String; 7] {
    let health = match &r.task {
        // A Swarm task: desired/current state, then its container's health.
        Some(t) => format!("{}/{} {}", t.desired, t.current, r.health),
        None if r.state == "running" => r.health.clone(),
        None => format!("{} ({})", r.state, r.health),
    };
    let name = match &r.task {
        Some(t) => format!("task {} @ {}", t.slot, t.node),
        None => r.name.clone(),
    };
    [
        r.service.clone(),
        name,
        health,
        opt(r.restarts),
        opt(r.uptime_s.map(human::secs_short)),
        opt(r.cpu_percent.map(|c| format!("{c:.1}"))),
        opt(r.mem_bytes.map(human::bytes)),
    ]
}

pub(super) const CONTAINER_HEADER: [&str; 7] = [
    "service",
    "container",
    "health",
    "restarts",
    "uptime",
    "cpu %",
    "mem",
];
pub(super) const CATEGORY_HEADER: [&str; 7] = [
    "category",
    "total",
    "done",
    "completed",
    "failed",
    "running",
    "pending",
];

pub(super) fn category_cells(name: &str, c: &Counts) -> [String; 7] {
    [
        name.to_string(),
        c.total.to_string(),
        c.done().to_string(),
        c.completed.to_string(),
        (c.failed + c.rolled_back).to_string(),
        c.in_progress.to_string(),
        c.pending.to_string(),
    ]
}

/// What one status group lists: names, with the phase for ones in flight and the reason
/// for failures.
pub(super) fn group_items(j: &Journal, st: Status) -> Vec<String> {
    j.with_status(st)
        .into_iter()
        .map(|s| match st {
            Status::InProgress => format!("{} ({})", s.name, s.phase),
            Status::Failed | Status::RolledBack => match &s.reason {
                Some(r) => format!("{}: {r}", s.name),
                None => s.name.clone(),
            },
            Status::Pending => match &s.reason {
                Some(r) => format!("{} ({r})", s.name),
                None => s.name.clone(),
            },
            Status::Completed => s.name.clone(),
        })
        .collect()
}

/// The services whose status this build does not know, with what the journal says.
pub(super) fn unknown_items(j: &Journal) -> Vec<String> {
    j.with_unknown_status()
        .into_iter()
        .map(|s| format!("{}: status {}", s.name, s.status))
        .collect()
}

pub(super) fn title_line(m: &Model) -> String {
    match &m.journal {
        Some(j) => {
            let mut t = format!("run {}", j.run.id);
            if let Some(p) = &j.run.project {
                t += &format!(" · project {p}");
            }
            t += &format!(" · {}", j.run.status);
            if let Some(e) = m.elapsed() {
                t += &format!(" · {e}");
            }
            t
        }
        None => "no run yet".into(),
    }
}

pub(super) fn progress_label(c: &Counts) -> String {
    format!(
        "{}/{} done ({:.0}%): {} completed, {} rolled back, {} failed, {} in progress, {} pending",
        c.done(),
        c.total,
        c.ratio() * 100.0,
        c.completed,
        c.rolled_back,
        c.failed,
        c.in_progress,
        c.pending
    )
}

/// The services by status group: names, or one line each for failures and unknowns.
fn services_section(o: &mut String, j: &Journal) {
    use std::fmt::Write;
    let _ = writeln!(o, "\nservices:");
    for st in GROUPS {
        let items = group_items(j, st);
        let _ = write!(o, "  {} ({})", label(st), items.len());
        match st {
            Status::Failed | Status::RolledBack => {
                let _ = writeln!(o);
                for i in items {
                    let _ = writeln!(o, "    {i}");
                }
            }
            _ if items.is_empty() => {
                let _ = writeln!(o);
            }
            _ => {
                let _ = writeln!(o, ": {}", items.join(", "));
            }
        }
    }
    let unknown = unknown_items(j);
    if !unknown.is_empty() {
        let _ = writeln!(o, "  unknown ({})", unknown.len());
        for i in unknown {
            let _ = writeln!(o, "    {i}");
        }
    }
}

/// Bar columns of the text timeline: with the name and total columns a line stays under
/// 100 characters.
pub const TIMELINE_WIDTH: usize = 48;

/// The dashboard as plain text (no control codes), for `--once`.
pub fn render_text(m: &Model) -> String {
    render_text_with(m, None)
}

/// [`render_text`] with the run's compact timeline (see [`crate::timeline::text`]) after the
/// categories: which services took long, where they queued, what ran in parallel.
pub fn render_text_with(m: &Model, timeline: Option<&Timeline>) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "dockhand monitor: {}", title_line(m));
    if let Some(n) = &m.note {
        let _ = writeln!(o, "note: {n}");
    }
    if let Some(j) = &m.journal {
        let c = j.counts();
        let width = 30;
        let filled = (c.ratio() * width as f64).round() as usize;
        let _ = writeln!(
            o,
            "progress: [{}{}] {}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            progress_label(&c)
        );
        services_section(&mut o, j);
        let _ = writeln!(o, "\ncategories:");
        let rows: Vec<_> = j
            .categories()
            .iter()
            .map(|(n, c)| category_cells(n, c))
            .collect();
        o += &table::render(&CATEGORY_HEADER, &rows, "  ");
    }
    if let Some(t) = timeline.filter(|t| t.rows.iter().any(|r| !r.segments.is_empty())) {
        let _ = writeln!(o);
        o += &crate::timeline::text::render(t, TIMELINE_WIDTH);
    }
    let _ = writeln!(o, "\nrecent activity:");
    if m.activity.is_empty() {
        let _ = writeln!(o, "  (none yet)");
    }
    for a in m.activity.iter().take(15) {
        let _ = writeln!(
            o,
            "  {}  {:<24} {:<12} {}",
            clock(&a.at),
            a.service,
            a.phase,
            a.detail
        );
    }
    // no trailing spaces from an empty detail
    o = o.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n";
    let _ = writeln!(o, "\ncontainers:");
    match (&m.containers, m.container_rows()) {
        (ContainerView::Unavailable(why), _) => {
            let _ = writeln!(o, "  unavailable: {why}");
        }
        (_, None) => {
            let _ = writeln!(o, "  (waiting for Docker)");
        }
        (_, Some(rows)) if rows.is_empty() => {
            let _ = writeln!(o, "  (no containers for this run's services)");
        }
        (_, Some(rows)) => {
            let t: Vec<_> = rows.into_iter().map(container_cells).collect();
            o += &table::render(&CONTAINER_HEADER, &t, "  ");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::model::TaskCell;
    use crate::monitor::model::fixtures::*;

    #[test]
    fn a_swarm_task_shows_its_states_node_and_replaced_tasks() {
        let mut r = row("weather-api", "healthy");
        r.restarts = Some(2);
        r.task = Some(TaskCell {
            slot: 1,
            node: "node-a".into(),
            desired: "running".into(),
            current: "running".into(),
        });
        let t = render_text(&model(FINISHED, ContainerView::Rows(vec![r])));
        assert!(
            t.contains("weather-api  task 1 @ node-a  running/running healthy  2"),
            "{t}"
        );
    }

    #[test]
    fn text_mode_has_the_same_information_and_no_control_codes() {
        let rows = vec![row("weather-api", "healthy")];
        let t = render_text(&model(FINISHED, ContainerView::Rows(rows)));
        assert!(!t.contains('\x1b'), "{t}");
        assert!(t.contains("5/5 done (100%)"), "{t}");
        assert!(t.contains("    energy-forecasting: build failed:"), "{t}");
        assert!(
            t.contains("  analytics    2      2     1          1"),
            "{t}"
        );
        assert!(t.contains("15:02:55  sports-api"), "{t}");
        assert!(t.contains("monfix_weather-api_1  healthy"), "{t}");
        assert!(
            t.lines().all(|l| l == l.trim_end()),
            "trailing spaces:\n{t}"
        );
    }
}
