//! A compose file's services and their `build:` sections, read the way `docker compose` reads
//! them — typed, with no Rhai in sight (`src/host/compose.rs` is the Rhai face).
//!
//! Why read the file ourselves when the rebuild drives Compose v2 to build? Three reasons:
//! the plan of a `--dry-run` and the classic-builder fallback need the build settings without
//! running anything; a key that dockhand could not honour must be an error *before* a
//! 45-service run starts, naming the key and its line; and the image name compose gives a
//! service (`image:`, else `<project>-<service>` on v2, `<project>_<service>` on v1) is what
//! the rebuild tags, backs up and recreates.
//!
//! Every key of the Compose Specification's `build:` section is known here. With BuildKit
//! (Compose v2 installed) all of them are honoured, because Compose itself builds. The classic
//! builder (the fallback on hosts without Compose v2) cannot do some of them; [`BuildDef::
//! classic_blockers`] names those, so the fallback refuses instead of building a different
//! image than `docker compose build` would.

use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use serde_yaml::Value;

/// Keys of a `build:` map in the Compose Specification.
const BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "args",
    "ssh",
    "cache_from",
    "cache_to",
    "additional_contexts",
    "entitlements",
    "extra_hosts",
    "isolation",
    "privileged",
    "labels",
    "no_cache",
    "pull",
    "network",
    "shm_size",
    "target",
    "secrets",
    "tags",
    "ulimits",
    "platforms",
    "provenance",
    "sbom",
];

/// Keys only BuildKit can honour: the classic builder has no equivalent.
const BUILDKIT_ONLY: &[&str] = &[
    "ssh",
    "cache_to",
    "additional_contexts",
    "entitlements",
    "privileged",
    "secrets",
    "ulimits",
    "platforms",
    "provenance",
    "sbom",
];

/// One service's `build:` section, paths made relative to the workspace root.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildDef {
    /// Build context directory, relative to the workspace root (lexically normalised).
    pub context: String,
    /// Dockerfile path relative to the context (`Dockerfile` unless set).
    pub dockerfile: String,
    /// The Dockerfile's text when given inline (`dockerfile_inline:`).
    pub dockerfile_inline: Option<String>,
    pub args: IndexMap<String, String>,
    pub target: Option<String>,
    pub labels: IndexMap<String, String>,
    pub cache_from: Vec<String>,
    pub network: Option<String>,
    /// `host:ip` (or `host=ip`) entries.
    pub extra_hosts: Vec<String>,
    /// Bytes, from an integer or a size such as `256m` / `2gb`.
    pub shm_size: Option<u64>,
    /// Secret ids the build may mount (`secrets:`; short or long form).
    pub secrets: Vec<String>,
    pub ssh: Vec<String>,
    pub additional_contexts: IndexMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    /// Further image names to tag the result with (`tags:`).
    pub tags: Vec<String>,
    /// The keys present in the file, in file order (to tell what a builder must honour).
    pub keys: Vec<String>,
}

impl BuildDef {
    /// The keys present that the classic builder cannot honour.
    pub fn classic_blockers(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| BUILDKIT_ONLY.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// One service of the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceDef {
    /// `image:` as written (interpolated), if any.
    pub image: Option<String>,
    pub build: Option<BuildDef>,
}

/// A parsed compose file.
#[derive(Debug, Clone, Default)]
pub struct ComposeFile {
    /// The file's path as given (relative to the workspace root).
    pub path: String,
    /// Top-level `name:` (the project name when `-p` is not given).
    pub name: Option<String>,
    pub services: IndexMap<String, ServiceDef>,
}

/// Which compose names images: v2 `<project>-<service>`, v1 `<project>_<service>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    V1,
    V2,
}

impl ComposeFile {
    /// The image name compose gives `service` in `project`: `image:` if set, else
    /// `<project>-<service>` (v2) or `<project>_<service>` (v1). `None` for an unknown service.
    pub fn image_name(&self, service: &str, project: &str, flavor: Flavor) -> Option<String> {
        let svc = self.services.get(service)?;
        Some(match (&svc.image, flavor) {
            (Some(i), _) => i.clone(),
            (None, Flavor::V2) => format!("{}-{service}", project_name(project)),
            (None, Flavor::V1) => format!("{}_{service}", project_name(project)),
        })
    }

