//! The run's critical path: the chain of work that decided when the run ended.
//!
//! The journal does not say who waited for whom, but the waits say it indirectly: a
//! service's build-queue wait ends when some other service's build frees a build slot, and
//! its deploy-queue wait ends when some other service's deploy (its whole record) ends. So
//! the path starts at the service that finished last and walks back: through its latest
//! wait to the service whose release ended that wait, and so on, until a service did not
//! wait (or no release lines up with its wait — a blocked start, a resumed run). Every bar
//! on the path is marked [`Segment::critical`](super::Segment).

use std::collections::HashSet;

use super::model::{Row, Step, Timeline};

/// A wait shorter than this had a slot free; it does not send the path elsewhere.
const MIN_WAIT_MS: f64 = 100.0;
/// A release may be recorded this much after the wait it ended (the two clocks are read
/// at slightly different moments).
const SLACK_MS: f64 = 500.0;

/// When `row` gave up the slot a `wait` waits for.
fn release(row: &Row, wait: Step) -> Option<f64> {
    match wait {
        Step::Queued => row.build_end_ms(),
        _ => row.end_ms(),
    }
}

/// The service whose release ended `rows[cur]`'s latest wait before `upto`: its index, the
/// release time, and when the wait ended.
fn blocker(
    rows: &[Row],
    cur: usize,
    upto: f64,
    seen: &HashSet<usize>,
) -> Option<(usize, f64, f64)> {
    let wait = rows[cur]
        .segments
        .iter()
        .rev()
        .find(|s| s.step.is_wait() && s.end_ms <= upto + SLACK_MS && s.ms() >= MIN_WAIT_MS)?;
    rows.iter()
        .enumerate()
        .filter(|(i, _)| *i != cur && !seen.contains(i))
        .filter_map(|(i, r)| Some((i, release(r, wait.step)?)))
        .filter(|(_, t)| *t >= wait.start_ms && *t <= wait.end_ms + SLACK_MS)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, t)| (i, t, wait.end_ms))
}

/// Marks the critical path of `t` (see the module docs).
pub fn mark(t: &mut Timeline) {
    let last = t
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.end_ms()?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((mut cur, mut upto)) = last else {
        return;
    };
    let mut seen = HashSet::new();
    let mut path = Vec::new();
    loop {
        seen.insert(cur);
        path.push(cur);
        let next = blocker(&t.rows, cur, upto, &seen);
        // This service is on the path from the end of the wait (or its start) to `upto`.
        let from = next.map_or(f64::MIN, |(_, _, wait_end)| wait_end);
        for s in &mut t.rows[cur].segments {
            if s.start_ms >= from - 1.0 && s.end_ms <= upto + SLACK_MS {
                s.critical = true;
            }
        }
        match next {
            Some((i, release, _)) => (cur, upto) = (i, release),
            None => break,
        }
    }
    path.reverse();
    t.critical = path;
}
