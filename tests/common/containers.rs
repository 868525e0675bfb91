//! What the lab tests read back from the engine: the project's containers as `docker
//! inspect` shows them, keyed by compose service, and a wait for them to be healthy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::Lab;

/// One container of the lab, from `docker inspect`.
#[derive(Debug, Clone)]
pub struct Ctr {
    /// Its compose service (`com.docker.compose.service`).
    pub service: String,
    pub name: String,
    pub id: String,
    pub image: String,
    /// `healthy`, `starting`, `unhealthy`, or `none` without a healthcheck.
    pub health: String,
    pub started_at: String,
    /// The lab image's `homeiq.version` label (the `VERSION` build arg it was built with).
    pub version: String,
}

impl Ctr {
    fn from_inspect(c: &Value) -> Ctr {
        // Name, id and image every container has: a missing one is a broken reading, not
        // an empty value two readings could agree on.
        let must = |key: &str| match c[key].as_str() {
            Some(v) => v.to_string(),
            None => panic!("docker inspect gave no {key}: {c}"),
        };
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        Ctr {
            service: text(&c["Config"]["Labels"]["com.docker.compose.service"]),
            name: must("Name").trim_start_matches('/').into(),
            id: must("Id"),
            image: must("Image"),
            health: c["State"]["Health"]["Status"]
                .as_str()
                .unwrap_or("none")
                .into(),
            started_at: text(&c["State"]["StartedAt"]),
            version: text(&c["Config"]["Labels"]["homeiq.version"]),
        }
    }
}

impl Lab {
    /// Every container of the project (running or not); a service with two containers
    /// (a recreate left half done) appears twice.
    pub fn all_containers(&self) -> Vec<Ctr> {
        self.inspect_all().iter().map(Ctr::from_inspect).collect()
    }

    /// The project's containers keyed by compose service.
    pub fn containers(&self) -> BTreeMap<String, Ctr> {
        by_service(&self.all_containers())
    }

    /// Waits until `services` are healthy; returns the containers as last seen.
    pub fn wait_healthy(&self, services: &[&str], within: Duration) -> BTreeMap<String, Ctr> {
        super::poll_until(
            within,
            || self.containers(),
            |by| {
                services
                    .iter()
                    .all(|s| by.get(*s).is_some_and(|c| c.health == "healthy"))
            },
        )
    }
}

/// Containers keyed by compose service (of a service's two, the last listed).
pub fn by_service(all: &[Ctr]) -> BTreeMap<String, Ctr> {
    all.iter().map(|c| (c.service.clone(), c.clone())).collect()
}
