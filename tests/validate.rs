//! `dockhand validate` (validation scripts, table, JUnit, JSON, read-only team scripts), the
//! shipped `playbooks/validate-services.rhai` on a real lab fleet with injected faults, and
//! the story 12 report.
//!
//! The lab test is Docker-dependent: skipped with a printed reason when no engine (or no
//! busybox / influxd for the lab images) is here, but failing when
//! `DOCKHAND_REQUIRE_DOCKER=1`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Lab, Test};
use serde_json::Value;

const PASS: &str =
    "check(\"one is one\", 1 == 1);\ncheck(\"closure\", || #{ ok: true, reason: \"fine\" });\n";
const FAIL: &str = "check(\"passes\", true);\ncheck(\"disk <free> & \\\"quoted\\\"\", false, \"only 3% left <warn> & 'more'\");\n";

fn xmllint_ok(xml: &Path) -> Result<(), String> {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit/junit-10.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(xml)
        .output()
        .map_err(|e| format!("cannot run xmllint (apt-get install libxml2-utils): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn passing_validations_exit_0_with_a_table() {
    Test::new()
        .file("validations/a.rhai", PASS)
        .args(&["validate", "validations"])
        .stdout_has("SCRIPT")
        .stdout_has("one is one")
        .stdout_has("closure")
        .stdout_has("2 passed, 0 failed")
        .run();
}

#[test]
fn a_failed_check_exits_1_and_says_why() {
    let ran = Test::new()
        .file("validations/a.rhai", PASS)
        .file("validations/b.rhai", FAIL)
        .args(&["validate", "validations"])
        .status(1)
        .stdout_has("FAIL")
        .stdout_has("only 3% left")
        .stdout_has("3 passed, 1 failed")
        .run();
    // Both scripts ran: the table names both.
    let out = ran.stdout();
    assert!(out.contains("validations/a.rhai") && out.contains("validations/b.rhai"));
}

#[test]
fn a_script_error_exits_2_with_file_line_col_and_the_rest_still_runs() {
    Test::new()
        .file(
            "v/bad.rhai",
            "check(\"before\", true);\nlet x = 1;\nx.no_such_method();\n",
        )
        .file("v/good.rhai", PASS)
        .args(&["validate", "v"])
        .status(2)
        .stderr_has("v/bad.rhai:3:3")
        .stdout_has("ERROR")
        .stdout_has("one is one")
        .stdout_has("before")
        .run();
    Test::new()
        .file("v/syntax.rhai", "check(\"x\", true\n")
        .args(&["validate", "v/syntax.rhai"])
        .status(2)
        .stderr_has("v/syntax.rhai:")
        .run();
}

#[test]
fn team_validations_are_read_only_unless_allow_writes() {
    let write = "fs::write(\"out.txt\", \"x\");\ncheck(\"wrote\", true);\n";
    let ran = Test::new()
        .file("validations/w.rhai", write)
        .args(&["validate", "validations"])
        .status(2)
        .stderr_has("read-only")
        .stderr_has("validations/w.rhai:1:")
        .run();
    assert!(
        !ran.path("out.txt").exists(),
        "a read-only validation wrote a file"
    );
    let ran = Test::new()
        .file("validations/w.rhai", write)
        .args(&["validate", "validations", "--allow-writes"])
        .stdout_has("wrote")
        .run();
    assert_eq!(std::fs::read_to_string(ran.path("out.txt")).unwrap(), "x");
}

#[test]
fn json_lists_every_script_check_and_value() {
    let ran = Test::new()
        .file("validations/a.rhai", &format!("{PASS}#{{ answer: 42 }}\n"))
        .file("validations/b.rhai", FAIL)
        .args(&["validate", "validations", "--json"])
        .status(1)
        .run();
    let v = ran.json();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["exit_code"], 1);
    let scripts = v["scripts"].as_array().unwrap();
    assert_eq!(scripts.len(), 2);
    assert_eq!(scripts[0]["mode"], "read-only");
    assert_eq!(scripts[0]["value"]["answer"], 42);
    assert_eq!(scripts[0]["checks"].as_array().unwrap().len(), 2);
    let failed: Vec<&Value> = scripts[1]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "only 3% left <warn> & 'more'");
    assert_eq!(failed[0]["location"], "validations/b.rhai:2");
}

