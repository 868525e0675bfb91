//! `time::` — clocks, sleeps, and the three waiting patterns every runbook needs.
//!
//! Bash runbooks wait with fixed `sleep 30`s: too long when the service is quick, too short
//! when it is slow. These primitives wait for a *condition* instead, and every wait is
//! cancellable (Ctrl-C, `--timeout`) because it races the run's cancellation token.
//!
//! Durations are accepted everywhere as milliseconds (`1500`) or as text (`"30s"`, `"5m"`,
//! `"1h30m"`, `"250ms"`).
//!
//! ```rhai
//! let sw = time::stopwatch();
//! time::sleep("200ms");
//! let ms = time::wait_until(#{ timeout: "30s", interval: "500ms" }, || http::probe(url).ok);
//! let body = time::retry(#{ attempts: 5, backoff: "1s" }, || http::get(url).body);
//! let r = time::timeout("2s", || slow_step());
//! print(`took ${sw.ms} ms`);
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rhai::plugin::*;
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, INT, Map};

use super::{HostResult, fail, host, invalid, with_host};
use crate::cancel;

/// The longest duration a script (or a flag) may ask for: a year. Every duration enters
/// through [`to_duration`] or [`parse_duration`] and is checked against it, so no later
/// arithmetic (`Instant + d`, a retry's `backoff × factor`, tokio's timer wheel) can
/// overflow and panic, whatever number a script passes.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

fn over_range(what: &str) -> String {
    format!(
        "duration {what} is too long (at most {} days); a wait this long is a mistake — \
         check the unit (numbers are milliseconds)",
        MAX_DURATION.as_secs() / 86_400
    )
}

/// Parses a duration given as milliseconds or as text ("30s", "5m", "1h30m"). Negative,
/// NaN, infinite and over-range values ([`MAX_DURATION`]) are errors.
pub fn to_duration(value: &Dynamic) -> HostResult<Duration> {
    if let Ok(ms) = value.as_int() {
        let ms = u64::try_from(ms).map_err(|_| invalid(format!("duration {ms} is negative")))?;
        let d = Duration::from_millis(ms);
        if d > MAX_DURATION {
            return Err(invalid(over_range(&format!("{ms}ms"))));
        }
        return Ok(d);
    }
    if let Ok(f) = value.as_float() {
        if !f.is_finite() || f < 0.0 {
            return Err(invalid(format!(
                "duration {f} is not a finite, non-negative number"
            )));
        }
        return match Duration::try_from_secs_f64(f / 1000.0) {
            Ok(d) if d <= MAX_DURATION => Ok(d),
            _ => Err(invalid(over_range(&format!("{f}ms")))),
        };
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return parse_duration(&s).map_err(invalid);
    }
    Err(invalid(format!(
        "expected a duration (milliseconds or text like \"30s\"), got {}",
        value.type_name()
    )))
}

/// Parses "30s", "5m", "1h30m", "250ms", or a bare number of milliseconds, up to
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if let Ok(ms) = t.parse::<u64>() {
        Duration::from_millis(ms)
    } else {
        humantime::parse_duration(t).map_err(|e| {
            format!(
                "'{s}' is not a duration ({e}); write it like \"500ms\", \"30s\", \"5m\" or \"1h30m\""
            )
        })?
    };
    if d > MAX_DURATION {
        return Err(over_range(&format!("'{s}'")));
    }
    Ok(d)
}

/// `wait × factor`, capped at `max` (never overflows: both are at most [`MAX_DURATION`]).
pub fn grow(wait: Duration, factor: f64, max: Duration) -> Duration {
    Duration::try_from_secs_f64(wait.as_secs_f64() * factor)
        .unwrap_or(MAX_DURATION)
        .min(max)
}

fn ms_int(d: Duration) -> INT {
    INT::try_from(d.as_millis()).unwrap_or(INT::MAX)
}

pub use crate::util::human::duration as human;

/// True when `err` (or the error it wraps) is a cancellation.
pub fn is_terminated(err: &EvalAltResult) -> bool {
    match err {
        EvalAltResult::ErrorTerminated(..) => true,
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => is_terminated(inner),
        _ => false,
    }
}

fn opt_duration(opts: &Map, keys: &[&str], default: Duration) -> HostResult<Duration> {
    for k in keys {
        if let Some(v) = opts.get(*k) {
            return to_duration(v).map_err(|e| {
                invalid(format!(
                    "option '{k}': {}",
                    crate::diagnostic::message_of(&e)
                ))
            });
        }
    }
    Ok(default)
}

/// A running stopwatch (see `time::stopwatch`).
#[derive(Debug, Clone)]
pub struct Stopwatch {
    start: Instant,
    lap: Instant,
}

#[export_module]
pub mod time_api {
    use super::*;

    pub type Stopwatch = super::Stopwatch;

