//! Builds the `rhai::Engine` every dockhand script runs in.
//!
//! The choices here are the runtime's safety net:
//! * **Limits** on operations, call depth and expression depth, and a **memory budget** for
//!   the data a run builds, so a runaway script fails with a clear error instead of eating
//!   the machine. The budget is counted at the allocator (see [`crate::memory`]) and checked
//!   between operations, at a cost that does not grow with the data. Rhai's own per-value
//!   limits (`set_max_array_size`, ...) are off: they re-measure a whole array or map after
//!   every change, which made building N rows O(N²), and missed growth in place.
//! * **Cancellation** through `on_progress`: the hook polls this thread's cancellation token,
//!   so Ctrl-C and `--timeout` stop even `loop {}` (checked every 256 operations, i.e. a few
//!   microseconds apart).
//! * **Strict variables**: a misspelled variable is a compile error that `dockhand check`
//!   reports before anything runs.
//! * **`print`/`debug` go to `tracing`**, so they obey `-q`/`-v` and `--log-format json`.

use std::sync::{Arc, LazyLock};

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, INT, ImmutableString, OptimizationLevel};

use crate::host::{self, HostCtx};
use crate::memory::{self, Budget};
use crate::resolver::Resolver;

/// Safety limits for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum operations per run (0 = unlimited).
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    /// Heap bytes the scripts of a runtime may hold (0 = unlimited): `--max-memory`.
    pub max_memory: usize,
}

/// The default `--max-memory`: room for a day of one-second points in several series as
/// Rhai maps (100k rows take about 60 MiB), well under the RAM of a small machine.
pub const DEFAULT_MAX_MEMORY: usize = 1024 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000_000,
            max_call_levels: 64,
            max_expr_depth: 128,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

pub use crate::diagnostic::LimitExceeded;

fn memory_message(limit: usize) -> LimitExceeded {
    LimitExceeded(format!(
        "the run used more than {} of memory for script data; raise --max-memory \
         (e.g. --max-memory 4GiB, 0 = no limit) if the data really is that big",
        memory::human(limit)
    ))
}

fn memory_exceeded(limit: usize) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(memory_message(limit)), rhai::Position::NONE)
        .into()
}

/// Checks, before it is allocated, a size a script asks for in one call (`pad`, `blob(n)`):
/// the between-operations check would only see it once allocated, and an allocation the
/// machine cannot satisfy aborts the process.
#[derive(Clone, Copy)]
struct Reserve {
    budget: Option<Budget>,
    limit: usize,
}

impl Reserve {
    fn check(&self, bytes: usize) -> Result<(), Box<EvalAltResult>> {
        let free = match self.budget {
            Some(b) => b.remaining(),
            None if self.limit > 0 => self.limit,
            None => return Ok(()),
        };
        if bytes > free {
            Err(memory_exceeded(self.limit))
        } else {
            Ok(())
        }
    }
}

/// A shallow estimate of the heap bytes of one copy of `v` (for `pad`); exact enough to
/// refuse a request that cannot fit, cheap enough not to walk nested data.
fn shallow_size(v: &Dynamic) -> usize {
    let per = std::mem::size_of::<Dynamic>();
    if let Some(s) = v.read_lock::<ImmutableString>() {
        s.len()
    } else if let Some(a) = v.read_lock::<Array>() {
        a.len() * per
    } else if let Some(b) = v.read_lock::<Blob>() {
        b.len()
    } else if let Some(m) = v.read_lock::<rhai::Map>() {
        m.len() * (per + 48)
    } else {
        0
    }
}

fn want(len: INT) -> usize {
    usize::try_from(len).unwrap_or(0)
}

/// Rhai's `pad` and `blob` with the size checked against the budget first. The engine's own
/// functions are searched before its packages, so these replace the standard ones.
fn register_sized(engine: &mut Engine, r: Reserve) {
    register_string_pads(engine, r);
    register_blobs(engine, r);
}

const CHECKED: &str =
    "/// The size asked for is checked against `--max-memory` before anything is allocated.";

/// `pad` for arrays and strings.
fn register_string_pads(engine: &mut Engine, r: Reserve) {
    use rhai::FuncRegistration as F;
    F::new("pad")
        .with_comments([
            "/// Pads the array with copies of `item` up to `len` elements.",
            CHECKED,
        ])
        .register_into_engine(
            engine,
            move |a: &mut Array, len: INT, item: Dynamic| -> Result<(), Box<EvalAltResult>> {
                let len = want(len);
                if len > a.len() {
                    let each = std::mem::size_of::<Dynamic>() + shallow_size(&item);
                    r.check((len - a.len()).saturating_mul(each))?;
                    a.resize(len, item);
                }
                Ok(())
            },
        );
    F::new("pad")
        .with_comments([
            "/// Pads the string with `c` up to `len` characters.",
            CHECKED,
        ])
        .register_into_engine(
            engine,
            move |s: &mut ImmutableString, len: INT, c: char| -> Result<(), Box<EvalAltResult>> {
                let len = want(len);
                let have = s.chars().count();
                if len > have {
                    r.check((len - have).saturating_mul(c.len_utf8()))?;
                    let p = s.make_mut();
                    p.extend(std::iter::repeat_n(c, len - have));
                }
                Ok(())
            },
        );
    F::new("pad")
        .with_comments([
            "/// Pads the string with repeats of `pad` up to `len` characters (an empty `pad` does nothing).",
            CHECKED,
        ])
        .register_into_engine(
        engine,
        move |s: &mut ImmutableString, len: INT, pad: &str| -> Result<(), Box<EvalAltResult>> {
            let len = want(len);
            let have = s.chars().count();
            // An empty padding would never reach `len` (Rhai's own loops forever).
            if len > have && !pad.is_empty() {
                let per_char = pad.len().div_ceil(pad.chars().count());
                r.check((len - have).saturating_mul(per_char))?;
                let p = s.make_mut();
                p.extend(pad.chars().cycle().take(len - have));
            }
            Ok(())
        },
    );
}

