//! The HomeIQ lab: the seeds' fleet as a real compose project on this machine's engine.
//!
//! `dockhand lab up` works from nothing on a machine with a Docker engine and no registry:
//!
//! 1. builds `homeiq-base` (`FROM scratch` + Debian's static busybox) and `homeiq-influxdb`
//!    (the base + the host's `influxd` and the libraries `ldd` names) through the engine API,
//!    assembling each build context in a temporary directory so the source tree stays clean;
//! 2. writes a compose override for `--fault SERVICE=KIND` knobs;
//! 3. runs the compose tool (`docker compose` v2 or `docker-compose` v1) to build and start
//!    the chosen services — compose stays the owner of the project, so every container has
//!    the labels a later `docker compose` or `dockhand` rebuild expects;
//! 4. waits for each service's health on the engine's event stream, reporting progress.
//!
//! `--swarm` runs the services as a Swarm stack instead, with a registry ([`swarm`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::docker::{self as dk, build::BuildSpec};

pub mod swarm;

/// The fault knobs the lab's service image understands.
pub const FAULTS: &[&str] = &[
    "none",
    "unhealthy",
    "crash-loop",
    "slow-start",
    "error-logs",
    "slow-health",
];

/// What `lab up` should do.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The lab directory (`examples/homeiq`).
    pub dir: PathBuf,
    pub project: String,
    /// Bring up only the first N services (infrastructure always comes up).
    pub services: Option<usize>,
    /// Bring up only these services (infrastructure always comes up); empty: all.
    pub only: Vec<String>,
    /// `(service, kind)` fault knobs.
    pub faults: Vec<(String, String)>,
    /// Publish the seeds' ports on 127.0.0.1.
    pub ports: bool,
    /// How long to wait for the fleet to become healthy.
    pub timeout: Duration,
}

/// One service after `lab up`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceState {
    pub service: String,
    pub status: String,
    pub ms: u64,
}

/// The compose command available here: `docker compose` (v2) if installed, else
/// `docker-compose` (which may be v2 standalone or the end-of-life v1).
pub fn compose_command() -> Result<Vec<String>, String> {
    crate::docker::compose_cli::preferred()
        .map(|c| c.program.clone())
        .ok_or_else(|| {
            "no compose tool: neither `docker compose` (v2) nor `docker-compose` is installed \
             (or not the one DOCKHAND_COMPOSE=v1|v2 asks for); run scripts/install-deps, \
             which installs Compose v2"
                .into()
        })
}

/// Service names in `services.yaml` order (infrastructure not included).
pub fn service_names(dir: &Path) -> Result<Vec<String>, String> {
    let path = dir.join("services.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: serde_yaml::Mapping = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        format!("invalid YAML in {}{at}: {e}", path.display())
    })?;
    let services = doc
        .get("services")
        .and_then(|s| s.as_mapping())
        .ok_or_else(|| format!("{}: no `services` map", path.display()))?;
    Ok(services
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect())
}

