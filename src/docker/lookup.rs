//! Finding containers the way a script names them: a compose service first (within the
//! project in use), then a container name or id.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};

use super::container::{LABEL_STACK, LABEL_SWARM_SERVICE};
use super::names::{is_aside, is_next, original_name, promoted_name};
use super::{Container, LABEL_CATEGORY, LABEL_PROJECT, LABEL_SERVICE};

/// Which containers to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub project: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    /// Include stopped containers.
    pub all: bool,
}

pub async fn list(docker: &Docker, f: &Filter) -> Result<Vec<Container>, String> {
    // A project may be a Swarm stack: its tasks' containers carry the stack's labels (and
    // maybe compose's, baked into an image compose built, which name the build's project).
    if let Some(p) = &f.project {
        let mut tasks = stack_tasks(docker, f, p).await?;
        if !tasks.is_empty() {
            tasks.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
            return Ok(tasks);
        }
    }
    let mut labels = Vec::new();
    if let Some(p) = &f.project {
        labels.push(format!("{LABEL_PROJECT}={p}"));
    }
    if let Some(s) = &f.service {
        labels.push(format!("{LABEL_SERVICE}={s}"));
    }
    if let Some(c) = &f.category {
        labels.push(format!("{LABEL_CATEGORY}={c}"));
    }
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert("label".to_string(), labels);
    }
    let opts = ListContainersOptions {
        all: f.all,
        filters: Some(filters),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| format!("cannot list containers: {e}"))?;
    let mut out: Vec<Container> = list.iter().map(Container::from).collect();
    out.sort_by(|a, b| (&a.project, &a.service, &a.name).cmp(&(&b.project, &b.service, &b.name)));
    Ok(out)
}

/// The containers of Swarm stack `stack`'s tasks on this engine that `f` asks for: a
/// project with no compose container may be a stack (see [`super::container::identity`]).
async fn stack_tasks(docker: &Docker, f: &Filter, stack: &str) -> Result<Vec<Container>, String> {
    let mut labels = vec![format!("{LABEL_STACK}={stack}")];
    if let Some(s) = &f.service {
        labels.push(format!("{LABEL_SWARM_SERVICE}={stack}_{s}"));
    }
    if let Some(c) = &f.category {
        labels.push(format!("{LABEL_CATEGORY}={c}"));
    }
    let opts = ListContainersOptions {
        all: f.all,
        filters: Some(HashMap::from([("label".to_string(), labels)])),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| format!("cannot list containers: {e}"))?;
    Ok(
        super::container::without_task_history(list.iter().collect())
            .into_iter()
            .map(Container::from)
            .collect(),
    )
}

/// Finds the container a script means by `name`: a compose service (in `project` if given),
/// else a container name or id. Prefers a running container when a service has several.
pub async fn find(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<ContainerInspectResponse, String> {
    let f = Filter {
        project: project.map(String::from),
        service: Some(name.to_string()),
        all: true,
        ..Default::default()
    };
    let mut by_service = list(docker, &f).await?;
    // A container set aside by an interrupted recreate is a leftover, and one started next to
    // the old by a start-first deploy is not the service yet (it is named explicitly).
    by_service.sort_by_key(|c| (is_aside(&c.name) || is_next(&c.name), c.state != "running"));
    let target = by_service
        .first()
        .map(|c| c.id.clone())
        .unwrap_or_else(|| name.to_string());
    match docker
        .inspect_container(&target, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => Ok(c),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            let scope = project
                .map(|p| format!(" in project '{p}'"))
                .unwrap_or_default();
            let known = list(
                docker,
                &Filter {
                    project: project.map(String::from),
                    all: true,
                    ..Default::default()
                },
            )
            .await
            .map(|l| {
                l.into_iter()
                    .map(|c| {
                        if c.service.is_empty() {
                            c.name
                        } else {
                            c.service
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
            let hint = if known.is_empty() {
                String::new()
            } else {
                let mut k = known;
                k.sort();
                k.dedup();
                format!(" (known: {})", k.join(", "))
            };
            Err(format!(
                "no container or compose service named '{name}'{scope}{hint}"
            ))
        }
        Err(e) => Err(format!("cannot inspect '{name}': {e}")),
    }
}

/// Every container of `name` — a compose service (in `project` if given), else a plain
/// container name — including the copies a deploy left under a temporary name (set aside by a
/// stop-first recreate, or started next to the old one by a start-first deploy).
pub async fn containers_of(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
) -> Result<Vec<Container>, String> {
    let f = Filter {
        project: project.map(String::from),
        service: Some(name.to_string()),
        all: true,
        ..Default::default()
    };
    let by_service = list(docker, &f).await?;
    if !by_service.is_empty() {
        return Ok(by_service);
    }
    let any = Filter {
        project: project.map(String::from),
        all: true,
        ..Default::default()
    };
    Ok(list(docker, &any)
        .await?
        .into_iter()
        .filter(|c| {
            c.name == name
                || original_name(&c.name) == Some(name)
                || promoted_name(&c.name) == Some(name)
        })
        .collect())
}