    /// Milliseconds since the Unix epoch (wall clock).
    pub fn now() -> INT {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(ms_int)
            .unwrap_or(0)
    }

    /// Milliseconds this process's runs have spent blocked in host calls — waiting on
    /// Docker, HTTP, sleeps — with the waits of parallel workers counted once. A run's wall
    /// time minus this is dockhand's own overhead.
    #[rhai_fn(return_raw)]
    pub fn waiting_ms(ctx: NativeCallContext) -> Result<INT, Box<EvalAltResult>> {
        let h = super::host(&ctx)?;
        Ok(INT::try_from(h.waiting().as_millis()).unwrap_or(INT::MAX))
    }

    /// The current time as RFC 3339 text in UTC, e.g. `2026-02-04T14:00:00.123Z`.
    pub fn now_iso() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }

    /// Milliseconds elapsed since `since`, a value from `time::now()`.
    pub fn elapsed(since: INT) -> INT {
        (now() - since).max(0)
    }

    /// Converts a duration (milliseconds, or text like "30s", "5m", "1h30m") to milliseconds.
    /// Errors on text that is not a duration, so typos in configs are caught.
    #[rhai_fn(return_raw)]
    pub fn duration(ctx: NativeCallContext, d: Dynamic) -> Result<INT, Box<EvalAltResult>> {
        super::super::at(ctx.call_position(), move || to_duration(&d).map(ms_int))
    }

    /// Formats milliseconds for humans: `850ms`, `2.5s`, `3m 10s`.
    pub fn format(ms: INT) -> String {
        human(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Sleeps for a duration (ms or "30s"). Ctrl-C and `--timeout` interrupt it at once.
    /// Prefer `time::wait_until` when you are really waiting for something to happen.
    #[rhai_fn(return_raw)]
    pub fn sleep(ctx: NativeCallContext, d: Dynamic) -> Result<(), Box<EvalAltResult>> {
        super::super::at(ctx.call_position(), move || {
            let d = to_duration(&d)?;
            host(&ctx)?.sleep(d)
        })
    }

    /// Starts a stopwatch. Read `sw.ms` for the milliseconds since start, `sw.lap()` for the
    /// milliseconds since the previous lap (or the start).
    pub fn stopwatch() -> Stopwatch {
        let now = Instant::now();
        Stopwatch {
            start: now,
            lap: now,
        }
    }

    /// Milliseconds since the stopwatch started.
    #[rhai_fn(global, get = "ms", pure)]
    pub fn sw_ms(sw: &mut Stopwatch) -> INT {
        ms_int(sw.start.elapsed())
    }

    /// Milliseconds since the previous lap (or the start), and starts a new lap.
    #[rhai_fn(global, name = "lap")]
    pub fn sw_lap(sw: &mut Stopwatch) -> INT {
        let now = Instant::now();
        let ms = ms_int(now - sw.lap);
        sw.lap = now;
        ms
    }

    /// Restarts the stopwatch from zero.
    #[rhai_fn(global, name = "reset")]
    pub fn sw_reset(sw: &mut Stopwatch) {
        let now = Instant::now();
        sw.start = now;
        sw.lap = now;
    }

    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn sw_to_string(sw: &mut Stopwatch) -> String {
        format!("stopwatch({})", human(sw.start.elapsed()))
    }

    /// Runs `f` and returns its result, or fails with "timed out after …" if it takes longer
    /// than `limit` (ms or "30s"). Both a busy loop and a blocked host call inside `f` are
    /// stopped. The failure can be caught with `try`/`catch`.
    #[rhai_fn(return_raw)]
    pub fn timeout(
        ctx: NativeCallContext,
        limit: Dynamic,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let limit = to_duration(&limit)?;
            let parent = cancel::current().unwrap_or_else(|| h.run_cancel().token().clone());
            let child = parent.child_token();
            let timer = {
                let child = child.clone();
                h.handle.spawn(async move {
                    tokio::time::sleep(limit).await;
                    child.cancel();
                })
            };
            let result = {
                let _current = cancel::enter(child.clone());
                f.call_raw(&ctx, None, [])
            };
            timer.abort();
            match result {
                Err(e) if is_terminated(&e) && !parent.is_cancelled() && child.is_cancelled() => {
                    Err(fail(format!("timed out after {}", human(limit))))
                }
                other => other,
            }
        })
    }

    /// Calls `f` until it succeeds (does not throw), at most `attempts` times, sleeping
    /// between attempts. Options: `attempts` (default 3), `backoff` or `backoff_ms` (first
    /// wait, default 500 ms), `factor` (growth per attempt, default 2.0), `max_backoff`
    /// (default 30 s). Returns `f`'s result; after the last attempt fails, fails with
    /// "gave up after N attempts: <last error>".
    #[rhai_fn(return_raw)]
    pub fn retry(
        ctx: NativeCallContext,
        opts: Map,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let attempts = match opts.get("attempts") {
                None => 3,
                Some(v) => v
                    .as_int()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("option 'attempts' must be a whole number ≥ 1"))?,
            };
            let mut wait = opt_duration(
                &opts,
                &["backoff", "backoff_ms"],
                Duration::from_millis(500),
            )?;
            let max_wait = opt_duration(
                &opts,
                &["max_backoff", "max_backoff_ms"],
                Duration::from_secs(30),
            )?;
            let factor = match opts.get("factor") {
                None => 2.0,
                Some(v) => v
                    .as_float()
                    .or_else(|_| v.as_int().map(|i| i as f64))
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 1.0 && *f <= 1000.0)
                    .ok_or_else(|| invalid("option 'factor' must be a number from 1.0 to 1000"))?,
            };
            let mut last = String::new();
            for attempt in 1..=attempts {
                match f.call_raw(&ctx, None, []) {
                    Ok(v) => return Ok(v),
                    Err(e) if is_terminated(&e) => return Err(e),
                    Err(e) => {
                        last = crate::diagnostic::message_of(&e);
                        if attempt < attempts {
                            tracing::debug!(
                                "retry: attempt {attempt}/{attempts} failed: {last}; next in {}",
                                human(wait)
                            );
                            h.sleep(wait)?;
                            wait = grow(wait, factor, max_wait);
                        }
                    }
                }
            }
            Err(fail(format!("gave up after {attempts} attempts: {last}")))
        })
    }

    /// Calls `f` every `interval` until it returns `true`, and returns the milliseconds it
    /// took. Fails with "condition not met within …" (naming the last error `f` threw, if
    /// any) after `timeout`. Options: `timeout`/`timeout_ms` (default 30 s),
    /// `interval`/`interval_ms` (default 1 s). An error thrown by `f` counts as "not yet".
    #[rhai_fn(return_raw)]
    pub fn wait_until(
        ctx: NativeCallContext,
        opts: Map,
        f: FnPtr,
    ) -> Result<INT, Box<EvalAltResult>> {
        with_host(&ctx, |h| {
            let limit = opt_duration(&opts, &["timeout", "timeout_ms"], Duration::from_secs(30))?;
            let interval =
                opt_duration(&opts, &["interval", "interval_ms"], Duration::from_secs(1))?;
            let start = Instant::now();
            let mut tries = 0u64;
            let mut last_err = None;
            loop {
                tries += 1;
                match f.call_raw(&ctx, None, []) {
                    Ok(v) => match v.as_bool() {
                        Ok(true) => return Ok(ms_int(start.elapsed())),
                        Ok(false) => {}
                        Err(t) => {
                            return Err(invalid(format!(
                                "the wait_until condition must return true or false, it returned {t}"
                            )));
                        }
                    },
                    Err(e) if is_terminated(&e) => return Err(e),
                    Err(e) => last_err = Some(crate::diagnostic::message_of(&e)),
                }
                let spent = start.elapsed();
                if spent >= limit {
                    let why = last_err
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default();
                    return Err(fail(format!(
                        "condition not met within {} ({tries} checks){why}",
                        human(limit)
                    )));
                }
                h.sleep(interval.min(limit - spent))?;
            }
        })
    }
}

