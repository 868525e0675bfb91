//! The one lifecycle of a run: begin, evaluate, finish.
//!
//! `dockhand run`, `watch`, `validate` and the REPL all evaluate script code here, so they
//! agree on the three things that are easy to get subtly different:
//!
//! * **Cancellation scope.** A run has one [`RunCancel`]; its token is this thread's current
//!   token while code runs (the engine's progress hook and every blocking host call race
//!   it). A REPL input gets a cancellation of its own, tied to the run's by a [`Watchdog`],
//!   so Ctrl-C stops the input without ending the session, while a stop of the whole run
//!   still reaches it.
//! * **Panics.** A panic in a host function is a dockhand bug; it must not take the process
//!   down without a word. [`Runtime::eval_ast`] reports it as an internal error (exit 2).
//! * **How a stop is classified.** A cancellation with a reason is [`Error::Interrupted`] or
//!   [`Error::TimedOut`]; a termination *without* one (the operations limit, a host stop)
//!   is an internal error, not an interruption.

use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Map, Scope};

use super::{RunOutcome, Runtime, Script};
use crate::cancel::{self, CancelReason, EnterGuard, RunCancel};
use crate::diagnostic::{ErrorKind, ScriptError};
use crate::error::{Error, Result};
use crate::host::params;

/// A run in progress, from [`Runtime::begin`] to [`ActiveRun::finish`]. Its cancellation is
/// this thread's current one while it lives; dropping it stops the `--timeout` timer.
pub struct ActiveRun<'rt> {
    rt: &'rt Runtime,
    cancel: RunCancel,
    started: Instant,
    _watchdog: Watchdog,
    _current: EnterGuard,
}

/// Cancels a [`RunCancel`] when its time is up, or when the run it belongs to is cancelled
/// (with that run's reason). Stops watching when dropped.
#[must_use = "the watchdog stops when dropped"]
pub struct Watchdog(Option<tokio::task::JoinHandle<()>>);

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl Runtime {
    /// Begins a run of `script`: checks the parameter `values`, starts with no checks, plan
    /// or journals, installs a fresh cancellation as this thread's current one and starts
    /// the `--timeout` timer.
    pub fn begin(&self, script: &Script, values: Map) -> Result<ActiveRun<'_>> {
        params::resolve(&script.params, &values).map_err(Error::Usage)?;
        let started = Instant::now();
        let cancel = self.ctx.reset_run();
        self.ctx.set_params(values);
        Ok(ActiveRun {
            rt: self,
            started,
            _watchdog: self.watchdog(&cancel, None, self.timeout),
            _current: cancel::enter(cancel.token().clone()),
            cancel,
        })
    }

    /// Evaluates `ast` in `scope` with `cancel` as this thread's cancellation: the one place
    /// dockhand runs script code. A panic is an internal error; a stop is classified by
    /// `cancel`'s reason (see the module docs); other errors are script errors, located in
    /// `name`.
    pub fn eval_ast(
        &self,
        scope: &mut Scope<'_>,
        ast: &AST,
        name: &str,
        cancel: &RunCancel,
    ) -> Result<Dynamic> {
        let _current = cancel::enter(cancel.token().clone());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine.eval_ast_with_scope::<Dynamic>(scope, ast)
        }));
        let result = result.map_err(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Error::Internal(format!(
                "dockhand crashed while running {name} ({what}); this is a bug, please report it"
            ))
        })?;
        if let Some(reason) = cancel.reason() {
            return Err(match reason {
                CancelReason::Interrupted => Error::Interrupted,
                CancelReason::TimedOut(d) => Error::TimedOut(d),
            });
        }
        result.map_err(|e| {
            let se = ScriptError::from_eval(&e, name, &self.sources);
            if se.kind == ErrorKind::Terminated {
                // Terminated without a reason: the operations limit or a host stop.
                Error::Internal(se.message)
            } else {
                Error::Script(Box::new(se))
            }
        })
    }

    /// A cancellation for one evaluation inside the current run (a REPL input): cancelled
    /// after `timeout`, or with the run. Keep the watchdog while the evaluation runs.
    pub fn sub_cancel(&self, timeout: Option<Duration>) -> (RunCancel, Watchdog) {
        let cancel = RunCancel::new();
        let watchdog = self.watchdog(&cancel, Some(self.cancel_handle()), timeout);
        (cancel, watchdog)
    }

    /// Cancels `cancel` after `timeout` (as `TimedOut`) or when `parent` is cancelled (for
    /// the parent's reason, or none).
    fn watchdog(
        &self,
        cancel: &RunCancel,
        parent: Option<RunCancel>,
        timeout: Option<Duration>,
    ) -> Watchdog {
        if parent.is_none() && timeout.is_none() {
            return Watchdog(None);
        }
        let cancel = cancel.clone();
        Watchdog(Some(self.ctx.handle.spawn(async move {
            let expired = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            let parent_stopped = async {
                match &parent {
                    Some(p) => p.token().cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = expired => {
                    let t = timeout.unwrap_or_default();
                    tracing::debug!(target: "dockhand::cancel", "--timeout of {} reached: stopping the run", crate::util::human::duration(t));
                    cancel.cancel(CancelReason::TimedOut(t));
                }
                () = parent_stopped => match parent.as_ref().and_then(RunCancel::reason) {
                    Some(reason) => cancel.cancel(reason),
                    None => cancel.token().cancel(),
                },
            }
        })))
    }
}

impl ActiveRun<'_> {
    /// The run's cancellation.
    pub fn cancel(&self) -> &RunCancel {
        &self.cancel
    }

    /// Evaluates `ast` in `scope` as part of this run (see [`Runtime::eval_ast`]).
    pub fn eval(&self, scope: &mut Scope<'_>, ast: &AST, name: &str) -> Result<Dynamic> {
        self.rt.eval_ast(scope, ast, name, &self.cancel)
    }

    /// Ends the run: what it produced, with the script's final `value`.
    pub fn finish(self, value: Dynamic) -> RunOutcome {
        crate::startup::mark("run-done");
        RunOutcome {
            value,
            checks: self.rt.ctx.checks(),
            plan: self.rt.ctx.plan(),
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}
