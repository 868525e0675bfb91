//! A client of the fleet during a deploy: a container on the fleet's network that requests
//! each service by name every 50 ms (busybox `wget` under `timeout 1`; Debian's static
//! busybox 1.35 crashes on `wget -T`), and the scoring of what it saw. Its timestamps are the
//! kernel's uptime, which the host and the container share, so each request falls in the
//! deploy window it was made in. The compose downtime bench and the Swarm bench share it.

use std::process::Command;

/// Seconds since boot, as the probe stamps its lines.
pub fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The probe container; removed on drop.
pub struct Probe(pub String);

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

impl Probe {
    /// Starts container `name` from `image` on `network`, probing `targets`
    /// (`host:port`, each `http://host:port/health`).
    pub fn start(
        name: &str,
        image: &str,
        network: &str,
        targets: &[String],
    ) -> Result<Probe, String> {
        let script = format!(
            "for s in {}; do ( while :; do t=$(cut -d' ' -f1 /proc/uptime); \
             if timeout 1 wget -q -O /dev/null http://$s/health 2>/dev/null; then echo \"$t ${{s%%:*}} ok\"; \
             else echo \"$t ${{s%%:*}} fail\"; fi; usleep 50000; done ) & done; wait",
            targets.join(" ")
        );
        let out = Command::new("docker")
            .args(["run", "-d", "--name", name, "--network", network])
            // The lab image's entrypoint is the service; the probe is a plain shell loop.
            .args(["--entrypoint", "sh", image, "-c", &script])
            .output()
            .map_err(|e| e.to_string())?;
        let probe = Probe(name.to_string());
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(probe)
    }

    /// The probe of a lab project: container `<project>-probe` on `<project>_default`,
    /// requesting each of `services` at its port from the lab's `services.yaml`; returns
    /// once it has been probing for 2 s.
    pub fn on_lab(project: &str, lab: &std::path::Path, services: &[String]) -> Probe {
        let cfg = dockhand::config::FleetConfig::load(&lab.join("services.yaml"))
            .unwrap_or_else(|e| panic!("{}: {e}", lab.display()));
        let targets: Vec<String> = services
            .iter()
            .map(|s| format!("{s}:{}", cfg.services[s].port))
            .collect();
        let probe = Probe::start(
            &format!("{project}-probe"),
            "homeiq-base:latest",
            &format!("{project}_default"),
            &targets,
        )
        .unwrap_or_else(|e| panic!("start the probe: {e}"));
        std::thread::sleep(std::time::Duration::from_secs(2));
        probe
    }

    /// Every request so far: (uptime, service, answered).
    pub fn lines(&self) -> Vec<(f64, String, bool)> {
        let logs = Command::new("docker")
            .args(["logs", &self.0])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        logs.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((
                    w.next()?.parse().ok()?,
                    w.next()?.to_string(),
                    w.next()? == "ok",
                ))
            })
            .collect()
    }
}

/// (failed requests, longest gap in seconds, requests) of one service within [from, to].
pub fn score(lines: &[(f64, String, bool)], svc: &str, from: f64, to: f64) -> (usize, f64, usize) {
    let mut failed = 0;
    let mut total = 0;
    let mut longest = 0.0_f64;
    let mut gap_start: Option<f64> = None;
    for (t, _, ok) in lines
        .iter()
        .filter(|(t, s, _)| s == svc && *t >= from && *t <= to)
    {
        total += 1;
        if *ok {
            if let Some(g) = gap_start.take() {
                longest = longest.max(t - g);
            }
        } else {
            failed += 1;
            gap_start.get_or_insert(*t);
        }
    }
    if let Some(g) = gap_start {
        longest = longest.max(to - g);
    }
    (failed, longest, total)
}

/// Prints, per service, what the probe saw in each window (`(label, from, to)`), as a
/// markdown table under `title`; each window must hold requests to every service.
pub fn print_table<W: AsRef<str>>(
    title: &str,
    lines: &[(f64, String, bool)],
    services: &[String],
    windows: &[(W, f64, f64)],
) {
    assert!(!lines.is_empty(), "the probe printed nothing");
    println!("\n{title}");
    let head: Vec<&str> = windows.iter().map(|(w, _, _)| w.as_ref()).collect();
    println!("| service | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(head.len()));
    for s in services {
        let cells: Vec<String> = windows
            .iter()
            .map(|(_, from, to)| {
                let (failed, gap, total) = score(lines, s, *from, *to);
                assert!(total > 0, "no request to {s} fell in a deploy window");
                format!("{failed}/{total} failed, longest gap {gap:.2} s")
            })
            .collect();
        println!("| {s} | {} |", cells.join(" | "));
    }
}
