//! `dockhand report timeline` and the monitor's text timeline through the real binary, on
//! journal fixtures (`tests/fixtures/timeline`, made by its `generate.py`): the SVG parses
//! as XML with a row for every service, hostile service names stay text, the Chrome trace
//! is JSON with the right events; `run --otlp` sends OpenTelemetry spans a receiver decodes
//! with the official protobuf definitions (`tests/otlp_receiver.py`).

mod common;

use common::Test;

const MANY: &str = include_str!("fixtures/timeline/rebuild-45.json");
const TWO: &str = include_str!("fixtures/timeline/rebuild-2.json");
const EVIL: &str = "evil<svg onload=alert(1)>&\"'\u{1}\u{202e}-name";

fn workspace() -> Test {
    Test::new()
        .file(".dockhand/state/tl-45.json", MANY)
        .file(".dockhand/state/tl-2.json", TWO)
        .file(
            ".dockhand/state/fleet-homeiq.json",
            r#"{"version":1,"records":{"last":{"run":"tl-2","started_at":"2026-02-04T15:00:00.000Z"}}}"#,
        )
}

/// The row tooltips (`<g><title>`) of an SVG document, which must parse.
fn rows(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    for n in doc.descendants().filter(|n| n.is_element()) {
        let tag = n.tag_name().name();
        assert!(
            !["script", "foreignObject", "image", "use", "a", "style"].contains(&tag),
            "<{tag}>"
        );
        for a in n.attributes() {
            assert!(!a.name().starts_with("on"), "event attribute {}", a.name());
            assert!(
                !a.value().contains("url("),
                "external reference {}",
                a.value()
            );
        }
    }
    doc.descendants()
        .filter(|n| n.has_tag_name("g"))
        .filter_map(|g| g.first_element_child())
        .filter(|t| t.has_tag_name("title"))
        .map(|t| t.text().unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_svg_is_xml_with_a_row_for_every_service() {
    let ran = workspace()
        .args(&["report", "timeline", "--run", "tl-45", "-o", "rebuild.svg"])
        .stderr_has("wrote the timeline of run tl-45 (45 services) to rebuild.svg")
        .run();
    let svg = std::fs::read_to_string(ran.path("rebuild.svg")).unwrap();
    let rows = rows(&svg);
    assert_eq!(rows.len(), 45);
    let doc: serde_json::Value = serde_json::from_str(MANY).unwrap();
    for name in doc["records"]["_run"]["services"].as_array().unwrap() {
        let name = name.as_str().unwrap().replace('\u{1}', "\u{FFFD}");
        assert!(
            rows.iter().any(|r| r.starts_with(&format!("{name} ("))),
            "no row for {name}"
        );
    }
    let sports = rows.iter().find(|r| r.starts_with("sports-api ")).unwrap();
    assert!(
        sports.starts_with("sports-api (integration): rolled back; build queue"),
        "{sports}"
    );
    assert!(sports.contains("gate failed + rollback 1m04s"), "{sports}");
    assert!(sports.ends_with("Docker health: unhealthy"), "{sports}");
    assert!(
        !svg.contains("http://") || svg.matches("http://").count() == 1,
        "only the SVG namespace"
    );
}

#[test]
fn hostile_names_stay_text() {
    let ran = workspace()
        .args(&["report", "timeline", "--run", "tl-45", "-o", "t.svg"])
        .run();
    let svg = std::fs::read_to_string(ran.path("t.svg")).unwrap();
    let rows = rows(&svg);
    let evil = EVIL.replace('\u{1}', "\u{FFFD}");
    assert!(rows.iter().any(|r| r.starts_with(&evil)), "{rows:?}");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(labels.contains(&"evil<svg onload=alert(1)>…"), "{labels:?}");
    // the text chart drops control and direction-override characters
    let ran = workspace()
        .args(&["report", "timeline", "--run", "tl-45", "--format", "text"])
        .run();
    let out = ran.stdout();
    assert!(out.contains("  * evil<svg onload=alert(1) |"), "{out}");
    assert!(!out.contains('\u{1}') && !out.contains('\u{202e}'));
}

#[test]
fn two_services_read_the_same_and_the_last_run_is_the_default() {
    let ran = workspace().args(&["report", "timeline"]).run();
    let rows = rows(&ran.stdout());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[1].starts_with("api (integration): rolled back"),
        "{rows:?}"
    );
    assert!(ran.stdout().contains("rebuild tl-2 · project homeiq"));
}

#[test]
fn the_trace_is_json_with_a_thread_per_service_and_a_span_per_phase() {
    let ran = workspace()
        .args(&[
            "report", "timeline", "--run", "tl-2", "--format", "trace", "-o", "run.json",
        ])
        .run();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ran.path("run.json")).unwrap()).unwrap();
    let ev = v["traceEvents"].as_array().unwrap();
    let names = |ph: &str, tid: u64| -> Vec<&str> {
        ev.iter()
            .filter(|e| e["ph"] == ph && e["tid"] == tid)
            .map(|e| e["name"].as_str().unwrap())
            .collect()
    };
    assert_eq!(names("M", 0), ["process_name"]);
    assert_eq!(
        names("X", 1),
        ["build", "recreate", "health", "probe", "settle"]
    );
    assert_eq!(names("X", 2), ["build", "recreate", "gate_rollback"]);
    assert_eq!(names("i", 2), ["rollback"]);
    for e in ev.iter().filter(|e| e["ph"] == "X") {
        assert_eq!(e["pid"], 1);
        assert!(e["dur"].as_f64().unwrap() > 0.0, "{e}");
        assert!(e["ts"].as_f64().unwrap() >= 1_770_217_200_000_000.0, "{e}");
    }
    let settle = ev.iter().find(|e| e["name"] == "settle").unwrap();
    assert_eq!(settle["dur"], 2_000_000.0);
    assert_eq!(settle["args"]["service"], "web");
}

