//! The new container's configuration, shared by both deploy orders (stop-first
//! [`recreate`](super::recreate) and [`start_first`](super::start_first)).
//!
//! This is Watchtower's approach, adapted to compose: the new container gets the old one's
//! inspected configuration — ports, volumes, restart policy, networks and aliases, user env,
//! compose labels — *minus* what the old image baked in (its env defaults, cmd, entrypoint,
//! healthcheck, labels), so the new image's own defaults apply, and minus what Docker
//! generated (hostname = old id, MAC and IP addresses). The compose labels are kept and
//! brought up to date — `com.docker.compose.image` (compose v2) and, for containers made by
//! compose v1, the `config-hash` compose computes for the new image — so `docker compose up
//! -d` afterwards sees the container as up to date (when it runs the image the compose file
//! names).

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, ImageConfig,
    NetworkConnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{RemoveContainerOptions, RenameContainerOptions};

use super::compose_hash::compose_v1_hash;
use super::{container_name, find};

/// The label compose v2 compares to decide whether a container runs the current image.
pub const LABEL_IMAGE: &str = "com.docker.compose.image";

/// `value`, unless the old image baked in exactly that (then `None`, so the new image's own
/// default applies).
fn unless_baked<T: PartialEq>(value: Option<T>, baked: &Option<T>) -> Option<T> {
    if value.is_some() && value == *baked {
        None
    } else {
        value
    }
}

/// The old container's user env: what it set on top of what its image baked in.
fn user_env(env: Option<Vec<String>>, baked: &ImageConfig) -> Option<Vec<String>> {
    env.map(|env| {
        let baked_env = baked.env.clone().unwrap_or_default();
        env.into_iter().filter(|e| !baked_env.contains(e)).collect()
    })
}

/// The labels to keep: compose's own (the image label brought up to date) and those the old
/// image did not bake in.
fn kept_labels(
    labels: Option<HashMap<String, String>>,
    baked: &ImageConfig,
    image_id: &str,
) -> Option<HashMap<String, String>> {
    labels.map(|labels| {
        let baked_labels = baked.labels.clone().unwrap_or_default();
        let mut kept: HashMap<String, String> = labels
            .into_iter()
            .filter(|(k, v)| k.starts_with("com.docker.compose.") || baked_labels.get(k) != Some(v))
            .collect();
        kept.insert(LABEL_IMAGE.to_string(), image_id.to_string());
        kept
    })
}

/// Whether `n` is one of the engine's built-in networks.
fn builtin_network(n: &str) -> bool {
    matches!(n, "bridge" | "host" | "none")
}

/// The old container's networks with their aliases (less the ones Docker generated from the
/// old id): the one it was created on for the create call, the others to connect afterwards
/// (an API 1.41 engine takes only one in the create call).
fn networks(
    old: &ContainerInspectResponse,
) -> (Option<NetworkingConfig>, Vec<(String, EndpointSettings)>) {
    let old_id = old.id.clone().unwrap_or_default();
    let short = super::names::short_id(&old_id);
    let mut endpoints: Vec<(String, EndpointSettings)> = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, ep)| {
            let aliases = ep.aliases.map(|a| {
                a.into_iter()
                    .filter(|x| *x != short && *x != old_id)
                    .collect()
            });
            let ep = EndpointSettings {
                aliases,
                links: ep.links,
                ipam_config: ep.ipam_config,
                driver_opts: ep.driver_opts,
                ..Default::default()
            };
            (name, ep)
        })
        .collect();
    let mode = old
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    endpoints.sort_by_key(|(n, _)| *n != mode);
    let first = endpoints
        .first()
        .cloned()
        .filter(|(n, _)| !builtin_network(n) || *n == mode);
    let networking_config = first
        .as_ref()
        .filter(|(n, _)| !builtin_network(n))
        .map(|(n, ep)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.clone(), ep.clone())])),
        });
    let rest = endpoints
        .into_iter()
        .skip(usize::from(first.is_some()))
        .filter(|(n, _)| !builtin_network(n))
        .collect();
    (networking_config, rest)
}

/// A container's service aliases: user network → the aliases it answers to there (compose's
/// service name and the like, less what Docker generated from the container id).
pub type Aliases = BTreeMap<String, Vec<String>>;

/// The service aliases of `old` on its user networks, as a copy of it would get them.
pub fn service_aliases(old: &ContainerInspectResponse) -> Aliases {
    let (first, rest) = networks(old);
    first
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default()
        .into_iter()
        .chain(rest)
        .map(|(net, ep)| (net, ep.aliases.unwrap_or_default()))
        .collect()
}

/// Takes the aliases out of a create body and its extra networks, so the new container joins
/// its networks under its own name only (start-first: the aliases come on promotion).
pub fn strip_aliases(body: &mut ContainerCreateBody, extra: &mut [(String, EndpointSettings)]) {
    let first = body
        .networking_config
        .as_mut()
        .and_then(|n| n.endpoints_config.as_mut());
    for ep in first.into_iter().flat_map(|m| m.values_mut()) {
        ep.aliases = None;
    }
    for (_, ep) in extra.iter_mut() {
        ep.aliases = None;
    }
}

