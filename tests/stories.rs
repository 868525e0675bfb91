//! The Phase 1 story playbooks (stories 3 to 9) and `rollback.rhai` against real lab fleets.
//!
//! Each test copies the lab (`examples/homeiq`) and the playbooks into a temporary workspace
//! (the playbooks import `lib/stories` relative to themselves, inside the workspace root),
//! brings up InfluxDB plus at most four services in its own compose project, runs the real
//! binary, and takes the lab down (with its backup tags) on drop.
//!
//! Docker-dependent: skipped with a printed reason when no engine (or no busybox / influxd
//! for the lab images) is here, but failing when `DOCKHAND_REQUIRE_DOCKER=1` (CI sets it).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::containers::Ctr;
use common::{BIN, Lab};
use serde_json::Value;

const PLAYBOOKS: [&str; 8] = [
    "story-03-restart-infrastructure.rhai",
    "story-04-core-services.rhai",
    "story-05-integration.rhai",
    "story-06-ai-ml.rhai",
    "story-07-device.rhai",
    "story-08-automation.rhai",
    "story-09-analytics.rhai",
    "rollback.rhai",
];

/// A story test's start: its turn ([`common::lab_turn`]), then the lab and the playbooks
/// in a fresh workspace, InfluxDB plus `only` up. `None`: skip the test.
fn lab_up(tag: &str, only: &[&str]) -> Option<(std::sync::MutexGuard<'static, ()>, Lab)> {
    let turn = common::lab_turn("story test")?;
    let lab = Lab::new(&format!("dhst{tag}")).with_playbooks();
    lab.up(only, &[]);
    Some((turn, lab))
}

type Containers = BTreeMap<String, Ctr>;
type Rebuilt = (Played, Value, Containers, Containers);

impl Lab {
    /// `dockhand run playbooks/<playbook> --json` in this workspace, on this lab.
    fn play(&self, playbook: &str, args: &[&str]) -> Played {
        let out = common::dockhand()
            .arg("run")
            .arg(format!("playbooks/{playbook}"))
            .arg("--root")
            .arg(self.ws.path())
            .args([
                "--json",
                "--config",
                "homeiq/services.yaml",
                "--project",
                &self.project,
            ])
            .args(args)
            .current_dir(self.ws.path())
            .output()
            .unwrap();
        Played::from(out)
    }

