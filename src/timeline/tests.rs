use std::time::SystemTime;

use super::*;

const TWO: &str = include_str!("../../tests/fixtures/timeline/rebuild-2.json");
const MANY: &str = include_str!("../../tests/fixtures/timeline/rebuild-45.json");
const LIVE: &str = include_str!("../../tests/fixtures/timeline/in-flight.json");
const OLD: &str = include_str!("../../tests/fixtures/monitor/finished-rollback.json");

fn timeline(text: &str, now: Option<SystemTime>) -> Timeline {
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    Timeline::from_journal("fixture", &doc, now).unwrap()
}

fn row<'t>(t: &'t Timeline, name: &str) -> &'t Row {
    t.rows.iter().find(|r| r.name == name).unwrap()
}

#[test]
fn phases_are_laid_end_to_end_from_the_services_start() {
    let t = timeline(TWO, None);
    assert_eq!(t.run, "tl-2");
    let web = row(&t, "web");
    let steps: Vec<Step> = web.segments.iter().map(|s| s.step).collect();
    // zero-length waits are not bars
    assert_eq!(
        steps,
        [
            Step::Build,
            Step::Recreate,
            Step::Health,
            Step::Probe,
            Step::Settle
        ]
    );
    assert_eq!(web.segments[0].start_ms, 100.0);
    for w in web.segments.windows(2) {
        assert_eq!(w[0].end_ms, w[1].start_ms);
    }
    assert_eq!(web.outcome, Outcome::Completed);
}

#[test]
fn a_rollback_is_the_time_after_the_last_timed_phase() {
    let t = timeline(TWO, None);
    let api = row(&t, "api");
    assert_eq!(api.outcome, Outcome::RolledBack);
    let last = api.segments.last().unwrap();
    assert_eq!(last.step, Step::Rollback);
    assert_eq!(last.end_ms, 89_992.0);
    assert_eq!(t.span_ms, 89_992.0);
    // the run ended with api, so it is on the critical path
    assert!(api.is_critical());
    assert_eq!(
        t.critical.last().copied(),
        t.rows.iter().position(|r| r.name == "api")
    );
}

#[test]
fn rows_are_grouped_in_category_bands() {
    let t = timeline(MANY, None);
    assert_eq!(t.rows.len(), 45);
    let bands = t.bands();
    let names: Vec<&str> = bands.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "core",
            "integration",
            "ai-ml",
            "device",
            "automation",
            "analytics",
            "frontends"
        ]
    );
    assert_eq!(bands.iter().map(|(_, r)| r.len()).sum::<usize>(), 45);
}

#[test]
fn the_critical_path_walks_back_through_the_waits() {
    let t = timeline(MANY, None);
    assert!(t.critical.len() > 2, "{:?}", t.critical);
    let rows: Vec<&Row> = t.critical.iter().map(|i| &t.rows[*i]).collect();
    // it ends with the service that finished last, and goes back in time
    let last_end = t.rows.iter().filter_map(Row::end_ms).fold(0.0, f64::max);
    assert_eq!(rows.last().unwrap().end_ms(), Some(last_end));
    for w in rows.windows(2) {
        assert!(
            w[0].start_ms() <= w[1].start_ms(),
            "{} then {}",
            w[0].name,
            w[1].name
        );
    }
    let critical_bars = t
        .rows
        .iter()
        .flat_map(|r| &r.segments)
        .filter(|s| s.critical)
        .count();
    assert!(critical_bars >= t.critical.len());
}

#[test]
fn a_service_in_flight_ends_now_or_at_the_last_write() {
    let t = timeline(LIVE, None);
    let db = row(&t, "db");
    assert_eq!(db.outcome, Outcome::InProgress);
    let s = db.segments.last().unwrap();
    assert_eq!(s.step, Step::InFlight);
    let later = humantime::parse_rfc3339("2026-02-04T15:10:00Z").unwrap();
    let t = timeline(LIVE, Some(later));
    assert_eq!(row(&t, "db").end_ms(), Some(600_000.0));
}

#[test]
fn a_journal_without_phase_times_still_draws_each_service() {
    let t = timeline(OLD, None);
    assert_eq!(t.rows.len(), 5);
    let w = row(&t, "weather-api");
    assert_eq!(w.segments.len(), 1);
    assert_eq!(w.segments[0].step, Step::Untimed);
    let sports = row(&t, "sports-api");
    assert_eq!(sports.segments[0].step, Step::Rollback);
    // failed without finished_at: up to its last write
    let f = row(&t, "energy-forecasting");
    assert_eq!(f.segments[0].step, Step::Failure);
}

#[test]
fn hostile_text_is_escaped() {
    assert_eq!(
        svg::esc("<a href=\"x\">&'\u{1}\u{7}"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}\u{FFFD}"
    );
    let out = svg::render(&timeline(MANY, None));
    assert!(
        !out.contains("<svg onload"),
        "raw markup from a service name"
    );
    assert!(
        out.contains("evil&lt;svg onload=alert(1)&gt;"),
        "escaped name missing"
    );
    assert!(!out.contains('\u{1}'));
    assert!(!out.contains("<script"));
}

