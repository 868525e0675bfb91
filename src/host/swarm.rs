//! `swarm::` — fleets that run as Docker Swarm services (`orchestrator: swarm`), and
//! `docker::push`.
//!
//! Swarm places, starts and restarts the tasks; these calls ask it to change a service's
//! image and read back what it did, so a playbook can gate and roll back as it does for
//! compose. Service names are the compose file's (`"weather-api"`); with a project in use
//! (`docker::use_project("homeiq")`) they are looked up as the stack's (`homeiq_weather-api`)
//! first. Calls go to this thread's engine (`docker::use_engine`), which must be a manager.
//!
//! ```rhai
//! docker::use_project("homeiq");
//! let tag = swarm::image_ref("127.0.0.1:5000/homeiq", "weather-api", "phase1-20261130-1200");
//! docker::build(#{ compose_file: "homeiq/docker-compose.yml", service: "weather-api", tag: tag });
//! let p = docker::push(tag);                        // #{image, digest, ms}
//! let u = swarm::update("weather-api", #{ image: `${tag}@${p.digest}`, order: "start-first" });
//! let w = swarm::wait("weather-api", #{ after: u.started_before, timeout: "5m" });
//! if w.state != "completed" { print(`Swarm says: ${w.state}: ${w.message}`); }
//! for t in swarm::tasks("weather-api") { print(`${t.slot} ${t.state} ${t.error}`); }
//! print(swarm::reach("weather-api", 8009));        // "172.18.0.3:8009": probe it there
//! ```
//!
//! Mutating calls (`update`, `rollback`, `docker::push`) are planned, not done, in
//! `--dry-run` and refused in `--read-only`. The engine side is `src/docker/swarm/`.

use std::time::Duration;

use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, INT, Map};

use super::docker::conn::{client, project, to_dyn};
use super::time::to_duration;
use super::{HostCtx, HostResult, Mode, fail, invalid, with_host};
use crate::docker::swarm as sw;

/// Runs `f` with this thread's engine and the stack in use.
fn on_swarm<T, F>(
    h: &HostCtx,
    f: impl FnOnce(bollard::Docker, Option<String>) -> F,
) -> HostResult<T>
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let d = client(h)?;
    h.block_on(f(d, project(h)))?.map_err(fail)
}

fn to_map<T: serde::Serialize>(v: &T) -> HostResult<Map> {
    to_dyn(v)?
        .try_cast::<Map>()
        .ok_or_else(|| fail("internal: not a map"))
}

fn get_str(opts: &Map, key: &str) -> Option<String> {
    opts.get(key)
        .filter(|v| !v.is_unit())
        .map(|v| v.to_string())
}

