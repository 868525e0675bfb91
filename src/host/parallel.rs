//! `parallel(items, limit, |item| ...)` — run a closure over items on worker threads.
//!
//! The seeds' bash started every build with `&` and then `wait`ed for all of them: no cap, no
//! per-item result, one failure invisible until the end. `parallel` runs at most `limit`
//! calls at once on plain threads (Rhai's `sync` feature makes the engine shareable), returns
//! the results **in the order of `items`**, and turns an error in one item into that item's
//! result — an `ItemError` — instead of aborting the others.
//!
//! Ctrl-C and `--timeout` stop every worker: each one races the run's cancellation. At most
//! 64 worker threads run in the whole process (nested calls share them); a larger `limit`
//! queues the rest.
//!
//! ```rhai
//! let results = parallel(services, 4, |svc| http::probe(`http://localhost:${svc.port}/health`));
//! for r in results {
//!     if is_error(r) { print(`failed: ${r.message}`); }
//! }
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rhai::plugin::*;
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, INT};

use super::time::is_terminated;
use super::{invalid, terminated, with_host};
use crate::cancel;

/// Where a worker leaves one item's result.
type Slot = Mutex<Option<Result<Dynamic, Box<EvalAltResult>>>>;

/// A counting semaphore shared by `parallel` workers: `semaphore(n)` then `s.run(|| ...)`.
///
/// `parallel`'s limit caps how many items are in flight; a semaphore caps one *stage* of
/// them. The rebuild uses two — builds and deploys — so a service deploys as soon as its
/// build ends (a work queue) instead of waiting for its whole batch (the seeds' lock-step).
#[derive(Debug, Clone)]
pub struct Semaphore(std::sync::Arc<(Mutex<usize>, std::sync::Condvar, usize)>);

impl Semaphore {
    pub fn new(n: usize) -> Self {
        Self(std::sync::Arc::new((
            Mutex::new(n),
            std::sync::Condvar::new(),
            n,
        )))
    }

    /// Takes a slot, waiting (and watching for cancellation) until one is free.
    fn acquire(&self) -> Result<(), Box<EvalAltResult>> {
        let (count, cv, _) = &*self.0;
        let mut free = super::lock(count);
        while *free == 0 {
            if cancel::current().is_some_and(|t| t.is_cancelled()) {
                return Err(terminated());
            }
            free = cv
                .wait_timeout(free, std::time::Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *free -= 1;
        Ok(())
    }

    fn release(&self) {
        let (count, cv, _) = &*self.0;
        *super::lock(count) += 1;
        cv.notify_one();
    }
}

/// Most `parallel` worker threads alive at once in the process, whatever the limits
/// scripts ask for: `parallel(items, 100000, f)` must not start 100,000 threads.
pub const MAX_WORKER_THREADS: usize = 64;

static LIVE_WORKERS: AtomicUsize = AtomicUsize::new(0);

/// A share of [`MAX_WORKER_THREADS`], given back when dropped.
struct WorkerBudget(usize);

impl WorkerBudget {
    fn take(wanted: usize) -> WorkerBudget {
        let mut got = 0;
        let _ = LIVE_WORKERS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |live| {
            got = wanted.min(MAX_WORKER_THREADS.saturating_sub(live));
            Some(live + got)
        });
        WorkerBudget(got)
    }
}

impl Drop for WorkerBudget {
    fn drop(&mut self) {
        LIVE_WORKERS.fetch_sub(self.0, Ordering::SeqCst);
    }
}

/// The result of an item whose closure failed.
#[derive(Debug, Clone)]
pub struct ItemError {
    pub index: INT,
    pub item: Dynamic,
    pub message: String,
}

/// Runs `work` on `n` scoped threads (it takes items from a shared queue until none is
/// left) and returns when all are done.
fn run_on(n: usize, work: impl Fn() + Sync) {
    std::thread::scope(|s| {
        let mut started = 0;
        for _ in 0..n {
            // Rhai recursion needs stack; give workers what the main thread has.
            let spawned = std::thread::Builder::new()
                .name("dockhand-parallel".into())
                .stack_size(8 << 20)
                .spawn_scoped(s, &work);
            if spawned.is_ok() {
                started += 1;
            }
        }
        if started == 0 {
            // No thread budget left, or the system refused new threads: still finish the
            // work, one at a time, on this thread.
            work();
        }
    });
}

/// The results in the order of `items`: a failed item becomes an [`ItemError`]; a stop
/// (Ctrl-C, `--timeout`) ends the whole call.
fn collect(items: &Array, results: Vec<Slot>) -> Result<Array, Box<EvalAltResult>> {
    let mut out = Array::with_capacity(items.len());
    for (i, slot) in results.into_iter().enumerate() {
        let r = slot
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| Err(terminated()));
        match r {
            Ok(v) => out.push(v),
            Err(e) if is_terminated(&e) => return Err(e),
            Err(e) => out.push(Dynamic::from(ItemError {
                index: i as INT,
                item: items[i].clone(),
                message: crate::diagnostic::message_of(&e),
            })),
        }
    }
    Ok(out)
}

#[export_module]
pub mod parallel_api {
    use super::*;

    pub type ItemError = super::ItemError;

