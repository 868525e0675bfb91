//! Cancellation that reaches both a busy script loop and a blocked host call.
//!
//! Rhai is synchronous, so a script can be stuck in two ways: spinning in its own loop, or
//! waiting inside a host function (an HTTP request, a sleep, a Docker call). Both must stop
//! within 100 ms of Ctrl-C or `--timeout`. We keep one [`CancellationToken`] per run; the
//! engine's `on_progress` hook polls it between operations, and every blocking host call
//! races its future against it in `select!`.
//!
//! `time::timeout(ms, fn)` needs a *narrower* cancellation: only the closure it runs should
//! stop. It does so by installing a child token as the thread's *current* token for the
//! duration of the call; children are cancelled with their parent, never the other way round.
//! The current token is thread-local because each script (and each `parallel` worker) runs on
//! its own plain thread.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Why a run was stopped from the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// Ctrl-C / SIGINT (exit code 130).
    Interrupted,
    /// `--timeout` elapsed.
    TimedOut(Duration),
}

/// The root cancellation of one run plus the reason it was cancelled.
#[derive(Debug, Clone, Default)]
pub struct RunCancel {
    token: CancellationToken,
    reason: Arc<Mutex<Option<CancelReason>>>,
}

impl RunCancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancel the run. The first reason given wins, so a Ctrl-C that races a timeout reports
    /// whichever really happened first.
    pub fn cancel(&self, reason: CancelReason) {
        {
            let mut r = crate::util::lock(&self.reason);
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<CancelReason> {
        *crate::util::lock(&self.reason)
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

thread_local! {
    static CURRENT: RefCell<Option<CancellationToken>> = const { RefCell::new(None) };
}

/// The token that host calls on this thread must race. `None` outside a run.
pub fn current() -> Option<CancellationToken> {
    CURRENT.with(|c| c.borrow().clone())
}

/// True when the current thread's token is cancelled. Called from `on_progress`.
pub fn current_is_cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|t| t.is_cancelled()))
}

/// Installs `token` as this thread's current token until the guard drops, then restores the
/// previous one (so nested `time::timeout` calls unwind correctly).
pub fn enter(token: CancellationToken) -> EnterGuard {
    let prev = CURRENT.with(|c| c.borrow_mut().replace(token));
    EnterGuard { prev }
}

#[must_use = "the token is only current while the guard lives"]
pub struct EnterGuard {
    prev: Option<CancellationToken>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}