#[test]
fn the_svg_has_a_row_per_service_and_the_same_height_per_row() {
    let two = svg::render(&timeline(TWO, None));
    let many = svg::render(&timeline(MANY, None));
    assert_eq!(two.matches("<g><title>").count(), 2);
    assert_eq!(many.matches("<g><title>").count(), 45);
    assert!(two.contains("height=\"182\""), "{two}");
    assert!(many.contains("height=\"1042\""));
    assert!(many.contains("a-very-long-service-name-…"));
}

#[test]
fn the_text_timeline_has_a_line_per_service() {
    let t = timeline(TWO, None);
    let out = text::render(&t, 40);
    assert!(
        out.starts_with("timeline (0s → 1m30s, one column = 2s; * = critical path):"),
        "{out}"
    );
    let api = out.lines().find(|l| l.contains(" api ")).unwrap();
    assert!(api.starts_with("  * api"), "{out}");
    assert!(api.ends_with("1m30s rolled back"), "{out}");
    assert!(api.contains("|BBBBBBBBBBBrrrrrrr"), "{out}");
    assert!(out.contains("legend: B build · R recreate"), "{out}");
    assert!(out.lines().all(|l| l == l.trim_end()));
}

#[test]
fn the_trace_has_a_process_per_run_and_a_thread_per_service() {
    let runs = [timeline(TWO, None), timeline(LIVE, None)];
    let v = trace::chrome_trace(&runs);
    let ev = v["traceEvents"].as_array().unwrap();
    let procs: Vec<_> = ev.iter().filter(|e| e["name"] == "process_name").collect();
    assert_eq!(procs.len(), 2);
    assert_eq!(procs[0]["args"]["name"], "dockhand run tl-2 (homeiq)");
    let threads = ev.iter().filter(|e| e["name"] == "thread_name").count();
    assert_eq!(threads, 5);
    let build = ev
        .iter()
        .find(|e| e["ph"] == "X" && e["pid"] == 1 && e["name"] == "build")
        .unwrap();
    // 2026-02-04T15:00:00.100Z in microseconds
    assert_eq!(build["ts"].as_f64(), Some(1_770_217_200_100_000.0));
    assert!(ev.iter().any(|e| e["ph"] == "i" && e["name"] == "rollback"));
}

#[test]
fn durations_and_ticks_are_short_and_round() {
    assert_eq!(text::duration(0.0), "0s");
    assert_eq!(text::duration(250.0), "250ms");
    assert_eq!(text::duration(185_321.0), "3m05s");
    assert_eq!(text::duration(3_725_000.0), "1h02m");
    assert_eq!(text::tick_step(90_000.0), 10_000.0);
    assert_eq!(text::tick_step(185_000.0), 30_000.0);
}

#[test]
fn trace_on_exit_writes_the_runs_written_since_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(crate::journal::STATE_DIR);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("old.json"), TWO.replace("tl-2", "old")).unwrap();
    let old = SystemTime::now() - std::time::Duration::from_secs(3600);
    let f = std::fs::File::options()
        .write(true)
        .open(state.join("old.json"))
        .unwrap();
    f.set_modified(old).unwrap();
    let out = dir.path().join("trace.json");
    let t = TraceOnExit::start(dir.path().to_path_buf(), out.clone());
    std::fs::write(state.join("tl-2.json"), TWO).unwrap();
    std::fs::write(state.join("fleet-homeiq.json"), "{\"records\":{}}").unwrap();
    t.write();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["otherData"]["runs"], serde_json::json!(["tl-2"]));
    let spans = v["traceEvents"].as_array().unwrap();
    assert_eq!(spans.iter().filter(|e| e["ph"] == "X").count(), 8);
}

mod otlp_spans {
    use super::*;
    use crate::timeline::otlp;
    use opentelemetry::trace::{SpanId, Status};
    use opentelemetry_sdk::trace::RandomIdGenerator;

    fn spans_of(text: &str) -> Vec<opentelemetry_sdk::trace::SpanData> {
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let t = Timeline::from_journal("fixture", &doc, None).unwrap();
        otlp::spans(&t, &doc, &RandomIdGenerator::default())
    }

