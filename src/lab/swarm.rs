//! `dockhand lab up --swarm` / `lab down --swarm`: the lab's services as one Swarm stack.
//!
//! What Swarm needs that compose does not: a registry (every node pulls a service's image,
//! even the node that built it) and a Swarm. So `up`:
//!
//! 1. starts a real registry — Debian's `docker-registry` (distribution 2.8) — on
//!    127.0.0.1:5000 with its config and data in the lab's state directory (an engine
//!    pushes to a registry on 127.0.0.0/8 without TLS); one that already answers there is
//!    used as it is and left alone by `down`;
//! 2. makes this engine a single-node Swarm (`swarm init --advertise-addr 127.0.0.1`) if it
//!    is none, and records that it did, so `down` leaves only a Swarm it created;
//! 3. builds the services with compose, tags each `<registry>/<project>/<service>:lab` and
//!    pushes it;
//! 4. writes a stack file (`image:` references; a stack ignores `build:`, `depends_on:`
//!    and `restart:`) and deploys it with `docker stack deploy` on an overlay network;
//! 5. waits until every service has a running task on its image (a task with a healthcheck
//!    only runs once healthy).
//!
//! The whole fleet comes up with its infrastructure (InfluxDB with its volume, the writer
//! posting to it by service name on the overlay network, the Jaeger stand-in); `--only`
//! brings up just the services it names.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::SwarmInitRequest;
use bollard::query_parameters::LeaveSwarmOptions;

use super::{LabOptions, ServiceState, build_base_images, compose};
use crate::docker::{self as dk, compose_file};

/// The registry the lab starts (and its images' prefix, with the project).
pub const REGISTRY: &str = "127.0.0.1:5000";
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// The Swarm lab's files: `.dockhand/lab/<project>.swarm/`.
fn swarm_dir(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join(format!("{project}.swarm"))
}

/// The registry prefix of the lab's images.
pub fn registry_of(project: &str) -> String {
    format!("{REGISTRY}/{}", compose_file::project_name(project))
}

