//! `docker::build`'s options, checked and turned into a [`BuildSpec`], and its result map.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rhai::{Dynamic, INT, Map};

use super::{build_failure, check_keys, opt_str, project};
use crate::docker::build::{self, BuildSpec};
use crate::docker::compose_file;
use crate::host::time::to_duration;
use crate::host::{HostCtx, HostResult, config_error, fail, fs, invalid};

/// A `docker::build` call's options, checked and resolved.
struct BuildRequest {
    spec: BuildSpec,
    log_rel: String,
    log_path: PathBuf,
    /// What the dry-run plan says.
    detail: String,
    /// Give up (and stop the builder) after this long.
    timeout: Option<Duration>,
    /// Share a solve with the builds asked for at the same time (`build::build_batched`),
    /// with this priority (higher: an earlier solve).
    batch: Option<i64>,
}

const BUILD_COMMON: &[&str] = &[
    "tag",
    "build_args",
    "no_cache",
    "log",
    "timeout",
    "batch",
    "priority",
];
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

fn string_map(opts: &Map, key: &str) -> HostResult<HashMap<String, String>> {
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

/// `batch` and its `priority` (an integer, default 0; only with `batch: true`).
fn batch_priority(opts: &Map) -> HostResult<Option<i64>> {
    let priority = match opts.get("priority") {
        None => None,
        Some(v) => Some(v.as_int().map_err(|_| {
            invalid(format!(
                "option 'priority' must be an integer (higher: an earlier solve), not {}",
                v.type_name()
            ))
        })?),
    };
    match (opt_flag(opts, "batch")?, priority) {
        (true, p) => Ok(Some(p.unwrap_or(0))),
        (false, None) => Ok(None),
        (false, Some(_)) => Err(invalid(
            "option 'priority' orders batched builds: it needs 'batch: true'",
        )),
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
    let log_rel = opt_str(opts, "log").unwrap_or_else(|| build::default_log(&spec.tag));
    Ok(BuildRequest {
        log_path: fs::resolve(&h.root, &log_rel)?,
        log_rel,
        detail: build::describe(&spec, &from),
        timeout: opts.get("timeout").map(to_duration).transpose()?,
        batch: batch_priority(opts)?,
        spec,
    })
}

/// A directory build (`context` and friends).
fn dir_build_spec(h: &HostCtx, opts: &Map) -> HostResult<(BuildSpec, String)> {
    let context = opt_str(opts, "context")
        .ok_or_else(|| invalid("docker::build needs option 'context' (the build directory) or 'service' (a compose service)"))?;
    let tag = opt_str(opts, "tag")
        .ok_or_else(|| invalid("docker::build needs option 'tag' (the image name)"))?;
    let shm_size = match opts.get("shm_size") {
        None => None,
        Some(v) => Some(
            compose_file::size_bytes(&v.to_string())
                .map_err(|e| invalid(format!("option 'shm_size': {e}")))?,
        ),
    };
    let spec = BuildSpec {
        context: fs::resolve(&h.root, &context)?,
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
fn compose_build_spec(h: &HostCtx, opts: &Map) -> HostResult<(BuildSpec, String)> {
    let service = opt_str(opts, "service").ok_or_else(|| {
        invalid("docker::build: option 'compose_file' needs 'service' (which service to build)")
    })?;
    let file = opt_str(opts, "compose_file")
        .ok_or_else(|| invalid("docker::build: option 'service' needs 'compose_file' (the compose file, relative to the workspace)"))?;
    let path = fs::resolve(&h.root, &file)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read compose file {file}: {e}")))?;
    let env = |k: &str| std::env::var(k).ok();
    let cf = compose_file::parse(&file, &text, &env).map_err(|e| config_error(&e))?;
    let project = opt_str(opts, "project").or_else(|| project(h));
    let tag = opt_str(opts, "tag");
    let mut spec = build::compose_spec(&cf, &file, path, &service, project, tag)
        .map_err(|e| invalid(e.to_string()))?;
    spec.context = fs::resolve(&h.root, &spec.context.to_string_lossy())?;
    Ok((spec, format!("compose service {service} ({file})")))
}

/// `docker::build`: plans it in `--dry-run`, else builds (within the timeout) and returns
/// `#{image_id, tag, ms, log, builder}`.
pub(super) fn build(h: &HostCtx, opts: &Map) -> HostResult<Map> {
    let req = build_request(h, opts)?;
    let mut out = Map::new();
    out.insert("tag".into(), req.spec.tag.clone().into());
    out.insert("log".into(), req.log_rel.clone().into());
    out.insert("builder".into(), build::builder_name().into());
    if !h.mutation("docker::build", &req.spec.tag, &req.detail)? {
        out.insert("image_id".into(), Dynamic::UNIT);
        out.insert("ms".into(), (0 as INT).into());
        return Ok(out);
    }
    let engine = super::engines::engine(h)?;
    let d = engine.conn.docker.clone();
    let (mut spec, log_path, log_rel) = (req.spec, req.log_path, req.log_rel);
    if engine.conn.cli_host != crate::docker::docker_host() {
        spec.docker_host = Some(engine.conn.cli_host.clone());
    }
    let abs_log = log_path.to_string_lossy().into_owned();
    let timeout = req.timeout.unwrap_or(Duration::MAX);
    let batch = req.batch;
    let built = h
        .block_on(
            async move { build::build_within(&d, &spec, Some(&log_path), timeout, batch).await },
        )?
        .map_err(|e| build_failure(e.map_message(|m| m.replace(&abs_log, &log_rel))))?;
    out.insert("image_id".into(), built.image_id.into());
    out.insert("ms".into(), (built.ms as INT).into());
    out.insert("queued_ms".into(), (built.queued_ms as INT).into());
    out.insert("together".into(), (built.together as INT).into());
    out.insert("builder".into(), built.builder.into());
    Ok(out)
}
