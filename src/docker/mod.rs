//! The Docker engine, through bollard: connection, compose-aware lookup, health waiting.
//!
//! This is the library side, free of Rhai; `src/host/docker.rs` is its face for scripts and
//! only converts (option maps in, maps out). Everything here is `async` and its errors are
//! written for the operator ("cannot reach Docker at unix:///var/run/docker.sock: … is the
//! daemon running?"), because the host layer passes them to scripts as they are. Where a
//! caller decides by the kind of an error, the error is typed (`build::BuildError` carries its
//! `FailureKind`, `engine::Error`, `usage::SampleError`); elsewhere it is the message.
//!
//! **Compose-native lookup.** A name given by a script is first taken as a compose *service*
//! (label `com.docker.compose.service`, within the project in use if one is set), then as a
//! container name or id. So `docker::health("data-api")` works whether the container is
//! called `homeiq_data-api_1` (compose v1), `homeiq-data-api-1` (v2) or `data-api`.
//!
//! **Health from events, not polling** (`health.rs`): [`wait_healthy`] answers the moment the
//! engine decides, not at the next poll.
//!
//! Where things are: `container.rs` (the `docker ps` row), `lookup.rs` (names to
//! containers), `health.rs`, `engine.rs` (lifecycle, logs, exec, images: one engine call
//! each), `usage.rs` (CPU and memory), `build/` (images), `compose_file/` and `compose_cli.rs`
//! (compose), and the deploys: `names.rs` (temporary names), `replacement.rs` (the new
//! container's configuration), `recreate.rs` (stop-first), `start_first.rs`, `recover.rs`;
//! `swarm/` for fleets that run as Swarm services (update, wait, tasks, push).

pub mod address;
pub mod build;
pub mod compose_cli;
pub mod compose_file;
mod compose_hash;
mod container;
pub mod engine;
mod health;
mod lookup;
pub mod names;
pub mod recover;
pub mod recreate;
pub mod replacement;
pub mod ssh;
pub mod start_first;
pub mod swarm;
pub mod table;
pub mod usage;

use std::time::Duration;

use bollard::Docker;

pub use container::{Container, Details, container_name, details, health_of};
pub use health::{HealthWait, wait_healthy};
pub use lookup::{Filter, containers_of, find, list};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// The lab's category label (the seeds' service categories).
pub const LABEL_CATEGORY: &str = "homeiq.category";

/// Where we connect: `DOCKER_HOST`, or the local socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// Connects to `DOCKER_HOST` (or the local socket) and negotiates the API version (so a
/// 20.10 engine speaking 1.41 works with a client generated for a newer API).
pub async fn connect() -> Result<Docker, String> {
    connect_to(&docker_host()).await.map(|c| c.docker)
}

/// A connected engine: the client, and how the docker / compose CLI reaches the same engine.
#[derive(Clone)]
pub struct Connection {
    pub docker: Docker,
    /// The address as given (`ssh://root@edge`), for messages.
    pub url: String,
    /// The `DOCKER_HOST` for the compose CLI: the tunnel's local socket for an ssh engine.
    pub cli_host: String,
    /// The ssh tunnel behind it, if any (kept alive by the process; see [`ssh`]).
    pub tunnel: Option<std::sync::Arc<ssh::Tunnel>>,
}

/// Connects to the engine at `url` (`unix://`, `tcp://`, `ssh://`; see [`address`]) and
/// negotiates the API version. An ssh engine is reached through a tunnel of the system `ssh`
/// client ([`ssh`]); the error then carries ssh's own reason.
pub async fn connect_to(url: &str) -> Result<Connection, String> {
    let setting = if url == docker_host() {
        "DOCKER_HOST"
    } else {
        "the engine's address"
    };
    let unreachable = |e: &dyn std::fmt::Display| {
        format!("cannot reach Docker at {url}: {e}; is the daemon running (and {setting} right)?")
    };
    // DOCKER_HOST itself, unless ssh: bollard's own reading of the environment, as before
    // (it also takes schemes and TLS settings that named engines do not).
    let addr = if url == docker_host() && !url.starts_with("ssh://") {
        None
    } else {
        Some(address::Address::parse(url)?)
    };
    let (docker, cli_host, tunnel) = match &addr {
        None => (Docker::connect_with_defaults(), url.to_string(), None),
        Some(address::Address::Unix(path)) => (
            Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION),
            url.to_string(),
            None,
        ),
        Some(address::Address::Tcp(_)) => (
            Docker::connect_with_http(url, 120, bollard::API_DEFAULT_VERSION),
            url.to_string(),
            None,
        ),
        Some(address::Address::Ssh(target)) => {
            let t = ssh::tunnel(target).await?;
            let path = t.socket.to_string_lossy().into_owned();
            let d = Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION);
            (d, format!("unix://{path}"), Some(t))
        }
    };
    let docker = docker.map_err(|e| unreachable(&e))?;
    let ssh_said = || tunnel.as_ref().map(|t| t.said()).unwrap_or_default();
    let why = |e: &dyn std::fmt::Display| match (&addr, ssh_said()) {
        (Some(address::Address::Ssh(t)), s) => format!(
            "cannot reach Docker at {url}: ssh logged in, but the engine did not answer through \
             the tunnel ({e}{}{s}); is the engine's socket at {} on that machine, and may the \
             login use it (root, or a member of the docker group)?",
            if s.is_empty() { "" } else { "; ssh: " },
            t.socket
        ),
        _ => unreachable(e),
    };
    match tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(Connection {
            docker,
            url: url.to_string(),
            cli_host,
            tunnel,
        }),
        Ok(Err(e)) => Err(why(&e)),
        Err(_) => Err(why(&"no answer within 5 s")),
    }
}
