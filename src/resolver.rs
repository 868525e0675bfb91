//! How `import "..."` finds modules.
//!
//! * `import "stdlib/rebuild"` — the standard library that ships *inside* the binary
//!   (`include_str!`), so an installed `dockhand` works from any directory. A directory given
//!   with `--stdlib DIR` (or `DOCKHAND_STDLIB`) overrides it file by file, for developing the
//!   stdlib itself.
//! * `import "lib/checks"` — a file relative to the importing script (`.rhai` is optional),
//!   confined to the workspace root like every other file access.
//!
//! The resolver remembers the text of everything it loaded (for error snippets) and every
//! file path (so watch mode can re-run when an imported module is saved).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rhai::module_resolvers::ModuleResolver;
use rhai::{AST, ASTNode, Engine, EvalAltResult, Module, Position, Scope, Shared, Stmt};

use crate::diagnostic::{Fault, ScriptError, SourceMap};
use crate::util::lock;

/// The embedded standard library: (import name, source).
pub const STDLIB: &[(&str, &str)] = &[
    ("stdlib/fmt", include_str!("../stdlib/fmt.rhai")),
    ("stdlib/rebuild", include_str!("../stdlib/rebuild.rhai")),
    (
        "stdlib/rebuild_swarm",
        include_str!("../stdlib/rebuild_swarm.rhai"),
    ),
];

/// Where a module's text came from.
#[derive(Debug, Clone)]
pub struct Located {
    /// Name used in errors (`stdlib/fmt`, `playbooks/lib/x.rhai`).
    pub name: String,
    pub text: String,
    /// The file on disk, if any.
    pub file: Option<PathBuf>,
}

pub struct Resolver {
    root: PathBuf,
    stdlib_dir: Option<PathBuf>,
    sources: SourceMap,
    /// source name → file on disk, to resolve relative imports from inside modules.
    files: Mutex<HashMap<String, PathBuf>>,
    cache: Mutex<HashMap<String, Shared<Module>>>,
}

