//! The fleet configuration: the seeds' `phase1-service-config.yaml`, as `services.yaml`.
//!
//! A typo in a config key is the kind of mistake that silently changes a production run
//! (`max_failure: 0` would leave the default in force), so the loader is strict: every
//! struct denies unknown fields, enumerations are closed, and every error names the key and
//! the line it is on. Cross-references (a service's `category`, an infrastructure `writer`)
//! are checked after parsing, and their errors point at the offending line too.
//!
//! The loaded config is *resolved* for scripts: every service carries its effective
//! settings (service over category over `defaults`), so a playbook reads
//! `svc.latency_budget_ms` instead of re-implementing the precedence.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A config problem, with where it is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem has no single line (an unreadable file).
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Compose project name the fleet runs under.
    pub project: String,
    /// The compose file, relative to the config file's directory.
    #[serde(default = "default_compose_file")]
    pub compose_file: String,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub infrastructure: IndexMap<String, Infrastructure>,
    pub categories: IndexMap<String, Category>,
    pub services: IndexMap<String, Service>,
}

fn default_compose_file() -> String {
    "docker-compose.yml".into()
}

/// How a service's new container replaces the old one (Swarm's names and meaning).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DeployOrder {
    /// The old container stops before the new one starts (`docker compose up -d`'s way): a
    /// moment without the service. Right for writers and stateful services, which must not
    /// run twice.
    #[default]
    StopFirst,
    /// The new container starts next to the old one, is gated, and only then replaces it:
    /// no downtime. Not for services that publish host ports.
    StartFirst,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Keep rebuilding the category's other services (until `max_failures`).
    Continue,
    /// Stop starting new services of the category after the first failure.
    Stop,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackPolicy {
    /// Roll a failed service back at once.
    Auto,
    /// Leave it for the operator (`playbooks/rollback.rhai`) unless `--rollback-on-fail`.
    Manual,
    /// Never roll back.
    None,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateFailure {
    BuildFailure,
    Unhealthy,
    LatencyBudget,
    LogErrors,
    Restarts,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "auto")]
    pub policy: RollbackPolicy,
    #[serde(default = "pre")]
    pub backup_tag_prefix: String,
    #[serde(default = "all_gates")]
    pub on: Vec<GateFailure>,
}

fn yes() -> bool {
    true
}
fn auto() -> RollbackPolicy {
    RollbackPolicy::Auto
}
fn pre() -> String {
    "pre-".into()
}
fn all_gates() -> Vec<GateFailure> {
    use GateFailure::*;
    vec![BuildFailure, Unhealthy, LatencyBudget, LogErrors, Restarts]
}

