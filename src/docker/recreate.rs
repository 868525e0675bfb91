//! Recreating a container on a new image, keeping everything the operator configured.
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
//!
//! Order matters for availability and for rollback: the old container is renamed aside, the
//! new one is *created* under the original name, and only then is the old one stopped and
//! the new one started. Any failure before the new one runs puts the old one back.

use std::collections::HashMap;
use std::time::Instant;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, NetworkConnectRequest,
    NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, RenameContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use serde::Serialize;

use super::find;

/// The label compose v2 compares to decide whether a container runs the current image.
pub const LABEL_IMAGE: &str = "com.docker.compose.image";

/// The `config-hash` compose v1 would give this container's service now, asked of compose
/// itself (`docker-compose config --hash=SERVICE`, in the project's directory with its
/// files). v1 folds the image id into that hash, so after a rebuild the old hash would make
/// the next `docker-compose up -d` recreate the container again. `None` for containers not
/// made by compose v1.
///
/// Each docker-compose call is a Python start-up (~1 s of CPU). A batch rebuild recreates
/// many services of one project at once, so requests are **batched**: while one call runs,
/// the services asking meanwhile queue up and the next call (`--hash=a,b,c`) answers them
/// all. The hash is computed after the request was made, so it sees the new image.
pub async fn compose_v1_hash(labels: &HashMap<String, String>) -> Option<Result<String, String>> {
    let version = labels.get("com.docker.compose.version")?;
    if !version.starts_with("1.") {
        return None;
    }
    let key = HashKey {
        project: labels.get("com.docker.compose.project")?.clone(),
        dir: labels
            .get("com.docker.compose.project.working_dir")?
            .clone(),
        files: labels
            .get("com.docker.compose.project.config_files")?
            .clone(),
    };
    let service = labels.get("com.docker.compose.service")?.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let start_worker = {
        let mut batches = crate::util::lock(&HASH_BATCHES);
        let batch = batches.entry(key.clone()).or_default();
        batch.waiting.push((service, tx));
        !std::mem::replace(&mut batch.worker, true)
    };
    if start_worker {
        tokio::spawn(hash_worker(key));
    }
    Some(
        rx.await
            .unwrap_or_else(|_| Err("the config-hash worker stopped".to_string())),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HashKey {
    project: String,
    dir: String,
    files: String,
}

type HashReply = tokio::sync::oneshot::Sender<Result<String, String>>;

#[derive(Default)]
struct HashBatch {
    waiting: Vec<(String, HashReply)>,
    /// A worker task is answering this project's requests.
    worker: bool,
}

static HASH_BATCHES: std::sync::LazyLock<std::sync::Mutex<HashMap<HashKey, HashBatch>>> =
    std::sync::LazyLock::new(Default::default);

/// Answers queued requests for one project, one docker-compose call per batch, until none
/// are left.
async fn hash_worker(key: HashKey) {
    loop {
        let batch = {
            let mut batches = crate::util::lock(&HASH_BATCHES);
            let Some(b) = batches.get_mut(&key) else {
                return;
            };
            if b.waiting.is_empty() {
                batches.remove(&key);
                return;
            }
            std::mem::take(&mut b.waiting)
        };
        let mut services: Vec<&str> = batch.iter().map(|(s, _)| s.as_str()).collect();
        services.sort_unstable();
        services.dedup();
        let hashes = compose_hashes(&key, &services).await;
        for (service, reply) in batch {
            let r = match &hashes {
                Ok(map) => map.get(&service).cloned().ok_or_else(|| {
                    format!("docker-compose config --hash printed no hash for {service}")
                }),
                Err(e) => Err(e.clone()),
            };
            let _ = reply.send(r);
        }
    }
}

/// One `docker-compose config --hash=a,b,...` call: service → hash.
async fn compose_hashes(
    key: &HashKey,
    services: &[&str],
) -> Result<HashMap<String, String>, String> {
    let list = services.join(",");
    let mut cmd = tokio::process::Command::new("docker-compose");
    cmd.arg("-p").arg(&key.project);
    for f in key.files.split(',').filter(|f| !f.is_empty()) {
        cmd.arg("-f").arg(f);
    }
    cmd.arg("config")
        .arg(format!("--hash={list}"))
        .current_dir(&key.dir)
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run docker-compose to compute the config hash: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker-compose config --hash={list} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (svc, hash) = l.trim().split_once(' ')?;
            Some((svc.to_string(), hash.trim().to_string()))
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct Recreated {
    pub name: String,
    pub old_id: String,
    pub new_id: String,
    pub old_image_id: String,
    pub new_image_id: String,
    pub ms: u64,
    /// Things the operator should know (e.g. the compose hash could not be updated).
    pub notes: Vec<String>,
}

/// `value`, unless the old image baked in exactly that (then `None`, so the new image's own
/// default applies).
fn unless_baked<T: PartialEq>(value: Option<T>, baked: &Option<T>) -> Option<T> {
    if value.is_some() && value == *baked {
        None
    } else {
        value
    }
}

/// The create body for a copy of `old` running `image` (whose id is `image_id`).
pub fn clone_config(
    old: &ContainerInspectResponse,
    old_image: Option<&bollard::models::ImageConfig>,
    image: &str,
    image_id: &str,
) -> (ContainerCreateBody, Vec<(String, EndpointSettings)>) {
    let cfg = old.config.clone().unwrap_or_default();
    let empty = bollard::models::ImageConfig::default();
    let baked = old_image.unwrap_or(&empty);
    let old_id = old.id.clone().unwrap_or_default();
    let short = &old_id[..old_id.len().min(12)];

    let env = cfg.env.map(|env| {
        let baked_env = baked.env.clone().unwrap_or_default();
        env.into_iter()
            .filter(|e| !baked_env.contains(e))
            .collect::<Vec<_>>()
    });
    let labels = cfg.labels.map(|labels| {
        let baked_labels = baked.labels.clone().unwrap_or_default();
        let mut kept: HashMap<String, String> = labels
            .into_iter()
            .filter(|(k, v)| k.starts_with("com.docker.compose.") || baked_labels.get(k) != Some(v))
            .collect();
        kept.insert(LABEL_IMAGE.to_string(), image_id.to_string());
        kept
    });
    let hostname = cfg.hostname.filter(|h| h != short && !h.is_empty());

    let mut endpoints: Vec<(String, EndpointSettings)> = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, ep)| {
            let aliases = ep.aliases.map(|a| {
                a.into_iter()
                    .filter(|x| x != short && *x != old_id)
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
    // The network the container was created on goes in the create call; the others (an API
    // 1.41 engine takes only one there) are connected afterwards.
    let mode = old
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    endpoints.sort_by_key(|(n, _)| *n != mode);
    let first = endpoints
        .first()
        .cloned()
        .filter(|(n, _)| !matches!(n.as_str(), "bridge" | "host" | "none") || *n == mode);
    let networking_config = first
        .as_ref()
        .filter(|(n, _)| !matches!(n.as_str(), "bridge" | "host" | "none"))
        .map(|(n, ep)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.clone(), ep.clone())])),
        });
    let rest = endpoints
        .into_iter()
        .skip(usize::from(first.is_some()))
        .filter(|(n, _)| !matches!(n.as_str(), "bridge" | "host" | "none"))
        .collect();

    let body = ContainerCreateBody {
        hostname,
        domainname: cfg.domainname,
        user: unless_baked(cfg.user, &baked.user),
        attach_stdin: cfg.attach_stdin,
        attach_stdout: cfg.attach_stdout,
        attach_stderr: cfg.attach_stderr,
        exposed_ports: unless_baked(cfg.exposed_ports, &baked.exposed_ports),
        tty: cfg.tty,
        open_stdin: cfg.open_stdin,
        stdin_once: cfg.stdin_once,
        env,
        cmd: unless_baked(cfg.cmd, &baked.cmd),
        healthcheck: unless_baked(cfg.healthcheck, &baked.healthcheck),
        image: Some(image.to_string()),
        volumes: unless_baked(cfg.volumes, &baked.volumes),
        working_dir: unless_baked(cfg.working_dir, &baked.working_dir),
        entrypoint: unless_baked(cfg.entrypoint, &baked.entrypoint),
        labels,
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
    let cname = super::container_name(&old);
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

/// Recreates the container behind `name` on `image` (default: the image name it was created
/// with, which after a build points at the new image).
pub async fn recreate(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
    image: Option<&str>,
) -> Result<Recreated, String> {
    let start = Instant::now();
    let Plan {
        old_id,
        cname,
        old_image_id,
        new_image_id,
        body,
        extra_networks,
        notes,
        ..
    } = plan(docker, project, name, image).await?;
    let aside = format!("{cname}{ASIDE}{}", &old_id[..old_id.len().min(12)]);
    rename(docker, &old_id, &aside)
        .await
        .map_err(|e| format!("cannot rename {cname} aside: {e}"))?;
    let put_back = || async {
        let _ = rename(docker, &old_id, &cname).await;
    };
    let created = match docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(cname.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
    {
        Ok(c) => c,
        Err(e) => {
            put_back().await;
            return Err(format!("cannot create the new {cname}: {e}"));
        }
    };
    let new_id = created.id;
    let undo = |why: String| async {
        let _ = docker.remove_container(&new_id, force()).await;
        put_back().await;
        let _ = docker
            .start_container(&old_id, None::<StartContainerOptions>)
            .await;
        Err::<Recreated, String>(why)
    };
    if let Err(e) = connect_networks(docker, &new_id, extra_networks).await {
        return undo(format!("{cname}: {e}")).await;
    }
    let _ = docker
        .stop_container(
            &old_id,
            Some(StopContainerOptions {
                t: Some(10),
                ..Default::default()
            }),
        )
        .await;
    if let Err(e) = docker
        .start_container(&new_id, None::<StartContainerOptions>)
        .await
    {
        return undo(format!(
            "cannot start the new {cname} (the old one is back): {e}"
        ))
        .await;
    }
    let _ = docker.remove_container(&old_id, force()).await;
    Ok(Recreated {
        name: cname,
        old_id: old_id.chars().take(12).collect(),
        new_id: new_id.chars().take(12).collect(),
        old_image_id,
        new_image_id,
        ms: start.elapsed().as_millis() as u64,
        notes,
    })
}

/// The infix of the name an old container gets while [`recreate`] replaces it.
pub const ASIDE: &str = "_dockhand_old_";

/// The name a container set aside by [`recreate`] had before (`None` if it is not one).
pub fn original_name(aside: &str) -> Option<&str> {
    aside.rfind(ASIDE).map(|i| &aside[..i])
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    /// "none" (nothing was interrupted), "finished" (the new container had started: the
    /// old one is removed) or "restored" (the old container is back under its name).
    pub action: String,
    pub detail: String,
}

/// Completes or undoes a [`recreate`] that was interrupted (SIGKILL, power loss, a
/// cancelled call): a container renamed aside means the swap never finished.
///
/// * the new container exists and has run → the swap happened; remove the old one;
/// * the new container was only created, or there is none → remove it, rename the old one
///   back and start it.
///
/// Idempotent, and safe to run before every step that touches the container.
pub async fn recover(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Recovered, String> {
    // A start-first deploy's new container is start_first::recover's to mend.
    let all = super::containers_of(docker, project, name)
        .await?
        .into_iter()
        .filter(|c| !c.name.contains(super::start_first::NEXT));
    let (aside, current): (Vec<_>, Vec<_>) = all.partition(|c| c.name.contains(ASIDE));
    let Some(old) = aside.first() else {
        return Ok(Recovered {
            action: "none".into(),
            detail: String::new(),
        });
    };
    let remove = |id: String| async move {
        docker
            .remove_container(&id, force())
            .await
            .map_err(|e| format!("cannot remove container {id}: {e}"))
    };
    let new_has_run = current.iter().any(|c| c.state != "created");
    if new_has_run {
        for a in &aside {
            remove(a.id.clone()).await?;
        }
        return Ok(Recovered {
            action: "finished".into(),
            detail: format!(
                "an interrupted recreate had started the new container; removed the old one ({})",
                old.name
            ),
        });
    }
    for c in &current {
        remove(c.id.clone()).await?;
    }
    let original = original_name(&old.name).unwrap_or(&old.name).to_string();
    rename(docker, &old.id, &original)
        .await
        .map_err(|e| format!("cannot rename {} back to {original}: {e}", old.name))?;
    if old.state != "running" {
        docker
            .start_container(&old.id, None::<StartContainerOptions>)
            .await
            .map_err(|e| format!("cannot start the restored {original}: {e}"))?;
    }
    for a in aside.iter().skip(1) {
        remove(a.id.clone()).await?;
    }
    Ok(Recovered {
        action: "restored".into(),
        detail: format!(
            "an interrupted recreate had not started the new container; {original} is back on its old image"
        ),
    })
}
