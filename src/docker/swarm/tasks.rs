//! A service's tasks, their logs, where the gate reaches the service, and pushing a build.
//!
//! **Where the gate probes.** A task's address on an overlay network is not routed from the
//! host. Two addresses may be: for a task on this engine's node, the container's address on
//! `docker_gwbridge` (the bridge that gives overlay containers their way out, which the host
//! is on) or on a Swarm-scoped bridge network it joined (then it has no gwbridge endpoint),
//! and a port the service publishes (Swarm's routing mesh, on every node). [`reach`]
//! prefers the local task: it is the new task itself, not whichever task the mesh picks, and
//! the mesh needs the engine's ingress NAT rules, which an engine running inside a container
//! may lack (on the machine this was written on, engine 20.10 inside a container, a published
//! ingress port refuses every connection from the host). A task on another node is probed
//! through the published port.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::Task;
use bollard::query_parameters::{
    InspectContainerOptions, InspectNetworkOptions, ListTasksOptions, LogsOptions, PushImageOptions,
};
use futures_util::StreamExt;
use serde::Serialize;

use super::{ServiceInfo, date_text, find_service, swarm_error};

/// One task as scripts see it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskInfo {
    pub id: String,
    /// The id of its service.
    pub service_id: String,
    /// Its replica number (0 for a global service's tasks).
    pub slot: i64,
    pub node: String,
    /// What Swarm wants: running, shutdown, ...
    pub desired: String,
    /// What it is: new, pending, preparing, starting, running, failed, shutdown, rejected...
    pub state: String,
    /// Swarm's message ("started", "unhealthy container").
    pub message: String,
    /// The error that ended it, if one did ("task: non-zero exit (1)").
    pub error: String,
    pub image: String,
    pub container_id: String,
    pub exit_code: Option<i64>,
    pub created: Option<String>,
}

impl From<&Task> for TaskInfo {
    fn from(t: &Task) -> Self {
        let status = t.status.clone().unwrap_or_default();
        let cs = status.container_status.clone().unwrap_or_default();
        TaskInfo {
            id: t.id.clone().unwrap_or_default(),
            service_id: t.service_id.clone().unwrap_or_default(),
            slot: t.slot.unwrap_or(0),
            node: t.node_id.clone().unwrap_or_default(),
            desired: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
            state: status.state.map(|s| s.to_string()).unwrap_or_default(),
            message: status.message.unwrap_or_default(),
            error: status.err.unwrap_or_default(),
            image: t
                .spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            container_id: cs.container_id.unwrap_or_default(),
            exit_code: cs.exit_code,
            created: date_text(&t.created_at),
        }
    }
}

/// Every task of service `name` Swarm still knows (current and recent history), newest
/// first.
pub async fn list_tasks(
    docker: &Docker,
    stack: Option<&str>,
    name: &str,
) -> Result<(ServiceInfo, Vec<TaskInfo>), String> {
    let svc = ServiceInfo::from(&find_service(docker, stack, name).await?);
    let filters = HashMap::from([("service".to_string(), vec![svc.id.clone()])]);
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| swarm_error(&format!("cannot list the tasks of {}", svc.name), &e))?;
    let mut out: Vec<TaskInfo> = tasks.iter().map(TaskInfo::from).collect();
    out.sort_by(|a, b| b.created.cmp(&a.created));
    Ok((svc, out))
}

