//! The rebuild pipeline against the real engine: `playbooks/batch-rebuild.rhai` on lab
//! fleets copied into temporary workspaces (so a test can break a service's build args the
//! way a bad upgrade would, without touching the checkout).
//!
//! Docker-dependent: skipped with a printed reason when no engine (or no busybox / influxd
//! for the lab images) is here, but failing when `DOCKHAND_REQUIRE_DOCKER=1` (CI sets it).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::containers::Ctr;
use common::{BIN, Lab};
use serde_json::Value;

impl Lab {
    /// Adds a build arg to one service in the compose file (a "bad upgrade").
    fn set_build_arg(&self, service: &str, key: &str, value: &str) {
        let f = self.dir().join("docker-compose.yml");
        let text = std::fs::read_to_string(&f).unwrap();
        let anchor = format!("        SERVICE_NAME: {service}\n");
        assert!(text.contains(&anchor), "no build args for {service}");
        let text = text.replacen(&anchor, &format!("{anchor}        {key}: \"{value}\"\n"), 1);
        std::fs::write(f, text).unwrap();
    }
}

fn output(mut c: Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `docker ARGS`' stdout; panics with its stderr when it fails.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn record<'a>(journal: &'a Value, service: &str) -> &'a Value {
    &journal["records"][service]
}

/// One row of the fault matrix: `svc` gets a bad build arg; `neighbour` (same category,
/// on_failure: continue) must still be rebuilt.
fn fault_case(
    tag: &str,
    svc: &str,
    neighbour: &str,
    bad: &[(&str, &str)],
    extra: &[&str],
    reason_has: &str,
) {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start(&format!("dhrb{tag}"), &[svc, neighbour]);
    let before = lab.containers();
    for (k, v) in bad {
        lab.set_build_arg(svc, k, v);
    }
    let mut args = common::rebuild_args(&[svc, neighbour], "VERSION=2", "r1");
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = output(lab.rebuild(&args));
    let show = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert_eq!(code, 1, "a rolled-back service must fail the run\n{show}");

    let j = lab.journal("r1");
    let r = record(&j, svc);
    assert_eq!(r["status"], "rolled-back", "{svc}: {r}\n{show}");
    assert_eq!(r["rolled_back"], true, "{r}");
    let reason = r["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains(reason_has),
        "{svc}: reason {reason:?} lacks {reason_has:?}"
    );
    assert!(
        stderr.contains(&format!("{svc}: rolled back")) || reason.contains("build failed"),
        "{show}"
    );
    let n = record(&j, neighbour);
    assert_eq!(n["status"], "completed", "{neighbour}: {n}\n{show}");

    let after = lab.wait_healthy(&[svc, neighbour], Duration::from_secs(20));
    assert_eq!(
        after[svc].image, before[svc].image,
        "{svc} is not back on its previous image"
    );
    assert_eq!(after[svc].health, "healthy", "{svc} after rollback");
    assert_ne!(
        after[neighbour].image, before[neighbour].image,
        "{neighbour} was not rebuilt"
    );
    assert_eq!(after[neighbour].health, "healthy");
    assert_eq!(
        r["old_image_id"].as_str(),
        Some(before[svc].image.as_str()),
        "the journal's backup is not what ran before"
    );
    // The failed container's logs were kept before it was replaced (not for a build
    // failure: no container ran).
    if reason_has != "build failed" {
        assert!(
            lab.ws
                .path()
                .join(format!("logs/r1/{svc}.failed.log"))
                .is_file(),
            "no failed-container log"
        );
    }
    assert!(lab.ws.path().join("logs/r1/master.log").is_file());

    // Story 12's report, from this real run's journal: the rollback is an issue with its
    // reason and resolution, the neighbour a completed row with its new image.
    let report = Command::new(BIN)
        .arg("run")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/story-12-completion-report.rhai"),
        )
        .arg("--root")
        .arg(lab.ws.path())
        .args([
            "--config",
            "homeiq/services.yaml",
            "--project",
            &lab.project,
        ])
        .output()
        .unwrap();
    assert!(
        report.status.code() == Some(1),
        "the report of a run with a rollback says Phase 1 is not complete (exit 1):\n{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let md = std::fs::read_to_string(
        lab.ws
            .path()
            .join("docs/planning/phase1-completion-report.md"),
    )
    .expect("the report was written");
    let issues = &md[md.find("## 5. Issues").expect("issues section")..];
    let issues = &issues[..issues.find("## 6.").expect("recommendations section")];
    assert!(
        issues.contains(svc) && issues.contains("rolled back to"),
        "{issues}"
    );
    let first_words: String = reason_has.chars().take(12).collect();
    assert!(issues.contains(&first_words), "{issues}");
    let matrix = &md[md.find("## 2. Service Update Matrix").expect("matrix")..];
    let row = matrix
        .lines()
        .find(|l| l.starts_with(&format!("| {neighbour} |")))
        .unwrap_or_else(|| panic!("no row for {neighbour}:\n{matrix}"));
    assert!(
        row.contains("completed") && row.contains("VERSION=2"),
        "{row}"
    );
    let new_id = n["new_image_id"].as_str().unwrap();
    let short = new_id.trim_start_matches("sha256:");
    assert!(row.contains(&short[..12]), "{row} lacks {}", &short[..12]);
}

#[test]
fn fault_broken_build_keeps_the_old_image() {
    fault_case(
        "bb",
        "weather-api",
        "sports-api",
        &[("FAIL_BUILD", "1")],
        &[],
        "build failed",
    );
}

#[test]
fn fault_new_image_unhealthy_is_rolled_back() {
    fault_case(
        "uh",
        "carbon-intensity",
        "electricity-pricing",
        &[("FAULT", "unhealthy")],
        &["--health-timeout", "6s"],
        "not healthy within 6s",
    );
}

#[test]
fn fault_crash_loop_is_rolled_back() {
    fault_case(
        "cl",
        "air-quality",
        "calendar-service",
        &[("FAULT", "crash-loop")],
        &["--health-timeout", "20s"],
        "exited before it was healthy",
    );
}

#[test]
fn fault_slow_start_past_the_timeout_is_rolled_back() {
    fault_case(
        "ss",
        "smart-meter-service",
        "log-aggregator",
        &[("FAULT", "slow-start"), ("SLOW_START_S", "60")],
        &["--health-timeout", "5s"],
        "not healthy within 5s",
    );
}

#[test]
fn fault_slow_health_over_budget_is_rolled_back() {
    fault_case(
        "sh",
        "automation-linter",
        "automation-miner",
        &[("FAULT", "slow-health")],
        &[],
        "budget",
    );
}

#[test]
fn fault_error_lines_in_logs_are_rolled_back() {
    fault_case(
        "el",
        "blueprint-index",
        "yaml-validation-service",
        &[("FAULT", "error-logs")],
        &[],
        "'ERROR' line(s)",
    );
}

/// The core category is `on_failure: stop`, one at a time (`batch_size: 1`), each validated
/// before the next. Every core service gets an image that builds but never gets healthy:
/// the builds run ahead of the turns (a build touches nothing that runs), whichever deploys
/// first fails its gate and is rolled back, and the policy must stop the others before
/// their deploy, whatever the order: their containers untouched, and their image names
/// pointed back at what they run, so a later `docker compose up -d` changes nothing either.
#[test]
fn category_stop_policy_leaves_the_rest_of_the_category_untouched() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let core = ["data-api", "websocket-ingestion", "admin-api"];
    let lab = Lab::start("dhrbstop", &core);
    let before = lab.containers();
    for svc in core {
        lab.set_build_arg(svc, "FAULT", "unhealthy");
    }
    let mut args = vec![
        "--build-arg",
        "VERSION=2",
        "--run",
        "r1",
        "--health-timeout",
        "6s",
    ];
    for svc in core {
        args.extend(["--service", svc]);
    }
    let (code, stdout, stderr) = output(lab.rebuild(&args));
    let show = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert_eq!(code, 1, "{show}");
    let j = lab.journal("r1");
    let mut failed = Vec::new();
    let mut stopped = Vec::new();
    for svc in core {
        let r = record(&j, svc);
        match r["status"].as_str() {
            Some("rolled-back") => failed.push(svc),
            Some("pending") => {
                let reason = r["reason"].as_str().unwrap_or("");
                assert!(
                    reason.contains("not started: category core stops on failure"),
                    "{svc}: {r}\n{show}"
                );
                stopped.push(svc);
            }
            other => panic!("{svc}: unexpected status {other:?}: {r}\n{show}"),
        }
    }
    assert_eq!(
        failed.len(),
        1,
        "exactly one deploy ran: {failed:?}\n{show}"
    );
    assert_eq!(stopped.len(), 2, "{stopped:?}\n{show}");
    let after = lab.containers();
    for svc in core {
        assert_eq!(
            after[svc].image, before[svc].image,
            "{svc} runs another image\n{show}"
        );
        assert_eq!(after[svc].health, "healthy", "{svc}\n{show}");
    }
    for svc in &stopped {
        assert_eq!(
            after[*svc].id, before[*svc].id,
            "{svc}'s container was touched\n{show}"
        );
        // Built ahead of its turn, then blocked: the name points at what runs again.
        let name = docker(&["inspect", "-f", "{{.Config.Image}}", &after[*svc].name]);
        let id = docker(&["image", "inspect", "-f", "{{.Id}}", name.trim()]);
        assert_eq!(
            id.trim(),
            before[*svc].image,
            "{svc}: {} was left on the unused build\n{show}",
            name.trim()
        );
    }
}

