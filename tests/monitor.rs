//! `dockhand monitor --once` through the real binary: on journal fixtures (no Docker
//! needed), and once end-to-end against a lab rebuild running in the background.
//!
//! The end-to-end test is Docker-dependent: skipped with a printed reason when no engine
//! (or no busybox / influxd for the lab images) is here, failing when
//! `DOCKHAND_REQUIRE_DOCKER=1`.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Lab, Test};

const FINISHED: &str = include_str!("fixtures/monitor/finished-rollback.json");
const IN_PROGRESS: &str = include_str!("fixtures/monitor/in-progress.json");
const TRUNCATED: &str = include_str!("fixtures/monitor/truncated.json");

fn fleet(run: &str, started: &str) -> String {
    serde_json::json!({
        "version": 1, "name": "fleet",
        "records": { "last": { "run": run, "started_at": started } },
    })
    .to_string()
}

/// A workspace with both fixture runs; the fleet journal names the finished one as last.
fn fixtures() -> Test {
    Test::new()
        .file(".dockhand/state/phase1-20260204-150000.json", FINISHED)
        .file(".dockhand/state/phase1-20260204-140000.json", IN_PROGRESS)
        .file(
            ".dockhand/state/fleet-monfix.json",
            &fleet("phase1-20260204-150000", "2026-02-04T15:00:00.000Z"),
        )
        // No engine: the container panel says so, the journal panels still work.
        .no_docker()
}

#[test]
fn once_shows_the_last_run_and_exits_1_for_its_failures() {
    let ran = fixtures()
        .args(&["monitor", "--once"])
        .status(1)
        .stdout_has("run phase1-20260204-150000 · project homeiq · failed · 3m05s")
        .stdout_has("5/5 done (100%): 3 completed, 1 rolled back, 1 failed")
        .stdout_has(
            "    sports-api: not healthy within 60s (health_timeout_s); Docker health: unhealthy",
        )
        .stdout_has("    energy-forecasting: build failed:")
        .stdout_has("  integration  3      3     2          1       0        0")
        .stdout_has("15:03:05  run")
        .stdout_has("containers:\n  unavailable: cannot reach Docker")
        .run();
    let out = ran.stdout();
    assert!(
        !out.contains('\x1b'),
        "control codes in --once output:\n{out}"
    );
    // newest activity first
    let newer = out.find("15:02:55  sports-api").unwrap();
    let older = out.find("15:01:02  weather-api").unwrap();
    assert!(newer < older, "{out}");
}

#[test]
fn once_on_a_named_run_in_progress_exits_0() {
    fixtures()
        .args(&["monitor", "--once", "--run", "phase1-20260204-140000"])
        .status(0)
        .stdout_has("2/8 done (25%)")
        .stdout_has("in progress (3): sports-api (recreated), calendar-service (built), ml-service (building)")
        .stdout_has("pending (3): carbon-intensity, rag-service, device-intelligence")
        .run();
}

#[test]
fn once_picks_the_projects_last_run() {
    fixtures()
        .file(
            ".dockhand/state/fleet-other.json",
            &fleet("phase1-20260204-140000", "2026-02-04T14:00:00.000Z"),
        )
        .args(&["monitor", "--once", "--project", "other"])
        .status(0)
        .stdout_has("run phase1-20260204-140000")
        .run();
}

#[test]
fn once_without_a_run_or_with_a_broken_journal_is_a_usage_error() {
    Test::new()
        .args(&["monitor", "--once"])
        .status(2)
        .stderr_has("no rebuild run found")
        .run();
    Test::new()
        .file(".dockhand/state/bad.json", TRUNCATED)
        .args(&["monitor", "--once", "--run", "bad"])
        .status(2)
        .stderr_has("not valid JSON (line")
        .run();
    Test::new()
        .args(&["monitor", "--once", "--run", "../x"])
        .status(2)
        .stderr_has("run id '../x' must be")
        .run();
}

