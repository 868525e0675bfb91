//! The Phase 1 rebuild of the whole lab fleet, side by side with what a user would run
//! instead: `docker compose build && docker compose up -d --wait`.
//!
//! Both sides get the same change — a new `VERSION` build arg for all 44 services, so every
//! image is rebuilt and every container replaced — on the same running fleet, in one run:
//!
//! * **compose**: Compose v2 (what users run): `docker compose build` (BuildKit, all services
//!   at once) then `docker compose up -d --wait`. This is the bar. Where only Compose v1 is
//!   installed: `docker-compose build --parallel` then `up -d`, polling `docker inspect` every
//!   250 ms until every container is healthy (v1 has no `--wait`); v1's serial `build` with
//!   `DOCKHAND_BENCH_SERIAL=1`.
//! * **dockhand**: `playbooks/batch-rebuild.rhai --all`, which also backs up every image,
//!   gates each service (health, HTTP probe within budget, 2 s settle, log scan) and
//!   journals every phase. Twice: with the shipped `services.yaml` limits (builds and
//!   recreates `auto`, per-category turns, the core category one at a time), and "all at
//!   once" (every batch size raised to the fleet's size, compose's own parallelism).
//!
//! Reported: wall times and their ratio to compose (goals: shipped ≤ 1.0×, all at once
//! ≤ 0.8×), dockhand's orchestration overhead (wall time minus the time it spent waiting on
//! the engine, the network and timers — from the run journal — and its own CPU time), and
//! dockhand's own peak RSS (`VmHWM` from /proc, children excluded; goal ≤ 40 MB).
//!
//! Needs Docker, `busybox-static` and `influxdb` (and Compose v2: `scripts/install-deps`).
//! Run: `cargo bench --bench rebuild` (env `DOCKHAND_BENCH_ROUNDS`, default 3: each round
//! is one compose rebuild and two dockhand rebuilds, about 2.5 min here; with more than one
//! round the medians are printed too, since one round on a busy host says little).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::BIN;
use common::run_ok as run;

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
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let fixture = common::Lab::new("dhbench");
    let (lab, ws, project) = (fixture.dir(), fixture.ws.path(), fixture.project.clone());
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

    // The "wide" config: every batch size raised to the fleet's size, so dockhand may run as
    // many builds and deploys at once as `docker-compose build --parallel` / `up -d` do.
    let wide = ws.join("homeiq/services-wide.yaml");
    let text = std::fs::read_to_string(lab.join("services.yaml")).unwrap();
    let n = services.len();
    let widened: String = text
        .lines()
        .map(|l| match l.split_once("batch_size:") {
            Some((indent, _)) => format!("{indent}batch_size: {n}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&wide, widened).unwrap();
    let serial = std::env::var("DOCKHAND_BENCH_SERIAL").is_ok_and(|v| v == "1");
    let v2 = Command::new("docker")
        .args(["compose", "version", "--short"])
        .output()
        .map(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).starts_with('1'))
        .unwrap_or(false);

    // A VERSION no earlier run used, so no side gets a build-cache hit from a previous bench.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut n_version = 1;
    let mut rows: Vec<Row> = Vec::new();
    for round in 0..rounds {
        let bump = lab.join("bump.yml");
        let compose = |args: &[&str]| {
            let mut c = if v2 {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            } else {
                Command::new("docker-compose")
            };
            c.current_dir(&lab)
                .args(["-p", &project, "-f", "docker-compose.yml", "-f", "bump.yml"])
                .args(args);
            c
        };
        // compose: build && up -d (--wait on v2; v1 polls until all are healthy). v2 builds
        // every service at once with BuildKit; v1 with `--parallel` (its serial default only
        // with DOCKHAND_BENCH_SERIAL=1: it is 3× slower, so never the bar).
        let mut compose_round = |parallel: bool| {
            n_version += 1;
            let version = format!("{nonce}.{n_version}");
            let mut text = String::from("services:\n");
            for s in &services {
                text.push_str(&format!(
                    "  {s}:\n    build:\n      args:\n        VERSION: \"{version}\"\n"
                ));
            }
            std::fs::write(&bump, text).unwrap();
            let t = Instant::now();
            let build: &[&str] = match (v2, parallel) {
                (true, _) => &["build"],
                (false, true) => &["build", "--parallel"],
                (false, false) => &["build"],
            };
            run(&mut compose(build), "compose build");
            let built = t.elapsed();
            if v2 {
                run(
                    &mut compose(&["up", "-d", "--wait", "--wait-timeout", "600"]),
                    "docker compose up -d --wait",
                );
            } else {
                run(&mut compose(&["up", "-d"]), "docker-compose up -d");
                wait_all_healthy(&project, Duration::from_secs(600));
            }
            let total = t.elapsed().as_secs_f64();
            let what = if v2 {
                "compose v2: build && up -d --wait".to_string()
            } else {
                format!("compose v1: {} && up -d && healthy", build.join(" "))
            };
            eprintln!(
                "round {round}: {what}: {total:.1} s (build {:.1} s)",
                built.as_secs_f64()
            );
            rows.push(Row {
                round,
                what,
                wall_s: total,
                overhead_s: None,
                cpu_s: None,
                rss_mb: None,
            });
        };
        if serial && !v2 {
            compose_round(false);
        }
        compose_round(true);
        let bar = rows.last().unwrap().wall_s;

        // dockhand: the batch rebuild playbook with a new version; with the shipped config
        // (builds and recreates auto, category turns, core one at a time) and wide.
        for (label, config, extra) in [
            (
                "dockhand batch-rebuild (shipped limits)",
                "homeiq/services.yaml",
                vec![],
            ),
            (
                "dockhand batch-rebuild (all at once)",
                "homeiq/services-wide.yaml",
                vec![
                    "--batch-size".to_string(),
                    n.to_string(),
                    "--deploy-concurrency".to_string(),
                    n.to_string(),
                ],
            ),
        ] {
            n_version += 1;
            let version = format!("{nonce}.{n_version}");
            let run_id = format!("bench{round}v{n_version}");
            let t = Instant::now();
            let mut child = Command::new(BIN)
                .arg("run")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/batch-rebuild.rhai"))
                .arg("--root")
                .arg(ws)
                .args(["--config", config, "--project", &project])
                .args(["--all", "--build-arg", &format!("VERSION={version}")])
                .args(["--run", &run_id])
                .args(&extra)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("dockhand batch-rebuild");
            // dockhand's own peak RSS and CPU time, read from /proc while it runs: the
            // docker-compose (Python) children it starts for config hashes are not counted,
            // as `/usr/bin/time`'s figure would count the largest of them.
            let (mut rss_kb, mut cpu_s) = (0.0_f64, 0.0_f64);
            let status = loop {
                if let Some((rss, cpu)) = own_usage(child.id()) {
                    rss_kb = rss_kb.max(rss);
                    cpu_s = cpu_s.max(cpu);
                }
                if let Some(st) = child.try_wait().unwrap() {
                    break st;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(status.success(), "dockhand batch-rebuild failed: {status}");
            let wall_s = t.elapsed().as_secs_f64();
            let journal: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(ws.join(format!(".dockhand/state/{run_id}.json")))
                    .unwrap(),
            )
            .unwrap();
            let records = journal["records"].as_object().unwrap();
            let completed = records
                .iter()
                .filter(|(k, r)| !k.starts_with('_') && r["status"] == "completed")
                .count();
            assert_eq!(completed, services.len(), "not every service completed");
            let meta = &records["_run"];
            let overhead = meta["overhead_s"].as_f64().unwrap_or(f64::NAN);
            let waiting = meta["waiting_s"].as_f64().unwrap_or(f64::NAN);
            eprintln!(
                "round {round}: {label}: {wall_s:.1} s ({:.2}x compose; waiting {waiting:.1} s, not waiting {overhead:.2} s, own CPU {cpu_s:.1} s), peak RSS {:.1} MB",
                wall_s / bar,
                rss_kb / 1024.0
            );
            rows.push(Row {
                round,
                what: label.to_string(),
                wall_s,
                overhead_s: Some(overhead),
                cpu_s: Some(cpu_s),
                rss_mb: Some(rss_kb / 1024.0),
            });
        }
    }

    println!(
        "\nfull lab rebuild, {} services, {rounds} round(s) (engine {}):",
        services.len(),
        run(
            Command::new("docker").args(["version", "-f", "{{.Server.Version}}"]),
            "docker version"
        )
        .trim()
    );
    println!(
        "{:<6} {:<48} {:>9} {:>10} {:>12} {:>9} {:>9}",
        "round", "what", "wall", "vs compose", "not waiting", "own CPU", "peak RSS"
    );
    for round in 0..rounds {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.round == round).collect();
        let bar = mine
            .iter()
            .find(|r| r.is_bar())
            .map(|r| r.wall_s)
            .unwrap_or(f64::NAN);
        for r in mine {
            let opt = |v: Option<f64>, unit: &str| {
                v.map(|v| format!("{v:.2} {unit}"))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{round:<6} {:<48} {:>7.1} s {:>9.2}x {:>12} {:>9} {:>9}",
                r.what,
                r.wall_s,
                r.wall_s / bar,
                opt(r.overhead_s, "s"),
                opt(r.cpu_s, "s"),
                opt(r.rss_mb, "MB"),
            );
        }
    }
    if rounds > 1 {
        print_medians(&rows);
    }
    println!(
        "vs compose = wall / (compose v2 build && up -d --wait; v1: build --parallel && up -d && all healthy). goals: shipped <= 1.0x, all at once <= 0.8x; peak RSS <= 40 MB.\n\
         not waiting = wall time with no dockhand thread blocked on the engine, the network or a timer; \
         own CPU = dockhand's user + system time (children excluded).\n\
         dockhand also backs up, gates (probe, 2 s settle, logs) and journals every service."
    );
}

/// With several rounds, each side's median wall time and median ratio to the compose run of
/// its own round. One round is not enough on a busy 2-core host: in 8 rounds taken in turns
/// on one lab, compose alone ranged 37.3–55.5 s and a round's ratio 0.86–1.51.
fn print_medians(rows: &[Row]) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let mut whats: Vec<&str> = Vec::new();
    for r in rows {
        if !whats.contains(&r.what.as_str()) {
            whats.push(&r.what);
        }
    }
    println!("\nmedians over the rounds:");
    for what in whats {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.what == what).collect();
        let ratios: Vec<f64> = mine
            .iter()
            .filter_map(|r| {
                rows.iter()
                    .find(|b| b.round == r.round && b.is_bar())
                    .map(|b| r.wall_s / b.wall_s)
            })
            .collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        println!(
            "{:<55} {:>7.1} s {:>9.2}x  (rounds {:.2}x–{:.2}x)",
            what,
            median(mine.iter().map(|r| r.wall_s).collect()),
            median(ratios),
            lo,
            hi
        );
    }
}

struct Row {
    round: usize,
    what: String,
    wall_s: f64,
    overhead_s: Option<f64>,
    cpu_s: Option<f64>,
    rss_mb: Option<f64>,
}

impl Row {
    /// The round's compose run, the bar the others are divided by (v2's, or v1's parallel
    /// build where v2 is missing).
    fn is_bar(&self) -> bool {
        self.what.starts_with("compose v2") || self.what.contains("--parallel")
    }
}

/// Peak RSS (kB, `VmHWM`) and CPU time (user + system, s) of process `pid` itself.
fn own_usage(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((hwm, ticks / 100.0))
}