#[test]
fn dry_run_changes_nothing_and_builds_nothing() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start("dhrbdry", &["weather-api", "sports-api"]);
    // This lab's images only (Compose labels what it builds with the project): other tests
    // and builds on the same engine add and remove their own images meanwhile.
    let label = format!("label=com.docker.compose.project={}", lab.project);
    let images = || {
        let o = Command::new("docker")
            .args(["images", "-qa", "--no-trunc", "--filter", &label])
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let images_before = images();
    assert!(
        !images_before.is_empty(),
        "the lab's images carry no project label"
    );
    let before = lab.containers();
    let c = lab.rebuild(&[
        "--category",
        "integration",
        "--service",
        "weather-api",
        "--service",
        "sports-api",
        "--build-arg",
        "VERSION=9",
        "--no-cache",
        "--run",
        "dry1",
        "--dry-run",
        "--json",
    ]);
    let (code, stdout, stderr) = output(c);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let plan = v["plan"].as_array().expect("a plan");
    let actions: Vec<(&str, &str)> = plan
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["target"].as_str().unwrap()))
        .collect();
    for svc in ["weather-api", "sports-api"] {
        assert!(
            actions.contains(&("docker::recreate", svc)),
            "no recreate of {svc} planned: {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|(a, _)| *a == "docker::build")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(stderr.contains("then gate"), "{stderr}");
    let after = lab.containers();
    for (svc, c) in &before {
        assert_eq!(after[svc].id, c.id, "{svc}: container changed");
        assert_eq!(after[svc].image, c.image, "{svc}: image changed");
    }
    assert_eq!(images(), images_before, "a dry run built or removed images");
    assert!(
        !lab.ws.path().join(".dockhand/state/dry1.json").exists(),
        "a dry run wrote a journal"
    );
    assert!(
        !lab.ws.path().join("logs/dry1").exists(),
        "a dry run wrote logs"
    );
}

#[test]
fn recover_puts_back_a_container_left_aside_by_a_killed_recreate() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start("dhrbrec", &["weather-api"]);
    let before = lab.containers();
    let c = &before["weather-api"];
    // What a SIGKILL between "rename aside" and "create" leaves behind.
    let aside = format!("{}_dockhand_old_{}", c.name, &c.id[..12]);
    let st = Command::new("docker")
        .args(["rename", &c.name, &aside])
        .status()
        .unwrap();
    assert!(st.success());
    let script = lab.ws.path().join("recover.rhai");
    std::fs::write(
        &script,
        format!(
            "docker::use_project(\"{}\");\nlet r = docker::recover(\"weather-api\");\nprint(`${{r.action}}: ${{r.detail}}`);\nlet again = docker::recover(\"weather-api\");\nprint(`again: ${{again.action}}`);\n",
            lab.project
        ),
    )
    .unwrap();
    let (code, _, stderr) = output({
        let mut c = Command::new(BIN);
        c.args(["run", "recover.rhai"]).current_dir(lab.ws.path());
        c
    });
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("restored:"), "{stderr}");
    assert!(stderr.contains("again: none"), "{stderr}");
    let all = lab.all_containers();
    let after = common::containers::by_service(&all);
    assert_eq!(after["weather-api"].name, c.name, "name not restored");
    assert_eq!(after["weather-api"].id, c.id);
    assert_eq!(all.len(), before.len(), "{all:?}");
}