impl Resolver {
    pub fn new(root: PathBuf, stdlib_dir: Option<PathBuf>, sources: SourceMap) -> Self {
        Self {
            root,
            stdlib_dir,
            sources,
            files: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Registers the main script so imports relative to it resolve.
    pub fn register_file(&self, name: &str, file: PathBuf) {
        lock(&self.files).insert(name.to_string(), file);
    }

    /// Files loaded so far (main scripts and imported modules).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = lock(&self.files).values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// Forgets compiled modules so the next import reads the files again (watch mode).
    pub fn clear_cache(&self) {
        lock(&self.cache).clear();
    }

    /// Forgets compiled modules *and* the files loaded so far, so the next run reads every
    /// module from disk again and [`files`](Self::files) then lists exactly the files that
    /// run loaded. Watch mode calls it before each run: a module saved since the last run
    /// must be seen, and one no longer imported need not be watched. (The main script is
    /// registered again by `Runtime::compile_file`.)
    pub fn reset_loaded(&self) {
        lock(&self.cache).clear();
        lock(&self.files).clear();
    }

    /// Finds the text of module `path` imported from `importer`.
    pub fn locate(&self, importer: Option<&str>, path: &str) -> Result<Located, String> {
        if let Some(rest) = path.strip_prefix("stdlib/") {
            let rest = rest.strip_suffix(".rhai").unwrap_or(rest);
            check_module_name(rest)
                .map_err(|why| format!("'{path}' is not a standard module name: {why}"))?;
            let name = format!("stdlib/{rest}");
            if let Some(dir) = &self.stdlib_dir {
                let file = dir.join(format!("{rest}.rhai"));
                if file.exists() {
                    // The name is plain words, but a symlink in the directory could still
                    // lead elsewhere: the file must really be under DIR.
                    let real_dir = dir.canonicalize().map_err(|e| {
                        format!("cannot read the --stdlib directory {}: {e}", dir.display())
                    })?;
                    let real = file
                        .canonicalize()
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                    if !real.starts_with(&real_dir) {
                        return Err(format!(
                            "{} leads through a symlink to {}, outside the --stdlib directory",
                            file.display(),
                            real.display()
                        ));
                    }
                    let text =
                        crate::source::read_capped(&real, "module").map_err(|e| e.to_string())?;
                    return Ok(Located {
                        name,
                        text,
                        file: Some(real),
                    });
                }
            }
            return STDLIB
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, t)| Located {
                    name: n.to_string(),
                    text: t.to_string(),
                    file: None,
                })
                .ok_or_else(|| {
                    let known: Vec<&str> = STDLIB.iter().map(|(n, _)| *n).collect();
                    format!(
                        "there is no standard module '{name}' (available: {})",
                        known.join(", ")
                    )
                });
        }
        let base_dir = importer
            .and_then(|s| lock(&self.files).get(s).cloned())
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| self.root.clone());
        let mut rel = PathBuf::from(path);
        if rel.extension().is_none() {
            rel.set_extension("rhai");
        }
        let joined = base_dir.join(&rel);
        let full = crate::host::fs::resolve(&self.root, &joined.to_string_lossy())
            .map_err(|e| crate::diagnostic::message_of(&e))?;
        let text = crate::source::read_capped(&full, "module").map_err(|e| match e {
            crate::error::Error::Io { source, .. } => {
                format!(
                    "cannot read module '{path}' at {}: {source}",
                    full.display()
                )
            }
            other => other.to_string(),
        })?;
        let name = crate::host::fs::display_rel(&self.root, &full);
        Ok(Located {
            name,
            text,
            file: Some(full),
        })
    }

    fn compile(&self, engine: &Engine, loc: &Located) -> Result<AST, Box<EvalAltResult>> {
        self.sources.insert(loc.name.clone(), loc.text.as_str());
        if let Some(f) = &loc.file {
            lock(&self.files).insert(loc.name.clone(), f.clone());
        }
        crate::source::vet(engine, &loc.text).map_err(|p| {
            EvalAltResult::ErrorRuntime(Fault::InvalidArgument.value(&p.message), p.position())
        })?;
        let mut ast = engine.compile(&loc.text).map_err(|e| {
            let (t, p) = (e.err_type().clone(), e.position());
            EvalAltResult::ErrorParsing(t, p)
        })?;
        ast.set_source(loc.name.as_str());
        Ok(ast)
    }

    /// Compiles `ast`'s imports (recursively) without running anything, reporting modules that
    /// cannot be found or do not compile. Used by `dockhand check`.
    pub fn check_imports(&self, engine: &Engine, ast: &AST, source: &str) -> Vec<ScriptError> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        let mut chain = vec![ChainLink {
            id: self.identity_of_source(source),
            name: source.to_string(),
            pos: Position::NONE,
        }];
        self.check_rec(engine, ast, source, &mut seen, &mut chain, &mut errors);
        errors
    }

    /// What identifies a loaded script: its real file, or its name for embedded modules.
    fn identity_of_source(&self, name: &str) -> String {
        match lock(&self.files).get(name) {
            Some(f) => f.to_string_lossy().into_owned(),
            None => name.to_string(),
        }
    }

    fn check_rec(
        &self,
        engine: &Engine,
        ast: &AST,
        source: &str,
        seen: &mut HashSet<String>,
        chain: &mut Vec<ChainLink>,
        errors: &mut Vec<ScriptError>,
    ) {
        let mut imports: Vec<(String, Position)> = Vec::new();
        ast.walk(&mut |nodes: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Import(x, pos))) = nodes.last()
                && let Some(p) = x.0.get_literal_value(None)
                && let Ok(s) = p.into_immutable_string()
            {
                imports.push((s.to_string(), *pos));
            }
            true
        });
        for (path, pos) in imports {
            let loc = match self.locate(Some(source), &path) {
                Ok(l) => l,
                Err(msg) => {
                    let e = not_found(&path, &msg, pos);
                    errors.push(ScriptError::from_eval(&e, source, &self.sources));
                    continue;
                }
            };
            let wrap = |inner: EvalAltResult| {
                ScriptError::from_eval(
                    &EvalAltResult::ErrorInModule(loc.name.clone(), inner.into(), pos),
                    source,
                    &self.sources,
                )
            };
            let link = ChainLink {
                id: loc.identity(),
                name: loc.name.clone(),
                pos,
            };
            if let Some(e) = cycle_error(chain, &link) {
                errors.push(ScriptError::from_eval(&e, source, &self.sources));
                continue;
            }
            if !seen.insert(loc.name.clone()) {
                continue;
            }
            match self.compile(engine, &loc) {
                Ok(module_ast) => {
                    chain.push(link);
                    self.check_rec(engine, &module_ast, &loc.name, seen, chain, errors);
                    chain.pop();
                }
                Err(e) => errors.push(wrap(*e)),
            }
        }
    }
}

impl Located {
    fn identity(&self) -> String {
        match &self.file {
            Some(f) => f.to_string_lossy().into_owned(),
            None => self.name.clone(),
        }
    }
}

/// Most modules one import may nest through (a → b → c ...). A chain this deep is a
/// generated or runaway layout; without a bound it would overflow the stack.
pub const MAX_IMPORT_DEPTH: usize = 32;