    /// The project compose would use without `-p`: `name:`, else the file's directory name.
    pub fn default_project(&self) -> String {
        if let Some(n) = &self.name {
            return project_name(n);
        }
        let dir = std::path::absolute(Path::new(&self.path))
            .ok()
            .and_then(|p| {
                p.parent()?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        project_name(&dir)
    }
}

/// A project name as compose normalises it: lower case, only `a-z0-9_-`.
pub fn project_name(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `$VAR` and `$$`, as compose
/// interpolates.
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
            out.push_str(&substitute(&body[..end], env)?);
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

/// The value of one `${...}` expression.
fn substitute(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    Ok(if let Some((name, msg)) = expr.split_once(":?") {
        env(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("required variable {name} is missing a value: {msg}"))?
    } else if let Some((name, def)) = expr.split_once(":-") {
        env(name)
            .filter(|v| !v.is_empty())
            .unwrap_or(def.to_string())
    } else if let Some((name, msg)) = expr.split_once('?') {
        env(name).ok_or_else(|| format!("required variable {name} is missing a value: {msg}"))?
    } else if let Some((name, def)) = expr.split_once('-') {
        env(name).unwrap_or(def.to_string())
    } else {
        env(expr).unwrap_or_default()
    })
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

/// The 1-based line of `services.<svc>.build.<key>` in `text` (by indentation), for errors.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut want = path.iter();
    let mut next = want.next()?;
    let mut min_indent = 0usize;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start().trim_start_matches("- ");
        let key = t.split(':').next().unwrap_or("").trim().trim_matches('"');
        if indent >= min_indent && key == *next && t.contains(':') {
            match want.next() {
                Some(n) => {
                    next = n;
                    min_indent = indent + 1;
                }
                None => return Some(i + 1),
            }
        }
    }
    None
}

/// Parses a compose file. `file` is its path relative to the workspace root (contexts are made
/// relative to the root through it); `env` interpolates `${VAR}`.
pub fn parse(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ComposeFile, String> {
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
    let mut out = ComposeFile {
        path: file.to_string(),
        name: doc.get("name").and_then(scalar),
        services: IndexMap::new(),
    };
    for (name, svc) in services {
        let name = name
            .as_str()
            .ok_or_else(|| format!("{file}: a service name is not a string"))?;
        let image = match svc.get("image").and_then(scalar) {
            Some(i) => Some(interpolate(&i, env)?),
            None => None,
        };
        let build = match svc.get("build") {
            None | Some(Value::Null) => None,
            Some(b) => Some(parse_build(b, dir, env).map_err(|e| e.locate(file, text, name))?),
        };
        out.services
            .insert(name.to_string(), ServiceDef { image, build });
    }
    Ok(out)
}

/// A `build:` error, before it knows its file and line.
struct BuildError {
    key: String,
    msg: String,
}

impl BuildError {
    fn new(key: &str, msg: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            msg: msg.into(),
        }
    }

    fn locate(self, file: &str, text: &str, service: &str) -> String {
        let mut path = vec!["services", service, "build"];
        if !self.key.is_empty() {
            path.push(&self.key);
        }
        let at = line_of(text, &path)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        let key = if self.key.is_empty() {
            String::new()
        } else {
            format!(".{}", self.key)
        };
        format!("{file}{at}: services.{service}.build{key}: {}", self.msg)
    }
}

fn parse_build(
    b: &Value,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BuildDef, BuildError> {
    let interp = |key: &str, s: &str| interpolate(s, env).map_err(|e| BuildError::new(key, e));
    let mut def = BuildDef {
        dockerfile: "Dockerfile".into(),
        ..Default::default()
    };
    let context = match b {
        Value::String(ctx) => ctx.clone(),
        Value::Mapping(m) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default();
                if k.starts_with("x-") {
                    continue;
                }
                if !BUILD_KEYS.contains(&k) {
                    return Err(BuildError::new(
                        k,
                        format!(
                            "unknown key (the Compose Specification's build keys are: {})",
                            BUILD_KEYS.join(", ")
                        ),
                    ));
                }
                def.keys.push(k.to_string());
                read_key(&mut def, k, v, &interp)?;
            }
            b.get("context")
                .and_then(scalar)
                .unwrap_or_else(|| ".".into())
        }
        _ => return Err(BuildError::new("", "must be a path or a map")),
    };
    let context = interp("context", &context)?;
    if context.contains("://") || context.starts_with("git@") {
        return Err(BuildError::new(
            "context",
            format!("'{context}' is a remote context; dockhand builds local directories only"),
        ));
    }
    def.context = lexical_normalize(&dir.join(&context))
        .to_string_lossy()
        .into_owned();
    for (_, v) in def.additional_contexts.iter_mut() {
        if !v.contains("://") && !v.contains(':') {
            *v = lexical_normalize(&dir.join(&*v))
                .to_string_lossy()
                .into_owned();
        }
    }
    Ok(def)
}

type Interp<'a> = dyn Fn(&str, &str) -> Result<String, BuildError> + 'a;

/// Reads one known key into `def`.
fn read_key(def: &mut BuildDef, k: &str, v: &Value, interp: &Interp) -> Result<(), BuildError> {
    let text = |v: &Value| -> Result<String, BuildError> {
        let s = scalar(v).ok_or_else(|| BuildError::new(k, "must be a string"))?;
        interp(k, &s)
    };
    match k {
        "dockerfile" => def.dockerfile = text(v)?,
        "dockerfile_inline" => def.dockerfile_inline = Some(text(v)?),
        "target" => def.target = Some(text(v)?),
        "network" => def.network = Some(text(v)?),
        "args" => def.args = key_values(k, v, interp, true)?,
        "labels" => def.labels = key_values(k, v, interp, false)?,
        "additional_contexts" => def.additional_contexts = key_values(k, v, interp, false)?,
        "cache_from" => def.cache_from = strings(k, v, interp)?,
        "extra_hosts" => def.extra_hosts = extra_hosts(k, v, interp)?,
        "ssh" => def.ssh = strings(k, v, interp)?,
        "tags" => def.tags = strings(k, v, interp)?,
        "secrets" => def.secrets = secret_ids(k, v)?,
        "shm_size" => {
            def.shm_size = Some(size_bytes(&text(v)?).map_err(|e| BuildError::new(k, e))?)
        }
        "no_cache" => def.no_cache = flag(k, v)?,
        "pull" => def.pull = flag(k, v)?,
        _ => {} // known, honoured by BuildKit through compose; refused by the classic builder
    }
    Ok(())
}

fn flag(k: &str, v: &Value) -> Result<bool, BuildError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(BuildError::new(k, "must be true or false")),
    }
}