#[test]
fn script_options_reach_the_scripts_that_declare_them() {
    let script = "let p = params(#{ window: #{ type: \"duration\", default_value: \"1h\" }, tag: \"x\" });\n\
                  check(`window ${p.window}`, p.window == 10000);\ncheck(`tag ${p.tag}`, true);\n";
    Test::new()
        .file("v/a.rhai", script)
        .args(&["validate", "v", "--param", "window=10s", "--", "--tag", "y"])
        .stdout_has("window 10000")
        .stdout_has("tag y")
        .run();
    Test::new()
        .file("v/a.rhai", script)
        .args(&["validate", "v", "--param", "windw=10s"])
        .status(2)
        .stderr_has("'windw' is declared by none of the validations")
        .run();
    Test::new()
        .file("v/a.rhai", script)
        .args(&["validate", "v", "--", "--window", "soon"])
        .status(2)
        .stderr_has("--window")
        .run();
}

#[test]
fn junit_output_passes_the_junit_schema() {
    let ran = Test::new()
        .file("v/a.rhai", PASS)
        .file("v/b.rhai", FAIL)
        .file(
            "v/c.rhai",
            "check(\"not here\", #{ ok: true, reason: \"skipped: no frontend\" });\n\
             check(\"log line\", false, \"ERROR \\u001b[31mred\\u001b[0m <tag>\");\n",
        )
        .file("v/d.rhai", "check(\"first\", true);\nthrow \"boom <&>\";\n")
        .args(&["validate", "v", "--junit", "report.xml"])
        .status(2)
        .run();
    let xml = ran.path("report.xml");
    let text = std::fs::read_to_string(&xml).unwrap();
    if let Err(e) = xmllint_ok(&xml) {
        panic!("JUnit output rejected by the schema:\n{e}\n{text}");
    }
    assert_eq!(text.matches("<testsuite ").count(), 4);
    // 2 + 2 + 2 checks + 1 error test case for d.rhai
    assert_eq!(text.matches("<testcase ").count(), 7 + 1);
    assert_eq!(text.matches("<failure ").count(), 2);
    assert_eq!(text.matches("<skipped ").count(), 1);
    assert_eq!(text.matches("<error ").count(), 1);
    assert!(text.contains("only 3% left &lt;warn&gt; &amp; &apos;more&apos;"));
    assert!(text.contains("boom &lt;&amp;&gt;"));
    assert!(
        !text.contains('\u{1b}'),
        "a control character reached the XML"
    );
    // A broken file is rejected by the same check (the check can fail).
    std::fs::write(
        ran.path("broken.xml"),
        "<testsuites><testsuite><testcase/></testsuite></testsuites>",
    )
    .unwrap();
    assert!(xmllint_ok(&ran.path("broken.xml")).is_err());
}

/// A rebuild journal in the format `stdlib/rebuild.rhai` and `batch-rebuild.rhai` write
/// (hand-written test fixture, not recorded from a run): two completed services, one
/// rolled back after a failed latency gate.
const JOURNAL: &str = r#"{"records": {
 "_run": {"run": "phase1-20260204-140000", "project": "homeiq", "status": "failed",
          "started_at": "2026-02-04T14:00:00Z", "finished_at": "2026-02-04T14:03:10Z",
          "wall_s": 190.5, "build_args": {"VERSION": "2"}},
 "weather-api": {"service": "weather-api", "category": "integration", "phase": "completed",
          "status": "completed", "old_image_id": "sha256:aaaaaaaaaaaa1111", "new_image_id": "sha256:bbbbbbbbbbbb2222",
          "build_s": 3.5, "healthy_ms": 1200},
 "sports-api": {"service": "sports-api", "category": "integration", "phase": "rolled-back",
          "status": "rolled-back", "rolled_back": true, "failure": "latency_budget",
          "reason": "GET /health: answered in 1003 ms, over the 500ms budget",
          "backup": "homeiq_sports-api:pre-phase1-20260204-140000",
          "old_image_id": "sha256:cccccccccccc3333", "new_image_id": "sha256:dddddddddddd4444", "build_s": 2.25}
}}"#;

