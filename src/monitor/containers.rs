//! The container panel's data: the docker module's event-fed table (health, restarts,
//! uptime without re-listing) and each running container's CPU and memory from
//! [`crate::docker::usage`], gathered once ([`containers_once`]) or kept current in the
//! background ([`DockerFeed`]) so a slow engine never blocks a keypress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::model::{ContainerRow, ContainerView};
use crate::docker::usage::Usage;
use crate::util::lock;

/// CPU % and memory by container id.
type UsageById = HashMap<String, Usage>;

/// Usage of `ids`, all at once (each takes the engine about a second to sample).
async fn usage_all(docker: &bollard::Docker, ids: Vec<String>) -> UsageById {
    let asks = ids.into_iter().map(|id| async move {
        let u = crate::docker::usage::sample(docker, &id, Duration::from_secs(5)).await;
        (id, u)
    });
    // A container that stopped or did not answer in time just shows no numbers.
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|(id, u)| u.ok().flatten().map(|u| (id, u)))
        .collect()
}

fn rows_of(cs: Vec<crate::docker::Container>, usage: &UsageById) -> Vec<ContainerRow> {
    cs.into_iter()
        .map(|c| {
            let u = usage.get(&c.id).filter(|_| c.state == "running");
            ContainerRow {
                cpu_percent: u.and_then(|u| u.cpu_percent),
                mem_bytes: u.and_then(|u| u.mem_bytes),
                service: if c.service.is_empty() {
                    c.name.clone()
                } else {
                    c.service
                },
                name: c.name,
                state: c.state,
                health: c.health,
                restarts: c.restarts,
                uptime_s: c.uptime_s,
                task: None,
            }
        })
        .collect()
}

/// A Swarm stack's rows: one per current task (desired running, or the newest of a slot
/// with none), with its node, its container's health and usage when the container is on
/// this engine, and as restarts the tasks Swarm replaced in its slot (its task history).
pub fn task_rows(
    stack: &str,
    services: &[crate::docker::swarm::ServiceInfo],
    tasks: &[crate::docker::swarm::TaskInfo],
    nodes: &HashMap<String, String>,
    containers: &[crate::docker::Container],
    usage: &UsageById,
) -> Vec<ContainerRow> {
    let mut rows = Vec::new();
    for s in services {
        let name = s.name.strip_prefix(&format!("{stack}_")).unwrap_or(&s.name);
        let mine: Vec<&crate::docker::swarm::TaskInfo> =
            tasks.iter().filter(|t| t.service_id == s.id).collect();
        let mut slots: Vec<i64> = mine.iter().map(|t| t.slot).collect();
        slots.sort();
        slots.dedup();
        for slot in slots {
            let of_slot: Vec<&&crate::docker::swarm::TaskInfo> =
                mine.iter().filter(|t| t.slot == slot).collect();
            // Newest first: the running one, else the newest (it says why none runs).
            let Some(t) = of_slot
                .iter()
                .find(|t| t.desired == "running")
                .or(of_slot.first())
            else {
                continue;
            };
            let c = containers
                .iter()
                .find(|c| !t.container_id.is_empty() && t.container_id.starts_with(&c.id));
            let u = c.and_then(|c| usage.get(&c.id));
            rows.push(ContainerRow {
                service: name.to_string(),
                name: format!("{}.{slot}", s.name),
                state: t.state.clone(),
                health: c.map_or("-".into(), |c| c.health.clone()),
                restarts: Some(of_slot.len() as i64 - 1),
                uptime_s: c.and_then(|c| c.uptime_s),
                cpu_percent: u.and_then(|u| u.cpu_percent),
                mem_bytes: u.and_then(|u| u.mem_bytes),
                task: Some(super::model::TaskCell {
                    slot,
                    node: nodes
                        .get(&t.node)
                        .cloned()
                        .unwrap_or_else(|| t.node.clone()),
                    desired: t.desired.clone(),
                    current: t.state.clone(),
                }),
            });
        }
    }
    rows
}

/// The rows of `project` when it is a Swarm stack (`None`: it is not one, or Swarm is not
/// on), from the containers of this engine already listed.
async fn swarm_rows(
    docker: &bollard::Docker,
    project: &str,
    containers: &[crate::docker::Container],
    usage: &UsageById,
) -> Option<Vec<ContainerRow>> {
    let (services, tasks, nodes) = crate::docker::swarm::stack_tasks(docker, project)
        .await
        .ok()?;
    if services.is_empty() {
        return None;
    }
    Some(task_rows(
        project, &services, &tasks, &nodes, containers, usage,
    ))
}

fn filter_of(project: &Option<String>) -> crate::docker::Filter {
    crate::docker::Filter {
        project: project.clone(),
        all: true,
        ..Default::default()
    }
}

/// One look at the containers of `project` with their usage (for `--once`).
pub async fn containers_once(project: Option<String>) -> ContainerView {
    let Some(project) = project else {
        return ContainerView::Unavailable(
            "the run names no compose project; pass --project NAME".into(),
        );
    };
    let docker = match crate::docker::connect().await {
        Ok(d) => d,
        Err(e) => return ContainerView::Unavailable(e),
    };
    let mut cs = match crate::docker::list(&docker, &filter_of(&Some(project.clone()))).await {
        Ok(cs) => cs,
        Err(e) => return ContainerView::Unavailable(e),
    };
    let ids: Vec<String> = cs.iter().map(|c| c.id.clone()).collect();
    let details = crate::docker::details(&docker, &ids).await;
    for c in &mut cs {
        if let Some(d) = details.get(&c.id).or_else(|| {
            details
                .iter()
                .find(|(k, _)| k.starts_with(&c.id))
                .map(|(_, d)| d)
        }) {
            d.apply(c);
        }
    }
    let running: Vec<String> = cs
        .iter()
        .filter(|c| c.state == "running")
        .map(|c| c.id.clone())
        .collect();
    let usage = usage_all(&docker, running).await;
    if let Some(rows) = swarm_rows(&docker, &project, &cs, &usage).await {
        return ContainerView::Rows(rows);
    }
    ContainerView::Rows(rows_of(cs, &usage))
}

