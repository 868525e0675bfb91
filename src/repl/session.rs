//! The engine half of the REPL: one scope, the functions and imports of earlier inputs, and
//! what each input produced. No terminal here (see the module docs of [`crate::repl`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{AST, Dynamic, Scope};

use super::render::{short, truncate};
use crate::cancel::RunCancel;
use crate::diagnostic::ScriptError;
use crate::error::{Error, Result};
use crate::runtime::Runtime;

/// The cancellation of the input running now, if any: what Ctrl-C cancels.
pub type RunningSlot = Arc<Mutex<Option<RunCancel>>>;

/// A REPL session without a terminal: a persistent scope, functions and imports.
pub struct Session<'rt> {
    rt: &'rt Runtime,
    scope: Scope<'static>,
    /// Functions defined so far (no statements).
    functions: AST,
    /// `import "path" as alias;` of earlier inputs, by alias, replayed before each input.
    imports: BTreeMap<String, String>,
    loaded: Vec<PathBuf>,
    inputs: usize,
    /// The input running now, for the Ctrl-C listener.
    running: RunningSlot,
    timeout: Option<Duration>,
    checks_seen: usize,
    plan_seen: usize,
}

impl<'rt> Session<'rt> {
    pub fn new(rt: &'rt Runtime) -> Self {
        Self::with_scope(rt, Scope::new())
    }

    /// A session that starts with `scope` (the variables at a failing step, for example).
    pub fn with_scope(rt: &'rt Runtime, scope: Scope<'static>) -> Self {
        Self {
            rt,
            scope,
            functions: AST::empty(),
            imports: BTreeMap::new(),
            loaded: Vec::new(),
            inputs: 0,
            running: Arc::default(),
            timeout: None,
            checks_seen: rt.host().checks().len(),
            plan_seen: rt.host().plan().len(),
        }
    }

    /// Stop each input after this long (the global `--timeout`, applied per input).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Makes the script functions of `ast` (a playbook's, for example) callable.
    pub fn add_functions(&mut self, ast: &AST) {
        let mut f = ast.clone();
        f.clear_statements();
        self.functions += f;
    }

    /// Replays `ast`'s top-level string-path imports before every later input.
    pub fn add_imports(&mut self, ast: &AST) {
        for (path, alias) in imports_of(ast) {
            self.imports.insert(alias, path);
        }
    }