/// Every task of the services of `stack` (current and history, newest first), in one call,
/// with the node names by node id: what the monitor's panel shows of a stack.
pub async fn stack_tasks(
    docker: &Docker,
    stack: &str,
) -> Result<(Vec<ServiceInfo>, Vec<TaskInfo>, HashMap<String, String>), String> {
    let services = super::stack_services(docker, stack).await?;
    if services.is_empty() {
        return Ok((services, Vec::new(), HashMap::new()));
    }
    let tasks = docker
        .list_tasks(None::<ListTasksOptions>)
        .await
        .map_err(|e| swarm_error("cannot list Swarm's tasks", &e))?;
    let mut out: Vec<TaskInfo> = tasks
        .iter()
        .map(TaskInfo::from)
        .filter(|t| services.iter().any(|s| s.id == t.service_id))
        .collect();
    out.sort_by(|a, b| b.created.cmp(&a.created));
    let nodes = docker
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .map(|ns| {
            ns.into_iter()
                .filter_map(|n| {
                    let host = n.description.and_then(|d| d.hostname)?;
                    Some((n.id?, host))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((services, out, nodes))
}

/// Most log bytes read of one task: a task that logs in a loop must not fill memory.
const MAX_LOG: usize = 8 << 20;

/// The log (stdout and stderr, all of it up to 8 MiB) of task `id`, through Swarm, so it
/// works for a task on any node.
pub async fn task_logs(docker: &Docker, id: &str) -> Result<String, String> {
    super::check_name("task id", id)?;
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        tail: "all".into(),
        ..Default::default()
    };
    let mut s = docker.task_logs(id, Some(opts));
    let mut out = String::new();
    while let Some(item) = s.next().await {
        let chunk = item.map_err(|e| swarm_error(&format!("cannot read logs of task {id}"), &e))?;
        out.push_str(&chunk.to_string());
        if out.len() > MAX_LOG {
            break;
        }
    }
    Ok(out)
}

/// Where this machine reaches port `port` of service `name`: `(ip, port)`, a running local
/// task's bridge address first, else the published port. See the module doc for why.
pub async fn reach(
    docker: &Docker,
    stack: Option<&str>,
    name: &str,
    port: i64,
) -> Result<(String, i64), String> {
    let (svc, tasks) = list_tasks(docker, stack, name).await?;
    let gw = docker
        .inspect_network("docker_gwbridge", None::<InspectNetworkOptions>)
        .await
        .ok()
        .and_then(|n| n.containers)
        .unwrap_or_default();
    for t in tasks
        .iter()
        .filter(|t| t.desired == "running" && t.state == "running")
    {
        if let Some(ip) = gw
            .get(&t.container_id)
            .and_then(|c| c.ipv4_address.as_deref())
            .and_then(|a| a.split('/').next())
            .filter(|a| !a.is_empty())
        {
            return Ok((ip.to_string(), port));
        }
    }
    // A task on a bridge network scoped to the Swarm (`docker network create -d bridge
    // --scope swarm`, as the lab makes) has no docker_gwbridge endpoint: the bridge is its
    // way out, and the host is on it too.
    for t in tasks
        .iter()
        .filter(|t| t.desired == "running" && t.state == "running" && !t.container_id.is_empty())
    {
        let Ok(c) = docker
            .inspect_container(&t.container_id, None::<InspectContainerOptions>)
            .await
        else {
            continue;
        };
        let nets = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        for (name, ep) in nets {
            let ip = ep.ip_address.unwrap_or_default();
            if ip.is_empty() {
                continue;
            }
            let driver = docker
                .inspect_network(&name, None::<InspectNetworkOptions>)
                .await
                .ok()
                .and_then(|n| n.driver);
            if driver.as_deref() == Some("bridge") {
                return Ok((ip, port));
            }
        }
    }
    if let Some((_, published)) = svc.published.iter().find(|(t, _)| *t == port) {
        return Ok(("127.0.0.1".into(), *published));
    }
    Err(format!(
        "cannot reach port {port} of service {}: it has no running task on this engine's \
         node and publishes no port for it; publish it (ports: [\"{port}:{port}\"]) so the \
         gate can probe it through Swarm's routing mesh",
        svc.name
    ))
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    pub image: String,
    /// The registry's digest of the pushed manifest (`sha256:…`), if it said.
    pub digest: Option<String>,
    pub ms: u64,
}

/// Pushes `image` (`registry/name:tag`) to its registry.
pub async fn push(docker: &Docker, image: &str) -> Result<Pushed, String> {
    // The name goes into the URL path (`/images/{name}/push`): only what a reference holds.
    let ref_ok = !image.is_empty()
        && image.len() <= 512
        && !image.contains("..")
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
    if !ref_ok {
        return Err(format!(
            "cannot push '{}': not an image reference (registry/name:tag)",
            image.escape_default()
        ));
    }
    let t0 = std::time::Instant::now();
    let (repo, tag) = crate::docker::build::split_ref(image);
    let mut s = docker.push_image(
        &repo,
        Some(PushImageOptions {
            tag: Some(tag),
            ..Default::default()
        }),
        None,
    );
    let mut digest = None;
    while let Some(item) = s.next().await {
        let info = item.map_err(|e| {
            format!(
                "cannot push {image}: {e}; is the registry up and reachable from the engine \
                 (a registry on 127.0.0.0/8 needs no TLS; another one must be listed in the \
                 daemon's insecure-registries or serve TLS)?"
            )
        })?;
        if let Some(d) = info
            .status
            .as_deref()
            .and_then(|st| st.split("digest: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|d| d.starts_with("sha256:"))
        {
            digest = Some(d.to_string());
        }
    }
    Ok(Pushed {
        image: image.to_string(),
        digest,
        ms: t0.elapsed().as_millis() as u64,
    })
}
