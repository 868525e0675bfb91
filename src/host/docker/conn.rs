//! The run's connection to the Docker engine, shared by the `docker::` functions and the
//! start-first deploy functions registered into the same namespace.

use bollard::Docker;
use rhai::Dynamic;

use crate::docker as dk;
use crate::host::{HostCtx, HostResult, fail, lock};

/// The engine client, connecting on first use. A failed connection is not cached: the daemon
/// may come up while a runbook waits.
pub fn client(h: &HostCtx) -> HostResult<Docker> {
    if let Some(d) = h.docker.get() {
        return Ok(d.clone());
    }
    let d = h.block_on(dk::connect())?.map_err(fail)?;
    let _ = h.docker.set(d.clone());
    Ok(d)
}

/// Marks the container table stale after dockhand changed something itself.
pub(in crate::host) fn changed(h: &HostCtx) {
    if let Some(t) = h.docker_table.get() {
        t.invalidate();
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
