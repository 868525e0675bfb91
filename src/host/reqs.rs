//! `reqs::` — pip requirements files and `package.json` dependencies, edited surgically.
//!
//! The Phase 1 file stories change version pins in files people review: the edit must show
//! as a one-line diff, keeping comments, order, markers and hashes. Every function here works
//! on *text* (the parser in `dockhand::requirements` round-trips byte for byte), so a
//! playbook reads with `fs::read`, edits with `reqs::`, shows `reqs::diff`, and writes with
//! `fs::write` (atomic, and only recorded under `--dry-run`).
//!
//! ```rhai
//! let text = fs::read("requirements-base.txt");
//! for r in reqs::parse(text) {
//!     if r.kind == "requirement" { print(`${r.name} ${r.specifier} ${r.marker ?? ""}`); }
//! }
//! let new = reqs::set_version(text, "sqlalchemy", "==2.0.46");   // PEP 503 name match
//! print(reqs::diff(text, new, "requirements-base.txt"));
//! let svc = reqs::read("services/data-api/requirements.txt");    // -r / -c followed
//! print(svc.includes);
//! let pkg = reqs::package_set(fs::read("package.json"), "devDependencies", "vitest", "4.0.17");
//! ```
//!
//! Entries from `reqs::parse` are maps with `line` (1-based), `raw` (exact text), `kind`
//! (`requirement`, `include`, `constraint`, `editable`, `option`, `comment`, `blank`,
//! `invalid`) and `comment` (`()` or the text from `#`), plus per kind:
//! * requirement: `name` (`()` for a bare URL), `normalized`, `extras`, `specifier` (as
//!   written, `""` if none), `specifiers` (`[#{op, version}]`), `url`, `marker`, `hashes`,
//!   `options`;
//! * include / constraint / editable: `target`;  option: `option`, `value`;
//!   invalid: `error` (the line is kept verbatim; one odd line does not fail the file).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::{HostResult, fail, invalid, with_host};
use crate::requirements::{EditError, Entry, Kind, ReqFile, normalize, package_json};

fn s(v: &str) -> Dynamic {
    Dynamic::from(v.to_string())
}

fn opt(v: &Option<String>) -> Dynamic {
    v.as_deref().map(s).unwrap_or(Dynamic::UNIT)
}

fn strings(v: &[String]) -> Dynamic {
    Dynamic::from_array(v.iter().map(|x| s(x)).collect())
}

/// One entry as a Rhai map (see the module doc).
pub fn entry_map(e: &Entry) -> Map {
    let mut m = Map::new();
    m.insert("line".into(), Dynamic::from(e.line as i64));
    m.insert("raw".into(), s(&e.raw));
    m.insert("comment".into(), opt(&e.comment));
    let kind = match &e.kind {
        Kind::Blank => "blank",
        Kind::Comment => "comment",
        Kind::Include { constraint, target } => {
            m.insert("target".into(), s(target));
            if *constraint { "constraint" } else { "include" }
        }
        Kind::Editable { target } => {
            m.insert("target".into(), s(target));
            "editable"
        }
        Kind::Option { name, value } => {
            m.insert("option".into(), s(name));
            m.insert("value".into(), opt(value));
            "option"
        }
        Kind::Invalid { error } => {
            m.insert("error".into(), s(error));
            "invalid"
        }
        Kind::Requirement(r) => {
            m.insert("name".into(), opt(&r.name));
            m.insert("normalized".into(), opt(&r.normalized()));
            m.insert("extras".into(), strings(&r.extras));
            m.insert("specifier".into(), s(&r.specifier));
            let specs = r
                .specifiers
                .iter()
                .map(|sp| {
                    let mut x = Map::new();
                    x.insert("op".into(), s(&sp.op));
                    x.insert("version".into(), s(&sp.version));
                    Dynamic::from_map(x)
                })
                .collect();
            m.insert("specifiers".into(), Dynamic::from_array(specs));
            m.insert("url".into(), opt(&r.url));
            m.insert("marker".into(), opt(&r.marker));
            m.insert("hashes".into(), strings(&r.hashes));
            m.insert("options".into(), strings(&r.options));
            "requirement"
        }
    };
    m.insert("kind".into(), s(kind));
    m
}

fn edit_err(e: EditError) -> Box<EvalAltResult> {
    match e {
        EditError::BadSpecifier { .. } => invalid(e.to_string()),
        _ => fail(e.to_string()),
    }
}

/// Lexical join of `dir/target`, `..` folded (the fs sandbox then checks the result).
fn join_rel(dir: &Path, target: &str) -> String {
    let mut out = PathBuf::new();
    for c in dir.join(target).components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out.to_string_lossy().replace('\\', "/")
}

