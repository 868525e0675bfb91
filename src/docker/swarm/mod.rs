//! Docker Swarm services: finding them, reading them, and the registry references their
//! images must have.
//!
//! **Why dockhand does not schedule.** Swarm already places tasks on nodes, restarts them and
//! rolls an update back when a new task fails. What a Swarm shop lacks is the rest of the
//! rebuild: build with an immutable tag, push, update, wait until Swarm has *converged* (not
//! a `sleep`), gate with its own checks, and roll back when the gate says so. So this module
//! only asks Swarm to do things and reads what it did: [`update`] changes a service's image
//! and waits on the update's status, [`tasks`] reads the tasks, logs and the address the gate
//! probes, [`push`](tasks::push) sends a build to the registry the nodes pull from.
//!
//! **Why immutable tags.** Swarm compares specs: updating a service to the tag it already
//! runs changes nothing (unless ForceUpdate is bumped), and a worker node pulls the tag from
//! the registry before it looks at its local images. So every build gets a tag of its own
//! (`<registry>/<service>:<run>`), is pushed, and the service spec is pinned to the digest
//! the registry answered.
//!
//! **Names.** A stack deployed with `docker stack deploy -c FILE STACK` names its services
//! `STACK_SERVICE` and labels them `com.docker.stack.namespace=STACK`; a script names a
//! service as the compose file does (`weather-api`) and the stack is the fleet's project.

pub mod tasks;
pub mod update;

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::Service;
use bollard::query_parameters::{InspectServiceOptions, ListServicesOptions};
use serde::Serialize;

pub use tasks::{TaskInfo, list_tasks, push, reach, stack_tasks, task_logs};
pub use update::{
    UpdateSettings, UpdateWait, force_update, pushed_ref, redeploy, rollback, task_service,
    update_image, wait_update,
};

/// The label `docker stack deploy` puts on a stack's services.
pub const LABEL_STACK: &str = "com.docker.stack.namespace";

/// A registry reference as the config writes it (`127.0.0.1:5000/homeiq`): a host (with a
/// `.` or a `:port`, or `localhost`, else Docker would read it as a Docker Hub user) and an
/// optional lowercase path; no scheme, no tag, no digest.
pub fn check_registry(r: &str) -> Result<(), String> {
    let shown = r.escape_default();
    if r.is_empty() || r.len() > 200 {
        return Err(format!("'{shown}' is not a registry (1–200 characters)"));
    }
    if r.contains("://") {
        return Err(format!(
            "'{shown}' is a URL; write the registry as image references name it, without a \
             scheme: host[:port][/path], like 127.0.0.1:5000/homeiq"
        ));
    }
    let (host, path) = r.split_once('/').unwrap_or((r, ""));
    let (name, port) = host.split_once(':').unwrap_or((host, ""));
    let name_ok = !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok = port.is_empty() || port.parse::<u16>().is_ok_and(|p| p > 0);
    if !name_ok || !port_ok {
        return Err(format!(
            "'{shown}': '{}' is not a registry host[:port]",
            host.escape_default()
        ));
    }
    if !(name.contains('.') || !port.is_empty() || name == "localhost") {
        return Err(format!(
            "'{shown}' names no registry host: Docker would take '{name}' for a Docker Hub \
             account and push there; write the host with its port, like 127.0.0.1:5000/{name}"
        ));
    }
    if !path.is_empty() && !path.split('/').all(path_component_ok) {
        return Err(format!(
            "'{shown}': the path '{}' must be lowercase letters and digits separated by '.', \
             '_', '-' or '/' (no tag or digest: dockhand adds one tag per build)",
            path.escape_default()
        ));
    }
    Ok(())
}

fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
}

