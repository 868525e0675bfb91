//! Zero-downtime deploys: **start-first**, Swarm's name for it.
//!
//! [`recreate`](super::recreate::recreate) is stop-first, like `docker compose up -d`: the old
//! container stops before the new one starts, so the service is unreachable until the new one
//! answers. Start-first turns the order around, in three steps the rebuild drives:
//!
//! 1. [`start_next`]: the new container is created *next to* the old one, under a temporary
//!    name (`<name>_dockhand_next_<old id>`), with the old one's configuration, on the same
//!    networks but **without the service's aliases** (only its own name), and started. Had it
//!    joined with the aliases, the engine's DNS would hand out its address at once, seconds
//!    before a real service listens, and clients would hang or be refused. The aliases are
//!    kept in a label ([`ALIASES_LABEL`](super::names::ALIASES_LABEL)) for step 3.
//! 2. The caller gates the new container (health, probe, settle, logs) by its own name.
//! 3. [`promote`] on success: the new container (listening by now) is reconnected to each
//!    network *with* the aliases, so DNS names both; the old one leaves its networks, so DNS
//!    stops naming it; a short drain; the old one is stopped and removed (stopping it while
//!    DNS still named it refused a request); the new one takes the compose name — with the
//!    labels `docker compose up -d` compares, so a later `up -d` recreates nothing. Or
//!    [`discard`] on failure: the new container is removed and the old one never stopped.
//!
//! **What is left: one request per switch, at most, and the engine's.** Engine 20.10's
//! embedded DNS drops a leaving endpoint's name some 30–40 ms *after* its address stopped
//! answering (measured with a busybox client resolving and requesting in a loop while a
//! container with the alias left its network: the address dead at uptime 541.90, still
//! named at 541.93, gone at 541.94). A client that resolves in that window sends its SYN to
//! a dead address and times out; one switch in the downtime bench (four services, a request
//! every 50 ms each) usually catches none and sometimes one. No order of connect,
//! disconnect and stop closes that window from outside the engine: it is the engine's
//! teardown order, and every release has it. Read in moby's source (v20.10.24, v23 to
//! v28.5 and master): a disconnect or a stop runs `Endpoint.Leave` and then
//! `Endpoint.Delete`; `sbLeave` takes the interface out of the container's namespace
//! (`sb.clearNetworkResources` → `releaseOSSboxResources`), and only `Delete` removes the
//! name from the network's DNS records (`updateSvcRecord(ep, false)`: in 20.10 later still,
//! on a goroutine, through `unWatchSvcRecord` → `watchLoop` → `processEndpointDelete`; in 25.0
//! and later directly, moby PR #46668, a shorter window but the same order). The one call
//! that drops a name before its address, `Sandbox.DisableService`, is the Swarm executor's
//! (`DeactivateContainerServiceBinding`), is not in the Engine API and does nothing on a
//! local network. A service that must not lose that request goes behind a proxy that
//! retries (the same advice as for published ports), or runs on Swarm.
//!
//! A crash at any point is mended by [`recover`](super::recover::recover) without the
//! journal, from what the engine shows: a temporary container without the aliases next to a
//! running old one was never promoted (remove it; the old one kept serving); one that has
//! the aliases (or lost a network mid-reconnect), or next to a stopped or missing old one,
//! was being promoted after a passed gate (finish it, if it is still healthy).
//!
//! Not for a container that publishes host ports (two containers cannot bind one port: put
//! the service behind something that can switch — a reverse proxy such as Traefik or nginx on
//! the compose network, which follows DNS — and publish the proxy), nor for a writer or a
//! stateful service that must not run twice (the config refuses both).

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerInspectResponse, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, StartContainerOptions, StopContainerOptions,
};
use serde::Serialize;

use super::names::{self, ALIASES_LABEL, is_aside, is_next, promoted_name, short_id};
use super::replacement::{
    Aliases, connect_networks, force, plan, rename, service_aliases, strip_aliases,
};
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
    let mut p = plan(docker, project, name, image).await?;
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
    let aliases = serde_json::to_string(&service_aliases(&p.old)).unwrap_or_default();
    p.body
        .labels
        .get_or_insert_default()
        .insert(ALIASES_LABEL.to_string(), aliases);
    strip_aliases(&mut p.body, &mut p.extra_networks);
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

/// How long the old container, off its networks, keeps running before it is stopped: what
/// it had accepted before the switch finishes, and nothing can reach it any more by name.
const DRAIN: Duration = Duration::from_millis(500);

