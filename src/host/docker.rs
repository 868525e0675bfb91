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
//! ```

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListImagesOptions, LogsOptions, RemoveContainerOptions, RestartContainerOptions,
    StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, Map};

use super::time::to_duration;
use super::{HostCtx, HostResult, fail, host, invalid, lock, refused};
use crate::docker::{self as dk, Filter};

/// The engine client, connecting on first use. A failed connection is not cached: the daemon
/// may come up while a runbook waits.
pub fn client(h: &HostCtx) -> HostResult<Docker> {
    if let Some(d) = h.docker.get() {
        return Ok(d.clone());
    }
    let d = h.block_on(dk::connect())?.map_err(fail)?;
    let _ = h.docker.set(d.clone());
    Ok(d)
}

/// Marks the container table stale after dockhand changed something itself.
pub(super) fn changed(h: &HostCtx) {
    if let Some(t) = h.docker_table.get() {
        t.invalidate();
    }
}

/// The compose project in use: `docker::use_project`, else `COMPOSE_PROJECT_NAME`.
pub fn project(h: &HostCtx) -> Option<String> {
    lock(&h.docker_project).clone().or_else(|| {
        std::env::var("COMPOSE_PROJECT_NAME")
            .ok()
            .filter(|p| !p.is_empty())
    })
}

pub(super) fn to_dyn<T: serde::Serialize>(v: &T) -> HostResult<Dynamic> {
    rhai::serde::to_dynamic(v)
}

fn inspect_of(h: &HostCtx, name: &str) -> HostResult<bollard::models::ContainerInspectResponse> {
    let d = client(h)?;
    let p = project(h);
    h.block_on(async move { dk::find(&d, p.as_deref(), name).await })?
        .map_err(fail)
}

fn opt_str(opts: &Map, key: &str) -> Option<String> {
    opts.get(key)
        .filter(|v| !v.is_unit())
        .map(|v| v.to_string())
}

