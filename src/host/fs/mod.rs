//! `fs::` — files in the workspace, and JSON/YAML.
//!
//! Playbooks edit real files (requirements, package.json, reports), so the module is confined
//! to the *workspace root* (`--root`, default: the current directory): a relative path is
//! taken from the root, and any path that leaves it — through `..`, an absolute path, or a
//! symlink that points outside — is refused. Scripts from a team's `validations/` folder can
//! therefore not read `~/.ssh` or write `/etc`.
//!
//! Writes are atomic (temporary file, fsync, rename): a crash or Ctrl-C mid-write leaves the
//! old file or the new one, never half of each. In `--dry-run` writes are recorded in the
//! plan instead of done; in `--read-only` they are refused.
//!
//! ```rhai
//! let cfg = fs::read_yaml("examples/homeiq/services.yaml");
//! for f in fs::glob("services/*/requirements.txt") { print(f); }
//! fs::write("docs/planning/report.md", text);
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult};

use super::{HostResult, at, fail, invalid, refused, with_host};
use crate::util::yaml::{MAX_YAML_FLOW_DEPTH, yaml_too_deep};

mod glob;

pub use glob::{GlobLimits, glob_walk};

/// Resolves `p` against the workspace `root`, refusing anything that leaves it.
///
/// `root` must be canonical. The check is lexical first (`..` may not climb above the root),
/// then physical: the deepest part of the path that exists is canonicalized, so a symlink
/// inside the workspace that points outside is caught too.
pub fn resolve(root: &Path, p: &str) -> HostResult<PathBuf> {
    if p.is_empty() {
        return Err(invalid("empty path"));
    }
    let given = Path::new(p);
    let mut out = root.to_path_buf();
    let rel = if given.is_absolute() {
        let normal = normalize(given);
        match normal.strip_prefix(root) {
            Ok(r) => r.to_path_buf(),
            Err(_) => return Err(outside(p, root)),
        }
    } else {
        given.to_path_buf()
    };
    let mut depth = 0usize;
    for c in rel.components() {
        match c {
            Component::Normal(s) => {
                out.push(s);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return Err(outside(p, root));
                }
                out.pop();
                depth -= 1;
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside(p, root)),
        }
    }
    // Physical check: canonicalize the deepest existing ancestor.
    let mut probe = out.as_path();
    loop {
        if probe.symlink_metadata().is_ok() {
            let real = probe
                .canonicalize()
                .map_err(|e| fail(format!("cannot resolve '{p}': {e}")))?;
            if !real.starts_with(root) {
                return Err(refused(format!(
                    "'{p}' leads through a symlink to {}, outside the workspace root {}",
                    real.display(),
                    root.display()
                )));
            }
            break;
        }
        match probe.parent() {
            Some(parent) => probe = parent,
            None => break,
        }
    }
    Ok(out)
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn outside(p: &str, root: &Path) -> Box<EvalAltResult> {
    refused(format!(
        "'{p}' is outside the workspace root {}; scripts may only touch files under it \
         (start dockhand with --root DIR to choose another root)",
        root.display()
    ))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// then fsync of the directory so the rename itself survives a power cut.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // Unique per process *and* per call: `parallel` workers may write the same file at once.
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let result = write_then_rename(&tmp, path, dir, bytes);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // `create_new` (O_EXCL): never write through a link planted at the temporary name.
    let mut f = File::options().write(true).create_new(true).open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(tmp, path)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Path relative to the root, with `/` separators, for messages and `glob` results.
pub fn display_rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn io_err(action: &str, p: &str, e: std::io::Error) -> Box<EvalAltResult> {
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => {
            " (no such file; check the path, relative to the workspace root)"
        }
        std::io::ErrorKind::PermissionDenied => " (permission denied)",
        _ => "",
    };
    fail(format!("cannot {action} '{p}': {e}{hint}"))
}

pub fn json_to_dynamic(v: serde_json::Value) -> HostResult<Dynamic> {
    rhai::serde::to_dynamic(v)
}

pub fn dynamic_to_json(v: &Dynamic) -> HostResult<serde_json::Value> {
    rhai::serde::from_dynamic(v)
}

pub fn parse_yaml_str(text: &str, what: &str) -> HostResult<Dynamic> {
    if let Some(line) = yaml_too_deep(text) {
        return Err(fail(format!(
            "invalid YAML in {what} at line {line}: collections nest more than \
             {MAX_YAML_FLOW_DEPTH} deep"
        )));
    }
    let v: serde_json::Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        fail(format!("invalid YAML in {what}{at}: {e}"))
    })?;
    json_to_dynamic(v)
}

