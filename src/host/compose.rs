//! `compose::` — read a compose file the way `docker compose` does, for the parts a rebuild
//! needs: each service's image name and `build:` section (every key of the Compose
//! Specification; an unknown key is an error naming it and its line).
//!
//! Why not ask `docker compose config`? It is a process per call (and needs `--allow-exec`);
//! compose v1 and v2 print different shapes; and the rebuild only needs the `build:` and
//! `image:` keys, whose rules are small (the typed reader is `docker::compose_file`).
//!
//! ```rhai
//! let svcs = compose::services("examples/homeiq/docker-compose.yml");
//! let b = svcs["data-api"].build;     // #{context, dockerfile, args, target, labels, ...}
//! // Build it exactly as `docker compose build data-api` would:
//! docker::build(#{ compose_file: "examples/homeiq/docker-compose.yml", service: "data-api",
//!                  project: "homeiq", tag: "homeiq-data-api:latest" });
//! ```

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::{config_error, fail, with_host};
use crate::docker::compose_file::{self, BuildDef};

fn string_map(m: &indexmap::IndexMap<String, String>) -> Map {
    m.iter()
        .map(|(k, v)| (k.into(), Dynamic::from(v.clone())))
        .collect()
}

fn string_array(v: &[String]) -> Array {
    v.iter().map(|s| Dynamic::from(s.clone())).collect()
}

fn optional(v: &Option<String>) -> Dynamic {
    v.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT)
}

/// A `build:` section as the Rhai map scripts see.
fn build_map(b: &BuildDef) -> Map {
    let mut m = Map::new();
    m.insert("context".into(), b.context.clone().into());
    m.insert("dockerfile".into(), b.dockerfile.clone().into());
    m.insert("dockerfile_inline".into(), optional(&b.dockerfile_inline));
    m.insert("args".into(), string_map(&b.args).into());
    m.insert("target".into(), optional(&b.target));
    m.insert("labels".into(), string_map(&b.labels).into());
    m.insert("cache_from".into(), string_array(&b.cache_from).into());
    m.insert("network".into(), optional(&b.network));
    m.insert("extra_hosts".into(), string_array(&b.extra_hosts).into());
    m.insert(
        "shm_size".into(),
        b.shm_size
            .map(|s| Dynamic::from(s as rhai::INT))
            .unwrap_or(Dynamic::UNIT),
    );
    m.insert("secrets".into(), string_array(&b.secrets).into());
    m.insert("ssh".into(), string_array(&b.ssh).into());
    m.insert(
        "additional_contexts".into(),
        string_map(&b.additional_contexts).into(),
    );
    m.insert("keys".into(), string_array(&b.keys).into());
    m
}

/// The build settings of every service in the compose file `file` (its path relative to the
/// workspace root, which contexts are made relative to) whose text is `text`.
pub fn services_of(file: &str, text: &str) -> Result<Map, String> {
    let env = |k: &str| std::env::var(k).ok();
    let cf = compose_file::parse(file, text, &env)?;
    let mut out = Map::new();
    for (name, svc) in &cf.services {
        let mut m = Map::new();
        m.insert("image".into(), optional(&svc.image));
        let build = svc
            .build
            .as_ref()
            .map(|b| Dynamic::from(build_map(b)))
            .unwrap_or(Dynamic::UNIT);
        m.insert("build".into(), build);
        out.insert(name.into(), m.into());
    }
    Ok(out)
}

#[export_module]
pub mod compose_api {
    use super::*;

    /// The services of a compose file (path relative to the workspace): a map service →
    /// `#{image, build}` where `image` is the `image:` key (or `()`) and `build` is
    /// `#{context, dockerfile, dockerfile_inline, args, target, labels, cache_from, network,
    /// extra_hosts, shm_size, secrets, ssh, additional_contexts, keys}` (or `()` for services
    /// that are only pulled; `keys` lists the keys the file sets). `context` is relative to
    /// the workspace root. An unknown `build:` key is an error naming it and its line.
    #[rhai_fn(return_raw)]
    pub fn services(ctx: NativeCallContext, file: &str) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let path = super::super::fs::resolve(&h.root, file)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| fail(format!("cannot read compose file {file}: {e}")))?;
            let rel = path
                .strip_prefix(&h.root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| file.to_string());
            services_of(&rel, &text).map_err(|e| config_error(&e))
        })
    }
}

/// Built once per process: every engine shares it.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(compose_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_static_module("compose", MODULE.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_build_forms() {
        let text = "services:\n  a:\n    build: ./svc\n  b:\n    build:\n      context: ../x\n      dockerfile: D\n      args:\n        - K=v\n  c:\n    image: busybox\n    build:\n      context: .\n      args:\n        N: 3\n";
        let m = services_of("lab/compose.yml", text).unwrap();
        let b = |s: &str| m[s].clone_cast::<Map>()["build"].clone_cast::<Map>();
        assert_eq!(b("a")["context"].clone().into_string().unwrap(), "lab/svc");
        assert_eq!(b("b")["context"].clone().into_string().unwrap(), "x");
        assert_eq!(b("b")["dockerfile"].clone().into_string().unwrap(), "D");
        let args = b("c")["args"].clone_cast::<Map>();
        assert_eq!(args["N"].clone().into_string().unwrap(), "3");
        assert_eq!(
            m["c"].clone_cast::<Map>()["image"]
                .clone()
                .into_string()
                .unwrap(),
            "busybox"
        );
    }
}
