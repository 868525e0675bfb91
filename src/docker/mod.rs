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
//! container's configuration), `recreate.rs` (stop-first), `start_first.rs`, `recover.rs`.

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
pub mod start_first;
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
