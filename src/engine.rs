//! Builds the `rhai::Engine` every dockhand script runs in.
//!
//! The choices here are the runtime's safety net:
//! * **Limits** on operations, call depth, expression depth and data sizes, so a runaway
//!   script fails with a clear error instead of eating the machine.
//! * **Cancellation** through `on_progress`: the hook polls this thread's cancellation token,
//!   so Ctrl-C and `--timeout` stop even `loop {}` (checked every 256 operations, i.e. a few
//!   microseconds apart).
//! * **Strict variables**: a misspelled variable is a compile error that `dockhand check`
//!   reports before anything runs.
//! * **`print`/`debug` go to `tracing`**, so they obey `-q`/`-v` and `--log-format json`.

use std::sync::{Arc, LazyLock};

use rhai::{Dynamic, Engine, OptimizationLevel};

use crate::host::{self, HostCtx};
use crate::resolver::Resolver;

/// Safety limits for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum operations per run (0 = unlimited).
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000_000,
            max_call_levels: 64,
            max_expr_depth: 128,
            max_string_size: 64 * 1024 * 1024,
            max_array_size: 1_000_000,
            max_map_size: 100_000,
        }
    }
}

/// An engine with the host modules but no host context: enough to compile a script and read
/// its parameters (strict mode needs the module names), not to run host calls.
pub fn bare(limits: &Limits) -> Engine {
    // `Engine::new` would build Rhai's standard library afresh; sharing one copy makes a new
    // engine cost microseconds, which matters for `dockhand run` start-up and for the REPL.
    // Building that copy is still the largest start-up cost: 2.1 M of the 4.7 M instructions
    // of a print-only run (callgrind). Rhai's `new_lazy()` skips it, but then the first call
    // of each function in every evaluation scans the ~800 manifest entries: measured, a
    // print-only run drops to 3.0 M instructions while `playbooks/hello.rhai` only goes from
    // 6.6 M to 6.2 M, and a playbook calling more distinct functions would lose. Not taken.
    static STD: LazyLock<rhai::Shared<rhai::Module>> = LazyLock::new(|| {
        use rhai::packages::Package;
        rhai::packages::StandardPackage::new().as_shared_module()
    });
    let mut engine = Engine::new_raw();
    engine.register_global_module(STD.clone());
    engine.set_optimization_level(OptimizationLevel::Simple);
    engine.set_strict_variables(true);
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth / 2);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    host::register_all(&mut engine);
    crate::startup::mark("engine-ready");
    engine
}

/// The full engine: host modules, resolver, cancellation, output routing.
pub fn build(ctx: Arc<HostCtx>, resolver: Arc<Resolver>, limits: &Limits) -> Engine {
    let mut engine = bare(limits);
    engine.set_module_resolver(ResolverRef(resolver));
    engine.set_default_tag(Dynamic::from(ctx));
    engine.on_progress(|ops| {
        if ops & 0xff == 0 && crate::cancel::current_is_cancelled() {
            Some(Dynamic::from("cancelled"))
        } else {
            None
        }
    });
    engine.on_print(|text| {
        static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        crate::startup::mark_once(&FIRST, "first-print");
        tracing::info!(target: "script", "{text}")
    });
    engine.on_debug(|text, source, pos| match (source, pos.line()) {
        (Some(src), Some(line)) => tracing::debug!(target: "script", "{src}:{line}: {text}"),
        (None, Some(line)) => tracing::debug!(target: "script", "line {line}: {text}"),
        _ => tracing::debug!(target: "script", "{text}"),
    });
    engine
}

/// Lets the runtime keep a handle on the resolver it gave the engine.
struct ResolverRef(Arc<Resolver>);

impl rhai::ModuleResolver for ResolverRef {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: rhai::Position,
    ) -> Result<rhai::Shared<rhai::Module>, Box<rhai::EvalAltResult>> {
        self.0.resolve(engine, source, path, pos)
    }
}
