//! Image builds, tags and removal.
//!
//! A build streams its context to the engine as a tar archive (honouring `.dockerignore`),
//! writes every line the builder prints to a log file as it arrives, and on failure reports
//! the builder's own error line — the line an operator would have grepped for — together
//! with the engine's message, instead of "build failed".

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, RemoveImageOptions, TagImageOptions};
use futures_util::StreamExt;
use serde::Serialize;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    /// Build context directory.
    pub context: PathBuf,
    /// Dockerfile path relative to the context (default `Dockerfile`).
    pub dockerfile: String,
    /// Image name and tag to give the result.
    pub tag: String,
    pub args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    pub no_cache: bool,
}

/// A finished build.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub image_id: String,
    pub tag: String,
    pub ms: u64,
    /// Number of output lines the builder printed.
    pub lines: usize,
}

/// Patterns from the context's `.dockerignore` (simple globs, `#` comments, `!` ignored).
fn ignore_patterns(context: &Path) -> Vec<glob::Pattern> {
    std::fs::read_to_string(context.join(".dockerignore"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| glob::Pattern::new(l.trim_start_matches("./").trim_end_matches('/')).ok())
        .collect()
}

/// Packs the context directory into a tar archive in memory.
pub fn pack_context(context: &Path) -> Result<Vec<u8>, String> {
    let ignore = ignore_patterns(context);
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let mut stack = vec![context.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read build context {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(context).unwrap_or(&path).to_path_buf();
            let rel_s = rel.to_string_lossy();
            if ignore.iter().any(|p| p.matches(&rel_s)) {
                continue;
            }
            let ft = entry.file_type().map_err(|e| e.to_string())?;
            if ft.is_dir() {
                tar.append_dir(&rel, &path)
                    .map_err(|e| format!("cannot pack {}: {e}", path.display()))?;
                stack.push(path);
            } else {
                tar.append_path_with_name(&path, &rel)
                    .map_err(|e| format!("cannot pack {}: {e}", path.display()))?;
            }
        }
    }
    tar.into_inner()
        .map_err(|e| format!("cannot pack the build context: {e}"))
}

/// Builds `spec`, appending builder output to `log` (created with its directories).
pub async fn build(docker: &Docker, spec: &BuildSpec, log: Option<&Path>) -> Result<Built, String> {
    let start = Instant::now();
    if !spec.context.is_dir() {
        return Err(format!(
            "build context {} is not a directory",
            spec.context.display()
        ));
    }
    let dockerfile = if spec.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        spec.dockerfile.clone()
    };
    if !spec.context.join(&dockerfile).is_file() {
        return Err(format!(
            "no {dockerfile} in build context {}",
            spec.context.display()
        ));
    }
    let archive = pack_context(&spec.context)?;
    let mut log_file = match log {
        Some(p) => {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)
                    .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
            }
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("cannot open build log {}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let opts = BuildImageOptions {
        dockerfile,
        t: Some(spec.tag.clone()),
        nocache: spec.no_cache,
        rm: true,
        forcerm: true,
        buildargs: Some(spec.args.clone()),
        labels: Some(spec.labels.clone()),
        ..Default::default()
    };
    let mut stream = docker.build_image(
        opts,
        None,
        Some(bollard::body_full(bytes::Bytes::from(archive))),
    );
    let mut lines: Vec<String> = Vec::new();
    let mut image_id = String::new();
    let mut failure: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info.stream.as_deref().or(info.status.as_deref()) {
                    for l in s.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                        if let Some(f) = log_file.as_mut() {
                            let _ = writeln!(f, "{l}");
                        }
                        lines.push(l.to_string());
                    }
                }
                if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
                    image_id = id;
                }
                if let Some(e) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                    failure = Some(e);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => failure = Some(error),
            Err(e) => failure = Some(e.to_string()),
        }
        if failure.is_some() {
            break;
        }
    }
    if let Some(engine_msg) = failure {
        if let Some(f) = log_file.as_mut() {
            let _ = writeln!(f, "ERROR: {engine_msg}");
        }
        // The builder's own complaint is usually the last output line mentioning an error.
        let culprit = lines
            .iter()
            .rev()
            .find(|l| l.to_lowercase().contains("error") && !l.starts_with("Step "))
            .or_else(|| lines.iter().rev().find(|l| !l.starts_with(" ---> ")))
            .cloned()
            .unwrap_or_default();
        let log_hint = log
            .map(|p| format!(" (full log: {})", p.display()))
            .unwrap_or_default();
        return Err(if culprit.is_empty() || culprit == engine_msg {
            format!("build of {} failed: {engine_msg}{log_hint}", spec.tag)
        } else {
            format!(
                "build of {} failed: {culprit} — {engine_msg}{log_hint}",
                spec.tag
            )
        });
    }
    if image_id.is_empty() {
        image_id = docker
            .inspect_image(&spec.tag)
            .await
            .ok()
            .and_then(|i| i.id)
            .unwrap_or_default();
    }
    Ok(Built {
        image_id,
        tag: spec.tag.clone(),
        ms: start.elapsed().as_millis() as u64,
        lines: lines.len(),
    })
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

    #[test]
    fn pack_context_honours_dockerignore() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "secret.txt\nlogs\n").unwrap();
        std::fs::write(d.path().join("secret.txt"), "x").unwrap();
        std::fs::create_dir(d.path().join("logs")).unwrap();
        std::fs::write(d.path().join("logs/a.log"), "x").unwrap();
        std::fs::create_dir(d.path().join("src")).unwrap();
        std::fs::write(d.path().join("src/app.sh"), "x").unwrap();
        let bytes = pack_context(d.path()).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "Dockerfile"), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("app.sh")), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.contains("secret") || n.contains("logs")),
            "{names:?}"
        );
    }
}
