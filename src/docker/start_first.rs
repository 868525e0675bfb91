//! Zero-downtime deploys: **start-first**, Swarm's name for it.
//!
//! [`recreate`](super::recreate::recreate) is stop-first, like `docker compose up -d`: the old
//! container stops before the new one starts, so the service is unreachable until the new one
//! answers. Start-first turns the order around, in three steps the rebuild drives:
//!
//! 1. [`start_next`]: the new container is created *next to* the old one, under a temporary
//!    name (`<name>_dockhand_next_<old id>`), with the old one's configuration (networks and
//!    aliases included), and started. Both now answer on the service's alias: the engine's
//!    DNS gives clients either.
//! 2. The caller gates the new container (health, probe, settle, logs) by its own name.
//! 3. [`promote`] on success: the old container leaves the networks first (so DNS stops
//!    naming it), is stopped and removed, and the new one takes the compose name — with the
//!    labels `docker compose up -d` compares, so a later `up -d` recreates nothing. Or
//!    [`discard`] on failure: the new container is removed and the old one never stopped.
//!
//! A crash at any point is mended by [`recover`](super::recover::recover) without the
//! journal: a temporary container next to a *running* old one was never promoted (remove it;
//! the old one kept serving); next to a stopped or missing old one, promotion had begun after
//! a passed gate (finish it).
//!
//! Not for a container that publishes host ports (two containers cannot bind one port: put
//! the service behind something that can switch — a reverse proxy such as Traefik or nginx on
//! the compose network, which follows DNS — and publish the proxy), nor for a writer or a
//! stateful service that must not run twice (the config refuses both).

use std::time::Instant;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, NetworkDisconnectRequest};
use bollard::query_parameters::{
    CreateContainerOptions, StartContainerOptions, StopContainerOptions,
};
use serde::Serialize;

use super::names::{self, is_aside, is_next, promoted_name, short_id};
use super::replacement::{connect_networks, force, plan, rename};
use super::{Container, containers_of};

/// A new container started next to the old one.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// The compose name (the old container's, the new one's after promotion).
    pub name: String,
    /// The new container's temporary name: gate it by this.
    pub next_name: String,
    pub next_id: String,
    pub old_id: String,
    pub old_image_id: String,
    pub new_image_id: String,
    pub ms: u64,
    pub notes: Vec<String>,
}

/// Published host ports of `c` ("8006/tcp -> 127.0.0.1:8006"), which rule start-first out.
fn published(c: &ContainerInspectResponse) -> Vec<String> {
    c.host_config
        .as_ref()
        .and_then(|h| h.port_bindings.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(port, b)| {
            let b = b.filter(|b| !b.is_empty())?;
            let host: Vec<String> = b
                .iter()
                .map(|x| {
                    format!(
                        "{}:{}",
                        x.host_ip.clone().unwrap_or_default(),
                        x.host_port.clone().unwrap_or_default()
                    )
                })
                .collect();
            Some(format!("{port} -> {}", host.join(", ")))
        })
        .collect()
}

