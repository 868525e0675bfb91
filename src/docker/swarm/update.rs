//! Changing a service's image, rolling it back, and waiting for Swarm to finish either.
//!
//! Swarm does an update in the background and writes how it goes into the service's
//! `UpdateStatus` (updating → completed, or → paused / rollback_started → rollback_completed
//! when a new task fails and FailureAction says so). [`wait_update`] follows the service's
//! events and reads that status on each one — with a re-read every second as a safety net,
//! since Swarm does not promise an event for every status change — until a final state
//! belongs to *this* update: one whose start time differs from the update before it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
};
use bollard::query_parameters::{EventsOptions, UpdateServiceOptions};
use futures_util::StreamExt;
use serde::Serialize;

use super::{ServiceInfo, find_service, swarm_error};

/// How Swarm rolls the new image out (its UpdateConfig).
#[derive(Debug, Clone)]
pub struct UpdateSettings {
    /// Tasks at once (0: all).
    pub parallelism: i64,
    pub delay: Duration,
    /// How long Swarm watches each new task before it counts as updated.
    pub monitor: Duration,
    /// "stop-first" or "start-first".
    pub order: String,
    /// "rollback", "pause" or "continue".
    pub failure_action: String,
}

/// What a wait saw: Swarm's final state of the update (or "timeout") and its message.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateWait {
    pub state: String,
    pub message: String,
    pub ms: u64,
    /// Swarm's messages on the way, oldest first, when they differ from the last one
    /// ("update rolled back due to failure or early termination of task …" is only said
    /// while the rollback runs; the final message is "rollback completed").
    pub said: Vec<String>,
    /// The service as it was when the wait ended.
    pub service: ServiceInfo,
}

/// A changed spec, or why not.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    /// The spec version before the change.
    pub version_before: u64,
    /// The previous update's start, for [`wait_update`] (`None`: never updated).
    pub started_before: Option<String>,
    /// The image before.
    pub image_before: String,
    /// False when the service already ran this image (Swarm would do nothing).
    pub changed: bool,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn update_config(s: &UpdateSettings) -> Result<ServiceSpecUpdateConfig, String> {
    let order = match s.order.as_str() {
        "start-first" => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        "stop-first" => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
        o => return Err(format!("order '{o}': write stop-first or start-first")),
    };
    let action = match s.failure_action.as_str() {
        "rollback" => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
        "pause" => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
        "continue" => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
        a => {
            return Err(format!(
                "failure_action '{a}': write rollback, pause or continue"
            ));
        }
    };
    Ok(ServiceSpecUpdateConfig {
        parallelism: Some(s.parallelism),
        delay: Some(nanos(s.delay)),
        failure_action: Some(action),
        monitor: Some(nanos(s.monitor)),
        max_failure_ratio: Some(0.0),
        order: Some(order),
    })
}

/// A rollback goes as the update went, and stops (pauses) if the old image fails too:
/// rolling "back" onto something else would hide the problem.
fn rollback_config(s: &UpdateSettings) -> ServiceSpecRollbackConfig {
    ServiceSpecRollbackConfig {
        parallelism: Some(s.parallelism),
        delay: Some(0),
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor: Some(nanos(s.monitor)),
        max_failure_ratio: Some(0.0),
        order: Some(if s.order == "start-first" {
            ServiceSpecRollbackConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
        }),
    }
}

