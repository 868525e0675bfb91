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
//! * **Newer data wins.** Every listing (a per-event refresh of one container, a full
//!   re-list) takes a sequence number when it is *asked for*, and each entry remembers the
//!   number of the listing it came from (`as_of`). A listing that lands after a later-asked
//!   one has replaced an entry leaves that entry alone; a container a later listing found
//!   gone stays gone (a tombstone, kept while an older listing is still in flight). So a
//!   refresh asked before a full re-list but answered after it cannot put back a
//!   just-started container without its IP.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::StreamExt;

use crate::util::lock;

use super::{Container, Details, Filter, LABEL_CATEGORY, details};

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

/// One container as a listing saw it.
#[derive(Debug, Clone)]
struct Seen {
    summary: ContainerSummary,
    /// Restart count and start time from `inspect` (`None` when that failed).
    details: Option<Details>,
}

/// What the table knows of one container, and as of which listing.
#[derive(Debug)]
struct Entry {
    /// The sequence number of the listing this came from.
    as_of: u64,
    /// `None`: that listing found the container gone (a tombstone).
    seen: Option<Seen>,
}

#[derive(Default)]
struct State {
    ready: bool,
    dirty: bool,
    /// The last sequence number handed to a listing.
    seq: u64,
    /// Listings asked for and not yet landed (or abandoned).
    in_flight: BTreeSet<u64>,
    entries: HashMap<String, Entry>,
}

impl State {
    /// A sequence number for a listing about to be asked for.
    fn stamp(&mut self) -> u64 {
        self.seq += 1;
        self.in_flight.insert(self.seq);
        self.seq
    }

    /// A listing that will not land (it failed).
    fn abandon(&mut self, as_of: u64) {
        self.in_flight.remove(&as_of);
        self.prune();
    }

    /// Records what listing `as_of` found for `id`, unless a later-asked listing already
    /// told. Returns whether it was recorded.
    fn put(&mut self, id: String, as_of: u64, seen: Option<Seen>) -> bool {
        if self.entries.get(&id).is_some_and(|e| e.as_of > as_of) {
            return false;
        }
        self.entries.insert(id, Entry { as_of, seen });
        true
    }

    /// A one-container refresh has landed.
    fn land_one(&mut self, id: String, as_of: u64, seen: Option<Seen>) -> bool {
        let put = self.put(id, as_of, seen);
        self.abandon(as_of);
        put
    }

    /// A full listing has landed: every container in it, and every one missing from it
    /// marked gone — each unless a later-asked listing already told.
    fn land_all(&mut self, snap: Snapshot) {
        let as_of = snap.as_of;
        let missing: Vec<String> = self
            .entries
            .keys()
            .filter(|id| !snap.seen.contains_key(*id))
            .cloned()
            .collect();
        for id in missing {
            self.put(id, as_of, None);
        }
        for (id, seen) in snap.seen {
            self.put(id, as_of, Some(seen));
        }
        self.abandon(as_of);
    }

    /// Drops tombstones no listing in flight could contradict.
    fn prune(&mut self) {
        let oldest = self.in_flight.first().copied().unwrap_or(u64::MAX);
        self.entries
            .retain(|_, e| e.seen.is_some() || e.as_of > oldest);
    }
}

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Table {
    state: Arc<Mutex<State>>,
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
    let (project, service) = super::container::identity(c.labels.as_ref());
    (f.all || running)
        && f.project.as_deref().is_none_or(|p| project == p)
        && f.service.as_deref().is_none_or(|s| service == s)
        && f.category
            .as_deref()
            .is_none_or(|c| label(LABEL_CATEGORY) == Some(c))
}

