//! One turn per thread at a time: within this process, and across every
//! process on the same database when the store shares turn leases.
//!
//! | Store | What keeps a second turn off a busy thread |
//! |---|---|
//! | any | the in-process set below, checked first (no round trip for a second request on the same replica) |
//! | [`Store::shares_turn_leases`](crate::store::Store::shares_turn_leases) (PostgreSQL) | a lease row taken in one statement, renewed every third of its lifetime while the turn runs, deleted when the turn ends; a replica that died leaves a row that expires ([`EngineConfig::turn_lease_secs`](crate::EngineConfig::turn_lease_secs)) by the database's clock |
//!
//! The lease is released by [`TurnLease::release`] at the end of every turn
//! (success, client gone, failure). A lease dropped without it (a request
//! that failed validation after the lease was taken) is released by a task
//! spawned from `Drop`; if even that cannot run, the row expires.

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::store::SharedStore;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The set of threads that currently have a running turn in this process.
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

/// Held for the duration of a turn; frees the thread in this process when
/// dropped.
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

/// The right to run a turn on a thread: the in-process lock plus, on a
/// store that shares leases, the lease row.
pub(crate) struct TurnLease {
    local: Option<ThreadLease>,
    shared: Option<SharedLease>,
}

/// The lease row this turn holds.
struct SharedLease {
    store: SharedStore,
    thread_id: String,
    owner: String,
    ttl: Duration,
    ctx: RequestContext,
}

impl std::fmt::Debug for TurnLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnLease")
            .field("thread", &self.local.as_ref().map(|lease| &lease.key.1))
            .field("owner", &self.shared.as_ref().map(|lease| &lease.owner))
            .finish()
    }
}

impl TurnLease {
    /// Takes the thread for one turn, or fails with `ThreadBusy`.
    /// `replica` names this process in the lease's owner (for operators
    /// reading the table); the owner is unique per turn.
    pub(crate) async fn acquire(
        locks: &Arc<ThreadLocks>,
        store: &SharedStore,
        replica: &str,
        ttl: Duration,
        thread_id: &str,
        ctx: &RequestContext,
    ) -> Result<Self> {
        let busy = || Error::ThreadBusy(thread_id.to_owned());
        let local = locks
            .try_acquire(&ctx.user_id, thread_id)
            .ok_or_else(busy)?;
        if !store.shares_turn_leases() {
            return Ok(Self {
                local: Some(local),
                shared: None,
            });
        }
        let owner = format!("{replica}/{}", uuid::Uuid::new_v4().simple());
        if !store.try_lease_turn(thread_id, &owner, ttl, ctx).await? {
            return Err(busy());
        }
        Ok(Self {
            local: Some(local),
            shared: Some(SharedLease {
                store: Arc::clone(store),
                thread_id: thread_id.to_owned(),
                owner,
                ttl,
                ctx: ctx.clone(),
            }),
        })
    }

    /// Renews the lease row every third of its lifetime, forever: run it
    /// beside the turn and drop it when the turn ends. A renewal that finds
    /// the lease taken by another owner (this process stalled past the
    /// expiry) or fails is logged; the turn goes on, since stopping it
    /// half-way would lose more than the overlap risks.
    pub(crate) async fn keep_alive(&self) {
        let Some(shared) = &self.shared else {
            return std::future::pending().await;
        };
        let period = (shared.ttl / 3).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match shared
                .store
                .renew_turn_lease(&shared.thread_id, &shared.owner, shared.ttl, &shared.ctx)
                .await
            {
                Ok(true) => tracing::trace!(owner = %shared.owner, "turn lease renewed"),
                Ok(false) => tracing::warn!(
                    owner = %shared.owner,
                    "the turn lease expired and another turn took the thread"
                ),
                Err(err) => tracing::warn!(
                    code = err.code(),
                    error = %err,
                    "could not renew the turn lease; retrying"
                ),
            }
        }
    }

    /// Frees the thread: the lease row first, then the in-process lock.
    pub(crate) async fn release(mut self) {
        if let Some(shared) = self.shared.take()
            && let Err(err) = shared
                .store
                .release_turn_lease(&shared.thread_id, &shared.owner, &shared.ctx)
                .await
        {
            tracing::warn!(
                code = err.code(),
                error = %err,
                "could not release the turn lease; it expires on its own"
            );
        }
        self.local.take();
    }
}

impl Drop for TurnLease {
    fn drop(&mut self) {
        // Only a lease that never reached `release` gets here with a row:
        // free it in the background rather than keep the thread busy until
        // the row expires.
        if let Some(shared) = self.shared.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = shared
                    .store
                    .release_turn_lease(&shared.thread_id, &shared.owner, &shared.ctx)
                    .await;
            });
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
