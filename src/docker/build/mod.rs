//! Image builds, tags and removal.
//!
//! A build is done the way `docker compose build` does it: with **BuildKit**, by driving the
//! installed Compose v2 (see `compose_cli.rs` for why), so `RUN --mount=type=cache`, secrets,
//! ssh, `target` and every other `build:` key work and the image is the one compose makes.
//! Where Compose v2 is missing (or `DOCKHAND_BUILDER=classic`), the engine's classic builder
//! is the fallback; it refuses the keys only BuildKit can honour instead of quietly building
//! something else.
//!
//! Either way every line the builder prints goes to the build's log file as it arrives, and a
//! failure reports the builder's own error line — the line an operator would have grepped
//! for — with the builder's verdict and the failure's kind in brackets (`[build step failed]`,
//! `[build config invalid]`, `[engine error]`), so a caller can tell a deterministic failure
//! (not worth a retry) from an engine hiccup without parsing Docker's prose.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, RemoveImageOptions, TagImageOptions};
use futures_util::StreamExt;
use serde::Serialize;

pub use super::compose_cli::FailureKind;
use super::compose_cli::{self, ComposeBuild, ComposeCli, yaml_str};

mod batch;
mod context;
mod request;
pub use batch::build_batched;
pub use context::{DockerIgnore, pack_context, pack_context_for};
use context::{INLINE_DOCKERFILE, with_inline_dockerfile};
pub use request::{compose_spec, default_log, describe};

/// Why a build did not produce its image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The builder ran and failed, or refused the build: the message ends with the kind's
    /// tag (`[build step failed]`), which people read; callers read [`BuildError::kind`].
    #[error("{message}")]
    Failed { kind: FailureKind, message: String },
    /// Dockhand could not get as far as the builder (a log or context it cannot read or
    /// write, a compose tool that does not start).
    #[error("{0}")]
    Other(String),
}

impl BuildError {
    /// A failure of `kind`: `what` and the kind's tag.
    pub fn failed(kind: FailureKind, what: impl std::fmt::Display) -> Self {
        BuildError::Failed {
            kind,
            message: format!("{what} {}", kind.tag()),
        }
    }

    /// The failure's kind, when the builder got to decide it.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            BuildError::Failed { kind, .. } => Some(*kind),
            BuildError::Other(_) => None,
        }
    }

    /// The same error with its message rewritten (e.g. an absolute log path made relative).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            BuildError::Failed { kind, message } => BuildError::Failed {
                kind,
                message: f(message),
            },
            BuildError::Other(m) => BuildError::Other(f(m)),
        }
    }
}

impl From<String> for BuildError {
    fn from(m: String) -> Self {
        BuildError::Other(m)
    }
}

impl From<BuildError> for String {
    fn from(e: BuildError) -> Self {
        e.to_string()
    }
}

/// Where a build comes from when it is a compose service: the build goes through compose
/// with the project's own files, so it is exactly `docker compose build SERVICE`.
#[derive(Debug, Clone, Default)]
pub struct ComposeSource {
    /// The compose files (first one's directory is the project directory).
    pub files: Vec<PathBuf>,
    pub project: String,
    pub service: String,
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    /// Build context directory.
    pub context: PathBuf,
    /// Dockerfile path relative to the context (default `Dockerfile`).
    pub dockerfile: String,
    /// The Dockerfile's text, instead of a file (`dockerfile_inline`).
    pub dockerfile_inline: Option<String>,
    /// Image name and tag to give the result.
    pub tag: String,
    /// Build args. For a compose service: only those set on top of the compose file's.
    pub args: HashMap<String, String>,
    /// A compose service's own build args (compose passes them itself; the classic builder
    /// gets them under `args`).
    pub file_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    pub target: Option<String>,
    pub cache_from: Vec<String>,
    pub network: Option<String>,
    pub extra_hosts: Vec<String>,
    pub shm_size: Option<u64>,
    pub pull: bool,
    pub no_cache: bool,
    /// Keys present that only BuildKit can honour (the classic fallback refuses them).
    pub buildkit_only: Vec<String>,
    /// Set when this is a compose service's build.
    pub compose: Option<ComposeSource>,
    /// The engine's address for the compose CLI (`DOCKER_HOST`), when it is not the
    /// environment's: a named engine, or the local end of an ssh tunnel.
    pub docker_host: Option<String>,
}