fn select(s: &State, f: &Filter) -> Vec<Container> {
    let picked: Vec<&Seen> = s
        .entries
        .values()
        .filter_map(|e| e.seen.as_ref())
        .filter(|seen| matches(&seen.summary, f))
        .collect();
    let current =
        super::container::without_task_history(picked.iter().map(|s| &s.summary).collect());
    let mut out: Vec<Container> = picked
        .into_iter()
        .filter(|seen| current.iter().any(|c| std::ptr::eq(*c, &seen.summary)))
        .map(|seen| {
            let mut out = Container::from(&seen.summary);
            if let Some(d) = &seen.details {
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
        let snap = Snapshot::take(docker, &self.state).await?;
        let mut s = lock(&self.state);
        s.land_all(snap);
        s.dirty = false;
        Ok(select(&s, f))
    }
}

/// Every container with its details, taken in one go, as of sequence number `as_of`.
struct Snapshot {
    as_of: u64,
    seen: HashMap<String, Seen>,
}

impl Snapshot {
    async fn take(docker: &Docker, state: &Mutex<State>) -> Result<Snapshot, String> {
        let as_of = lock(state).stamp();
        let all = match list_all(docker, None).await {
            Ok(all) => all,
            Err(e) => {
                lock(state).abandon(as_of);
                return Err(e);
            }
        };
        let ids: Vec<String> = all.iter().filter_map(|c| c.id.clone()).collect();
        let details = details(docker, &ids).await;
        let seen = all
            .into_iter()
            .filter_map(|c| {
                let id = c.id.clone()?;
                let details = details.get(&id).copied();
                Some((
                    id,
                    Seen {
                        summary: c,
                        details,
                    },
                ))
            })
            .collect();
        Ok(Snapshot { as_of, seen })
    }
}

/// Refreshes the one container an event names.
async fn refresh_one(docker: &Docker, state: &Mutex<State>, id: String) -> Result<(), String> {
    let as_of = lock(state).stamp();
    let mut fresh = match list_all(docker, Some(&id)).await {
        Ok(fresh) => fresh,
        Err(e) => {
            lock(state).abandon(as_of);
            return Err(e);
        }
    };
    let seen = match fresh.pop() {
        Some(summary) => {
            let d = details(docker, std::slice::from_ref(&id)).await;
            Some(Seen {
                summary,
                details: d.get(&id).copied(),
            })
        }
        None => None,
    };
    lock(state).land_one(id, as_of, seen);
    Ok(())
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
    match Snapshot::take(docker, state).await {
        Ok(snap) => {
            let mut s = lock(state);
            s.land_all(snap);
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
            let as_of = s.stamp();
            s.land_one(id, as_of, None);
            continue;
        }
        if let Err(e) = refresh_one(docker, state, id).await {
            return e;
        }
    }
    "event stream ended".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, status: &str) -> Seen {
        Seen {
            summary: ContainerSummary {
                id: Some(id.into()),
                names: Some(vec![format!("/{id}")]),
                status: Some(status.into()),
                ..Default::default()
            },
            details: None,
        }
    }

    fn snapshot(as_of: u64, items: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            as_of,
            seen: items
                .iter()
                .map(|(id, st)| (id.to_string(), seen(id, st)))
                .collect(),
        }
    }

    /// A full re-list asked for and landed at once.
    fn relist(s: &mut State, items: &[(&str, &str)]) {
        let as_of = s.stamp();
        s.land_all(snapshot(as_of, items));
    }

    /// name -> status, as `ps -a` would show it.
    fn shown(s: &State) -> Vec<(String, String)> {
        let all = Filter {
            all: true,
            ..Default::default()
        };
        select(s, &all)
            .into_iter()
            .map(|c| (c.name, c.status))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_refresh_asked_before_a_relist_but_landing_after_it_does_not_win() {
        let mut s = State::default();
        relist(&mut s, &[("web", "Created")]);
        // an event: its refresh is asked for (and answered "Created") ...
        let refresh = s.stamp();
        // ... then a full re-list is asked for and lands first with the newer state
        let relist = s.stamp();
        s.land_all(snapshot(
            relist,
            &[("web", "Up 1 second"), ("db", "Up 3 seconds")],
        ));
        // the older refresh lands last: ignored
        assert!(!s.land_one("web".into(), refresh, Some(seen("web", "Created"))));
        assert_eq!(
            shown(&s),
            pairs(&[("db", "Up 3 seconds"), ("web", "Up 1 second")])
        );
    }

    #[test]
    fn a_relist_landing_after_newer_refreshes_keeps_them() {
        let mut s = State::default();
        relist(&mut s, &[("old", "Up 1 hour"), ("web", "Created")]);
        let relist = s.stamp();
        // events after the re-list was asked: web started, new created, old destroyed
        let r1 = s.stamp();
        assert!(s.land_one("web".into(), r1, Some(seen("web", "Up 1 second"))));
        let r2 = s.stamp();
        assert!(s.land_one("new".into(), r2, Some(seen("new", "Created"))));
        let r3 = s.stamp();
        assert!(s.land_one("old".into(), r3, None));
        // the re-list, asked before those, lands with what it saw then
        s.land_all(snapshot(
            relist,
            &[("old", "Up 1 hour"), ("web", "Created")],
        ));
        assert_eq!(
            shown(&s),
            pairs(&[("new", "Created"), ("web", "Up 1 second")])
        );
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_sees_and_tombstones_go_when_nothing_older_is_in_flight() {
        let mut s = State::default();
        relist(&mut s, &[("a", "Up"), ("b", "Up")]);
        let stale = s.stamp();
        relist(&mut s, &[("a", "Up")]);
        // b is gone; a refresh asked before that re-list cannot bring it back
        assert!(!s.land_one("b".into(), stale, Some(seen("b", "Up"))));
        assert_eq!(shown(&s), pairs(&[("a", "Up")]));
        // nothing in flight any more: the tombstone is dropped
        assert!(s.in_flight.is_empty());
        assert_eq!(s.entries.len(), 1);
        // a failed listing releases its number too
        let failed = s.stamp();
        s.abandon(failed);
        assert!(s.in_flight.is_empty());
    }
}