/// The create body for a copy of `old` running `image` (whose id is `image_id`).
pub fn clone_config(
    old: &ContainerInspectResponse,
    old_image: Option<&ImageConfig>,
    image: &str,
    image_id: &str,
) -> (ContainerCreateBody, Vec<(String, EndpointSettings)>) {
    let cfg = old.config.clone().unwrap_or_default();
    let empty = ImageConfig::default();
    let baked = old_image.unwrap_or(&empty);
    let short = super::names::short_id(old.id.as_deref().unwrap_or(""));
    let (networking_config, rest) = networks(old);
    let body = ContainerCreateBody {
        hostname: cfg.hostname.filter(|h| *h != short && !h.is_empty()),
        domainname: cfg.domainname,
        user: unless_baked(cfg.user, &baked.user),
        attach_stdin: cfg.attach_stdin,
        attach_stdout: cfg.attach_stdout,
        attach_stderr: cfg.attach_stderr,
        exposed_ports: unless_baked(cfg.exposed_ports, &baked.exposed_ports),
        tty: cfg.tty,
        open_stdin: cfg.open_stdin,
        stdin_once: cfg.stdin_once,
        env: user_env(cfg.env, baked),
        cmd: unless_baked(cfg.cmd, &baked.cmd),
        healthcheck: unless_baked(cfg.healthcheck, &baked.healthcheck),
        image: Some(image.to_string()),
        volumes: unless_baked(cfg.volumes, &baked.volumes),
        working_dir: unless_baked(cfg.working_dir, &baked.working_dir),
        entrypoint: unless_baked(cfg.entrypoint, &baked.entrypoint),
        labels: kept_labels(cfg.labels, baked, image_id),
        stop_signal: unless_baked(cfg.stop_signal, &baked.stop_signal),
        stop_timeout: cfg.stop_timeout,
        host_config: old.host_config.clone(),
        networking_config,
        ..Default::default()
    };
    (body, rest)
}

/// What both deploy orders need before they create the new container: the old one, the
/// image to run, and the new container's configuration.
pub struct Plan {
    pub old: ContainerInspectResponse,
    pub old_id: String,
    /// The old container's name (the compose name).
    pub cname: String,
    pub old_image_id: String,
    pub new_image_id: String,
    pub body: ContainerCreateBody,
    /// Networks to connect after create (an API 1.41 engine takes one in the create call).
    pub extra_networks: Vec<(String, EndpointSettings)>,
    pub notes: Vec<String>,
}

/// Looks up `name` and prepares its replacement on `image` (default: the image name it was
/// created with, which after a build points at the new image): the old configuration, the
/// new image id in `com.docker.compose.image`, and compose v1's config hash for it.
pub async fn plan(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
    image: Option<&str>,
) -> Result<Plan, String> {
    let old = find(docker, project, name).await?;
    let old_id = old.id.clone().unwrap_or_default();
    let cname = container_name(&old);
    let image = image
        .map(String::from)
        .or_else(|| old.config.as_ref().and_then(|c| c.image.clone()))
        .ok_or_else(|| {
            format!("{cname} has no image name to recreate from; pass #{{ image: \"name:tag\" }}")
        })?;
    let new_image = docker
        .inspect_image(&image)
        .await
        .map_err(|e| format!("cannot recreate {cname}: image {image}: {e}"))?;
    let new_image_id = new_image.id.clone().unwrap_or_default();
    let old_image_id = old.image.clone().unwrap_or_default();
    let old_image_cfg = docker
        .inspect_image(&old_image_id)
        .await
        .ok()
        .and_then(|i| i.config);
    let (mut body, extra_networks) =
        clone_config(&old, old_image_cfg.as_ref(), &image, &new_image_id);
    let mut notes = Vec::new();
    if let Some(labels) = body.labels.as_mut() {
        match compose_v1_hash(labels).await {
            Some(Ok(hash)) => {
                labels.insert("com.docker.compose.config-hash".to_string(), hash);
            }
            Some(Err(why)) => notes.push(format!(
                "{why}; `docker-compose up -d` may recreate {cname} once more"
            )),
            None => {}
        }
    }
    Ok(Plan {
        old,
        old_id,
        cname,
        old_image_id,
        new_image_id,
        body,
        extra_networks,
        notes,
    })
}

/// Connects a new container to the networks the create call could not take.
pub async fn connect_networks(
    docker: &Docker,
    id: &str,
    networks: Vec<(String, EndpointSettings)>,
) -> Result<(), String> {
    for (net, ep) in networks {
        let req = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(ep),
        };
        docker
            .connect_network(&net, req)
            .await
            .map_err(|e| format!("cannot connect the new container to network {net}: {e}"))?;
    }
    Ok(())
}

/// Renames a container, trying again a few times: while a container restarts (a crash loop,
/// the very thing a rollback replaces) the engine can answer 404 "sandbox ... not found" for
/// a moment. Up to 5 tries over about 3 s; the last error is returned.
pub async fn rename(docker: &Docker, id: &str, name: &str) -> Result<(), bollard::errors::Error> {
    let mut tries = 0u64;
    loop {
        let opts = RenameContainerOptions {
            name: name.to_string(),
        };
        match docker.rename_container(id, opts).await {
            Ok(()) => return Ok(()),
            Err(e) if tries >= 4 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
            }
        }
    }
}

/// Force-removal, for containers dockhand made or replaced.
pub fn force() -> Option<RemoveContainerOptions> {
    Some(RemoveContainerOptions {
        force: true,
        ..Default::default()
    })
}