/// A finished build.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub image_id: String,
    pub tag: String,
    /// The build's own time (for a batched build: its solve's).
    pub ms: u64,
    /// How long a batched build waited for the solve before it to end (0 otherwise).
    pub queued_ms: u64,
    /// How many builds its solve made (1 unless batched).
    pub together: usize,
    /// Number of output lines the builder printed.
    pub lines: usize,
    /// `buildkit` or `classic`.
    pub builder: String,
}

/// The builder `build` will use: `buildkit (docker compose 2.40.3)` or `classic`.
pub fn builder_name() -> String {
    match compose_cli::buildkit() {
        Some(c) => format!("buildkit ({} {})", c.name(), c.version),
        None => "classic".into(),
    }
}

/// Opens (appending, directories created) the build log.
fn open_log(log: Option<&Path>) -> Result<Option<std::fs::File>, String> {
    let Some(p) = log else { return Ok(None) };
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map(Some)
        .map_err(|e| format!("cannot open build log {}: {e}", p.display()))
}

/// Builds `spec`, appending builder output to `log` (created with its directories): with
/// BuildKit through Compose v2 when installed, else with the classic builder.
pub async fn build(
    docker: &Docker,
    spec: &BuildSpec,
    log: Option<&Path>,
) -> Result<Built, BuildError> {
    let start = Instant::now();
    if spec.compose.is_none() {
        check_context(spec)?;
    }
    let mut log_file = open_log(log)?;
    let (builder, lines) = match compose_cli::buildkit() {
        Some(cli) => (
            "buildkit",
            build_buildkit(cli, spec, log_file.as_mut(), log).await?,
        ),
        None => (
            "classic",
            build_classic(docker, spec, log_file.as_mut(), log).await?,
        ),
    };
    let image_id = docker
        .inspect_image(&spec.tag)
        .await
        .ok()
        .and_then(|i| i.id)
        .ok_or_else(|| {
            let what = format!(
                "the build of {} reported success but the engine has no image {}",
                spec.tag, spec.tag
            );
            BuildError::failed(FailureKind::Engine, what)
        })?;
    Ok(Built {
        image_id,
        tag: spec.tag.clone(),
        ms: start.elapsed().as_millis() as u64,
        queued_ms: 0,
        together: 1,
        lines,
        builder: builder.into(),
    })
}

/// [`build`] (or [`build_batched`] when `batch`), stopped after `timeout`: dropping the build
/// kills the builder process with it.
pub async fn build_within(
    docker: &Docker,
    spec: &BuildSpec,
    log: Option<&Path>,
    timeout: std::time::Duration,
    batch: Option<i64>,
) -> Result<Built, BuildError> {
    let work = async {
        match batch {
            Some(priority) => build_batched(docker, spec, log, priority).await,
            None => build(docker, spec, log).await,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(BuildError::failed(
            FailureKind::Engine,
            format!(
                "build of {} did not finish within {timeout:?}; stopped it \
                 (raise build_timeout_s or the timeout option)",
                spec.tag
            ),
        )),
    }
}

fn check_context(spec: &BuildSpec) -> Result<(), BuildError> {
    let invalid = |what: String| BuildError::failed(FailureKind::Config, what);
    if !spec.context.is_dir() {
        let what = format!(
            "build context {} is not a directory",
            spec.context.display()
        );
        return Err(invalid(what));
    }
    let dockerfile = dockerfile_of(spec);
    if spec.dockerfile_inline.is_none() && !spec.context.join(&dockerfile).is_file() {
        let what = format!(
            "no {dockerfile} in build context {}",
            spec.context.display()
        );
        return Err(invalid(what));
    }
    Ok(())
}

fn dockerfile_of(spec: &BuildSpec) -> String {
    if spec.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        spec.dockerfile.clone()
    }
}

/// The failure message: the builder's own line, its verdict, the log, the kind.
fn failure(
    tag: &str,
    culprit: &str,
    verdict: &str,
    kind: FailureKind,
    log: Option<&Path>,
) -> BuildError {
    let log_hint = log
        .map(|p| format!(" (full log: {})", p.display()))
        .unwrap_or_default();
    let hint = if verdict.contains("requires BuildKit") || culprit.contains("requires BuildKit") {
        "; this Dockerfile needs BuildKit: install Compose v2 (scripts/install-deps) so dockhand builds with it"
    } else {
        ""
    };
    let what = if culprit.is_empty() || culprit == verdict {
        format!("build of {tag} failed: {verdict}{hint}{log_hint}")
    } else {
        format!("build of {tag} failed: {culprit} — {verdict}{hint}{log_hint}")
    };
    BuildError::failed(kind, what)
}

