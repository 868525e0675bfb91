//! Fleets that run as Docker Swarm services: `dockhand lab up --swarm` (a real registry, a
//! single-node Swarm, one stack) and `playbooks/batch-rebuild.rhai` on it — immutable tags,
//! push, Swarm's update, dockhand's gate, Swarm's own rollback of an unhealthy build and
//! dockhand's rollback of a build its gate fails, `--dry-run` and `--read-only`.
//!
//! Needs the lab's engine and Debian's `docker-registry` (or a registry answering on
//! 127.0.0.1:5000), and an engine that is not a Swarm worker. Skipped with a printed reason
//! without them, failing instead when `DOCKHAND_REQUIRE_DOCKER=1`. The lab leaves the Swarm
//! again only if it created it, and removes its registry data.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Lab, dockhand};
use serde_json::Value;

/// A Swarm lab: `lab down --swarm` on drop (then the compose `lab down` of [`Lab`]).
struct SwarmLab {
    lab: Lab,
}

impl Drop for SwarmLab {
    fn drop(&mut self) {
        let out = dockhand()
            .args(["lab", "--root"])
            .arg(self.lab.ws.path())
            .args(["--dir"])
            .arg(self.lab.dir())
            .args(["--project", &self.lab.project, "down", "--swarm"])
            .output();
        if let Ok(o) = out
            && !o.status.success()
        {
            eprintln!("lab down --swarm: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

/// Whether a Swarm lab can run here; else a printed skip (or a failure in CI).
fn swarm_ready(what: &str) -> bool {
    if !common::docker_lab_ready(what) {
        return false;
    }
    let state = docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]);
    let missing = if !Path::new("/usr/bin/docker-registry").exists() {
        Some("no /usr/bin/docker-registry (apt-get install docker-registry)".to_string())
    } else if state != "inactive false" && state != "active true" {
        Some(format!(
            "this engine's Swarm state is '{state}' (neither inactive nor a manager)"
        ))
    } else {
        None
    };
    common::ready_or_skip(what, missing)
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl SwarmLab {
    fn up(prefix: &str, only: &[&str]) -> SwarmLab {
        let lab = SwarmLab {
            lab: Lab::new(prefix).with_playbooks(),
        };
        let out = dockhand()
            .args(["lab", "--root"])
            .arg(lab.lab.ws.path())
            .args(["--dir"])
            .arg(lab.lab.dir())
            .args([
                "--project",
                &lab.lab.project,
                "up",
                "--swarm",
                "--wait",
                "3m",
            ])
            .args(["--only", &only.join(",")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab up --swarm failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    /// The spec's image and version of `svc`.
    fn spec(&self, svc: &str) -> (String, String) {
        let name = format!("{}_{svc}", self.lab.project);
        let f = "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.Version.Index}}";
        let out = docker(&["service", "inspect", "--format", f, &name]);
        let (image, version) = out.split_once(' ').unwrap_or((&out, ""));
        (image.to_string(), version.to_string())
    }

    /// Runs the rebuild with `args`; (exit code, stdout + stderr).
    fn rebuild(&self, args: &[&str]) -> (i32, String) {
        let out = self.lab.rebuild(args).output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Adds a build arg to one service in the compose file (a "bad upgrade").
    fn set_build_arg(&self, service: &str, key: &str, value: &str) {
        let f = self.lab.dir().join("docker-compose.yml");
        let text = std::fs::read_to_string(&f).unwrap();
        let anchor = format!("        SERVICE_NAME: {service}\n");
        assert!(text.contains(&anchor), "no build args for {service}");
        let text = text.replacen(&anchor, &format!("{anchor}        {key}: \"{value}\"\n"), 1);
        std::fs::write(f, text).unwrap();
    }
}

fn record<'a>(journal: &'a Value, service: &str) -> &'a Value {
    &journal["records"][service]
}

const SERVICES: [&str; 3] = ["weather-api", "sports-api", "carbon-intensity"];

/// One lab for the whole story (a Swarm lab takes a while to come up on 2 cores): dry run,
/// read-only, a rebuild onto immutable tags, then bad builds rolled back by Swarm and by
/// dockhand while their neighbour completes.
#[test]
fn swarm_rebuild_updates_gates_and_rolls_back() {
    let Some(_turn) = common::lab_turn("swarm rebuild test") else {
        return;
    };
    if !swarm_ready("swarm rebuild test") {
        return;
    }
    let t0 = std::time::Instant::now();
    let lab = SwarmLab::up("dhsw", &SERVICES);
    let before = lab.specs();
    for (image, _) in &before {
        assert!(
            image.starts_with(&format!("{}/", lab.registry())),
            "{image}"
        );
    }
    eprintln!("lab up --swarm: {:?}", t0.elapsed());
    lab.status_shows_every_service_running();
    dry_run_and_read_only_change_nothing(&lab, &before);
    let t1 = std::time::Instant::now();
    rebuild_lands_on_immutable_tags(&lab, &before);
    eprintln!(
        "rebuild of {} Swarm services: {:?}",
        SERVICES.len(),
        t1.elapsed()
    );
    let t2 = std::time::Instant::now();
    bad_builds_are_rolled_back(&lab);
    eprintln!("rebuild with two rolled-back services: {:?}", t2.elapsed());
    let t3 = std::time::Instant::now();
    killed_mid_update_continue_completes(&lab);
    eprintln!("killed mid-update, then --continue: {:?}", t3.elapsed());
    let t4 = std::time::Instant::now();
    paused_update_is_rolled_back_by_dockhand(&lab);
    eprintln!(
        "paused by Swarm, rolled back by dockhand: {:?}",
        t4.elapsed()
    );
}

impl SwarmLab {
    fn registry(&self) -> String {
        format!("127.0.0.1:5000/{}", self.lab.project)
    }

    fn specs(&self) -> Vec<(String, String)> {
        SERVICES.iter().map(|s| self.spec(s)).collect()
    }

    /// `lab status --swarm --json`: each service once, one task running of one.
    fn status_shows_every_service_running(&self) {
        let out = dockhand()
            .args(["lab", "--json", "--dir"])
            .arg(self.lab.dir())
            .args(["--project", &self.lab.project, "status", "--swarm"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
        });
        let rows = v.as_array().cloned().unwrap_or_default();
        let mut names: Vec<&str> = rows.iter().filter_map(|r| r["service"].as_str()).collect();
        names.sort();
        let mut want = SERVICES.to_vec();
        want.sort();
        assert_eq!(names, want, "{v}");
        for r in &rows {
            assert_eq!(
                (r["running"].as_i64(), r["replicas"].as_i64()),
                (Some(1), Some(1)),
                "{r}"
            );
        }
    }
}

/// `--dry-run` plans, `--read-only` refuses (the rebuild, and each Swarm call before Swarm or
/// the registry is asked); no spec changes.
fn dry_run_and_read_only_change_nothing(lab: &SwarmLab, before: &[(String, String)]) {
    let mut args = common::rebuild_args(&SERVICES, "VERSION=2", "swdry");
    args.push("--dry-run");
    let (code, out) = lab.rebuild(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("then wait for Swarm"), "{out}");
    assert_eq!(before, lab.specs(), "a dry run changed a service spec");

    let mut args = common::rebuild_args(&SERVICES, "VERSION=2", "swro");
    args.push("--read-only");
    let (code, out) = lab.rebuild(&args);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("read-only"), "{out}");
    let registry = lab.registry();
    for (call, says) in [
        (
            format!("swarm::update(\"weather-api\", #{{ image: \"{registry}/weather-api:x\" }})"),
            "swarm::update would change weather-api",
        ),
        (
            "swarm::rollback(\"weather-api\")".to_string(),
            "swarm::rollback would change",
        ),
        (
            format!("docker::push(\"{registry}/weather-api:x\")"),
            "docker::push would change",
        ),
    ] {
        let script = format!("docker::use_project(\"{}\");\n{call};\n", lab.lab.project);
        std::fs::write(lab.lab.ws.path().join("ro.rhai"), script).unwrap();
        let out = dockhand()
            .args(["run", "--read-only", "--root"])
            .arg(lab.lab.ws.path())
            .arg(lab.lab.ws.path().join("ro.rhai"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{call}: {err}");
        assert!(err.contains(says), "{call}: {err}");
    }
    assert_eq!(
        before,
        lab.specs(),
        "a read-only run changed a service spec"
    );
}

/// Each service ends on its own tag, pinned to the pushed digest, with the old image as the
/// journal's backup.
fn rebuild_lands_on_immutable_tags(lab: &SwarmLab, before: &[(String, String)]) {
    let (code, out) = lab.rebuild(&common::rebuild_args(&SERVICES, "VERSION=2", "sw1"));
    assert_eq!(code, 0, "{out}");
    let j = lab.lab.journal("sw1");
    for (i, svc) in SERVICES.iter().enumerate() {
        let r = record(&j, svc);
        assert_eq!(r["status"], "completed", "{svc}: {r}\n{out}");
        assert_eq!(r["backup"], before[i].0.as_str(), "{svc}: {r}");
        let (image, version) = lab.spec(svc);
        let tag = format!("{}/{svc}:sw1@sha256:", lab.registry());
        assert!(image.starts_with(&tag), "{svc} runs {image}");
        assert_ne!(version, before[i].1, "{svc}: spec version unchanged");
    }
}

/// weather-api never gets healthy: Swarm's own rollback (FailureAction rollback), recorded
/// with Swarm's words. sports-api is healthy but logs ERROR lines: Swarm completes, dockhand's
/// settle finds them and rolls back itself (`rollback: previous`). carbon-intensity completes.
fn bad_builds_are_rolled_back(lab: &SwarmLab) {
    let good = lab.specs();
    lab.set_build_arg("weather-api", "FAULT", "unhealthy");
    lab.set_build_arg("sports-api", "FAULT", "error-logs");
    let (code, out) = lab.rebuild(&common::rebuild_args(&SERVICES, "VERSION=3", "sw2"));
    assert_eq!(code, 1, "{out}");
    let j = lab.lab.journal("sw2");
    let bad = record(&j, "weather-api");
    assert_eq!(bad["status"], "rolled-back", "{bad}\n{out}");
    assert_eq!(bad["rolled_back_by"], "swarm", "{bad}");
    let reason = bad["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Swarm: rollback_completed") && reason.contains("task 1"),
        "{reason}"
    );
    let noisy = record(&j, "sports-api");
    assert_eq!(noisy["status"], "rolled-back", "{noisy}\n{out}");
    assert_eq!(noisy["rolled_back_by"], "dockhand", "{noisy}");
    assert_eq!(noisy["failure"], "log_errors", "{noisy}");
    let now = lab.specs();
    assert_eq!(now[0].0, good[0].0, "weather-api not back on its backup");
    assert_eq!(now[1].0, good[1].0, "sports-api not back on its backup");
    assert_eq!(
        record(&j, "carbon-intensity")["status"],
        "completed",
        "{out}"
    );
    assert!(now[2].0.contains(":sw2@sha256:"), "{}", now[2].0);
}

/// The rebuild is SIGKILLed once Swarm was asked to update (journal phase `updating`);
/// `--continue` waits for that update instead of starting another, gates, and completes.
fn killed_mid_update_continue_completes(lab: &SwarmLab) {
    let svc = "carbon-intensity";
    let mut child = lab
        .lab
        .rebuild(&common::rebuild_args(&[svc], "VERSION=4", "sw3"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = lab.lab.ws.path().join(".dockhand/state/sw3.json");
    let phase = || -> String {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|j| j["records"][svc]["phase"].as_str().map(String::from))
            .unwrap_or_default()
    };
    let seen = common::poll_until(std::time::Duration::from_secs(120), phase, |p| {
        p == "updating" || p == "completed" || p == "failed"
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seen, "updating", "the rebuild never reached the update");
    let (code, out) = lab.rebuild(&["--continue", "--run", "sw3"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("resuming: waiting for Swarm's update"),
        "{out}"
    );
    let r = &lab.lab.journal("sw3")["records"][svc];
    assert_eq!(r["status"], "completed", "{r}");
    assert!(
        lab.spec(svc).0.contains(":sw3@sha256:"),
        "{}",
        lab.spec(svc).0
    );
}

/// With `swarm.failure_action: pause`, a crashing build leaves Swarm's update paused;
/// dockhand records Swarm's reason and the task's error, and rolls back itself.
fn paused_update_is_rolled_back_by_dockhand(lab: &SwarmLab) {
    let svc = "carbon-intensity";
    let good = lab.spec(svc).0;
    let cfg = lab.lab.dir().join("services.yaml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("swarm:\n  failure_action: pause\n  monitor_s: 3\n");
    std::fs::write(&cfg, text).unwrap();
    lab.set_build_arg(svc, "FAULT", "crash-loop");
    let (code, out) = lab.rebuild(&common::rebuild_args(&[svc], "VERSION=5", "sw4"));
    assert_eq!(code, 1, "{out}");
    let r = &lab.lab.journal("sw4")["records"][svc];
    assert_eq!(r["status"], "rolled-back", "{r}\n{out}");
    assert_eq!(r["rolled_back_by"], "dockhand", "{r}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Swarm: paused") && reason.contains("non-zero exit"),
        "{reason}"
    );
    assert_eq!(lab.spec(svc).0, good, "{svc} not back on its backup");
}
