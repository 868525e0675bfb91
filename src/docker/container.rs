//! Containers as dockhand shows them: the `docker ps` row ([`Container`]), what `inspect`
//! adds to it ([`Details`]), and an inspected container's name and health.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::InspectContainerOptions;
use serde::Serialize;

use super::{LABEL_CATEGORY, LABEL_PROJECT, LABEL_SERVICE};

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One container as `docker::ps` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub name: String,
    pub id: String,
    pub service: String,
    pub project: String,
    pub category: String,
    pub image: String,
    /// created, running, exited, restarting, …
    pub state: String,
    /// healthy, unhealthy, starting, or none (no healthcheck).
    pub health: String,
    /// The engine's status text, e.g. "Up 5 minutes (healthy)".
    pub status: String,
    /// Published ports as "127.0.0.1:8006->8006/tcp".
    pub ports: Vec<String>,
    /// Seconds since the container was created.
    pub age_s: i64,
    /// Restarts by the engine's restart policy (from `inspect`: the list call lacks it;
    /// `None` where it was not looked up).
    pub restarts: Option<i64>,
    /// Seconds since the container last started (`None` when not running or not looked up).
    pub uptime_s: Option<i64>,
    /// IP addresses on the container's networks.
    pub ips: Vec<String>,
}

pub use super::swarm::LABEL_STACK;
/// A Swarm task's service, by its full name (`<stack>_<service>`).
pub const LABEL_SWARM_SERVICE: &str = "com.docker.swarm.service.name";

/// A container's project and service, as scripts name them: compose's labels, or for a
/// Swarm task of a stack its stack and its service's name within the stack
/// (`homeiq_weather-api` of stack `homeiq` is `weather-api`), so `docker::ps`, `inspect`,
/// `health`, `logs` and `wait_healthy` find a stack's services by the same names.
pub fn identity(labels: Option<&HashMap<String, String>>) -> (String, String) {
    let get = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    // The engine's Swarm labels first: an image built by compose carries compose's labels
    // into every container made from it, a task's too.
    let stack = get(LABEL_STACK);
    let full = get(LABEL_SWARM_SERVICE);
    if stack.is_empty() || full.is_empty() {
        return (get(LABEL_PROJECT), get(LABEL_SERVICE));
    }
    let service = full
        .strip_prefix(&format!("{stack}_"))
        .unwrap_or(&full)
        .to_string();
    (stack, service)
}

/// Summaries without a Swarm service's task history: Swarm keeps the stopped containers
/// of the tasks it replaced (5 per slot by default), which are not the service any more.
/// A service's stopped task containers are dropped when one of its tasks runs; a service
/// with none running keeps them all (they say why). Compose containers pass as they are.
pub fn without_task_history(list: Vec<&ContainerSummary>) -> Vec<&ContainerSummary> {
    let is_task = |c: &ContainerSummary| {
        c.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_SWARM_SERVICE))
    };
    let running = |c: &ContainerSummary| c.state.is_some_and(|s| s.to_string() == "running");
    let live: std::collections::HashSet<(String, String)> = list
        .iter()
        .filter(|c| is_task(c) && running(c))
        .map(|c| identity(c.labels.as_ref()))
        .collect();
    list.into_iter()
        .filter(|c| !is_task(c) || running(c) || !live.contains(&identity(c.labels.as_ref())))
        .collect()
}

fn label(labels: &Option<HashMap<String, String>>, key: &str) -> String {
    labels
        .as_ref()
        .and_then(|l| l.get(key))
        .cloned()
        .unwrap_or_default()
}

/// Health from the summary: newer engines report it as a field, 1.41 only in the status text.
fn summary_health(c: &ContainerSummary) -> String {
    if let Some(h) = c.health.as_ref().and_then(|h| h.status) {
        return h.to_string();
    }
    let status = c.status.as_deref().unwrap_or("");
    for h in ["unhealthy", "healthy", "health: starting"] {
        if status.contains(&format!("({h})")) {
            return h.trim_start_matches("health: ").to_string();
        }
    }
    "none".to_string()
}

impl From<&ContainerSummary> for Container {
    fn from(c: &ContainerSummary) -> Self {
        let now = unix_now();
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default();
        let ports = c
            .ports
            .iter()
            .flatten()
            .map(|p| match (p.ip.as_deref(), p.public_port) {
                (Some(ip), Some(pp)) => format!(
                    "{ip}:{pp}->{}/{}",
                    p.private_port,
                    p.typ.map(|t| t.to_string()).unwrap_or_default()
                ),
                _ => format!(
                    "{}/{}",
                    p.private_port,
                    p.typ.map(|t| t.to_string()).unwrap_or_default()
                ),
            })
            .collect();
        // By network name, as `inspect`'s map lists them (the engine's map has no order).
        let mut nets: Vec<(&String, &str)> = c
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .map(|nets| {
                nets.iter()
                    .filter_map(|(k, e)| Some((k, e.ip_address.as_deref()?)))
                    .filter(|(_, ip)| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        nets.sort();
        let ips = nets.into_iter().map(|(_, ip)| ip.to_string()).collect();
        let (project, service) = identity(c.labels.as_ref());
        Container {
            id: super::names::short_id(c.id.as_deref().unwrap_or("")),
            service,
            project,
            category: label(&c.labels, LABEL_CATEGORY),
            image: c.image.clone().unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            health: summary_health(c),
            status: c.status.clone().unwrap_or_default(),
            ports,
            age_s: c.created.map(|t| now - t).unwrap_or(0),
            restarts: None,
            uptime_s: None,
            ips,
            name,
        }
    }
}

/// What `inspect` adds to a listed container: restart count and start time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Details {
    pub restarts: i64,
    /// Unix seconds of the last start, when running.
    pub started: Option<i64>,
}

impl Details {
    pub fn of(c: &ContainerInspectResponse) -> Details {
        let state = c.state.as_ref();
        let running = state.and_then(|s| s.running).unwrap_or(false);
        let started = state
            .and_then(|s| s.started_at.as_deref())
            .filter(|_| running)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        Details {
            restarts: c.restart_count.unwrap_or(0),
            started,
        }
    }

    /// Fills `c`'s restart count and uptime.
    pub fn apply(&self, c: &mut Container) {
        let now = unix_now();
        c.restarts = Some(self.restarts);
        c.uptime_s = self.started.map(|t| (now - t).max(0));
    }
}

/// Inspects the given containers concurrently for their [`Details`].
pub async fn details(docker: &Docker, ids: &[String]) -> HashMap<String, Details> {
    let lookups = ids.iter().map(|id| async move {
        let r = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await;
        (id.clone(), r.ok().map(|c| Details::of(&c)))
    });
    futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .filter_map(|(id, d)| d.map(|d| (id, d)))
        .collect()
}

/// An inspected container's name without the leading `/` the engine puts there.
pub fn container_name(c: &ContainerInspectResponse) -> String {
    c.name
        .as_deref()
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string()
}

/// Health of an inspected container: healthy, unhealthy, starting, none (no healthcheck,
/// running), or the state when it is not running (exited, created, …).
pub fn health_of(c: &ContainerInspectResponse) -> String {
    let state = c.state.as_ref();
    let running = state.and_then(|s| s.running).unwrap_or(false);
    if !running {
        return state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
    }
    match state.and_then(|s| s.health.as_ref()).and_then(|h| h.status) {
        Some(s) if s.to_string() != "none" && !s.to_string().is_empty() => s.to_string(),
        _ => "none".to_string(),
    }
}
