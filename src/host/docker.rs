//! `docker::` — the Docker engine, compose-aware.
//!
//! Names are compose services first (`"data-api"`), then container names or ids; set the
//! compose project with `docker::use_project("homeiq")` (or `COMPOSE_PROJECT_NAME`) so two
//! projects with a `data-api` never get mixed up. The connection (`DOCKER_HOST` or the local
//! socket) is made on first use; when no engine answers, calls fail with
//! "cannot reach Docker at …: is the daemon running?".
//!
//! Mutating calls (`restart`, `stop`, `start`, `rm`) are recorded, not done, in `--dry-run`
//! and refused in `--read-only`; `exec` needs `--allow-exec`.
//!
//! ```rhai
//! docker::use_project("homeiq");
//! for c in docker::ps(#{ category: "integration" }) { print(`${c.service} ${c.health}`); }
//! docker::restart("influxdb");
//! let h = docker::wait_healthy("influxdb", #{ timeout: "2m" });
//! if h.status != "healthy" { throw `influxdb: ${h.status} ${h.note}`; }
//! print(docker::logs("data-api", #{ tail: 50, grep: "error" }));
//! try { docker::build(#{ context: "svc", tag: "svc:1" }) }
//! catch (e) { if docker::failure_kind(e) == "engine" { /* worth a retry */ } }
//! ```
//!
//! What happens lives in `src/docker/` (typed, no Rhai); this file only turns option maps
//! into its arguments (an unknown option is an error naming the known ones) and its results
//! into maps.

use std::time::Duration;

use bollard::Docker;
use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, Map};

use super::{HostCtx, HostResult, Mode, fail, invalid, lock, refused, with_host};
use crate::docker as dk;
use crate::docker::engine::{self as ops, Action};
use crate::docker::usage::{self, Usage};

/// `docker::build`'s options (the longest list of any call) and its result.
mod build_options;
pub(super) mod conn;
pub mod engines;
mod failure;
mod options;

use conn::{changed, to_dyn};
pub use conn::{client, project};
use failure::kind_word;
pub use failure::{build_failure, failure_kind_of};
use options::{check_keys, log_query, opt_str, ps_filter, wait_options};

/// A typed result as the map scripts see.
fn to_map<T: serde::Serialize>(v: &T, what: &str) -> HostResult<Map> {
    to_dyn(v)?
        .try_cast::<Map>()
        .ok_or_else(|| fail(format!("internal: {what} result")))
}

/// Runs `f` on the engine with the client and the project in use.
fn on_engine<T, F>(h: &HostCtx, f: impl FnOnce(Docker, Option<String>) -> F) -> HostResult<T>
where
    F: std::future::Future<Output = T>,
{
    let d = client(h)?;
    h.block_on(f(d, project(h)))
}

fn inspect_of(h: &HostCtx, name: &str) -> HostResult<bollard::models::ContainerInspectResponse> {
    on_engine(
        h,
        |d, p| async move { dk::find(&d, p.as_deref(), name).await },
    )?
    .map_err(fail)
}

/// The id of the container behind `name`.
fn id_of(h: &HostCtx, name: &str) -> HostResult<String> {
    Ok(inspect_of(h, name)?.id.unwrap_or_default())
}

/// Runs a lifecycle action (start/stop/restart/rm) on the container behind `name`.
fn lifecycle(ctx: &NativeCallContext, action: Action, name: &str) -> HostResult<()> {
    with_host(ctx, |h| {
        let what = format!("docker::{}", action.verb());
        // --read-only refuses before the engine is contacted (like tag/rmi/build).
        if h.mode == Mode::ReadOnly {
            h.mutation(&what, name, "")?;
        }
        let c = inspect_of(h, name)?;
        let id = c.id.clone().unwrap_or_default();
        let cname = dk::container_name(&c);
        // A Swarm task is restarted the Swarm way: Swarm replaces it (`docker service
        // update --force`), and the call returns once Swarm is done.
        if let (Action::Restart, Some(sid)) = (action, dk::swarm::task_service(&c)) {
            if !h.mutation(
                &what,
                name,
                &format!("Swarm service of task {cname} (forced update)"),
            )? {
                return Ok(());
            }
            let d = client(h)?;
            let w =
                h.block_on(async move { dk::swarm::redeploy(&d, &sid, None, SWARM_WAIT).await })?;
            changed(h);
            return swarm_done(name, w);
        }
        // Stopping or removing a task's container does not stop its service: Swarm starts
        // another task at once (and starts nothing a user stopped). Doing it would look done
        // and be undone, so it is refused with what does the job on Swarm.
        if let Some(sid) = dk::swarm::task_service(&c) {
            return Err(fail(swarm_task_refusal(action, name, &cname, &c, &sid)));
        }
        if !h.mutation(&what, name, &format!("container {cname}"))? {
            return Ok(());
        }
        let d = client(h)?;
        let r = h.block_on(async move { ops::lifecycle(&d, &id, &cname, action).await })?;
        changed(h);
        r.map_err(|e| fail(e.to_string()))
    })
}

