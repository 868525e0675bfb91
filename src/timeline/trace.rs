//! The timeline as a Chrome trace-event JSON document (the "JSON Object Format" that
//! Perfetto, `chrome://tracing` and speedscope open): one process per run, one thread per
//! service, a complete event (`"ph": "X"`) per phase, an instant event (`"ph": "i"`) where a
//! rollback starts.
//!
//! Times are microseconds since the Unix epoch (the run's own clock), so two runs in one
//! file line up as they happened. The service's category, outcome and reason ride in each
//! event's `args`, which trace viewers show on click.

use serde_json::{Value, json};

use super::model::{Step, Timeline};

fn process_events(pid: usize, t: &Timeline, out: &mut Vec<Value>) {
    let zero_us = t.epoch_ms.unwrap_or(0.0) * 1000.0;
    let mut name = format!("dockhand run {}", t.run);
    if let Some(p) = &t.project {
        name += &format!(" ({p})");
    }
    out.push(
        json!({ "ph": "M", "pid": pid, "tid": 0, "name": "process_name",
        "args": { "name": name } }),
    );
    for (i, r) in t.rows.iter().enumerate() {
        let tid = i + 1;
        out.push(
            json!({ "ph": "M", "pid": pid, "tid": tid, "name": "thread_name",
            "args": { "name": r.name } }),
        );
        out.push(
            json!({ "ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index",
            "args": { "sort_index": tid } }),
        );
        for s in &r.segments {
            let ts = (zero_us + s.start_ms * 1000.0).round();
            out.push(json!({
                "ph": "X", "pid": pid, "tid": tid, "name": s.step.key(),
                "cat": r.category, "ts": ts, "dur": (s.ms() * 1000.0).round(),
                "args": { "service": r.name, "category": r.category,
                    "outcome": r.outcome.label(), "critical": s.critical,
                    "reason": r.reason },
            }));
            if s.step == Step::Rollback {
                out.push(json!({ "ph": "i", "s": "t", "pid": pid, "tid": tid,
                    "name": "rollback", "ts": ts, "args": { "reason": r.reason } }));
            }
        }
    }
}

/// One trace document of `runs` (process ids 1, 2, … in the given order).
pub fn chrome_trace(runs: &[Timeline]) -> Value {
    let mut events = Vec::new();
    for (i, t) in runs.iter().enumerate() {
        process_events(i + 1, t, &mut events);
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms",
        "otherData": { "generator": "dockhand", "runs": runs.iter().map(|t| &t.run).collect::<Vec<_>>() } })
}
