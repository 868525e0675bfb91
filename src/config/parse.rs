//! Reading and checking a fleet config: strict keys, no duplicate keys, no empty values where
//! one is needed, cross-references that resolve, numbers in range — each error with the key
//! and the line it is on.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;
use super::model::{DeployOrder, FleetConfig, Limit, MAX_BATCH};
use crate::util::yaml::{MAX_YAML_FLOW_DEPTH, yaml_too_deep};

impl FleetConfig {
    /// Reads and checks `path`; errors carry the file name and line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::source::read_capped(path, "config").map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            message: match e {
                crate::error::Error::Io { source, .. } => format!("cannot read: {source}"),
                other => other.to_string(),
            },
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let err = |line: usize, message: String| ConfigError {
            file: file.to_string(),
            line,
            message,
        };
        let text = crate::source::strip_bom(text);
        if let Some(line) = yaml_too_deep(text) {
            return Err(err(
                line,
                format!(
                    "collections nest more than {} deep; this is not a fleet config",
                    MAX_YAML_FLOW_DEPTH
                ),
            ));
        }
        if let Some((key, first, second)) = duplicate_key(text) {
            return Err(err(
                second,
                format!(
                    "duplicate key '{key}' (first on line {first}, again on line {second}); \
                     YAML would silently keep only the second — remove or rename one"
                ),
            ));
        }
        // The generic tree first: it refuses duplicates in flow style (`{a: 1, a: 2}`) and
        // shows nulls, which the typed parse would turn into the text "~".
        let tree: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            err(line, e.to_string().replace(" at line", "; at line"))
        })?;
        let mut path = Vec::new();
        if let Some(null_at) = find_null(&tree, &mut path) {
            let refs: Vec<&str> = null_at.iter().map(String::as_str).collect();
            return Err(err(
                key_line(text, &refs),
                format!(
                    "{}: needs a value but is empty (null / ~); give it one or remove the key",
                    null_at.join(".")
                ),
            ));
        }
        let cfg: FleetConfig = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            // serde's "unknown field `x`, expected one of …" already names the key; add where
            // it sits so the message reads on its own.
            err(line, e.to_string().replace(" at line", "; at line"))
        })?;
        cfg.check_references(text)
            .map_err(|(line, m)| err(line, m))?;
        cfg.check_engines(text).map_err(|(line, m)| err(line, m))?;
        cfg.check_swarm(text).map_err(|(line, m)| err(line, m))?;
        cfg.check_writers_stop_first(text, file)?;
        cfg.check_ports(text).map_err(|(line, m)| err(line, m))?;
        check_ranges(&cfg, text).map_err(|(line, m)| err(line, m))?;
        Ok(cfg)
    }

    /// Names that must point at something: a service's category, an infrastructure writer;
    /// and health paths that must be paths.
    fn check_references(&self, text: &str) -> Result<(), (usize, String)> {
        for (name, svc) in &self.services {
            if !self.categories.contains_key(&svc.category) {
                let known: Vec<&str> = self.categories.keys().map(String::as_str).collect();
                return Err((
                    key_line(text, &["services", name, "category"]),
                    format!(
                        "services.{name}.category: unknown category '{}' (known: {})",
                        svc.category,
                        known.join(", ")
                    ),
                ));
            }
            if let Some(p) = svc.health_path.as_deref().filter(|p| !p.starts_with('/')) {
                return Err((
                    key_line(text, &["services", name, "health_path"]),
                    format!("services.{name}.health_path: '{p}' must start with /"),
                ));
            }
        }
        for (name, infra) in &self.infrastructure {
            if let Some(w) = infra.writer.as_deref()
                && !self.services.contains_key(w)
            {
                return Err((
                    key_line(text, &["infrastructure", name, "writer"]),
                    format!("infrastructure.{name}.writer: '{w}' is not a service"),
                ));
            }
        }
        Ok(())
    }

    /// No two services on one port; batches of at least one.
    fn check_ports(&self, text: &str) -> Result<(), (usize, String)> {
        let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, svc) in &self.services {
            if let Some(other) = ports.insert(svc.port, name) {
                return Err((
                    key_line(text, &["services", name, "port"]),
                    format!(
                        "services.{name}.port: {} is already {other}'s port",
                        svc.port
                    ),
                ));
            }
        }
        let d = &self.defaults;
        for (key, v) in [
            ("batch_size", d.batch_size),
            ("deploy_concurrency", d.deploy_concurrency),
        ] {
            if v == Limit::Fixed(0) {
                return Err((
                    key_line(text, &["defaults", key]),
                    format!("defaults.{key} must be at least 1 (or auto)"),
                ));
            }
        }
        Ok(())
    }

    /// A writer (`infrastructure.*.writer`) must deploy stop-first: started first, two of it
    /// would write every point twice while both run.
    fn check_writers_stop_first(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let writers: Vec<&str> = self
            .infrastructure
            .values()
            .filter_map(|i| i.writer.as_deref())
            .collect();
        for s in self.resolved() {
            if s.order != DeployOrder::StartFirst || !writers.contains(&s.name.as_str()) {
                continue;
            }
            let svc = &self.services[&s.name];
            let (path, key) = match (svc.order, self.categories[&s.category].order) {
                (Some(_), _) => (
                    vec!["services", s.name.as_str(), "order"],
                    format!("services.{}.order", s.name),
                ),
                (None, Some(_)) => (
                    vec!["categories", s.category.as_str(), "order"],
                    format!("categories.{}.order", s.category),
                ),
                _ => (vec!["defaults", "order"], "defaults.order".to_string()),
            };
            return Err(ConfigError {
                file: file.to_string(),
                line: key_line(text, &path),
                message: format!(
                    "{key}: {} writes into InfluxDB and must deploy stop-first (started first, \
                     two of it would write every point twice); set order: stop-first for it",
                    s.name
                ),
            });
        }
        Ok(())
    }
}