/// Why `docker::stop`/`start`/`rm` refuse the container of a Swarm task, and what to run.
fn swarm_task_refusal(
    action: Action,
    name: &str,
    cname: &str,
    c: &bollard::models::ContainerInspectResponse,
    sid: &str,
) -> String {
    let svc = c
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get("com.docker.swarm.service.name"))
        .map_or(sid, String::as_str);
    let instead = match action {
        Action::Remove => format!("remove the service (`docker service rm {svc}`)"),
        Action::Start => format!("scale the service back up (`docker service scale {svc}=1`)"),
        _ => format!("scale the service to 0 (`docker service scale {svc}=0`)"),
    };
    format!(
        "docker::{} {name}: {cname} is a task of Swarm service {svc}, and Swarm replaces its \
         tasks itself, so this would be undone at once; {instead}, or restart it with \
         docker::restart (a forced update)",
        action.verb()
    )
}

/// How long `docker::restart` and `docker::recreate` of a Swarm task wait for Swarm.
const SWARM_WAIT: Duration = Duration::from_secs(300);

/// A Swarm update `docker::restart`/`recreate` awaited: fine when Swarm completed it.
fn swarm_done(name: &str, w: Result<dk::swarm::UpdateWait, String>) -> HostResult<()> {
    let w = w.map_err(fail)?;
    if w.state == "completed" {
        Ok(())
    } else {
        Err(fail(format!(
            "Swarm's update of {name} ended {}: {}",
            w.state, w.message
        )))
    }
}

/// How long `docker::stats` waits for the engine's sample (it takes about a second).
const STATS_WITHIN: Duration = Duration::from_secs(60);

/// `docker::stats`'s map of a [`Usage`]: the same numbers the monitor shows, rounded to two
/// decimals, 0 where the engine's sample has none.
pub fn stats_map(u: &Usage) -> Map {
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let mut m = Map::new();
    m.insert(
        "cpu_percent".into(),
        round2(u.cpu_percent.unwrap_or(0.0)).into(),
    );
    m.insert("mem_bytes".into(), (u.mem_bytes.unwrap_or(0) as INT).into());
    m.insert("mem_limit".into(), (u.mem_limit.unwrap_or(0) as INT).into());
    m.insert(
        "mem_percent".into(),
        round2(u.mem_percent().unwrap_or(0.0)).into(),
    );
    m
}

#[export_module]
pub mod docker_api {
    use super::*;

