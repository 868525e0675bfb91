//! `Runtime`: the embeddable API.
//!
//! Another Rust program can embed dockhand exactly as the CLI does:
//!
//! ```no_run
//! use dockhand::Runtime;
//! let rt = Runtime::builder().root(".").build()?;
//! let script = rt.compile_file("playbooks/hello.rhai")?;
//! let outcome = rt.run(&script, Default::default())?;
//! println!("{} checks failed", outcome.failed_checks().len());
//! # Ok::<(), dockhand::Error>(())
//! ```
//!
//! A `Runtime` owns (or borrows, with [`RuntimeBuilder::handle`]) one tokio runtime. Scripts
//! run on the thread that calls [`Runtime::run`], which must be a plain thread: host functions
//! block on the tokio runtime, and blocking a tokio worker would deadlock it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, Map, Scope};
use serde::Serialize;

use crate::cancel::{self, CancelReason, RunCancel};
use crate::diagnostic::{ErrorKind, ScriptError, SourceMap};
use crate::engine::{self, Limits};
use crate::error::{Error, Result};
use crate::host::params::{self, Param};
use crate::host::{CheckResult, HostCtx, Mode, PlannedAction};
use crate::resolver::Resolver;

/// Configures a [`Runtime`].
#[derive(Debug, Default)]
pub struct RuntimeBuilder {
    root: Option<PathBuf>,
    mode: Mode,
    allow_exec: bool,
    timeout: Option<Duration>,
    stdlib_dir: Option<PathBuf>,
    limits: Limits,
    handle: Option<tokio::runtime::Handle>,
    ctrl_c: bool,
}

impl RuntimeBuilder {
    /// Workspace root: the fs sandbox and `.dockhand/` live here (default: current directory).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Let primitives that run processes (`docker::exec`, test commands) do so.
    pub fn allow_exec(mut self, allow: bool) -> Self {
        self.allow_exec = allow;
        self
    }

    /// Stop every run after this long.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Load `import "stdlib/x"` from this directory when the file exists there.
    pub fn stdlib_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.stdlib_dir = dir;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Use an existing tokio runtime instead of creating one.
    pub fn handle(mut self, handle: tokio::runtime::Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Cancel the current run on Ctrl-C (SIGINT); a second Ctrl-C exits at once with 130.
    pub fn handle_ctrl_c(mut self, on: bool) -> Self {
        self.ctrl_c = on;
        self
    }

    pub fn build(self) -> Result<Runtime> {
        let root = self.root.unwrap_or_else(|| PathBuf::from("."));
        let root = root.canonicalize().map_err(|source| Error::Io {
            path: root.clone(),
            source,
        })?;
        if !root.is_dir() {
            return Err(Error::Usage(format!(
                "the workspace root {} is not a directory; give --root a directory",
                root.display()
            )));
        }
        if let Some(dir) = &self.stdlib_dir
            && !dir.is_dir()
        {
            return Err(Error::Usage(format!(
                "the --stdlib directory {} does not exist or is not a directory",
                dir.display()
            )));
        }
        let (owned, handle) = match self.handle {
            Some(h) => (None, h),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
                let h = rt.handle().clone();
                crate::startup::mark("tokio-ready");
                (Some(rt), h)
            }
        };
        let ctx = Arc::new(HostCtx::new(
            handle.clone(),
            root.clone(),
            self.mode,
            self.allow_exec,
        ));
        let sources = SourceMap::default();
        let resolver = Arc::new(Resolver::new(root, self.stdlib_dir, sources.clone()));
        let engine = engine::build(ctx.clone(), resolver.clone(), &self.limits);
        if self.ctrl_c {
            let ctx = ctx.clone();
            handle.spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::warn!("interrupted: stopping (Ctrl-C again to quit at once)");
                    ctx.run_cancel().cancel(CancelReason::Interrupted);
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
        }
        crate::startup::mark("runtime-ready");
        Ok(Runtime {
            engine,
            ctx,
            resolver,
            sources,
            timeout: self.timeout,
            _owned: owned,
        })
    }
}

/// A compiled playbook.
#[derive(Debug, Clone)]
pub struct Script {
    /// Name used in errors (the path as given).
    pub name: String,
    pub ast: AST,
    /// Declared parameters (empty if it declares none).
    pub params: Vec<Param>,
    /// The script's `//!` doc comment.
    pub doc: String,
}

/// What a finished run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// The script's final value, as JSON-able data.
    #[serde(skip)]
    pub value: Dynamic,
    pub checks: Vec<CheckResult>,
    pub plan: Vec<PlannedAction>,
    pub duration_ms: u64,
}

impl RunOutcome {
    pub fn failed_checks(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// 0 when every check passed, else 1.
    pub fn exit_code(&self) -> i32 {
        if self.checks.iter().all(|c| c.ok) {
            0
        } else {
            1
        }
    }
}

/// An embeddable dockhand runtime: an engine with the host modules, and its async runtime.
pub struct Runtime {
    engine: Engine,
    ctx: Arc<HostCtx>,
    resolver: Arc<Resolver>,
    sources: SourceMap,
    timeout: Option<Duration>,
    _owned: Option<tokio::runtime::Runtime>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Do not wait for idle pooled connections or the Ctrl-C listener to wind down.
        if let Some(rt) = self._owned.take() {
            rt.shutdown_background();
        }
    }
}

