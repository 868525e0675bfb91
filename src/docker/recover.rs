//! Mending deploys that were interrupted (the runner killed, a call cancelled), for both
//! orders, from what the engine shows alone (no journal): the temporary names of
//! `names.rs` say which step a deploy reached. `docker::recover` runs it, and `--continue`
//! before it touches a service.

use bollard::Docker;
use bollard::query_parameters::StartContainerOptions;
use serde::Serialize;

use super::names::{is_aside, is_next, original_name};
use super::replacement::{force, rename};
use super::start_first;

/// What a recovery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoverAction {
    /// Nothing was interrupted.
    None,
    /// An interrupted recreate had started the new container: the old one is removed.
    Finished,
    /// An interrupted recreate had not: the old container is back under its name.
    Restored,
    /// An interrupted start-first deploy's new container is removed; the old one serves.
    Discarded,
    /// An interrupted start-first deploy had passed its gate: its promotion is finished.
    Promoted,
}

impl RecoverAction {
    /// The word scripts see (`r.action`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecoverAction::None => "none",
            RecoverAction::Finished => "finished",
            RecoverAction::Restored => "restored",
            RecoverAction::Discarded => "discarded",
            RecoverAction::Promoted => "promoted",
        }
    }
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub action: RecoverAction,
    pub detail: String,
}

impl Recovered {
    fn new(action: RecoverAction, detail: String) -> Self {
        Recovered { action, detail }
    }
}

/// Mends whatever deploy of `name` was interrupted: a stop-first recreate (see
/// [`recover_recreate`]), then a start-first deploy (see
/// [`recover_start_first`]). Idempotent and cheap when there is
/// nothing to do.
pub async fn recover(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Recovered, String> {
    let aside = recover_recreate(docker, project, name).await?;
    let next = recover_start_first(docker, project, name).await?;
    Ok(match next {
        Some(r) if aside.action == RecoverAction::None => r,
        _ => aside,
    })
}

/// Completes or undoes a [`recreate`](super::recreate::recreate) that was interrupted (SIGKILL, power loss, a
/// cancelled call): a container renamed aside means the swap never finished.
///
/// * the new container exists and has run → the swap happened; remove the old one;
/// * the new container was only created, or there is none → remove it, rename the old one
///   back and start it.
///
/// Idempotent, and safe to run before every step that touches the container.
pub async fn recover_recreate(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Recovered, String> {
    // A start-first deploy's new container is start_first::recover's to mend.
    let all = super::containers_of(docker, project, name)
        .await?
        .into_iter()
        .filter(|c| !is_next(&c.name));
    let (aside, current): (Vec<_>, Vec<_>) = all.partition(|c| is_aside(&c.name));
    let Some(old) = aside.first() else {
        return Ok(Recovered::new(RecoverAction::None, String::new()));
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
        let detail = format!(
            "an interrupted recreate had started the new container; removed the old one ({})",
            old.name
        );
        return Ok(Recovered::new(RecoverAction::Finished, detail));
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
    let detail = format!(
        "an interrupted recreate had not started the new container; {original} is back on its old image"
    );
    Ok(Recovered::new(RecoverAction::Restored, detail))
}

/// Mends an interrupted start-first deploy (see the module doc of
/// [`start_first`](super::start_first)): `None` when there was none, else what was done.
///
/// The new container is promoted when it runs healthy (or has no healthcheck) *and* its
/// promotion had begun — it has the service's aliases, or lost a network mid-reconnect — or
/// the old one is out of service anyway (stopped or gone). Otherwise it is removed and the old
/// one put back as it served: on its networks with its aliases, running.
pub async fn recover_start_first(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Option<Recovered>, String> {
    let (current, next) = start_first::current_and_next(docker, project, name).await?;
    let Some(n) = next.first() else {
        return Ok(None);
    };
    let aliases = start_first::aliases_for(docker, &n.id, &current).await;
    let begun = start_first::promotion_begun(docker, &n.id, &aliases).await?;
    let old_running = current.iter().any(|c| c.state == "running");
    let next_good = n.state == "running" && matches!(n.health.as_str(), "healthy" | "none");
    if next_good && (begun || !old_running) {
        let s = start_first::promote(docker, project, name).await?;
        let how = if begun {
            "had begun its promotion after a passed gate"
        } else {
            "had a healthy new container and no old one serving"
        };
        let detail = format!(
            "an interrupted start-first deploy {how}; {} is now the new container",
            s.name
        );
        return Ok(Some(Recovered::new(RecoverAction::Promoted, detail)));
    }
    start_first::discard(docker, project, name).await?;
    for c in &current {
        start_first::take_aliases(docker, &c.id, &aliases)
            .await
            .map_err(|e| format!("cannot put {} back on its networks: {e}", c.name))?;
        if c.state != "running" {
            docker
                .start_container(&c.id, None::<StartContainerOptions>)
                .await
                .map_err(|e| format!("cannot start {} again: {e}", c.name))?;
        }
    }
    let why = if !next_good {
        "had a new container that is not healthy"
    } else {
        "had not been promoted"
    };
    let detail = format!(
        "an interrupted start-first deploy {why}; removed {}, the old container serves",
        n.name
    );
    Ok(Some(Recovered::new(RecoverAction::Discarded, detail)))
}