    /// Sets the compose project that service names are looked up in (and returns it).
    #[rhai_fn(return_raw)]
    pub fn use_project(ctx: NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            *lock(&h.docker_project) = (!name.is_empty()).then(|| name.to_string());
            Ok(name.to_string())
        })
    }

    /// The compose project in use, or `()` if none.
    #[rhai_fn(return_raw)]
    pub fn project(ctx: NativeCallContext) -> Result<Dynamic, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            Ok(super::project(h).map_or(Dynamic::UNIT, Dynamic::from))
        })
    }

    /// The engine's version and API version: `#{version, api_version, os, arch, host}`.
    #[rhai_fn(return_raw)]
    pub fn ping(ctx: NativeCallContext) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let mut v = on_engine(h, |d, _| async move { ops::version(&d).await })?
                .map_err(|e| fail(e.to_string()))?;
            // The engine this thread uses (`docker::use_engine`), not only DOCKER_HOST.
            v.host = engines::engine(h)?.conn.url.clone();
            to_map(&v, "ping")
        })
    }

    /// Running containers of the project in use, like `docker ps`: an array of
    /// `#{name, id, service, project, category, image, state, health, status, ports, age_s,
    /// restarts, uptime_s, ips}`. Answers from a table the engine's event stream keeps
    /// current (microseconds after the first call); `status` is the engine's text as of the
    /// container's last change.
    #[rhai_fn(return_raw)]
    pub fn ps(ctx: NativeCallContext) -> Result<Array, Box<EvalAltResult>> {
        ps_with(ctx, Map::new())
    }

    /// `docker::ps` with filters: `project` (default: the one in use; `""` for all),
    /// `service`, `category`, `all` (include stopped containers).
    #[rhai_fn(name = "ps", return_raw)]
    pub fn ps_with(ctx: NativeCallContext, opts: Map) -> Result<Array, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let f = ps_filter(h, &opts)?;
            let e = engines::engine(h)?;
            let d = e.conn.docker.clone();
            let table = e
                .table
                .get_or_init(|| dk::table::Table::start(&h.handle, d.clone()))
                .clone();
            let list = h
                .block_on(async move { table.query(&d, &f).await })?
                .map_err(fail)?;
            list.iter().map(to_dyn).collect()
        })
    }

    /// The engine's full inspection of a container (as `docker inspect` shows it).
    #[rhai_fn(return_raw)]
    pub fn inspect(ctx: NativeCallContext, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        with_host(&ctx, |h| to_dyn(&inspect_of(h, name)?))
    }

    /// "healthy", "unhealthy", "starting", "none" (running, no healthcheck), or the state of a
    /// container that is not running ("exited", "created", …).
    #[rhai_fn(return_raw)]
    pub fn health(ctx: NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| Ok(dk::health_of(&inspect_of(h, name)?)))
    }

    /// How many times the engine restarted the container (its restart policy at work).
    #[rhai_fn(return_raw)]
    pub fn restart_count(ctx: NativeCallContext, name: &str) -> Result<INT, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            Ok(inspect_of(h, name)?.restart_count.unwrap_or(0))
        })
    }

    /// The last 100 log lines (stdout and stderr) of a container.
    #[rhai_fn(return_raw)]
    pub fn logs(ctx: NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
        logs_with(ctx, name, Map::new())
    }

    /// The last `tail` log lines of a container.
    #[rhai_fn(name = "logs", return_raw)]
    pub fn logs_tail(
        ctx: NativeCallContext,
        name: &str,
        tail: INT,
    ) -> Result<String, Box<EvalAltResult>> {
        let mut m = Map::new();
        m.insert("tail".into(), tail.into());
        logs_with(ctx, name, m)
    }

    /// Logs with options: `tail` (lines, default 100; 0 for all), `since` (a duration like
    /// "10m", or a Unix timestamp in seconds), `grep` (keep lines containing this text,
    /// case-insensitive).
    #[rhai_fn(name = "logs", return_raw)]
    pub fn logs_with(
        ctx: NativeCallContext,
        name: &str,
        opts: Map,
    ) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let q = log_query(&opts)?;
            let id = id_of(h, name)?;
            on_engine(h, |d, _| async move { ops::logs(&d, &id, name, &q).await })?
                .map_err(|e| fail(e.to_string()))
        })
    }

    /// CPU and memory of a running container: `#{cpu_percent, mem_bytes, mem_limit,
    /// mem_percent}`, computed as `docker stats` (and the monitor) does: memory less the page
    /// cache. Takes about a second (the engine samples CPU twice).
    #[rhai_fn(return_raw)]
    pub fn stats(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let id = id_of(h, name)?;
            let u = on_engine(h, |d, _| async move {
                usage::sample(&d, &id, STATS_WITHIN).await
            })?;
            match u {
                Ok(Some(u)) => Ok(stats_map(&u)),
                Ok(None) => Err(fail(format!("no stats for '{name}' (is it running?)"))),
                Err(usage::SampleError::Timeout(_)) => Err(fail(format!(
                    "no stats for '{name}' within {}",
                    crate::util::human::duration(STATS_WITHIN)
                ))),
                Err(e) => Err(fail(format!("cannot read stats of '{name}': {e}"))),
            }
        })
    }

    /// Local images: an array of `#{id, tags, size_mb, created}`.
    #[rhai_fn(return_raw)]
    pub fn images(ctx: NativeCallContext) -> Result<Array, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            on_engine(h, |d, _| async move { ops::images(&d).await })?
                .map_err(|e| fail(e.to_string()))?
                .iter()
                .map(to_dyn)
                .collect()
        })
    }

    /// Restarts a container and returns at once; follow with `docker::wait_healthy`.
    #[rhai_fn(return_raw)]
    pub fn restart(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        lifecycle(&ctx, Action::Restart, name)
    }

    /// Stops a container (10 s grace period). Refused for a Swarm task's container, which
    /// Swarm would replace at once (the error says how to scale the service instead).
    #[rhai_fn(return_raw)]
    pub fn stop(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        lifecycle(&ctx, Action::Stop, name)
    }

    /// Starts a stopped container (not a Swarm task's: Swarm starts those).
    #[rhai_fn(return_raw)]
    pub fn start(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        lifecycle(&ctx, Action::Start, name)
    }

    /// Removes a container (forcefully, like `docker rm -f`); not a Swarm task's (the error
    /// names `docker service rm`).
    #[rhai_fn(return_raw)]
    pub fn rm(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        lifecycle(&ctx, Action::Remove, name)
    }

    /// Builds an image the way `docker compose build` does: with BuildKit (through the
    /// installed Compose v2), or the classic builder where Compose v2 is missing (which
    /// refuses BuildKit-only keys instead of building something else).
    ///
    /// A compose service: `service` and `compose_file` (relative to the workspace), optional
    /// `project` (default: the file's `name:` or directory) and `tag` (default: the image name
    /// compose gives it) — every `build:` key of the file applies, checked before anything
    /// runs. Or a directory: `context` (required) with `tag` (required), `dockerfile`,
    /// `dockerfile_inline`, `target`, `labels` (map), `cache_from` (array), `network`,
    /// `extra_hosts` (array of "host:ip"), `shm_size` (bytes or "64m"), `pull` (bool).
    /// Both take `build_args` (map, on top of the file's), `no_cache` (bool), `timeout` (a
    /// duration: the builder is stopped after it) and `log` (file for the builder's output,
    /// default `logs/builds/<tag>.log`).
    ///
    /// `batch: true` (compose services, BuildKit): builds asked for at the same time from the
    /// same compose file with the same `build_args` and `no_cache` are done as one BuildKit
    /// solve, as `docker compose build A B C` does (what arrives while a solve runs goes in
    /// the next one); a failed solve is built again service by service, so each call still
    /// gets its own verdict. The rebuild batches its builds this way.
    ///
    /// Returns `#{image_id, tag, ms, queued_ms, together, log, builder}` (`builder` is
    /// "buildkit" or "classic"; `together` is how many builds the solve made, `queued_ms` how
    /// long a batched build waited for the solve before its own to end). A
    /// failed build fails with the builder's error line, and the message ends with its kind:
    /// `[build step failed]` or `[build config invalid]` (deterministic: retrying will not
    /// help) or `[engine error]`; `docker::failure_kind(e)` reads that kind from the caught
    /// value. In `--dry-run` nothing is built (the plan says what would be) and `image_id` is
    /// `()`.
    #[rhai_fn(return_raw)]
    pub fn build(ctx: NativeCallContext, opts: Map) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| build_options::build(h, &opts))
    }

    /// The kind of a failed `docker::build`'s caught error: "step" (a Dockerfile step
    /// failed), "config" (the Dockerfile or build settings are wrong; neither is worth a
    /// retry) or "engine" (the engine or builder failed: worth one); `()` for any other
    /// value. Read from the value itself, not its text, so a message that merely mentions
    /// "[engine error]" is not one.
    pub fn failure_kind(e: Dynamic) -> Dynamic {
        failure_kind_of(&e).map_or(Dynamic::UNIT, |k| kind_word(k).into())
    }

    /// Gives `image` (a name or id) another name, e.g. the `pre-<run>` backup tag before a
    /// rebuild: `docker::tag("homeiq-data-api:latest", "homeiq-data-api:pre-20260204")`.
    #[rhai_fn(return_raw)]
    pub fn tag(
        ctx: NativeCallContext,
        image: &str,
        new_tag: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            if !h.mutation("docker::tag", image, &format!("as {new_tag}"))? {
                return Ok(());
            }
            on_engine(
                h,
                |d, _| async move { dk::build::tag(&d, image, new_tag).await },
            )?
            .map_err(fail)
        })
    }

    /// Removes an image name (the image itself goes when no name or container uses it).
    #[rhai_fn(return_raw)]
    pub fn rmi(ctx: NativeCallContext, image: &str) -> Result<(), Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            if !h.mutation("docker::rmi", image, "")? {
                return Ok(());
            }
            on_engine(
                h,
                |d, _| async move { dk::build::rmi(&d, image, false).await },
            )?
            .map_err(fail)
        })
    }

    /// The id of a local image (`sha256:…`), or `()` if there is no such image.
    #[rhai_fn(return_raw)]
    pub fn image_id(ctx: NativeCallContext, image: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let id = on_engine(h, |d, _| async move { ops::image_id(&d, image).await })?
                .map_err(|e| fail(e.to_string()))?;
            Ok(id.map_or(Dynamic::UNIT, Dynamic::from))
        })
    }

    /// Recreates a container on a new image (default: the image name it was created with —
    /// after `docker::build` with the compose image name, that is the new build), keeping
    /// ports, volumes, networks and aliases, restart policy, user env and compose labels;
    /// what the old image baked in (env defaults, cmd, healthcheck, labels), the generated
    /// hostname and MAC come from the new image. The old container is stopped only after the
    /// new one is created, and put back if the new one cannot start. Options: `image`.
    /// Returns `#{name, old_id, new_id, old_image_id, new_image_id, ms}`.
    #[rhai_fn(return_raw)]
    pub fn recreate(
        ctx: NativeCallContext,
        name: &str,
        opts: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            check_keys(&opts, &["image"], "recreate")?;
            let image = opt_str(&opts, "image");
            if h.mode == Mode::ReadOnly {
                h.mutation("docker::recreate", name, "")?;
            }
            let c = inspect_of(h, name)?;
            let cname = dk::container_name(&c);
            let on = image.as_deref().unwrap_or("its image");
            // A Swarm task: its service is updated onto the image's pushed digest (Swarm
            // replaces the task), and the call returns once Swarm is done.
            if let Some(sid) = dk::swarm::task_service(&c) {
                let mut m = Map::new();
                m.insert("name".into(), name.into());
                m.insert(
                    "old_image_id".into(),
                    c.image.clone().unwrap_or_default().into(),
                );
                if !h.mutation(
                    "docker::recreate",
                    name,
                    &format!("Swarm service of task {cname} on {on}"),
                )? {
                    m.insert("new_id".into(), Dynamic::UNIT);
                    return Ok(m);
                }
                let d = client(h)?;
                let sw = std::time::Instant::now();
                let w = h.block_on(async move {
                    dk::swarm::redeploy(&d, &sid, image.as_deref(), SWARM_WAIT).await
                })?;
                changed(h);
                swarm_done(name, w)?;
                let now = inspect_of(h, name)?;
                m.insert("new_id".into(), now.id.unwrap_or_default().into());
                m.insert("new_image_id".into(), now.image.unwrap_or_default().into());
                m.insert("ms".into(), (sw.elapsed().as_millis() as INT).into());
                return Ok(m);
            }
            if !h.mutation(
                "docker::recreate",
                name,
                &format!("container {cname} on {on}"),
            )? {
                let mut m = Map::new();
                m.insert("name".into(), cname.into());
                m.insert("new_id".into(), Dynamic::UNIT);
                return Ok(m);
            }
            let r = on_engine(h, |d, p| async move {
                dk::recreate::recreate(&d, p.as_deref(), name, image.as_deref()).await
            });
            changed(h);
            to_map(&r?.map_err(fail)?, "recreate")
        })
    }

    /// Completes or undoes a `docker::recreate` that was interrupted (the runner was killed,
    /// or the call cancelled): if the new container had started, the old one (renamed
    /// aside) is removed; otherwise the old one gets its name back and is started. Returns
    /// `#{action, detail}` with action "none", "finished" or "restored". A start-first deploy
    /// interrupted between `docker::start_next` and `promote`/`discard` is mended too:
    /// "discarded" (the old container kept serving) or "promoted" (the old one was already
    /// out of service and the new one is healthy). Cheap when there is nothing to do;
    /// `--continue` runs it before touching a service. In `--dry-run` it only reports "none".
    #[rhai_fn(return_raw)]
    pub fn recover(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let mut m = Map::new();
            if h.mode == Mode::DryRun {
                m.insert("action".into(), "none".into());
                m.insert("detail".into(), "dry-run: not checked".into());
                return Ok(m);
            }
            h.mutation("docker::recover", name, "")?;
            let r = on_engine(h, |d, p| async move {
                dk::recover::recover(&d, p.as_deref(), name).await
            })?
            .map_err(fail)?;
            if r.action != dk::recover::RecoverAction::None {
                changed(h);
            }
            m.insert("action".into(), r.action.as_str().into());
            m.insert("detail".into(), r.detail.into());
            Ok(m)
        })
    }

    /// `docker::recreate` on the image the container was created with.
    #[rhai_fn(name = "recreate", return_raw)]
    pub fn recreate_same(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        recreate(ctx, name, Map::new())
    }

    /// Waits (on the engine's event stream, no polling) until the container is healthy,
    /// turns unhealthy, or exits; default timeout 60 s. Returns `#{status, ms, note,
    /// container}` with status "healthy", "unhealthy", "exited", "timeout", or "running"
    /// for a container without healthcheck (which counts as ready, and `note` says so).
    #[rhai_fn(return_raw)]
    pub fn wait_healthy(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        wait_healthy_with(ctx, name, Map::new())
    }

    /// `wait_healthy` with options: `timeout` (or `timeout_ms`), `through_unhealthy` (keep
    /// waiting when Docker reports unhealthy, for services that start slower than their
    /// healthcheck's start period; default false: unhealthy ends the wait).
    #[rhai_fn(name = "wait_healthy", return_raw)]
    pub fn wait_healthy_with(
        ctx: NativeCallContext,
        name: &str,
        opts: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let (timeout, through) = wait_options(&opts)?;
            let w = on_engine(h, |d, p| async move {
                dk::wait_healthy(&d, p.as_deref(), name, timeout, through).await
            })?
            .map_err(fail)?;
            let mut m = Map::new();
            m.insert("status".into(), w.status.into());
            m.insert("ms".into(), (w.ms as INT).into());
            m.insert("note".into(), w.note.into());
            m.insert("container".into(), w.container.into());
            m.insert(
                "event_time_ns".into(),
                w.event_time_ns.map_or(Dynamic::UNIT, Dynamic::from),
            );
            Ok(m)
        })
    }

    /// Runs a command in a running container (`cmd` is an array like `["sh", "-c", "ls"]`)
    /// and returns `#{exit_code, output}`. Needs `--allow-exec`.
    #[rhai_fn(return_raw)]
    pub fn exec(ctx: NativeCallContext, name: &str, cmd: Array) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            if h.mode == Mode::ReadOnly {
                return Err(refused(format!(
                    "docker::exec runs a process inside '{name}', and this run is --read-only \
                     (--allow-exec does not lift that); run it without --read-only"
                )));
            }
            if !h.allow_exec {
                return Err(refused(format!(
                    "docker::exec runs a process inside '{name}'; start dockhand with --allow-exec to allow it"
                )));
            }
            let argv: Vec<String> = cmd.iter().map(|a| a.to_string()).collect();
            if argv.is_empty() {
                return Err(invalid(
                    "docker::exec needs a command, like [\"sh\", \"-c\", \"ls\"]",
                ));
            }
            let id = id_of(h, name)?;
            let out = on_engine(
                h,
                |d, _| async move { ops::exec(&d, &id, name, argv).await },
            )?
            .map_err(|e| fail(e.to_string()))?;
            to_map(&out, "exec")
        })
    }
}

/// Built once per process: every engine shares it.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> = std::sync::LazyLock::new(|| {
    let mut m = exported_module!(docker_api);
    m.combine_flatten(super::deploy::module());
    m.combine_flatten(engines::module());
    m.combine_flatten(super::swarm::docker_module());
    m.into()
});

pub fn register(engine: &mut Engine) {
    engine.register_static_module("docker", MODULE.clone());
}

#[cfg(test)]
mod tests;