#[test]
fn story_12_report_renders_every_section_from_a_journal_and_validation_results() {
    // Real validation results: `dockhand validate --json` on a small validation.
    let t = Test::new()
        .file("validations/a.rhai", PASS)
        .file("validations/b.rhai", FAIL)
        .args(&["validate", "validations", "--json"])
        .status(1);
    let ran = t.run();
    let ws = ran.dir.path();
    std::fs::write(ws.join("validation.json"), ran.stdout()).unwrap();
    std::fs::create_dir_all(ws.join(".dockhand/state")).unwrap();
    std::fs::write(
        ws.join(".dockhand/state/phase1-20260204-140000.json"),
        JOURNAL,
    )
    .unwrap();
    std::fs::write(
        ws.join(".dockhand/state/fleet-homeiq.json"),
        r#"{"records": {"last": {"run": "phase1-20260204-140000", "started_at": "2026-02-04T14:00:00Z"}}}"#,
    )
    .unwrap();
    let pb =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/story-12-completion-report.rhai");
    let out = common::dockhand()
        .arg("run")
        .arg(&pb)
        .args([
            "--root",
            ".",
            "--project",
            "homeiq",
            "--validation",
            "validation.json",
        ])
        .current_dir(ws)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit 1: a service was rolled back and a validation check failed.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let md = std::fs::read_to_string(ws.join("docs/planning/phase1-completion-report.md"))
        .unwrap_or_else(|e| panic!("no report ({e}): {stderr}"));
    for section in [
        "## 1. Executive Summary",
        "## 2. Service Update Matrix",
        "## 3. Validation Results",
        "## 4. Performance Metrics",
        "## 5. Issues Encountered and Resolutions",
        "## 6. Recommendations for Phase 2",
        "## 7. Sign-off Checklist",
    ] {
        assert!(md.contains(section), "missing {section}:\n{md}");
    }
    assert!(md.contains("phase1-20260204-140000"));
    assert!(
        md.contains("Services in the run: 2; completed 1, rolled back 1, failed 0"),
        "{md}"
    );
    assert!(md.contains("(3 passed, 1 failed, 0 skipped)"), "{md}");
    // before/after image ids (12 hex digits) and the build args
    assert!(md.contains("| weather-api | integration | completed | aaaaaaaaaaaa | bbbbbbbbbbbb | VERSION=2 | 3.5 | 1200 |"), "{md}");
    assert!(md.contains("answered in 1003 ms, over the 500ms budget"));
    assert!(md.contains("rolled back to homeiq_sports-api:pre-phase1-20260204-140000"));
    assert!(md.contains("only 3% left"));
    assert!(md.contains("- [ ] All 2 services rebuilt successfully"));
}

// ------------------------------------------------------------------------------ the lab

impl Lab {
    /// `dockhand validate --json` (the shipped validation) with script options.
    /// `validate-services.rhai` with `opts`, words split on spaces ("--window 3s").
    fn validate(&self, opts: &str) -> (i32, Value, String) {
        let opts: Vec<&str> = opts.split_whitespace().collect();
        let out = common::dockhand()
            .args(["validate", "--root"])
            .arg(self.ws.path())
            .args(["--json", "--"])
            .args([
                "--config",
                "homeiq/services.yaml",
                "--project",
                &self.project,
            ])
            .args(opts)
            .current_dir(self.ws.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v, stdout)
    }

    /// The container of `svc`, by compose's labels (v1 names it `<p>_<svc>_1`, v2 `<p>-<svc>-1`).
    fn container(&self, svc: &str) -> String {
        let out = Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.project))
            .arg("--filter")
            .arg(format!("label=com.docker.compose.service={svc}"))
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!id.is_empty(), "no container for {svc}");
        id
    }
}

