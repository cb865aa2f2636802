//! One turn per thread at a time, within this process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The set of threads that currently have a running turn.
#[derive(Debug, Default)]
pub(crate) struct ThreadLocks {
    busy: Mutex<HashSet<(String, String)>>,
}

impl ThreadLocks {
    /// Marks the thread busy, or returns `None` if a turn already runs on it.
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        user_id: &str,
        thread_id: &str,
    ) -> Option<ThreadLease> {
        let key = (user_id.to_owned(), thread_id.to_owned());
        // A poisoned lock only means another thread panicked while holding it;
        // the set itself is still consistent.
        let mut busy = self
            .busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !busy.insert(key.clone()) {
            return None;
        }
        crate::telemetry::busy_threads(1.0);
        Some(ThreadLease {
            locks: Arc::clone(self),
            key,
        })
    }

    /// How many threads are busy right now.
    pub(crate) fn busy_count(&self) -> usize {
        self.busy.lock().map(|busy| busy.len()).unwrap_or(0)
    }
}

/// Held for the duration of a turn; frees the thread when dropped.
#[derive(Debug)]
pub(crate) struct ThreadLease {
    locks: Arc<ThreadLocks>,
    key: (String, String),
}

impl Drop for ThreadLease {
    fn drop(&mut self) {
        let mut busy = self
            .locks
            .busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if busy.remove(&self.key) {
            crate::telemetry::busy_threads(-1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_busy_until_its_lease_is_dropped() {
        let locks = Arc::new(ThreadLocks::default());
        let lease = locks.try_acquire("u", "thr_1").unwrap();
        assert!(locks.try_acquire("u", "thr_1").is_none());
        assert!(locks.try_acquire("u", "thr_2").is_some());
        assert!(locks.try_acquire("other", "thr_1").is_some());
        drop(lease);
        assert_eq!(locks.busy_count(), 0);
        assert!(locks.try_acquire("u", "thr_1").is_some());
    }
}
