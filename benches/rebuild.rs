//! The Phase 1 rebuild of the whole lab fleet, side by side with what a user would run
//! instead: `docker compose build && docker compose up -d --wait`.
//!
//! Both sides get the same change — a new `VERSION` build arg for all 44 services, so every
//! image is rebuilt and every container replaced — on the same running fleet, in one run:
//!
//! * **compose**: `docker-compose build` (serial, v1's default, and `--parallel`, v2's
//!   default) then `up -d`, then wait until every container is healthy. This machine kind
//!   has compose v1, which has no `--wait`; the bench polls `docker inspect` every 250 ms
//!   instead (generous to compose: `--wait` polls too). The faster compose run is the bar.
//! * **dockhand**: `playbooks/batch-rebuild.rhai --all`, which also backs up every image,
//!   gates each service (health, HTTP probe within budget, 2 s settle, log scan) and
//!   journals every phase.
//!
//! Reported: wall times and their ratio (goal ≤ 1.0×), dockhand's orchestration overhead
//! (wall time minus the time it spent waiting on the engine, the network and timers — from
//! the run journal), and dockhand's peak RSS (`/usr/bin/time`, goal ≤ 40 MB).
//!
//! Needs Docker, `busybox-static`, `influxdb` and `/usr/bin/time`.
//! Run: `cargo bench --bench rebuild` (env `DOCKHAND_BENCH_ROUNDS`, default 1: each round
//! is two compose rebuilds and one dockhand rebuild).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::BIN;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Down(PathBuf, String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["lab", "--dir"])
            .arg(&self.0)
            .args(["--project", &self.1, "down"])
            .output();
    }
}

/// Polls until every container of the project is healthy; returns when they are.
fn wait_all_healthy(project: &str, timeout: Duration) {
    let end = Instant::now() + timeout;
    loop {
        let ids = run(
            Command::new("docker").args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.compose.project={project}"),
            ]),
            "docker ps",
        );
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let health = run(
            Command::new("docker")
                .args(["inspect", "-f", "{{.State.Health.Status}}"])
                .args(&ids),
            "docker inspect",
        );
        if !ids.is_empty() && health.lines().all(|l| l.trim() == "healthy") {
            return;
        }
        assert!(Instant::now() < end, "fleet not healthy within {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn main() {
    if Command::new("docker")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipping the rebuild bench: no Docker engine");
        return;
    }
    let rounds: usize = std::env::var("DOCKHAND_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let ws = tempfile::tempdir().unwrap();
    let lab = ws.path().join("homeiq");
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homeiq"),
        &lab,
    );
    let project = format!("dhbench{}", std::process::id());
    let _down = Down(lab.clone(), project.clone());
    eprintln!("bringing up the full lab ({project}) …");
    let t = Instant::now();
    run(
        Command::new(BIN)
            .args(["-q", "lab", "--dir"])
            .arg(&lab)
            .args(["--project", &project, "up", "--wait", "10m"]),
        "lab up",
    );
    eprintln!("lab up: {:.1} s", t.elapsed().as_secs_f64());
    let services = dockhand::config::FleetConfig::load(&lab.join("services.yaml"))
        .expect("services.yaml")
        .services
        .keys()
        .cloned()
        .collect::<Vec<_>>();

    let mut version = 1;
    let mut rows = Vec::new();
    for round in 0..rounds {
        // compose: build && up -d, then wait for health.
        let bump = lab.join("bump.yml");
        let compose = |args: &[&str]| {
            let mut c = Command::new("docker-compose");
            c.current_dir(&lab)
                .args(["-p", &project, "-f", "docker-compose.yml", "-f", "bump.yml"])
                .args(args);
            c
        };
        // Compose v1 builds one service after another by default; `--parallel` is what
        // compose v2 does by default, so both are measured and the faster one is the bar.
        let mut compose_round = |parallel: bool| {
            version += 1;
            let mut text = String::from("version: \"2.4\"\nservices:\n");
            for s in &services {
                text.push_str(&format!(
                    "  {s}:\n    build:\n      args:\n        VERSION: \"{version}\"\n"
                ));
            }
            std::fs::write(&bump, text).unwrap();
            let t = Instant::now();
            let build: &[&str] = if parallel {
                &["build", "--parallel"]
            } else {
                &["build"]
            };
            run(&mut compose(build), "docker-compose build");
            let built = t.elapsed();
            run(&mut compose(&["up", "-d"]), "docker-compose up -d");
            wait_all_healthy(&project, Duration::from_secs(600));
            let total = t.elapsed().as_secs_f64();
            eprintln!(
                "round {round}: compose {} {:.1} s, build+up+healthy {total:.1} s",
                build.join(" "),
                built.as_secs_f64()
            );
            total
        };
        let serial_s = compose_round(false);
        let parallel_s = compose_round(true);
        let compose_s = serial_s.min(parallel_s);

        // dockhand: the batch rebuild playbook with a new version.
        version += 1;
        let run_id = format!("bench{round}");
        let rss_file = ws.path().join("rss.txt");
        let t = Instant::now();
        run(
            Command::new("/usr/bin/time")
                .arg("-o")
                .arg(&rss_file)
                .args(["-f", "%M"])
                .arg(BIN)
                .arg("run")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/batch-rebuild.rhai"))
                .arg("--root")
                .arg(ws.path())
                .args(["--config", "homeiq/services.yaml", "--project", &project])
                .args(["--all", "--build-arg", &format!("VERSION={version}")])
                .args(["--run", &run_id]),
            "dockhand batch-rebuild",
        );
        let dockhand_s = t.elapsed().as_secs_f64();
        let rss_kb: f64 = std::fs::read_to_string(&rss_file)
            .unwrap()
            .trim()
            .lines()
            .last()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0);
        let journal: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ws.path().join(format!(".dockhand/state/{run_id}.json")))
                .unwrap(),
        )
        .unwrap();
        let meta = &journal["records"]["_run"];
        let completed = journal["records"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["status"] == "completed")
            .count();
        assert_eq!(completed, services.len(), "not every service completed");
        let overhead = meta["overhead_s"].as_f64().unwrap_or(f64::NAN);
        let waiting = meta["waiting_s"].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "round {round}: dockhand {dockhand_s:.1} s (waiting {waiting:.1} s, overhead {overhead:.2} s), peak RSS {:.1} MB",
            rss_kb / 1024.0
        );
        rows.push((
            serial_s,
            parallel_s,
            compose_s,
            dockhand_s,
            overhead,
            rss_kb / 1024.0,
        ));
    }

    println!(
        "\nfull lab rebuild, {} services, {} round(s) (engine {}):",
        services.len(),
        rows.len(),
        run(
            Command::new("docker").args(["version", "-f", "{{.Server.Version}}"]),
            "docker version"
        )
        .trim()
    );
    println!(
        "{:<6} {:>16} {:>18} {:>10} {:>7} {:>10} {:>9}",
        "round",
        "compose serial",
        "compose --parallel",
        "dockhand",
        "ratio",
        "overhead",
        "peak RSS"
    );
    for (i, (ser, par, best, d, o, rss)) in rows.iter().enumerate() {
        println!(
            "{i:<6} {ser:>14.1} s {par:>16.1} s {d:>8.1} s {:>6.2}x {o:>8.2} s {rss:>6.1} MB",
            d / best
        );
    }
    println!(
        "ratio = dockhand / the faster compose (build && up -d && all healthy). goal: <= 1.0x; peak RSS <= 40 MB. dockhand also backs up, gates (probe, settle, logs) and journals every service."
    );
}