/// `<registry>/<service>:<tag>`, every part checked: the service and the tag come from a
/// config and a `--run` id, and end up in an engine request.
pub fn image_ref(registry: &str, service: &str, tag: &str) -> Result<String, String> {
    check_registry(registry)?;
    if !path_component_ok(service) {
        return Err(format!(
            "service '{}' cannot be an image name (lowercase letters, digits, '.', '_', '-')",
            service.escape_default()
        ));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !tag_ok {
        return Err(format!(
            "'{}' cannot be an image tag (letters, digits, '.', '_', '-'; at most 128)",
            tag.escape_default()
        ));
    }
    Ok(format!("{registry}/{service}:{tag}"))
}

/// A service as scripts see it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceInfo {
    pub id: String,
    /// Swarm's name (`homeiq_weather-api`).
    pub name: String,
    /// The stack it belongs to, if any.
    pub stack: Option<String>,
    /// The spec's version: an update names the version it changes.
    pub version: u64,
    /// The spec's image reference (with the digest Swarm pinned, if any).
    pub image: String,
    /// updating, paused, completed, rollback_started, rollback_paused, rollback_completed,
    /// or "" when the service was never updated.
    pub update_state: String,
    /// Swarm's own words on the last update ("update completed", or why it rolled back).
    pub update_message: String,
    /// When the last update started (RFC 3339), to tell a new update from the last one.
    pub update_started: Option<String>,
    /// Replicas asked for (`None`: a global service).
    pub replicas: Option<i64>,
    /// `(target port, published port)` of the ports Swarm publishes.
    pub published: Vec<(i64, i64)>,
}

/// A timestamp of bollard's (a string or a date, by its features) as text.
pub(crate) fn date_text<T: Serialize>(d: &Option<T>) -> Option<String> {
    let v = serde_json::to_value(d.as_ref()?).ok()?;
    v.as_str().map(String::from).or_else(|| Some(v.to_string()))
}

impl From<&Service> for ServiceInfo {
    fn from(s: &Service) -> Self {
        let spec = s.spec.clone().unwrap_or_default();
        let labels = spec.labels.clone().unwrap_or_default();
        let image = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let status = s.update_status.clone().unwrap_or_default();
        let published = s
            .endpoint
            .as_ref()
            .and_then(|e| e.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| Some((p.target_port?, p.published_port?)))
                    .collect()
            })
            .unwrap_or_default();
        ServiceInfo {
            id: s.id.clone().unwrap_or_default(),
            name: spec.name.clone().unwrap_or_default(),
            stack: labels.get(LABEL_STACK).cloned(),
            version: s.version.as_ref().and_then(|v| v.index).unwrap_or(0),
            image,
            update_state: status.state.map(|s| s.to_string()).unwrap_or_default(),
            update_message: status.message.unwrap_or_default(),
            update_started: date_text(&status.started_at),
            replicas: spec
                .mode
                .as_ref()
                .and_then(|m| m.replicated.as_ref())
                .and_then(|r| r.replicas),
            published,
        }
    }
}

/// What an engine error means for a Swarm call: most often, that this engine is no manager.
pub(crate) fn swarm_error(what: &str, e: &bollard::errors::Error) -> String {
    let text = e.to_string();
    if text.contains("not a swarm manager") || text.contains("This node is not") {
        format!(
            "{what}: this engine is not a Swarm manager ({text}); run dockhand against a \
             manager node (DOCKER_HOST), or `docker swarm init` to make this one a Swarm"
        )
    } else {
        format!("{what}: {text}")
    }
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether `s` may go into an engine URL path as a service name, task or service id: what
/// Swarm allows in a name (`[A-Za-z0-9_.-]`). Refused otherwise, so a hostile name cannot
/// reach another endpoint (`../containers/…`) or add a query (`?…`).
pub(crate) fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a Swarm {what} (letters, digits, '_', '.', '-'; at most 200)",
            s.escape_default()
        ))
    }
}

/// The repository of an image reference: `127.0.0.1:5000/homeiq/weather-api` of
/// `127.0.0.1:5000/homeiq/weather-api:lab@sha256:…` (a registry's port is not a tag).
pub fn repo_of(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    match (name.rfind(':'), name.rfind('/')) {
        (Some(c), Some(s)) if c > s => &name[..c],
        (Some(c), None) => &name[..c],
        _ => name,
    }
}

/// The service a script means by `name`: `<stack>_<name>` when a stack is in use, else
/// `name` itself (a Swarm name or id).
pub async fn find_service(
    docker: &Docker,
    stack: Option<&str>,
    name: &str,
) -> Result<Service, String> {
    check_name("service name", name)?;
    let mut candidates = Vec::new();
    if let Some(s) = stack.filter(|s| !s.is_empty()) {
        check_name("stack name", s)?;
        candidates.push(format!("{s}_{name}"));
    }
    candidates.push(name.to_string());
    for c in &candidates {
        match docker
            .inspect_service(c, None::<InspectServiceOptions>)
            .await
        {
            Ok(s) => return Ok(s),
            Err(e) if not_found(&e) => continue,
            Err(e) => return Err(swarm_error(&format!("cannot inspect service {c}"), &e)),
        }
    }
    Err(format!(
        "no Swarm service {}{}; is the stack deployed (docker stack deploy -c FILE {})?",
        candidates.join(" or "),
        stack.map(|s| format!(" in stack {s}")).unwrap_or_default(),
        stack.unwrap_or("STACK")
    ))
}