/// `pad` for BLOBs and the `blob` constructors.
fn register_blobs(engine: &mut Engine, r: Reserve) {
    use rhai::FuncRegistration as F;
    F::new("pad")
        .with_comments([
            "/// Pads the BLOB with the byte `value` up to `len` bytes.",
            CHECKED,
        ])
        .register_into_engine(
            engine,
            move |b: &mut Blob, len: INT, value: INT| -> Result<(), Box<EvalAltResult>> {
                let len = want(len);
                if len > b.len() {
                    r.check(len - b.len())?;
                    b.resize(len, (value & 0xff) as u8);
                }
                Ok(())
            },
        );
    F::new("blob")
        .with_comments(["/// A new BLOB of `len` bytes, each `value`.", CHECKED])
        .register_into_engine(
            engine,
            move |len: INT, value: INT| -> Result<Blob, Box<EvalAltResult>> {
                let len = want(len);
                r.check(len)?;
                Ok(vec![(value & 0xff) as u8; len])
            },
        );
    F::new("blob")
        .with_comments(["/// A new BLOB of `len` zero bytes.", CHECKED])
        .register_into_engine(
            engine,
            move |len: INT| -> Result<Blob, Box<EvalAltResult>> {
                let len = want(len);
                r.check(len)?;
                Ok(vec![0; len])
            },
        );
}

/// An engine with the host modules but no host context: enough to compile a script and read
/// its parameters (strict mode needs the module names), not to run host calls.
pub fn bare(limits: &Limits) -> Engine {
    // `Engine::new` would build Rhai's standard library afresh; sharing one copy makes a new
    // engine cost microseconds, which matters for `dockhand run` start-up and for the REPL.
    // Building that copy is still the largest start-up cost: 2.1 M of the 4.7 M instructions
    // of a print-only run (callgrind) with every integer type, less since Rhai's `only_i64`
    // (Cargo.toml: scripts only ever see `i64`; the u8..u128 operator and conversion sets
    // went, print-only 4.91 M -> 4.07 M). Rhai's `new_lazy()` skips the build, but then the
    // first call of each function in every evaluation scans the manifest entries: measured,
    // a print-only run drops to 3.0 M instructions while `playbooks/hello.rhai` only goes
    // from 6.6 M to 6.2 M, and a playbook calling more distinct functions would lose. Not taken.
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
    // No per-value size limits (see the module comment): the memory budget replaces them.
    host::register_all(&mut engine);
    crate::startup::mark("engine-ready");
    engine
}

/// The full engine: host modules, resolver, cancellation, output routing.
pub fn build(ctx: Arc<HostCtx>, resolver: Arc<Resolver>, limits: &Limits) -> Engine {
    let mut engine = bare(limits);
    engine.set_module_resolver(ResolverRef(resolver));
    engine.set_default_tag(Dynamic::from(ctx));
    // The budget counts from here: what the process holds before its first run (the async
    // runtime, the engine, compiled scripts) is not script data.
    let budget = Budget::start(limits.max_memory);
    register_sized(
        &mut engine,
        Reserve {
            budget,
            limit: limits.max_memory,
        },
    );
    engine.on_progress(move |ops| {
        // One relaxed atomic load per operation: the cost does not depend on the data.
        if let Some(b) = budget
            && b.exceeded()
        {
            return Some(Dynamic::from(memory_message(b.limit())));
        }
        if ops & 0xff == 0 && crate::cancel::current_is_cancelled() {
            Some(Dynamic::from("cancelled"))
        } else {
            None
        }
    });
    engine.on_print(|text| {
        static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        crate::startup::mark_once(&FIRST, "first-print");
        // A script may print what it fetched (an error body, a URL): secrets never show.
        let text = crate::secrets::scrub(text);
        tracing::info!(target: "script", "{text}")
    });
    engine.on_debug(|text, source, pos| {
        let text = crate::secrets::scrub(text);
        match (source, pos.line()) {
            (Some(src), Some(line)) => tracing::debug!(target: "script", "{src}:{line}: {text}"),
            (None, Some(line)) => tracing::debug!(target: "script", "line {line}: {text}"),
            _ => tracing::debug!(target: "script", "{text}"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear time: Rhai re-measures a whole value after each change only when a per-value
    /// size limit is set; none is, so `push`/`m[k] = v` never walk the data.
    #[test]
    fn no_limit_walks_values() {
        let e = bare(&Limits::default());
        assert_eq!(e.max_array_size(), 0);
        assert_eq!(e.max_map_size(), 0);
        assert_eq!(e.max_string_size(), 0);
    }

    /// The lib's tests count allocations (lib.rs), so the budget is live here. The count is
    /// process-wide and other tests run alongside: a small budget is only used where an
    /// error is expected anyway.
    #[test]
    fn budget_stops_in_place_growth() {
        let rt = crate::Runtime::builder()
            .limits(Limits {
                max_memory: 8 << 20,
                ..Limits::default()
            })
            .build()
            .unwrap();
        let e = rt
            .eval("let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }")
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("more than 8 MiB"), "{e}");
        let e = rt.eval("blob(1 << 40)").unwrap_err();
        assert!(e.to_string().contains("--max-memory"), "{e}");
        // Rhai's own `pad` loops forever on an empty padding; ours does nothing.
        let rt = crate::Runtime::builder().build().unwrap();
        let v = rt.eval("let s = \"ab\"; s.pad(1 << 40, \"\"); s").unwrap();
        assert_eq!(v.into_string().unwrap(), "ab");
    }
}
