//! Compose v2 against Compose v1, in one run: the whole lab brought up from nothing
//! (`dockhand lab up`, 45 services, every image built) and the Phase 1 rebuild of the fleet
//! (`playbooks/batch-rebuild.rhai --all`, a fresh `VERSION` so nothing is a cache hit), once
//! on each compose tool installed here.
//!
//! On v2 dockhand builds with BuildKit through Compose v2 (the shipped path). The v1 side is
//! a host that has only v1: the lab is driven by `docker-compose` 1.x
//! (`DOCKHAND_COMPOSE=v1`), and with no Compose v2 to build through, dockhand uses the classic
//! builder (`DOCKHAND_BUILDER=classic`), as v1's own `build` does.
//!
//! `lab up` always builds the two base images itself; each side builds its 45 service images
//! with its own builder, so neither finds the other's layer cache (BuildKit's cache and the
//! classic builder's are separate), and each rebuild gets a `VERSION` never built before.
//!
//! Needs Docker, `busybox-static`, `influxdb`, and both compose tools
//! (`DOCKHAND_COMPOSE_V1=1 scripts/install-deps`). Run: `cargo bench --bench compose`
//! (about 10 minutes on 2 cores).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::BIN;

fn timed(cmd: &mut Command, what: &str) -> f64 {
    let t = Instant::now();
    common::run_ok(cmd, what);
    t.elapsed().as_secs_f64()
}

/// Lab up from nothing, then the full rebuild, on one compose tool: (lab up s, rebuild s).
fn side(flavor: &'static str, builder: &str) -> (f64, f64) {
    // SAFETY: the bench's main thread is its only thread; every dockhand the side starts
    // (and the lab's `down` on drop) inherits the compose tool to use.
    unsafe { std::env::set_var("DOCKHAND_COMPOSE", flavor) };
    let fixture = common::Lab::new(&format!("dhcmp{flavor}"));
    let (lab, ws, project) = (fixture.dir(), fixture.ws.path(), fixture.project.clone());
    eprintln!("{flavor}: lab up ({project}) …");
    let up = timed(
        Command::new(BIN)
            .args(["-q", "lab", "--dir"])
            .arg(&lab)
            .args(["--project", &project, "up", "--wait", "15m"]),
        "lab up",
    );
    eprintln!("{flavor}: lab up {up:.1} s; rebuild --all …");
    let version = format!("VERSION=cmp{}{flavor}", std::process::id());
    let rebuild = timed(
        Command::new(BIN)
            .env("DOCKHAND_BUILDER", builder)
            .args(["-q", "run"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/batch-rebuild.rhai"))
            .arg("--root")
            .arg(ws)
            .args(["--config", "homeiq/services.yaml", "--project", &project])
            .args(["--all", "--build-arg", &version, "--run", "cmp"]),
        "batch-rebuild --all",
    );
    eprintln!("{flavor}: rebuild {rebuild:.1} s");
    (up, rebuild)
}

fn main() {
    if Command::new("docker")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipping the compose bench: no Docker engine");
        return;
    }
    let mut rows = Vec::new();
    if let Some(v) = common::compose_version(&["docker", "compose"], '2') {
        rows.push((format!("Compose v2 {v}, BuildKit"), side("v2", "buildkit")));
    } else {
        eprintln!("Compose v2 is not installed: scripts/install-deps installs it");
    }
    if let Some(v) = common::compose_version(&["docker-compose"], '1') {
        rows.push((
            format!("Compose v1 {v}, classic builder"),
            side("v1", "classic"),
        ));
    } else {
        eprintln!("Compose v1 is not installed: DOCKHAND_COMPOSE_V1=1 scripts/install-deps");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\ncompose bench (load average at the end: {})", load.trim());
    println!(
        "| compose | lab up (45 services, from nothing) | batch-rebuild --all (44 services) |"
    );
    println!("|---|---|---|");
    for (name, (up, rebuild)) in rows {
        println!("| {name} | {up:.1} s | {rebuild:.1} s |");
    }
}
