//! Option maps to the typed arguments of `crate::docker`: every key checked (an unknown one
//! is an error naming the known ones), every value of the type it must have.

use std::time::Duration;

use rhai::Map;

use super::project;
use crate::docker::Filter;
use crate::docker::engine::LogQuery;
use crate::host::time::to_duration;
use crate::host::{HostCtx, HostResult, invalid};

pub(super) fn opt_str(opts: &Map, key: &str) -> Option<String> {
    opts.get(key)
        .filter(|v| !v.is_unit())
        .map(|v| v.to_string())
}

pub(super) fn opt_bool(opts: &Map, key: &str) -> bool {
    opts.get(key)
        .and_then(|v| v.as_bool().ok())
        .unwrap_or(false)
}

pub(super) fn check_keys(opts: &Map, known: &[&str], what: &str) -> HostResult<()> {
    for k in opts.keys() {
        if !known.contains(&k.as_str()) {
            return Err(invalid(format!(
                "unknown {what} option '{k}' (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// `docker::ps`'s filter from its options.
pub(super) fn ps_filter(h: &HostCtx, opts: &Map) -> HostResult<Filter> {
    check_keys(opts, &["project", "service", "category", "all"], "ps")?;
    Ok(Filter {
        project: match opt_str(opts, "project") {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(p),
            None => project(h),
        },
        service: opt_str(opts, "service"),
        category: opt_str(opts, "category"),
        all: opt_bool(opts, "all"),
    })
}

/// `docker::logs`'s query from its options.
pub(super) fn log_query(opts: &Map) -> HostResult<LogQuery> {
    check_keys(opts, &["tail", "since", "grep"], "logs")?;
    let tail = match opts.get("tail") {
        None => Some(100),
        Some(t) => match t.as_int() {
            Ok(0) => None,
            Ok(n) if n > 0 => Some(n as u64),
            _ => return Err(invalid("logs option 'tail' must be a whole number ≥ 0")),
        },
    };
    let since = match opts.get("since") {
        None => 0,
        Some(s) if s.is_int() => s.as_int().unwrap_or(0),
        Some(s) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.saturating_sub(to_duration(s)?).as_secs() as i64
        }
    };
    Ok(LogQuery {
        tail,
        since,
        grep: opt_str(opts, "grep"),
    })
}

/// `wait_healthy`'s options: (timeout, through_unhealthy).
pub(super) fn wait_options(opts: &Map) -> HostResult<(Duration, bool)> {
    let known = ["timeout", "timeout_ms", "through_unhealthy"];
    check_keys(opts, &known, "wait_healthy")?;
    let mut timeout = Duration::from_secs(60);
    for k in ["timeout", "timeout_ms"] {
        if let Some(v) = opts.get(k) {
            timeout = to_duration(v)?;
        }
    }
    Ok((timeout, opt_bool(opts, "through_unhealthy")))
}
