//! Host modules: the primitives a playbook can call.
//!
//! Every module lives in its own file and is written as a Rhai plugin module
//! (`#[export_module]`), so the doc comment on each function *is* its Rhai documentation:
//! `dockhand docs` and the REPL's `:help` read them from the engine's metadata, never from a
//! second copy that could drift.
//!
//! Host functions reach the run's shared state ([`HostCtx`]) through the engine's *tag*: the
//! runtime stores an `Arc<HostCtx>` there and [`host`] fetches it from the
//! `NativeCallContext`. That keeps the functions plain (no closures capturing state) while
//! still letting one process embed several independent runtimes.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Position};
use serde::Serialize;

use crate::cancel::{self, RunCancel};
use crate::diagnostic::Fault;

pub mod check;
pub mod compose;
pub mod config;
pub mod deploy;
pub mod docker;
pub mod fs;
pub mod http;
pub mod influx;
pub mod parallel;
pub mod params;
pub mod progress;
pub mod report;
pub mod reqs;
pub mod state;
pub mod swarm;
pub mod time;

/// Result type of every host function.
pub type HostResult<T> = Result<T, Box<EvalAltResult>>;

/// What the run may change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Mutating primitives act.
    #[default]
    Normal,
    /// Mutating primitives do nothing and record what they would have done into the plan.
    DryRun,
    /// Mutating primitives raise an error (team-authored validations run like this).
    ReadOnly,
}

/// One thing a `--dry-run` would have done.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedAction {
    /// `module::function`, e.g. `fs::write`.
    pub action: String,
    /// What it acts on: a path, a service, an image.
    pub target: String,
    /// Human-readable detail (sizes, options).
    pub detail: String,
}

/// The outcome of one `check(name, ...)` call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    /// Why it failed (or a note on success); empty when there is nothing to say.
    pub reason: String,
    /// Time spent evaluating the check, when it was given a closure.
    pub ms: u64,
    /// `file:line` of the `check` call.
    pub location: String,
}

/// State shared by every host function of one runtime.
pub struct HostCtx {
    /// The tokio runtime host calls block on. Scripts never run on its worker threads.
    pub handle: tokio::runtime::Handle,
    /// Canonical workspace root: the fs sandbox and the `.dockhand/` directory live here.
    pub root: PathBuf,
    pub mode: Mode,
    /// `--allow-exec`: whether primitives that run processes may do so.
    pub allow_exec: bool,
    cancel: Mutex<RunCancel>,
    http: OnceLock<reqwest::Client>,
    https: OnceLock<reqwest::Client>,
    checks: Mutex<Vec<CheckResult>>,
    plan: Mutex<Vec<PlannedAction>>,
    pub(crate) journals: state::Journals,
    pub(crate) params: params::ParamValues,
    /// The default and the named Docker engines (`docker::use_engine`).
    pub(crate) engines: docker::engines::Engines,
    pub(crate) docker_project: Mutex<Option<String>>,
    waiting: Waiting,
}

/// How long the run spent blocked on I/O or timers — time when *some* host call was waiting
/// for Docker, the network or a sleep. Overlapping waits of parallel workers count once, so
/// `wall − waiting` is dockhand's own overhead (interpreting, journaling, bookkeeping).
#[derive(Debug, Default)]
struct Waiting {
    /// (calls in flight, when the first of them started, total so far)
    inner: Mutex<(usize, Option<std::time::Instant>, std::time::Duration)>,
}

impl Waiting {
    fn enter(&self) {
        let mut w = lock(&self.inner);
        if w.0 == 0 {
            w.1 = Some(std::time::Instant::now());
        }
        w.0 += 1;
    }

    fn leave(&self) {
        let mut w = lock(&self.inner);
        w.0 = w.0.saturating_sub(1);
        if w.0 == 0
            && let Some(t) = w.1.take()
        {
            w.2 += t.elapsed();
        }
    }

    fn total(&self) -> std::time::Duration {
        let w = lock(&self.inner);
        w.2 + w.1.map(|t| t.elapsed()).unwrap_or_default()
    }
}

