//! A mutex that keeps serving after a panic.
//!
//! A thread that panics while holding a `std::sync::Mutex` poisons it, and `lock()` then
//! returns an error forever. The data dockhand keeps behind mutexes (a container table, a
//! cancellation reason, a view for the dashboard) stays consistent between statements, so
//! one panicked worker should not take every later caller down with it: we take the guard
//! out of the poison error and go on.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard when a panicking holder poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_mutex_still_locks_and_keeps_its_data() {
        let m = Arc::new(Mutex::new(vec![1]));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            g.push(2);
            panic!("holder dies");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        lock(&m).push(3);
        assert_eq!(*lock(&m), [1, 2, 3]);
    }
}