/// The one-service compose file for a build that is not a compose service.
fn adhoc_compose_file(spec: &BuildSpec) -> String {
    let mut y = String::from("services:\n  build:\n");
    y += &format!("    image: {}\n    build:\n", yaml_str(&spec.tag));
    y += &format!(
        "      context: {}\n",
        yaml_str(&spec.context.to_string_lossy())
    );
    match &spec.dockerfile_inline {
        Some(text) => y += &format!("      dockerfile_inline: {}\n", yaml_str(text)),
        None => y += &format!("      dockerfile: {}\n", yaml_str(&dockerfile_of(spec))),
    }
    if let Some(t) = &spec.target {
        y += &format!("      target: {}\n", yaml_str(t));
    }
    if let Some(n) = &spec.network {
        y += &format!("      network: {}\n", yaml_str(n));
    }
    if let Some(s) = spec.shm_size {
        y += &format!("      shm_size: {s}\n");
    }
    if spec.pull {
        y += "      pull: true\n";
    }
    let list = |name: &str, items: &[String]| -> String {
        if items.is_empty() {
            return String::new();
        }
        let body: Vec<String> = items.iter().map(|i| yaml_str(i)).collect();
        format!("      {name}: [{}]\n", body.join(", "))
    };
    y += &list("cache_from", &spec.cache_from);
    y += &list("extra_hosts", &spec.extra_hosts);
    let mut labels: Vec<_> = spec.labels.iter().collect();
    labels.sort();
    if !labels.is_empty() {
        y += "      labels:\n";
        for (k, v) in labels {
            y += &format!("        {}: {}\n", yaml_str(k), yaml_str(v));
        }
    }
    y
}

/// BuildKit through Compose v2. Returns the number of output lines.
async fn build_buildkit(
    cli: &ComposeCli,
    spec: &BuildSpec,
    log_file: Option<&mut std::fs::File>,
    log: Option<&Path>,
) -> Result<usize, BuildError> {
    let (ok, lines) = compose_cli::run_build(cli, &compose_job(spec), log_file, None).await?;
    if ok {
        return Ok(lines.len());
    }
    Err(buildkit_failure(spec, &lines, log))
}

/// The failure of `spec`'s BuildKit build, from what compose printed.
fn buildkit_failure(spec: &BuildSpec, lines: &[String], log: Option<&Path>) -> BuildError {
    let (culprit, verdict) = compose_cli::culprit(lines);
    let kind = compose_cli::classify(&lines.join("\n"));
    failure(&spec.tag, &culprit, &verdict, kind, log)
}

/// The compose build that makes `spec`: its service, with the image name the caller chose
/// (given on standard input over the project's files), or a one-service file of its own.
fn compose_job(spec: &BuildSpec) -> ComposeBuild {
    let mut args: Vec<(String, String)> = spec
        .args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    args.sort();
    match &spec.compose {
        Some(src) => ComposeBuild {
            project: src.project.clone(),
            files: src.files.iter().map(|f| compose_cli::absolute(f)).collect(),
            project_dir: compose_cli::absolute(
                src.files
                    .first()
                    .and_then(|f| f.parent())
                    .unwrap_or(Path::new(".")),
            ),
            // The image name is the caller's (the rebuild tags what the container runs).
            stdin_file: Some(format!("services:\n{}", image_override(src, spec))),
            services: vec![src.service.clone()],
            build_args: args,
            no_cache: spec.no_cache,
            docker_host: spec.docker_host.clone(),
        },
        None => ComposeBuild {
            project: "dockhand-build".into(),
            files: Vec::new(),
            project_dir: compose_cli::absolute(&spec.context),
            stdin_file: Some(adhoc_compose_file(spec)),
            services: vec!["build".into()],
            build_args: args,
            no_cache: spec.no_cache,
            docker_host: spec.docker_host.clone(),
        },
    }
}

/// `  SERVICE:\n    image: TAG\n`, one service's entry in the override file.
fn image_override(src: &ComposeSource, spec: &BuildSpec) -> String {
    format!(
        "  {}:\n    image: {}\n",
        yaml_str(&src.service),
        yaml_str(&spec.tag)
    )
}