/// SIGKILL the runner at many points — mid-build, between recreate and gate, mid-rollback,
/// between journal writes, at fixed times — then `--continue`: every time the fleet must end
/// healthy, every service exactly once (nothing left aside, nothing lost), and the journal
/// valid with each service completed or rolled back.
#[test]
fn killed_at_any_point_continue_ends_all_healthy() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let good = ["weather-api", "sports-api"];
    let bad = "carbon-intensity";
    let lab = Lab::start("dhrbkill", &["weather-api", "sports-api", bad]);
    lab.set_build_arg(bad, "FAULT", "unhealthy");
    let start = lab.containers();
    let n_containers = start.len();

    // (line to wait for, how many of them, extra delay): each kill point. Completions are
    // counted by their "[n/3]" lines, whose numbers two services finishing together can
    // share, so the n-th such line is waited for, not a number.
    let points: &[(&str, usize, u64)] = &[
        ("weather-api: building", 1, 0),
        ("built in", 1, 0),
        ("recreating", 1, 0),
        ("recreating", 1, 900),
        ("gating", 1, 0),
        ("healthy in", 1, 0),
        ("rolling back", 1, 0),
        ("rolling back", 1, 1100),
        ("/3] ", 1, 0),
        ("", 0, 2500),
        ("", 0, 5000),
        ("/3] ", 2, 0),
    ];
    let mut killed_at = Vec::new();
    for (i, (line, nth, delay)) in points.iter().enumerate() {
        let run = format!("k{i}");
        // Never built before (BuildKit would answer an earlier run's build from its cache).
        let version = format!("VERSION={}-{}", i + 2, std::process::id());
        let mut args = common::rebuild_args(&["weather-api", "sports-api", bad], &version, &run);
        args.extend(["--health-timeout", "8s"]);
        let mut c = lab.rebuild(&args);
        let mut child = c
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let _reader = if line.is_empty() {
            None
        } else {
            let mut reader = common::wait_for_line(&mut child, line);
            for _ in 1..*nth {
                use std::io::BufRead;
                let mut l = String::new();
                while !l.contains(line) {
                    l.clear();
                    let n = reader.read_line(&mut l).expect("read stderr");
                    assert!(n > 0, "process ended before its {nth}th {line:?} line");
                }
            }
            Some(reader)
        };
        std::thread::sleep(Duration::from_millis(*delay));
        common::signal(&child, "KILL");
        let _ = child.wait();
        killed_at.push(format!("{line:?}+{delay}ms at {:?}", t0.elapsed()));
        // Whatever the moment, the journal on disk is valid JSON.
        let _ = lab.journal(&run);

        let cont = lab.rebuild(&["--continue", "--run", &run, "--health-timeout", "8s"]);
        let (code, stdout, stderr) = output(cont);
        let show = format!(
            "kill point {i} ({line:?} + {delay} ms)\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
        assert!(code == 0 || code == 1, "continue failed to run: {show}");

        let j = lab.journal(&run);
        let by = lab.wait_healthy(&["weather-api", "sports-api", bad], Duration::from_secs(20));
        let all = lab.all_containers();
        assert_eq!(
            all.len(),
            n_containers,
            "containers lost or left aside: {all:?}\n{show}"
        );
        assert!(
            all.iter().all(|c| !c.name.contains("_dockhand_old_")),
            "a container is still aside: {all:?}"
        );
        for svc in good {
            let r = record(&j, svc);
            assert_eq!(r["status"], "completed", "{svc}: {r}\n{show}");
            assert_eq!(by[svc].health, "healthy", "{svc}\n{show}");
            assert_eq!(
                r["new_image_id"].as_str(),
                Some(by[svc].image.as_str()),
                "{svc} is not on the image it built\n{show}"
            );
        }
        let r = record(&j, bad);
        assert_eq!(r["status"], "rolled-back", "{bad}: {r}\n{show}");
        assert_eq!(by[bad].health, "healthy", "{bad}\n{show}");
        assert_eq!(
            by[bad].image, start[bad].image,
            "{bad} is not on its original image\n{show}"
        );
    }
    eprintln!("killed at: {killed_at:#?}");
}

