//! `check(name, condition)` — named pass/fail results, the unit of a validation.
//!
//! Teams write validations as a list of checks rather than as scripts that stop at the first
//! problem: every check runs, each is recorded with its reason and location, and the run ends
//! with a table and exit code 1 if any failed. `condition` is a boolean, or a closure that
//! returns one — a closure that *throws* is a failed check whose reason is the error, so one
//! unreachable service does not hide the results of the rest.
//!
//! ```rhai
//! check("data-api healthy", http::probe("http://localhost:8006/health").ok);
//! check("no restarts", || restarts == 0, `restarted ${restarts} times`);
//! check("influx has data", || {
//!     let n = count_points();
//!     #{ ok: n > 0, reason: `${n} points in the last hour` }
//! });
//! ```

use std::time::Instant;

use rhai::plugin::*;
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map};

use super::time::is_terminated;
use super::{CheckResult, host, invalid};

fn evaluate(ctx: &NativeCallContext, cond: &Dynamic) -> Result<(bool, String), Box<EvalAltResult>> {
    if let Ok(b) = cond.as_bool() {
        return Ok((b, String::new()));
    }
    if let Some(f) = cond.read_lock::<FnPtr>().map(|f| f.clone()) {
        return match f.call_raw(ctx, None, []) {
            Ok(v) => interpret(&v),
            Err(e) if is_terminated(&e) => Err(e),
            Err(e) => Ok((false, crate::diagnostic::message_of(&e))),
        };
    }
    interpret(cond)
}

fn interpret(v: &Dynamic) -> Result<(bool, String), Box<EvalAltResult>> {
    if let Ok(b) = v.as_bool() {
        return Ok((b, String::new()));
    }
    if let Some(m) = v.read_lock::<Map>() {
        let ok = m
            .get("ok")
            .and_then(|o| o.as_bool().ok())
            .ok_or_else(|| invalid("a check result map needs a boolean 'ok' field"))?;
        let reason = m.get("reason").map(|r| r.to_string()).unwrap_or_default();
        return Ok((ok, reason));
    }
    Err(invalid(format!(
        "check condition must be true/false, a map #{{ok, reason}}, or a closure returning one; got {}",
        v.type_name()
    )))
}

fn record(
    ctx: &NativeCallContext,
    name: &str,
    cond: Dynamic,
    reason: Option<&str>,
) -> Result<bool, Box<EvalAltResult>> {
    let h = host(ctx)?;
    let start = Instant::now();
    let (ok, mut why) = evaluate(ctx, &cond)?;
    if !ok && why.is_empty() {
        why = reason.unwrap_or("condition was false").to_string();
    }
    let pos = ctx.call_position();
    let location = match (ctx.call_source(), pos.line()) {
        (Some(src), Some(line)) => format!("{src}:{line}"),
        (None, Some(line)) => format!("line {line}"),
        _ => String::new(),
    };
    if ok {
        tracing::info!(target: "dockhand::check", "✓ {name}");
    } else {
        tracing::warn!(target: "dockhand::check", "✗ {name}: {why}");
    }
    h.record_check(CheckResult {
        name: name.to_string(),
        ok,
        reason: why,
        ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        location,
    });
    Ok(ok)
}

#[export_module]
pub mod check_api {
    use super::*;

    /// Records a named check and returns whether it passed. `condition` is a bool, a map
    /// `#{ok, reason}`, or a closure returning either (a closure that throws fails the check
    /// with the error as reason). Any failed check makes the run exit with code 1.
    #[rhai_fn(return_raw)]
    pub fn check(
        ctx: NativeCallContext,
        name: &str,
        condition: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        super::super::at(ctx.call_position(), move || {
            record(&ctx, name, condition, None)
        })
    }

    /// Like `check(name, condition)`, with the reason to report when it fails.
    #[rhai_fn(name = "check", return_raw)]
    pub fn check_with_reason(
        ctx: NativeCallContext,
        name: &str,
        condition: Dynamic,
        reason: &str,
    ) -> Result<bool, Box<EvalAltResult>> {
        super::super::at(ctx.call_position(), move || {
            record(&ctx, name, condition, Some(reason))
        })
    }
}

/// Built once per process: every engine shares it (building a plugin module costs more
/// than running a small script).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(check_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_global_module(MODULE.clone());
}
