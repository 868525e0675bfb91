//! `fs::glob`'s walk: paths under the workspace root that match a pattern, found without
//! following a symlink loop, leaving the root, or running past its limits.

use std::path::{Path, PathBuf};

use super::resolve;
use crate::host::{HostResult, fail, invalid};

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
    let walk = Walk {
        root,
        pattern,
        matcher: &matcher,
        opts,
        limits,
        max_depth,
    };
    walk.run(start, start_rel, literal)
}

/// One `fs::glob` walk below its literal prefix.
struct Walk<'a> {
    root: &'a Path,
    pattern: &'a str,
    matcher: &'a ::glob::Pattern,
    opts: ::glob::MatchOptions,
    limits: &'a GlobLimits,
    /// `usize::MAX` with `**`; else the pattern's own depth.
    max_depth: usize,
}

impl Walk<'_> {
    /// Visits every directory below `start` once, collecting the matching paths.
    fn run(&self, start: PathBuf, start_rel: String, literal: usize) -> HostResult<Vec<String>> {
        use std::collections::HashSet;
        let (root, pattern, limits, max_depth) =
            (self.root, self.pattern, self.limits, self.max_depth);
        let (matcher, opts) = (self.matcher, self.opts);
        let mut out = Vec::new();
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
                    return Err(crate::host::terminated());
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
}
