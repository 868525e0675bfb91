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
//!
//! Every way dockhand runs script code — `run`, `watch`, `validate`, the REPL and its
//! `--repl-on-failure` steps — goes through one lifecycle, in [`lifecycle`]: begin a run
//! (parameters, fresh checks and plan, cancellation, `--timeout`), evaluate code in it
//! (panic caught, the stop classified), finish it (the [`RunOutcome`]). So a REPL input
//! that panics or is stopped ends exactly as a `dockhand run` would. What a run produced,
//! and its one JSON form (for `run`, `watch` and `validate --json`), is in [`outcome`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rhai::{AST, Dynamic, Engine, Map, Scope};

use crate::cancel::{CancelReason, RunCancel};
use crate::diagnostic::{ScriptError, SourceMap};
use crate::engine::{self, Limits};
use crate::error::{Error, Result};
use crate::host::params::{self, Param};
use crate::host::{HostCtx, Mode};
use crate::resolver::Resolver;

pub mod lifecycle;
pub mod outcome;

pub use lifecycle::{ActiveRun, Watchdog};
pub use outcome::{ResultJson, RunJson, RunOutcome, error_json, error_text};

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

    /// Overrides the operation and memory limits where given (`--max-operations`,
    /// `--max-memory`); the others keep their defaults. Every command builds its runtime
    /// through this, so the options mean the same to `run`, `repl`, `watch` and `validate`.
    pub fn limit_overrides(
        mut self,
        max_operations: Option<u64>,
        max_memory: Option<usize>,
    ) -> Self {
        if let Some(n) = max_operations {
            self.limits.max_operations = n;
        }
        if let Some(n) = max_memory {
            self.limits.max_memory = n;
        }
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

    /// The engine, to register an embedder's own functions before the first run. They run
    /// under the same lifecycle as the host modules (a panic in one is an internal error).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
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
    /// [`params::Param::convert`]). Missing values take their defaults. The whole lifecycle
    /// ([`Runtime::begin`], [`ActiveRun::eval`], [`ActiveRun::finish`]) in one call.
    pub fn run(&self, script: &Script, values: Map) -> Result<RunOutcome> {
        let run = self.begin(script, values)?;
        let value = run.eval(&mut Scope::new(), &script.ast, &script.name)?;
        Ok(run.finish(value))
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