impl std::fmt::Debug for HostCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCtx")
            .field("root", &self.root)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl HostCtx {
    pub fn new(
        handle: tokio::runtime::Handle,
        root: PathBuf,
        mode: Mode,
        allow_exec: bool,
    ) -> Self {
        Self {
            handle,
            root,
            mode,
            allow_exec,
            cancel: Mutex::new(RunCancel::new()),
            http: OnceLock::new(),
            https: OnceLock::new(),
            checks: Mutex::new(Vec::new()),
            plan: Mutex::new(Vec::new()),
            journals: state::Journals::default(),
            params: params::ParamValues::default(),
            engines: docker::engines::Engines::default(),
            docker_project: Mutex::new(None),
            waiting: Waiting::default(),
        }
    }

    /// The cancellation of the current run.
    pub fn run_cancel(&self) -> RunCancel {
        lock(&self.cancel).clone()
    }

    /// Starts a fresh run: new cancellation, empty checks and plan, and the calling (script)
    /// thread back on the default engine — an engine an earlier run of this thread chose
    /// with `docker::use_engine` must not carry over into the next (`watch`, embedders).
    pub fn reset_run(&self) -> RunCancel {
        docker::engines::set_current(None);
        let fresh = RunCancel::new();
        *lock(&self.cancel) = fresh.clone();
        lock(&self.checks).clear();
        lock(&self.plan).clear();
        self.journals.clear();
        fresh
    }

    /// The HTTP client for `url`, created on first use and then shared, so connections are
    /// pooled across the run. Plain `http://` URLs (every local health check) get a client
    /// that skips loading the system's TLS roots: that load costs ~6 ms, more than a whole
    /// `dockhand run` of a small playbook. `https://` URLs get the fully verifying client.
    pub fn http_for(&self, url: &str) -> &reqwest::Client {
        install_crypto_provider();
        let tls = url.len() >= 8 && url[..8].eq_ignore_ascii_case("https://");
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("dockhand/", env!("CARGO_PKG_VERSION")))
                .pool_idle_timeout(std::time::Duration::from_secs(30))
        };
        if tls {
            self.https
                .get_or_init(|| builder().build().unwrap_or_else(|_| reqwest::Client::new()))
        } else {
            // No roots: an https redirect from a plain URL fails verification (clearly)
            // rather than silently trusting anything.
            self.http.get_or_init(|| {
                builder()
                    .tls_certs_only([])
                    .build()
                    .unwrap_or_else(|_| reqwest::Client::new())
            })
        }
    }

    /// Sets the parameter values the script's `params(...)` call returns.
    pub fn set_params(&self, values: rhai::Map) {
        *lock(&self.params.0) = values;
    }

    pub fn record_check(&self, c: CheckResult) {
        lock(&self.checks).push(c);
    }

    pub fn checks(&self) -> Vec<CheckResult> {
        lock(&self.checks).clone()
    }

    pub fn plan(&self) -> Vec<PlannedAction> {
        lock(&self.plan).clone()
    }

    /// Gate for every mutating primitive. Returns `Ok(true)` when the caller should act,
    /// `Ok(false)` in `--dry-run` (the action is recorded in the plan instead), and an error
    /// in `--read-only`.
    pub fn mutation(&self, action: &str, target: &str, detail: &str) -> HostResult<bool> {
        match self.mode {
            Mode::Normal => Ok(true),
            Mode::DryRun => {
                tracing::info!(target: "dockhand::plan", "[dry-run] {action} {target} {detail}");
                lock(&self.plan).push(PlannedAction {
                    action: action.to_string(),
                    target: target.to_string(),
                    detail: detail.to_string(),
                });
                Ok(false)
            }
            Mode::ReadOnly => Err(refused(format!(
                "{action} would change {target}, and this run is --read-only; \
                 run it without --read-only (or with --dry-run to see what it would do)"
            ))),
        }
    }

    /// Sleeps for `d`, or until this thread's cancellation fires. The timer is created inside
    /// the async block: tokio timers must be made within the runtime, not on a script thread.
    pub fn sleep(&self, d: std::time::Duration) -> HostResult<()> {
        self.block_on(async move { tokio::time::sleep(d).await })
    }

    /// Runs `fut` to completion on the runtime, unless this thread's current cancellation
    /// fires first. Must be called from a plain thread (scripts always run on one).
    pub fn block_on<F: Future>(&self, fut: F) -> HostResult<F::Output> {
        let token = cancel::current().unwrap_or_else(|| self.run_cancel().token().clone());
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(fail(
                "a dockhand host call ran on a tokio worker thread; embedders must run scripts \
                 on a plain thread (e.g. tokio::task::spawn_blocking)",
            ));
        }
        self.waiting.enter();
        let out = self.handle.block_on(async {
            tokio::select! {
                biased;
                _ = token.cancelled() => Err(terminated()),
                out = fut => Ok(out),
            }
        });
        self.waiting.leave();
        out
    }

    /// Time this runtime spent blocked in host calls (overlaps counted once); see
    /// `time::waiting_ms`.
    pub fn waiting(&self) -> std::time::Duration {
        self.waiting.total()
    }
}