/// Whether a registry answers `GET /v2/` at `addr`.
fn registry_answers(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Starts `docker-registry` for the lab, or finds one running. Returns whether it started one.
fn start_registry(dir: &Path, progress: &dyn Fn(&str)) -> Result<bool, String> {
    if registry_answers(REGISTRY) {
        progress(&format!(
            "a registry already answers at {REGISTRY}; using it"
        ));
        return Ok(false);
    }
    if !Path::new(REGISTRY_BIN).exists() {
        return Err(format!(
            "the Swarm lab needs a registry: {REGISTRY_BIN} is missing; apt-get install \
             docker-registry (or run scripts/install-deps)"
        ));
    }
    let data = dir.join("registry-data");
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let config = dir.join("registry.yml");
    let text = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
         delete:\n    enabled: true\nhttp:\n  addr: {REGISTRY}\n",
        data.display()
    );
    std::fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log = std::fs::File::create(dir.join("registry.log")).map_err(|e| e.to_string())?;
    use std::os::unix::process::CommandExt;
    let child = Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        // Its own process group: the registry outlives `lab up` (until `lab down`), and a
        // Ctrl-C meant for dockhand must not stop it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {REGISTRY_BIN}: {e}"))?;
    std::fs::write(dir.join("registry.pid"), child.id().to_string()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    while !registry_answers(REGISTRY) {
        if t0.elapsed() > Duration::from_secs(15) {
            let said = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
            return Err(format!(
                "docker-registry did not answer at {REGISTRY} within 15 s; its log:\n{said}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    progress(&format!(
        "registry started at {REGISTRY} (data in {})",
        data.display()
    ));
    Ok(true)
}

/// Makes this engine a Swarm if it is none; returns whether it did.
async fn ensure_swarm(docker: &Docker) -> Result<bool, String> {
    let (state, manager) = dk::swarm::node_state(docker).await?;
    match state.as_str() {
        "active" if manager => Ok(false),
        "active" => {
            Err("this engine is a Swarm worker; run the lab against a manager (DOCKER_HOST)".into())
        }
        "inactive" | "" => {
            docker
                .init_swarm(SwarmInitRequest {
                    listen_addr: Some("127.0.0.1:2377".into()),
                    advertise_addr: Some("127.0.0.1".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("cannot init a Swarm (docker swarm init): {e}"))?;
            Ok(true)
        }
        other => Err(format!(
            "this engine's Swarm is '{other}'; fix it (docker swarm leave --force) and retry"
        )),
    }
}

/// Builds the chosen services with compose, tags and pushes each; returns the references.
fn build_and_push(
    handle: &tokio::runtime::Handle,
    docker: &Docker,
    opts: &LabOptions,
    chosen: &[String],
    progress: &dyn Fn(&str),
) -> Result<Vec<(String, String)>, String> {
    let file = opts.dir.join("docker-compose.yml");
    let mut args = vec!["build"];
    args.extend(chosen.iter().map(String::as_str));
    compose(
        &opts.dir,
        &opts.project,
        std::slice::from_ref(&file),
        &args,
        progress,
    )?;
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let cf = compose_file::parse(&file.display().to_string(), &text, &|k| {
        std::env::var(k).ok()
    })?;
    let flavor = match dk::compose_cli::preferred() {
        Some(c) if !c.is_v2() => compose_file::Flavor::V1,
        _ => compose_file::Flavor::V2,
    };
    let registry = registry_of(&opts.project);
    let mut refs = Vec::new();
    for svc in chosen {
        let built = cf
            .image_name(svc, &opts.project, flavor)
            .ok_or_else(|| format!("{svc} is not in {}", file.display()))?;
        let r = dk::swarm::image_ref(&registry, svc, "lab")?;
        handle.block_on(dk::build::tag(docker, &built, &r))?;
        handle.block_on(dk::swarm::push(docker, &r))?;
        refs.push((svc.clone(), r));
    }
    progress(&format!("pushed {} image(s) to {registry}", refs.len()));
    Ok(refs)
}

/// The lab's services resolve each other's names to their tasks' addresses
/// (`endpoint_mode: dnsrr`), not to a virtual IP: a VIP needs IPVS in the engine's kernel,
/// which an engine inside a container may lack (on the machine this was written on, every
/// connection to a VIP failed with "no route to host" while the tasks' own addresses
/// answered). A published port is then published on the task's node (`mode: host`).
///
/// What the stack file carries over from a compose service: the keys a stack honours and
/// the lab uses (`environment`, `labels`, `volumes`); `build:`, `depends_on:` and
/// `restart:` mean nothing to a stack (Swarm's restart policy and start order apply).
const CARRIED: &[&str] = &["environment", "labels", "volumes"];

/// The stack file: each service on its pushed image with its compose `environment`,
/// `labels` and `volumes` (the named volumes declared again), its fault knob, and one
/// overlay network; `--ports` publishes the seeds' ports through the routing mesh.
fn stack_file(
    opts: &LabOptions,
    compose: &serde_yaml::Mapping,
    refs: &[(String, String)],
    ports: &HashMap<String, u16>,
) -> Result<String, String> {
    use serde_yaml::{Mapping, Value};
    let defs = compose
        .get("services")
        .and_then(Value::as_mapping)
        .ok_or("the lab's compose file has no services")?;
    let mut services = Mapping::new();
    let mut volumes = Mapping::new();
    for (svc, image) in refs {
        let def = defs.get(svc.as_str()).and_then(Value::as_mapping);
        let mut out = Mapping::new();
        out.insert("image".into(), image.as_str().into());
        for key in CARRIED {
            if let Some(v) = def.and_then(|d| d.get(*key)) {
                out.insert((*key).into(), v.clone());
            }
        }
        if let Some((_, kind)) = opts.faults.iter().find(|(s, _)| s == svc) {
            let env = out
                .entry("environment".into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            let Value::Mapping(env) = env else {
                return Err(format!("{svc}: write its environment as a map"));
            };
            env.insert("FAULT".into(), kind.as_str().into());
        }
        for v in out
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            // A named volume ("influxdb-data:/var/lib/influxdb") must be declared.
            if let Some((name, _)) = v.as_str().and_then(|v| v.split_once(':'))
                && !name.starts_with(['/', '.'])
            {
                volumes.insert(name.into(), Value::Mapping(Mapping::new()));
            }
        }
        if let (true, Some(p)) = (opts.ports, ports.get(svc)) {
            // Published on the node that runs the task: dnsrr has no routing mesh.
            let port: Mapping =
                serde_yaml::from_str(&format!("target: {p}\npublished: {p}\nmode: host\n"))
                    .map_err(|e| e.to_string())?;
            out.insert("ports".into(), vec![Value::Mapping(port)].into());
        }
        out.insert(
            "networks".into(),
            vec![Value::from("default"), Value::from("bridge")].into(),
        );
        let deploy: Mapping = serde_yaml::from_str(
            "replicas: 1\nendpoint_mode: dnsrr\nupdate_config:\n  failure_action: rollback\n",
        )
        .map_err(|e| e.to_string())?;
        out.insert("deploy".into(), Value::Mapping(deploy));
        services.insert(svc.as_str().into(), Value::Mapping(out));
    }
    let mut doc = Mapping::new();
    doc.insert("version".into(), "3.8".into());
    doc.insert("services".into(), Value::Mapping(services));
    let net: Mapping = serde_yaml::from_str(&format!(
        "default:\n  driver: overlay\n  attachable: true\nbridge:\n  external: true\n  name: {}\n",
        bridge_network(&opts.project)
    ))
    .map_err(|e| e.to_string())?;
    doc.insert("networks".into(), Value::Mapping(net));
    if !volumes.is_empty() {
        doc.insert("volumes".into(), Value::Mapping(volumes));
    }
    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
}

/// The lab's second network: a bridge the host is on, scoped to the Swarm so services can
/// join it (`docker network create -d bridge --scope swarm`; a stack file cannot make one).
/// A task's overlay address is not routed from the host; its address on this bridge is, so
/// the stories, `validate-services` and the monitor reach each task by the address
/// `docker::inspect` shows (its networks by name: `<stack>_bridge` before `<stack>_default`).
/// Services still talk to each other over the overlay network.
fn bridge_network(project: &str) -> String {
    format!("{}_bridge", compose_file::project_name(project))
}

/// Creates the lab's bridge network, labelled as the stack's so `down` removes it with
/// the stack's own.
fn create_bridge(project: &str) -> Result<(), String> {
    let name = bridge_network(project);
    if !docker_cli(&["network", "ls", "-q", "--filter", &format!("name=^{name}$")])?
        .trim()
        .is_empty()
    {
        return Ok(());
    }
    let label = format!("{}={project}", dk::swarm::LABEL_STACK);
    docker_cli(&[
        "network", "create", "--driver", "bridge", "--scope", "swarm", "--label", &label, &name,
    ])
    .map(|_| ())
}

/// The services' ports from services.yaml.
fn ports_of(dir: &Path) -> HashMap<String, u16> {
    crate::config::FleetConfig::load(&dir.join("services.yaml"))
        .map(|c| {
            c.services
                .iter()
                .map(|(n, s)| (n.clone(), s.port))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the docker CLI; its output in the error.
fn docker_cli(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run docker {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Brings the lab up as a Swarm stack and waits for it.
pub fn up(
    handle: &tokio::runtime::Handle,
    opts: &LabOptions,
    state_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<Vec<ServiceState>, String> {
    let start = Instant::now();
    // The whole fleet comes with its infrastructure (InfluxDB, which the writer posts to,
    // and the Jaeger stand-in); `--only` brings up just the services named.
    let mut chosen = if opts.only.is_empty() {
        super::infrastructure_names(&opts.dir)
    } else {
        Vec::new()
    };
    chosen.extend(super::chosen_services(opts)?);
    let dir = swarm_dir(state_dir, &opts.project);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let docker = handle.block_on(dk::connect())?;
    if start_registry(&dir, progress)? {
        std::fs::write(dir.join("registry.started"), "").map_err(|e| e.to_string())?;
    }
    let had_gwbridge = !docker_cli(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"])?
        .trim()
        .is_empty();
    if handle.block_on(ensure_swarm(&docker))? {
        if !had_gwbridge {
            std::fs::write(dir.join("gwbridge.created"), "").map_err(|e| e.to_string())?;
        }
        std::fs::write(dir.join("swarm.created"), "").map_err(|e| e.to_string())?;
        progress("this engine is now a single-node Swarm (left again by lab down --swarm)");
    }
    handle.block_on(build_base_images(&docker, &opts.dir, progress))?;
    let refs = build_and_push(handle, &docker, opts, &chosen, progress)?;
    let stack = dir.join("stack.yml");
    let compose_path = opts.dir.join("docker-compose.yml");
    let compose: serde_yaml::Mapping = std::fs::read_to_string(&compose_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_yaml::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot read {}: {e}", compose_path.display()))?;
    std::fs::write(
        &stack,
        stack_file(opts, &compose, &refs, &ports_of(&opts.dir))?,
    )
    .map_err(|e| format!("cannot write {}: {e}", stack.display()))?;
    progress(&format!(
        "deploying stack {} ({} services)",
        opts.project,
        refs.len()
    ));
    create_bridge(&opts.project)?;
    let stack_s = stack.display().to_string();
    docker_cli(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        &stack_s,
        &opts.project,
    ])?;
    let states = handle.block_on(wait_running(&docker, opts, &refs, start));
    let ok = states.iter().filter(|s| s.status == "healthy").count();
    progress(&format!(
        "{ok}/{} running and healthy after {:.1}s",
        states.len(),
        start.elapsed().as_secs_f64()
    ));
    Ok(states)
}

/// Waits until each service has a running task on its image (a task with a healthcheck is
/// "running" only once healthy) or a task failed, within the lab's timeout; all services at
/// once, so each one's time is its own.
async fn wait_running(
    docker: &Docker,
    opts: &LabOptions,
    refs: &[(String, String)],
    start: Instant,
) -> Vec<ServiceState> {
    let waits = refs.iter().map(|(svc, image)| async move {
        let status = loop {
            let tasks = dk::swarm::list_tasks(docker, Some(&opts.project), svc).await;
            let running = tasks.as_ref().ok().and_then(|(_, ts)| {
                ts.iter()
                    .find(|t| t.desired == "running" && t.image == *image && t.state == "running")
            });
            if running.is_some() {
                break "healthy".to_string();
            }
            let failed = tasks.as_ref().ok().and_then(|(_, ts)| {
                ts.iter()
                    .find(|t| t.state == "failed" || t.state == "rejected")
            });
            let faulted = opts.faults.iter().any(|(s, _)| s == svc);
            if let (Some(t), true) = (failed, faulted) {
                break format!("{}: {}", t.state, t.error);
            }
            if start.elapsed() > opts.timeout {
                break match (&tasks, failed) {
                    (Err(e), _) => format!("error: {e}"),
                    (_, Some(t)) => format!("{}: {}", t.state, t.error),
                    _ => "timeout".into(),
                };
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        ServiceState {
            service: svc.clone(),
            status,
            ms: start.elapsed().as_millis() as u64,
        }
    });
    futures_util::future::join_all(waits).await
}

/// Removes the stack, its images, the registry the lab started (and its data) and the
/// Swarm the lab created.
pub fn down(
    handle: &tokio::runtime::Handle,
    opts: &LabOptions,
    state_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<(), String> {
    let dir = swarm_dir(state_dir, &opts.project);
    let docker = handle.block_on(dk::connect())?;
    let (state, manager) = handle.block_on(dk::swarm::node_state(&docker))?;
    if state == "active" && manager {
        progress(&format!("removing stack {}", opts.project));
        // "Nothing found in stack" is fine: down is also the cleanup of a failed up.
        let _ = docker_cli(&["stack", "rm", &opts.project]);
        handle.block_on(wait_stack_gone(&docker, &opts.project))?;
    }
    remove_images(&opts.project, progress);
    stop_registry(&dir, progress);
    if dir.join("swarm.created").exists() {
        handle
            .block_on(docker.leave_swarm(Some(LeaveSwarmOptions { force: true })))
            .map_err(|e| format!("cannot leave the Swarm the lab created: {e}"))?;
        progress("left the Swarm the lab created");
        if dir.join("gwbridge.created").exists() {
            // Swarm made it for its overlay networks and leaves it behind.
            let _ = handle.block_on(docker.remove_network("docker_gwbridge"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `docker stack rm` returns before the tasks' containers and the network are gone: wait for
/// both (the network is removed again if the stack's removal found it still in use).
async fn wait_stack_gone(docker: &Docker, project: &str) -> Result<(), String> {
    use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions};
    let label = format!("{}={project}", dk::swarm::LABEL_STACK);
    let filters = HashMap::from([("label".to_string(), vec![label])]);
    let t0 = Instant::now();
    loop {
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| e.to_string())?;
        let networks = docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters.clone()),
            }))
            .await
            .map_err(|e| e.to_string())?;
        if containers.is_empty() {
            for n in networks.iter().filter_map(|n| n.id.as_deref()) {
                let _ = docker.remove_network(n).await;
            }
            if networks.is_empty() {
                return Ok(());
            }
        }
        if t0.elapsed() > Duration::from_secs(90) {
            return Err(format!(
                "stack {project}: {} container(s) and {} network(s) still there after 90 s",
                containers.len(),
                networks.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Removes the lab's images by name: the pushed references and compose's build names.
fn remove_images(project: &str, progress: &dyn Fn(&str)) {
    let p = compose_file::project_name(project);
    let prefixes = [
        format!("{}/", registry_of(project)),
        format!("{p}-"),
        format!("{p}_"),
    ];
    let Ok(list) = docker_cli(&["images", "--format", "{{.Repository}}:{{.Tag}}"]) else {
        return;
    };
    let mine: Vec<&str> = list
        .lines()
        .filter(|r| prefixes.iter().any(|x| r.starts_with(x.as_str())))
        .collect();
    if !mine.is_empty() {
        progress(&format!("removing {} image name(s)", mine.len()));
        let mut args = vec!["rmi"];
        args.extend(mine);
        let _ = docker_cli(&args);
    }
}

/// Stops the registry the lab started (its pid file, checked against /proc so a recycled pid
/// is left alone) and removes its data.
fn stop_registry(dir: &Path, progress: &dyn Fn(&str)) {
    if !dir.join("registry.started").exists() {
        return;
    }
    let pid = std::fs::read_to_string(dir.join("registry.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .filter(|p| *p > 1);
    if let Some(pid) = pid {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains("docker-registry") {
            // SAFETY: kill(2) with a pid we started and just checked; no memory involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let t0 = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && t0.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            progress("registry stopped");
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("registry-data"));
}

/// One service of the Swarm lab, for `lab status --swarm`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwarmStatus {
    pub service: String,
    pub image: String,
    /// Swarm's last update state ("" when never updated).
    pub update: String,
    /// Tasks running / replicas asked for.
    pub running: usize,
    pub replicas: Option<i64>,
}

/// The stack's services with their image, last update and running tasks.
pub fn status(handle: &tokio::runtime::Handle, project: &str) -> Result<Vec<SwarmStatus>, String> {
    let docker = handle.block_on(dk::connect())?;
    let services = handle.block_on(dk::swarm::stack_services(&docker, project))?;
    let mut out = Vec::new();
    for s in services {
        let (_, tasks) = handle.block_on(dk::swarm::list_tasks(&docker, None, &s.id))?;
        let prefix = format!("{project}_");
        out.push(SwarmStatus {
            service: s.name.strip_prefix(&prefix).unwrap_or(&s.name).to_string(),
            image: s.image.split('@').next().unwrap_or_default().to_string(),
            update: s.update_state,
            running: tasks
                .iter()
                .filter(|t| t.desired == "running" && t.state == "running")
                .count(),
            replicas: s.replicas,
        });
    }
    out.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(out)
}

/// `lab status --swarm`'s table.
pub fn status_table(list: &[SwarmStatus]) -> String {
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|s| {
            let want = s.replicas.map_or("global".to_string(), |r| r.to_string());
            [
                s.service.clone(),
                s.image.clone(),
                s.update.clone(),
                format!("{}/{want}", s.running),
            ]
        })
        .collect();
    crate::util::table::render_aligned(&["SERVICE", "IMAGE", "UPDATE", "RUNNING"], &rows, "", &[])
}
