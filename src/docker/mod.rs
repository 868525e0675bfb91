//! The Docker engine, through bollard: connection, compose-aware lookup, health waiting.
//!
//! This is the library side; `src/host/docker.rs` is its Rhai face. Everything here is
//! `async` and returns `Result<_, String>` with messages written for the operator ("cannot
//! reach Docker at unix:///var/run/docker.sock: … is the daemon running?"), because the
//! host layer passes them to scripts as they are.
//!
//! **Compose-native lookup.** A name given by a script is first taken as a compose *service*
//! (label `com.docker.compose.service`, within the project in use if one is set), then as a
//! container name or id. So `docker::health("data-api")` works whether the container is
//! called `homeiq_data-api_1` (compose v1), `homeiq-data-api-1` (v2) or `data-api`.
//!
//! **Health from events, not polling.** [`wait_healthy`] subscribes to the engine's event
//! stream *before* it looks at the container (using `since` so nothing between the
//! subscription and the inspection is lost), then waits for `health_status` or `die`.
//! The answer arrives the moment the engine decides, not at the next poll.

use std::collections::HashMap;

pub mod build;
pub mod compose_cli;
pub mod compose_file;
pub mod recreate;
pub mod start_first;
pub mod table;
pub mod usage;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use futures_util::StreamExt;
use serde::Serialize;

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// The lab's category label (the seeds' service categories).
pub const LABEL_CATEGORY: &str = "homeiq.category";

