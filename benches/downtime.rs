//! Downtime during a rebuild, as a client of the fleet sees it: a probe container on the
//! lab's network requests each service by its compose alias every 50 ms while the services
//! are replaced, three ways, side by side in one run:
//!
//! * **compose**: `docker compose build` (not counted: nothing is replaced yet), then
//!   `docker compose up -d --wait` — stop-first, like every compose deploy;
//! * **dockhand stop-first**: `batch-rebuild.rhai` with the shipped order;
//! * **dockhand start-first**: the same with `order: start-first` for the category.
//!
//! Reported per service: failed requests and the longest stretch without an answer. Goal:
//! start-first fails no request at all. The probe is busybox `wget` under `timeout 1` in a
//! loop (Debian's static busybox 1.35 crashes on `wget -T`); its
//! timestamps are the kernel's uptime, which the host and the container share, so each
//! request is attributed to the phase it fell in.
//!
//! Needs Docker, `busybox-static`, `influxdb`, Compose v2. Run: `cargo bench --bench
//! downtime` (about 5 minutes; `DOCKHAND_BENCH_SERVICES=a,b,c` picks other services of the
//! integration category).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::BIN;
use common::probe::{Probe, print_table, uptime};
use common::run_ok as run;

fn main() {
    if Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipping the downtime bench: no Docker engine or no Compose v2");
        return;
    }
    let services: Vec<String> = std::env::var("DOCKHAND_BENCH_SERVICES")
        .unwrap_or_else(|_| "weather-api,sports-api,carbon-intensity,air-quality".into())
        .split(',')
        .map(String::from)
        .collect();
    let fixture = common::Lab::new("dhdown");
    let (lab, ws, project) = (fixture.dir(), fixture.ws.path(), fixture.project.clone());
    eprintln!("lab up: {services:?} …");
    let only: Vec<&str> = services.iter().map(String::as_str).collect();
    fixture.up(&only, &[]);
    // The start-first config: the integration category deploys start-first.
    let text = std::fs::read_to_string(lab.join("services.yaml")).unwrap();
    let sf = text.replacen(
        "  integration:\n",
        "  integration:\n    order: start-first\n",
        1,
    );
    assert_ne!(sf, text, "no integration category in services.yaml");
    std::fs::write(lab.join("services-start-first.yaml"), sf).unwrap();

    let probe = Probe::on_lab(&project, &lab, &services);

    let nonce = std::process::id();
    let mut windows: Vec<(&str, f64, f64)> = Vec::new();
    // compose: build (not counted), then up -d --wait.
    let bump = lab.join("bump.yml");
    let mut text = String::from("services:\n");
    for s in &services {
        text.push_str(&format!(
            "  {s}:\n    build:\n      args:\n        VERSION: \"c{nonce}\"\n"
        ));
    }
    std::fs::write(&bump, text).unwrap();
    let compose = |args: &[&str]| {
        let mut c = Command::new("docker");
        c.current_dir(&lab)
            .args([
                "compose",
                "-p",
                &project,
                "-f",
                "docker-compose.yml",
                "-f",
                "bump.yml",
            ])
            .args(args)
            .args(&services);
        c
    };
    run(&mut compose(&["build"]), "docker compose build");
    let t0 = uptime();
    run(
        &mut compose(&["up", "-d", "--wait"]),
        "docker compose up -d --wait",
    );
    windows.push(("docker compose up -d --wait", t0, uptime()));

    for (label, config, version) in [
        ("dockhand stop-first", "homeiq/services.yaml", "s"),
        (
            "dockhand start-first",
            "homeiq/services-start-first.yaml",
            "f",
        ),
    ] {
        let t0 = uptime();
        let mut c = Command::new(BIN);
        c.arg("-q")
            .arg("run")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/batch-rebuild.rhai"))
            .arg("--root")
            .arg(ws)
            .args(["--config", config, "--project", &project])
            .args(["--build-arg", &format!("VERSION={version}{nonce}")])
            .args(["--run", version]);
        for s in &services {
            c.args(["--service", s]);
        }
        run(&mut c, label);
        windows.push((label, t0, uptime()));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));

    print_table(
        "downtime seen by a client probing every 50 ms (failed/requests during each deploy):",
        &probe.lines(),
        &services,
        &windows,
    );
    for (w, from, to) in &windows {
        println!("{w}: {:.1} s", to - from);
    }
}