/// Step 3 after a passed gate: the new container takes the service's aliases, the old one
/// leaves its networks, drains, stops and goes; the new one takes the compose name.
/// Idempotent: it finishes a promotion that was interrupted at any point.
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
    let aliases = aliases_for(docker, &next_id, &current).await;
    take_aliases(docker, &next_id, &aliases)
        .await
        .map_err(|e| format!("{next_name}: {e}"))?;
    let mut left = false;
    for c in &current {
        left |= leave_networks(docker, &c.id).await;
    }
    if left {
        tokio::time::sleep(DRAIN).await;
    }
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

/// The service aliases the start-first container `next_id` is to take: from its label, or
/// (a container started before the label existed) from a current container's networks.
pub(super) async fn aliases_for(docker: &Docker, next_id: &str, current: &[Container]) -> Aliases {
    let labelled = docker
        .inspect_container(next_id, None)
        .await
        .ok()
        .and_then(|c| c.config?.labels?.remove(ALIASES_LABEL))
        .and_then(|l| serde_json::from_str::<Aliases>(&l).ok());
    if let Some(a) = labelled {
        return a;
    }
    for c in current {
        if let Ok(old) = docker.inspect_container(&c.id, None).await {
            return service_aliases(&old);
        }
    }
    Aliases::new()
}

/// The user networks `c` is on, with its endpoint there.
fn endpoints(c: &ContainerInspectResponse) -> Endpoints {
    c.network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| !matches!(n.as_str(), "bridge" | "host" | "none"))
        .collect()
}

type Endpoints = std::collections::BTreeMap<String, EndpointSettings>;

/// Whether a promotion of the start-first container `next_id` had begun: it answers to one
/// of the service's aliases, or (running, so [`start_next`] had connected it everywhere) it
/// is missing one of the networks, disconnected to be reconnected with the aliases.
pub(super) async fn promotion_begun(
    docker: &Docker,
    next_id: &str,
    aliases: &Aliases,
) -> Result<bool, String> {
    let c = docker
        .inspect_container(next_id, None)
        .await
        .map_err(|e| format!("cannot inspect {next_id}: {e}"))?;
    let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    let on = endpoints(&c);
    Ok(aliases.iter().any(|(net, want)| match on.get(net) {
        None => running,
        Some(ep) => {
            let have = ep.aliases.clone().unwrap_or_default();
            !want.is_empty() && want.iter().all(|a| have.contains(a))
        }
    }))
}

/// Connects container `id` to each network of `aliases` with those aliases (disconnecting it
/// first where it is on the network without them; the engine takes aliases only on connect).
/// Where it has them already, nothing changes: a promotion and a recovery both call it.
pub(super) async fn take_aliases(
    docker: &Docker,
    id: &str,
    aliases: &Aliases,
) -> Result<(), String> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| format!("cannot inspect {id}: {e}"))?;
    let on = endpoints(&c);
    for (net, want) in aliases {
        let mut ep = EndpointSettings::default();
        if let Some(have) = on.get(net) {
            let got = have.aliases.clone().unwrap_or_default();
            if want.iter().all(|a| got.contains(a)) {
                continue;
            }
            disconnect(docker, net, id)
                .await
                .map_err(|e| format!("cannot disconnect from network {net}: {e}"))?;
            ep.links = have.links.clone();
            ep.ipam_config = have.ipam_config.clone();
            ep.driver_opts = have.driver_opts.clone();
        }
        ep.aliases = Some(want.clone());
        let req = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(ep),
        };
        docker
            .connect_network(net, req)
            .await
            .map_err(|e| format!("cannot connect to network {net} with its aliases: {e}"))?;
    }
    Ok(())
}

/// Takes container `id` off its user networks, so the engine's DNS stops handing out its
/// address. Whether it was on any.
async fn leave_networks(docker: &Docker, id: &str) -> bool {
    let Ok(c) = docker.inspect_container(id, None).await else {
        return false;
    };
    let nets = endpoints(&c);
    for net in nets.keys() {
        let _ = disconnect(docker, net, id).await;
    }
    !nets.is_empty()
}

/// Takes container `id` off network `net` (forced: it is running).
async fn disconnect(docker: &Docker, net: &str, id: &str) -> Result<(), bollard::errors::Error> {
    let req = NetworkDisconnectRequest {
        container: id.to_string(),
        force: Some(true),
    };
    docker.disconnect_network(net, req).await
}

/// Stops the old container (gracefully) and removes it; it is off its networks by now.
async fn retire(docker: &Docker, id: &str) -> Result<(), String> {
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
