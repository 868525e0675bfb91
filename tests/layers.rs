//! The crate's layers, checked on its own sources: every `crate::` path a module names must
//! point to a module of its own layer or one below, and the modules must not form a cycle.
//!
//! ```text
//! cli
//!  └ repl, watch, validate, monitor        (front ends of one run lifecycle)
//!     └ runtime
//!        └ engine, resolver                (the Rhai engine, module imports)
//!           └ host                         (Rhai values in and out, nothing else)
//!              └ docker, influx, requirements, journal, config, lab, timeline
//!                                        (typed domain APIs)
//!                 └ diagnostic, error, secrets, source, cancel, memory, startup, docs
//!                    └ util                (leaf helpers)
//! ```
//!
//! A dependency that runs upward (say, `docker/` reaching into `host::` for a helper) is how
//! the crate grew two cycles before; this test names the file and the path when one comes
//! back. Unit tests inside a file (`#[cfg(test)] mod tests`) may use anything and are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and its layer (higher may use lower).
const LAYERS: &[(&str, u8)] = &[
    ("util", 0),
    ("diagnostic", 1),
    ("error", 1),
    ("secrets", 1),
    ("source", 1),
    ("cancel", 1),
    ("memory", 1),
    ("startup", 1),
    ("docs", 1),
    ("docker", 2),
    ("influx", 2),
    ("requirements", 2),
    ("journal", 2),
    ("config", 2),
    ("lab", 2),
    ("timeline", 2),
    ("host", 3),
    ("engine", 4),
    ("resolver", 4),
    ("runtime", 5),
    ("repl", 6),
    ("watch", 6),
    ("validate", 6),
    ("monitor", 6),
    ("cli", 7),
];

/// The crate root's re-exports (`crate::Error`, `crate::Runtime`): where they live.
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("Error", "error"),
    ("Result", "error"),
    ("Runtime", "runtime"),
    ("RuntimeBuilder", "runtime"),
    ("Mode", "host"),
    ("rhai", "util"),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The text of a source file without its unit tests and comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(file, module it names)` for every `crate::x` path in the files of module `m`.
fn uses(root: &Path) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let code = code_of(&std::fs::read_to_string(&path).unwrap());
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let target = ROOT_ITEMS
                    .iter()
                    .find(|(item, _)| *item == name)
                    .map_or(name.clone(), |(_, m)| m.to_string());
                if target != module {
                    out.entry(module.clone())
                        .or_default()
                        .insert((rel.display().to_string(), target));
                }
            }
        }
    }
    out
}

#[test]
fn dependencies_run_down_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let uses = uses(&root);
    let mut wrong = Vec::new();
    for (module, targets) in &uses {
        let Some(from) = layer(module) else {
            wrong.push(format!(
                "src/{module}: a module with no layer: add it to LAYERS"
            ));
            continue;
        };
        for (file, target) in targets {
            match layer(target) {
                None => wrong.push(format!("src/{file}: crate::{target} has no layer")),
                Some(to) if to > from => wrong.push(format!(
                    "src/{file}: {module} (layer {from}) uses crate::{target} (layer {to}), \
                     which is above it"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn modules_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph: BTreeMap<String, BTreeSet<String>> = uses(&root)
        .into_iter()
        .map(|(m, t)| (m, t.into_iter().map(|(_, to)| to).collect()))
        .collect();
    // Depth-first search with the path so far: a module met again on its own path closes a
    // cycle, named in full.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        if let Some(i) = path.iter().position(|p| p == m) {
            return Err(format!("{} → {m}", path[i..].join(" → ")));
        }
        if done.contains(m) {
            return Ok(());
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done)?;
        }
        path.pop();
        done.insert(m.to_string());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Err(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("module cycle: {cycle}");
        }
    }
}

/// The checker finds what it is for: an upward path and a cycle in made-up sources.
#[test]
fn the_check_sees_an_upward_path_and_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("docker")).unwrap();
    std::fs::write(src.join("docker/mod.rs"), "use crate::host::lock;\n").unwrap();
    std::fs::write(
        src.join("host.rs"),
        "use crate::docker::x;\n#[cfg(test)]\nmod tests { use crate::cli::y; }\n",
    )
    .unwrap();
    let u = uses(src);
    assert!(u["docker"].contains(&("docker/mod.rs".into(), "host".into())));
    assert!(
        !u["host"].iter().any(|(_, t)| t == "cli"),
        "unit tests are not read"
    );
    assert!(layer("docker") < layer("host"));
}