/// One script on the current import path: which file, its name, and where its importer
/// imported it (`NONE` for the script being run).
#[derive(Debug, Clone)]
struct ChainLink {
    id: String,
    name: String,
    pos: Position,
}

thread_local! {
    /// The modules being imported on this thread right now, outermost first. Rhai resolves
    /// an import *while* evaluating the importing module, so a cycle would otherwise recurse
    /// until the stack overflows (the process aborts, exit 134). Per thread, because
    /// `parallel` workers import on their own threads.
    static IMPORTING: std::cell::RefCell<Vec<ChainLink>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Module names are names: `stdlib/<words>` where each word is letters, digits, `-`, `_`.
fn check_module_name(rest: &str) -> Result<(), String> {
    if rest.is_empty() {
        return Err("it is empty".into());
    }
    for part in rest.split('/') {
        if part.is_empty()
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "'{part}' is not a plain name (letters, digits, '-', '_'); standard modules \
                 are named, not reached by path"
            ));
        }
    }
    Ok(())
}

/// The error for importing `next` from the end of `chain` when that closes a cycle (or goes
/// too deep): names every module on the cycle with the position of each import.
fn cycle_error(chain: &[ChainLink], next: &ChainLink) -> Option<EvalAltResult> {
    let start = chain.iter().position(|l| l.id == next.id);
    let msg = match start {
        Some(i) => {
            let cycle = &chain[i..];
            let names: Vec<&str> = cycle
                .iter()
                .map(|l| l.name.as_str())
                .chain([next.name.as_str()])
                .collect();
            let mut wheres = Vec::new();
            for (k, l) in cycle.iter().enumerate() {
                let imported = cycle.get(k + 1).unwrap_or(next);
                wheres.push(format!(
                    "{}{} imports {}",
                    l.name,
                    fmt_pos(imported.pos),
                    imported.name
                ));
            }
            format!(
                "{} ({}); a module cannot import itself, directly or \
                 through others: move what both need into a third module",
                names.join(" → "),
                wheres.join("; ")
            )
        }
        None if chain.len() > MAX_IMPORT_DEPTH => format!(
            "imports nest more than {MAX_IMPORT_DEPTH} modules deep ({} → ... → {})",
            chain[0].name, next.name
        ),
        None => return None,
    };
    Some(EvalAltResult::ErrorRuntime(
        Fault::ImportCycle.value(msg),
        next.pos,
    ))
}

fn fmt_pos(p: Position) -> String {
    match (p.line(), p.position()) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// Pops what one `resolve` pushed on the import path when the module finished (or failed)
/// loading.
struct Popper(usize);

impl Drop for Popper {
    fn drop(&mut self) {
        IMPORTING.with(|s| {
            let mut s = s.borrow_mut();
            let keep = s.len().saturating_sub(self.0);
            s.truncate(keep);
        });
    }
}

/// The error for an import that cannot be found. Not `ErrorModuleNotFound`: Rhai replaces
/// that with a bare "module not found: x" and our explanation would be lost.
fn not_found(path: &str, why: &str, pos: Position) -> EvalAltResult {
    EvalAltResult::ErrorRuntime(Fault::ModuleNotFound.value(format!("'{path}': {why}")), pos)
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let loc = self
            .locate(source, path)
            .map_err(|msg| Box::new(not_found(path, &msg, pos)))?;
        if let Some(m) = lock(&self.cache).get(&loc.name) {
            return Ok(m.clone());
        }
        let link = ChainLink {
            id: loc.identity(),
            name: loc.name.clone(),
            pos,
        };
        let importer = source.unwrap_or("<script>");
        let importer_link = ChainLink {
            id: self.identity_of_source(importer),
            name: importer.to_string(),
            pos: Position::NONE,
        };
        let (cycle, pushed) = IMPORTING.with(|s| {
            let mut s = s.borrow_mut();
            let mut pushed = 0;
            if s.is_empty() {
                s.push(importer_link);
                pushed += 1;
            }
            let found = cycle_error(&s, &link);
            if found.is_none() {
                s.push(link);
                pushed += 1;
            }
            (found, pushed)
        });
        let _pop = Popper(pushed);
        if let Some(e) = cycle {
            return Err(e.into());
        }
        let wrap = |e: Box<EvalAltResult>| -> Box<EvalAltResult> {
            EvalAltResult::ErrorInModule(loc.name.clone(), e, pos).into()
        };
        let ast = self.compile(engine, &loc).map_err(wrap)?;
        let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(wrap)?
            .into();
        lock(&self.cache).insert(loc.name.clone(), module.clone());
        Ok(module)
    }
}