/// Keys whose value may be left empty (`~`): the optional settings.
const NULLABLE: &[&str] = &[
    "health_path",
    "database",
    "measurement",
    "writer",
    "health_timeout_s",
    "otlp_port",
    "batch_size",
    "max_failures",
    "latency_budget_ms",
    "story",
];

/// The path of the first null value where a value is required.
fn find_null(v: &serde_yaml::Value, path: &mut Vec<String>) -> Option<Vec<String>> {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, val) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                path.push(key);
                // Optional settings sit at `<section>.<name>.<key>`.
                let nullable = path.len() >= 3 && NULLABLE.contains(&path[path.len() - 1].as_str());
                if val.is_null() && !nullable {
                    return Some(path.clone());
                }
                if let Some(p) = find_null(val, path) {
                    return Some(p);
                }
                path.pop();
            }
            None
        }
        serde_yaml::Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                if item.is_null() {
                    return Some(path.clone());
                }
                if let Some(p) = find_null(item, path) {
                    return Some(p);
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}

/// A key given twice in one block mapping: (key, first line, second line). YAML parsers
/// differ on this (ours keeps the last one silently), and a second `data-api:` entry
/// replacing the first is exactly the mistake nobody notices.
pub fn duplicate_key(text: &str) -> Option<(String, usize, usize)> {
    use std::collections::HashMap;
    // Open mappings: (indentation of their keys, key → line).
    let mut scopes: Vec<(usize, HashMap<String, usize>)> = Vec::new();
    let mut block_scalar_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed_end = raw.trim_end();
        let body = trimmed_end.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut indent = trimmed_end.len() - body.len();
        if let Some(b) = block_scalar_indent {
            if indent > b {
                continue; // text of a `|` or `>` block
            }
            block_scalar_indent = None;
        }
        if body == "---" || body == "..." {
            scopes.clear();
            continue;
        }
        let mut body = body;
        // `- key: v` opens a new mapping (one list item) at the key's indentation.
        let mut new_item = false;
        while let Some(rest) = body.strip_prefix("- ") {
            indent += 2;
            body = rest.trim_start();
            new_item = true;
        }
        scopes.retain(|(ind, _)| *ind < indent || (*ind == indent && !new_item));
        let Some(key) = block_key(body) else {
            continue;
        };
        let value = body[body.find(':').map_or(body.len(), |c| c + 1)..].trim_start();
        if value.starts_with('|') || value.starts_with('>') {
            block_scalar_indent = Some(indent);
        }
        match scopes.last_mut() {
            Some((ind, keys)) if *ind == indent => {
                if let Some(first) = keys.insert(key.clone(), line_no) {
                    return Some((key, first, line_no));
                }
            }
            _ => scopes.push((indent, HashMap::from([(key, line_no)]))),
        }
    }
    None
}