/// Keeps a [`ContainerView`] current in the background: the event-fed container table
/// every second, usage every few seconds. Readers never wait on the engine.
#[derive(Clone)]
pub struct DockerFeed {
    view: Arc<Mutex<ContainerView>>,
    project: Arc<Mutex<Option<String>>>,
}

impl DockerFeed {
    pub fn start(handle: &tokio::runtime::Handle) -> DockerFeed {
        let feed = DockerFeed {
            view: Arc::new(Mutex::new(ContainerView::Waiting)),
            project: Arc::new(Mutex::new(None)),
        };
        let f = feed.clone();
        handle.spawn(async move { f.follow().await });
        feed
    }

    /// Which compose project to show (the run's, once its journal is read).
    pub fn set_project(&self, p: Option<String>) {
        *lock(&self.project) = p;
    }

    pub fn view(&self) -> ContainerView {
        lock(&self.view).clone()
    }

    fn set(&self, v: ContainerView) {
        *lock(&self.view) = v;
    }

    async fn follow(self) {
        let docker = loop {
            match crate::docker::connect().await {
                Ok(d) => break d,
                Err(e) => {
                    self.set(ContainerView::Unavailable(e));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        };
        let table =
            crate::docker::table::Table::start(&tokio::runtime::Handle::current(), docker.clone());
        let usage: Arc<Mutex<UsageById>> = Default::default();
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            let project = lock(&self.project).clone();
            if project.is_none() {
                self.set(ContainerView::Unavailable(
                    "no compose project yet (the run names none; pass --project NAME)".into(),
                ));
            } else {
                match table.query(&docker, &filter_of(&project)).await {
                    Ok(cs) => {
                        let running: Vec<String> = cs
                            .iter()
                            .filter(|c| c.state == "running")
                            .map(|c| c.id.clone())
                            .collect();
                        let u = lock(&usage).clone();
                        let p = project.as_deref().unwrap_or_default();
                        let rows = match swarm_rows(&docker, p, &cs, &u).await {
                            Some(rows) => rows,
                            None => rows_of(cs, &u),
                        };
                        self.set(ContainerView::Rows(rows));
                        // One usage sample at a time; the next starts 2 s after it ends.
                        if !sampling.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            let (d, u, s) = (docker.clone(), usage.clone(), sampling.clone());
                            tokio::spawn(async move {
                                let fresh = usage_all(&d, running).await;
                                *lock(&u) = fresh;
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                s.store(false, std::sync::atomic::Ordering::SeqCst);
                            });
                        }
                    }
                    Err(e) => self.set(ContainerView::Unavailable(e)),
                }
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::swarm::{ServiceInfo, TaskInfo};

    fn task(id: &str, slot: i64, desired: &str, state: &str, container: &str) -> TaskInfo {
        TaskInfo {
            id: id.into(),
            service_id: "svc1".into(),
            slot,
            node: "n1".into(),
            desired: desired.into(),
            state: state.into(),
            message: String::new(),
            error: String::new(),
            image: "r/x:1".into(),
            container_id: container.into(),
            exit_code: None,
            created: None,
        }
    }

    #[test]
    fn a_stack_shows_one_row_per_slot_with_its_task_history_as_restarts() {
        let services = vec![ServiceInfo {
            id: "svc1".into(),
            name: "lab_weather-api".into(),
            stack: Some("lab".into()),
            version: 3,
            image: "r/x:1".into(),
            update_state: String::new(),
            update_message: String::new(),
            update_started: None,
            replicas: Some(1),
            published: Vec::new(),
        }];
        let tasks = vec![
            task("t3", 1, "running", "running", "abcdef123456789"),
            task("t2", 1, "shutdown", "failed", "0123"),
            task("t1", 1, "shutdown", "shutdown", "0456"),
        ];
        let nodes = HashMap::from([("n1".to_string(), "node-a".to_string())]);
        let c = crate::docker::Container {
            name: "lab_weather-api.1.t3".into(),
            id: "abcdef123456".into(),
            service: "weather-api".into(),
            project: "lab".into(),
            category: String::new(),
            image: String::new(),
            state: "running".into(),
            health: "healthy".into(),
            status: String::new(),
            ports: Vec::new(),
            age_s: 0,
            restarts: Some(0),
            uptime_s: Some(9),
            ips: Vec::new(),
        };
        let rows = task_rows("lab", &services, &tasks, &nodes, &[c], &UsageById::new());
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(r.service, "weather-api");
        assert_eq!(r.restarts, Some(2), "two tasks replaced in slot 1");
        assert_eq!(r.health, "healthy");
        assert_eq!(r.uptime_s, Some(9));
        let t = r.task.as_ref().unwrap();
        assert_eq!(
            (t.node.as_str(), t.desired.as_str(), t.current.as_str()),
            ("node-a", "running", "running")
        );
    }
}
