//! Docker benchmarks, side by side with what a user would run instead.
//!
//! 1. `docker::ps()` over a fleet the size of the HomeIQ lab (45 containers) — in-process, as
//!    a playbook or the REPL calls it — against one `docker ps` CLI invocation
//!    (goal: ≥ 20× faster per call).
//! 2. Health-detection latency: the time from the engine's `health_status: healthy` event
//!    to `docker::wait_healthy` returning, over ≥ 30 recreates (goal p50 ≤ 10 ms,
//!    p99 ≤ 50 ms); measured in the same runs, the latency of the bash approach — a loop that
//!    polls `docker inspect` every second — relative to the same event.
//!
//! Needs a Docker engine and the static busybox (`apt-get install busybox-static`).
//! Run: `cargo bench --bench docker` (env `DOCKHAND_BENCH_RECREATES`, default 30).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const IMAGE: &str = "dockhand-bench-busybox:latest";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    if !out.status.success() {
        panic!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (percentile(&v, 0.5), percentile(&v, 0.99), mean)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn build_image() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox"))
        .expect("static busybox at /bin/busybox (apt-get install busybox-static)");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN mkdir -p /www && echo ok > /www/health\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    sh(&[
        "docker",
        "build",
        "-q",
        "-t",
        IMAGE,
        ctx.path().to_str().unwrap(),
    ]);
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = sh(&[
            "docker",
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.0),
        ]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
    }
}

fn main() {
    if Command::new("docker")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        println!("no Docker engine reachable: docker benchmarks skipped");
        return;
    }
    build_image();
    let project = format!("dhbench{}", std::process::id());
    let _cleanup = Cleanup(project.clone());
    let fleet = 45;
    for i in 0..fleet {
        sh(&[
            "docker",
            "run",
            "-d",
            "--name",
            &format!("{project}-svc{i}"),
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            &format!("com.docker.compose.service=svc{i}"),
            "--health-cmd",
            "wget -q -O /dev/null http://127.0.0.1:8080/health",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            // An init as PID 1 forwards SIGTERM, so a stop does not wait out the grace period.
            "--init",
            IMAGE,
        ]);
    }
    let workspace = tempfile::tempdir().unwrap();
    let rt = dockhand::Runtime::builder()
        .root(workspace.path())
        .build()
        .expect("runtime");

    // --- 1. ps ---
    let ps_script = rt
        .compile_str(
            "ps",
            &format!("docker::ps(#{{ project: \"{project}\" }}).len()"),
        )
        .unwrap();
    let n = rt
        .run(&ps_script, Default::default())
        .unwrap()
        .value
        .as_int()
        .unwrap();
    assert_eq!(n, fleet, "docker::ps saw {n} containers, expected {fleet}");
    let mut ours = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        rt.run(&ps_script, Default::default()).unwrap();
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut cli = Vec::new();
    let filter = format!("label=com.docker.compose.project={project}");
    for _ in 0..30 {
        let t = Instant::now();
        let out = Command::new("docker")
            .args([
                "ps",
                "--filter",
                &filter,
                "--format",
                "{{.Names}}\t{{.Status}}",
            ])
            .output()
            .unwrap();
        cli.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count() as i64,
            fleet
        );
    }
    let (ours_p50, _, ours_mean) = stats(ours);
    let (cli_p50, _, cli_mean) = stats(cli);

    // --- 2. health detection latency over recreates ---
    let runs: usize = std::env::var("DOCKHAND_BENCH_RECREATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let target = "svc0";
    let wait = rt
        .compile_str(
            "wait",
            &format!("docker::use_project(\"{project}\");\ndocker::recreate(\"{target}\");\nlet w = docker::wait_healthy(\"{target}\", #{{ timeout: \"30s\" }});\n[w.status, w.event_time_ns, time::now()]"),
        )
        .unwrap();
    let mut ours_lat = Vec::new();
    let mut poll_lat = Vec::new();
    let cname = format!("{project}-svc0");
    for _ in 0..runs {
        // The bash approach runs alongside: poll `docker inspect` every second until the
        // *new* container (a different id under the same name) is healthy.
        let old_id = sh(&["docker", "inspect", "-f", "{{.Id}}", &cname]);
        let poller = {
            let cname = cname.clone();
            std::thread::spawn(move || {
                loop {
                    let out = Command::new("docker")
                        .args(["inspect", "-f", "{{.Id}} {{.State.Health.Status}}", &cname])
                        .output();
                    let text = out
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default();
                    if !text.starts_with(&old_id) && text.ends_with(" healthy") {
                        return now_ns();
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        let v = rt
            .run(&wait, Default::default())
            .unwrap()
            .value
            .into_array()
            .unwrap();
        let returned = now_ns();
        let status = v[0].to_string();
        assert_eq!(
            status, "healthy",
            "recreated container did not become healthy"
        );
        let event = v[1].as_int().unwrap_or(0);
        if event == 0 {
            continue; // already healthy when inspected: no event to measure against
        }
        ours_lat.push((returned - event) as f64 / 1e6);
        if let Ok(seen) = poller.join() {
            poll_lat.push(((seen - event).max(0)) as f64 / 1e6);
        }
    }
    let measured = ours_lat.len();
    let (lat_p50, lat_p99, _) = stats(ours_lat);
    let (poll_p50, poll_p99, _) = stats(poll_lat);

    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!();
    println!(
        "dockhand docker benchmarks (release build, engine {}, {fleet} containers)",
        sh(&["docker", "version", "--format", "{{.Server.Version}}"])
    );
    println!(
        "{:<52} {:>10} {:>10} {:>12}  verdict",
        "what", "p50", "mean/p99", "goal"
    );
    println!(
        "{:<52} {:>8.2}ms {:>8.2}ms {:>12}",
        "docker::ps() in-process (45 containers)", ours_p50, ours_mean, ""
    );
    println!(
        "{:<52} {:>8.2}ms {:>8.2}ms {:>12}",
        "  docker ps CLI (same filter)", cli_p50, cli_mean, ""
    );
    let speedup = cli_p50 / ours_p50;
    println!(
        "{:<52} {:>9.1}x {:>10} {:>12}  {}",
        "  speed-up per call (p50)",
        speedup,
        "",
        "≥ 20x",
        verdict(speedup >= 20.0)
    );
    println!(
        "{:<52} {:>8.2}ms {:>8.2}ms {:>12}  {}",
        format!("event → wait_healthy return ({measured} recreates, p50/p99)"),
        lat_p50,
        lat_p99,
        "10ms / 50ms",
        verdict(lat_p50 <= 10.0 && lat_p99 <= 50.0)
    );
    println!(
        "{:<52} {:>8.2}ms {:>8.2}ms {:>12}",
        "  bash: poll docker inspect every 1 s (p50/p99)", poll_p50, poll_p99, ""
    );
    // Compose's own wait (`up -d --wait`) is timed end to end, with its builds and
    // recreates, in `cargo bench --bench rebuild`; here only the health wait is measured.
    let compose = Command::new("docker")
        .args(["compose", "version", "--short"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("Compose {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "no Compose v2 here".into());
    println!(
        "  note: `docker compose up -d --wait` ({compose}) is compared end to end in `cargo bench --bench rebuild`"
    );
    println!("reproduce: cargo bench --bench docker");
}