/// Built once per process: every engine shares it (building a plugin module costs more
/// than running a small script).
static MODULE: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
    std::sync::LazyLock::new(|| exported_module!(time_api).into());

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Stopwatch>("Stopwatch");
    engine.register_static_module("time", MODULE.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_extreme_number_is_a_clear_error_not_a_panic() {
        for v in [
            Dynamic::from_float(1e300),
            Dynamic::from_float(f64::INFINITY),
            Dynamic::from_float(f64::NAN),
            Dynamic::from_float(-1.0),
            Dynamic::from_int(-5),
            Dynamic::from_int(INT::MAX),
            Dynamic::from("99999999999999999999999h"),
            Dynamic::from("100000000h"),
        ] {
            let e = to_duration(&v).unwrap_err();
            assert!(
                crate::diagnostic::Fault::of(&e) == Some(crate::diagnostic::Fault::InvalidArgument),
                "{v:?}: {e}"
            );
        }
        assert_eq!(
            to_duration(&Dynamic::from("1h30m")).unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            to_duration(&Dynamic::from_float(1.5)).unwrap(),
            Duration::from_micros(1500)
        );
    }

    #[test]
    fn backoff_growth_saturates_at_the_cap() {
        let max = Duration::from_secs(30);
        assert_eq!(grow(MAX_DURATION, 1000.0, max), max);
        assert_eq!(
            grow(Duration::from_secs(1), 2.0, max),
            Duration::from_secs(2)
        );
    }
}
