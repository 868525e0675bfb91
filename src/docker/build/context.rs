//! The build context the classic builder sends: the directory packed as a tar archive,
//! less what its `.dockerignore` excludes (BuildKit reads the context itself, through
//! compose).

use std::path::Path;

/// A context's `.dockerignore`, with Docker's rules (moby's patternmatcher): patterns are
/// anchored at the context root, `*` and `?` stop at `/`, `**` spans directories, a pattern
/// that matches a directory excludes everything under it, later `!` patterns re-include, and
/// the Dockerfile and `.dockerignore` are always sent (as the docker CLI does).
pub struct DockerIgnore {
    rules: Vec<(glob::Pattern, bool)>,
}

impl DockerIgnore {
    /// Reads `<context>/.dockerignore` (none: nothing is ignored).
    pub fn load(context: &Path, dockerfile: &str) -> Self {
        let text = std::fs::read_to_string(context.join(".dockerignore")).unwrap_or_default();
        Self::parse(&text, dockerfile)
    }

    pub fn parse(text: &str, dockerfile: &str) -> Self {
        let mut rules = Vec::new();
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let keep = [format!("!{dockerfile}"), "!.dockerignore".to_string()];
        for line in lines.map(str::to_string).chain(keep) {
            let (negate, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim().to_string()),
                None => (false, line),
            };
            let pat = pat
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            if pat.is_empty() {
                continue;
            }
            if let Ok(p) = glob::Pattern::new(pat) {
                rules.push((p, negate));
            }
        }
        Self { rules }
    }

    /// Whether the context-relative path `rel` (with `/`) is left out of the context.
    pub fn ignored(&self, rel: &str) -> bool {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let mut matched = false;
        for (pat, negate) in &self.rules {
            if *negate != matched {
                continue;
            }
            let hit = pat.matches_with(rel, opts)
                || rel
                    .match_indices('/')
                    .any(|(i, _)| pat.matches_with(&rel[..i], opts));
            if hit {
                matched = !negate;
            }
        }
        matched
    }

    /// Whether any rule re-includes (then an ignored directory must still be walked).
    fn has_exceptions(&self) -> bool {
        self.rules.iter().filter(|(_, n)| *n).count() > 2
    }
}

/// Packs the context directory into a tar archive in memory, leaving out what its
/// `.dockerignore` excludes.
pub fn pack_context(context: &Path) -> Result<Vec<u8>, String> {
    pack_context_for(context, "Dockerfile")
}

/// [`pack_context`] for a build whose Dockerfile is `dockerfile` (always sent).
pub fn pack_context_for(context: &Path, dockerfile: &str) -> Result<Vec<u8>, String> {
    let ignore = DockerIgnore::load(context, dockerfile);
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let mut stack = vec![context.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read build context {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(context).unwrap_or(&path).to_path_buf();
            let rel_s = rel.to_string_lossy().replace('\\', "/");
            let skip = ignore.ignored(&rel_s);
            let ft = entry.file_type().map_err(|e| e.to_string())?;
            if ft.is_dir() {
                if !skip {
                    tar.append_dir(&rel, &path)
                        .map_err(|e| format!("cannot pack {}: {e}", path.display()))?;
                }
                if !skip || ignore.has_exceptions() {
                    stack.push(path);
                }
            } else if !skip {
                tar.append_path_with_name(&path, &rel)
                    .map_err(|e| format!("cannot pack {}: {e}", path.display()))?;
            }
        }
    }
    tar.into_inner()
        .map_err(|e| format!("cannot pack the build context: {e}"))
}

/// The name an inline Dockerfile gets inside the classic builder's context archive.
pub(super) const INLINE_DOCKERFILE: &str = ".dockhand-inline.Dockerfile";

/// Adds the inline Dockerfile to a context archive.
pub(super) fn with_inline_dockerfile(archive: Vec<u8>, text: &str) -> Result<Vec<u8>, String> {
    let mut out = tar::Builder::new(Vec::new());
    let mut input = tar::Archive::new(&archive[..]);
    for entry in input.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let mut header = entry.header().clone();
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        out.append_data(&mut header, path, &mut entry)
            .map_err(|e| e.to_string())?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    out.append_data(&mut header, INLINE_DOCKERFILE, text.as_bytes())
        .map_err(|e| format!("cannot pack the inline Dockerfile: {e}"))?;
    out.into_inner().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_follows_dockers_rules() {
        let ig = DockerIgnore::parse(
            "# comment\n*.tmp\nlogs/\n/build\n**/*.pyc\ndocs\n!docs/keep.md\nDockerfile\n",
            "Dockerfile",
        );
        assert!(ig.ignored("a.tmp"));
        assert!(!ig.ignored("sub/a.tmp"), "* stops at /");
        assert!(
            ig.ignored("logs/x/y.log"),
            "a matched directory excludes its contents"
        );
        assert!(ig.ignored("build"));
        assert!(ig.ignored("src/deep/m.pyc") && ig.ignored("m.pyc"));
        assert!(ig.ignored("docs/other.md"));
        assert!(!ig.ignored("docs/keep.md"), "later ! re-includes");
        assert!(!ig.ignored("Dockerfile"), "the Dockerfile is always sent");
        assert!(!ig.ignored("src/app.py"));
    }

    #[test]
    fn pack_context_honours_dockerignore() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "secret.txt\nlogs\n").unwrap();
        std::fs::write(d.path().join("secret.txt"), "x").unwrap();
        std::fs::create_dir(d.path().join("logs")).unwrap();
        std::fs::write(d.path().join("logs/a.log"), "x").unwrap();
        std::fs::create_dir(d.path().join("src")).unwrap();
        std::fs::write(d.path().join("src/app.sh"), "x").unwrap();
        let bytes = pack_context(d.path()).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "Dockerfile"), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("app.sh")), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.contains("secret") || n.contains("logs")),
            "{names:?}"
        );
    }
}
