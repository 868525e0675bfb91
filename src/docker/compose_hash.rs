//! Compose v1's `config-hash` for a recreated container, asked of compose itself.
//!
//! Compose v2 compares the `com.docker.compose.image` label, which the replacement sets
//! itself; compose v1 compares a hash of the service's whole configuration that folds in the
//! image id, which only `docker-compose config --hash` can compute the way v1 does.

use std::collections::HashMap;

/// The `config-hash` compose v1 would give this container's service now, asked of compose
/// itself (`docker-compose config --hash=SERVICE`, in the project's directory with its
/// files). v1 folds the image id into that hash, so after a rebuild the old hash would make
/// the next `docker-compose up -d` recreate the container again. `None` for containers not
/// made by compose v1.
///
/// Each docker-compose call is a Python start-up (~1 s of CPU). A batch rebuild recreates
/// many services of one project at once, so requests are **batched**: while one call runs,
/// the services asking meanwhile queue up and the next call (`--hash=a,b,c`) answers them
/// all. The hash is computed after the request was made, so it sees the new image.
pub async fn compose_v1_hash(labels: &HashMap<String, String>) -> Option<Result<String, String>> {
    let version = labels.get("com.docker.compose.version")?;
    if !version.starts_with("1.") {
        return None;
    }
    let key = HashKey {
        project: labels.get("com.docker.compose.project")?.clone(),
        dir: labels
            .get("com.docker.compose.project.working_dir")?
            .clone(),
        files: labels
            .get("com.docker.compose.project.config_files")?
            .clone(),
    };
    let service = labels.get("com.docker.compose.service")?.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let start_worker = {
        let mut batches = crate::util::lock(&HASH_BATCHES);
        let batch = batches.entry(key.clone()).or_default();
        batch.waiting.push((service, tx));
        !std::mem::replace(&mut batch.worker, true)
    };
    if start_worker {
        tokio::spawn(hash_worker(key));
    }
    Some(
        rx.await
            .unwrap_or_else(|_| Err("the config-hash worker stopped".to_string())),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HashKey {
    project: String,
    dir: String,
    files: String,
}

type HashReply = tokio::sync::oneshot::Sender<Result<String, String>>;

#[derive(Default)]
struct HashBatch {
    waiting: Vec<(String, HashReply)>,
    /// A worker task is answering this project's requests.
    worker: bool,
}

static HASH_BATCHES: std::sync::LazyLock<std::sync::Mutex<HashMap<HashKey, HashBatch>>> =
    std::sync::LazyLock::new(Default::default);

/// Answers queued requests for one project, one docker-compose call per batch, until none
/// are left.
async fn hash_worker(key: HashKey) {
    loop {
        let batch = {
            let mut batches = crate::util::lock(&HASH_BATCHES);
            let Some(b) = batches.get_mut(&key) else {
                return;
            };
            if b.waiting.is_empty() {
                batches.remove(&key);
                return;
            }
            std::mem::take(&mut b.waiting)
        };
        let mut services: Vec<&str> = batch.iter().map(|(s, _)| s.as_str()).collect();
        services.sort_unstable();
        services.dedup();
        let hashes = compose_hashes(&key, &services).await;
        for (service, reply) in batch {
            let r = match &hashes {
                Ok(map) => map.get(&service).cloned().ok_or_else(|| {
                    format!("docker-compose config --hash printed no hash for {service}")
                }),
                Err(e) => Err(e.clone()),
            };
            let _ = reply.send(r);
        }
    }
}

/// One `docker-compose config --hash=a,b,...` call: service → hash.
async fn compose_hashes(
    key: &HashKey,
    services: &[&str],
) -> Result<HashMap<String, String>, String> {
    let list = services.join(",");
    let mut cmd = tokio::process::Command::new("docker-compose");
    cmd.arg("-p").arg(&key.project);
    for f in key.files.split(',').filter(|f| !f.is_empty()) {
        cmd.arg("-f").arg(f);
    }
    cmd.arg("config")
        .arg(format!("--hash={list}"))
        .current_dir(&key.dir)
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run docker-compose to compute the config hash: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker-compose config --hash={list} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (svc, hash) = l.trim().split_once(' ')?;
            Some((svc.to_string(), hash.trim().to_string()))
        })
        .collect())
}
