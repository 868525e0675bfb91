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
        let text = crate::source::read_capped(path, "config").map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            message: match e {
                crate::error::Error::Io { source, .. } => format!("cannot read: {source}"),
                other => other.to_string(),
            },
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
        let text = crate::source::strip_bom(text);
        if let Some(line) = crate::host::fs::yaml_too_deep(text) {
            return Err(err(
                line,
                format!(
                    "collections nest more than {} deep; this is not a fleet config",
                    crate::host::fs::MAX_YAML_FLOW_DEPTH
                ),
            ));
        }
        if let Some((key, first, second)) = duplicate_key(text) {
            return Err(err(
                second,
                format!(
                    "duplicate key '{key}' (first on line {first}, again on line {second}); \
                     YAML would silently keep only the second — remove or rename one"
                ),
            ));
        }
        // The generic tree first: it refuses duplicates in flow style (`{a: 1, a: 2}`) and
        // shows nulls, which the typed parse would turn into the text "~".
        let tree: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            err(line, e.to_string().replace(" at line", "; at line"))
        })?;
        let mut path = Vec::new();
        if let Some(null_at) = find_null(&tree, &mut path) {
            let refs: Vec<&str> = null_at.iter().map(String::as_str).collect();
            return Err(err(
                key_line(text, &refs),
                format!(
                    "{}: needs a value but is empty (null / ~); give it one or remove the key",
                    null_at.join(".")
                ),
            ));
        }
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
        check_ranges(&cfg, text).map_err(|(line, m)| err(line, m))?;
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

/// Keys whose value may be left empty (`~`): the optional settings.
const NULLABLE: &[&str] = &[
    "health_path",
    "database",
    "measurement",
    "writer",
    "health_timeout_s",
    "batch_size",
    "max_failures",
    "latency_budget_ms",
    "story",
];

/// The path of the first null value where a value is required.
fn find_null(v: &serde_yaml::Value, path: &mut Vec<String>) -> Option<Vec<String>> {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, val) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                path.push(key);
                // Optional settings sit at `<section>.<name>.<key>`.
                let nullable = path.len() >= 3 && NULLABLE.contains(&path[path.len() - 1].as_str());
                if val.is_null() && !nullable {
                    return Some(path.clone());
                }
                if let Some(p) = find_null(val, path) {
                    return Some(p);
                }
                path.pop();
            }
            None
        }
        serde_yaml::Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                if item.is_null() {
                    return Some(path.clone());
                }
                if let Some(p) = find_null(item, path) {
                    return Some(p);
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}

/// A key given twice in one block mapping: (key, first line, second line). YAML parsers
/// differ on this (ours keeps the last one silently), and a second `data-api:` entry
/// replacing the first is exactly the mistake nobody notices.
pub fn duplicate_key(text: &str) -> Option<(String, usize, usize)> {
    use std::collections::HashMap;
    // Open mappings: (indentation of their keys, key → line).
    let mut scopes: Vec<(usize, HashMap<String, usize>)> = Vec::new();
    let mut block_scalar_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed_end = raw.trim_end();
        let body = trimmed_end.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut indent = trimmed_end.len() - body.len();
        if let Some(b) = block_scalar_indent {
            if indent > b {
                continue; // text of a `|` or `>` block
            }
            block_scalar_indent = None;
        }
        if body == "---" || body == "..." {
            scopes.clear();
            continue;
        }
        let mut body = body;
        // `- key: v` opens a new mapping (one list item) at the key's indentation.
        let mut new_item = false;
        while let Some(rest) = body.strip_prefix("- ") {
            indent += 2;
            body = rest.trim_start();
            new_item = true;
        }
        scopes.retain(|(ind, _)| *ind < indent || (*ind == indent && !new_item));
        let Some(key) = block_key(body) else {
            continue;
        };
        let value = body[body.find(':').map_or(body.len(), |c| c + 1)..].trim_start();
        if value.starts_with('|') || value.starts_with('>') {
            block_scalar_indent = Some(indent);
        }
        match scopes.last_mut() {
            Some((ind, keys)) if *ind == indent => {
                if let Some(first) = keys.insert(key.clone(), line_no) {
                    return Some((key, first, line_no));
                }
            }
            _ => scopes.push((indent, HashMap::from([(key, line_no)]))),
        }
    }
    None
}

/// The key of a block mapping line (`key: value`, `"key": value`), if it is one.
fn block_key(body: &str) -> Option<String> {
    if body.starts_with(['{', '[', '&', '*', '!', '|', '>', '"', '\'']) {
        let q = body.chars().next()?;
        if q == '"' || q == '\'' {
            let end = body[1..].find(q)? + 1;
            let after = &body[end + 1..];
            return (after.starts_with(':')).then(|| body[1..end].to_string());
        }
        return None;
    }
    let colon = body
        .find(": ")
        .or_else(|| body.strip_suffix(':').map(str::len))?;
    let key = body[..colon].trim();
    (!key.is_empty() && !key.contains(" #")).then(|| key.to_string())
}