#[test]
fn no_run_is_a_usage_error_that_says_what_to_do() {
    Test::new()
        .args(&["report", "timeline"])
        .status(2)
        .stderr_has("no rebuild run found in")
        .run();
    Test::new()
        .args(&["report", "timeline", "--run", "../etc"])
        .status(2)
        .stderr_has("run id '../etc' must be")
        .run();
    workspace()
        .args(&[
            "report",
            "timeline",
            "--run",
            "tl-2",
            "-o",
            "no/such/dir/t.svg",
        ])
        .status(2)
        .stderr_has("the directory no/such/dir does not exist")
        .run();
}

#[test]
fn help_teaches_with_examples() {
    Test::new()
        .args(&["report", "timeline", "--help"])
        .stdout_has("dockhand report timeline -o rebuild.svg")
        .stdout_has("critical path")
        .stdout_has("--format <FORMAT>")
        .run();
}

#[test]
fn monitor_once_shows_the_text_timeline() {
    let ran = workspace()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(&["monitor", "--once", "--run", "tl-2"])
        .status(1)
        .stdout_has("timeline (0s → 1m30s, one column = 2s; * = critical path):")
        .run();
    let out = ran.stdout();
    let api = out
        .lines()
        .find(|l| l.starts_with("  * api "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(api.ends_with("1m30s rolled back"), "{api}");
    assert!(out.find("timeline (").unwrap() < out.find("recent activity:").unwrap());
    let chart = &out[out.find("timeline (").unwrap()..out.find("recent activity:").unwrap()];
    assert!(chart.lines().all(|l| l.chars().count() < 100), "{chart}");
}

#[test]
fn story_12_embeds_the_timeline_next_to_the_report() {
    let pb = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks/story-12-completion-report.rhai");
    let ran = workspace()
        .args(&[
            "run",
            pb.to_str().unwrap(),
            "--project",
            "homeiq",
            "--run",
            "tl-45",
        ])
        .status(1)
        .run();
    let md =
        std::fs::read_to_string(ran.path("docs/planning/phase1-completion-report.md")).unwrap();
    assert!(
        md.contains("![Rebuild timeline of run tl-45](phase1-completion-report-timeline.svg)"),
        "{md}"
    );
    let svg =
        std::fs::read_to_string(ran.path("docs/planning/phase1-completion-report-timeline.svg"))
            .unwrap();
    assert_eq!(rows(&svg).len(), 45);
}

#[test]
fn the_host_functions_refuse_what_is_not_a_journal() {
    Test::new()
        .script("report::timeline_svg(#{ version: 1 })")
        .status(2)
        .stderr_has("report: not a run journal (no `records` map)")
        .run();
    Test::new()
        .file(".dockhand/state/tl-2.json", TWO)
        .script(r#"print(report::timeline_text(fs::read_json(".dockhand/state/tl-2.json"), 20));"#)
        .stderr_has("  * api                      |BBBBBBrrrrrrrrrrrrrr|  1m30s rolled back")
        .run();
}

/// `dockhand run --trace FILE` (wired in `src/cli/run.rs` with `timeline::TraceOnExit`):
/// skipped, saying so, in a build whose `run` does not list the option yet.
#[test]
fn run_trace_writes_the_rebuild_the_playbook_ran() {
    let help = Test::new()
        .args(&["run", "main.rhai", "--help"])
        .file("main.rhai", "1")
        .run();
    if !help.stdout().contains("--trace <FILE>") {
        eprintln!("skipped: this build's `dockhand run` has no --trace option yet");
        return;
    }
    let ran = Test::new()
        .file("fixture.json", TWO)
        .script(r#"fs::write(".dockhand/state/tl-2.json", fs::read("fixture.json")); throw "the rebuild failed";"#)
        .args(&["--trace", "out/run.json"])
        .file("out/.keep", "")
        .status(1)
        .stderr_has("wrote the trace of run tl-2 to out/run.json")
        .run();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ran.path("out/run.json")).unwrap()).unwrap();
    let ev = v["traceEvents"].as_array().unwrap();
    assert_eq!(ev.iter().filter(|e| e["ph"] == "X").count(), 8);
    assert!(
        ev.iter()
            .any(|e| e["name"] == "thread_name" && e["args"]["name"] == "api")
    );
    // an unwritable trace is a warning: the exit code stays the playbook's
    Test::new()
        .script("print(1);")
        .args(&["--trace", "no/such/dir/t.json"])
        .stderr_has("--trace: cannot write no/such/dir/t.json")
        .run();
}

/// A script that writes the two-service fixture as its run's journal, then ends as `end`.
fn fixture_run(end: &str) -> Test {
    Test::new().file("fixture.json", TWO).script(&format!(
        r#"fs::write(".dockhand/state/tl-2.json", fs::read("fixture.json")); {end}"#
    ))
}

/// `run --otlp URL` and `OTEL_EXPORTER_OTLP_ENDPOINT`: the run's journal arrives as a
/// run -> service -> phase tree, decoded by the official definitions; the exit code stays
/// the playbook's.
#[test]
fn run_otlp_sends_the_run_as_a_tree_of_spans() {
    if !common::otlp::python_ready("OTLP receiver test") {
        return;
    }
    let rx = common::otlp::Receiver::start();
    fixture_run(r#"throw "the rebuild failed";"#)
        .args(&["--otlp", &rx.url])
        .status(1)
        .stderr_has("exported run tl-2 as 11 span(s) to http://127.0.0.1:")
        .run();
    let spans = rx.spans();
    assert_eq!(spans.len(), 11, "{spans:#?}");
    let (services, phases) = common::otlp::check_tree(&spans, "tl-2");
    assert_eq!(services.len(), 2);
    assert_eq!(phases.len(), 8);
    let api = services.iter().find(|s| s["name"] == "api").unwrap();
    assert_eq!(api["attributes"]["dockhand.outcome"], "rolled back");
    assert_eq!(api["events"][0]["name"], "rollback");
    assert_eq!(api["status_code"], 2, "an error status: {api}");
    assert_eq!(spans[0]["resource"]["service.name"], "dockhand");
    // The standard variable, when --otlp is not given (a base URL: /v1/traces is added).
    fixture_run(r#"print("done");"#)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url)
        .stderr_has("exported run tl-2 as 11 span(s)")
        .run();
    assert_eq!(rx.spans().len(), 22);
    // A run stopped by --timeout still exports what its journal holds.
    fixture_run("loop { time::sleep(\"50ms\"); }")
        .args(&["--otlp", &rx.url, "--timeout", "1s"])
        .status(1)
        .stderr_has("exported run tl-2 as 11 span(s)")
        .run();
    assert_eq!(rx.spans().len(), 33);
}

/// A collector that is not there (a closed port) costs a warning, never the exit code.
#[test]
fn an_unreachable_collector_is_a_warning_and_the_exit_code_stays() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let started = std::time::Instant::now();
    for (end, code) in [(r#"throw "the rebuild failed";"#, 1), ("print(1);", 0)] {
        fixture_run(end)
            .args(&["--otlp", &url])
            .status(code)
            .stderr_has(&format!("warning: OTLP export to {url}/v1/traces failed"))
            .stderr_has("the run's result is unchanged")
            .run();
    }
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
}

/// A real lab rebuild (Docker): one service made unhealthy is rolled back, its neighbour
/// completes; the timeline shows both, with timed phases from the real journal, and the
/// run's spans (`--otlp`) reach a receiver as a run -> service -> phase tree. Skipped with a
/// printed reason without an engine, failing when `DOCKHAND_REQUIRE_DOCKER=1`.
#[test]
fn a_real_lab_rebuild_with_a_rollback_is_drawn_row_for_row() {
    if !common::docker_lab_ready("timeline lab test") {
        return;
    }
    let rx = common::otlp::python_ready("the OTLP part of the timeline lab test")
        .then(common::otlp::Receiver::start);
    let (bad, good) = ("carbon-intensity", "electricity-pricing");
    let lab = common::Lab::start("dhtl", &[bad, good]);
    let f = lab.dir().join("docker-compose.yml");
    let text = std::fs::read_to_string(&f).unwrap();
    let anchor = format!("        SERVICE_NAME: {bad}\n");
    assert!(text.contains(&anchor), "no build args for {bad}");
    let text = text.replacen(
        &anchor,
        &format!("{anchor}        FAULT: \"unhealthy\"\n"),
        1,
    );
    std::fs::write(f, text).unwrap();
    let args = [
        "--service",
        bad,
        "--service",
        good,
        "--build-arg",
        "VERSION=2",
    ];
    let mut rebuild = lab.rebuild(&args);
    rebuild.args(["--run", "r1", "--health-timeout", "6s"]);
    if let Some(rx) = &rx {
        rebuild.args(["--otlp", &rx.url]);
    }
    let out = rebuild.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the rollback fails the run:\n{stderr}"
    );
    let out = common::dockhand()
        .args(["report", "timeline", "--run", "r1", "--root"])
        .arg(lab.ws.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = rows(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let b = rows.iter().find(|r| r.starts_with(bad)).unwrap();
    assert!(
        b.contains(": rolled back; ") && b.contains("; build "),
        "{b}"
    );
    assert!(
        b.contains("gate failed + rollback") && b.contains("not healthy within 6s"),
        "{b}"
    );
    let g = rows.iter().find(|r| r.starts_with(good)).unwrap();
    assert!(
        g.contains(": completed; ") && g.contains("; health ") && g.contains("; settle "),
        "{g}"
    );
    if let Some(rx) = rx {
        check_lab_spans(&rx.spans(), bad, good);
    }
}

/// The lab run's spans: both services, each with its timed phases; the rolled-back one
/// with its image ids, the failed gate, the reason and a rollback event.
fn check_lab_spans(spans: &[serde_json::Value], bad: &str, good: &str) {
    let (services, phases) = common::otlp::check_tree(spans, "r1");
    assert_eq!(services.len(), 2, "{services:#?}");
    let of = |name: &str| services.iter().find(|s| s["name"] == name).unwrap();
    let (b, g) = (of(bad), of(good));
    let phases_of = |s: &serde_json::Value| -> Vec<String> {
        phases
            .iter()
            .filter(|p| p["parent_span_id"] == s["span_id"])
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (bp, gp) = (phases_of(b), phases_of(g));
    assert!(
        bp.contains(&"build".into()) && bp.contains(&"gate_rollback".into()),
        "{bp:?}"
    );
    assert!(
        gp.contains(&"health".into()) && gp.contains(&"settle".into()),
        "{gp:?}"
    );
    assert_eq!(b["attributes"]["dockhand.gate.result"], "failed", "{b}");
    assert_eq!(b["attributes"]["dockhand.failure.kind"], "unhealthy", "{b}");
    let reason = b["attributes"]["dockhand.failure.reason"].as_str().unwrap();
    assert!(reason.contains("not healthy within 6s"), "{reason}");
    assert!(
        b["attributes"]["dockhand.image.new_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        b["attributes"]["dockhand.image.old_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(b["events"][0]["name"], "rollback", "{b}");
    assert_eq!(g["attributes"]["dockhand.gate.result"], "passed", "{g}");
    eprintln!(
        "OTLP: {} span(s): 1 run, {} services, {} phases",
        spans.len(),
        services.len(),
        phases.len()
    );
}