    /// Runs a small script in the workspace (with the lab's project in use).
    fn script(&self, body: &str) -> Played {
        let f = self.ws.path().join("probe.rhai");
        std::fs::write(
            &f,
            format!("docker::use_project(\"{}\");\n{body}", self.project),
        )
        .unwrap();
        let out = Command::new(BIN)
            .args(["run", "probe.rhai"])
            .current_dir(self.ws.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        Played::from(out)
    }

    /// Runs a story playbook over `set` (already up) with `--build-arg VERSION=2 --run
    /// RUN`, which must succeed. Returns what is left to check: its output, its journal,
    /// and the containers before it and after it (once the set is healthy again).
    fn rebuild_story(&self, playbook: &str, run: &str, set: &[&str]) -> Rebuilt {
        let before = self.containers();
        let r = self.play(playbook, &["--build-arg", "VERSION=2", "--run", run]);
        assert_eq!(r.code, 0, "{}", r.show());
        let j = self.journal(run);
        let after = self.wait_healthy(set, Duration::from_secs(20));
        (r, j, before, after)
    }
}

struct Played {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<std::process::Output> for Played {
    fn from(out: std::process::Output) -> Played {
        Played {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Played {
    fn show(&self) -> String {
        format!(
            "--- exit {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.show()))
    }
    /// The named check from `--json` output: (ok, reason).
    fn check(&self, name: &str) -> (bool, String) {
        let v = self.json();
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .unwrap_or_else(|| panic!("no check {name:?}\n{}", self.show()));
        (
            c["ok"].as_bool().unwrap(),
            c["reason"].as_str().unwrap_or("").into(),
        )
    }
}

fn record<'a>(journal: &'a Value, service: &str) -> &'a Value {
    &journal["records"][service]
}

#[test]
fn story_playbooks_compile_and_declare_their_options() {
    let root = env!("CARGO_MANIFEST_DIR");
    let files: Vec<String> = PLAYBOOKS
        .iter()
        .map(|p| format!("playbooks/{p}"))
        .chain(["playbooks/lib/stories.rhai".to_string()])
        .collect();
    let out = Command::new(BIN)
        .arg("check")
        .args(&files)
        .current_dir(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in PLAYBOOKS {
        let out = Command::new(BIN)
            .args(["run", &format!("playbooks/{p}"), "--help"])
            .current_dir(root)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{p} --help: {help}");
        for opt in ["--config", "--project", "--run"] {
            assert!(help.contains(opt), "{p} --help lacks {opt}:\n{help}");
        }
    }
    // rollback needs the run it undoes.
    let out = Command::new(BIN)
        .args(["run", "playbooks/rollback.rhai"])
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The IP of `service`'s container on the lab's network.
fn ip_of(lab: &Lab, service: &str) -> String {
    let c = &lab.containers()[service];
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &c.id,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The OTLP bodies the Jaeger stand-in keeps in its volume, copied out and decoded.
fn stand_in_spans(lab: &Lab) -> Vec<Value> {
    let c = &lab.containers()["jaeger"];
    let to = lab.ws.path().join("jaeger-bodies");
    let _ = std::fs::remove_dir_all(&to);
    let ok = Command::new("docker")
        .args(["cp", &format!("{}:/data/bodies", c.id)])
        .arg(&to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "docker cp of the stand-in's bodies failed");
    let mut files: Vec<_> = std::fs::read_dir(&to)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        .collect();
    files.sort();
    common::otlp::decode(&files)
}

#[test]
fn story3_restarts_influxdb_and_jaeger_without_losing_points_or_spans() {
    let Some((_turn, lab)) = lab_up("s3", &["websocket-ingestion"]) else {
        return;
    };
    let decode = common::otlp::python_ready("story 3's span decoding");
    // A real rebuild exports its spans to the Jaeger stand-in first, so "no span lost" has
    // something to lose.
    let otlp = format!("http://{}:4318", ip_of(&lab, "jaeger"));
    let rb = lab
        .rebuild(&common::rebuild_args(
            &["websocket-ingestion"],
            "VERSION=2",
            "s3-rb",
        ))
        .args(["--all", "--otlp", &otlp])
        .output()
        .unwrap();
    let rb = Played::from(rb);
    assert_eq!(rb.code, 0, "{}", rb.show());
    assert!(
        rb.stderr.contains("exported run s3-rb as "),
        "{}",
        rb.show()
    );
    // Let the writer put a few points in first, so "no data loss" has something to lose.
    let warm = lab.script(
        r#"import "playbooks/lib/stories" as stories;
let db = stories::influx(config::load("homeiq/services.yaml"));
time::wait_until(#{ timeout: "60s", interval: "500ms" }, || stories::influx_count(db) >= 3);
print(`points: ${stories::influx_count(db)}`);"#,
    );
    assert_eq!(warm.code, 0, "{}", warm.show());
    let before = lab.containers();

    let r = lab.play("story-03-restart-infrastructure.rhai", &["--run", "s3"]);
    assert_eq!(r.code, 0, "{}", r.show());
    let v = r.json();
    let row = &v["value"]["services"][0];
    assert_eq!(row["service"], "influxdb", "{}", r.show());
    let points_before = row["before"].as_i64().expect("points before");
    let points_after = row["after"].as_i64().expect("points after");
    assert!(points_before >= 3, "{}", r.show());
    assert!(
        points_after >= points_before,
        "points lost: {points_before} before, {points_after} after"
    );
    assert!(row["new_points"].as_i64().unwrap() >= 1, "{}", r.show());
    assert!(row["healthy_ms"].as_i64().unwrap() < 120_000);
    let jrow = &v["value"]["services"][1];
    assert_eq!(jrow["service"], "jaeger", "{}", r.show());
    let bodies_before = jrow["before"].as_i64().expect("OTLP bodies before");
    assert!(bodies_before >= 1, "{}", r.show());
    assert!(
        jrow["after"].as_i64().unwrap() >= bodies_before,
        "{}",
        r.show()
    );
    assert!(jrow["new_points"].as_i64().unwrap() >= 1, "{}", r.show());
    for name in [
        "influxdb healthy within",
        "influxdb /ping answers",
        "influxdb kept its points",
        "influxdb receives new points",
        "jaeger healthy within",
        "jaeger / answers",
        "jaeger kept its spans",
        "jaeger receives new spans",
    ] {
        assert!(r.check(name).0, "{name}\n{}", r.show());
    }

    // Really restarted (same container, started again), and healthy.
    let after = lab.wait_healthy(
        &["influxdb", "jaeger", "websocket-ingestion"],
        Duration::from_secs(20),
    );
    for infra in ["influxdb", "jaeger"] {
        assert_eq!(after[infra].id, before[infra].id, "{infra}: not a restart");
        assert_ne!(
            after[infra].started_at, before[infra].started_at,
            "{infra} was not restarted"
        );
        assert_eq!(after[infra].health, "healthy");
    }
    // The spans sent before the restart are still there, whole: the rebuild's tree decodes.
    if decode {
        let spans = stand_in_spans(&lab);
        let (services, phases) = common::otlp::check_tree(&spans, "s3-rb");
        assert_eq!(services.len(), 1, "{services:#?}");
        assert_eq!(services[0]["name"], "websocket-ingestion");
        assert!(!phases.is_empty());
        eprintln!(
            "story 3: the stand-in kept {} span(s) across its restart",
            spans.len()
        );
    }
    // The restart is in the journal, for monitoring.
    let j = lab.journal("s3");
    let rec = record(&j, "influxdb");
    assert_eq!(rec["status"], "completed", "{rec}");
    assert_eq!(record(&j, "jaeger")["status"], "completed");
    assert_eq!(rec["points_before"].as_i64(), Some(points_before));
    assert!(rec["restarted_at"].is_string(), "{rec}");
    assert_eq!(j["records"]["_run"]["status"], "completed");
    eprintln!(
        "story 3: {points_before} points before, {points_after} after, healthy in {} ms",
        row["healthy_ms"]
    );
}

#[test]
fn story4_rebuilds_the_core_services_in_order_with_data_flowing() {
    let core = [
        "data-api",
        "websocket-ingestion",
        "admin-api",
        "data-retention",
    ];
    let Some((_turn, lab)) = lab_up("s4", &core) else {
        return;
    };
    let (r, j, before, after) = lab.rebuild_story("story-04-core-services.rhai", "s4", &core);
    let mut previous_end = String::new();
    for svc in core {
        let rec = record(&j, svc);
        assert_eq!(rec["status"], "completed", "{svc}: {rec}\n{}", r.show());
        assert_eq!(rec["validated"], true, "{svc}: {rec}");
        let c = &after[svc];
        assert_eq!(c.health, "healthy", "{svc}");
        assert_ne!(c.image, before[svc].image, "{svc} was not rebuilt");
        assert_eq!(
            rec["new_image_id"].as_str(),
            Some(c.image.as_str()),
            "{svc} is not on the image it built"
        );
        assert_eq!(c.version, "2", "{svc}: the build arg did not land");
        // Sequential: each one started after the one before it had finished.
        let started = rec["started_at"].as_str().unwrap().to_string();
        assert!(
            started >= previous_end,
            "{svc} started at {started}, before the previous service ended at {previous_end}"
        );
        previous_end = rec["finished_at"].as_str().unwrap().to_string();
    }
    assert_eq!(j["records"]["_run"]["status"], "completed");
    assert_eq!(j["records"]["_run"]["data_flow"], true);
    let (ok, why) = r.check("data flow websocket-ingestion -> influxdb");
    assert!(ok, "{why}");
    assert!(
        record(&j, "websocket-ingestion")["validation"]
            .as_str()
            .unwrap_or("")
            .contains("points"),
        "{}",
        record(&j, "websocket-ingestion")
    );
    assert_eq!(
        after["influxdb"].id, before["influxdb"].id,
        "infrastructure was touched"
    );

    // A bad admin-api stops the sequence: it is rolled back, data-retention is not
    // started; once fixed, --continue finishes both.
    let compose = lab.dir().join("docker-compose.yml");
    let good = std::fs::read_to_string(&compose).unwrap();
    let anchor = "        SERVICE_NAME: admin-api\n";
    assert!(good.contains(anchor));
    std::fs::write(
        &compose,
        good.replacen(
            anchor,
            &format!("{anchor}        FAULT: \"unhealthy\"\n"),
            1,
        ),
    )
    .unwrap();
    let mut args = common::rebuild_args(&["admin-api", "data-retention"], "VERSION=3", "s4bad");
    args.extend(["--health-timeout", "5s"]);
    let r = lab.play("story-04-core-services.rhai", &args);
    assert_eq!(r.code, 1, "{}", r.show());
    let j = lab.journal("s4bad");
    assert_eq!(
        record(&j, "admin-api")["status"],
        "rolled-back",
        "{}",
        r.show()
    );
    let pending = record(&j, "data-retention");
    assert_eq!(pending["status"], "pending", "{pending}");
    assert!(
        pending["reason"]
            .as_str()
            .unwrap_or("")
            .contains("admin-api"),
        "{pending}"
    );
    let stopped = lab.wait_healthy(&["admin-api", "data-retention"], Duration::from_secs(20));
    assert_eq!(
        stopped["admin-api"].image, after["admin-api"].image,
        "not rolled back"
    );
    assert_eq!(
        stopped["data-retention"].id, after["data-retention"].id,
        "data-retention was touched after admin-api failed"
    );

    std::fs::write(&compose, &good).unwrap();
    let r = lab.play(
        "story-04-core-services.rhai",
        &[
            "--continue",
            "--build-arg",
            "VERSION=3",
            "--health-timeout",
            "5s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.show());
    let j = lab.journal("s4bad");
    let resumed = lab.wait_healthy(&core, Duration::from_secs(20));
    for svc in ["admin-api", "data-retention"] {
        assert_eq!(
            record(&j, svc)["status"],
            "completed",
            "{svc}\n{}",
            r.show()
        );
        assert_eq!(resumed[svc].version, "3", "{svc}");
    }
    assert!(
        j["records"].get("data-api").is_none(),
        "--continue widened the run's selection"
    );
    assert_eq!(resumed["data-api"].id, after["data-api"].id);
}

#[test]
fn story9_rebuilds_its_pair_in_parallel_and_checks_endpoints() {
    let set = ["energy-correlator", "rule-recommendation-ml"];
    let Some((_turn, lab)) = lab_up("s9", &set) else {
        return;
    };
    let (r, j, before, after) = lab.rebuild_story("story-09-analytics.rhai", "s9", &set);
    for svc in set {
        let rec = record(&j, svc);
        assert_eq!(rec["status"], "completed", "{svc}: {rec}\n{}", r.show());
        assert_ne!(after[svc].image, before[svc].image, "{svc} was not rebuilt");
        assert_eq!(
            rec["new_image_id"].as_str(),
            Some(after[svc].image.as_str())
        );
        assert_eq!(after[svc].version, "2");
        let (ok, why) = r.check(&format!("{svc} endpoints within 500 ms"));
        assert!(ok, "{svc}: {why}");
    }
    let v = r.json();
    let endpoints = v["value"]["endpoints"].as_array().expect("endpoint rows");
    assert_eq!(endpoints.len(), 2, "{}", r.show());
    assert_eq!(j["records"]["_run"]["status"], "completed");
    assert_eq!(
        j["records"]["_run"]["services"],
        serde_json::json!(["rule-recommendation-ml", "energy-correlator"]),
        "story 9 is the epic's pair, in config order"
    );
}

#[test]
fn rollback_restores_the_pre_run_images_of_a_batch_rebuild() {
    let set = ["weather-api", "sports-api"];
    let Some((_turn, lab)) = lab_up("rb", &set) else {
        return;
    };
    let before = lab.containers();
    let r = lab.play(
        "batch-rebuild.rhai",
        &common::rebuild_args(&set, "VERSION=2", "b1"),
    );
    assert_eq!(r.code, 0, "batch rebuild: {}", r.show());
    let rebuilt = lab.wait_healthy(&set, Duration::from_secs(20));
    for svc in set {
        assert_ne!(rebuilt[svc].image, before[svc].image, "{svc} not rebuilt");
    }

    let r = lab.play("rollback.rhai", &["--run", "b1"]);
    assert_eq!(r.code, 0, "rollback: {}", r.show());
    let after = lab.wait_healthy(&set, Duration::from_secs(20));
    let j = lab.journal("b1");
    for svc in set {
        assert_eq!(
            after[svc].image, before[svc].image,
            "{svc} is not back on its pre-run image"
        );
        assert_eq!(after[svc].health, "healthy", "{svc}");
        assert_eq!(after[svc].version, "1", "{svc}");
        let rec = record(&j, svc);
        assert_eq!(rec["status"], "rolled-back", "{svc}: {rec}");
        assert_eq!(rec["reason"], "manual rollback", "{svc}: {rec}");
        assert_eq!(
            rec["old_image_id"].as_str(),
            Some(before[svc].image.as_str())
        );
        let (ok, why) = r.check(&format!("{svc} rolled back to"));
        assert!(ok, "{why}");
    }
    let rows = r.json()["value"]["services"].as_array().unwrap().len();
    assert_eq!(rows, 2, "{}", r.show());

    // A backup tag that is gone fails that service clearly and leaves it alone.
    let backup = record(&j, "sports-api")["backup"]
        .as_str()
        .unwrap()
        .to_string();
    let rmi = Command::new("docker")
        .args(["rmi", &backup])
        .output()
        .unwrap();
    assert!(
        rmi.status.success(),
        "{}",
        String::from_utf8_lossy(&rmi.stderr)
    );
    let r = lab.play("rollback.rhai", &["--run", "b1", "--service", "sports-api"]);
    assert_eq!(r.code, 1, "{}", r.show());
    let (ok, why) = r.check("sports-api rolled back to");
    assert!(!ok);
    assert!(
        why.contains(&backup) && why.contains("is gone"),
        "unclear reason: {why}"
    );
    let still = lab.containers();
    assert_eq!(still["sports-api"].id, after["sports-api"].id, "touched");

    // An unknown run is a clear error, not an empty rollback.
    let r = lab.play("rollback.rhai", &["--run", "nope"]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(
        r.stdout.contains("no journal for run 'nope'"),
        "{}",
        r.show()
    );
}

/// Gate-failure kinds are spelt through `config::gate_failure`, which refuses a name that is
/// not one of `rollback.on`'s: a typo in a kind is an error (exit 2), not a rollback that
/// silently never happens. No Docker needed.
#[test]
fn an_unknown_gate_failure_kind_is_an_error() {
    common::Test::new()
        .script(
            r#"import "stdlib/rebuild" as rebuild;
let o = #{ rollback: true, rollback_on: ["unhealthy", "latency_budget"] };
print(`${config::gate_failure("latency_budget")} ${rebuild::rolls_back(o, "latency_budget")} ${rebuild::rolls_back(o, "restarts")}`);
"#,
        )
        .stderr_has("latency_budget true false")
        .run();
    for call in [
        r#"config::gate_failure("latency-budget")"#,
        r#"rebuild::rolls_back(#{ rollback: false, rollback_on: [] }, "unhealthyy")"#,
    ] {
        common::Test::new()
            .script(&format!(
                "import \"stdlib/rebuild\" as rebuild;\nlet x = {call};\n"
            ))
            .status(2)
            .stderr_has("unknown gate-failure kind")
            .stderr_has("build_failure, unhealthy, latency_budget, log_errors, restarts")
            .run();
    }
}

/// `rebuild::turns` on the lab's shipped config: core's four one-at-a-time turns (an
/// `on_failure: stop` category, its turns counted twice) are the heaviest chain, so its
/// builds get a solve of their own (priority 2); ai-ml (5 turns) and device (3) build next
/// (1); the rest after them (0). No Docker needed.
#[test]
fn build_priorities_put_the_heaviest_chain_first() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/homeiq/services.yaml"
    ))
    .unwrap();
    common::Test::new()
        .file("services.yaml", &yaml)
        .script(
            r#"import "stdlib/rebuild" as rebuild;
let cfg = config::load("services.yaml");
let f = rebuild::turns(cfg, cfg.services).first;
print(`core=${f.core} ai-ml=${f["ai-ml"]} device=${f.device} integration=${f.integration} analytics=${f.analytics}`);
let f = rebuild::turns(cfg, cfg.services.filter(|s| s.category == "analytics")).first;
print(`alone: analytics=${f.analytics}`);
"#,
        )
        .stderr_has("core=2 ai-ml=1 device=1 integration=0 analytics=0")
        .stderr_has("alone: analytics=0")
        .run();
}