/// Numbers that parse but make no sense: a port 0, a batch of 0 builds.
fn check_ranges(cfg: &FleetConfig, text: &str) -> Result<(), (usize, String)> {
    let bad = |path: &[&str], msg: String| (key_line(text, path), msg);
    for (name, s) in &cfg.services {
        if s.port == 0 {
            return Err(bad(
                &["services", name, "port"],
                format!("services.{name}.port: 0 is not a port (1–65535)"),
            ));
        }
        if s.health_timeout_s == Some(0) {
            return Err(bad(
                &["services", name, "health_timeout_s"],
                format!("services.{name}.health_timeout_s: must be at least 1"),
            ));
        }
    }
    for (name, i) in &cfg.infrastructure {
        if i.port == 0 {
            return Err(bad(
                &["infrastructure", name, "port"],
                format!("infrastructure.{name}.port: 0 is not a port (1–65535)"),
            ));
        }
    }
    for (name, c) in &cfg.categories {
        if let Some(b) = c.batch_size
            && !(1..=MAX_BATCH).contains(&b)
        {
            return Err(bad(
                &["categories", name, "batch_size"],
                format!("categories.{name}.batch_size: {b} is out of range (1–{MAX_BATCH})"),
            ));
        }
        if c.health_timeout_s == Some(0) {
            return Err(bad(
                &["categories", name, "health_timeout_s"],
                format!("categories.{name}.health_timeout_s: must be at least 1"),
            ));
        }
    }
    let d = &cfg.defaults;
    for (key, v) in [
        ("batch_size", d.batch_size),
        ("deploy_concurrency", d.deploy_concurrency),
    ] {
        if v > MAX_BATCH {
            return Err(bad(
                &["defaults", key],
                format!("defaults.{key}: {v} is out of range (1–{MAX_BATCH})"),
            ));
        }
    }
    for (key, v) in [
        ("health_timeout_s", d.health_timeout_s),
        ("build_timeout_s", d.build_timeout_s),
    ] {
        if v == 0 {
            return Err(bad(
                &["defaults", key],
                format!("defaults.{key}: must be at least 1"),
            ));
        }
    }
    Ok(())
}

/// Most builds or deploys one batch may run at once.
pub const MAX_BATCH: u64 = 256;

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
    fn duplicate_keys_name_both_lines() {
        let text = GOOD.replace("  b:\n", "  a:\n");
        let e = FleetConfig::parse(&text, "s.yaml").unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.message.contains("first on line 6"), "{e}");
        let text = GOOD.replace(
            "categories:\n  web:\n    on_failure: stop\n",
            "categories:\n  web:\n    on_failure: stop\n  web:\n    risk: high\n",
        );
        let e = FleetConfig::parse(&text, "s.yaml").unwrap_err();
        assert!(e.message.contains("duplicate key 'web'"), "{e}");
        // Flow style is caught by the YAML parser itself.
        let e = FleetConfig::parse(
            "project: p\ncategories: {w: {}, w: {}}\nservices: {}\n",
            "s",
        )
        .unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
        // The same key in two list items or two mappings is fine.
        assert!(duplicate_key("a:\n  x: 1\nb:\n  x: 2\nl:\n  - x: 1\n  - x: 2\n").is_none());
    }

    #[test]
    fn nulls_where_a_value_is_required_name_key_and_line() {
        let e = FleetConfig::parse(&GOOD.replace("project: p", "project: ~"), "s").unwrap_err();
        assert_eq!(
            (e.line, e.message.starts_with("project:")),
            (1, true),
            "{e}"
        );
        let e = FleetConfig::parse(&GOOD.replace("port: 81", "port:"), "s").unwrap_err();
        assert!(e.message.starts_with("services.b.port"), "{e}");
        assert_eq!(e.line, 11);
        // An optional setting may be left empty.
        FleetConfig::parse(
            &GOOD.replace("latency_budget_ms: 900", "latency_budget_ms: ~"),
            "s",
        )
        .unwrap();
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let e = FleetConfig::parse(&GOOD.replace("port: 81", "port: 0"), "s").unwrap_err();
        assert!(e.message.contains("0 is not a port"), "{e}");
        let e = FleetConfig::parse(&GOOD.replace("on_failure: stop", "batch_size: 0"), "s")
            .unwrap_err();
        assert!(e.message.contains("batch_size: 0 is out of range"), "{e}");
        assert_eq!(e.line, 4);
    }

    #[test]
    fn duplicate_port_is_refused() {
        let text = GOOD.replace("port: 81", "port: 80");
        let e = FleetConfig::parse(&text, "t.yaml").unwrap_err();
        assert_eq!(e.line, 11, "{e}");
    }
}
