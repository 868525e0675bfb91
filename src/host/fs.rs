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

use super::{HostResult, fail, host, invalid, refused};

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

/// Bounds of one `fs::glob` walk.
pub struct GlobLimits {
    /// Most paths returned.
    pub max_results: usize,
    /// Most directory entries looked at.
    pub max_visited: usize,
}

impl Default for GlobLimits {
    fn default() -> Self {
        Self {
            max_results: 100_000,
            max_visited: 2_000_000,
        }
    }
}

/// Finds the paths under `root` matching `pattern` (relative, `/`-separated).
///
/// Our own walk rather than the `glob` crate's: that one follows symlinked directories
/// blindly, so a loop (`a -> .`) makes `**` run until the path is too long — exponentially
/// long with two loops — and it cannot be interrupted. Here the walk starts at the pattern's
/// literal prefix, visits every real directory once (symlinks to directories are followed
/// only when they stay in the workspace and lead somewhere not yet visited), checks the
/// run's cancellation at every entry, and stops with an error past [`GlobLimits`].
pub fn glob_walk(root: &Path, pattern: &str, limits: &GlobLimits) -> HostResult<Vec<String>> {
    use std::collections::HashSet;
    if pattern.trim().is_empty() {
        return Err(invalid(
            "empty glob pattern; write one like \"logs/**/*.log\"",
        ));
    }
    let matcher = ::glob::Pattern::new(pattern)
        .map_err(|e| invalid(format!("bad glob pattern '{pattern}': {e}")))?;
    let opts = ::glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    // The literal directories before the first wildcard: no need to walk anything else.
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let is_wild = |p: &str| p.contains(['*', '?', '[']);
    let literal = parts.iter().take_while(|p| !is_wild(p)).count();
    let recursive = parts.iter().any(|p| p.contains("**"));
    // Without `**`, nothing deeper than the pattern's own depth can match.
    let max_depth = if recursive { usize::MAX } else { parts.len() };
    let start_rel: String = parts[..literal.min(parts.len())].join("/");
    let mut out = Vec::new();
    let start = if start_rel.is_empty() {
        root.to_path_buf()
    } else {
        match resolve(root, &start_rel) {
            Ok(p) => p,
            Err(_) => return Ok(out),
        }
    };
    if literal == parts.len() {
        // No wildcard at all: the path itself, if it exists.
        if start.symlink_metadata().is_ok() && start != root {
            out.push(start_rel);
        }
        return Ok(out);
    }
    let mut visited_dirs: HashSet<PathBuf> = HashSet::new();
    let mut seen = 0usize;
    // (directory on disk, its path relative to the root as the pattern sees it, depth)
    let mut todo: Vec<(PathBuf, String, usize)> = vec![(start, start_rel, literal)];
    while let Some((dir, rel, depth)) = todo.pop() {
        match dir.canonicalize() {
            Ok(real) if real.starts_with(root) => {
                if !visited_dirs.insert(real) {
                    continue; // a symlink loop, or two links to one directory
                }
            }
            _ => continue,
        }
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            if crate::cancel::current_is_cancelled() {
                return Err(super::terminated());
            }
            seen += 1;
            if seen > limits.max_visited {
                return Err(fail(format!(
                    "fs::glob(\"{pattern}\") looked at more than {} entries; narrow the pattern",
                    limits.max_visited
                )));
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let path = entry.path();
            if matcher.matches_with(&child_rel, opts) && resolve(root, &child_rel).is_ok() {
                if out.len() >= limits.max_results {
                    return Err(fail(format!(
                        "fs::glob(\"{pattern}\") matches more than {} paths; narrow the pattern",
                        limits.max_results
                    )));
                }
                out.push(child_rel.clone());
            }
            // Follows symlinks (to directories) too; the canonical check above confines it.
            if depth + 1 < max_depth && path.is_dir() {
                todo.push((path, child_rel, depth + 1));
            }
        }
    }
    Ok(out)
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

/// Deepest `[`/`{` nesting of flow collections accepted in YAML. The YAML parser reads every
/// event of a document before refusing it for depth, in time that grows faster than the
/// input: 20,000 nested `[` took seconds. Counting first bounds that work.
pub const MAX_YAML_FLOW_DEPTH: usize = 128;

/// The line of the first flow collection nested deeper than [`MAX_YAML_FLOW_DEPTH`], if any
/// (quotes and comments are skipped).
pub fn yaml_too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            comment = false;
        }
        if comment {
            prev = c;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' if !prev.is_alphanumeric() => quote = Some(c),
                '#' if prev.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_YAML_FLOW_DEPTH {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            Ok(host(&ctx)?.root.to_string_lossy().into_owned())
        })
    }

    /// Reads a text file (UTF-8), at most 256 MiB. Only regular files: a FIFO or device in the
    /// workspace is refused instead of blocking the run.
    #[rhai_fn(return_raw)]
    pub fn read(ctx: NativeCallContext, path: &str) -> Result<String, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            let full = resolve(&h.root, path)?;
            read_text(&full, path)
        })
    }

    /// Writes a text file atomically, creating parent directories. Recorded, not done, in
    /// `--dry-run`; refused in `--read-only`.
    #[rhai_fn(return_raw)]
    pub fn write(ctx: NativeCallContext, path: &str, text: &str) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
            Ok(resolve(&h.root, path)?.exists())
        })
    }

    /// Creates a directory and its parents.
    #[rhai_fn(return_raw)]
    pub fn mkdir(ctx: NativeCallContext, path: &str) -> Result<(), Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
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
        let call = ctx.call_position();
        super::super::at(call, move || {
            let h = host(&ctx)?;
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
        let call = ctx.call_position();
        super::super::at(call, move || parse_json_str(text, "text"))
    }

    /// Serializes a value as pretty-printed JSON.
    #[rhai_fn(return_raw)]
    pub fn to_json(ctx: NativeCallContext, value: Dynamic) -> Result<String, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || json_text(&value))
    }

    /// Parses YAML text. Errors name the line and column.
    #[rhai_fn(return_raw)]
    pub fn parse_yaml(ctx: NativeCallContext, text: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || parse_yaml_str(text, "text"))
    }

    /// Serializes a value as YAML.
    #[rhai_fn(return_raw)]
    pub fn to_yaml(ctx: NativeCallContext, value: Dynamic) -> Result<String, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || yaml_text(&value))
    }

    /// Reads and parses a JSON file.
    #[rhai_fn(return_raw)]
    pub fn read_json(ctx: NativeCallContext, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
            let text = read(ctx, path)?;
            parse_json_str(&text, path)
        })
    }

    /// Reads and parses a YAML file. Errors name the file, line and column.
    #[rhai_fn(return_raw)]
    pub fn read_yaml(ctx: NativeCallContext, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let call = ctx.call_position();
        super::super::at(call, move || {
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
        let call = ctx.call_position();
        super::super::at(call, move || {
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
        let call = ctx.call_position();
        super::super::at(call, move || {
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
