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
            }
        })
        .collect()
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
    let mut cs = match crate::docker::list(&docker, &filter_of(&Some(project))).await {
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
                        self.set(ContainerView::Rows(rows_of(cs, &lock(&usage))));
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