// The whole lab: 45 services and the Jaeger stand-in up from nothing, then all 44
// application services rebuilt
// with `--build-arg VERSION=2` (infrastructure untouched). Takes ~8 minutes on 2 cores.
#[test]
fn full_lab_rebuild_ends_all_healthy_with_timings() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start("dhrbfull", &[]);
    let before = lab.containers();
    assert_eq!(before.len(), 46, "the whole lab: {:?}", before.keys());
    let (code, stdout, stderr) =
        output(lab.rebuild(&["--all", "--build-arg", "VERSION=2", "--run", "full1"]));
    assert_eq!(code, 0, "--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    let j = lab.journal("full1");
    let records = j["records"].as_object().unwrap();
    let services: Vec<&String> = records.keys().filter(|k| !k.starts_with('_')).collect();
    assert_eq!(services.len(), 44, "{services:?}");
    let after = lab.containers();
    for svc in services {
        let r = &records[svc];
        assert_eq!(r["status"], "completed", "{svc}: {r}");
        assert!(r["build_s"].as_f64().unwrap() > 0.0, "{svc}: build_s {r}");
        assert!(r["healthy_ms"].as_i64().is_some(), "{svc}: healthy_ms {r}");
        assert_eq!(after[svc.as_str()].health, "healthy", "{svc}");
        assert_ne!(
            after[svc.as_str()].image,
            before[svc.as_str()].image,
            "{svc} not rebuilt"
        );
        assert_eq!(
            r["new_image_id"].as_str(),
            Some(after[svc.as_str()].image.as_str())
        );
    }
    for infra in ["influxdb", "jaeger"] {
        assert_eq!(after[infra].id, before[infra].id, "{infra} was touched");
    }
    assert_eq!(records["_run"]["status"], "completed");
    assert!(stderr.contains("HEALTHY_MS"), "no summary table:\n{stderr}");
}

