//! The precedence a playbook would otherwise re-implement: a service's own setting, else its
//! category's, else `defaults`.

use super::model::{FleetConfig, ResolvedService};

impl FleetConfig {
    /// Every service with its effective settings, in file order.
    pub fn resolved(&self) -> Vec<ResolvedService> {
        let d = &self.defaults;
        self.services
            .iter()
            .map(|(name, s)| {
                let c = &self.categories[&s.category];
                ResolvedService {
                    name: name.clone(),
                    category: s.category.clone(),
                    port: s.port,
                    health_path: s
                        .health_path
                        .clone()
                        .unwrap_or_else(|| d.health_path.clone()),
                    endpoints: s.endpoints.clone(),
                    story: s.story,
                    latency_budget_ms: s
                        .latency_budget_ms
                        .or(c.latency_budget_ms)
                        .unwrap_or(d.latency_budget_ms),
                    health_timeout_s: s
                        .health_timeout_s
                        .or(c.health_timeout_s)
                        .unwrap_or(d.health_timeout_s),
                    settle_s: d.settle_s,
                    batch_rebuild: c.batch_rebuild,
                    on_failure: c.on_failure,
                    max_failures: c.max_failures,
                    risk: c.risk,
                    order: s.order.or(c.order).unwrap_or(d.order),
                    engine: s.engine.clone().or_else(|| c.engine.clone()),
                }
            })
            .collect()
    }
}
