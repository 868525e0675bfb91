//! The interactive REPL: `dockhand repl`, and the prompt `run --repl-on-failure` opens.
//!
//! [`Session`] is the engine-facing half and has no terminal in it, so an embedder (or a
//! test) can feed it lines: it keeps one Rhai [`Scope`] across inputs, accumulates the
//! functions each input defines (so `fn f() {..}` on one line is callable on the next) and
//! replays the input's top-level `import "x" as m;` statements before every later input —
//! Rhai forgets imports at the end of each evaluation, and strict-variables mode would
//! refuse `m::f()` at compile time if the import were not in the compiled text.
//!
//! [`interactive`] wraps a session in rustyline: history in the user's data dir, completion
//! of host modules, functions and scope variables from the engine's own metadata, multi-line
//! input detected by compiling (an input that ends too early continues at a `...` prompt;
//! see [`is_incomplete`]), and the
//! `:` commands. Errors are rendered with the project's diagnostic renderer and never end the
//! session. Ctrl-C while an input runs cancels *that input* (its own cancellation token,
//! installed as the thread's current token, so blocked host calls such as `time::sleep`
//! return at once); at the prompt it clears the line; Ctrl-D leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{AST, Dynamic, Engine, Map, Scope};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, Helper};
use tokio_util::sync::CancellationToken;

use crate::diagnostic::{ErrorKind, ScriptError};
use crate::docs::{self, FnMeta};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

/// What one input produced.
#[derive(Debug)]
pub enum Eval {
    /// The input's value (unit for statements).
    Value(Dynamic),
    /// A syntax or runtime error, ready to print.
    Error(Box<ScriptError>),
    /// Ctrl-C (or `--timeout`) stopped the input.
    Interrupted,
}

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
    /// The token of the input running now, for the Ctrl-C listener.
    running: Arc<Mutex<Option<CancellationToken>>>,
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

    /// The slot the Ctrl-C listener cancels (see [`spawn_ctrl_c_listener`]).
    pub fn running_slot(&self) -> Arc<Mutex<Option<CancellationToken>>> {
        self.running.clone()
    }

    /// Compiles and runs one input in the session.
    pub fn eval(&mut self, text: &str) -> Eval {
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
        let engine = self.rt.engine();
        let ast = match engine.compile_with_scope(&self.scope, &full) {
            Ok(a) => a,
            Err(e) => {
                let se = ScriptError::from_parse(&e, &name, sources);
                return Eval::Error(Box::new(relocate(se, &name, offset)));
            }
        };
        let mut exec = self.functions.merge(&ast);
        exec.set_source(name.clone());
        let result = self.run_ast(&exec);
        // Definitions stay even if the input failed later on: they compiled.
        exec.clear_statements();
        self.functions = exec;
        match result {
            Ok(v) => {
                self.add_imports(&ast);
                Eval::Value(v)
            }
            Err(e) => self.eval_error(&e, &name, offset),
        }
    }

    fn eval_error(&self, e: &rhai::EvalAltResult, name: &str, offset: usize) -> Eval {
        let se = ScriptError::from_eval(e, name, self.rt.sources());
        if se.kind == ErrorKind::Terminated {
            Eval::Interrupted
        } else {
            Eval::Error(Box::new(relocate(se, name, offset)))
        }
    }

    /// Runs `ast` in the session scope under a fresh cancellation token (a child of the
    /// runtime's, so a runtime-wide cancel still reaches it). Its functions are not kept.
    pub fn run_ast(&mut self, ast: &AST) -> std::result::Result<Dynamic, Box<rhai::EvalAltResult>> {
        let token = self.rt.cancel_handle().token().child_token();
        *crate::host::lock(&self.running) = Some(token.clone());
        let _current = crate::cancel::enter(token.clone());
        let timer = self.timeout.map(|t| {
            let token = token.clone();
            self.rt.host().handle.spawn(async move {
                tokio::time::sleep(t).await;
                token.cancel();
            })
        });
        let engine = self.rt.engine();
        let scope = &mut self.scope;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.eval_ast_with_scope::<Dynamic>(scope, ast)
        }))
        .unwrap_or_else(|_| Err("dockhand crashed evaluating this input (a bug)".into()));
        if let Some(t) = timer {
            t.abort();
        }
        *crate::host::lock(&self.running) = None;
        result
    }

    /// Runs a file into the session: its variables, functions and imports stay.
    pub fn load(&mut self, path: &Path) -> Eval {
        let script = match self.rt.compile_file(path) {
            Ok(s) => s,
            Err(Error::Script(se)) => return Eval::Error(se),
            Err(other) => return Eval::Error(Box::new(plain_error(other.to_string()))),
        };
        if !self.loaded.iter().any(|p| p == path) {
            self.loaded.push(path.to_path_buf());
        }
        let mut exec = self.functions.merge(&script.ast);
        exec.set_source(script.name.clone());
        let result = self.run_ast(&exec);
        exec.clear_statements();
        self.functions = exec;
        match result {
            Ok(v) => {
                self.add_imports(&script.ast);
                Eval::Value(v)
            }
            Err(e) => self.eval_error(&e, &script.name, 0),
        }
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
        let header = ["NAME".to_string(), "TYPE".into(), "VALUE".into()];
        table_text(&header, &rows)
    }

    /// Names of the script functions defined in the session.
    pub fn script_functions(&self) -> Vec<String> {
        self.functions
            .iter_functions()
            .map(|f| format!("fn {}({})", f.name, f.params.join(", ")))
            .collect()
    }
}

