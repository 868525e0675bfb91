//! Start-up phase timestamps, for finding where a slow start comes from.
//!
//! Every `dockhand run`, `check`, `validate`, watch re-run and CI step pays the start-up
//! cost, so it has a budget (`cargo bench --bench runtime`). When a change makes it grow, the
//! total alone does not say why; these marks do. With `DOCKHAND_STARTUP_TRACE` set, each
//! phase prints one line on stderr as it is reached:
//!
//! ```text
//! startup: main 0.41 ms
//! startup: cli-parsed 0.52 ms
//! ...
//! ```
//!
//! The time is counted from the instant given in the variable when it is a Unix time in
//! nanoseconds (`DOCKHAND_STARTUP_TRACE=$(date +%s%N) dockhand ...`; the runtime bench sets
//! it just before it spawns the process), so the `main` line shows what exec, loading and
//! relocating the binary cost before any of dockhand's code ran. With any other value
//! (`=1`) it is counted from the start of `main`.
//!
//! Off (the variable unset), a mark is one relaxed atomic load: the marks can stay on hot
//! paths such as the first host call.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The name of the environment variable that turns the marks on.
pub const ENV: &str = "DOCKHAND_STARTUP_TRACE";

static ON: AtomicBool = AtomicBool::new(false);
static ORIGIN: OnceLock<Origin> = OnceLock::new();

enum Origin {
    /// Wall-clock instant given by the caller (Unix time).
    Wall(Duration),
    /// The start of `main`.
    Main(Instant),
}

/// Reads [`ENV`] and, when it is set, prints the `main` mark. Call it first in `main`; the
/// other marks print nothing until it ran.
pub fn init() {
    let Some(v) = std::env::var_os(ENV) else {
        return;
    };
    let origin = match v.to_str().and_then(|s| s.trim().parse::<u64>().ok()) {
        // Anything below 1e15 ns (1970-01-12) is not a timestamp but a plain "on".
        Some(ns) if ns > 1_000_000_000_000_000 => Origin::Wall(Duration::from_nanos(ns)),
        _ => Origin::Main(Instant::now()),
    };
    let _ = ORIGIN.set(origin);
    ON.store(true, Ordering::Relaxed);
    mark("main");
}

/// Whether the marks print (the variable was set when [`init`] ran).
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Prints `startup: PHASE MS ms` on stderr when tracing is on.
#[inline]
pub fn mark(phase: &str) {
    if enabled() {
        print_mark(phase);
    }
}

/// Like [`mark`], but only the first time `once` is passed (for "first host call").
#[inline]
pub fn mark_once(once: &AtomicBool, phase: &str) {
    if enabled() && !once.swap(true, Ordering::Relaxed) {
        print_mark(phase);
    }
}

#[cold]
fn print_mark(phase: &str) {
    let ms = match ORIGIN.get() {
        Some(Origin::Wall(t0)) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(*t0),
        Some(Origin::Main(t0)) => t0.elapsed(),
        None => return,
    };
    let _ = writeln!(
        std::io::stderr(),
        "startup: {phase} {:.3} ms",
        ms.as_secs_f64() * 1e3
    );
}

/// Parses one `startup: PHASE MS ms` line (for the bench and tests).
pub fn parse_line(line: &str) -> Option<(&str, f64)> {
    let rest = line.strip_prefix("startup: ")?;
    let mut parts = rest.split_whitespace();
    let phase = parts.next()?;
    let ms = parts.next()?.parse().ok()?;
    (parts.next() == Some("ms")).then_some((phase, ms))
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn parses_a_mark_and_rejects_other_lines() {
        assert_eq!(parse_line("startup: main 0.412 ms"), Some(("main", 0.412)));
        assert_eq!(parse_line("startup: main x ms"), None);
        assert_eq!(parse_line("hello"), None);
        assert_eq!(parse_line("startup: main 1.0"), None);
    }
}