impl Lab {
    fn spawn_rebuild(&self, args: &[&str]) -> Child {
        self.rebuild(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `dockhand monitor --once` in the workspace: (exit code, stdout).
    fn monitor(&self) -> (i32, String) {
        let out = common::dockhand()
            .args(["monitor", "--once", "--root"])
            .arg(self.ws.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !stdout.contains('\x1b'),
            "control codes in --once output:\n{stdout}"
        );
        (
            out.status.code().unwrap_or(-1),
            stdout + String::from_utf8_lossy(&out.stderr).as_ref(),
        )
    }
}

/// The container lines of a `--once` output.
fn container_lines(out: &str) -> Vec<&str> {
    out.split("\ncontainers:\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .skip(1)
        .collect()
}

#[test]
fn once_follows_a_real_rebuild_while_it_runs_and_after_it_ends() {
    if !common::docker_lab_ready("the monitor end-to-end test") {
        return;
    }
    let services = ["weather-api", "sports-api"];
    let lab = Lab::start("monitor", &services);
    let mut child = lab.spawn_rebuild(&common::rebuild_args(&services, "VERSION=2", "mon1"));
    // Drain the rebuild's output so a full pipe never blocks it.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let drain_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let drain_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });

    // While it runs: as soon as the run is journaled.
    let journal = lab.ws.path().join(".dockhand/state/mon1.json");
    let end = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("\"_run\"")) {
        assert!(Instant::now() < end, "the rebuild never journaled its run");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the rebuild ended before its run was journaled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, during) = lab.monitor();
    eprintln!("--- monitor --once while the rebuild runs:\n{during}");
    assert_ne!(code, 2, "{during}");
    assert!(
        during.contains(&format!("run mon1 · project {}", lab.project)),
        "{during}"
    );
    assert!(during.contains("/2 done"), "{during}");
    let running = during.contains("· running ·");
    if running {
        assert!(
            during.contains("in progress (") && during.contains("pending ("),
            "{during}"
        );
    } else {
        eprintln!("note: the rebuild had already finished when the monitor first looked");
    }
    let rows = container_lines(&during);
    for s in services {
        assert!(
            rows.iter()
                .any(|l| l.starts_with(&format!("  {s} ")) && l.contains(&lab.project)),
            "no container row for {s}:\n{during}"
        );
    }

    // After it ends: the final state.
    let end = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the rebuild did not finish within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (drain_out.join().unwrap(), drain_err.join().unwrap());
    assert!(
        status.success(),
        "rebuild failed\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    let (code, after) = lab.monitor();
    eprintln!("--- monitor --once after the rebuild:\n{after}");
    assert_eq!(code, 0, "{after}");
    assert!(after.contains("run mon1"), "{after}");
    assert!(after.contains("· completed ·"), "{after}");
    assert!(after.contains("2/2 done (100%): 2 completed"), "{after}");
    assert!(after.contains("completed (2):"), "{after}");
    assert!(
        after.contains(" mon1"),
        "the run's start and end in the activity: {after}"
    );
    let rows = container_lines(&after);
    for s in services {
        let row = rows
            .iter()
            .find(|l| l.starts_with(&format!("  {s} ")))
            .unwrap_or_else(|| panic!("no container row for {s}:\n{after}"));
        assert!(row.contains(" healthy "), "{s} not healthy:\n{after}");
    }
    // Usage is sampled by the engine (a second each, 5 s at most): one figure at least.
    assert!(
        rows.iter()
            .any(|l| l.ends_with("MiB") || l.ends_with("KiB")),
        "no memory figure:\n{after}"
    );
}

/// A rebuild record's `phase` and `status` are closed words: `update_service` refuses one it
/// does not know (exit 2, naming it and the allowed ones), while the generic `update` still
/// takes any field; a word the monitor does not know is shown as unknown.
#[test]
fn rebuild_records_refuse_unknown_words_and_the_monitor_shows_unknown_ones() {
    let ok = r#"
        let j = state::open("r1");
        j.update("_run", #{ run: "r1", services: ["a", "b"], status: "running" });
        j.update_service("a", #{ service: "a", category: "c", phase: "built", status: "in-progress" });
        j.update("b", #{ phase: "warping", status: "sideways", anything: 1 });
        j.update_service("a", #{ phase: "completed", status: "completed" });
    "#;
    let t = Test::new().script(ok).run();
    t_monitor_once(&t.path(""), "r1")
        .status(0)
        .stdout_has("completed (1): a")
        .stdout_has("unknown (1)")
        .stdout_has("b: status unknown 'sideways'")
        .run();
    for (fields, word) in [
        (r#"#{ phase: "buildng" }"#, "unknown phase 'buildng'"),
        (r#"#{ status: "done" }"#, "unknown status 'done'"),
    ] {
        Test::new()
            .script(&format!(
                "let j = state::open(\"r1\");\nj.update_service(\"a\", {fields});\n"
            ))
            .status(2)
            .stderr_has(word)
            .stderr_has("journal record 'a'")
            .stderr_has("main.rhai:2")
            .run();
    }
    Test::new()
        .script("state::open(\"r1\").set_service(\"a\", #{ phase: \"built\", status: \"in progress\" });")
        .status(2)
        .stderr_has("in-progress, pending")
        .run();
}

/// `dockhand monitor --once` on the workspace `root` (a finished `Test`'s directory).
fn t_monitor_once(root: &std::path::Path, run: &str) -> Test {
    let t = Test::new();
    common::copy_dir(root, t.path());
    t.args(&["monitor", "--once", "--run", run])
}