/// Makes *ring* the process's rustls crypto provider, once, before the first HTTP client is
/// built (reqwest asks rustls for the process default when it builds a client, even one that
/// only speaks plain `http://`).
///
/// Why *ring* and not reqwest's default, aws-lc-rs: aws-lc-rs compiles the AWS-LC C library
/// from source (with cmake), the largest single item of a clean build, for the same TLS 1.2/1.3
/// suites *ring* provides (see Cargo.toml). An embedder that installed a provider of its own
/// keeps it: `install_default` then fails, which is fine.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Poison-tolerant lock: a panic in one worker must not wedge the run's bookkeeping.
pub(crate) use crate::util::lock;

/// The host context of the engine behind `ctx`.
pub fn host(ctx: &NativeCallContext) -> HostResult<Arc<HostCtx>> {
    static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    crate::startup::mark_once(&FIRST, "first-host-call");
    ctx.tag()
        .and_then(|t| t.read_lock::<Arc<HostCtx>>().map(|h| Arc::clone(&h)))
        .ok_or_else(|| fail("this engine was not built by dockhand::Runtime (no host context)"))
}

/// Gives an error from a host call the position of the call, when it has none: Rhai fills
/// it in for plain calls but not for namespace-qualified ones (`fs::read(...)`), and an error
/// without `file:line:col` is much harder to act on.
pub fn at<T>(call: Position, body: impl FnOnce() -> HostResult<T>) -> HostResult<T> {
    body().map_err(|mut e| {
        if e.position().is_none() {
            e.set_position(call);
        }
        e
    })
}

/// The frame of a host function: the run's [`HostCtx`] for `body`, and the call's position on
/// any error that has none (see [`at`]). Every `#[export_module]` function that needs the
/// context goes through here, so the two steps are written once:
///
/// ```ignore
/// pub fn project(ctx: NativeCallContext) -> HostResult<Dynamic> {
///     with_host(&ctx, |h| Ok(project_of(h).map_or(Dynamic::UNIT, Dynamic::from)))
/// }
/// ```
pub fn with_host<T>(
    ctx: &NativeCallContext,
    body: impl FnOnce(&Arc<HostCtx>) -> HostResult<T>,
) -> HostResult<T> {
    at(ctx.call_position(), || body(&host(ctx)?))
}

/// A step failed (exit code 1): a probe, a file that is not there, a Docker error.
pub fn fail(msg: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(msg.into()), Position::NONE).into()
}

/// A host call used wrongly: a bad argument is a bug in the script, so the run ends with
/// exit code 2 like any other script error (see [`Fault`]).
pub fn invalid(msg: impl AsRef<str>) -> Box<EvalAltResult> {
    Fault::InvalidArgument.error(msg)
}

/// A call the sandbox refuses (exit code 2).
pub fn refused(msg: impl AsRef<str>) -> Box<EvalAltResult> {
    Fault::Refused.error(msg)
}

/// A bad config file (exit code 2); the message names the file, key and line.
pub fn config_error(msg: impl AsRef<str>) -> Box<EvalAltResult> {
    Fault::ConfigError.error(msg)
}

/// The error a cancelled host call returns; Rhai propagates it past `try`/`catch`.
pub fn terminated() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from("cancelled"), Position::NONE).into()
}

/// Registers every host module into `engine`.
pub fn register_all(engine: &mut Engine) {
    time::register(engine);
    http::register(engine);
    influx::register(engine);
    fs::register(engine);
    state::register(engine);
    parallel::register(engine);
    check::register(engine);
    params::register(engine);
    docker::register(engine);
    swarm::register(engine);
    compose::register(engine);
    config::register(engine);
    progress::register(engine);
    reqs::register(engine);
    report::register(engine);
}