/// What `read` collects while following includes.
#[derive(Default)]
struct Walk {
    requirements: Array,
    constraints: Array,
    includes: Array,
    errors: Array,
    seen: HashSet<PathBuf>,
}

fn walk(root: &Path, rel: &str, as_constraints: bool, w: &mut Walk) -> HostResult<Array> {
    let full = super::fs::resolve(root, rel)?;
    let text =
        std::fs::read_to_string(&full).map_err(|e| fail(format!("cannot read '{rel}': {e}")))?;
    w.seen.insert(full.clone());
    let file = ReqFile::parse(&text);
    let dir = Path::new(rel)
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let mut entries = Array::new();
    for e in &file.entries {
        let mut m = entry_map(e);
        m.insert("file".into(), s(rel));
        match &e.kind {
            Kind::Requirement(_) => {
                let list = if as_constraints {
                    &mut w.constraints
                } else {
                    &mut w.requirements
                };
                list.push(Dynamic::from_map(m.clone()));
            }
            Kind::Invalid { error } => {
                let mut x = Map::new();
                x.insert("file".into(), s(rel));
                x.insert("line".into(), Dynamic::from(e.line as i64));
                x.insert("error".into(), s(error));
                w.errors.push(Dynamic::from_map(x));
            }
            Kind::Include { constraint, target } => {
                let mut inc = Map::new();
                inc.insert(
                    "kind".into(),
                    s(if *constraint { "constraint" } else { "include" }),
                );
                inc.insert("from".into(), s(rel));
                inc.insert("line".into(), Dynamic::from(e.line as i64));
                inc.insert("target".into(), s(target));
                let remote = target.contains("://");
                let path = if remote {
                    Dynamic::UNIT
                } else {
                    s(&join_rel(&dir, target))
                };
                inc.insert("path".into(), path.clone());
                let mut found = false;
                let mut error = Dynamic::UNIT;
                if remote {
                    error = s("a URL include is reported, not fetched");
                } else {
                    let p = path.clone().into_string().unwrap_or_default();
                    match super::fs::resolve(root, &p) {
                        Ok(f) if f.is_file() => {
                            found = true;
                            if !w.seen.contains(&f) {
                                // Everything reached through -c is a constraint.
                                if let Err(e) = walk(root, &p, as_constraints || *constraint, w) {
                                    error = s(&e.to_string());
                                }
                            }
                        }
                        Ok(_) => error = s(&format!("{p}: no such file")),
                        Err(e) => error = s(&e.to_string()),
                    }
                }
                inc.insert("found".into(), Dynamic::from(found));
                inc.insert("error".into(), error);
                w.includes.push(Dynamic::from_map(inc));
            }
            _ => {}
        }
        entries.push(Dynamic::from_map(m));
    }
    Ok(entries)
}

#[export_module]
pub mod reqs_api {
    use super::*;

    /// Parses requirements text into entries (maps; see the module doc). Never throws:
    /// lines it does not understand have kind `invalid` and an `error`.
    pub fn parse(text: &str) -> Array {
        ReqFile::parse(text)
            .entries
            .iter()
            .map(|e| Dynamic::from_map(entry_map(e)))
            .collect()
    }