/// The classic builder's options for `spec`.
fn classic_options(spec: &BuildSpec, dockerfile: String) -> BuildImageOptions {
    BuildImageOptions {
        dockerfile,
        t: Some(spec.tag.clone()),
        nocache: spec.no_cache,
        rm: true,
        forcerm: true,
        buildargs: Some(
            spec.file_args
                .iter()
                .chain(&spec.args)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        labels: Some(spec.labels.clone()),
        target: spec.target.clone().unwrap_or_default(),
        cachefrom: (!spec.cache_from.is_empty()).then(|| spec.cache_from.clone()),
        networkmode: spec.network.clone(),
        extrahosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.join(",")),
        shmsize: spec.shm_size.and_then(|s| i32::try_from(s).ok()),
        pull: spec.pull.then(|| "1".to_string()),
        ..Default::default()
    }
}

/// The engine's classic builder, for hosts without Compose v2.
async fn build_classic(
    docker: &Docker,
    spec: &BuildSpec,
    mut log_file: Option<&mut std::fs::File>,
    log: Option<&Path>,
) -> Result<usize, BuildError> {
    let invalid = |what: String| BuildError::failed(FailureKind::Config, what);
    if !spec.buildkit_only.is_empty() {
        return Err(invalid(format!(
            "cannot build {}: {} need BuildKit, and this host builds with the classic builder \
             (no Compose v2, or DOCKHAND_BUILDER=classic); install Compose v2 \
             (scripts/install-deps) or remove the key(s)",
            spec.tag,
            spec.buildkit_only.join(", ")
        )));
    }
    if spec.shm_size.is_some_and(|s| i32::try_from(s).is_err()) {
        return Err(invalid(format!(
            "cannot build {}: shm_size over 2 GiB needs BuildKit",
            spec.tag
        )));
    }
    let mut dockerfile = dockerfile_of(spec);
    let mut archive = pack_context_for(&spec.context, &dockerfile)?;
    if let Some(text) = &spec.dockerfile_inline {
        archive = with_inline_dockerfile(archive, text)?;
        dockerfile = INLINE_DOCKERFILE.into();
    }
    let opts = classic_options(spec, dockerfile);
    let mut stream = docker.build_image(
        opts,
        None,
        Some(bollard::body_full(bytes::Bytes::from(archive))),
    );
    let mut lines: Vec<String> = Vec::new();
    let mut verdict: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info.stream.as_deref().or(info.status.as_deref()) {
                    for l in s.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                        if let Some(f) = log_file.as_deref_mut() {
                            let _ = writeln!(f, "{l}");
                        }
                        lines.push(l.to_string());
                    }
                }
                if let Some(e) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                    verdict = Some(e);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => verdict = Some(error),
            Err(e) => verdict = Some(e.to_string()),
        }
        if verdict.is_some() {
            break;
        }
    }
    let Some(verdict) = verdict else {
        return Ok(lines.len());
    };
    if let Some(f) = log_file {
        let _ = writeln!(f, "ERROR: {verdict}");
    }
    // The builder's own complaint is usually the last output line mentioning an error.
    let culprit = lines
        .iter()
        .rev()
        .find(|l| l.to_lowercase().contains("error") && !l.starts_with("Step "))
        .or_else(|| lines.iter().rev().find(|l| !l.starts_with(" ---> ")))
        .cloned()
        .unwrap_or_default();
    let kind = compose_cli::classify(&format!("{}\n{verdict}", lines.join("\n")));
    Err(failure(&spec.tag, &culprit, &verdict, kind, log))
}

/// Splits `repo:tag` (a registry port is not a tag: `host:5000/app` has no tag).
pub fn split_ref(r: &str) -> (String, String) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), "latest".to_string()),
    }
}

pub async fn tag(docker: &Docker, image: &str, new_ref: &str) -> Result<(), String> {
    let (repo, tag) = split_ref(new_ref);
    docker
        .tag_image(
            image,
            Some(TagImageOptions {
                repo: Some(repo),
                tag: Some(tag),
            }),
        )
        .await
        .map_err(|e| format!("cannot tag {image} as {new_ref}: {e}"))
}

pub async fn rmi(docker: &Docker, image: &str, force: bool) -> Result<(), String> {
    docker
        .remove_image(
            image,
            Some(RemoveImageOptions {
                force,
                ..Default::default()
            }),
            None,
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot remove image {image}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ref_keeps_registry_ports() {
        assert_eq!(split_ref("app:pre-1"), ("app".into(), "pre-1".into()));
        assert_eq!(split_ref("app"), ("app".into(), "latest".into()));
        assert_eq!(
            split_ref("host:5000/app"),
            ("host:5000/app".into(), "latest".into())
        );
        assert_eq!(
            split_ref("host:5000/app:v2"),
            ("host:5000/app".into(), "v2".into())
        );
    }
}