/// The usual way Python services are built today: `RUN --mount=type=cache` keeps pip's
/// cache between builds. The classic builder refuses it ("the --mount option requires
/// BuildKit"); the rebuild builds like `docker compose build` (BuildKit), so it completes,
/// and a second rebuild finds the cache the first one filled.
#[test]
fn integration_rebuild_with_a_buildkit_cache_mount_completes() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start("dhrbbkcache", &["weather-api"]);
    let before = lab.containers();
    // A pip-style service: same knobs as the lab's service image, plus a cached install.
    let src = std::fs::read_to_string(lab.dir().join("service/Dockerfile")).unwrap();
    let pip = src.replacen(
        "RUN if [",
        "COPY requirements.txt /app/requirements.txt\n\
         RUN --mount=type=cache,target=/root/.cache/pip \\\n    \
         if [ -f /root/.cache/pip/wheels ]; then echo \"pip cache hit: $(cat /root/.cache/pip/wheels)\"; \\\n    \
         else echo \"pip cache miss\"; fi; \\\n    \
         cp /app/requirements.txt /root/.cache/pip/wheels\n\
         RUN if [",
        1,
    );
    assert_ne!(pip, src, "the lab's service Dockerfile changed shape");
    std::fs::create_dir_all(lab.dir().join("service-pip")).unwrap();
    std::fs::write(lab.dir().join("service-pip/Dockerfile"), pip).unwrap();
    std::fs::write(
        lab.dir().join("service-pip/requirements.txt"),
        "sqlalchemy==2.0.46\naiosqlite==0.22.1\n",
    )
    .unwrap();
    let f = lab.dir().join("docker-compose.yml");
    let text = std::fs::read_to_string(&f).unwrap();
    let anchor = "context: ./service\n      args:\n        SERVICE_NAME: weather-api\n";
    assert!(text.contains(anchor), "no build section for weather-api");
    std::fs::write(
        &f,
        text.replacen(anchor, &anchor.replace("./service\n", "./service-pip\n"), 1),
    )
    .unwrap();

    // Versions never built before: BuildKit would answer an earlier run's build from cache.
    let nonce = std::process::id();
    let versions = [format!("VERSION=2-{nonce}"), format!("VERSION=3-{nonce}")];
    for (run, version) in [("bk1", versions[0].as_str()), ("bk2", versions[1].as_str())] {
        let (code, stdout, stderr) = output(lab.rebuild(&[
            "--service",
            "weather-api",
            "--build-arg",
            version,
            "--run",
            run,
        ]));
        let show = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
        assert_eq!(code, 0, "rebuild {run} failed\n{show}");
        let j = lab.journal(run);
        assert_eq!(record(&j, "weather-api")["status"], "completed", "{show}");
    }
    let log1 = std::fs::read_to_string(lab.ws.path().join("logs/bk1/weather-api.log")).unwrap();
    let log2 = std::fs::read_to_string(lab.ws.path().join("logs/bk2/weather-api.log")).unwrap();
    assert!(
        log1.contains("--mount=type=cache") && log1.contains("pip cache"),
        "the build log lacks BuildKit's steps:\n{log1}"
    );
    assert!(
        log2.contains("pip cache hit: sqlalchemy==2.0.46"),
        "the second build did not find the cache mount's content:\n{log2}"
    );
    let after = lab.wait_healthy(&["weather-api"], Duration::from_secs(20));
    assert_ne!(after["weather-api"].image, before["weather-api"].image);
    assert_eq!(after["weather-api"].health, "healthy");
    let env = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{json .Config.Env}}",
            &after["weather-api"].id,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&env.stdout).contains(&versions[1]),
        "not on the second build"
    );
}

impl Lab {
    /// Sets `order:` for one service in the workspace's services.yaml.
    fn set_order(&self, service: &str, order: &str) {
        let f = self.dir().join("services.yaml");
        let text = std::fs::read_to_string(&f).unwrap();
        let anchor = format!("  {service}:\n    category:");
        assert!(text.contains(&anchor), "no {service} in services.yaml");
        let text = text.replacen(
            &anchor,
            &format!("  {service}:\n    order: {order}\n    category:"),
            1,
        );
        std::fs::write(f, text).unwrap();
    }

