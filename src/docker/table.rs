//! A live table of the engine's containers, fed by its event stream.
//!
//! Listing containers costs the engine milliseconds (it takes every container's lock, and a
//! fleet running 45 one-second healthchecks keeps those locks busy), and a monitor or a
//! validation calls `docker::ps` again and again. So the first call lists once and starts a
//! background task that follows the event stream — create, start, die, health transitions,
//! destroy… — and refreshes just the container each event names. Later calls answer from
//! memory in microseconds.
//!
//! Correctness rules:
//! * The table serves queries only while its follower is subscribed (`ready`); it subscribes
//!   *before* listing, so nothing between the list and the first event is missed.
//! * Every change dockhand makes itself (restart, recreate, rm, …) marks the table `dirty`,
//!   so the next query re-lists instead of racing the event that change will produce.
//! * If the stream breaks, the table stops serving until the follower has re-listed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::StreamExt;

use super::{Container, Details, Filter, LABEL_CATEGORY, LABEL_PROJECT, LABEL_SERVICE, details};

/// The container events that can change what `ps` shows (exec_* noise from healthchecks
/// is left out on the engine's side).
const EVENTS: &[&str] = &[
    "create",
    "start",
    "restart",
    "die",
    "stop",
    "kill",
    "destroy",
    "rename",
    "pause",
    "unpause",
    "oom",
    "update",
    "health_status",
];

#[derive(Default)]
struct State {
    ready: bool,
    dirty: bool,
    by_id: HashMap<String, ContainerSummary>,
    /// Restart count and start time from `inspect`, refreshed with each event.
    details: HashMap<String, Details>,
}

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Table {
    state: Arc<Mutex<State>>,
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

async fn list_all(docker: &Docker, id: Option<&str>) -> Result<Vec<ContainerSummary>, String> {
    let filters = id.map(|id| HashMap::from([("id".to_string(), vec![id.to_string()])]));
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("cannot list containers: {e}"))
}

fn matches(c: &ContainerSummary, f: &Filter) -> bool {
    let label = |k: &str| c.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str);
    let running = c.state.map(|s| s.to_string() == "running").unwrap_or(false);
    (f.all || running)
        && f.project
            .as_deref()
            .is_none_or(|p| label(LABEL_PROJECT) == Some(p))
        && f.service
            .as_deref()
            .is_none_or(|s| label(LABEL_SERVICE) == Some(s))
        && f.category
            .as_deref()
            .is_none_or(|c| label(LABEL_CATEGORY) == Some(c))
}

fn select(s: &State, f: &Filter) -> Vec<Container> {
    let mut out: Vec<Container> = s
        .by_id
        .iter()
        .filter(|(_, c)| matches(c, f))
        .map(|(id, c)| {
            let mut out = Container::from(c);
            if let Some(d) = s.details.get(id) {
                d.apply(&mut out);
            }
            out
        })
        .collect();
    out.sort_by(|a, b| (&a.project, &a.service, &a.name).cmp(&(&b.project, &b.service, &b.name)));
    out
}

impl Table {
    /// Starts following `docker`'s events on `handle`.
    pub fn start(handle: &tokio::runtime::Handle, docker: Docker) -> Table {
        let table = Table {
            state: Arc::new(Mutex::new(State {
                dirty: true,
                ..Default::default()
            })),
        };
        let state = table.state.clone();
        handle.spawn(async move {
            loop {
                let why = follow(&docker, &state).await;
                lock(&state).ready = false;
                tracing::debug!(target: "dockhand::docker", "container table: {why}; re-listing in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        table
    }

    /// Marks the table stale: the next query lists afresh.
    pub fn invalidate(&self) {
        lock(&self.state).dirty = true;
    }

    /// Containers matching `f`: from memory when the table is current, else by listing.
    pub async fn query(&self, docker: &Docker, f: &Filter) -> Result<Vec<Container>, String> {
        {
            let s = lock(&self.state);
            if s.ready && !s.dirty {
                return Ok(select(&s, f));
            }
        }
        let snap = Snapshot::take(docker).await?;
        let mut s = lock(&self.state);
        snap.install(&mut s);
        s.dirty = false;
        Ok(select(&s, f))
    }
}

/// Every container with its details, taken in one go.
struct Snapshot {
    by_id: HashMap<String, ContainerSummary>,
    details: HashMap<String, Details>,
}

impl Snapshot {
    async fn take(docker: &Docker) -> Result<Snapshot, String> {
        let all = list_all(docker, None).await?;
        let ids: Vec<String> = all.iter().filter_map(|c| c.id.clone()).collect();
        let details = details(docker, &ids).await;
        let by_id = all
            .into_iter()
            .filter_map(|c| c.id.clone().map(|id| (id, c)))
            .collect();
        Ok(Snapshot { by_id, details })
    }

    fn install(self, s: &mut State) {
        s.by_id = self.by_id;
        s.details = self.details;
    }
}

async fn follow(docker: &Docker, state: &Mutex<State>) -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            EVENTS.iter().map(|e| e.to_string()).collect(),
        ),
    ]);
    let mut events = docker.events(Some(EventsOptions {
        since: Some(format!("{}.{:09}", since.as_secs(), since.subsec_nanos())),
        filters: Some(filters),
        ..Default::default()
    }));
    match Snapshot::take(docker).await {
        Ok(snap) => {
            let mut s = lock(state);
            snap.install(&mut s);
            s.ready = true;
        }
        Err(e) => return e,
    }
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => return format!("event stream failed: {e}"),
        };
        let Some(id) = ev.actor.as_ref().and_then(|a| a.id.clone()) else {
            continue;
        };
        if ev.action.as_deref() == Some("destroy") {
            let mut s = lock(state);
            s.by_id.remove(&id);
            s.details.remove(&id);
            continue;
        }
        match list_all(docker, Some(&id)).await {
            Ok(mut fresh) => {
                let d = details(docker, std::slice::from_ref(&id)).await;
                let mut s = lock(state);
                match fresh.pop() {
                    Some(c) => {
                        s.by_id.insert(id.clone(), c);
                        match d.get(&id) {
                            Some(d) => s.details.insert(id, *d),
                            None => s.details.remove(&id),
                        };
                    }
                    None => {
                        s.by_id.remove(&id);
                        s.details.remove(&id);
                    }
                }
            }
            Err(e) => return e,
        }
    }
    "event stream ended".to_string()
}