fn check_keys(opts: &Map, known: &[&str], what: &str) -> HostResult<()> {
    match opts.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!(
            "unknown {what} option '{k}' (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `swarm::update`'s options as [`sw::UpdateSettings`] and the image.
fn update_settings(opts: &Map) -> HostResult<(String, sw::UpdateSettings)> {
    let known = [
        "image",
        "parallelism",
        "delay",
        "monitor",
        "order",
        "failure_action",
    ];
    check_keys(opts, &known, "swarm::update")?;
    let image = get_str(opts, "image")
        .ok_or_else(|| invalid("swarm::update needs an `image`, like #{ image: tag }"))?;
    let dur = |k: &str, d: Duration| opts.get(k).map_or(Ok(d), to_duration);
    let parallelism = match opts.get("parallelism") {
        None => 1,
        Some(v) => v
            .as_int()
            .ok()
            .filter(|n| (0..=1024).contains(n))
            .ok_or_else(|| invalid("swarm::update: parallelism is a whole number 0–1024"))?,
    };
    let s = sw::UpdateSettings {
        parallelism,
        delay: dur("delay", Duration::ZERO)?,
        monitor: dur("monitor", Duration::from_secs(5))?,
        order: get_str(opts, "order").unwrap_or_else(|| "stop-first".into()),
        failure_action: get_str(opts, "failure_action").unwrap_or_else(|| "rollback".into()),
    };
    // Checked here, before the engine is asked: a typo is the script's bug (exit 2).
    if !["stop-first", "start-first"].contains(&s.order.as_str()) {
        return Err(invalid(format!(
            "swarm::update: order '{}': write stop-first or start-first",
            s.order.escape_default()
        )));
    }
    if !["rollback", "pause", "continue"].contains(&s.failure_action.as_str()) {
        return Err(invalid(format!(
            "swarm::update: failure_action '{}': write rollback, pause or continue",
            s.failure_action.escape_default()
        )));
    }
    Ok((image, s))
}

/// A planned mutation's answer in `--dry-run`.
fn planned() -> Map {
    let mut m = Map::new();
    m.insert("planned".into(), true.into());
    m.insert("changed".into(), false.into());
    m
}

#[export_module]
pub mod swarm_api {
    use super::*;

    /// "swarm" when a stack named `project` has services on this engine (it is a Swarm
    /// manager), else "compose". For a fleet config without `orchestrator:`.
    #[rhai_fn(return_raw)]
    pub fn detect(ctx: NativeCallContext, project: &str) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let p = project.to_string();
            on_swarm(h, |d, _| async move {
                sw::detect(&d, &p).await.map(String::from)
            })
        })
    }

    /// `<registry>/<service>:<tag>`, each part checked (a registry with a host, a service
    /// that is an image name, a tag of letters, digits, `.`, `_`, `-`): the immutable tag
    /// of one build.
    #[rhai_fn(return_raw)]
    pub fn image_ref(
        ctx: NativeCallContext,
        registry: &str,
        service: &str,
        tag: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        super::super::at(ctx.call_position(), || {
            sw::image_ref(registry, service, tag).map_err(invalid)
        })
    }

    /// The service `name`: `#{id, name, stack, version, image, update_state,
    /// update_message, update_started, replicas, published}` (`published`: an array of
    /// `[target, published]` ports; `update_state` "" when it was never updated).
    #[rhai_fn(return_raw)]
    pub fn service(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let s = on_swarm(h, |d, p| async move {
                sw::find_service(&d, p.as_deref(), name).await
            })?;
            to_map(&sw::ServiceInfo::from(&s))
        })
    }

    /// Points service `name` at a new image and returns at once (follow with
    /// `swarm::wait`). Options: `image` (required), `parallelism` (default 1; 0: all
    /// tasks at once), `delay`, `monitor` (default 5 s), `order` ("stop-first" |
    /// "start-first"), `failure_action` ("rollback" (default) | "pause" | "continue").
    /// Returns `#{version_before, started_before, image_before, changed}`; `changed` is
    /// false (and nothing was asked of Swarm) when the service already runs that image.
    #[rhai_fn(return_raw)]
    pub fn update(
        ctx: NativeCallContext,
        name: &str,
        opts: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let (image, s) = update_settings(&opts)?;
            if !h.mutation("swarm::update", name, &format!("service image {image}"))? {
                return Ok(planned());
            }
            let u = on_swarm(h, |d, p| async move {
                sw::update_image(&d, p.as_deref(), name, &image, &s).await
            })?;
            to_map(&u)
        })
    }

    /// Asks Swarm to put back service `name`'s previous spec (`docker service rollback`)
    /// and returns at once; follow with `swarm::wait(name, #{after: r.started_before})`.
    #[rhai_fn(return_raw)]
    pub fn rollback(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            if !h.mutation("swarm::rollback", name, "to its previous spec")? {
                return Ok(planned());
            }
            let u = on_swarm(h, |d, p| async move {
                sw::rollback(&d, p.as_deref(), name).await
            })?;
            to_map(&u)
        })
    }

    /// Waits on the service's events until Swarm's update (or rollback) ends: `#{state,
    /// message, said, ms, image, version}` with state "completed", "paused",
    /// "rollback_completed", "rollback_paused" (Swarm's words, and `message` its last one;
    /// `said`: what it said on the way, like why it started a rollback), or "timeout". Options:
    /// `after` (the `started_before` an update or rollback returned: an older final state
    /// does not count), `timeout` (default 5 minutes). In `--dry-run`, "planned".
    #[rhai_fn(return_raw)]
    pub fn wait(ctx: NativeCallContext, name: &str, opts: Map) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            check_keys(&opts, &["after", "timeout"], "swarm::wait")?;
            let after = get_str(&opts, "after");
            let timeout = opts
                .get("timeout")
                .map_or(Ok(Duration::from_secs(300)), to_duration)?;
            if h.mode == Mode::DryRun {
                let mut m = Map::new();
                m.insert("state".into(), "planned".into());
                return Ok(m);
            }
            let w = on_swarm(h, |d, p| async move {
                sw::wait_update(&d, p.as_deref(), name, after.as_deref(), timeout).await
            })?;
            let mut m = Map::new();
            m.insert("state".into(), w.state.into());
            m.insert("message".into(), w.message.into());
            let said: Array = w.said.into_iter().map(Dynamic::from).collect();
            m.insert("said".into(), said.into());
            m.insert("ms".into(), (w.ms as INT).into());
            m.insert("image".into(), w.service.image.into());
            m.insert("version".into(), (w.service.version as INT).into());
            Ok(m)
        })
    }

    /// The tasks of service `name` Swarm still knows, newest first: `#{id, slot, node,
    /// desired, state, message, error, image, container_id, exit_code, created}`. The
    /// current ones have `desired == "running"`; a task that failed (Swarm's "unhealthy
    /// container", "task: non-zero exit (1)") stays in the list with its `error`.
    #[rhai_fn(return_raw)]
    pub fn tasks(ctx: NativeCallContext, name: &str) -> Result<Array, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let (_, tasks) = on_swarm(h, |d, p| async move {
                sw::list_tasks(&d, p.as_deref(), name).await
            })?;
            tasks.iter().map(to_dyn).collect()
        })
    }

    /// The log of task `id` (stdout and stderr, read through Swarm, so from any node; at
    /// most 8 MiB). Options: `grep` (keep the lines containing it, case-insensitive).
    #[rhai_fn(return_raw)]
    pub fn task_logs(
        ctx: NativeCallContext,
        id: &str,
        opts: Map,
    ) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            check_keys(&opts, &["grep"], "swarm::task_logs")?;
            let text = on_swarm(h, |d, _| async move { sw::task_logs(&d, id).await })?;
            Ok(match get_str(&opts, "grep") {
                Some(g) => crate::docker::engine::grep_lines(&text, &g),
                None => text,
            })
        })
    }

    /// `"host:port"` where this machine reaches port `port` of service `name`: a running
    /// task's address on `docker_gwbridge` when one runs on this engine's node (the new task
    /// itself), else its published port (Swarm's routing mesh); through the tunnel on an ssh
    /// engine. Fails, saying to publish the port, when neither exists.
    #[rhai_fn(return_raw)]
    pub fn reach(
        ctx: NativeCallContext,
        name: &str,
        port: INT,
    ) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let (ip, p) = on_swarm(h, |d, s| async move {
                sw::reach(&d, s.as_deref(), name, port).await
            })?;
            super::super::docker::engines::reach(h, &ip, p)
        })
    }
}

#[export_module]
pub mod push_api {
    use super::*;

    /// Pushes `image` (`registry/name:tag`) to its registry, so every Swarm node can pull
    /// it: `#{image, digest, ms}` (`digest`: the registry's `sha256:…`, to pin the service
    /// to, or `()` if it did not say). A registry on 127.0.0.0/8 needs no TLS; another one
    /// must serve TLS or be in the daemon's insecure-registries.
    #[rhai_fn(return_raw)]
    pub fn push(ctx: NativeCallContext, image: &str) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            if !h.mutation("docker::push", image, "to its registry")? {
                let mut m = planned();
                m.insert("image".into(), image.into());
                m.insert("digest".into(), Dynamic::UNIT);
                return Ok(m);
            }
            let p = on_swarm(h, |d, _| async move { sw::push(&d, image).await })?;
            to_map(&p)
        })
    }
}

/// `docker::push`, merged into the `docker` namespace.
pub fn docker_module() -> rhai::Module {
    exported_module!(push_api)
}

/// Built once per process: every engine shares it.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(swarm_api).into());

pub fn register(engine: &mut rhai::Engine) {
    engine.register_static_module("swarm", MODULE.clone());
}