impl Default for Rollback {
    fn default() -> Self {
        Self {
            enabled: true,
            policy: RollbackPolicy::Auto,
            backup_tag_prefix: pre(),
            on: all_gates(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub health_path: String,
    pub health_timeout_s: u64,
    pub latency_budget_ms: u64,
    pub frontend_budget_ms: u64,
    pub retries: u64,
    pub retry_backoff_s: u64,
    pub batch_size: u64,
    /// Concurrent deploys (recreate + gate); builds are capped by `batch_size`.
    pub deploy_concurrency: u64,
    pub build_timeout_s: u64,
    pub log_tail_lines: u64,
    pub log_error_pattern: String,
    /// How long the gate watches a healthy new container for restarts and error lines.
    pub settle_s: u64,
    /// Deploy order unless a category or service says otherwise.
    pub order: DeployOrder,
    pub rollback: Rollback,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            health_path: "/health".into(),
            health_timeout_s: 60,
            latency_budget_ms: 500,
            frontend_budget_ms: 3000,
            retries: 3,
            retry_backoff_s: 5,
            batch_size: 5,
            deploy_concurrency: 5,
            build_timeout_s: 600,
            log_tail_lines: 100,
            log_error_pattern: "ERROR".into(),
            settle_s: 2,
            order: DeployOrder::StopFirst,
            rollback: Rollback::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Infrastructure {
    pub port: u16,
    #[serde(default)]
    pub health_path: Option<String>,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub measurement: Option<String>,
    /// The service that writes into it (its data-flow check).
    #[serde(default)]
    pub writer: Option<String>,
    #[serde(default)]
    pub health_timeout_s: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    #[serde(default)]
    pub description: String,
    #[serde(default = "low")]
    pub risk: Risk,
    #[serde(default)]
    pub batch_size: Option<u64>,
    #[serde(default = "continue_")]
    pub on_failure: OnFailure,
    #[serde(default)]
    pub max_failures: Option<u64>,
    /// Whether `batch-rebuild` includes it (the core services have their own story).
    #[serde(default = "yes")]
    pub batch_rebuild: bool,
    #[serde(default)]
    pub latency_budget_ms: Option<u64>,
    #[serde(default)]
    pub health_timeout_s: Option<u64>,
    #[serde(default)]
    pub order: Option<DeployOrder>,
}

fn low() -> Risk {
    Risk::Low
}
fn continue_() -> OnFailure {
    OnFailure::Continue
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub category: String,
    pub port: u16,
    #[serde(default)]
    pub health_path: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub story: Option<u64>,
    #[serde(default)]
    pub latency_budget_ms: Option<u64>,
    #[serde(default)]
    pub health_timeout_s: Option<u64>,
    #[serde(default)]
    pub order: Option<DeployOrder>,
}

/// One service with every setting resolved (service over category over defaults).
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedService {
    pub name: String,
    pub category: String,
    pub port: u16,
    pub health_path: String,
    pub endpoints: Vec<String>,
    pub story: Option<u64>,
    pub latency_budget_ms: u64,
    pub health_timeout_s: u64,
    pub settle_s: u64,
    pub batch_rebuild: bool,
    pub on_failure: OnFailure,
    /// `None`: no limit.
    pub max_failures: Option<u64>,
    pub risk: Risk,
    /// stop-first or start-first (service over category over defaults).
    pub order: DeployOrder,
}

impl FleetConfig {
    /// Reads and checks `path`; errors carry the file name and line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let err = |line: usize, message: String| ConfigError {
            file: file.to_string(),
            line,
            message,
        };
        let cfg: FleetConfig = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            // serde's "unknown field `x`, expected one of …" already names the key; add where
            // it sits so the message reads on its own.
            err(line, e.to_string().replace(" at line", "; at line"))
        })?;
        for (name, svc) in &cfg.services {
            if !cfg.categories.contains_key(&svc.category) {
                let known: Vec<&str> = cfg.categories.keys().map(String::as_str).collect();
                return Err(err(
                    key_line(text, &["services", name, "category"]),
                    format!(
                        "services.{name}.category: unknown category '{}' (known: {})",
                        svc.category,
                        known.join(", ")
                    ),
                ));
            }
            if let Some(p) = svc.health_path.as_deref().filter(|p| !p.starts_with('/')) {
                return Err(err(
                    key_line(text, &["services", name, "health_path"]),
                    format!("services.{name}.health_path: '{p}' must start with /"),
                ));
            }
        }
        for (name, infra) in &cfg.infrastructure {
            if let Some(w) = infra.writer.as_deref()
                && !cfg.services.contains_key(w)
            {
                return Err(err(
                    key_line(text, &["infrastructure", name, "writer"]),
                    format!("infrastructure.{name}.writer: '{w}' is not a service"),
                ));
            }
        }
        cfg.check_writers_stop_first(text, file)?;
        let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, svc) in &cfg.services {
            if let Some(other) = ports.insert(svc.port, name) {
                return Err(err(
                    key_line(text, &["services", name, "port"]),
                    format!(
                        "services.{name}.port: {} is already {other}'s port",
                        svc.port
                    ),
                ));
            }
        }
        if cfg.defaults.batch_size == 0 || cfg.defaults.deploy_concurrency == 0 {
            return Err(err(
                key_line(text, &["defaults", "batch_size"]),
                "defaults.batch_size and defaults.deploy_concurrency must be at least 1".into(),
            ));
        }
        Ok(cfg)
    }

    /// A writer (`infrastructure.*.writer`) must deploy stop-first: started first, two of it
    /// would write every point twice while both run.
    fn check_writers_stop_first(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let writers: Vec<&str> = self
            .infrastructure
            .values()
            .filter_map(|i| i.writer.as_deref())
            .collect();
        for s in self.resolved() {
            if s.order != DeployOrder::StartFirst || !writers.contains(&s.name.as_str()) {
                continue;
            }
            let svc = &self.services[&s.name];
            let (path, key) = match (svc.order, self.categories[&s.category].order) {
                (Some(_), _) => (
                    vec!["services", s.name.as_str(), "order"],
                    format!("services.{}.order", s.name),
                ),
                (None, Some(_)) => (
                    vec!["categories", s.category.as_str(), "order"],
                    format!("categories.{}.order", s.category),
                ),
                _ => (vec!["defaults", "order"], "defaults.order".to_string()),
            };
            return Err(ConfigError {
                file: file.to_string(),
                line: key_line(text, &path),
                message: format!(
                    "{key}: {} writes into InfluxDB and must deploy stop-first (started first, \
                     two of it would write every point twice); set order: stop-first for it",
                    s.name
                ),
            });
        }
        Ok(())
    }

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
                }
            })
            .collect()
    }
}