pub fn parse_json_str(text: &str, what: &str) -> HostResult<Dynamic> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        fail(format!(
            "invalid JSON in {what} at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    json_to_dynamic(v)
}

fn json_text(value: &Dynamic) -> HostResult<String> {
    let v = dynamic_to_json(value)?;
    serde_json::to_string_pretty(&v).map_err(|e| fail(format!("cannot serialize to JSON: {e}")))
}

fn yaml_text(value: &Dynamic) -> HostResult<String> {
    let v = dynamic_to_json(value)?;
    serde_yaml::to_string(&v).map_err(|e| fail(format!("cannot serialize to YAML: {e}")))
}

/// Most bytes `fs::read` (and `read_json` / `read_yaml`) takes from one file.
pub const MAX_READ_BYTES: u64 = 256 * 1024 * 1024;

/// A workspace file's text: a regular file only, size-capped, UTF-8.
fn read_text(full: &Path, path: &str) -> HostResult<String> {
    use std::io::Read;
    let f = crate::source::open_regular(full).map_err(|e| io_err("read", path, e))?;
    let mut buf = Vec::new();
    f.take(MAX_READ_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err("read", path, e))?;
    if buf.len() as u64 > MAX_READ_BYTES {
        return Err(invalid(format!(
            "cannot read {path}: it is larger than {} MiB",
            MAX_READ_BYTES >> 20
        )));
    }
    String::from_utf8(buf).map_err(|e| {
        invalid(format!(
            "cannot read {path}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

#[export_module]
pub mod fs_api {
    use super::*;

    /// The workspace root every path is relative to.
    #[rhai_fn(return_raw)]
    pub fn root(ctx: NativeCallContext) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| Ok(h.root.to_string_lossy().into_owned()))
    }

    /// Reads a text file (UTF-8), at most 256 MiB. Only regular files: a FIFO or device in the
    /// workspace is refused instead of blocking the run.
    #[rhai_fn(return_raw)]
    pub fn read(ctx: NativeCallContext, path: &str) -> Result<String, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let full = resolve(&h.root, path)?;
            read_text(&full, path)
        })
    }

    /// Writes a text file atomically, creating parent directories. Recorded, not done, in
    /// `--dry-run`; refused in `--read-only`.
    #[rhai_fn(return_raw)]
    pub fn write(ctx: NativeCallContext, path: &str, text: &str) -> Result<(), Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let full = resolve(&h.root, path)?;
            if h.mutation("fs::write", path, &format!("{} bytes", text.len()))? {
                atomic_write(&full, text.as_bytes()).map_err(|e| io_err("write", path, e))?;
            }
            Ok(())
        })
    }

    /// Appends text to a file, creating it (and its directories) if needed. Use it for logs;
    /// it is not atomic.
    #[rhai_fn(return_raw)]
    pub fn append(
        ctx: NativeCallContext,
        path: &str,
        text: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let full = resolve(&h.root, path)?;
            if h.mutation("fs::append", path, &format!("{} bytes", text.len()))? {
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| io_err("create the directory of", path, e))?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&full)
                    .map_err(|e| io_err("open", path, e))?;
                f.write_all(text.as_bytes())
                    .map_err(|e| io_err("append to", path, e))?;
            }
            Ok(())
        })
    }

    /// True if the path exists (file or directory).
    #[rhai_fn(return_raw)]
    pub fn exists(ctx: NativeCallContext, path: &str) -> Result<bool, Box<EvalAltResult>> {
        with_host(&ctx, |h| Ok(resolve(&h.root, path)?.exists()))
    }

    /// Creates a directory and its parents.
    #[rhai_fn(return_raw)]
    pub fn mkdir(ctx: NativeCallContext, path: &str) -> Result<(), Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let full = resolve(&h.root, path)?;
            if h.mutation("fs::mkdir", path, "")? {
                std::fs::create_dir_all(&full).map_err(|e| io_err("create directory", path, e))?;
            }
            Ok(())
        })
    }

    /// Removes a file, or a directory with everything in it. Removing what is not there is
    /// not an error.
    #[rhai_fn(return_raw)]
    pub fn remove(ctx: NativeCallContext, path: &str) -> Result<(), Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let full = resolve(&h.root, path)?;
            if full == h.root {
                return Err(refused(
                    "fs::remove will not remove the workspace root itself",
                ));
            }
            if h.mutation("fs::remove", path, "")? {
                let r = match full.symlink_metadata() {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&full),
                    Ok(_) => std::fs::remove_file(&full),
                    Err(_) => Ok(()),
                };
                r.map_err(|e| io_err("remove", path, e))?;
            }
            Ok(())
        })
    }

    /// Entries of a directory (names only), sorted.
    #[rhai_fn(return_raw)]
    pub fn list(ctx: NativeCallContext, path: &str) -> Result<Array, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let full = resolve(&h.root, path)?;
            let mut names: Vec<String> = std::fs::read_dir(&full)
                .map_err(|e| io_err("list", path, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(names.into_iter().map(Dynamic::from).collect())
        })
    }

    /// Paths matching a glob pattern (`services/*/requirements.txt`, `logs/**/*.log`),
    /// relative to the workspace root, sorted. Matches outside the root are never returned.
    #[rhai_fn(return_raw)]
    pub fn glob(ctx: NativeCallContext, pattern: &str) -> Result<Array, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            if Path::new(pattern)
                .components()
                .any(|c| matches!(c, Component::ParentDir))
            {
                return Err(refused(format!(
                    "glob pattern '{pattern}' climbs out of the workspace with '..'"
                )));
            }
            let rel_pattern = if Path::new(pattern).is_absolute() {
                let full = resolve(&h.root, pattern)?;
                display_rel(&h.root, &full)
            } else {
                pattern.trim_start_matches("./").to_string()
            };
            let mut out = glob_walk(&h.root, &rel_pattern, &GlobLimits::default())?;
            out.sort();
            Ok(out.into_iter().map(Dynamic::from).collect())
        })
    }

    /// Parses JSON text into maps, arrays, numbers, strings, booleans and `()`.
    #[rhai_fn(return_raw)]
    pub fn parse_json(ctx: NativeCallContext, text: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        at(ctx.call_position(), || parse_json_str(text, "text"))
    }

    /// Serializes a value as pretty-printed JSON.
    #[rhai_fn(return_raw)]
    pub fn to_json(ctx: NativeCallContext, value: Dynamic) -> Result<String, Box<EvalAltResult>> {
        at(ctx.call_position(), || json_text(&value))
    }

    /// Parses YAML text. Errors name the line and column.
    #[rhai_fn(return_raw)]
    pub fn parse_yaml(ctx: NativeCallContext, text: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        at(ctx.call_position(), || parse_yaml_str(text, "text"))
    }

    /// Serializes a value as YAML.
    #[rhai_fn(return_raw)]
    pub fn to_yaml(ctx: NativeCallContext, value: Dynamic) -> Result<String, Box<EvalAltResult>> {
        at(ctx.call_position(), || yaml_text(&value))
    }

    /// Reads and parses a JSON file.
    #[rhai_fn(return_raw)]
    pub fn read_json(ctx: NativeCallContext, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        at(ctx.call_position(), || {
            let text = read(ctx, path)?;
            parse_json_str(&text, path)
        })
    }

    /// Reads and parses a YAML file. Errors name the file, line and column.
    #[rhai_fn(return_raw)]
    pub fn read_yaml(ctx: NativeCallContext, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        at(ctx.call_position(), || {
            let text = read(ctx, path)?;
            parse_yaml_str(&text, path)
        })
    }

    /// Writes a value as pretty JSON, atomically.
    #[rhai_fn(return_raw)]
    pub fn write_json(
        ctx: NativeCallContext,
        path: &str,
        value: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        at(ctx.call_position(), || {
            let text = json_text(&value)? + "\n";
            write(ctx, path, &text)
        })
    }

    /// Writes a value as YAML, atomically.
    #[rhai_fn(return_raw)]
    pub fn write_yaml(
        ctx: NativeCallContext,
        path: &str,
        value: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        at(ctx.call_position(), || {
            let text = yaml_text(&value)?;
            write(ctx, path, &text)
        })
    }
}

/// Built once per process: every engine shares it (building a plugin module costs more
/// than running a small script).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(fs_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_static_module("fs", MODULE.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_confines_to_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&root, "a/b.txt").unwrap(), root.join("a/b.txt"));
        assert_eq!(resolve(&root, "a/../b.txt").unwrap(), root.join("b.txt"));
        assert_eq!(resolve(&root, "./x").unwrap(), root.join("x"));
        assert!(resolve(&root, "../x").is_err());
        assert!(resolve(&root, "a/../../x").is_err());
        assert!(resolve(&root, "/etc/passwd").is_err());
        assert!(resolve(&root, "").is_err());
        let inside = root.join("in.txt");
        assert_eq!(resolve(&root, inside.to_str().unwrap()).unwrap(), inside);
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deep/f.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }
}