fn check_keys(opts: &Map, known: &[&str], what: &str) -> HostResult<()> {
    for k in opts.keys() {
        if !known.contains(&k.as_str()) {
            return Err(invalid(format!(
                "unknown {what} option '{k}' (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Runs a lifecycle action (start/stop/restart/rm) on the container behind `name`.
fn lifecycle(ctx: &NativeCallContext, action: &str, name: &str) -> HostResult<()> {
    let h = host(ctx)?;
    // --read-only refuses before the engine is contacted (like tag/rmi/build).
    if h.mode == super::Mode::ReadOnly {
        h.mutation(&format!("docker::{action}"), name, "")?;
    }
    let c = inspect_of(&h, name)?;
    let id = c.id.clone().unwrap_or_default();
    let cname = dk::container_name(&c);
    if !h.mutation(
        &format!("docker::{action}"),
        name,
        &format!("container {cname}"),
    )? {
        return Ok(());
    }
    let d = client(&h)?;
    let r = h.block_on(async move {
        match action {
            "restart" => {
                d.restart_container(
                    &id,
                    Some(RestartContainerOptions {
                        t: Some(10),
                        ..Default::default()
                    }),
                )
                .await
            }
            "stop" => {
                d.stop_container(
                    &id,
                    Some(StopContainerOptions {
                        t: Some(10),
                        ..Default::default()
                    }),
                )
                .await
            }
            "start" => d.start_container(&id, None::<StartContainerOptions>).await,
            _ => {
                d.remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await
            }
        }
    })?;
    changed(&h);
    r.map_err(|e| fail(format!("cannot {action} {cname}: {e}")))
}

#[export_module]
pub mod docker_api {
    use super::*;

    /// Sets the compose project that service names are looked up in (and returns it).
    #[rhai_fn(return_raw)]
    pub fn use_project(ctx: NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            *lock(&h.docker_project) = if name.is_empty() {
                None
            } else {
                Some(name.to_string())
            };
            Ok(name.to_string())
        })
    }

    /// The compose project in use, or `()` if none.
    #[rhai_fn(return_raw)]
    pub fn project(ctx: NativeCallContext) -> Result<Dynamic, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            Ok(super::project(&h)
                .map(Dynamic::from)
                .unwrap_or(Dynamic::UNIT))
        })
    }

    /// The engine's version and API version: `#{version, api_version, os, arch, host}`.
    #[rhai_fn(return_raw)]
    pub fn ping(ctx: NativeCallContext) -> Result<Map, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let d = client(&h)?;
            let v = h
                .block_on(async move { d.version().await })?
                .map_err(|e| fail(format!("Docker version: {e}")))?;
            let mut m = Map::new();
            m.insert("version".into(), v.version.unwrap_or_default().into());
            m.insert(
                "api_version".into(),
                v.api_version.unwrap_or_default().into(),
            );
            m.insert("os".into(), v.os.unwrap_or_default().into());
            m.insert("arch".into(), v.arch.unwrap_or_default().into());
            m.insert("host".into(), dk::docker_host().into());
            Ok(m)
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            check_keys(&opts, &["project", "service", "category", "all"], "ps")?;
            let f = Filter {
                project: match opt_str(&opts, "project") {
                    Some(p) if p.is_empty() => None,
                    Some(p) => Some(p),
                    None => super::project(&h),
                },
                service: opt_str(&opts, "service"),
                category: opt_str(&opts, "category"),
                all: opts
                    .get("all")
                    .and_then(|a| a.as_bool().ok())
                    .unwrap_or(false),
            };
            let d = client(&h)?;
            let table = h
                .docker_table
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            to_dyn(&inspect_of(&h, name)?)
        })
    }

    /// "healthy", "unhealthy", "starting", "none" (running, no healthcheck), or the state of a
    /// container that is not running ("exited", "created", …).
    #[rhai_fn(return_raw)]
    pub fn health(ctx: NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            Ok(dk::health_of(&inspect_of(&h, name)?))
        })
    }

    /// How many times the engine restarted the container (its restart policy at work).
    #[rhai_fn(return_raw)]
    pub fn restart_count(ctx: NativeCallContext, name: &str) -> Result<INT, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            Ok(inspect_of(&h, name)?.restart_count.unwrap_or(0))
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            check_keys(&opts, &["tail", "since", "grep"], "logs")?;
            let tail = match opts.get("tail") {
                None => "100".to_string(),
                Some(t) => match t.as_int() {
                    Ok(0) => "all".to_string(),
                    Ok(n) if n > 0 => n.to_string(),
                    _ => return Err(invalid("logs option 'tail' must be a whole number ≥ 0")),
                },
            };
            let since = match opts.get("since") {
                None => 0,
                Some(s) if s.is_int() => s.as_int().unwrap_or(0) as i32,
                Some(s) => {
                    let d = to_duration(s)?;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    now.saturating_sub(d).as_secs() as i32
                }
            };
            let grep = opt_str(&opts, "grep").map(|g| g.to_lowercase());
            let c = inspect_of(&h, name)?;
            let id = c.id.unwrap_or_default();
            let d = client(&h)?;
            let text = h
                .block_on(async move {
                    let opts = LogsOptions {
                        stdout: true,
                        stderr: true,
                        tail,
                        since,
                        ..Default::default()
                    };
                    let mut s = d.logs(&id, Some(opts));
                    let mut out = String::new();
                    while let Some(item) = s.next().await {
                        match item {
                            Ok(chunk) => out.push_str(&chunk.to_string()),
                            Err(e) => return Err(format!("cannot read logs of '{name}': {e}")),
                        }
                    }
                    Ok(out)
                })?
                .map_err(fail)?;
            Ok(match grep {
                Some(g) => text
                    .lines()
                    .filter(|l| l.to_lowercase().contains(&g))
                    .map(|l| format!("{l}\n"))
                    .collect(),
                None => text,
            })
        })
    }

    /// CPU and memory of a running container: `#{cpu_percent, mem_bytes, mem_limit,
    /// mem_percent}`. Takes about a second (the engine samples CPU twice).
    #[rhai_fn(return_raw)]
    pub fn stats(ctx: NativeCallContext, name: &str) -> Result<Map, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let id = inspect_of(&h, name)?.id.unwrap_or_default();
            let d = client(&h)?;
            let s = h
                .block_on(async move {
                    let mut st = d.stats(
                        &id,
                        Some(StatsOptions {
                            stream: false,
                            one_shot: false,
                        }),
                    );
                    st.next().await
                })?
                .ok_or_else(|| fail(format!("no stats for '{name}' (is it running?)")))?
                .map_err(|e| fail(format!("cannot read stats of '{name}': {e}")))?;
            let cpu = s.cpu_stats.as_ref();
            let pre = s.precpu_stats.as_ref();
            let total = |c: Option<&bollard::models::ContainerCpuStats>| {
                c.and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0) as f64
            };
            let system = |c: Option<&bollard::models::ContainerCpuStats>| {
                c.and_then(|c| c.system_cpu_usage).unwrap_or(0) as f64
            };
            let cpus = cpu.and_then(|c| c.online_cpus).unwrap_or(1).max(1) as f64;
            let sys_delta = system(cpu) - system(pre);
            let cpu_percent = if sys_delta > 0.0 {
                (total(cpu) - total(pre)) / sys_delta * cpus * 100.0
            } else {
                0.0
            };
            let mem = s.memory_stats.as_ref();
            let used = mem.and_then(|m| m.usage).unwrap_or(0) as f64;
            let limit = mem.and_then(|m| m.limit).unwrap_or(0) as f64;
            let mut m = Map::new();
            m.insert(
                "cpu_percent".into(),
                ((cpu_percent * 100.0).round() / 100.0).into(),
            );
            m.insert("mem_bytes".into(), (used as INT).into());
            m.insert("mem_limit".into(), (limit as INT).into());
            m.insert(
                "mem_percent".into(),
                (if limit > 0.0 {
                    (used / limit * 10000.0).round() / 100.0
                } else {
                    0.0
                })
                .into(),
            );
            Ok(m)
        })
    }

    /// Local images: an array of `#{id, tags, size_mb, created}`.
    #[rhai_fn(return_raw)]
    pub fn images(ctx: NativeCallContext) -> Result<Array, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let d = client(&h)?;
            let list = h
                .block_on(async move { d.list_images(None::<ListImagesOptions>).await })?
                .map_err(|e| fail(format!("cannot list images: {e}")))?;
            Ok(list
                .into_iter()
                .map(|i| {
                    let mut m = Map::new();
                    m.insert(
                        "id".into(),
                        i.id.chars().take(19).collect::<String>().into(),
                    );
                    m.insert(
                        "tags".into(),
                        i.repo_tags
                            .into_iter()
                            .map(Dynamic::from)
                            .collect::<Array>()
                            .into(),
                    );
                    m.insert(
                        "size_mb".into(),
                        ((i.size as f64 / 1e6 * 10.0).round() / 10.0).into(),
                    );
                    m.insert("created".into(), (i.created as INT).into());
                    Dynamic::from(m)
                })
                .collect())
        })
    }

    /// Restarts a container and returns at once; follow with `docker::wait_healthy`.
    #[rhai_fn(return_raw)]
    pub fn restart(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || lifecycle(&ctx, "restart", name))
    }

    /// Stops a container (10 s grace period).
    #[rhai_fn(return_raw)]
    pub fn stop(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || lifecycle(&ctx, "stop", name))
    }

    /// Starts a stopped container.
    #[rhai_fn(return_raw)]
    pub fn start(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || lifecycle(&ctx, "start", name))
    }

    /// Removes a container (forcefully, like `docker rm -f`).
    #[rhai_fn(return_raw)]
    pub fn rm(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || lifecycle(&ctx, "rm", name))
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
    /// Returns `#{image_id, tag, ms, log, builder}` (`builder` is "buildkit" or "classic"). A
    /// failed build fails with the builder's error line, and the message ends with its kind:
    /// `[build step failed]` or `[build config invalid]` (deterministic: retrying will not
    /// help) or `[engine error]`. In `--dry-run` nothing is built (the plan says what would be)
    /// and `image_id` is `()`.
    #[rhai_fn(return_raw)]
    pub fn build(ctx: NativeCallContext, opts: Map) -> Result<Map, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let req = super::build_request(&h, &opts)?;
            let mut out = Map::new();
            out.insert("tag".into(), req.spec.tag.clone().into());
            out.insert("log".into(), req.log_rel.clone().into());
            out.insert("builder".into(), dk::build::builder_name().into());
            if !h.mutation("docker::build", &req.spec.tag, &req.detail)? {
                out.insert("image_id".into(), Dynamic::UNIT);
                out.insert("ms".into(), (0 as INT).into());
                return Ok(out);
            }
            let d = client(&h)?;
            let (spec, log_path, log_rel) = (req.spec, req.log_path, req.log_rel);
            let abs_log = log_path.to_string_lossy().into_owned();
            let tag = spec.tag.clone();
            let timeout = req.timeout.unwrap_or(Duration::MAX);
            let built = h
                .block_on(async move {
                    // Dropping the build on time-out kills the builder process with it.
                    tokio::time::timeout(timeout, dk::build::build(&d, &spec, Some(&log_path)))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                                "build of {tag} did not finish within {timeout:?}; stopped it \
                                 (raise build_timeout_s or the timeout option) [engine error]"
                            ))
                        })
                })?
                .map_err(|e| fail(e.replace(&abs_log, &log_rel)))?;
            out.insert("image_id".into(), built.image_id.into());
            out.insert("ms".into(), (built.ms as INT).into());
            out.insert("builder".into(), built.builder.into());
            Ok(out)
        })
    }

    /// Gives `image` (a name or id) another name, e.g. the `pre-<run>` backup tag before a
    /// rebuild: `docker::tag("homeiq-data-api:latest", "homeiq-data-api:pre-20260204")`.
    #[rhai_fn(return_raw)]
    pub fn tag(
        ctx: NativeCallContext,
        image: &str,
        new_tag: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            if !h.mutation("docker::tag", image, &format!("as {new_tag}"))? {
                return Ok(());
            }
            let d = client(&h)?;
            h.block_on(async move { dk::build::tag(&d, image, new_tag).await })?
                .map_err(fail)
        })
    }

    /// Removes an image name (the image itself goes when no name or container uses it).
    #[rhai_fn(return_raw)]
    pub fn rmi(ctx: NativeCallContext, image: &str) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            if !h.mutation("docker::rmi", image, "")? {
                return Ok(());
            }
            let d = client(&h)?;
            h.block_on(async move { dk::build::rmi(&d, image, false).await })?
                .map_err(fail)
        })
    }

    /// The id of a local image (`sha256:…`), or `()` if there is no such image.
    #[rhai_fn(return_raw)]
    pub fn image_id(ctx: NativeCallContext, image: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let d = client(&h)?;
            let r = h.block_on(async move { d.inspect_image(image).await })?;
            match r {
                Ok(i) => Ok(i.id.map(Dynamic::from).unwrap_or(Dynamic::UNIT)),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(Dynamic::UNIT),
                Err(e) => Err(fail(format!("cannot inspect image {image}: {e}"))),
            }
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            check_keys(&opts, &["image"], "recreate")?;
            let image = opt_str(&opts, "image");
            if h.mode == super::super::Mode::ReadOnly {
                h.mutation("docker::recreate", name, "")?;
            }
            let c = inspect_of(&h, name)?;
            let cname = dk::container_name(&c);
            let detail = format!(
                "container {cname} on {}",
                image.clone().unwrap_or_else(|| "its image".into())
            );
            if !h.mutation("docker::recreate", name, &detail)? {
                let mut m = Map::new();
                m.insert("name".into(), cname.into());
                m.insert("new_id".into(), Dynamic::UNIT);
                return Ok(m);
            }
            let d = client(&h)?;
            let p = super::project(&h);
            let r = h
                .block_on(async move {
                    dk::recreate::recreate(&d, p.as_deref(), name, image.as_deref()).await
                })?
                .map_err(|e| {
                    changed(&h);
                    fail(e)
                })?;
            changed(&h);
            to_dyn(&r)?
                .try_cast::<Map>()
                .ok_or_else(|| fail("internal: recreate result"))
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let mut m = Map::new();
            if h.mode == super::super::Mode::DryRun {
                m.insert("action".into(), "none".into());
                m.insert("detail".into(), "dry-run: not checked".into());
                return Ok(m);
            }
            h.mutation("docker::recover", name, "")?;
            let d = client(&h)?;
            let p = super::project(&h);
            let r = h
                .block_on(async move {
                    let aside = dk::recreate::recover(&d, p.as_deref(), name).await?;
                    // A start-first deploy interrupted between its steps, too.
                    let next = dk::start_first::recover(&d, p.as_deref(), name).await?;
                    Ok::<_, String>(match next {
                        Some((action, detail)) if aside.action == "none" => {
                            dk::recreate::Recovered { action, detail }
                        }
                        _ => aside,
                    })
                })?
                .map_err(fail)?;
            if r.action != "none" {
                changed(&h);
            }
            m.insert("action".into(), r.action.into());
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            check_keys(
                &opts,
                &["timeout", "timeout_ms", "through_unhealthy"],
                "wait_healthy",
            )?;
            let through = opts
                .get("through_unhealthy")
                .and_then(|v| v.as_bool().ok())
                .unwrap_or(false);
            let mut timeout = Duration::from_secs(60);
            for k in ["timeout", "timeout_ms"] {
                if let Some(v) = opts.get(k) {
                    timeout = to_duration(v)?;
                }
            }
            let d = client(&h)?;
            let p = super::project(&h);
            let w = h
                .block_on(async move {
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
                w.event_time_ns.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
            );
            Ok(m)
        })
    }

    /// Runs a command in a running container (`cmd` is an array like `["sh", "-c", "ls"]`)
    /// and returns `#{exit_code, output}`. Needs `--allow-exec`.
    #[rhai_fn(return_raw)]
    pub fn exec(ctx: NativeCallContext, name: &str, cmd: Array) -> Result<Map, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            if h.mode == super::super::Mode::ReadOnly {
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
            let id = inspect_of(&h, name)?.id.unwrap_or_default();
            let d = client(&h)?;
            let (code, output) = h
                .block_on(async move {
                    let exec = d
                        .create_exec(
                            &id,
                            bollard::models::ExecConfig {
                                attach_stdout: Some(true),
                                attach_stderr: Some(true),
                                cmd: Some(argv),
                                ..Default::default()
                            },
                        )
                        .await
                        .map_err(|e| format!("cannot exec in '{name}': {e}"))?;
                    let mut out = String::new();
                    if let bollard::exec::StartExecResults::Attached { mut output, .. } = d
                        .start_exec(&exec.id, None)
                        .await
                        .map_err(|e| format!("cannot exec in '{name}': {e}"))?
                    {
                        while let Some(Ok(chunk)) = output.next().await {
                            out.push_str(&chunk.to_string());
                        }
                    }
                    let code = d
                        .inspect_exec(&exec.id)
                        .await
                        .ok()
                        .and_then(|i| i.exit_code)
                        .unwrap_or(-1);
                    Ok::<_, String>((code, out))
                })?
                .map_err(fail)?;
            let mut m = Map::new();
            m.insert("exit_code".into(), code.into());
            m.insert("output".into(), output.into());
            Ok(m)
        })
    }
}