impl Runtime {
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn host(&self) -> &Arc<HostCtx> {
        &self.ctx
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// The cancellation of the run in progress (or the last one).
    pub fn cancel_handle(&self) -> RunCancel {
        self.ctx.run_cancel()
    }

    /// Reads and compiles a playbook, with its parameter declaration.
    pub fn compile_file(&self, path: impl AsRef<Path>) -> Result<Script> {
        let path = path.as_ref();
        let text = crate::source::read_capped(path, "playbook")?;
        let name = path.to_string_lossy().into_owned();
        if let Ok(full) = path.canonicalize() {
            self.resolver.register_file(&name, full);
        }
        compile_source(&self.engine, &self.sources, &name, &text)
    }

    /// Compiles a script given as text; `name` is used in error messages.
    pub fn compile_str(&self, name: &str, text: &str) -> Result<Script> {
        compile_source(&self.engine, &self.sources, name, text)
    }

    /// Compiles and checks a file without running it: syntax, parameter declaration, and
    /// that every import resolves and compiles.
    pub fn check_file(&self, path: impl AsRef<Path>) -> Result<Script> {
        let script = self.compile_file(path)?;
        let errors = self
            .resolver
            .check_imports(&self.engine, &script.ast, &script.name);
        if errors.is_empty() {
            Ok(script)
        } else {
            Err(Error::Scripts(errors))
        }
    }

    /// Runs a compiled script with parameter `values` (by parameter name, already typed; see
    /// [`params::Param::convert`]). Missing values take their defaults.
    pub fn run(&self, script: &Script, values: Map) -> Result<RunOutcome> {
        params::resolve(&script.params, &values).map_err(Error::Usage)?;
        let started = Instant::now();
        let run = self.ctx.reset_run();
        self.ctx.set_params(values);
        let _current = cancel::enter(run.token().clone());
        let timer = self.timeout.map(|t| {
            let run = run.clone();
            self.ctx.handle.spawn(async move {
                tokio::time::sleep(t).await;
                tracing::debug!(target: "dockhand::cancel", "--timeout of {} reached: stopping the run", crate::host::time::human(t));
                run.cancel(CancelReason::TimedOut(t));
            })
        });
        let mut scope = Scope::new();
        // A panic here is a dockhand bug, but it must not end the process without a word:
        // report it as an internal error (exit 2) after the run's normal cleanup.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast)
        }));
        let result = match result {
            Ok(r) => r,
            Err(panic) => {
                if let Some(t) = timer {
                    t.abort();
                }
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(Error::Internal(format!(
                    "dockhand crashed while running {} ({what}); this is a bug, please report it",
                    script.name
                )));
            }
        };
        if let Some(t) = timer {
            t.abort();
        }
        if let Some(reason) = run.reason() {
            return Err(match reason {
                CancelReason::Interrupted => Error::Interrupted,
                CancelReason::TimedOut(d) => Error::TimedOut(d),
            });
        }
        let value = result.map_err(|e| {
            let se = ScriptError::from_eval(&e, &script.name, &self.sources);
            if se.kind == ErrorKind::Terminated {
                // Terminated without a run-level reason: the operations limit or a host stop.
                Error::Internal(se.message)
            } else {
                Error::Script(Box::new(se))
            }
        })?;
        crate::startup::mark("run-done");
        Ok(RunOutcome {
            value,
            checks: self.ctx.checks(),
            plan: self.ctx.plan(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Compiles and runs a file.
    pub fn run_file(&self, path: impl AsRef<Path>, values: Map) -> Result<RunOutcome> {
        let script = self.compile_file(path)?;
        self.run(&script, values)
    }

    /// Evaluates a snippet (no parameters) and returns its value.
    pub fn eval(&self, text: &str) -> Result<Dynamic> {
        let script = self.compile_str("<eval>", text)?;
        self.run(&script, Map::new()).map(|o| o.value)
    }
}

/// Compiles `text` and reads its parameter declaration and doc comment.
pub fn compile_source(
    engine: &Engine,
    sources: &SourceMap,
    name: &str,
    text: &str,
) -> Result<Script> {
    let text = crate::source::strip_bom(text);
    sources.insert(name, text);
    crate::source::vet(engine, text).map_err(|p| {
        let err = rhai::EvalAltResult::ErrorRuntime(
            crate::diagnostic::Fault::InvalidArgument.value(&p.message),
            p.position(),
        );
        let mut se = ScriptError::from_eval(&err, name, sources);
        se.kind = crate::diagnostic::ErrorKind::Syntax;
        se.message = format!("syntax error: {}", p.message);
        Error::Script(Box::new(se))
    })?;
    let mut ast = engine
        .compile(text)
        .map_err(|e| Error::Script(Box::new(ScriptError::from_parse(&e, name, sources))))?;
    ast.set_source(name);
    let params = params::extract(&ast).map_err(|e| {
        let err = rhai::EvalAltResult::ErrorRuntime(
            crate::diagnostic::Fault::InvalidArgument.value(&e.message),
            e.position,
        );
        Error::Script(Box::new(ScriptError::from_eval(&err, name, sources)))
    })?;
    let doc = ast.doc().to_string();
    crate::startup::mark("script-compiled");
    Ok(Script {
        name: name.to_string(),
        ast,
        params,
        doc,
    })
}