/// Points service `name` (of `stack`) at `image` with the update settings `s`. Swarm
/// refuses an update of a stale spec version ("update out of sequence"): read again and
/// retry, a few times, when something else updated the service in between.
pub async fn update_image(
    docker: &Docker,
    stack: Option<&str>,
    name: &str,
    image: &str,
    s: &UpdateSettings,
) -> Result<Updated, String> {
    let config = update_config(s)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let svc = find_service(docker, stack, name).await?;
        let info = ServiceInfo::from(&svc);
        let before = Updated {
            version_before: info.version,
            started_before: info.update_started.clone(),
            image_before: info.image.clone(),
            changed: info.image != image,
        };
        if !before.changed {
            return Ok(before);
        }
        let mut spec = svc.spec.clone().unwrap_or_default();
        let task = spec.task_template.get_or_insert_with(Default::default);
        let cs = task.container_spec.get_or_insert_with(Default::default);
        cs.image = Some(image.to_string());
        spec.update_config = Some(config.clone());
        spec.rollback_config = Some(rollback_config(s));
        let opts = UpdateServiceOptions {
            version: i32::try_from(info.version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        match docker.update_service(&info.id, spec, opts, None).await {
            Ok(_) => return Ok(before),
            Err(e) if attempt < 3 && e.to_string().contains("out of sequence") => continue,
            Err(e) => {
                return Err(swarm_error(
                    &format!("cannot update service {} to {image}", info.name),
                    &e,
                ));
            }
        }
    }
}

/// Asks Swarm to put service `name`'s previous spec back (`docker service rollback`).
pub async fn rollback(docker: &Docker, stack: Option<&str>, name: &str) -> Result<Updated, String> {
    let svc = find_service(docker, stack, name).await?;
    let info = ServiceInfo::from(&svc);
    let opts = UpdateServiceOptions {
        version: i32::try_from(info.version).unwrap_or(i32::MAX),
        rollback: Some("previous".into()),
        registry_auth_from: "previous-spec".into(),
    };
    docker
        .update_service(&info.id, svc.spec.clone().unwrap_or_default(), opts, None)
        .await
        .map_err(|e| swarm_error(&format!("cannot roll back service {}", info.name), &e))?;
    Ok(Updated {
        version_before: info.version,
        started_before: info.update_started.clone(),
        image_before: info.image,
        changed: true,
    })
}

/// Whether `state` ends an update (or a rollback).
fn is_final(state: &str) -> bool {
    matches!(
        state,
        "completed" | "paused" | "rollback_completed" | "rollback_paused"
    )
}

/// Waits until the update that started after `started_before` reaches a final state, or
/// `timeout`. Follows the service's events; see the module's doc for the re-read.
pub async fn wait_update(
    docker: &Docker,
    stack: Option<&str>,
    name: &str,
    started_before: Option<&str>,
    timeout: Duration,
) -> Result<UpdateWait, String> {
    let t0 = Instant::now();
    let first = ServiceInfo::from(&find_service(docker, stack, name).await?);
    let filters = HashMap::from([
        ("type".to_string(), vec!["service".to_string()]),
        ("service".to_string(), vec![first.id.clone()]),
    ]);
    let mut events = docker.events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }));
    let mut said: Vec<String> = Vec::new();
    loop {
        let info = ServiceInfo::from(&find_service(docker, stack, name).await?);
        let ours = info.update_started.as_deref() != started_before;
        if ours && is_final(&info.update_state) {
            said.retain(|m| *m != info.update_message);
            return Ok(UpdateWait {
                state: info.update_state.clone(),
                message: info.update_message.clone(),
                ms: t0.elapsed().as_millis() as u64,
                said,
                service: info,
            });
        }
        // What Swarm says while it updates is "update in progress"; only what it says when it
        // turns (a rollback's cause) is worth keeping.
        if ours
            && info.update_state != "updating"
            && !info.update_message.is_empty()
            && !said.contains(&info.update_message)
        {
            said.push(info.update_message.clone());
        }
        let left = timeout.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return Ok(UpdateWait {
                state: "timeout".into(),
                message: format!(
                    "Swarm's update is still '{}' after {} ({})",
                    info.update_state,
                    crate::util::human::duration(timeout),
                    info.update_message
                ),
                ms: t0.elapsed().as_millis() as u64,
                said,
                service: info,
            });
        }
        let tick = left.min(Duration::from_secs(1));
        tokio::select! {
            // A stream that ended disables this arm; the re-read goes on.
            Some(_) = events.next() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

/// Restarts service `name`'s tasks the Swarm way (`docker service update --force`): the
/// spec's ForceUpdate counter is bumped, so Swarm replaces every task with a new one on the
/// same spec, as its UpdateConfig says. Await it with [`wait_update`].
pub async fn force_update(
    docker: &Docker,
    stack: Option<&str>,
    name: &str,
) -> Result<Updated, String> {
    let svc = find_service(docker, stack, name).await?;
    let info = ServiceInfo::from(&svc);
    let mut spec = svc.spec.clone().unwrap_or_default();
    let task = spec.task_template.get_or_insert_with(Default::default);
    task.force_update = Some(task.force_update.unwrap_or(0) + 1);
    let opts = UpdateServiceOptions {
        version: i32::try_from(info.version).unwrap_or(i32::MAX),
        ..Default::default()
    };
    docker
        .update_service(&info.id, spec, opts, None)
        .await
        .map_err(|e| swarm_error(&format!("cannot restart service {}", info.name), &e))?;
    Ok(Updated {
        version_before: info.version,
        started_before: info.update_started.clone(),
        image_before: info.image,
        changed: true,
    })
}

/// The Swarm service a container is a task of (its id), if it is one.
pub fn task_service(c: &bollard::models::ContainerInspectResponse) -> Option<String> {
    c.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get("com.docker.swarm.service.id"))
        .filter(|id| !id.is_empty())
        .cloned()
}