/// Step 1: creates and starts the new container on `image` (default: the image name the old
/// one was created with) next to the old one.
pub async fn start_next(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
    image: Option<&str>,
) -> Result<Started, String> {
    let start = Instant::now();
    let p = plan(docker, project, name, image).await?;
    let (old_id, cname) = (&p.old_id, &p.cname);
    if is_next(cname) {
        return Err(format!(
            "{name}: only a start-first container was found; run docker::recover(\"{name}\") first"
        ));
    }
    let ports = published(&p.old);
    if !ports.is_empty() {
        return Err(format!(
            "cannot deploy {cname} start-first: it publishes host ports ({}), which two \
             containers cannot share; use order: stop-first for it, or publish a reverse proxy \
             (Traefik, nginx) that reaches it by its compose alias instead",
            ports.join("; ")
        ));
    }
    let next_name = names::next_name(cname, old_id);
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(next_name.clone()),
                ..Default::default()
            }),
            p.body,
        )
        .await
        .map_err(|e| format!("cannot create {next_name} next to {cname}: {e}"))?;
    let next_id = created.id;
    let undo = |why: String| {
        let (id, cname) = (next_id.clone(), cname.clone());
        async move {
            let _ = docker.remove_container(&id, force()).await;
            Err::<Started, String>(format!("{why} ({cname} was left running, untouched)"))
        }
    };
    if let Err(e) = connect_networks(docker, &next_id, p.extra_networks).await {
        return undo(format!("{next_name}: {e}")).await;
    }
    if let Err(e) = docker
        .start_container(&next_id, None::<StartContainerOptions>)
        .await
    {
        return undo(format!("cannot start {next_name}: {e}")).await;
    }
    Ok(Started {
        name: p.cname,
        next_name,
        next_id: short_id(&next_id),
        old_id: short_id(&p.old_id),
        old_image_id: p.old_image_id,
        new_image_id: p.new_image_id,
        ms: start.elapsed().as_millis() as u64,
        notes: p.notes,
    })
}

/// The containers of `name` (a compose service, or a container name): the current ones and
/// the start-first ones.
pub(super) async fn current_and_next(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<(Vec<Container>, Vec<Container>), String> {
    let all = containers_of(docker, project, name).await?;
    let (next, current): (Vec<_>, Vec<_>) = all
        .into_iter()
        .filter(|c| !is_aside(&c.name))
        .partition(|c| is_next(&c.name));
    Ok((current, next))
}

/// What [`promote`] or [`discard`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Switched {
    pub name: String,
    pub id: String,
    pub ms: u64,
}

/// Step 3 after a passed gate: the old container leaves the networks, stops and goes; the new
/// one takes the compose name. Idempotent: it finishes a promotion that was interrupted.
pub async fn promote(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Switched, String> {
    let start = Instant::now();
    let (current, next) = current_and_next(docker, project, name).await?;
    let Some(n) = next.first() else {
        return Err(format!("{name}: no start-first container to promote"));
    };
    let (next_id, next_name) = (n.id.clone(), n.name.clone());
    let cname = promoted_name(&next_name).unwrap_or(name).to_string();
    for c in &current {
        retire(docker, &c.id).await?;
    }
    rename(docker, &next_id, &cname)
        .await
        .map_err(|e| format!("cannot rename {next_name} to {cname}: {e}"))?;
    Ok(Switched {
        name: cname,
        id: short_id(&next_id),
        ms: start.elapsed().as_millis() as u64,
    })
}

/// Takes the old container out of service: off its networks first, so the engine's DNS stops
/// handing out its address, then stopped (gracefully) and removed.
async fn retire(docker: &Docker, id: &str) -> Result<(), String> {
    if let Ok(c) = docker.inspect_container(id, None).await {
        let nets = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        for net in nets
            .keys()
            .filter(|n| !matches!(n.as_str(), "bridge" | "host" | "none"))
        {
            let req = NetworkDisconnectRequest {
                container: id.to_string(),
                force: Some(true),
            };
            let _ = docker.disconnect_network(net, req).await;
        }
    }
    let stop = StopContainerOptions {
        t: Some(10),
        ..Default::default()
    };
    let _ = docker.stop_container(id, Some(stop)).await;
    docker
        .remove_container(id, force())
        .await
        .map_err(|e| format!("cannot remove the old container {id}: {e}"))
}

/// Step 3 after a failed gate: the new container goes; the old one was never touched.
pub async fn discard(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Option<Switched>, String> {
    let start = Instant::now();
    let (_, next) = current_and_next(docker, project, name).await?;
    let mut last = None;
    for c in next {
        docker
            .remove_container(&c.id, force())
            .await
            .map_err(|e| format!("cannot remove {}: {e}", c.name))?;
        last = Some(Switched {
            name: c.name,
            id: short_id(&c.id),
            ms: 0,
        });
    }
    Ok(last.map(|s| Switched {
        ms: start.elapsed().as_millis() as u64,
        ..s
    }))
}
