//! `config::` — the fleet configuration (`services.yaml`, the seeds'
//! `phase1-service-config.yaml`), loaded strictly.
//!
//! Playbooks could read the file with `fs::read_yaml`, but then a misspelt key would be
//! silently ignored and every playbook would re-implement "service setting, else category
//! setting, else default". `config::load` refuses unknown keys and bad values with the file
//! and line, and hands back each service with its effective settings.
//!
//! ```rhai
//! let cfg = config::load("examples/homeiq/services.yaml");
//! for svc in cfg.services { print(`${svc.name}: ${svc.category}, budget ${svc.latency_budget_ms} ms`); }
//! let kind = config::gate_failure("latency_budget");   // a typo here is an error
//! if kind in cfg.defaults.rollback.on { print("a slow service is rolled back"); }
//! ```

use rhai::plugin::*;
use rhai::{Dynamic, Engine, EvalAltResult};

use super::{at, config_error, fail, invalid, with_host};
use crate::config::{FleetConfig, GateFailure};

#[export_module]
pub mod config_api {
    use super::*;

    /// Loads a fleet config (path relative to the workspace). Returns `#{project,
    /// compose_file, dir, defaults, infrastructure, categories, services}` where `services`
    /// is an array, in file order, of `#{name, category, port, health_path, endpoints,
    /// story, latency_budget_ms, health_timeout_s, settle_s, batch_rebuild, on_failure,
    /// max_failures, risk, order, engine}` with category and default settings applied
    /// (`engine` is `()` for the default engine); `compose_file` is relative to the
    /// workspace. The config's `engines:` are declared for `docker::use_engine`. An unknown
    /// key or a bad value fails with its file and line.
    #[rhai_fn(return_raw)]
    pub fn load(ctx: NativeCallContext, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let full = super::super::fs::resolve(&h.root, path)?;
            let cfg = FleetConfig::load(&full).map_err(|mut e| {
                e.file = path.to_string();
                config_error(e.to_string())
            })?;
            for (name, url) in &cfg.engines {
                h.engines
                    .declare(name, url)
                    .map_err(|e| config_error(format!("{path}: engines.{name}: {e}")))?;
            }
            let dir = std::path::Path::new(path)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let compose = if dir.is_empty() {
                cfg.compose_file.clone()
            } else {
                format!("{dir}/{}", cfg.compose_file)
            };
            let mut doc = serde_json::to_value(&cfg).map_err(|e| fail(e.to_string()))?;
            let services = serde_json::to_value(cfg.resolved()).map_err(|e| fail(e.to_string()))?;
            if let Some(m) = doc.as_object_mut() {
                m.insert("services".into(), services);
                m.insert("compose_file".into(), compose.into());
                m.insert("dir".into(), dir.into());
            }
            super::super::fs::json_to_dynamic(doc)
        })
    }

    /// The gate-failure kind `name` as `rollback.on` spells it (build_failure, unhealthy,
    /// latency_budget, log_errors, restarts). Any other name is an error: a kind compared
    /// with `rollback.on` by spelling would let a typo silently disable the rollback.
    #[rhai_fn(return_raw)]
    pub fn gate_failure(ctx: NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
        at(ctx.call_position(), || {
            let kind: GateFailure = name.parse().map_err(|e| invalid(format!("{e}")))?;
            Ok(kind.name().to_string())
        })
    }
}

/// Built once per process: every engine shares it.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(config_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_static_module("config", MODULE.clone());
}
