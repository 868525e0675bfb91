//! Waiting for a container to become healthy, on the engine's event stream.
//!
//! [`wait_healthy`] subscribes to the engine's events *before* it looks at the container
//! (using `since`, so nothing between the subscription and the inspection is lost), then
//! waits for `health_status` or `die`: the answer arrives the moment the engine decides, not
//! at the next poll.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, EventMessage};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::{container_name, find, health_of};

/// What `wait_healthy` saw.
#[derive(Debug, Clone, Serialize)]
pub struct HealthWait {
    /// healthy, unhealthy, running (no healthcheck), exited, timeout.
    pub status: String,
    /// Milliseconds from the call to the answer.
    pub ms: u64,
    /// When the engine reported the decisive event (ns since the epoch), if it was an event.
    pub event_time_ns: Option<i64>,
    /// Human-readable note ("no healthcheck: running counts as ready", "exit code 1").
    pub note: String,
    pub container: String,
}

/// How a wait ended, before it is timed and named.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    status: &'static str,
    event_time_ns: Option<i64>,
    note: String,
}

fn verdict(status: &'static str, event_time_ns: Option<i64>, note: impl Into<String>) -> Verdict {
    Verdict {
        status,
        event_time_ns,
        note: note.into(),
    }
}

const NO_CHECK: &str = "no healthcheck: running counts as ready";

/// Whether the container has a healthcheck of its own (not disabled with `NONE`).
fn has_healthcheck(c: &ContainerInspectResponse) -> bool {
    c.config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| !t.is_empty() && t[0] != "NONE")
}

/// The verdict the container's state already gives, if it gives one.
fn verdict_now(now: &ContainerInspectResponse, through_unhealthy: bool) -> Option<Verdict> {
    match health_of(now).as_str() {
        "healthy" => Some(verdict("healthy", None, "already healthy")),
        "unhealthy" if !through_unhealthy => Some(verdict(
            "unhealthy",
            None,
            "the container's healthcheck is failing",
        )),
        "none" if !has_healthcheck(now) => Some(verdict("running", None, NO_CHECK)),
        "exited" | "dead" => {
            let code = now.state.as_ref().and_then(|s| s.exit_code).unwrap_or(0);
            Some(verdict("exited", None, format!("exit code {code}")))
        }
        _ => None,
    }
}

/// The verdict an event gives, if it gives one.
fn verdict_of(ev: &EventMessage, has_check: bool, through_unhealthy: bool) -> Option<Verdict> {
    let t = ev.time_nano;
    match ev.action.as_deref().unwrap_or("") {
        "health_status: healthy" => Some(verdict("healthy", t, "")),
        "health_status: unhealthy" if !through_unhealthy => Some(verdict(
            "unhealthy",
            t,
            "the container's healthcheck failed",
        )),
        "die" => {
            let code = ev
                .actor
                .as_ref()
                .and_then(|a| a.attributes.as_ref())
                .and_then(|a| a.get("exitCode"))
                .cloned()
                .unwrap_or_default();
            Some(verdict("exited", t, format!("exit code {code}")))
        }
        "start" if !has_check => Some(verdict("running", t, NO_CHECK)),
        _ => None,
    }
}

/// The engine's events for container `id`, replayed from now on.
fn events_of(
    docker: &Docker,
    id: &str,
) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> + use<> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("container".to_string(), vec![id.to_string()]),
    ]);
    docker.events(Some(EventsOptions {
        since: Some(format!("{}.{:09}", since.as_secs(), since.subsec_nanos())),
        filters: Some(filters),
        ..Default::default()
    }))
}

/// Waits until the container is healthy, unhealthy, or dead, or `timeout` passes. Docker's
/// "unhealthy" verdict ends the wait (the image's healthcheck window has passed) unless
/// `through_unhealthy`, for services whose start period is shorter than their start-up.
pub async fn wait_healthy(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
    timeout: Duration,
    through_unhealthy: bool,
) -> Result<HealthWait, String> {
    let start = Instant::now();
    let c = find(docker, project, name).await?;
    let id = c.id.clone().unwrap_or_default();
    let done = |v: Verdict| HealthWait {
        status: v.status.to_string(),
        ms: start.elapsed().as_millis() as u64,
        event_time_ns: v.event_time_ns,
        note: v.note,
        container: container_name(&c),
    };
    // Subscribe first, replaying from just before we inspect, so no transition is missed.
    let mut events = events_of(docker, &id);
    let now = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| format!("cannot inspect '{name}': {e}"))?;
    if let Some(v) = verdict_now(&now, through_unhealthy) {
        return Ok(done(v));
    }
    let has_check = has_healthcheck(&now);
    let deadline = tokio::time::Instant::now() + timeout.saturating_sub(start.elapsed());
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => {
                let note = format!(
                    "not healthy within {}",
                    crate::util::human::duration(timeout)
                );
                return Ok(done(verdict("timeout", None, note)));
            }
            Ok(None) => return Err("the Docker event stream ended unexpectedly".into()),
            Ok(Some(Err(e))) => return Err(format!("Docker event stream failed: {e}")),
            Ok(Some(Ok(ev))) => ev,
        };
        if let Some(v) = verdict_of(&ev, has_check, through_unhealthy) {
            return Ok(done(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, attrs: &[(&str, &str)]) -> EventMessage {
        serde_json::from_value(serde_json::json!({
            "Action": action,
            "Actor": { "Attributes": attrs.iter().cloned().collect::<HashMap<_, _>>() },
            "timeNano": 7,
        }))
        .unwrap()
    }

    #[test]
    fn events_decide_the_wait() {
        let healthy = verdict_of(&event("health_status: healthy", &[]), true, false);
        assert_eq!(healthy, Some(verdict("healthy", Some(7), "")));
        let unhealthy = event("health_status: unhealthy", &[]);
        assert_eq!(
            verdict_of(&unhealthy, true, false).unwrap().status,
            "unhealthy"
        );
        assert_eq!(
            verdict_of(&unhealthy, true, true),
            None,
            "waits through unhealthy"
        );
        let die = verdict_of(&event("die", &[("exitCode", "3")]), true, false).unwrap();
        assert_eq!((die.status, die.note.as_str()), ("exited", "exit code 3"));
        assert_eq!(verdict_of(&event("start", &[]), true, false), None);
        assert_eq!(
            verdict_of(&event("start", &[]), false, false)
                .unwrap()
                .status,
            "running"
        );
    }
}