    pub fn scope(&self) -> &Scope<'static> {
        &self.scope
    }

    pub fn into_scope(self) -> Scope<'static> {
        self.scope
    }

    pub fn runtime(&self) -> &Runtime {
        self.rt
    }

    /// The slot the Ctrl-C listener cancels (see [`super::spawn_ctrl_c_listener`]).
    pub fn running_slot(&self) -> RunningSlot {
        self.running.clone()
    }

    /// Compiles and runs one input in the session. Errors are classified as a run's are:
    /// Ctrl-C is [`Error::Interrupted`], `--timeout` [`Error::TimedOut`], a panic
    /// [`Error::Internal`].
    pub fn eval(&mut self, text: &str) -> Result<Dynamic> {
        self.inputs += 1;
        let name = format!("<repl:{}>", self.inputs);
        let prefix: String = self
            .imports
            .iter()
            .map(|(alias, path)| format!("import {path:?} as {alias}; "))
            .collect();
        // The imports go on one line of their own before the input, so the input's own line
        // numbers are off by exactly one; `relocate` puts them back.
        let (full, offset) = if prefix.is_empty() {
            (text.to_string(), 0)
        } else {
            (format!("{prefix}\n{text}"), 1)
        };
        let sources = self.rt.sources();
        sources.insert(name.clone(), full.clone());
        let ast = self
            .rt
            .engine()
            .compile_with_scope(&self.scope, &full)
            .map_err(|e| {
                let se = ScriptError::from_parse(&e, &name, sources);
                Error::Script(Box::new(relocate(se, &name, offset)))
            })?;
        self.run_keeping_functions(&ast, &name)
            .map_err(|e| match e {
                Error::Script(se) => Error::Script(Box::new(relocate(*se, &name, offset))),
                other => other,
            })
    }

    /// Runs `ast` (its statements, with the session's functions) and keeps its definitions
    /// even if it failed later on (they compiled); its imports only if it succeeded.
    fn run_keeping_functions(&mut self, ast: &AST, name: &str) -> Result<Dynamic> {
        let mut exec = self.functions.merge(ast);
        exec.set_source(name.to_string());
        let result = self.run_ast(&exec, name);
        exec.clear_statements();
        self.functions = exec;
        if result.is_ok() {
            self.add_imports(ast);
        }
        result
    }

    /// Runs `ast` in the session scope under a cancellation of its own (cancelled with the
    /// runtime's current run, so a run-wide stop still reaches it). Its functions are not
    /// kept.
    pub fn run_ast(&mut self, ast: &AST, name: &str) -> Result<Dynamic> {
        let (cancel, _watchdog) = self.rt.sub_cancel(self.timeout);
        *crate::util::lock(&self.running) = Some(cancel.clone());
        let result = self.rt.eval_ast(&mut self.scope, ast, name, &cancel);
        *crate::util::lock(&self.running) = None;
        result
    }

    /// Runs a file into the session: its variables, functions and imports stay.
    pub fn load(&mut self, path: &Path) -> Result<Dynamic> {
        let script = self.rt.compile_file(path)?;
        if !self.loaded.iter().any(|p| p == path) {
            self.loaded.push(path.to_path_buf());
        }
        self.run_keeping_functions(&script.ast, &script.name)
    }

    /// The files `:load` ran, in order.
    pub fn loaded(&self) -> &[PathBuf] {
        &self.loaded
    }

    /// Checks and dry-run plan entries recorded since the last call, as text.
    pub fn take_news(&mut self) -> String {
        let mut out = String::new();
        let checks = self.rt.host().checks();
        for c in checks.iter().skip(self.checks_seen) {
            let _ = write!(
                out,
                "check {}: {}",
                c.name,
                if c.ok { "pass" } else { "FAIL" }
            );
            if !c.reason.is_empty() {
                let _ = write!(out, " ({})", c.reason);
            }
            out.push('\n');
        }
        self.checks_seen = checks.len();
        let plan = self.rt.host().plan();
        for a in plan.iter().skip(self.plan_seen) {
            let _ = writeln!(out, "dry run: would {} {} {}", a.action, a.target, a.detail);
        }
        self.plan_seen = plan.len();
        out
    }

    /// `:vars`: name, type and a short value per variable, aligned.
    pub fn vars(&self) -> String {
        // Rhai lists the newest first. Show declaration order, and a name declared again
        // (shadowed) once, as it is now.
        let mut seen = BTreeSet::new();
        let mut vars: Vec<_> = self
            .scope
            .iter_raw()
            .filter(|(name, ..)| seen.insert(name.to_string()))
            .collect();
        vars.reverse();
        let rows: Vec<[String; 3]> = vars
            .into_iter()
            .map(|(name, constant, v)| {
                let mut typ = self.rt.engine().map_type_name(v.type_name()).to_string();
                if constant {
                    typ = format!("const {typ}");
                }
                [name.to_string(), typ, truncate(&short(v, false), 60)]
            })
            .collect();
        if rows.is_empty() {
            return "(no variables)\n".into();
        }
        crate::util::table::render(&["NAME", "TYPE", "VALUE"], &rows, "")
    }

    /// The names of the session's variables, for completion.
    pub fn var_names(&self) -> BTreeSet<String> {
        self.scope.iter_raw().map(|(n, ..)| n.to_string()).collect()
    }

    /// Names of the script functions defined in the session.
    pub fn script_functions(&self) -> Vec<String> {
        self.functions
            .iter_functions()
            .map(|f| format!("fn {}({})", f.name, f.params.join(", ")))
            .collect()
    }
}

/// Undoes the one-line shift the replayed imports put in front of an input.
fn relocate(mut se: ScriptError, name: &str, offset: usize) -> ScriptError {
    if offset == 0 {
        return se;
    }
    let fix = |loc: &mut crate::diagnostic::Location| {
        if loc.source == name && loc.line > offset {
            loc.line -= offset;
        }
    };
    if let Some(l) = se.location.as_mut() {
        fix(l);
    }
    for f in &mut se.chain {
        if let Some(l) = f.at.as_mut() {
            fix(l);
        }
    }
    se
}

/// Top-level `import "literal" as alias;` statements of `ast`, as (path, alias).
pub fn imports_of(ast: &AST) -> Vec<(String, String)> {
    use rhai::{Expr, Stmt};
    ast.statements()
        .iter()
        .filter_map(|s| match s {
            Stmt::Import(x, _) => match (&x.0, x.1.name.as_str()) {
                (Expr::StringConstant(path, _), alias) if !alias.is_empty() => {
                    Some((path.to_string(), alias.to_string()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}