    /// Runs a script in the workspace with the lab's project in use.
    fn script(&self, body: &str) -> (i32, String, String) {
        let f = self.ws.path().join("s.rhai");
        std::fs::write(
            &f,
            format!("docker::use_project(\"{}\");\n{body}", self.project),
        )
        .unwrap();
        let mut c = Command::new(BIN);
        c.args(["run", "s.rhai"])
            .current_dir(self.ws.path())
            .env("NO_COLOR", "1");
        output(c)
    }
}

fn inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The aliases container `id` answers to on network `net` (empty when it is not on it).
fn aliases_on(id: &str, net: &str) -> Vec<String> {
    let f = format!(
        "{{{{with index .NetworkSettings.Networks \"{net}\"}}}}{{{{json .Aliases}}}}{{{{end}}}}"
    );
    serde_json::from_str::<Option<Vec<String>>>(&inspect(id, &f))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The service aliases a start-first container takes on promotion, from its label.
fn promised_aliases(id: &str, net: &str) -> Vec<String> {
    let label = inspect(
        id,
        "{{index .Config.Labels \"dockhand.start-first.aliases\"}}",
    );
    let v: Value = serde_json::from_str(&label).unwrap_or_else(|e| panic!("{e}: {label}"));
    v[net]
        .as_array()
        .unwrap_or_else(|| panic!("no {net} in {v}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// `docker network <args>`, which must succeed.
fn network(args: &[&str]) {
    let out = Command::new("docker")
        .arg("network")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker network {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reconnects `id` to `net` with `aliases`, as a promotion does first.
fn reconnect_with(id: &str, net: &str, aliases: &[String]) {
    network(&["disconnect", net, id]);
    let mut args = vec!["connect"];
    for a in aliases {
        args.extend(["--alias", a.as_str()]);
    }
    args.extend([net, id]);
    network(&args);
}

/// The engine's container events of one compose project, streamed from the moment it is
/// made until it is dropped (a query for past events after the fact would only get the last
/// 256 the engine keeps, too few on a busy engine).
struct Events {
    child: std::process::Child,
}

impl Events {
    fn watch(project: &str) -> Events {
        let child = Command::new("docker")
            .args(["events", "--filter", "type=container", "--filter"])
            .arg(format!("label=com.docker.compose.project={project}"))
            .args(["--format", "{{.TimeNano}} {{.ID}} {{.Status}}"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The stream is open once the engine has it; a moment is plenty.
        std::thread::sleep(Duration::from_millis(500));
        Events { child }
    }

    /// Stops the stream and returns (time ns, container id, status) of everything seen.
    fn stop(mut self) -> Vec<(u128, String, String)> {
        use std::io::Read;
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        text.lines()
            .filter_map(|l| {
                let mut w = l.splitn(3, ' ');
                Some((
                    w.next()?.parse().ok()?,
                    w.next()?.to_string(),
                    w.next()?.to_string(),
                ))
            })
            .collect()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start-first: the new container is healthy *before* the old one is stopped (the engine's
/// own event times say so), the service ends on the new image under its compose name, and a
/// later `docker compose up -d` recreates nothing. The stop-first neighbour still works.
#[test]
fn start_first_deploy_stops_the_old_container_only_after_the_new_one_is_healthy() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start("dhrbsf", &["weather-api", "sports-api"]);
    lab.set_order("weather-api", "start-first");
    let before = lab.containers();
    let events = Events::watch(&lab.project);
    let (code, stdout, stderr) = output(lab.rebuild(&common::rebuild_args(
        &["weather-api", "sports-api"],
        "VERSION=2",
        "sf1",
    )));
    let show = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert_eq!(code, 0, "{show}");
    let j = lab.journal("sf1");
    let r = record(&j, "weather-api");
    assert_eq!(r["status"], "completed", "{r}\n{show}");
    assert_eq!(r["order"], "start-first", "{r}");
    assert_eq!(record(&j, "sports-api")["status"], "completed");
    // The per-phase breakdown, for both orders.
    for (svc, phases) in [
        (
            "weather-api",
            &[
                "queued",
                "build",
                "deploy_queued",
                "start_next",
                "health",
                "probe",
                "settle",
                "promote",
            ][..],
        ),
        (
            "sports-api",
            &[
                "queued",
                "build",
                "deploy_queued",
                "recreate",
                "health",
                "probe",
                "settle",
            ][..],
        ),
    ] {
        let pm = &record(&j, svc)["phase_ms"];
        for p in phases {
            assert!(
                pm[*p].as_f64().is_some_and(|ms| ms >= 0.0),
                "{svc}: no {p} in {pm}"
            );
        }
    }
    assert!(
        record(&j, "sports-api")["phase_ms"]["build"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let all = lab.all_containers();
    let after = common::containers::by_service(&all);
    assert_eq!(
        all.len(),
        before.len(),
        "a container too many or lost: {all:?}"
    );
    let (old, new) = (&before["weather-api"], &after["weather-api"]);
    assert_ne!(old.id, new.id);
    assert_eq!(
        new.name, old.name,
        "the new container did not take the compose name"
    );
    assert_eq!(r["new_image_id"].as_str(), Some(new.image.as_str()));

    let seen = events.stop();
    let of = |id: &str| -> Vec<(u128, String)> {
        seen.iter()
            .filter(|(_, c, _)| c == id)
            .map(|(t, _, s)| (*t, s.clone()))
            .collect()
    };
    let (old_events, new_events) = (of(&old.id), of(&new.id));
    let stopped = old_events
        .iter()
        .find(|(_, s)| s == "kill" || s == "die" || s == "stop")
        .unwrap_or_else(|| panic!("the old container was not stopped: {old_events:?}"));
    let healthy = new_events
        .iter()
        .find(|(_, s)| s.contains("health_status: healthy"))
        .unwrap_or_else(|| panic!("the new container never reported healthy: {new_events:?}"));
    assert!(
        healthy.0 < stopped.0,
        "the old container stopped before the new one was healthy: {old_events:?} / {new_events:?}"
    );
    // Compose agrees that the service is up to date.
    let up = Command::new("docker")
        .args([
            "compose",
            "-p",
            &lab.project,
            "up",
            "-d",
            "--no-build",
            "weather-api",
        ])
        .current_dir(lab.dir())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let again = lab.containers();
    assert_eq!(
        again["weather-api"].id, new.id,
        "docker compose up -d recreated it"
    );
}

/// A start-first deploy whose new container fails its gate: the new container is removed
/// (its logs kept), the old one was never stopped (same id, same start time), and the
/// compose image name points back at what runs.
#[test]
fn start_first_failed_gate_removes_the_new_container_and_never_stops_the_old() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start("dhrbsfbad", &["weather-api"]);
    lab.set_order("weather-api", "start-first");
    lab.set_build_arg("weather-api", "FAULT", "unhealthy");
    let before = lab.containers();
    let old = &before["weather-api"];
    let started_at = inspect(&old.id, "{{.State.StartedAt}}");
    let mut args = common::rebuild_args(&["weather-api"], "VERSION=2", "sfb");
    args.extend(["--health-timeout", "8s"]);
    let (code, stdout, stderr) = output(lab.rebuild(&args));
    let show = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert_eq!(code, 1, "{show}");
    let j = lab.journal("sfb");
    let r = record(&j, "weather-api");
    assert_eq!(r["status"], "rolled-back", "{r}\n{show}");
    assert_eq!(r["order"], "start-first");
    let all = lab.all_containers();
    let after = common::containers::by_service(&all);
    assert!(
        all.iter().all(|c| !c.name.contains("_dockhand_next_")),
        "the new container was left behind: {all:?}"
    );
    assert_eq!(
        after["weather-api"].id, old.id,
        "the old container was replaced"
    );
    assert_eq!(
        inspect(&old.id, "{{.State.StartedAt}}"),
        started_at,
        "the old container was restarted"
    );
    let image_name = inspect(&old.id, "{{.Config.Image}}");
    let tag_id = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", &image_name])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&tag_id.stdout).trim(),
        old.image,
        "the compose image name still points at the failed build"
    );
    assert!(
        lab.ws
            .path()
            .join("logs/sfb/weather-api.failed.log")
            .is_file()
    );
}

/// `docker::recover` mends a start-first deploy interrupted between any two steps: the new
/// container (on the network without the service's aliases) next to a running old one is
/// removed; with the promotion begun (the new one off a network mid-reconnect, or on it with
/// the aliases, the old one still connected or already off) or the old one stopped or gone,
/// and the new one healthy, the promotion is finished; with the new one unhealthy, it is
/// removed and the old one put back on its network with its aliases and started again.
#[test]
fn recover_mends_a_start_first_deploy_interrupted_at_each_step() {
    let Some(_turn) = common::lab_turn("rebuild test") else {
        return;
    };
    let lab = Lab::start("dhrbsfrec", &["weather-api"]);
    let svc = "weather-api";
    let current = || lab.containers()[svc].clone();
    let start_next = |then: &str| {
        let (code, _, stderr) = lab.script(&format!(
            "let n = docker::start_next(\"{svc}\");\nprint(`next: ${{n.next_name}}`);\n{then}"
        ));
        assert_eq!(code, 0, "{stderr}");
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("next: "))
            .expect("next name")
            .to_string()
    };
    let recover = || {
        let (code, _, stderr) = lab.script(&format!(
            "let r = docker::recover(\"{svc}\");\nprint(`recovered: ${{r.action}}`);"
        ));
        assert_eq!(code, 0, "{stderr}");
        stderr
    };
    let wait = "docker::wait_healthy(n.next_name, #{ timeout: \"60s\" });\n";

    let net = format!("{}_default", lab.project);
    let service_alias = |id: &str| aliases_on(id, &net).iter().any(|a| a == svc);

    // 1. Killed before promotion: the old container kept serving; the new one, which joined
    // the network without the service's aliases (DNS must not name it before it listens),
    // goes.
    let old = current();
    let next = start_next("");
    assert!(
        !service_alias(&next),
        "{next} joined with the service alias: {:?}",
        aliases_on(&next, &net)
    );
    assert!(promised_aliases(&next, &net).iter().any(|a| a == svc));
    assert!(service_alias(&old.id));
    assert!(recover().contains("recovered: discarded"));
    assert_eq!(current().id, old.id);
    assert!(service_alias(&old.id), "the old container lost its alias");

    // 2. Killed in promotion after the old one stopped: finish it.
    let next = start_next(wait);
    Command::new("docker")
        .args(["stop", "-t", "1", &old.id])
        .output()
        .unwrap();
    assert!(recover().contains("recovered: promoted"));
    let now = current();
    assert_ne!(now.id, old.id);
    assert_eq!(now.name, old.name, "not renamed to the compose name");
    assert!(now.id.starts_with(&inspect(&now.name, "{{.Id}}")[..12]));
    assert!(inspect(&next, "{{.Id}}").is_empty(), "{next} still exists");
    assert!(
        service_alias(&now.id),
        "the promoted container has no alias"
    );

    // 3. Killed after the old one was removed, before the rename: finish it.
    let old = now;
    start_next(wait);
    Command::new("docker")
        .args(["rm", "-f", &old.id])
        .output()
        .unwrap();
    assert!(recover().contains("recovered: promoted"));
    let now = current();
    assert_eq!(now.name, old.name);
    assert_eq!(now.health, "healthy");
    assert!(service_alias(&now.id));

    // What each "finish the promotion" case below ends with: the new container under the
    // compose name, with the service's alias, and the old one gone.
    let promoted = |old: &Ctr| {
        assert!(recover().contains("recovered: promoted"));
        let now = current();
        assert_ne!(now.id, old.id);
        assert_eq!(now.name, old.name);
        assert!(service_alias(&now.id), "{:?}", aliases_on(&now.id, &net));
        assert!(
            inspect(&old.id, "{{.Id}}").is_empty(),
            "the old one is left"
        );
        now
    };

    // 3a. Killed mid-reconnect: the new container (running, gated) is off the network it
    // was to rejoin with the aliases; the old one still serves. Finish the promotion.
    let old = now;
    let next = start_next(wait);
    network(&["disconnect", &net, &next]);
    let now = promoted(&old);

    // 3b. Killed with the new container on the network with the aliases while the old one
    // is still connected (both named by DNS): finish the promotion.
    let old = now;
    let next = start_next(wait);
    reconnect_with(&next, &net, &promised_aliases(&next, &net));
    assert!(service_alias(&next) && service_alias(&old.id));
    let now = promoted(&old);

    // 3c. Killed after the old one left the network, before it was stopped: finish it.
    let old = now;
    let next = start_next(wait);
    reconnect_with(&next, &net, &promised_aliases(&next, &net));
    network(&["disconnect", &net, &old.id]);
    let now = promoted(&old);
    assert_eq!(now.health, "healthy");

    // 4. The new one is unhealthy and the old one stopped: back to the old one.
    lab.set_build_arg(svc, "FAULT", "unhealthy");
    let (code, _, stderr) = lab.script(&format!(
        "docker::build(#{{ compose_file: \"homeiq/docker-compose.yml\", service: \"{svc}\" }});"
    ));
    assert_eq!(code, 0, "{stderr}");
    let old = now;
    let next = start_next("time::sleep(\"4s\");\n");
    // As far as a promotion gets before the stop: aliases moved, the old one off the network.
    reconnect_with(&next, &net, &promised_aliases(&next, &net));
    network(&["disconnect", &net, &old.id]);
    Command::new("docker")
        .args(["stop", "-t", "1", &old.id])
        .output()
        .unwrap();
    assert!(recover().contains("recovered: discarded"));
    assert!(
        service_alias(&old.id),
        "the old container is not back on the network with its alias"
    );
    let by = lab.wait_healthy(&[svc], Duration::from_secs(30));
    assert_eq!(by[svc].id, old.id, "the old container is not back");
    assert_eq!(by[svc].health, "healthy");
    let all = lab.all_containers();
    assert!(
        all.iter().all(|c| !c.name.contains("_dockhand_next_")),
        "{all:?}"
    );
}