/// Infrastructure service names (`infrastructure:` in services.yaml).
pub fn infrastructure_names(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("services.yaml"))
        .ok()
        .and_then(|t| serde_yaml::from_str::<serde_yaml::Mapping>(&t).ok())
        .and_then(|d| {
            d.get("infrastructure")
                .and_then(|i| i.as_mapping())
                .cloned()
        })
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn is_static(binary: &Path) -> bool {
    match Command::new("ldd").arg(binary).output() {
        Ok(o) => {
            !o.status.success() || String::from_utf8_lossy(&o.stdout).contains("not a dynamic")
        }
        Err(_) => false,
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    for e in std::fs::read_dir(from)
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?
        .flatten()
    {
        let p = e.path();
        let name = e.file_name();
        if name == "busybox" || name == "rootfs" {
            continue; // copied binaries from a manual build; we bring our own
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name))?;
        } else {
            std::fs::copy(&p, to.join(&name))
                .map_err(|e| format!("cannot copy {}: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// Builds `homeiq-base:latest` and `homeiq-influxdb:latest`.
pub async fn build_base_images(
    docker: &bollard::Docker,
    dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() || !is_static(busybox) {
        return Err(
            "the lab needs the static busybox at /bin/busybox: apt-get install busybox-static"
                .into(),
        );
    }
    let influxd = Path::new("/usr/bin/influxd");
    if !influxd.exists() {
        return Err("the lab's InfluxDB needs /usr/bin/influxd: apt-get install influxdb".into());
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;

    progress("building homeiq-base (FROM scratch + static busybox)");
    let base = tmp.path().join("base");
    copy_dir(&dir.join("base"), &base)?;
    std::fs::copy(busybox, base.join("busybox"))
        .map_err(|e| format!("cannot copy busybox: {e}"))?;
    let spec = BuildSpec {
        context: base,
        tag: "homeiq-base:latest".into(),
        ..Default::default()
    };
    dk::build::build(docker, &spec, None).await?;

    progress("building homeiq-influxdb (base + host influxd)");
    let influx = tmp.path().join("influxdb");
    copy_dir(&dir.join("influxdb"), &influx)?;
    let rootfs = influx.join("rootfs");
    let mut files = vec![influxd.to_path_buf()];
    if let Ok(o) = Command::new("ldd").arg(influxd).output() {
        for tok in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            if tok.starts_with('/') {
                files.push(PathBuf::from(tok));
            }
        }
    }
    for f in files {
        let dest = rootfs.join(f.strip_prefix("/").unwrap_or(&f));
        std::fs::create_dir_all(dest.parent().unwrap_or(&rootfs)).map_err(|e| e.to_string())?;
        std::fs::copy(&f, &dest).map_err(|e| format!("cannot copy {}: {e}", f.display()))?;
    }
    let spec = BuildSpec {
        context: influx,
        tag: "homeiq-influxdb:latest".into(),
        ..Default::default()
    };
    dk::build::build(docker, &spec, None).await?;
    Ok(())
}

/// The compose override for fault knobs: build args (so the image is "bad", as after a bad
/// upgrade) and environment (so the running container is).
pub fn fault_override(faults: &[(String, String)]) -> Result<String, String> {
    let mut out = String::from("version: \"2.4\"\nservices:\n");
    for (svc, kind) in faults {
        if !FAULTS.contains(&kind.as_str()) {
            return Err(format!(
                "unknown fault '{kind}' for {svc} (known: {})",
                FAULTS.join(", ")
            ));
        }
        out.push_str(&format!(
            "  {svc}:\n    environment:\n      FAULT: \"{kind}\"\n"
        ));
    }
    Ok(out)
}

/// Runs the compose tool, passing each output line to `progress`.
pub fn compose(
    dir: &Path,
    project: &str,
    files: &[PathBuf],
    args: &[&str],
    progress: &dyn Fn(&str),
) -> Result<(), String> {
    let cmd = compose_command()?;
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).args(["-p", project]);
    for f in files {
        c.arg("-f").arg(f);
    }
    c.args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cmd.join(" ")))?;
    let stderr = child.stderr.take();
    let lines = std::thread::spawn(move || {
        let mut all = Vec::new();
        if let Some(s) = stderr {
            for l in BufReader::new(s).lines().map_while(Result::ok) {
                all.push(l);
            }
        }
        all
    });
    if let Some(out) = child.stdout.take() {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            progress(&l);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let err_lines = lines.join().unwrap_or_default();
    for l in &err_lines {
        progress(l);
    }
    if status.success() {
        Ok(())
    } else {
        let tail: Vec<&String> = err_lines
            .iter()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!(
            "{} {} failed ({status}):\n{}",
            cmd.join(" "),
            args.join(" "),
            tail.iter()
                .map(|s| format!("  {s}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

/// The files compose is given for this lab.
fn compose_files(opts: &LabOptions, state_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = vec![opts.dir.join("docker-compose.yml")];
    if opts.ports {
        files.push(opts.dir.join("docker-compose.ports.yml"));
    }
    if !opts.faults.is_empty() {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
        let f = state_dir.join(format!("{}.faults.yml", opts.project));
        std::fs::write(&f, fault_override(&opts.faults)?)
            .map_err(|e| format!("cannot write {}: {e}", f.display()))?;
        files.push(f);
    }
    Ok(files)
}

/// The services `opts` bring up (infrastructure not included), in `services.yaml` order:
/// `--only`, then the first `--services N`. A name in `--only` or `--fault` that the lab
/// does not have is an error naming the option.
fn chosen_services(opts: &LabOptions) -> Result<Vec<String>, String> {
    let all = service_names(&opts.dir)?;
    for (svc, _) in &opts.faults {
        if !all.contains(svc) {
            return Err(format!("--fault names an unknown service '{svc}'"));
        }
    }
    for svc in &opts.only {
        if !all.contains(svc) {
            return Err(format!("--only names an unknown service '{svc}'"));
        }
    }
    Ok(all
        .iter()
        .filter(|s| opts.only.is_empty() || opts.only.contains(s))
        .take(opts.services.unwrap_or(all.len()))
        .cloned()
        .collect())
}

/// Brings the lab up and waits for it; returns each service's health.
pub fn up(
    handle: &tokio::runtime::Handle,
    opts: &LabOptions,
    state_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<Vec<ServiceState>, String> {
    let start = Instant::now();
    let mut chosen: Vec<String> = infrastructure_names(&opts.dir);
    chosen.extend(chosen_services(opts)?);
    let docker = handle.block_on(dk::connect())?;
    handle.block_on(build_base_images(&docker, &opts.dir, progress))?;
    let files = compose_files(opts, state_dir)?;
    progress(&format!(
        "starting {} services (project {})",
        chosen.len(),
        opts.project
    ));
    let mut args = vec!["up", "-d", "--build"];
    args.extend(chosen.iter().map(String::as_str));
    compose(&opts.dir, &opts.project, &files, &args, progress)?;
    // Compose v1 lowercases and strips the project name; look containers up by the name it used.
    let label_project = crate::docker::compose_file::project_name(&opts.project);
    let faulted: Vec<String> = opts.faults.iter().map(|(s, _)| s.clone()).collect();
    let waits = chosen.iter().map(|svc| {
        let faulted = &faulted;
        let docker = docker.clone();
        let project = label_project.clone();
        let svc = svc.clone();
        let timeout = opts.timeout.saturating_sub(start.elapsed());
        async move {
            // A good service may miss a check while 45 of them start on a busy machine;
            // wait through that. Only a service with an injected fault may end the wait at
            // its first "unhealthy", since that is what it was asked to show.
            let through_unhealthy = !faulted.contains(&svc);
            let r =
                dk::wait_healthy(&docker, Some(&project), &svc, timeout, through_unhealthy).await;
            let (status, ms) = match r {
                Ok(w) => (w.status, w.ms),
                Err(e) => (format!("error: {e}"), 0),
            };
            ServiceState {
                service: svc,
                status,
                ms,
            }
        }
    });
    let states = handle.block_on(futures_util::future::join_all(waits));
    let healthy = states.iter().filter(|s| s.status == "healthy").count();
    progress(&format!(
        "{healthy}/{} healthy after {:.1}s",
        states.len(),
        start.elapsed().as_secs_f64()
    ));
    Ok(states)
}

/// Stops and removes the lab: containers, networks, volumes and its service images.
pub fn down(opts: &LabOptions, state_dir: &Path, progress: &dyn Fn(&str)) -> Result<(), String> {
    let files = compose_files(opts, state_dir)?;
    compose(
        &opts.dir,
        &opts.project,
        &files,
        &[
            "down",
            "-v",
            "--rmi",
            "local",
            "--remove-orphans",
            "-t",
            "2",
        ],
        progress,
    )?;
    let _ = std::fs::remove_file(state_dir.join(format!("{}.faults.yml", opts.project)));
    // `--rmi local` removes the images compose named, not the rebuild's backup tags
    // (`<project>-<service>:pre-<run>` on v2, `<project>_<service>:pre-<run>` on v1); those
    // go too, so nothing of the lab is left. By name: another lab may share the image ids.
    let project = crate::docker::compose_file::project_name(&opts.project);
    let prefixes = [format!("{project}_"), format!("{project}-")];
    if let Ok(out) = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
    {
        let backups: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|r| prefixes.iter().any(|p| r.starts_with(p)) && r.contains(":pre-"))
            .map(String::from)
            .collect();
        if !backups.is_empty() {
            progress(&format!("removing {} backup tag(s)", backups.len()));
            let _ = Command::new("docker").arg("rmi").args(&backups).output();
        }
    }
    Ok(())
}

/// The containers of the lab, by service.
pub fn status(
    handle: &tokio::runtime::Handle,
    project: &str,
) -> Result<Vec<dk::Container>, String> {
    let docker = handle.block_on(dk::connect())?;
    let f = dk::Filter {
        project: Some(crate::docker::compose_file::project_name(project)),
        all: true,
        ..Default::default()
    };
    handle.block_on(dk::list(&docker, &f))
}

/// Parses `SERVICE=KIND`.
pub fn parse_fault(s: &str) -> Result<(String, String), String> {
    let (svc, kind) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': write a fault as SERVICE=KIND, e.g. data-api=unhealthy"))?;
    if !FAULTS.contains(&kind) {
        return Err(format!(
            "'{kind}' is not a fault (known: {})",
            FAULTS.join(", ")
        ));
    }
    Ok((svc.to_string(), kind.to_string()))
}

impl LabOptions {
    /// The options for the lab in `dir` under compose project `project`, nothing to start
    /// yet (`lab down`, or the base `lab up` adds to). `dir` must hold a docker-compose.yml.
    pub fn open(dir: &Path, project: &str) -> crate::Result<LabOptions> {
        let full = dir.canonicalize().map_err(|source| crate::Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !dir.join("docker-compose.yml").is_file() {
            return Err(crate::Error::Usage(format!(
                "{} has no docker-compose.yml; run from the dockhand checkout or pass --dir",
                dir.display()
            )));
        }
        Ok(LabOptions {
            dir: full,
            project: project.to_string(),
            services: None,
            only: Vec::new(),
            faults: Vec::new(),
            ports: false,
            timeout: Duration::ZERO,
        })
    }

    /// 0 when every service came up healthy, except those with an injected fault (they
    /// are expected not to); else 1.
    pub fn up_exit_code(&self, states: &[ServiceState]) -> i32 {
        let injected: Vec<&String> = self
            .faults
            .iter()
            .filter(|(_, k)| k != "none")
            .map(|(s, _)| s)
            .collect();
        let bad = states
            .iter()
            .filter(|s| s.status != "healthy" && !injected.contains(&&s.service))
            .count();
        if bad == 0 { 0 } else { 1 }
    }
}

/// Where the lab keeps its files (the fault override) under the workspace `root`.
pub fn state_dir(root: &Path) -> PathBuf {
    let dir = root.join(".dockhand/lab");
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The async runtime the lab commands block on (they need no script engine).
pub fn async_runtime() -> crate::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Internal(format!("cannot start the async runtime: {e}")))
}

/// `lab up`'s table: each service, its health and how long it took.
pub fn up_table(states: &[ServiceState]) -> String {
    let rows: Vec<[String; 3]> = states
        .iter()
        .map(|s| [s.service.clone(), s.status.clone(), s.ms.to_string()])
        .collect();
    crate::util::table::render_aligned(&["SERVICE", "STATUS", "READY MS"], &rows, "", &[2])
}

/// `lab status`'s table: each container's service, state, health, category and status.
pub fn status_table(list: &[dk::Container]) -> String {
    let rows: Vec<[&str; 5]> = list
        .iter()
        .map(|c| {
            [
                c.service.as_str(),
                &c.state,
                &c.health,
                &c.category,
                &c.status,
            ]
        })
        .collect();
    let head = ["SERVICE", "STATE", "HEALTH", "CATEGORY", "STATUS"];
    crate::util::table::render(&head, &rows, "")
}