    /// Reads a requirements file (relative to the workspace root) and follows its `-r` and
    /// `-c` includes, resolved relative to the including file, each file once. Returns
    /// `#{path, entries, requirements, constraints, includes, errors}`: `requirements` are
    /// those of the file and of everything it `-r`-includes (each with its `file`),
    /// `constraints` those reached through `-c`; `includes` lists every include as
    /// `#{kind, from, line, target, path, found, error}` (a missing or outside-the-root file
    /// is reported there, not thrown); `errors` the invalid lines.
    #[rhai_fn(return_raw)]
    pub fn read(ctx: NativeCallContext, path: &str) -> Result<Map, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let rel = join_rel(Path::new(""), path);
            let mut w = Walk::default();
            let entries = walk(&h.root, &rel, false, &mut w)?;
            let mut m = Map::new();
            m.insert("path".into(), s(&rel));
            m.insert("entries".into(), Dynamic::from_array(entries));
            m.insert("requirements".into(), Dynamic::from_array(w.requirements));
            m.insert("constraints".into(), Dynamic::from_array(w.constraints));
            m.insert("includes".into(), Dynamic::from_array(w.includes));
            m.insert("errors".into(), Dynamic::from_array(w.errors));
            Ok(m)
        })
    }

    /// The first requirement named `name` (PEP 503 comparison) as an entry map, or `()`.
    pub fn find(text: &str, name: &str) -> Dynamic {
        let f = ReqFile::parse(text);
        let n = normalize(name);
        f.entries
            .iter()
            .find(|e| matches!(&e.kind, Kind::Requirement(r) if r.normalized().as_deref() == Some(n.as_str())))
            .map(|e| Dynamic::from_map(entry_map(e)))
            .unwrap_or(Dynamic::UNIT)
    }

    /// Whether `version` satisfies `specifier` (PEP 440: `>=2.0,<2.1`, `==2.0.*`, `~=0.21`).
    /// Returns `()` when either cannot be parsed, so the caller can report "unknown".
    pub fn satisfies(version: &str, specifier: &str) -> Dynamic {
        crate::requirements::satisfies(version, specifier)
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)
    }

    /// PEP 503 normalized name: `Foo_Bar.baz` → `foo-bar-baz`.
    #[rhai_fn(name = "normalize")]
    pub fn normalize_name(name: &str) -> String {
        normalize(name)
    }

    /// Returns `text` with the specifier of every requirement named `name` replaced by
    /// `spec` (`==2.0.46`, `>=2.0.46,<2.1`; a bare `2.0.46` means `==2.0.46`). Only those
    /// characters change: extras, marker, hashes, comment and position stay. Throws when
    /// there is no such requirement, it is `name @ url`, or `spec` is not a specifier.
    #[rhai_fn(return_raw)]
    pub fn set_version(
        ctx: NativeCallContext,
        text: &str,
        name: &str,
        spec: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        super::super::at(ctx.call_position(), move || {
            let mut f = ReqFile::parse(text);
            f.set_version(name, spec).map_err(edit_err)?;
            Ok(f.render())
        })
    }

    /// Returns `text` with a full-line comment `# note` inserted just above the first
    /// requirement named `name` (same indentation and line ending). Throws when there is no
    /// such requirement.
    #[rhai_fn(return_raw)]
    pub fn comment_above(
        ctx: NativeCallContext,
        text: &str,
        name: &str,
        note: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        super::super::at(ctx.call_position(), move || {
            if note.contains('\n') || note.contains('\r') {
                return Err(invalid("a comment note must be a single line"));
            }
            let mut f = ReqFile::parse(text);
            if !f.comment_above(name, note) {
                return Err(fail(EditError::NotFound(name.to_string()).to_string()));
            }
            Ok(f.render())
        })
    }

    /// Unified diff (3 lines of context) from `a` to `b`; `""` when they are equal.
    pub fn diff(a: &str, b: &str) -> String {
        diff_labelled(a, b, "file")
    }

    /// Unified diff from `a` to `b` with `--- a/<label>` / `+++ b/<label>` headers.
    #[rhai_fn(name = "diff")]
    pub fn diff_labelled(a: &str, b: &str, label: &str) -> String {
        if a == b {
            return String::new();
        }
        similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{label}"), &format!("b/{label}"))
            .to_string()
    }

    /// Returns `package.json` text with `section.name` (e.g. `devDependencies`, `vitest`)
    /// set to `version`, changing only that value's characters (indentation, key order and
    /// trailing newline stay the file's). A bare version keeps the range prefix the file
    /// used (`^3.2.4` → `^4.0.17`), as `npm install x@4.0.17` would; a missing entry is
    /// added after the section's last one. Returns `text` unchanged when it already has
    /// that version. Throws on invalid JSON or a missing section.
    #[rhai_fn(return_raw)]
    pub fn package_set(
        ctx: NativeCallContext,
        text: &str,
        section: &str,
        name: &str,
        version: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        super::super::at(
            ctx.call_position(),
            move || match package_json::set_dependency(text, section, name, version) {
                Ok(Some(t)) => Ok(t),
                Ok(None) => Ok(text.to_string()),
                Err(e) => Err(fail(format!("cannot set {section}.{name}: {e}"))),
            },
        )
    }
}

/// Built once per process, shared by every engine.
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(reqs_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_static_module("reqs", MODULE.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_rel_folds_parent_dirs() {
        assert_eq!(
            join_rel(Path::new("services/a"), "../../requirements-base.txt"),
            "requirements-base.txt"
        );
        assert_eq!(join_rel(Path::new(""), "../x"), "../x");
    }

    #[test]
    fn diff_is_unified_and_empty_when_equal() {
        let d = reqs_api::diff_labelled("a\nb\n", "a\nc\n", "r.txt");
        assert!(d.contains("--- a/r.txt") && d.contains("-b\n") && d.contains("+c\n"));
        assert_eq!(reqs_api::diff("x\n", "x\n"), "");
    }
}