    fn attr(s: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn a_run_is_a_root_a_child_per_service_and_a_grandchild_per_phase() {
        let spans = spans_of(TWO);
        let root = &spans[0];
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert_eq!(root.name, "dockhand run tl-2");
        let trace = root.span_context.trace_id();
        assert!(spans.iter().all(|s| s.span_context.trace_id() == trace));
        let by_id = |id: SpanId| spans.iter().find(|s| s.span_context.span_id() == id);
        let services: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == root.span_context.span_id())
            .collect();
        assert_eq!(
            services.iter().map(|s| &*s.name).collect::<Vec<_>>(),
            ["web", "api"]
        );
        for s in &spans[1..] {
            let parent = by_id(s.parent_span_id).expect("every parent is in the batch");
            assert!(s.start_time >= parent.start_time && s.end_time <= parent.end_time);
            assert!(s.start_time <= s.end_time);
        }
        // 2 services + their 8 timed phases + api's gate-failed-and-rollback stretch
        assert_eq!(spans.len(), 1 + 2 + 8);
        let api = services.iter().find(|s| s.name == "api").unwrap();
        assert_eq!(
            attr(api, "dockhand.outcome").as_deref(),
            Some("rolled back")
        );
        assert_eq!(attr(api, "dockhand.gate.result").as_deref(), Some("failed"));
        assert!(attr(api, "dockhand.image.old_id").is_some());
        assert!(attr(api, "dockhand.failure.reason").is_some());
        assert!(matches!(api.status, Status::Error { .. }));
        assert_eq!(api.events.events.len(), 1);
        assert_eq!(api.events.events[0].name, "rollback");
        let web = services.iter().find(|s| s.name == "web").unwrap();
        assert_eq!(attr(web, "dockhand.gate.result").as_deref(), Some("passed"));
        assert_eq!(web.status, Status::Ok);
    }

    #[test]
    fn hostile_text_is_cut_and_a_pending_service_still_has_a_span() {
        let long = "x".repeat(otlp::MAX_TEXT * 3);
        let doc = serde_json::json!({ "records": {
            "_run": { "run": "r", "started_at": "2026-02-04T15:00:00Z", "services": ["a", "b"] },
            "a": { "status": "failed", "reason": long, "started_at": "2026-02-04T15:00:01Z",
                   "finished_at": "2026-02-04T15:00:03Z", "phase_ms": { "build": -5 } },
            "b": { "status": "pending" },
        }});
        let t = Timeline::from_journal("r", &doc, None).unwrap();
        let spans = otlp::spans(&t, &doc, &RandomIdGenerator::default());
        let a = spans.iter().find(|s| s.name == "a").unwrap();
        let reason = attr(a, "dockhand.failure.reason").unwrap();
        assert!(reason.len() <= otlp::MAX_TEXT + 4, "{}", reason.len());
        let b = spans.iter().find(|s| s.name == "b").unwrap();
        assert_eq!(b.start_time, b.end_time);
        assert_eq!(
            attr(b, "dockhand.gate.result").as_deref(),
            Some("not-reached")
        );
    }

    #[test]
    fn the_endpoint_is_the_flag_then_the_traces_variable_then_the_base_variable() {
        let none = |_: &str| None;
        assert_eq!(otlp::endpoint(None, none), None);
        assert_eq!(
            otlp::endpoint(Some("http://h:4318/"), none).as_deref(),
            Some("http://h:4318/v1/traces")
        );
        assert_eq!(
            otlp::endpoint(Some("http://h:4318/v1/traces"), none).as_deref(),
            Some("http://h:4318/v1/traces")
        );
        let env = |k: &str| match k {
            otlp::ENV_ENDPOINT => Some("http://base:4318".to_string()),
            _ => None,
        };
        assert_eq!(
            otlp::endpoint(None, env).as_deref(),
            Some("http://base:4318/v1/traces")
        );
        assert_eq!(
            otlp::endpoint(Some("http://flag:1"), env).as_deref(),
            Some("http://flag:1/v1/traces")
        );
        let traces = |k: &str| match k {
            otlp::ENV_TRACES_ENDPOINT => Some("http://t:9/custom".to_string()),
            _ => Some("http://base:4318".to_string()),
        };
        assert_eq!(
            otlp::endpoint(None, traces).as_deref(),
            Some("http://t:9/custom")
        );
        assert_eq!(otlp::endpoint(Some("  "), none), None);
    }
}

#[test]
fn a_swarm_service_shows_its_push_and_swarms_update() {
    let doc = r#"{"version": 1, "name": "sw", "records": {"web": {"service": "web",
        "started_at": "2026-02-04T15:00:00.000Z", "phase": "completed", "status": "completed",
        "phase_ms": {"queued": 0, "build": 1000, "push": 70, "deploy_queued": 0,
                     "update": 11000, "probe": 20, "settle": 2000},
        "total_s": 14.09, "finished_at": "2026-02-04T15:00:14.090Z"},
        "_run": {"run": "sw", "services": ["web"], "started_at": "2026-02-04T15:00:00.000Z",
                 "status": "completed", "finished_at": "2026-02-04T15:00:14.090Z"}}}"#;
    let t = timeline(doc, None);
    let steps: Vec<Step> = row(&t, "web").segments.iter().map(|s| s.step).collect();
    use Step::*;
    assert_eq!(steps, [Build, Push, Update, Probe, Settle]);
    let out = text::render(&t, 80);
    assert!(out.contains("p push · U Swarm update"), "{out}");
}