/// The update settings a service's spec has now (Swarm's defaults where it has none).
fn settings_of(svc: &bollard::models::Service) -> UpdateSettings {
    let u = svc
        .spec
        .as_ref()
        .and_then(|s| s.update_config.clone())
        .unwrap_or_default();
    let dur = |n: Option<i64>| Duration::from_nanos(n.unwrap_or(0).max(0) as u64);
    UpdateSettings {
        parallelism: u.parallelism.unwrap_or(1),
        delay: dur(u.delay),
        monitor: if u.monitor.is_some() {
            dur(u.monitor)
        } else {
            Duration::from_secs(5)
        },
        order: match u.order {
            Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST) => "start-first",
            _ => "stop-first",
        }
        .into(),
        failure_action: match u.failure_action {
            Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK) => "rollback",
            Some(ServiceSpecUpdateConfigFailureActionEnum::CONTINUE) => "continue",
            _ => "pause",
        }
        .into(),
    }
}

/// The reference a Swarm spec should name for local image `image`: its digest in the
/// registry it was pushed to (`repo@sha256:…` from the image's RepoDigests, the one of the
/// same repository first), since every node pulls by that; `image` itself when it was never
/// pushed.
pub async fn pushed_ref(docker: &Docker, image: &str) -> Result<String, String> {
    let i = docker
        .inspect_image(image)
        .await
        .map_err(|e| format!("cannot inspect image {image}: {e}"))?;
    let repo = crate::docker::swarm::repo_of(image);
    let digests = i.repo_digests.unwrap_or_default();
    Ok(digests
        .iter()
        .find(|d| d.split('@').next() == Some(repo))
        .or(digests.first())
        .cloned()
        .unwrap_or_else(|| image.to_string()))
}

/// `docker::recreate` and `docker::restart` of a Swarm task's container: the service is
/// updated (onto `image`'s pushed digest, or forced onto the same spec) and awaited; Swarm
/// replaces the task. Returns the wait.
pub async fn redeploy(
    docker: &Docker,
    service_id: &str,
    image: Option<&str>,
    timeout: Duration,
) -> Result<UpdateWait, String> {
    let svc = find_service(docker, None, service_id).await?;
    let started = match image {
        Some(image) => {
            let target = pushed_ref(docker, image).await?;
            let u = update_image(docker, None, service_id, &target, &settings_of(&svc)).await?;
            if !u.changed {
                return force_and_wait(docker, service_id, timeout).await;
            }
            u.started_before
        }
        None => return force_and_wait(docker, service_id, timeout).await,
    };
    wait_update(docker, None, service_id, started.as_deref(), timeout).await
}

async fn force_and_wait(
    docker: &Docker,
    service_id: &str,
    timeout: Duration,
) -> Result<UpdateWait, String> {
    let u = force_update(docker, None, service_id).await?;
    wait_update(
        docker,
        None,
        service_id,
        u.started_before.as_deref(),
        timeout,
    )
    .await
}
