//! Recreating a container on a new image, stop-first (like `docker compose up -d`), keeping
//! everything the operator configured (what is kept: `replacement.rs`).
//!
//! Order matters for availability and for rollback: the old container is renamed aside, the
//! new one is *created* under the original name, and only then is the old one stopped and
//! the new one started. Any failure before the new one runs puts the old one back.

use std::time::Instant;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, EndpointSettings};
use bollard::query_parameters::{
    CreateContainerOptions, StartContainerOptions, StopContainerOptions,
};
use serde::Serialize;

use super::names::{aside_name, short_id};
use super::replacement::{connect_networks, force, plan, rename};

#[derive(Debug, Clone, Serialize)]
pub struct Recreated {
    pub name: String,
    pub old_id: String,
    pub new_id: String,
    pub old_image_id: String,
    pub new_image_id: String,
    pub ms: u64,
    /// Things the operator should know (e.g. the compose hash could not be updated).
    pub notes: Vec<String>,
}

/// Recreates the container behind `name` on `image` (default: the image name it was created
/// with, which after a build points at the new image).
pub async fn recreate(
    docker: &Docker,
    project: Option<&str>,
    name: &str,
    image: Option<&str>,
) -> Result<Recreated, String> {
    let start = Instant::now();
    let p = plan(docker, project, name, image).await?;
    let new_id = swap(docker, &p.old_id, &p.cname, p.body, p.extra_networks).await?;
    Ok(Recreated {
        old_id: short_id(&p.old_id),
        new_id: short_id(&new_id),
        name: p.cname,
        old_image_id: p.old_image_id,
        new_image_id: p.new_image_id,
        ms: start.elapsed().as_millis() as u64,
        notes: p.notes,
    })
}

/// The swap itself: old aside, new created under the name, old stopped, new started, old
/// removed. Returns the new container's id; on failure the old one is back (see [`undo`]).
async fn swap(
    docker: &Docker,
    old_id: &str,
    cname: &str,
    body: ContainerCreateBody,
    extra_networks: Vec<(String, EndpointSettings)>,
) -> Result<String, String> {
    rename(docker, old_id, &aside_name(cname, old_id))
        .await
        .map_err(|e| format!("cannot rename {cname} aside: {e}"))?;
    let create = CreateContainerOptions {
        name: Some(cname.to_string()),
        ..Default::default()
    };
    let new_id = match docker.create_container(Some(create), body).await {
        Ok(c) => c.id,
        Err(e) => {
            let _ = rename(docker, old_id, cname).await;
            return Err(format!("cannot create the new {cname}: {e}"));
        }
    };
    if let Err(e) = connect_networks(docker, &new_id, extra_networks).await {
        return Err(undo(docker, &new_id, old_id, cname, format!("{cname}: {e}")).await);
    }
    let stop = StopContainerOptions {
        t: Some(10),
        ..Default::default()
    };
    let _ = docker.stop_container(old_id, Some(stop)).await;
    if let Err(e) = docker
        .start_container(&new_id, None::<StartContainerOptions>)
        .await
    {
        let why = format!("cannot start the new {cname} (the old one is back): {e}");
        return Err(undo(docker, &new_id, old_id, cname, why).await);
    }
    let _ = docker.remove_container(old_id, force()).await;
    Ok(new_id)
}

/// Puts the old container back after a failed swap (the new one goes); returns `why`.
async fn undo(docker: &Docker, new_id: &str, old_id: &str, cname: &str, why: String) -> String {
    let _ = docker.remove_container(new_id, force()).await;
    let _ = rename(docker, old_id, cname).await;
    let _ = docker
        .start_container(old_id, None::<StartContainerOptions>)
        .await;
    why
}
