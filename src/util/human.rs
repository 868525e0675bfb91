//! Durations and sizes written for people, in the few shapes dockhand prints.

use std::time::Duration;

/// A duration in messages and tables: `850ms`, `2.5s`, `3m 10s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m {}s", s / 60, s % 60)
    }
}

/// Whole seconds in a narrow column: `45s`, `3m12s`, `2h05m`, `3d04h` (negative counts as 0).
pub fn secs_short(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A size in binary units: `512 B`, `12.3 MiB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_the_unit_by_size() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(999)), "999ms");
        assert_eq!(duration(Duration::from_millis(2_500)), "2.5s");
        assert_eq!(duration(Duration::from_millis(59_940)), "59.9s");
        assert_eq!(duration(Duration::from_secs(190)), "3m 10s");
    }

    #[test]
    fn short_seconds_keep_two_units() {
        assert_eq!(secs_short(-5), "0s");
        assert_eq!(secs_short(45), "45s");
        assert_eq!(secs_short(192), "3m12s");
        assert_eq!(secs_short(2 * 3600 + 5 * 60 + 9), "2h05m");
        assert_eq!(secs_short(3 * 86400 + 4 * 3600), "3d04h");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 300 * 1024), "3.3 MiB");
        assert_eq!(bytes(u64::MAX), "16777216.0 TiB");
    }
}
