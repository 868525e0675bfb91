//! `compose::` — read a compose file the way `docker compose` does, for the parts a rebuild
//! needs: each service's build context, Dockerfile, build args and image name.
//!
//! Why not ask `docker compose config`? It is a process per call (and needs `--allow-exec`);
//! compose v1 and v2 print different shapes; and the rebuild only needs the `build:` and
//! `image:` keys, whose rules are small: `build` is a path or a map (`context`,
//! `dockerfile`, `args` as a map or a `KEY=VALUE` list), and `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}` and `$$` are interpolated from the environment.
//!
//! ```rhai
//! let svcs = compose::services("examples/homeiq/docker-compose.yml");
//! let b = svcs["data-api"].build;     // #{context, dockerfile, args}
//! docker::build(#{ context: b.context, dockerfile: b.dockerfile, build_args: b.args, tag: "x" });
//! ```

use std::path::{Component, Path, PathBuf};

use rhai::plugin::*;
use rhai::{Dynamic, Engine, EvalAltResult, Map};
use serde_yaml::Value;

use super::{fail, host};

/// `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR` and `$$`, as compose interpolates.
pub fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed '${{' in \"{s}\""))?;
            let expr = &body[..end];
            let value = if let Some((name, def)) = expr.split_once(":-") {
                env(name)
                    .filter(|v| !v.is_empty())
                    .unwrap_or(def.to_string())
            } else if let Some((name, def)) = expr.split_once('-') {
                env(name).unwrap_or(def.to_string())
            } else {
                env(expr).unwrap_or_default()
            };
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if n == 0 {
                out.push('$');
            } else {
                out.push_str(&env(&after[..n]).unwrap_or_default());
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn lexical_normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// The build settings of every service in the compose file `file` (its path relative to the
/// workspace root, which contexts are made relative to) whose text is `text`.
pub fn services_of(file: &str, text: &str) -> Result<Map, String> {
    let env = |k: &str| std::env::var(k).ok();
    let doc: Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        format!("{file}{at}: invalid compose YAML: {e}")
    })?;
    let services = doc
        .get("services")
        .and_then(Value::as_mapping)
        .ok_or_else(|| format!("{file}: no `services:` map (is this a compose file?)"))?;
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut out = Map::new();
    for (name, svc) in services {
        let name = name
            .as_str()
            .ok_or_else(|| format!("{file}: a service name is not a string"))?;
        let mut m = Map::new();
        let image = match svc.get("image").and_then(scalar) {
            Some(i) => Dynamic::from(interpolate(&i, &env)?),
            None => Dynamic::UNIT,
        };
        m.insert("image".into(), image);
        let build = match svc.get("build") {
            None => Dynamic::UNIT,
            Some(b) => {
                let (context, dockerfile, args) = match b {
                    Value::String(ctx) => (ctx.clone(), None, None),
                    Value::Mapping(_) => (
                        b.get("context")
                            .and_then(scalar)
                            .unwrap_or_else(|| ".".into()),
                        b.get("dockerfile").and_then(scalar),
                        b.get("args"),
                    ),
                    _ => {
                        return Err(format!(
                            "{file}: services.{name}.build must be a path or a map"
                        ));
                    }
                };
                let context = interpolate(&context, &env)?;
                if context.contains("://") || context.starts_with("git@") {
                    return Err(format!(
                        "{file}: services.{name}.build.context '{context}' is a remote context; \
                         dockhand builds local directories only"
                    ));
                }
                let ctx_path = lexical_normalize(&dir.join(&context));
                let mut bm = Map::new();
                bm.insert(
                    "context".into(),
                    ctx_path.to_string_lossy().into_owned().into(),
                );
                bm.insert(
                    "dockerfile".into(),
                    interpolate(&dockerfile.unwrap_or_else(|| "Dockerfile".into()), &env)?.into(),
                );
                let mut am = Map::new();
                match args {
                    Some(Value::Mapping(a)) => {
                        for (k, v) in a {
                            let k = scalar(k).unwrap_or_default();
                            let v = scalar(v).ok_or_else(|| {
                                format!("{file}: services.{name}.build.args.{k} must be a scalar")
                            })?;
                            am.insert(k.into(), interpolate(&v, &env)?.into());
                        }
                    }
                    Some(Value::Sequence(a)) => {
                        for item in a {
                            let item = scalar(item).unwrap_or_default();
                            let (k, v) = match item.split_once('=') {
                                Some((k, v)) => (k.to_string(), interpolate(v, &env)?),
                                // `- KEY` alone takes the value from the environment.
                                None => (item.clone(), env(&item).unwrap_or_default()),
                            };
                            am.insert(k.into(), v.into());
                        }
                    }
                    None | Some(Value::Null) => {}
                    Some(_) => {
                        return Err(format!(
                            "{file}: services.{name}.build.args must be a map or a list"
                        ));
                    }
                }
                bm.insert("args".into(), am.into());
                bm.into()
            }
        };
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
    /// `#{context, dockerfile, args}` (or `()` for services that are only pulled).
    /// `context` is relative to the workspace root, ready for `docker::build`.
    #[rhai_fn(return_raw)]
    pub fn services(ctx: NativeCallContext, file: &str) -> Result<Map, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let path = super::super::fs::resolve(&h.root, file)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| fail(format!("cannot read compose file {file}: {e}")))?;
            let rel = path
                .strip_prefix(&h.root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| file.to_string());
            services_of(&rel, &text).map_err(|e| -> Box<EvalAltResult> {
                fail(format!("{}{e}", super::super::CONFIG_ERROR))
            })
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

    fn env(k: &str) -> Option<String> {
        match k {
            "TAG" => Some("2".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_like_compose() {
        assert_eq!(interpolate("v${TAG}", &env).unwrap(), "v2");
        assert_eq!(interpolate("$TAG-x", &env).unwrap(), "2-x");
        assert_eq!(interpolate("${NOPE:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY-d}", &env).unwrap(), "");
        assert_eq!(interpolate("$$HOME", &env).unwrap(), "$HOME");
        assert!(interpolate("${OPEN", &env).is_err());
    }

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