/// `name -> (ok, reason)` of the checks of the first script.
fn checks(v: &Value) -> std::collections::BTreeMap<String, (bool, String)> {
    v["scripts"][0]["checks"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                (
                    c["ok"].as_bool().unwrap_or(false),
                    c["reason"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_services_passes_on_a_healthy_lab_and_names_each_injected_fault() {
    let Some(_turn) = common::lab_turn("validate lab test") else {
        return;
    };
    let lab = Lab::new("validatesvc");
    let only = ["websocket-ingestion", "weather-api", "sports-api"];
    lab.up(&only, &[]);

    // Healthy: every check passes, and the baseline is saved.
    let (code, v, out) =
        lab.validate("--window 3s --sample 1s --baseline base.json --save-baseline");
    assert_eq!(code, 0, "healthy lab failed validation:\n{out}");
    let c = checks(&v);
    assert!(
        c["containers healthy"].1.contains("5 container(s) healthy"),
        "{c:?}"
    );
    assert!(
        c["InfluxDB receiving data"]
            .1
            .contains("point(s) in home_assistant_events"),
        "{c:?}"
    );
    assert!(
        c["performance vs baseline"].1.starts_with("saved:"),
        "{c:?}"
    );
    let base: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.ws.path().join("base.json")).unwrap())
            .unwrap();
    assert_eq!(base["endpoints"].as_object().unwrap().len(), 5, "{base}");

    // A restart during the stability window.
    let child = {
        let name = lab.container("weather-api");
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            docker(&["restart", "-t", "1", &name]);
        })
    };
    let (code, v, out) = lab.validate("--checks stability --window 6s --sample 1s");
    child.join().unwrap();
    assert_eq!(code, 1, "{out}");
    let (ok, why) = &checks(&v)["no restarts within 6s"];
    assert!(!ok && why.contains("weather-api: restarted at +"), "{why}");
    assert!(!why.contains("sports-api"), "{why}");

    // No data in InfluxDB: the writer stopped, nothing written in the last 2 s.
    docker(&["stop", "-t", "1", &lab.container("websocket-ingestion")]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (code, v, out) = lab.validate("--checks health,influx --influx-window 2s");
    assert_eq!(code, 1, "{out}");
    let c = checks(&v);
    let (ok, why) = &c["InfluxDB receiving data"];
    assert!(
        !ok && why.contains(
            "no point written to home_assistant_events.home_assistant_events in the last 2s"
        ),
        "{why}"
    );
    let (ok, why) = &c["containers healthy"];
    assert!(!ok && why.contains("websocket-ingestion: exited"), "{why}");

    // Faults: a slow health endpoint (also a regression vs the baseline) and ERROR logs.
    // lab up again recreates the faulted services and starts the writer.
    lab.up(&only, &["weather-api=slow-health", "sports-api=error-logs"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (code, v, out) = lab.validate("--window 0s --samples 3 --baseline base.json");
    assert_eq!(code, 1, "{out}");
    let c = checks(&v);
    let (ok, why) = &c["API endpoints < 500 ms"];
    assert!(
        !ok && why.contains("weather-api GET /health: p95 ")
            && why.contains("over the 500 ms budget"),
        "{why}"
    );
    assert!(!why.contains("sports-api"), "{why}");
    let (ok, why) = &c["no ERROR in the last 100 log lines"];
    assert!(
        !ok && why.contains("sports-api:") && why.contains("ERROR sports-api simulated failure"),
        "{why}"
    );
    assert!(!why.contains("weather-api"), "{why}");
    let (ok, why) = &c["performance vs baseline"];
    assert!(
        !ok && why.contains("weather-api GET /health: p95 ") && why.contains("vs baseline"),
        "{why}"
    );
    assert!(c["containers healthy"].0, "{c:?}");
    assert!(c["InfluxDB receiving data"].0, "{c:?}");
    let cmp = v["scripts"][0]["value"]["comparison"].as_array().unwrap();
    assert!(cmp.iter().any(|r| r["service"] == "weather-api"
        && r["path"] == "/health"
        && r["regressed"] == true));
}