/// A map, or a list of `KEY=VALUE` (a bare `KEY` in `args` takes the environment's value).
fn key_values(
    k: &str,
    v: &Value,
    interp: &Interp,
    from_env: bool,
) -> Result<IndexMap<String, String>, BuildError> {
    let mut out = IndexMap::new();
    match v {
        Value::Mapping(m) => {
            for (key, val) in m {
                let key = scalar(key).unwrap_or_default();
                let val = scalar(val)
                    .ok_or_else(|| BuildError::new(k, format!("{key} must be a scalar")))?;
                out.insert(key, interp(k, &val)?);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                let item = scalar(item)
                    .ok_or_else(|| BuildError::new(k, "entries must be KEY=VALUE strings"))?;
                match item.split_once('=') {
                    Some((key, val)) => out.insert(key.to_string(), interp(k, val)?),
                    None if from_env => {
                        let val = interp(k, &format!("${{{item}}}"))?;
                        out.insert(item, val)
                    }
                    None => return Err(BuildError::new(k, format!("'{item}' is not KEY=VALUE"))),
                };
            }
        }
        Value::Null => {}
        _ => return Err(BuildError::new(k, "must be a map or a list")),
    }
    Ok(out)
}

fn strings(k: &str, v: &Value, interp: &Interp) -> Result<Vec<String>, BuildError> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let s = scalar(i).ok_or_else(|| BuildError::new(k, "entries must be strings"))?;
                interp(k, &s)
            })
            .collect(),
        Value::Mapping(m) => m
            .iter()
            .map(|(a, b)| {
                let (a, b) = (scalar(a).unwrap_or_default(), scalar(b).unwrap_or_default());
                interp(k, &if b.is_empty() { a } else { format!("{a}={b}") })
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(BuildError::new(k, "must be a list")),
    }
}

fn extra_hosts(k: &str, v: &Value, interp: &Interp) -> Result<Vec<String>, BuildError> {
    let hosts = strings(k, v, interp)?;
    for h in &hosts {
        if !h.contains(':') && !h.contains('=') {
            return Err(BuildError::new(k, format!("'{h}' is not host:ip")));
        }
    }
    Ok(hosts)
}

/// Secret ids from the short (`- id`) or long (`- source: id`) form.
fn secret_ids(k: &str, v: &Value) -> Result<Vec<String>, BuildError> {
    let Value::Sequence(items) = v else {
        return Err(BuildError::new(k, "must be a list"));
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .or_else(|| i.get("source").and_then(scalar))
                .ok_or_else(|| BuildError::new(k, "entries must be a name or have a source"))
        })
        .collect()
}

/// Bytes from `1024`, `64k`, `256m`, `2g`, `2gb` (compose's units, powers of 1024).
pub fn size_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 64m, 2gb, or a number of bytes)"))
}

#[cfg(test)]
mod tests;