    /// Calls `f(item)` for every item, at most `limit` at a time, and returns the results in
    /// the order of `items`. An item whose call throws yields an `ItemError` (test it with
    /// `is_error(r)`; read `r.message`, `r.item`, `r.index`) and the others carry on.
    ///
    /// State the workers need goes in **curried**, not captured:
    /// `parallel(svcs, 8, Fn("work").curry(o))` with `fn work(o, svc)`. A variable a closure
    /// captures is one value shared by every worker, and a method call on it
    /// (`o.journal.update(...)`) locks it for writing, which fails with "data race detected"
    /// when another worker holds it at that moment; a curried value is a copy per call
    /// (handles inside it, such as journals and semaphores, still share what they point to).
    #[rhai_fn(return_raw)]
    pub fn parallel(
        ctx: NativeCallContext,
        items: Array,
        limit: INT,
        f: FnPtr,
    ) -> Result<Array, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            if limit < 1 {
                return Err(invalid(format!(
                    "parallel limit must be at least 1, got {limit}"
                )));
            }
            if items.is_empty() {
                return Ok(Array::new());
            }
            let wanted = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .min(items.len());
            // Threads are capped for the whole process (nested `parallel` calls share the
            // budget); items beyond the workers wait in the queue. With no thread left,
            // the calling thread does the work itself.
            let workers = WorkerBudget::take(wanted);
            let token = cancel::current().unwrap_or_else(|| h.run_cancel().token().clone());
            #[allow(deprecated)]
            let store = ctx.store_data();
            let engine = ctx.engine();
            let next = AtomicUsize::new(0);
            let results: Vec<Slot> = items.iter().map(|_| Mutex::new(None)).collect();
            // Workers start on the caller's engine (`docker::use_engine`).
            let engine_name = crate::host::docker::engines::current_name();
            let work = || {
                let _current = cancel::enter(token.clone());
                let _engine = crate::host::docker::engines::enter(engine_name.clone());
                #[allow(deprecated)]
                let call_ctx = store.create_context(engine);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= items.len() {
                        break;
                    }
                    if token.is_cancelled() {
                        *super::super::lock(&results[i]) = Some(Err(terminated()));
                        continue;
                    }
                    let item = items[i].clone();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        f.call_raw(&call_ctx, None, [item])
                    }))
                    .unwrap_or_else(|_| {
                        Err(super::super::fail(
                            "internal error: a parallel worker panicked",
                        ))
                    });
                    *super::super::lock(&results[i]) = Some(r);
                }
            };
            run_on(workers.0, work);
            drop(workers);
            collect(&items, results)
        })
    }

    pub type Semaphore = super::Semaphore;

    /// A semaphore with `n` slots, to cap one stage of work running under `parallel`:
    /// `let builds = semaphore(5); parallel(svcs, 10, |s| { builds.run(|| build(s)); deploy(s) })`.
    #[rhai_fn(return_raw)]
    pub fn semaphore(n: INT) -> Result<Semaphore, Box<EvalAltResult>> {
        if n < 1 {
            return Err(invalid(format!(
                "a semaphore needs at least 1 slot, got {n}"
            )));
        }
        Ok(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX)))
    }

    /// Calls `f()` while holding one of the semaphore's slots (waiting for one if all are
    /// taken) and returns its result. The slot is given back even if `f` throws.
    //
    // A closure that *captures* the semaphore and calls `s.run(...)` on several workers gets
    // "data race detected": Rhai write-locks a captured variable that is the target of a
    // method call. Pass the semaphore in (a function parameter, or inside a map argument)
    // or write `run(s, || ...)`; both work on a copy, which shares the slots.
    #[rhai_fn(global, return_raw)]
    pub fn run(
        ctx: NativeCallContext,
        s: Semaphore,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        s.acquire()?;
        // Released on the way out even if the closure panics (a `parallel` worker catches
        // the panic and goes on): a lost slot would leave every later waiter blocked.
        struct Slot<'a>(&'a Semaphore);
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        let _slot = Slot(&s);
        f.call_raw(&ctx, None, [])
    }

    /// Free slots right now.
    #[rhai_fn(global, get = "available", pure)]
    pub fn available(s: &mut Semaphore) -> INT {
        *super::super::lock(&s.0.0) as INT
    }

    /// Total slots.
    #[rhai_fn(global, get = "size", pure)]
    pub fn size(s: &mut Semaphore) -> INT {
        s.0.2 as INT
    }

    /// True if `value` is an `ItemError` from `parallel`.
    pub fn is_error(value: Dynamic) -> bool {
        value.is::<ItemError>()
    }

    /// What went wrong.
    #[rhai_fn(global, get = "message", pure)]
    pub fn message(e: &mut ItemError) -> String {
        e.message.clone()
    }

    /// The item whose call failed.
    #[rhai_fn(global, get = "item", pure)]
    pub fn item(e: &mut ItemError) -> Dynamic {
        e.item.clone()
    }

    /// The item's position in `items`.
    #[rhai_fn(global, get = "index", pure)]
    pub fn index(e: &mut ItemError) -> INT {
        e.index
    }

    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(e: &mut ItemError) -> String {
        format!("error in item {}: {}", e.index, e.message)
    }
}

/// Built once per process: every engine shares it (building a plugin module costs more
/// than running a small script).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(parallel_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ItemError>("ItemError");
    engine.register_type_with_name::<Semaphore>("Semaphore");
    engine.register_global_module(MODULE.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_are_capped_for_the_whole_process() {
        let a = WorkerBudget::take(1_000_000);
        assert!(a.0 <= MAX_WORKER_THREADS);
        let b = WorkerBudget::take(1_000_000);
        assert!(a.0 + b.0 <= MAX_WORKER_THREADS);
        drop(a);
        drop(b);
    }
}
