//! The shape of `services.yaml`: every section as a struct that denies unknown fields, every
//! choice as a closed enumeration, with the defaults a missing key takes.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

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
    /// Named Docker engines (`edge: "ssh://root@10.0.0.7"`) that categories and services
    /// pick with `engine:`; the rest run on the default engine (`DOCKER_HOST`).
    #[serde(default)]
    pub engines: IndexMap<String, String>,
    /// What runs the fleet: `compose` (containers on engines) or `swarm` (Swarm services of
    /// a stack named after `project`). Unset: detected from what runs (a service labelled
    /// `com.docker.stack.namespace=<project>` means Swarm). Not called `engine`: that key
    /// already names the engine a category or service runs on.
    #[serde(default)]
    pub orchestrator: Option<Orchestrator>,
    /// Where Swarm images are pushed, `host[:port]/path` (`127.0.0.1:5000/homeiq`): every
    /// node pulls a service's image from it, so a build only exists for Swarm once pushed.
    #[serde(default)]
    pub registry: Option<String>,
    /// How Swarm rolls a new image out (its UpdateConfig).
    #[serde(default)]
    pub swarm: SwarmSettings,
}

/// What places and restarts the fleet's containers.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Orchestrator {
    /// docker compose projects: dockhand recreates containers itself.
    Compose,
    /// Docker Swarm services: dockhand builds, pushes and asks Swarm to update.
    Swarm,
}

/// What Swarm does when a new task fails during an update (UpdateConfig.FailureAction).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SwarmFailureAction {
    /// Swarm puts the previous spec back by itself (the default: a bad image never stays).
    #[default]
    Rollback,
    /// Swarm stops the update where it is; dockhand then rolls back (or records the failure).
    Pause,
    /// Swarm carries on with the next tasks.
    Continue,
}

/// A Swarm service update's settings: Swarm's UpdateConfig, with the deploy `order` taken
/// from the service's resolved `order` (the same key compose deploys use).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmSettings {
    /// Tasks updated at once (0: all at once, Swarm's meaning).
    pub parallelism: u64,
    /// Seconds between two groups of tasks.
    pub delay_s: u64,
    /// Seconds Swarm watches each new task for a failure before it counts as updated.
    pub monitor_s: u64,
    pub failure_action: SwarmFailureAction,
    /// How long an update (or a rollback) may take to converge.
    pub converge_timeout_s: u64,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        Self {
            parallelism: 1,
            delay_s: 0,
            monitor_s: 5,
            failure_action: SwarmFailureAction::Rollback,
            converge_timeout_s: 300,
        }
    }
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

/// How many builds (`defaults.batch_size`) or recreates (`defaults.deploy_concurrency`) run
/// at once: a fixed number, or `auto`.
///
/// **Why `auto`.** The seeds' batches of 5 were there to protect the host, and a fixed count
/// cannot know the host: on one it starves the builder, on another it is too many. With
/// `auto` the builds are not counted: the ones that wait together go to BuildKit as one solve
/// (it schedules the steps on the cores it has), and a solve does not start while the host is
/// short of memory (`docker::build`'s `batch`). `--batch-size N` still caps it. Recreates
/// are not counted either, as `docker compose up -d` does not count them: a stop-first
/// recreate stops the old container before the new one starts, so it adds no memory, and the
/// engine's part is mostly waiting (measured on the full lab at load 25: 44 recreates at once
/// took about 10 s each, 5 at a time about 7 s each, so 5 slots made the fleet's recreates
/// five times longer). `--deploy-concurrency N` caps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    #[default]
    Auto,
    Fixed(u64),
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Auto => s.serialize_str("auto"),
            Limit::Fixed(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number (1 or more) or \"auto\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Limit, E> {
                Ok(Limit::Fixed(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Limit, E> {
                u64::try_from(n)
                    .map(Limit::Fixed)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Limit, E> {
                if v == "auto" {
                    Ok(Limit::Auto)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
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

/// Why a rebuild failed, as `rollback.on` lists the failures that roll back. Scripts name
/// them through `config::gate_failure`, which refuses other names: compared by spelling, a
/// typo would silently disable the rollback.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateFailure {
    BuildFailure,
    Unhealthy,
    LatencyBudget,
    LogErrors,
    Restarts,
}

impl GateFailure {
    pub const ALL: [GateFailure; 5] = [
        GateFailure::BuildFailure,
        GateFailure::Unhealthy,
        GateFailure::LatencyBudget,
        GateFailure::LogErrors,
        GateFailure::Restarts,
    ];

    /// The name as the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            GateFailure::BuildFailure => "build_failure",
            GateFailure::Unhealthy => "unhealthy",
            GateFailure::LatencyBudget => "latency_budget",
            GateFailure::LogErrors => "log_errors",
            GateFailure::Restarts => "restarts",
        }
    }
}

/// A name that is not a [`GateFailure`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown gate-failure kind '{0}'; the kinds are: build_failure, unhealthy, latency_budget, log_errors, restarts"
)]
pub struct UnknownGateFailure(pub String);

impl std::str::FromStr for GateFailure {
    type Err = UnknownGateFailure;
    fn from_str(s: &str) -> Result<Self, UnknownGateFailure> {
        GateFailure::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownGateFailure(s.to_string()))
    }
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
    /// Concurrent builds: `auto` (the default) or a number.
    pub batch_size: Limit,
    /// Concurrent recreates (the engine's part of a deploy; gates run beside them): `auto`
    /// (the default) or a number; builds are capped by `batch_size`.
    pub deploy_concurrency: Limit,
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
            batch_size: Limit::Auto,
            deploy_concurrency: Limit::Auto,
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
    /// Its OTLP/HTTP port, for a trace store (Jaeger, a collector): story 3 counts the
    /// bodies it kept across its restart, and `run --otlp` can be pointed at it.
    #[serde(default)]
    pub otlp_port: Option<u16>,
}

/// A category's settings. Every key may be left out (the default below), so the struct
/// takes its defaults as a whole rather than field by field.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Category {
    pub description: String,
    pub risk: Risk,
    pub batch_size: Option<u64>,
    pub on_failure: OnFailure,
    pub max_failures: Option<u64>,
    /// Whether `batch-rebuild` includes it (the core services have their own story).
    pub batch_rebuild: bool,
    pub latency_budget_ms: Option<u64>,
    pub health_timeout_s: Option<u64>,
    pub order: Option<DeployOrder>,
    /// The engine (a name under `engines:`) the category's services run on.
    pub engine: Option<String>,
}

impl Default for Category {
    fn default() -> Self {
        Category {
            description: String::new(),
            risk: Risk::Low,
            batch_size: None,
            on_failure: OnFailure::Continue,
            max_failures: None,
            batch_rebuild: true,
            latency_budget_ms: None,
            health_timeout_s: None,
            order: None,
            engine: None,
        }
    }
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
    /// The engine (a name under `engines:`) it runs on, over its category's.
    #[serde(default)]
    pub engine: Option<String>,
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
    /// The engine name (service over category); `None`: the default engine (`DOCKER_HOST`).
    pub engine: Option<String>,
}

/// Most builds or deploys one batch may run at once.
pub const MAX_BATCH: u64 = 256;