/// The key of a block mapping line (`key: value`, `"key": value`), if it is one.
fn block_key(body: &str) -> Option<String> {
    if body.starts_with(['{', '[', '&', '*', '!', '|', '>', '"', '\'']) {
        let q = body.chars().next()?;
        if q == '"' || q == '\'' {
            let end = body[1..].find(q)? + 1;
            let after = &body[end + 1..];
            return (after.starts_with(':')).then(|| body[1..end].to_string());
        }
        return None;
    }
    let colon = body
        .find(": ")
        .or_else(|| body.strip_suffix(':').map(str::len))?;
    let key = body[..colon].trim();
    (!key.is_empty() && !key.contains(" #")).then(|| key.to_string())
}

/// Numbers that parse but make no sense: a port 0, a batch of 0 builds.
fn check_ranges(cfg: &FleetConfig, text: &str) -> Result<(), (usize, String)> {
    let bad = |path: &[&str], msg: String| (key_line(text, path), msg);
    for (name, s) in &cfg.services {
        if s.port == 0 {
            return Err(bad(
                &["services", name, "port"],
                format!("services.{name}.port: 0 is not a port (1–65535)"),
            ));
        }
        if s.health_timeout_s == Some(0) {
            return Err(bad(
                &["services", name, "health_timeout_s"],
                format!("services.{name}.health_timeout_s: must be at least 1"),
            ));
        }
    }
    for (name, i) in &cfg.infrastructure {
        if i.port == 0 {
            return Err(bad(
                &["infrastructure", name, "port"],
                format!("infrastructure.{name}.port: 0 is not a port (1–65535)"),
            ));
        }
    }
    for (name, c) in &cfg.categories {
        if let Some(b) = c.batch_size
            && !(1..=MAX_BATCH).contains(&b)
        {
            return Err(bad(
                &["categories", name, "batch_size"],
                format!("categories.{name}.batch_size: {b} is out of range (1–{MAX_BATCH})"),
            ));
        }
        if c.health_timeout_s == Some(0) {
            return Err(bad(
                &["categories", name, "health_timeout_s"],
                format!("categories.{name}.health_timeout_s: must be at least 1"),
            ));
        }
    }
    let d = &cfg.defaults;
    let count = |l: Limit| match l {
        Limit::Fixed(n) => n,
        Limit::Auto => 1,
    };
    for (key, v) in [
        ("batch_size", count(d.batch_size)),
        ("deploy_concurrency", count(d.deploy_concurrency)),
    ] {
        if v > MAX_BATCH {
            return Err(bad(
                &["defaults", key],
                format!("defaults.{key}: {v} is out of range (1–{MAX_BATCH})"),
            ));
        }
    }
    for (key, v) in [
        ("health_timeout_s", d.health_timeout_s),
        ("build_timeout_s", d.build_timeout_s),
    ] {
        if v == 0 {
            return Err(bad(
                &["defaults", key],
                format!("defaults.{key}: must be at least 1"),
            ));
        }
    }
    Ok(())
}

/// The 1-based line of the key at `path` (each element a mapping key, nested by
/// indentation), or the deepest prefix found; 0 if not even the first key is there. Good
/// enough for block-style YAML, which is what config files are.
pub fn key_line(text: &str, path: &[&str]) -> usize {
    let mut found = 0;
    let mut depth = 0;
    let mut parent_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        if depth == path.len() {
            break;
        }
        let line = raw.split(" #").next().unwrap_or("");
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(p) = parent_indent
            && indent <= p
        {
            // Left the parent's block without finding the key.
            break;
        }
        let key = trimmed.split(':').next().unwrap_or("").trim();
        let key = key.trim_matches(|c| c == '"' || c == '\'');
        if key == path[depth] && trimmed.contains(':') {
            found = i + 1;
            depth += 1;
            parent_indent = Some(indent);
        }
    }
    found
}
