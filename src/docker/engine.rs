//! The script-facing engine calls that are one request each: lifecycle actions, logs, exec,
//! images, the engine's version. Typed in and out; the host layer turns options into these
//! arguments and the results into script values.

use bollard::Docker;
use bollard::models::ExecConfig;
use bollard::query_parameters::{
    ListImagesOptions, LogsOptions, RemoveContainerOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use serde::Serialize;

/// An engine call that failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {} {container}: {source}", .action.verb())]
    Lifecycle {
        action: Action,
        container: String,
        source: bollard::errors::Error,
    },
    #[error("cannot read logs of '{name}': {source}")]
    Logs {
        name: String,
        source: bollard::errors::Error,
    },
    #[error("cannot exec in '{name}': {source}")]
    Exec {
        name: String,
        source: bollard::errors::Error,
    },
    #[error("cannot list images: {0}")]
    ListImages(bollard::errors::Error),
    #[error("cannot inspect image {image}: {source}")]
    InspectImage {
        image: String,
        source: bollard::errors::Error,
    },
    #[error("Docker version: {0}")]
    Version(bollard::errors::Error),
}

/// What a lifecycle call does to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Restart (10 s grace period for the stop).
    Restart,
    /// Stop (10 s grace period).
    Stop,
    Start,
    /// Remove, forcefully (`docker rm -f`).
    Remove,
}

impl Action {
    /// The word in messages and plans (`docker::rm`).
    pub fn verb(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Remove => "rm",
        }
    }
}

/// Runs `action` on container `id` (called `cname` in the error).
pub async fn lifecycle(
    docker: &Docker,
    id: &str,
    cname: &str,
    action: Action,
) -> Result<(), Error> {
    let r = match action {
        Action::Restart => {
            let o = RestartContainerOptions {
                t: Some(10),
                ..Default::default()
            };
            docker.restart_container(id, Some(o)).await
        }
        Action::Stop => {
            let o = StopContainerOptions {
                t: Some(10),
                ..Default::default()
            };
            docker.stop_container(id, Some(o)).await
        }
        Action::Start => {
            docker
                .start_container(id, None::<StartContainerOptions>)
                .await
        }
        Action::Remove => {
            let o = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            docker.remove_container(id, Some(o)).await
        }
    };
    r.map_err(|source| Error::Lifecycle {
        action,
        container: cname.to_string(),
        source,
    })
}

/// Which log lines to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// The last this many lines; `None` for all.
    pub tail: Option<u64>,
    /// Only lines since this Unix time (seconds); 0 for all.
    pub since: i64,
    /// Keep the lines containing this text, case-insensitive.
    pub grep: Option<String>,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            tail: Some(100),
            since: 0,
            grep: None,
        }
    }
}

/// The lines of `text` containing `needle`, case-insensitive (each ending in a newline).
pub fn grep_lines(text: &str, needle: &str) -> String {
    let needle = needle.to_lowercase();
    text.lines()
        .filter(|l| l.to_lowercase().contains(&needle))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The stdout and stderr log of container `id` (called `name` in errors).
pub async fn logs(docker: &Docker, id: &str, name: &str, q: &LogQuery) -> Result<String, Error> {
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        tail: q.tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
        since: i32::try_from(q.since).unwrap_or(i32::MAX),
        ..Default::default()
    };
    let mut s = docker.logs(id, Some(opts));
    let mut out = String::new();
    while let Some(item) = s.next().await {
        let chunk = item.map_err(|source| Error::Logs {
            name: name.to_string(),
            source,
        })?;
        out.push_str(&chunk.to_string());
    }
    Ok(match &q.grep {
        Some(g) => grep_lines(&out, g),
        None => out,
    })
}

/// What a command run in a container printed, and how it exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecOutput {
    /// -1 when the engine does not say.
    pub exit_code: i64,
    pub output: String,
}

/// Runs `argv` in the running container `id` (called `name` in errors).
pub async fn exec(
    docker: &Docker,
    id: &str,
    name: &str,
    argv: Vec<String>,
) -> Result<ExecOutput, Error> {
    let err = |source| Error::Exec {
        name: name.to_string(),
        source,
    };
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(argv),
        ..Default::default()
    };
    let exec = docker.create_exec(id, config).await.map_err(err)?;
    let mut output = String::new();
    if let bollard::exec::StartExecResults::Attached { output: mut s, .. } =
        docker.start_exec(&exec.id, None).await.map_err(err)?
    {
        while let Some(Ok(chunk)) = s.next().await {
            output.push_str(&chunk.to_string());
        }
    }
    let exit_code = docker
        .inspect_exec(&exec.id)
        .await
        .ok()
        .and_then(|i| i.exit_code)
        .unwrap_or(-1);
    Ok(ExecOutput { exit_code, output })
}

/// A local image, as `docker::images` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Image {
    /// `sha256:` and the first 12 hex digits.
    pub id: String,
    pub tags: Vec<String>,
    /// Megabytes, one decimal.
    pub size_mb: f64,
    /// Unix seconds.
    pub created: i64,
}

/// The local images.
pub async fn images(docker: &Docker) -> Result<Vec<Image>, Error> {
    let list = docker
        .list_images(None::<ListImagesOptions>)
        .await
        .map_err(Error::ListImages)?;
    Ok(list
        .into_iter()
        .map(|i| Image {
            id: i.id.chars().take(19).collect(),
            tags: i.repo_tags,
            size_mb: (i.size as f64 / 1e6 * 10.0).round() / 10.0,
            created: i.created,
        })
        .collect())
}

/// The id of local image `image`, `None` if there is none.
pub async fn image_id(docker: &Docker, image: &str) -> Result<Option<String>, Error> {
    match docker.inspect_image(image).await {
        Ok(i) => Ok(i.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(source) => Err(Error::InspectImage {
            image: image.to_string(),
            source,
        }),
    }
}

/// The engine's version, and where it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
    pub host: String,
}

pub async fn version(docker: &Docker) -> Result<Version, Error> {
    let v = docker.version().await.map_err(Error::Version)?;
    Ok(Version {
        version: v.version.unwrap_or_default(),
        api_version: v.api_version.unwrap_or_default(),
        os: v.os.unwrap_or_default(),
        arch: v.arch.unwrap_or_default(),
        host: super::docker_host(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grep_keeps_matching_lines_whatever_their_case() {
        assert_eq!(
            grep_lines("a ERROR\nok\nerror b", "Error"),
            "a ERROR\nerror b\n"
        );
        assert_eq!(grep_lines("ok\n", "x"), "");
    }
}