/// Where we connect: `DOCKER_HOST`, or the local socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// Connects and negotiates the API version (so a 20.10 engine speaking 1.41 works with a
/// client generated for a newer API).
pub async fn connect() -> Result<Docker, String> {
    let host = docker_host();
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot reach Docker at {host}: {e}; is the daemon running (and DOCKER_HOST right)?"
        )
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(&e))?;
    match tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(unreachable(&e)),
        Err(_) => Err(unreachable(&"no answer within 5 s")),
    }
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
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
        let ips = c
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .map(|nets| {
                nets.values()
                    .filter_map(|e| e.ip_address.clone())
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Container {
            id: c.id.as_deref().unwrap_or("").chars().take(12).collect(),
            service: label(&c.labels, LABEL_SERVICE),
            project: label(&c.labels, LABEL_PROJECT),
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
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

/// Which containers to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub project: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    /// Include stopped containers.
    pub all: bool,
}

pub async fn list(docker: &Docker, f: &Filter) -> Result<Vec<Container>, String> {
    let mut labels = Vec::new();
    if let Some(p) = &f.project {
        labels.push(format!("{LABEL_PROJECT}={p}"));
    }
    if let Some(s) = &f.service {
        labels.push(format!("{LABEL_SERVICE}={s}"));
    }
    if let Some(c) = &f.category {
        labels.push(format!("{LABEL_CATEGORY}={c}"));
    }
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert("label".to_string(), labels);
    }
    let opts = ListContainersOptions {
        all: f.all,
        filters: Some(filters),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| format!("cannot list containers: {e}"))?;
    let mut out: Vec<Container> = list.iter().map(Container::from).collect();
    out.sort_by(|a, b| (&a.project, &a.service, &a.name).cmp(&(&b.project, &b.service, &b.name)));
    Ok(out)
}

/// Finds the container a script means by `name`: a compose service (in `project` if given),
/// else a container name or id. Prefers a running container when a service has several.
pub async fn find(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<ContainerInspectResponse, String> {
    let f = Filter {
        project: project.map(String::from),
        service: Some(name.to_string()),
        all: true,
        ..Default::default()
    };
    let mut by_service = list(docker, &f).await?;
    // A container set aside by an interrupted recreate is a leftover, and one started next to
    // the old by a start-first deploy is not the service yet (it is named explicitly).
    by_service.sort_by_key(|c| {
        (
            c.name.contains(recreate::ASIDE) || c.name.contains(start_first::NEXT),
            c.state != "running",
        )
    });
    let target = by_service
        .first()
        .map(|c| c.id.clone())
        .unwrap_or_else(|| name.to_string());
    match docker
        .inspect_container(&target, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => Ok(c),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            let scope = project
                .map(|p| format!(" in project '{p}'"))
                .unwrap_or_default();
            let known = list(
                docker,
                &Filter {
                    project: project.map(String::from),
                    all: true,
                    ..Default::default()
                },
            )
            .await
            .map(|l| {
                l.into_iter()
                    .map(|c| {
                        if c.service.is_empty() {
                            c.name
                        } else {
                            c.service
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
            let hint = if known.is_empty() {
                String::new()
            } else {
                let mut k = known;
                k.sort();
                k.dedup();
                format!(" (known: {})", k.join(", "))
            };
            Err(format!(
                "no container or compose service named '{name}'{scope}{hint}"
            ))
        }
        Err(e) => Err(format!("cannot inspect '{name}': {e}")),
    }
}

/// Every container of `name` — a compose service (in `project` if given), else a plain
/// container name — including the copies a deploy left under a temporary name (set aside by a
/// stop-first recreate, or started next to the old one by a start-first deploy).
pub async fn containers_of(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Vec<Container>, String> {
    let f = Filter {
        project: project.map(String::from),
        service: Some(name.to_string()),
        all: true,
        ..Default::default()
    };
    let by_service = list(docker, &f).await?;
    if !by_service.is_empty() {
        return Ok(by_service);
    }
    let any = Filter {
        project: project.map(String::from),
        all: true,
        ..Default::default()
    };
    Ok(list(docker, &any)
        .await?
        .into_iter()
        .filter(|c| {
            c.name == name
                || recreate::original_name(&c.name) == Some(name)
                || start_first::promoted_name(&c.name) == Some(name)
        })
        .collect())
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

/// What `wait_healthy` saw.
#[derive(Debug, Clone, Serialize)]
pub struct HealthWait {
    /// healthy, unhealthy, running (no healthcheck), exited, timeout.
    pub status: String,
    /// Milliseconds from the call to the answer.
    pub ms: u64,
    /// When the engine reported the decisive event (ns since the epoch), if it was an event.
    pub event_time_ns: Option<i64>,
    /// Human-readable note ("no healthcheck: running counts as ready", "exit code 1").
    pub note: String,
    pub container: String,
}

/// Waits until the container is healthy, unhealthy, or dead, or `timeout` passes. Docker's
/// "unhealthy" verdict ends the wait (the image's healthcheck window has passed) unless
/// `through_unhealthy`, for services whose start period is shorter than their start-up.
pub async fn wait_healthy(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
    timeout: Duration,
    through_unhealthy: bool,
) -> Result<HealthWait, String> {
    let start = Instant::now();
    let c = find(docker, project, name).await?;
    let id = c.id.clone().unwrap_or_default();
    let cname = container_name(&c);
    // Subscribe first, replaying from just before we inspect, so no transition is missed.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut filters = HashMap::new();
    filters.insert("type".to_string(), vec!["container".to_string()]);
    filters.insert("container".to_string(), vec![id.clone()]);
    let opts = EventsOptions {
        since: Some(format!("{}.{:09}", since.as_secs(), since.subsec_nanos())),
        filters: Some(filters),
        ..Default::default()
    };
    let mut events = docker.events(Some(opts));
    let done = |status: &str, ev: Option<i64>, note: String| HealthWait {
        status: status.to_string(),
        ms: start.elapsed().as_millis() as u64,
        event_time_ns: ev,
        note,
        container: cname.clone(),
    };
    let now = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| format!("cannot inspect '{name}': {e}"))?;
    let has_check = now
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| !t.is_empty() && t[0] != "NONE");
    match health_of(&now).as_str() {
        "healthy" => return Ok(done("healthy", None, "already healthy".into())),
        "unhealthy" if !through_unhealthy => {
            return Ok(done(
                "unhealthy",
                None,
                "the container's healthcheck is failing".into(),
            ));
        }
        "none" if !has_check => {
            return Ok(done(
                "running",
                None,
                "no healthcheck: running counts as ready".into(),
            ));
        }
        "exited" | "dead" => {
            let code = now.state.as_ref().and_then(|s| s.exit_code).unwrap_or(0);
            return Ok(done("exited", None, format!("exit code {code}")));
        }
        _ => {}
    }
    let deadline = tokio::time::Instant::now() + timeout.saturating_sub(start.elapsed());
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let ev = match next {
            Err(_) => {
                return Ok(done(
                    "timeout",
                    None,
                    format!(
                        "not healthy within {}",
                        crate::util::human::duration(timeout)
                    ),
                ));
            }
            Ok(None) => return Err("the Docker event stream ended unexpectedly".into()),
            Ok(Some(Err(e))) => return Err(format!("Docker event stream failed: {e}")),
            Ok(Some(Ok(ev))) => ev,
        };
        let action = ev.action.as_deref().unwrap_or("");
        let t = ev.time_nano;
        match action {
            "health_status: healthy" => return Ok(done("healthy", t, String::new())),
            "health_status: unhealthy" if !through_unhealthy => {
                return Ok(done(
                    "unhealthy",
                    t,
                    "the container's healthcheck failed".into(),
                ));
            }
            "die" => {
                let code = ev
                    .actor
                    .as_ref()
                    .and_then(|a| a.attributes.as_ref())
                    .and_then(|a| a.get("exitCode"))
                    .cloned()
                    .unwrap_or_default();
                return Ok(done("exited", t, format!("exit code {code}")));
            }
            "start" if !has_check => {
                return Ok(done(
                    "running",
                    t,
                    "no healthcheck: running counts as ready".into(),
                ));
            }
            _ => {}
        }
    }
}