/// The 1-based line of the key at `path` (each element a mapping key, nested by
/// indentation), or the deepest prefix found; 0 if not even the first key is there. Good
/// enough for block-style YAML, which is what config files are.
pub fn key_line(text: &str, path: &[&str]) -> usize {
    let mut found = 0;
    let mut depth = 0;
    let mut parent_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        if depth == path.len() {
            break;
        }
        let line = raw.split(" #").next().unwrap_or("");
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(p) = parent_indent
            && indent <= p
        {
            // Left the parent's block without finding the key.
            break;
        }
        let key = trimmed.split(':').next().unwrap_or("").trim();
        let key = key.trim_matches(|c| c == '"' || c == '\'');
        if key == path[depth] && trimmed.contains(':') {
            found = i + 1;
            depth += 1;
            parent_indent = Some(indent);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "project: p\ncategories:\n  web:\n    on_failure: stop\nservices:\n  a:\n    category: web\n    port: 80\n  b:\n    category: web\n    port: 81\n    latency_budget_ms: 900\n";

    #[test]
    fn resolves_service_over_category_over_defaults() {
        let cfg = FleetConfig::parse(GOOD, "t.yaml").unwrap();
        let r = cfg.resolved();
        assert_eq!(r[0].name, "a");
        assert_eq!(r[0].latency_budget_ms, 500);
        assert_eq!(r[1].latency_budget_ms, 900);
        assert_eq!(r[0].on_failure, OnFailure::Stop);
        assert_eq!(r[0].health_path, "/health");
    }

    #[test]
    fn deploy_order_resolves_and_writers_stay_stop_first() {
        let text = "project: p\ndefaults:\n  order: start-first\ncategories:\n  web:\n    order: stop-first\n  api: {}\nservices:\n  a:\n    category: web\n    port: 80\n    order: start-first\n  b:\n    category: web\n    port: 81\n  c:\n    category: api\n    port: 82\n";
        let cfg = FleetConfig::parse(text, "s.yaml").unwrap();
        let order: Vec<DeployOrder> = cfg.resolved().iter().map(|s| s.order).collect();
        use DeployOrder::*;
        assert_eq!(order, [StartFirst, StopFirst, StartFirst]);
        let writer = format!("{text}infrastructure:\n  influxdb:\n    port: 8086\n    writer: c\n");
        let e = FleetConfig::parse(&writer, "s.yaml").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.message.contains("defaults.order: c writes into InfluxDB"),
            "{e}"
        );
        let e =
            FleetConfig::parse("project: p\ndefaults:\n  order: sideways\n", "s.yaml").unwrap_err();
        assert!(e.to_string().contains("sideways"), "{e}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = GOOD.replace("    port: 81\n", "    port: 81\n    max_failure: 2\n");
        let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
        assert_eq!(e.line, 12, "{e}");
        assert!(e.message.contains("unknown field `max_failure`"), "{e}");
    }

    #[test]
    fn unknown_category_points_at_its_line() {
        let text = GOOD.replace("  b:\n    category: web", "  b:\n    category: wbe");
        let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("unknown category 'wbe'"), "{e}");
    }

    #[test]
    fn bad_enum_value_is_named() {
        let text = GOOD.replace("on_failure: stop", "on_failure: halt");
        let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("halt"), "{e}");
    }

    #[test]
    fn the_lab_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homeiq/services.yaml");
        let cfg = FleetConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.services.len(), 44);
        let r = cfg.resolved();
        let ui = r.iter().find(|s| s.name == "health-dashboard").unwrap();
        assert_eq!(ui.latency_budget_ms, 3000);
    }

    #[test]
    fn duplicate_port_is_refused() {
        let text = GOOD.replace("port: 81", "port: 80");
        let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
        assert_eq!(e.line, 11, "{e}");
    }
}
