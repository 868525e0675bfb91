//! What a build is asked to do, in words: a compose service's [`BuildSpec`] read from its
//! compose file, where its log goes by default, and how a dry-run plan describes it.

use std::path::PathBuf;

use super::{BuildSpec, ComposeSource};
use crate::docker::compose_file::{ComposeFile, Flavor};

/// A compose service that cannot be built, named by the script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("docker::build: {file} has no service '{service}' (it has: {known})")]
    NoService {
        file: String,
        service: String,
        known: String,
    },
    #[error(
        "docker::build: service '{service}' in {file} has no build: section (its image is pulled, not built)"
    )]
    NoBuild { file: String, service: String },
}

/// The build of `service` in the compose file `cf` (read from `path`, named `file` for
/// messages), as `docker compose -p PROJECT build SERVICE` does it: every key of its `build:`
/// section. `project` defaults to the file's; `tag` to the image name compose gives it. The
/// context is left as the file gives it (relative to the workspace): the caller resolves it.
pub fn compose_spec(
    cf: &ComposeFile,
    file: &str,
    path: PathBuf,
    service: &str,
    project: Option<String>,
    tag: Option<String>,
) -> Result<BuildSpec, SpecError> {
    let def = cf
        .services
        .get(service)
        .ok_or_else(|| SpecError::NoService {
            file: file.to_string(),
            service: service.to_string(),
            known: cf.services.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
    let b = def.build.clone().ok_or_else(|| SpecError::NoBuild {
        file: file.to_string(),
        service: service.to_string(),
    })?;
    let project = project.unwrap_or_else(|| cf.default_project());
    let tag = tag.unwrap_or_else(|| {
        cf.image_name(service, &project, Flavor::V2)
            .unwrap_or_default()
    });
    Ok(BuildSpec {
        context: PathBuf::from(&b.context),
        buildkit_only: b.classic_blockers(),
        dockerfile: b.dockerfile,
        dockerfile_inline: b.dockerfile_inline,
        tag,
        labels: b.labels.into_iter().collect(),
        target: b.target,
        cache_from: b.cache_from,
        network: b.network,
        extra_hosts: b.extra_hosts,
        shm_size: b.shm_size,
        pull: b.pull,
        no_cache: b.no_cache,
        file_args: b.args.into_iter().collect(),
        args: Default::default(),
        compose: Some(ComposeSource {
            files: vec![path],
            project,
            service: service.to_string(),
        }),
        docker_host: None,
    })
}

/// Where a build's log goes unless the caller says: `logs/builds/<tag>.log`, the tag made
/// safe for a file name.
pub fn default_log(tag: &str) -> String {
    let safe: String = tag
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
}

/// What a dry-run plan says of a build `from` somewhere: cache and args included.
pub fn describe(spec: &BuildSpec, from: &str) -> String {
    let mut args: Vec<_> = spec.args.iter().collect();
    args.sort();
    format!(
        "{from}{}{}",
        if spec.no_cache { ", no cache" } else { "" },
        if args.is_empty() {
            String::new()
        } else {
            format!(", args {args:?}")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compose_service_builds_with_its_files_keys() {
        let env = |_: &str| None;
        let text = "services:\n  app:\n    build:\n      context: sub\n      target: t\n      args:\n        A: \"1\"\n  db:\n    image: x\n";
        let cf = crate::docker::compose_file::parse("w/compose.yml", text, &env).unwrap();
        let spec = compose_spec(&cf, "w/compose.yml", "/x/c.yml".into(), "app", None, None);
        let spec = spec.unwrap();
        assert_eq!(spec.context, PathBuf::from("w/sub"));
        assert_eq!(spec.target.as_deref(), Some("t"));
        assert_eq!(spec.file_args.get("A").map(String::as_str), Some("1"));
        assert_eq!(spec.compose.as_ref().unwrap().service, "app");
        let e = compose_spec(&cf, "w/compose.yml", "/x".into(), "db", None, None);
        assert!(matches!(e, Err(SpecError::NoBuild { .. })));
        let e = compose_spec(&cf, "w/compose.yml", "/x".into(), "nope", None, None);
        assert!(e.unwrap_err().to_string().contains("(it has: app, db)"));
    }

    #[test]
    fn logs_and_plans_name_the_build() {
        assert_eq!(
            default_log("reg:5000/a b:1"),
            "logs/builds/reg_5000_a_b_1.log"
        );
        let mut spec = BuildSpec {
            no_cache: true,
            ..Default::default()
        };
        spec.args.insert("K".into(), "v".into());
        assert_eq!(
            describe(&spec, "from ."),
            "from ., no cache, args [(\"K\", \"v\")]"
        );
    }
}