/// This engine's Swarm state: `inactive`, `active`, `pending`, `error`, `locked`, and whether
/// it is a manager (only managers answer the service API).
pub async fn node_state(docker: &Docker) -> Result<(String, bool), String> {
    let info = docker
        .info()
        .await
        .map_err(|e| format!("cannot read the engine's info: {e}"))?;
    let sw = info.swarm.unwrap_or_default();
    let state = sw
        .local_node_state
        .map(|s| s.to_string())
        .unwrap_or_default();
    Ok((state, sw.control_available.unwrap_or(false)))
}

/// The services of `stack` (none when this engine is not a Swarm manager).
pub async fn stack_services(docker: &Docker, stack: &str) -> Result<Vec<ServiceInfo>, String> {
    let (state, manager) = node_state(docker).await?;
    if state != "active" || !manager {
        return Ok(Vec::new());
    }
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_STACK}={stack}")])]);
    let list = docker
        .list_services(Some(ListServicesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| swarm_error("cannot list services", &e))?;
    Ok(list.iter().map(ServiceInfo::from).collect())
}

/// What runs the fleet of `project`: "swarm" when a stack of that name has services here,
/// else "compose". For a config that does not say (`orchestrator:`).
pub async fn detect(docker: &Docker, project: &str) -> Result<&'static str, String> {
    Ok(if stack_services(docker, project).await?.is_empty() {
        "compose"
    } else {
        "swarm"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_of_keeps_the_registry_port_and_drops_tag_and_digest() {
        for (image, repo) in [
            (
                "127.0.0.1:5000/homeiq/weather-api:lab@sha256:ab",
                "127.0.0.1:5000/homeiq/weather-api",
            ),
            (
                "127.0.0.1:5000/homeiq/weather-api@sha256:ab",
                "127.0.0.1:5000/homeiq/weather-api",
            ),
            ("127.0.0.1:5000/weather-api", "127.0.0.1:5000/weather-api"),
            ("busybox:1", "busybox"),
            ("busybox", "busybox"),
        ] {
            assert_eq!(repo_of(image), repo, "{image}");
        }
    }

    #[test]
    fn registries_are_hosts_with_paths() {
        for ok in [
            "127.0.0.1:5000/homeiq",
            "127.0.0.1:5000",
            "localhost/x",
            "registry.example.com/a/b-c",
        ] {
            assert!(check_registry(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("http://127.0.0.1:5000/x", "URL"),
            ("homeiq", "Docker Hub"),
            ("127.0.0.1:5000/Home", "lowercase"),
            ("127.0.0.1:5000/x:tag", "lowercase"),
            ("127.0.0.1:99999/x", "host[:port]"),
            ("-h:1/x", "host[:port]"),
            ("127.0.0.1:5000/x\n", "lowercase"),
            ("", "1–200"),
        ] {
            let e = check_registry(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn names_that_would_leave_the_url_path_are_refused() {
        assert!(check_name("service name", "homeiq_weather-api").is_ok());
        for bad in ["", "../containers/x/json", "a?b", "a/b", "a b", ".x", "x\n"] {
            assert!(check_name("service name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_refs_check_service_and_tag() {
        assert_eq!(
            image_ref(
                "127.0.0.1:5000/homeiq",
                "weather-api",
                "phase1-20261130-121800"
            )
            .unwrap(),
            "127.0.0.1:5000/homeiq/weather-api:phase1-20261130-121800"
        );
        assert!(image_ref("127.0.0.1:5000/h", "Weather", "x").is_err());
        assert!(image_ref("127.0.0.1:5000/h", "w", "a b").is_err());
        assert!(image_ref("127.0.0.1:5000/h", "w", "-x").is_err());
        assert!(image_ref("127.0.0.1:5000/h", "w", &"x".repeat(129)).is_err());
    }
}
