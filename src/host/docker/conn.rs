//! The run's connection to the Docker engine, shared by the `docker::` functions and the
//! start-first deploy functions registered into the same namespace.

use bollard::Docker;
use rhai::Dynamic;

use crate::host::{HostCtx, HostResult, lock};

/// The client of this thread's engine (see `engines.rs`), connecting on first use. A failed
/// connection is not cached: the daemon may come up while a runbook waits.
pub fn client(h: &HostCtx) -> HostResult<Docker> {
    Ok(super::engines::engine(h)?.conn.docker.clone())
}

/// Marks the container tables stale after dockhand changed something itself.
pub(in crate::host) fn changed(h: &HostCtx) {
    for e in h.engines.connected() {
        if let Some(t) = e.table.get() {
            t.invalidate();
        }
    }
}

/// The compose project in use: `docker::use_project`, else `COMPOSE_PROJECT_NAME`.
pub fn project(h: &HostCtx) -> Option<String> {
    lock(&h.docker_project).clone().or_else(|| {
        std::env::var("COMPOSE_PROJECT_NAME")
            .ok()
            .filter(|p| !p.is_empty())
    })
}

pub(in crate::host) fn to_dyn<T: serde::Serialize>(v: &T) -> HostResult<Dynamic> {
    rhai::serde::to_dynamic(v)
}