/// Built once per process: every engine shares it.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> = std::sync::LazyLock::new(|| {
    let mut m = exported_module!(docker_api);
    m.combine_flatten(super::deploy::module());
    m.into()
});

pub fn register(engine: &mut Engine) {
    engine.register_static_module("docker", MODULE.clone());
}

/// A `docker::build` call's options, checked and resolved.
struct BuildRequest {
    spec: dk::build::BuildSpec,
    log_rel: String,
    log_path: std::path::PathBuf,
    /// What the dry-run plan says.
    detail: String,
    /// Give up (and stop the builder) after this long.
    timeout: Option<Duration>,
}

const BUILD_COMMON: &[&str] = &["tag", "build_args", "no_cache", "log", "timeout"];
const BUILD_FROM_COMPOSE: &[&str] = &["service", "compose_file", "project"];
const BUILD_FROM_DIR: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "target",
    "labels",
    "cache_from",
    "network",
    "extra_hosts",
    "shm_size",
    "pull",
];

fn string_map(opts: &Map, key: &str) -> HostResult<std::collections::HashMap<String, String>> {
    let Some(v) = opts.get(key) else {
        return Ok(Default::default());
    };
    let m = v
        .read_lock::<Map>()
        .ok_or_else(|| invalid(format!("option '{key}' must be a map")))?;
    Ok(m.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn string_list(opts: &Map, key: &str) -> HostResult<Vec<String>> {
    let Some(v) = opts.get(key) else {
        return Ok(Vec::new());
    };
    let a = v
        .read_lock::<rhai::Array>()
        .ok_or_else(|| invalid(format!("option '{key}' must be an array of strings")))?;
    Ok(a.iter().map(|v| v.to_string()).collect())
}

fn opt_flag(opts: &Map, key: &str) -> HostResult<bool> {
    match opts.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .map_err(|_| invalid(format!("option '{key}' must be true or false"))),
    }
}

/// Checks and resolves `docker::build`'s options.
fn build_request(h: &HostCtx, opts: &Map) -> HostResult<BuildRequest> {
    let known: Vec<&str> = [BUILD_COMMON, BUILD_FROM_COMPOSE, BUILD_FROM_DIR].concat();
    check_keys(opts, &known, "build")?;
    let from_compose = opts.contains_key("service") || opts.contains_key("compose_file");
    let (mut spec, from) = if from_compose {
        if let Some(k) = BUILD_FROM_DIR.iter().find(|k| opts.contains_key(**k)) {
            return Err(invalid(format!(
                "docker::build: option '{k}' cannot be combined with 'service': a compose \
                 service's build settings come from its compose file"
            )));
        }
        compose_build_spec(h, opts)?
    } else {
        dir_build_spec(h, opts)?
    };
    spec.args.extend(string_map(opts, "build_args")?);
    spec.no_cache |= opt_flag(opts, "no_cache")?;
    let log_rel = opt_str(opts, "log").unwrap_or_else(|| {
        let safe: String = spec
            .tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("logs/builds/{safe}.log")
    });
    let log_path = super::fs::resolve(&h.root, &log_rel)?;
    let mut args: Vec<_> = spec.args.iter().collect();
    args.sort();
    let detail = format!(
        "{from}{}{}",
        if spec.no_cache { ", no cache" } else { "" },
        if args.is_empty() {
            String::new()
        } else {
            format!(", args {args:?}")
        }
    );
    let timeout = opts.get("timeout").map(to_duration).transpose()?;
    Ok(BuildRequest {
        spec,
        log_rel,
        log_path,
        detail,
        timeout,
    })
}

/// A directory build (`context` and friends).
fn dir_build_spec(h: &HostCtx, opts: &Map) -> HostResult<(dk::build::BuildSpec, String)> {
    let context = opt_str(opts, "context")
        .ok_or_else(|| invalid("docker::build needs option 'context' (the build directory) or 'service' (a compose service)"))?;
    let tag = opt_str(opts, "tag")
        .ok_or_else(|| invalid("docker::build needs option 'tag' (the image name)"))?;
    let shm_size = match opts.get("shm_size") {
        None => None,
        Some(v) => Some(
            dk::compose_file::size_bytes(&v.to_string())
                .map_err(|e| invalid(format!("option 'shm_size': {e}")))?,
        ),
    };
    let spec = dk::build::BuildSpec {
        context: super::fs::resolve(&h.root, &context)?,
        dockerfile: opt_str(opts, "dockerfile").unwrap_or_default(),
        dockerfile_inline: opt_str(opts, "dockerfile_inline"),
        tag,
        labels: string_map(opts, "labels")?,
        target: opt_str(opts, "target"),
        cache_from: string_list(opts, "cache_from")?,
        network: opt_str(opts, "network"),
        extra_hosts: string_list(opts, "extra_hosts")?,
        shm_size,
        pull: opt_flag(opts, "pull")?,
        ..Default::default()
    };
    Ok((spec, format!("from {context}")))
}

/// A compose service's build: its `build:` section, read (and checked) from the file.
fn compose_build_spec(h: &HostCtx, opts: &Map) -> HostResult<(dk::build::BuildSpec, String)> {
    let service = opt_str(opts, "service").ok_or_else(|| {
        invalid("docker::build: option 'compose_file' needs 'service' (which service to build)")
    })?;
    let file = opt_str(opts, "compose_file")
        .ok_or_else(|| invalid("docker::build: option 'service' needs 'compose_file' (the compose file, relative to the workspace)"))?;
    let path = super::fs::resolve(&h.root, &file)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read compose file {file}: {e}")))?;
    let env = |k: &str| std::env::var(k).ok();
    let cf = dk::compose_file::parse(&file, &text, &env).map_err(|e| super::config_error(&e))?;
    let def = cf.services.get(&service).ok_or_else(|| {
        invalid(format!(
            "docker::build: {file} has no service '{service}' (it has: {})",
            cf.services.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let b = def.build.clone().ok_or_else(|| {
        invalid(format!(
            "docker::build: service '{service}' in {file} has no build: section (its image is pulled, not built)"
        ))
    })?;
    let project = opt_str(opts, "project")
        .or_else(|| self::project(h))
        .unwrap_or_else(|| cf.default_project());
    let tag = match opt_str(opts, "tag") {
        Some(t) => t,
        None => cf
            .image_name(&service, &project, dk::compose_file::Flavor::V2)
            .unwrap_or_default(),
    };
    let spec = dk::build::BuildSpec {
        context: super::fs::resolve(&h.root, &b.context)?,
        dockerfile: b.dockerfile.clone(),
        dockerfile_inline: b.dockerfile_inline.clone(),
        tag,
        labels: b.labels.clone().into_iter().collect(),
        target: b.target.clone(),
        cache_from: b.cache_from.clone(),
        network: b.network.clone(),
        extra_hosts: b.extra_hosts.clone(),
        shm_size: b.shm_size,
        pull: b.pull,
        no_cache: b.no_cache,
        buildkit_only: b.classic_blockers(),
        file_args: b.args.clone().into_iter().collect(),
        args: Default::default(),
        compose: Some(dk::build::ComposeSource {
            files: vec![path.clone()],
            project,
            service: service.clone(),
        }),
    };
    Ok((spec, format!("compose service {service} ({file})")))
}
