//! A Swarm fleet's rebuild, dockhand against what a user runs instead, side by side in one
//! run on one `lab up --swarm` stack (stop-first, Swarm's default, on both sides):
//!
//! * **bash**: the new images are built (`docker compose build` with a new `VERSION`), tagged
//!   `<registry>/<service>:bash<n>` and pushed *before* the timed part (its time is printed
//!   apart); then the timed part is the loop a user writes:
//!   `for s in …; do docker service update --image <ref> --detach=false <stack>_$s; done`;
//! * **dockhand**: `batch-rebuild.rhai --service …` with another `VERSION`, timed whole: it
//!   builds, tags, pushes, updates, waits for Swarm, gates (HTTP probe, settle, log scan).
//!
//! So dockhand's wall time *includes* the build and push that the bash side does untimed;
//! compare it with "bash: build + push + loop". Downtime per service is what a client sees:
//! a probe container on the stack's overlay network requests each service by name every
//! 50 ms during each side's window (failed requests, longest stretch without an answer).
//!
//! Needs Docker with Swarm inactive or this engine a manager, `busybox-static`, `influxdb`,
//! `docker-registry` (or a registry on 127.0.0.1:5000) and Compose v2. Run: `cargo bench
//! --bench swarm` (about 4 minutes; `DOCKHAND_BENCH_SERVICES=a,b,c` picks other services).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::probe::{Probe, print_table, uptime};
use common::run_ok as run;
use common::{BIN, dockhand};

/// `lab down --swarm` on drop (before the fixture's own compose `lab down`).
struct SwarmDown<'a>(&'a common::Lab);
impl Drop for SwarmDown<'_> {
    fn drop(&mut self) {
        let _ = dockhand()
            .args(["lab", "--root"])
            .arg(self.0.ws.path())
            .arg("--dir")
            .arg(self.0.dir())
            .args(["--project", &self.0.project, "down", "--swarm"])
            .output();
    }
}

/// Why this bench cannot run here, if it cannot.
fn missing() -> Option<String> {
    let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok(Command::new("docker").args(["compose", "version"])) {
        return Some("no Docker engine or no Compose v2".into());
    }
    if !Path::new("/usr/bin/docker-registry").exists() {
        return Some("no /usr/bin/docker-registry (apt-get install docker-registry)".into());
    }
    let out = Command::new("docker")
        .args([
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ])
        .output()
        .ok()?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (state != "inactive false" && state != "active true")
        .then(|| format!("this engine's Swarm state is '{state}'"))
}

fn main() {
    if let Some(why) = missing() {
        eprintln!("skipping the swarm bench: {why}");
        return;
    }
    let services: Vec<String> = std::env::var("DOCKHAND_BENCH_SERVICES")
        .unwrap_or_else(|_| "weather-api,sports-api,carbon-intensity,air-quality".into())
        .split(',')
        .map(String::from)
        .collect();
    let fixture = common::Lab::new("dhswb").with_playbooks();
    let (lab, ws, project) = (fixture.dir(), fixture.ws.path(), fixture.project.clone());
    let _down = SwarmDown(&fixture);
    eprintln!("lab up --swarm: {services:?} …");
    let t = Instant::now();
    run(
        dockhand()
            .args(["lab", "--root"])
            .arg(ws)
            .arg("--dir")
            .arg(&lab)
            .args(["--project", &project, "up", "--swarm", "--wait", "5m"])
            .args(["--only", &services.join(",")]),
        "lab up --swarm",
    );
    eprintln!("lab up --swarm: {:.1} s", t.elapsed().as_secs_f64());
    let probe = Probe::on_lab(&project, &lab, &services);

    let nonce = std::process::id();
    let registry = format!("127.0.0.1:5000/{project}");
    let mut windows: Vec<(String, f64, f64)> = Vec::new();

    // bash: build and push first (untimed), then the update loop.
    let t = Instant::now();
    let bump = lab.join("bump.yml");
    let mut text = String::from("services:\n");
    for s in &services {
        text.push_str(&format!(
            "  {s}:\n    build:\n      args:\n        VERSION: \"b{nonce}\"\n"
        ));
    }
    std::fs::write(&bump, text).unwrap();
    run(
        Command::new("docker")
            .current_dir(&lab)
            .args([
                "compose",
                "-p",
                &project,
                "-f",
                "docker-compose.yml",
                "-f",
                "bump.yml",
            ])
            .arg("build")
            .args(&services),
        "docker compose build",
    );
    let mut refs = Vec::new();
    for s in &services {
        let r = format!("{registry}/{s}:bash{nonce}");
        run(
            Command::new("docker").args(["tag", &format!("{project}-{s}"), &r]),
            "docker tag",
        );
        run(
            Command::new("docker").args(["push", "-q", &r]),
            "docker push",
        );
        refs.push((s.clone(), r));
    }
    let prep = t.elapsed().as_secs_f64();
    let script: String = refs
        .iter()
        .map(|(s, r)| {
            format!("docker service update --quiet --image {r} --detach=false {project}_{s}\n")
        })
        .collect();
    let t0 = uptime();
    run(Command::new("bash").args(["-ec", &script]), "bash loop");
    windows.push(("bash: docker service update loop".into(), t0, uptime()));

    // dockhand: everything, timed.
    let t0 = uptime();
    let mut c = Command::new(BIN);
    c.arg("-q")
        .arg("run")
        .arg(ws.join("playbooks/batch-rebuild.rhai"))
        .arg("--root")
        .arg(ws)
        .args(["--config", "homeiq/services.yaml", "--project", &project])
        .args(["--build-arg", &format!("VERSION=d{nonce}")])
        .args(["--run", &format!("d{nonce}")]);
    for s in &services {
        c.args(["--service", s]);
    }
    run(&mut c, "dockhand batch-rebuild");
    windows.push((
        "dockhand batch-rebuild (build + push + update + gate)".into(),
        t0,
        uptime(),
    ));
    std::thread::sleep(std::time::Duration::from_millis(500));

    // Both ended on their own image.
    for s in &services {
        let out = run(
            Command::new("docker").args([
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                &format!("{project}_{s}"),
            ]),
            "docker service inspect",
        );
        assert!(
            out.contains(&format!(":d{nonce}@sha256:")),
            "{s} runs {out}"
        );
    }

    print_table(
        &format!(
            "Swarm, {} services, stop-first: downtime seen by a client probing every 50 ms \
             (failed/requests during each side's window):",
            services.len()
        ),
        &probe.lines(),
        &services,
        &windows,
    );
    println!("bash: build + tag + push before the loop (untimed): {prep:.1} s");
    for (w, from, to) in &windows {
        println!("{w}: {:.1} s", to - from);
    }
    let bash = windows[0].2 - windows[0].1;
    println!("bash: build + push + loop: {:.1} s", prep + bash);
}
