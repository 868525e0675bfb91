//! The live dashboard drawn with ratatui. [`render`] is pure (everything comes from the
//! [`Model`]), so tests draw it on a `TestBackend`; ratatui diffs frames, so a redraw
//! rewrites only the cells that changed: no flicker.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Gauge, Paragraph, Row, Table, Wrap};

use super::journal::{GROUPS, Journal, Status, label};
use super::model::{ContainerView, Model};
use super::text::{
    CATEGORY_HEADER, CONTAINER_HEADER, category_cells, clock, container_cells, group_items,
    progress_label, title_line, unknown_items,
};

/// The colour of a status group's heading.
fn status_color(s: Status) -> Color {
    match s {
        Status::Completed => Color::Green,
        Status::RolledBack => Color::Yellow,
        Status::Failed => Color::Red,
        Status::InProgress => Color::Cyan,
        Status::Pending => Color::Gray,
    }
}

fn bordered(title: &str) -> Block<'_> {
    Block::bordered().title(Span::styled(
        format!(" {title} "),
        Style::new().add_modifier(Modifier::BOLD),
    ))
}

/// Draws the dashboard. Pure: everything comes from `m`.
pub fn render(frame: &mut Frame, m: &Model) {
    let [header, gauge, middle, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Min(8),
        Constraint::Min(8),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let mut head = vec![Span::styled(
        format!(" dockhand monitor · {}", title_line(m)),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(n) = &m.note {
        head.push(Span::styled(
            format!("  ({n})"),
            Style::new().fg(Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(head)), header);

    let counts = m.journal.as_ref().map(Journal::counts).unwrap_or_default();
    let bad = counts.failed + counts.rolled_back > 0;
    frame.render_widget(
        Gauge::default()
            .block(bordered("progress"))
            .gauge_style(Style::new().fg(if bad { Color::Yellow } else { Color::Green }))
            .ratio(counts.ratio().clamp(0.0, 1.0))
            .label(progress_label(&counts)),
        gauge,
    );

    let [services, categories] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    render_services(frame, m, services);
    render_categories(frame, m, categories);

    let [activity, containers] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    render_activity(frame, m, activity);
    render_containers(frame, m, containers);

    frame.render_widget(
        Paragraph::new(" q / Esc / Ctrl-C: quit").style(Style::new().fg(Color::DarkGray)),
        footer,
    );
}

fn render_services(frame: &mut Frame, m: &Model, area: Rect) {
    let mut lines = Vec::new();
    match &m.journal {
        None => lines.push(Line::from(
            m.note.clone().unwrap_or_else(|| "waiting for a run".into()),
        )),
        Some(j) => {
            for st in GROUPS {
                let items = group_items(j, st);
                let head = Span::styled(
                    format!("{} ({})", label(st), items.len()),
                    Style::new()
                        .fg(status_color(st))
                        .add_modifier(Modifier::BOLD),
                );
                match st {
                    Status::Failed | Status::RolledBack => {
                        lines.push(Line::from(head));
                        for i in items {
                            lines.push(Line::from(format!("  {i}")));
                        }
                    }
                    _ => lines.push(Line::from(vec![
                        head,
                        Span::raw(if items.is_empty() { "" } else { ": " }),
                        Span::raw(items.join(", ")),
                    ])),
                }
            }
            let unknown = unknown_items(j);
            if !unknown.is_empty() {
                lines.push(Line::from(Span::styled(
                    format!("unknown ({})", unknown.len()),
                    Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
                )));
                lines.extend(unknown.into_iter().map(|i| Line::from(format!("  {i}"))));
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(bordered("services"))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn styled_table<'a, const N: usize>(
    header: [&'a str; N],
    rows: Vec<Row<'a>>,
    widths: [Constraint; N],
    title: &'a str,
) -> Table<'a> {
    Table::new(rows, widths)
        .header(
            Row::new(header.map(Cell::from))
                .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
        )
        .block(bordered(title))
        .column_spacing(1)
}

fn render_categories(frame: &mut Frame, m: &Model, area: Rect) {
    let rows: Vec<Row> = m
        .journal
        .iter()
        .flat_map(|j| j.categories())
        .map(|(n, c)| {
            let style = if c.failed + c.rolled_back > 0 {
                Style::new().fg(Color::Yellow)
            } else if c.completed == c.total {
                Style::new().fg(Color::Green)
            } else {
                Style::new()
            };
            Row::new(category_cells(&n, &c)).style(style)
        })
        .collect();
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    frame.render_widget(
        styled_table(CATEGORY_HEADER, rows, widths, "categories"),
        area,
    );
}

fn render_activity(frame: &mut Frame, m: &Model, area: Rect) {
    let rows: Vec<Line> = m
        .activity
        .iter()
        .take(area.height.saturating_sub(2) as usize)
        .map(|a| {
            let color = match a.phase.as_str() {
                "completed" => Color::Green,
                "failed" => Color::Red,
                "rolled-back" | "rolling-back" => Color::Yellow,
                _ => Color::Reset,
            };
            Line::from(vec![
                Span::styled(clock(&a.at).to_string(), Style::new().fg(Color::DarkGray)),
                Span::raw(format!(" {} ", a.service)),
                Span::styled(a.phase.clone(), Style::new().fg(color)),
                Span::raw(if a.detail.is_empty() {
                    String::new()
                } else {
                    format!(" {}", a.detail)
                }),
            ])
        })
        .collect();
    let p = if rows.is_empty() {
        Paragraph::new("(none yet)")
    } else {
        Paragraph::new(rows)
    };
    frame.render_widget(p.block(bordered("recent activity")), area);
}

fn render_containers(frame: &mut Frame, m: &Model, area: Rect) {
    let msg = match (&m.containers, m.container_rows()) {
        (ContainerView::Unavailable(why), _) => Some(format!("Docker unavailable: {why}")),
        (_, None) => Some("connecting to Docker…".into()),
        (_, Some(rows)) if rows.is_empty() => Some("no containers for this run's services".into()),
        _ => None,
    };
    if let Some(msg) = msg {
        frame.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: true })
                .block(bordered("containers")),
            area,
        );
        return;
    }
    let rows: Vec<Row> = m
        .container_rows()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let color = match r.health.as_str() {
                _ if r.state != "running" => Color::Red,
                "healthy" => Color::Green,
                "unhealthy" => Color::Red,
                "starting" => Color::Yellow,
                _ => Color::Reset,
            };
            let cells = container_cells(r);
            Row::new(
                cells
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i == 2 {
                            Cell::from(c).style(Style::new().fg(color))
                        } else {
                            Cell::from(c)
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    // The container name is the least useful column when space is short.
    let widths = [
        Constraint::Length(20),
        Constraint::Fill(1),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(9),
    ];
    frame.render_widget(
        styled_table(CONTAINER_HEADER, rows, widths, "containers"),
        area,
    );
}

/// Whether a key quits: `q`, Esc or Ctrl-C (raw mode turns Ctrl-C into a key).
pub fn is_quit(k: &KeyEvent) -> bool {
    k.kind != KeyEventKind::Release
        && match k.code {
            KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => k.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::model::fixtures::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::SystemTime;

    /// The rendered screen, one string per row.
    fn screen(m: &Model, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, m)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
            .collect()
    }

    fn has(screen: &[String], needle: &str) -> bool {
        screen.iter().any(|l| l.contains(needle))
    }

    /// The numbers on the row of a table that starts with `name`.
    fn row_numbers(screen: &[String], name: &str) -> Vec<usize> {
        let line = screen
            .iter()
            .find(|l| l.contains(&format!("│{name} ")) || l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row {name} in\n{}", screen.join("\n")));
        let after = &line[line.find(name).unwrap() + name.len()..];
        after
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect()
    }

    #[test]
    fn in_progress_run_shows_progress_groups_and_categories() {
        let m = model(IN_PROGRESS, ContainerView::Waiting);
        let s = screen(&m, 150, 40);
        let all = s.join("\n");
        assert!(has(&s, "run phase1-20260204-140000"), "{all}");
        assert!(has(&s, "2/8 done (25%)"), "{all}");
        assert!(has(&s, "completed (2): weather-api, ai-core"), "{all}");
        assert!(has(&s, "sports-api (recreated)"), "{all}");
        assert!(has(&s, "ml-service (building)"), "{all}");
        assert!(has(&s, "pending (3)"), "{all}");
        // total, done, completed, failed, running, pending
        assert_eq!(row_numbers(&s, "integration"), [4, 1, 1, 0, 2, 1], "{all}");
        assert_eq!(row_numbers(&s, "ai-ml"), [3, 1, 1, 0, 1, 1], "{all}");
        assert_eq!(row_numbers(&s, "device"), [1, 0, 0, 0, 0, 1], "{all}");
        // newest activity first, with its time
        let act = s
            .iter()
            .position(|l| l.contains("14:01:31 sports-api recreated"));
        let older = s
            .iter()
            .position(|l| l.contains("14:01:12 weather-api completed"));
        assert!(act.is_some() && older.is_some() && act < older, "{all}");
        assert!(has(&s, "elapsed 2m00s") || has(&s, "· 2m00s"), "{all}");
        assert!(has(&s, "connecting to Docker"), "{all}");
    }

    #[test]
    fn finished_run_shows_the_rollback_and_the_failure_with_reasons() {
        let m = model(FINISHED, ContainerView::Waiting);
        let s = screen(&m, 180, 40);
        let all = s.join("\n");
        assert!(has(&s, "5/5 done (100%)"), "{all}");
        assert!(has(&s, "3 completed, 1 rolled back, 1 failed"), "{all}");
        assert!(has(&s, "rolled back (1)"), "{all}");
        assert!(
            has(
                &s,
                "sports-api: not healthy within 60s (health_timeout_s); Docker health: unhealthy"
            ),
            "{all}"
        );
        assert!(has(&s, "energy-forecasting: build failed:"), "{all}");
        assert!(
            has(&s, "failed · 3m05s"),
            "run status and its wall time: {all}"
        );
        assert_eq!(row_numbers(&s, "integration"), [3, 3, 2, 1, 0, 0], "{all}");
        assert_eq!(row_numbers(&s, "analytics"), [2, 2, 1, 1, 0, 0], "{all}");
        assert_eq!(m.exit_code(), 1);
        assert_eq!(model(IN_PROGRESS, ContainerView::Waiting).exit_code(), 0);
    }

    #[test]
    fn container_panel_shows_the_runs_containers_or_why_not() {
        let rows = vec![
            row("weather-api", "healthy"),
            row("sports-api", "starting"),
            row("influxdb", "healthy"),
        ];
        let m = model(FINISHED, ContainerView::Rows(rows));
        let s = screen(&m, 180, 40);
        let all = s.join("\n");
        if std::env::var("SHOW_SCREEN").is_ok() {
            println!("{all}");
        }
        assert!(has(&s, "weather-api"), "{all}");
        let line = s
            .iter()
            .find(|l| l.contains("monfix_sports-api_1"))
            .unwrap();
        for cell in ["starting", "2m05s", "1.2", "3.3 MiB"] {
            assert!(line.contains(cell), "{cell} missing in {line}");
        }
        assert!(!has(&s, "influxdb"), "not one of the run's services: {all}");

        let m = model(
            FINISHED,
            ContainerView::Unavailable("cannot reach Docker at unix:///nowhere".into()),
        );
        let s = screen(&m, 180, 40);
        assert!(
            has(&s, "Docker unavailable: cannot reach Docker"),
            "{}",
            s.join("\n")
        );
        // the journal panels still work
        assert!(has(&s, "5/5 done"));
    }

    #[test]
    fn empty_and_just_started_journals_render() {
        let m = model(EMPTY, ContainerView::Rows(vec![]));
        let s = screen(&m, 120, 30);
        assert!(has(&s, "0/0 done (0%)"), "{}", s.join("\n"));
        let m = model(JUST_STARTED, ContainerView::Rows(vec![]));
        let s = screen(&m, 120, 30);
        assert!(has(&s, "0/2 done (0%)"), "{}", s.join("\n"));
        assert!(has(&s, "pending (2): weather-api, sports-api"));
        assert!(has(&s, "started phase1-20260204-160000"));
        // no journal at all: the reason is shown
        let m = Model {
            journal: None,
            note: Some("no rebuild run found in x".into()),
            activity: vec![],
            containers: ContainerView::Waiting,
            now: SystemTime::now(),
        };
        let s = screen(&m, 120, 30);
        assert!(has(&s, "no rebuild run found in x"));
        assert_eq!(m.exit_code(), 2);
        // a tiny terminal does not panic
        screen(&model(FINISHED, ContainerView::Waiting), 20, 5);
    }

    #[test]
    fn quit_keys() {
        let key = |c, m| KeyEvent::new(c, m);
        assert!(is_quit(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_quit(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_quit(&key(KeyCode::Char('x'), KeyModifiers::NONE)));
        let mut release = key(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert!(!is_quit(&release));
    }
}
