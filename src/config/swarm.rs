//! The Swarm keys: `orchestrator`, `registry` and the `swarm:` update settings.
//!
//! Checked at load with the line, because each mistake would otherwise show late and
//! expensively: a Swarm fleet without a registry would build every image and then fail at
//! the first push; a registry written as a URL (`http://…`) or with a tag would make image
//! references the engine refuses, after the builds.

use super::model::{FleetConfig, MAX_BATCH, Orchestrator};
use super::parse::key_line;
use crate::docker::swarm::check_registry;

impl FleetConfig {
    /// A Swarm fleet names a registry; a registry is a registry reference; the update
    /// settings are in range.
    pub(super) fn check_swarm(&self, text: &str) -> Result<(), (usize, String)> {
        if self.orchestrator == Some(Orchestrator::Swarm) && self.registry.is_none() {
            return Err((
                key_line(text, &["orchestrator"]),
                "orchestrator: swarm needs a `registry:` the nodes pull from, like \
                 registry: \"127.0.0.1:5000/homeiq\" (every build is pushed there under its \
                 own tag)"
                    .into(),
            ));
        }
        if let Some(r) = &self.registry {
            check_registry(r)
                .map_err(|e| (key_line(text, &["registry"]), format!("registry: {e}")))?;
        }
        let s = &self.swarm;
        if s.parallelism > MAX_BATCH {
            return Err((
                key_line(text, &["swarm", "parallelism"]),
                format!(
                    "swarm.parallelism: {} is out of range (0–{MAX_BATCH}; 0 updates every task at once)",
                    s.parallelism
                ),
            ));
        }
        for (key, v, max) in [
            ("delay_s", s.delay_s, 3600),
            ("monitor_s", s.monitor_s, 3600),
            ("converge_timeout_s", s.converge_timeout_s, 86_400),
        ] {
            if v > max || (key == "converge_timeout_s" && v == 0) {
                return Err((
                    key_line(text, &["swarm", key]),
                    format!("swarm.{key}: {v} is out of range (0–{max}; the timeout at least 1)"),
                ));
            }
        }
        Ok(())
    }
}
