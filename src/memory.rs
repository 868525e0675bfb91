//! The memory guard of a run: a counting allocator and a budget checked between operations.
//!
//! **Why not Rhai's size limits.** `set_max_array_size`, `set_max_map_size` and
//! `set_max_string_size` make the engine measure a whole value after every operation that
//! changes it, so each `push` or `m[k] = v` walks the array or map: building N rows costs
//! O(N²) (80,000 pushes took 5.4 s). They also miss growth that happens in place (a map grown
//! by index assignment is only measured when it is next passed somewhere). Counting bytes at
//! the allocator costs one atomic add per allocation whatever the size of the data, and it
//! sees every growth path at once: push, `+=`, string append, map insert, array concat,
//! `filter`/`map`, host calls that build rows.
//!
//! **How.** [`CountingAlloc`] wraps the system allocator and keeps the process's live heap
//! bytes in one atomic. The engine's `on_progress` hook (called between operations) compares
//! that figure with the level when the runtime was built; past the budget (`--max-memory`,
//! [`crate::engine::Limits::max_memory`]) the run stops with an error naming the flag. The
//! count is process-wide, not per thread: a script's `parallel` workers and the host calls it
//! makes on tokio threads allocate on its behalf, and memory allocated on one thread is often
//! freed on another.
//!
//! **Bounds.** The check runs between operations, so one operation can overshoot by what it
//! allocates itself; operations that take a size from the script (`pad`, `blob(n)`) are
//! checked before they allocate (see `engine.rs`), and every other operation allocates in
//! proportion to values that were already within the budget.
//!
//! **Embedders.** The counter only counts when [`CountingAlloc`] is the global allocator; the
//! `dockhand` binary declares it (`main.rs`), and a program embedding [`crate::Runtime`] can do
//! the same with one line. Without it the guard is off ([`live_bytes`] is `None`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Live heap bytes allocated through [`CountingAlloc`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Highest value [`LIVE`] reached.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes. Declare it in the binary:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: dockhand::memory::CountingAlloc = dockhand::memory::CountingAlloc;
/// ```
pub struct CountingAlloc;

#[inline]
fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed).wrapping_add(n);
    // Cheap in the common case: a relaxed load, a store only on a new peak.
    if now > PEAK.load(Relaxed) {
        PEAK.fetch_max(now, Relaxed);
    }
}

#[inline]
fn shrank(n: usize) {
    LIVE.fetch_sub(n, Relaxed);
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counters are
// plain atomics (no allocation, no unwinding).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Live heap bytes, or `None` when [`CountingAlloc`] is not the global allocator (nothing
/// has been counted: any Rust process has allocated by the time it asks).
pub fn live_bytes() -> Option<usize> {
    match LIVE.load(Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// The highest live heap so far, when counting.
pub fn peak_bytes() -> Option<usize> {
    match PEAK.load(Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// The memory budget of one runtime: `limit` bytes above the live heap at `base`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    base: usize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes from now; `None` when `limit` is 0 (no limit) or the
    /// allocator does not count.
    pub fn start(limit: usize) -> Option<Budget> {
        if limit == 0 {
            return None;
        }
        live_bytes().map(|base| Budget { base, limit })
    }

    /// Bytes used since the start (0 if the heap shrank below where it was).
    pub fn used(&self) -> usize {
        LIVE.load(Relaxed).saturating_sub(self.base)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the budget is spent.
    #[inline]
    pub fn exceeded(&self) -> bool {
        self.used() > self.limit
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }
}

/// "512 MiB", "1.5 GiB": sizes for messages.
pub fn human(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a size for `--max-memory`: `512MiB`, `1GiB`, `2G`, `300M`, `64k`, a plain number
/// of MiB (`512`), or `0` for no limit. Binary units either way (`G` = `GiB`): this is a
/// budget, not a disk size.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 512MiB, 2GiB or 0"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0_f64.powi(4),
        other => return Err(format!("invalid size {s:?}: unknown unit {other:?}")),
    };
    let bytes = n * scale;
    if !bytes.is_finite() || bytes >= usize::MAX as f64 {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(bytes as usize)
}

/// Caps glibc's malloc arenas at 2 (unless `MALLOC_ARENA_MAX` is set), before any thread
/// starts.
///
/// **Why.** glibc gives each thread that allocates under contention its own arena, up to 8
/// per core, and memory freed into an arena stays with it. A rebuild runs a script thread per
/// service in flight (44 in the full lab at once), so the process kept ~16 arenas of
/// fragments: measured on the full lab rebuilt all at once, peak `VmHWM` 41.7 / 42.0 MB with
/// glibc's default and 35.1 / 36.9 MB with 2 arenas (two runs each, same wall time). Scripts
/// spend their time waiting on the engine, not in malloc, so fewer arenas cost nothing here.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; called from main before any other
        // thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("100 B"), Ok(100));
        assert!(parse_size("").is_err());
        assert!(parse_size("lots").is_err());
        assert!(
            parse_size("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("1e400").is_err());
        assert!(parse_size("99999999999999999999T").is_err());
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(10), "10 B");
    }

    /// The lib's unit tests run with the counting allocator (lib.rs), so the guard is live.
    #[test]
    fn counts_growth_and_release() {
        let b = Budget::start(1 << 30).expect("the test binary counts");
        // Zeroed, so the pages are never touched. Other tests allocate and free meanwhile
        // (the count is process-wide): far smaller than this, so half of it must show.
        let v: Vec<u8> = vec![0; 256 << 20];
        assert!(b.used() >= 128 << 20, "{}", b.used());
        assert!(peak_bytes().unwrap() >= live_bytes().unwrap());
        drop(v);
        assert!(Budget::start(0).is_none());
    }
}
