//! How much memory the host can still give, from `/proc/meminfo`.
//!
//! Builds are what can exhaust a host during a rebuild (a solve of many targets runs their
//! steps side by side), so the rebuild's build queue asks this before it starts a solve
//! instead of trusting a fixed count to fit every machine.

/// `MemAvailable` and `MemTotal`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub available: u64,
    pub total: u64,
}

impl Memory {
    /// The host's, or `None` where `/proc/meminfo` is missing or unreadable (not Linux).
    pub fn read() -> Option<Memory> {
        parse(&std::fs::read_to_string("/proc/meminfo").ok()?)
    }

    /// Whether less than `floor` is available: the larger of `min_bytes` and `percent` of
    /// the total.
    pub fn below(&self, min_bytes: u64, percent: u64) -> bool {
        let floor = min_bytes.max(self.total / 100 * percent.min(100));
        self.available < floor
    }
}

/// Reads the two lines (`MemAvailable:   123 kB`); `None` if either is missing or not a
/// number. Values are capped, never overflow.
pub fn parse(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let rest = line[name.len()..].trim_start_matches(':').trim();
        let (num, unit) = rest.split_once(' ').unwrap_or((rest, ""));
        let n: u64 = num.parse().ok()?;
        Some(if unit.trim() == "kB" {
            n.saturating_mul(1024)
        } else {
            n
        })
    };
    Some(Memory {
        available: field("MemAvailable")?,
        total: field("MemTotal")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_available_and_total() {
        let m = parse("MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:    6000000 kB\n")
            .unwrap();
        assert_eq!(m.total, 24_000_000 * 1024);
        assert_eq!(m.available, 6_000_000 * 1024);
        assert!(!m.below(512 << 20, 10));
        assert!(m.below(512 << 20, 30), "6 GB of 24 is under 30%");
        assert!(m.below(8_000_000 * 1024, 0), "under the absolute floor");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse("MemTotal: 10 kB\n"), None);
        assert_eq!(parse("MemTotal: x kB\nMemAvailable: 1 kB\n"), None);
        assert_eq!(parse(""), None);
        let huge = parse("MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n");
        assert_eq!(
            huge, None,
            "a number past u64 is not read as something else"
        );
        let big = parse("MemTotal: 18446744073709551615 kB\nMemAvailable: 1 kB\n").unwrap();
        assert_eq!(big.total, u64::MAX, "saturates instead of wrapping");
        assert!(big.below(0, 200), "a percent over 100 counts as 100");
    }

    #[test]
    fn this_host_has_a_meminfo_on_linux() {
        if cfg!(target_os = "linux") {
            let m = Memory::read().expect("/proc/meminfo");
            assert!(m.total > 0 && m.available <= m.total);
        }
    }
}