fn plain_error(message: String) -> ScriptError {
    ScriptError {
        kind: ErrorKind::Script,
        message,
        location: None,
        snippet: None,
        chain: Vec::new(),
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

// ---------------------------------------------------------------------------------------
// `run --repl-on-failure`
// ---------------------------------------------------------------------------------------

/// Runs `script` one top-level statement (one *step*) at a time in a session scope. When a
/// step fails, the error is shown and the REPL opens on that scope: the operator inspects
/// (and may change) the variables, then `:retry` runs the step again, `:continue` skips it,
/// `:abort` (or Ctrl-D, or no terminal) ends the run with the step's error.
///
/// The step is the top-level statement: a failure deep inside a loop or a function opens
/// the REPL with the playbook's top-level variables, and `:retry` re-runs that whole
/// statement. Imports made by earlier steps are replayed before each step (the resolver
/// caches modules, so a module's own code runs once).
pub fn run_with_repl_on_failure(
    rt: &Runtime,
    script: &crate::runtime::Script,
    values: Map,
    timeout: Option<Duration>,
    history: Option<PathBuf>,
) -> Result<crate::runtime::RunOutcome> {
    use crate::cancel::CancelReason;
    use rhai::Stmt;
    crate::host::params::resolve(&script.params, &values).map_err(Error::Usage)?;
    let started = std::time::Instant::now();
    let run = rt.host().reset_run();
    rt.host().set_params(values);
    let _current = crate::cancel::enter(run.token().clone());
    let timer = timeout.map(|t| {
        let run = run.clone();
        rt.host().handle.spawn(async move {
            tokio::time::sleep(t).await;
            run.cancel(CancelReason::TimedOut(t));
        })
    });
    let mut session = Session::new(rt);
    let listener = spawn_ctrl_c_listener(rt, session.running_slot())?;
    let mut functions = script.ast.clone();
    functions.clear_statements();
    let steps: Vec<Stmt> = script.ast.statements().to_vec();
    let mut imports: Vec<Stmt> = Vec::new();
    let mut value = Dynamic::UNIT;
    let mut i = 0;
    let outcome = loop {
        let Some(step) = steps.get(i) else {
            break Ok(());
        };
        let body = imports.iter().cloned().chain([step.clone()]);
        let mut exec = functions.merge(&AST::new(body, rhai::Module::new()));
        exec.set_source(script.name.clone());
        match session.run_ast(&exec) {
            Ok(v) => {
                if matches!(step, Stmt::Import(..)) {
                    imports.push(step.clone());
                }
                value = v;
                i += 1;
            }
            Err(e) => {
                if let Some(reason) = run.reason() {
                    break Err(match reason {
                        CancelReason::Interrupted => Error::Interrupted,
                        CancelReason::TimedOut(d) => Error::TimedOut(d),
                    });
                }
                let se = ScriptError::from_eval(&e, &script.name, rt.sources());
                if se.kind == ErrorKind::Terminated {
                    break Err(Error::Interrupted);
                }
                eprint!("{se}");
                eprintln!(
                    "step {} of {} failed (the statement at {}:{})",
                    i + 1,
                    steps.len(),
                    script.name,
                    step.position().line().unwrap_or(0)
                );
                let opts = Options {
                    history: history.clone(),
                    failure_mode: true,
                };
                match interactive(&mut session, &opts) {
                    Ok(End::Retry) => eprintln!("retrying step {}", i + 1),
                    Ok(End::Continue) => {
                        eprintln!("skipping step {}", i + 1);
                        i += 1;
                    }
                    Ok(End::Abort | End::Quit) => break Err(Error::Script(Box::new(se))),
                    Err(other) => break Err(other),
                }
            }
        }
    };
    listener.abort();
    if let Some(t) = timer {
        t.abort();
    }
    outcome?;
    Ok(crate::runtime::RunOutcome {
        value,
        checks: rt.host().checks(),
        plan: rt.host().plan(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

// ---------------------------------------------------------------------------------------
// Incomplete input
// ---------------------------------------------------------------------------------------

/// True when `text` fails to compile only because it ends too early (an open brace, a
/// dangling operator, an unterminated backtick string): the prompt should continue.
/// `engine` should not use strict variables (session variables are unknown to it).
pub fn is_incomplete(engine: &Engine, text: &str) -> bool {
    use rhai::{LexError, ParseErrorType as P};
    if text.trim().is_empty() || text.trim_start().starts_with(':') {
        return false;
    }
    let Err(e) = engine.compile(text) else {
        return false;
    };
    let at_end = {
        let pos = e.position();
        let lines: Vec<&str> = text.split('\n').collect();
        match pos.line() {
            None => true,
            Some(l) if l > lines.len() => true,
            Some(l) if l < lines.len() => lines[l..].iter().all(|r| r.trim().is_empty()),
            Some(l) => pos
                .position()
                .is_none_or(|c| c > lines[l - 1].trim_end().chars().count()),
        }
    };
    match e.err_type() {
        P::UnexpectedEOF => true,
        P::BadInput(LexError::UnterminatedString) => {
            // A backtick string may span lines; an ordinary "..." cannot.
            text.matches('`').count() % 2 == 1
        }
        P::MissingToken(..) | P::MissingSymbol(..) | P::ExprExpected(..) => at_end,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Completion
// ---------------------------------------------------------------------------------------

/// What can be completed: host modules and their functions, global functions, variables.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub modules: BTreeMap<String, BTreeSet<String>>,
    pub globals: BTreeSet<String>,
    pub vars: BTreeSet<String>,
}

impl Names {
    /// Host functions from the engine's metadata (the same source as `dockhand docs`).
    pub fn from_engine(engine: &Engine) -> Self {
        let mut names = Names::default();
        if let Ok(all) = docs::host_functions(engine) {
            for (module, fns) in all {
                let set: BTreeSet<String> = fns
                    .iter()
                    .filter(|f| f.property().is_none() && !f.name.contains('$'))
                    .map(|f| f.name.clone())
                    .collect();
                if module.is_empty() {
                    names.globals.extend(set);
                } else {
                    names.modules.insert(module, set);
                }
            }
        }
        names
    }
}

const COMMANDS: &[&str] = &[
    ":help",
    ":load",
    ":reload",
    ":docs",
    ":vars",
    ":quit",
    ":continue",
    ":retry",
    ":abort",
];

/// Completion of the word ending at `pos`: the start of that word and its candidates.
pub fn complete(line: &str, pos: usize, names: &Names) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let word = &before[start..];
    if start == 0 && word.starts_with(':') {
        let v = COMMANDS
            .iter()
            .filter(|c| c.starts_with(word))
            .map(|c| c.to_string())
            .collect();
        return (0, v);
    }
    let mut out: Vec<String> = Vec::new();
    if let Some((module, rest)) = word.split_once("::") {
        if let Some(fns) = names.modules.get(module) {
            out.extend(
                fns.iter()
                    .filter(|f| f.starts_with(rest))
                    .map(|f| format!("{module}::{f}")),
            );
        }
    } else {
        if word.is_empty() {
            return (start, out);
        }
        out.extend(
            names
                .modules
                .keys()
                .filter(|m| m.starts_with(word))
                .map(|m| format!("{m}::")),
        );
        let is_help = before.trim_start().starts_with(":help");
        out.extend(
            names
                .globals
                .iter()
                .filter(|f| f.starts_with(word))
                .cloned(),
        );
        if !is_help {
            out.extend(names.vars.iter().filter(|v| v.starts_with(word)).cloned());
        }
    }
    out.sort();
    out.dedup();
    (start, out)
}

// ---------------------------------------------------------------------------------------
// Pretty printing
// ---------------------------------------------------------------------------------------

/// Columns shown first when present, so `docker::ps()` reads like `docker ps`.
const FIRST_COLUMNS: &[&str] = &[
    "name", "service", "id", "image", "state", "health", "status", "ports",
];

/// A value as the REPL shows it: maps as aligned `key  value` lines, arrays of maps as a
/// table, strings as their text, the rest on one line.
pub fn render(v: &Dynamic) -> String {
    if v.is_unit() {
        return String::new();
    }
    if let Some(m) = v.read_lock::<Map>() {
        if m.is_empty() {
            return "#{}\n".into();
        }
        let width = m.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, val) in m.iter() {
            let _ = writeln!(out, "{:<width$}  {}", k.as_str(), short(val, false));
        }
        return out;
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        if !a.is_empty() && a.iter().all(|x| x.is_map()) {
            return table_of_maps(&a);
        }
        return format!("{}\n", short(v, true));
    }
    if v.is_string() {
        let s = v.to_string();
        return if s.ends_with('\n') { s } else { s + "\n" };
    }
    format!("{}\n", short(v, true))
}

/// One-line form. Strings are quoted only inside containers (`quote`), where an unquoted
/// `a, b` would be ambiguous.
pub fn short(v: &Dynamic, quote: bool) -> String {
    if v.is_unit() {
        return if quote { "()".into() } else { String::new() };
    }
    if v.is_string() {
        let s = v.to_string();
        return if quote { format!("{s:?}") } else { s };
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        let items: Vec<String> = a.iter().map(|x| short(x, true)).collect();
        return format!("[{}]", items.join(", "));
    }
    if let Some(m) = v.read_lock::<Map>() {
        let items: Vec<String> = m
            .iter()
            .map(|(k, x)| format!("{}: {}", k.as_str(), short(x, true)))
            .collect();
        return format!("#{{{}}}", items.join(", "));
    }
    v.to_string()
}

fn truncate(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn table_of_maps(rows: &[Dynamic]) -> String {
    let maps: Vec<Map> = rows
        .iter()
        .filter_map(|r| r.read_lock::<Map>().map(|m| m.clone()))
        .collect();
    let mut keys: Vec<String> = maps
        .iter()
        .flat_map(|m| m.keys().map(|k| k.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by_key(|k| {
        FIRST_COLUMNS
            .iter()
            .position(|f| f == k)
            .unwrap_or(FIRST_COLUMNS.len())
    });
    let header: Vec<String> = keys.iter().map(|k| k.to_uppercase()).collect();
    let cells: Vec<Vec<String>> = maps
        .iter()
        .map(|m| {
            keys.iter()
                .map(|k| {
                    m.get(k.as_str())
                        .map(|v| truncate(&short(v, false), 40))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    table_text(&header, &cells)
}

/// Left-aligned columns two spaces apart, no trailing spaces.
fn table_text<R: AsRef<[String]>>(header: &[String], rows: &[R]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.as_ref().iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(s, "{:<w$}  ", c, w = widths[i]);
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line(r.as_ref()));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------------------

/// `:help FN`: every overload's signature and doc comment, from the engine's metadata.
pub fn help_for(engine: &Engine, name: &str) -> Option<String> {
    let all = docs::host_functions(engine).ok()?;
    let (module, fname) = match name.split_once("::") {
        Some((m, f)) => (m, f),
        None => ("", name),
    };
    let fns: Vec<&FnMeta> = all
        .get(module)?
        .iter()
        .filter(|f| f.name == fname)
        .collect();
    if fns.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut last_doc = String::new();
    for f in fns {
        let sig = if f.signature.is_empty() {
            f.name.clone()
        } else {
            docs::clean_types(&f.signature)
        };
        if module.is_empty() {
            let _ = writeln!(out, "{sig}");
        } else {
            let _ = writeln!(out, "{module}::{sig}");
        }
        let doc = f.doc();
        if !doc.is_empty() && doc != last_doc {
            let _ = writeln!(out, "\n{doc}\n");
            last_doc = doc;
        }
    }
    Some(out.trim_end().to_string() + "\n")
}

const HELP: &str = "\
Type Rhai: expressions print their value, `let` variables and `fn` definitions stay for the
session, an unfinished input (an open brace) continues on the next line.

  :help            this text and the host modules
  :help FN         signature and documentation of FN, e.g. :help time::sleep
  :docs [MODULE]   every host function's signature (of MODULE, with documentation)
  :vars            the session's variables with their types and values
  :load FILE       run FILE in the session (its variables and functions stay)
  :reload          run the loaded files again
  :quit            leave (also Ctrl-D)

Tab completes modules, functions and variables; Ctrl-C stops the running input.
";

const FAILURE_HELP: &str = "\
A playbook step failed; its variables are in scope. After inspecting:
  :retry           run the failed step again (with the variables as they are now)
  :continue        skip the failed step and go on with the next one
  :abort           stop the run (also :quit or Ctrl-D)
";

fn docs_text(engine: &Engine, module: Option<&str>) -> String {
    let Ok(all) = docs::host_functions(engine) else {
        return "cannot read the engine's metadata\n".into();
    };
    let mut out = String::new();
    for (m, fns) in &all {
        if module.is_some_and(|want| want != m) {
            continue;
        }
        let _ = writeln!(
            out,
            "{}",
            if m.is_empty() {
                "global functions:".to_string()
            } else {
                format!("{m}::")
            }
        );
        for f in fns {
            if f.name.contains('$') {
                continue;
            }
            let sig = docs::clean_types(&f.signature);
            let _ = writeln!(out, "  {sig}");
            if module.is_some() {
                let first = f.doc();
                if let Some(l) = first.lines().next() {
                    let _ = writeln!(out, "      {l}");
                }
            }
        }
    }
    if out.is_empty() {
        out = format!("no module {}\n", module.unwrap_or_default());
    }
    out
}

// ---------------------------------------------------------------------------------------
// The terminal
// ---------------------------------------------------------------------------------------

/// How [`interactive`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `:quit` or Ctrl-D (in failure mode: abort).
    Quit,
    /// Failure mode: `:continue` (skip the failed step).
    Continue,
    /// Failure mode: `:retry`.
    Retry,
    /// Failure mode: `:abort`.
    Abort,
}

/// Options of the interactive loop.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// History file; `None` keeps no history.
    pub history: Option<PathBuf>,
    /// Opened by `run --repl-on-failure`: `:retry`, `:continue`, `:abort` end the loop.
    pub failure_mode: bool,
}

/// `DOCKHAND_HISTORY`, else `$XDG_DATA_HOME/dockhand/history`, else
/// `~/.local/share/dockhand/history`.
pub fn default_history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DOCKHAND_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })?;
    Some(data.join("dockhand").join("history"))
}

struct ReplHelper {
    names: Arc<Mutex<Names>>,
}

impl Completer for ReplHelper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete(line, pos, &crate::host::lock(&self.names)))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

/// Cancels the running input on every Ctrl-C (SIGINT). At the prompt the terminal is in raw
/// mode and Ctrl-C is a key rustyline reads, so this only fires while an input runs.
///
/// The handler is installed before this returns (not when the task first runs), so a Ctrl-C
/// right after the first prompt cannot fall through to the default action and kill the
/// process.
pub fn spawn_ctrl_c_listener(
    rt: &Runtime,
    running: Arc<Mutex<Option<CancellationToken>>>,
) -> Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let handle = &rt.host().handle;
    let mut sigint = {
        let _in_runtime = handle.enter();
        signal(SignalKind::interrupt())
            .map_err(|e| Error::Internal(format!("cannot listen for Ctrl-C: {e}")))?
    };
    Ok(handle.spawn(async move {
        while sigint.recv().await.is_some() {
            if let Some(t) = crate::host::lock(&running).as_ref() {
                t.cancel();
            }
        }
    }))
}

/// Reads, evaluates and prints until `:quit`/Ctrl-D (or, in failure mode, a decision).
pub fn interactive(session: &mut Session<'_>, opts: &Options) -> Result<End> {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .max_history_size(5000)
        .map_err(|e| Error::Internal(format!("rustyline: {e}")))?
        .check_cursor_position(false)
        // Like bash: complete the common prefix, list the candidates on a second Tab.
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut checker = crate::engine::bare(&crate::engine::Limits::default());
    checker.set_strict_variables(false);
    let mut names = Names::from_engine(session.rt.engine());
    names.vars = session
        .scope
        .iter_raw()
        .map(|(n, ..)| n.to_string())
        .collect();
    let names = Arc::new(Mutex::new(names));
    let mut rl: Editor<ReplHelper, rustyline::history::DefaultHistory> =
        Editor::with_config(config).map_err(|e| Error::Internal(format!("terminal: {e}")))?;
    rl.set_helper(Some(ReplHelper {
        names: names.clone(),
    }));
    if let Some(h) = &opts.history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.load_history(h);
    }
    let listener = spawn_ctrl_c_listener(session.rt, session.running_slot())?;
    if opts.failure_mode {
        eprint!("{FAILURE_HELP}");
    } else {
        eprintln!("dockhand repl — :help for commands, Tab completes, Ctrl-D leaves");
    }
    let prompt = if opts.failure_mode {
        "failed> "
    } else {
        "dockhand> "
    };
    let mut bad_input = 0u32;
    let end = loop {
        // Rustyline's own multi-line editing has no continuation prompt, so an unfinished
        // input is continued here, one `...` line at a time (each line stays editable).
        let mut line = String::new();
        let mut current = prompt;
        let eof = loop {
            match rl.readline(current) {
                Ok(l) => {
                    bad_input = 0;
                    if !line.is_empty() {
                        line.push('\n');
                    }
                    line.push_str(&l);
                    if !is_incomplete(&checker, &line) {
                        break false;
                    }
                    current = "...       ";
                }
                // Ctrl-C drops the whole unfinished input.
                Err(ReadlineError::Interrupted) => {
                    line.clear();
                    break false;
                }
                Err(ReadlineError::Eof) => break true,
                // Bytes that are not UTF-8 (a paste from a binary, a wrong terminal
                // encoding) drop that line only; the session goes on. Many in a row mean
                // the input is not text at all, and then the session ends.
                Err(ReadlineError::Io(e))
                    if e.kind() == std::io::ErrorKind::InvalidData && bad_input < 100 =>
                {
                    bad_input += 1;
                    eprintln!("error: that line is not valid UTF-8 text; it was ignored");
                    line.clear();
                    current = prompt;
                }
                Err(e) => {
                    listener.abort();
                    return Err(Error::Internal(format!("terminal: {e}")));
                }
            }
        };
        if eof {
            break End::Quit;
        }
        if line.trim().is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line.as_str());
        if let Some(h) = &opts.history {
            let _ = rl.append_history(h);
        }
        if let Some(end) = handle_line(session, &line, opts.failure_mode) {
            break end;
        }
        crate::host::lock(&names).vars = session
            .scope
            .iter_raw()
            .map(|(n, ..)| n.to_string())
            .collect();
    };
    listener.abort();
    Ok(end)
}

/// Handles one complete input (a command or code); `Some` ends the loop.
fn handle_line(session: &mut Session<'_>, line: &str, failure_mode: bool) -> Option<End> {
    let trimmed = line.trim();
    if let Some(cmd) = trimmed.strip_prefix(':') {
        let (cmd, arg) = match cmd.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (cmd, ""),
        };
        let engine = session.rt.engine();
        match cmd {
            "q" | "quit" | "exit" => return Some(End::Quit),
            "retry" | "continue" | "skip" | "abort" if failure_mode => {
                return Some(match cmd {
                    "retry" => End::Retry,
                    "abort" => End::Abort,
                    _ => End::Continue,
                });
            }
            "h" | "help" if arg.is_empty() => {
                print!("{HELP}");
                if failure_mode {
                    print!("\n{FAILURE_HELP}");
                }
                let names = Names::from_engine(engine);
                let modules: Vec<String> = names.modules.keys().map(|m| format!("{m}::")).collect();
                println!("\nhost modules: {}", modules.join(" "));
                let own = session.script_functions();
                if !own.is_empty() {
                    println!("your functions: {}", own.join(", "));
                }
            }
            "h" | "help" => match help_for(engine, arg) {
                Some(text) => print!("{text}"),
                None => eprintln!("error: no host function named `{arg}` (try :docs)"),
            },
            "docs" => print!(
                "{}",
                docs_text(
                    engine,
                    (!arg.is_empty()).then_some(arg.trim_end_matches(':'))
                )
            ),
            "vars" => print!("{}", session.vars()),
            "load" if arg.is_empty() => eprintln!("error: :load needs a file, e.g. :load lib.rhai"),
            "load" => show(session, |s| s.load(Path::new(arg))),
            "reload" => {
                let files = session.loaded().to_vec();
                if files.is_empty() {
                    eprintln!("nothing loaded yet (use :load FILE)");
                }
                for f in files {
                    eprintln!("reloading {}", f.display());
                    show(session, |s| s.load(&f));
                }
            }
            other => eprintln!("error: unknown command :{other} (see :help)"),
        }
        return None;
    }
    show(session, |s| s.eval(line));
    None
}

fn show(session: &mut Session<'_>, f: impl FnOnce(&mut Session<'_>) -> Eval) {
    let result = f(session);
    let news = session.take_news();
    if !news.is_empty() {
        print!("{news}");
    }
    match result {
        Eval::Value(v) => print!("{}", render(&v)),
        Eval::Error(se) => eprint!("{se}"),
        Eval::Interrupted => eprintln!("interrupted"),
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let mut n = Names::default();
        n.modules.insert(
            "docker".into(),
            ["ps", "pull_image", "logs"].map(String::from).into(),
        );
        n.modules
            .insert("time".into(), ["sleep"].map(String::from).into());
        n.globals.insert("check".into());
        n.vars.insert("services".into());
        n.vars.insert("count".into());
        n
    }

    #[test]
    fn completes_module_functions_after_the_prefix() {
        let line = "let x = docker::p";
        let (start, c) = complete(line, line.len(), &names());
        assert_eq!(start, 8);
        assert_eq!(c, vec!["docker::ps", "docker::pull_image"]);
    }

    #[test]
    fn completes_modules_globals_and_variables() {
        let (start, c) = complete("do", 2, &names());
        assert_eq!((start, c), (0, vec!["docker::".to_string()]));
        let (_, c) = complete("print(c", 7, &names());
        assert_eq!(c, vec!["check", "count"]);
        let (_, c) = complete(":he", 3, &names());
        assert_eq!(c, vec![":help"]);
        // `:help` completes functions, not variables.
        let (_, c) = complete(":help c", 7, &names());
        assert_eq!(c, vec!["check"]);
        assert!(complete("x + ", 4, &names()).1.is_empty());
    }

    #[test]
    fn incomplete_input_is_an_open_construct_at_the_end() {
        let mut e = crate::engine::bare(&crate::engine::Limits::default());
        e.set_strict_variables(false);
        for open in [
            "fn add(a, b) {",
            "fn add(a, b) {\n  a + b",
            "let x = [1, 2,",
            "if x > 1 {",
            "let s = `multi",
            "let y = 1 +",
            "foo(1,",
        ] {
            assert!(is_incomplete(&e, open), "{open:?} should continue");
        }
        for done in [
            "fn add(a, b) { a + b }",
            "1 + 2",
            "let x = ;; 1",
            "let x = )",
            "\"unterminated",
            ":help",
            "",
        ] {
            assert!(!is_incomplete(&e, done), "{done:?} should be submitted");
        }
    }

    #[test]
    fn renders_maps_as_aligned_lines_and_arrays_of_maps_as_tables() {
        let mut m = Map::new();
        m.insert("name".into(), "data-api".into());
        m.insert("restarts".into(), (2 as rhai::INT).into());
        let text = render(&Dynamic::from(m));
        assert_eq!(text, "name      data-api\nrestarts  2\n");

        let row = |name: &str, state: &str, extra: Option<i64>| {
            let mut m = Map::new();
            m.insert("state".into(), state.into());
            m.insert("name".into(), name.into());
            if let Some(x) = extra {
                m.insert("age_s".into(), x.into());
            }
            Dynamic::from(m)
        };
        let rows: rhai::Array = vec![
            row("data-api", "running", Some(12)),
            row("weather-api-long", "exited", None),
        ];
        let text = render(&Dynamic::from(rows));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME              STATE    AGE_S");
        assert_eq!(lines[1], "data-api          running  12");
        assert_eq!(lines[2], "weather-api-long  exited");
    }

    #[test]
    fn renders_scalars_and_nested_values_on_one_line() {
        assert_eq!(render(&Dynamic::UNIT), "");
        assert_eq!(render(&Dynamic::from("text")), "text\n");
        let arr: rhai::Array = vec![(1 as rhai::INT).into(), "a".into()];
        assert_eq!(render(&Dynamic::from(arr)), "[1, \"a\"]\n");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
