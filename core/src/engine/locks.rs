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
//! spawned from `Drop`; if even that cannot run, the row expires. A release
//! that fails (the database was unreachable when the turn ended) is retried
//! before the thread's next turn in this process, so the replica does not
//! answer `thread_busy` on its own threads until the row expires.

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::store::SharedStore;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The set of threads that currently have a running turn in this process.
#[derive(Debug, Default)]
pub(crate) struct ThreadLocks {
    busy: Mutex<HashSet<(String, String)>>,
    /// Lease rows this process's finished turns could not delete (the
    /// database was unreachable then), by thread: the owner to delete before
    /// the thread's next turn here, so a live replica does not keep its own
    /// threads busy until the rows expire.
    stranded: Mutex<HashMap<(String, String), String>>,
}

impl ThreadLocks {
    /// Remembers that a finished turn's lease row could not be deleted.
    fn strand(&self, user_id: &str, thread_id: &str, owner: String) {
        self.stranded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((user_id.to_owned(), thread_id.to_owned()), owner);
    }

    /// The owner of the row a finished turn of this process left on the
    /// thread, if any (forgotten: the caller deletes it or strands it again).
    fn take_stranded(&self, user_id: &str, thread_id: &str) -> Option<String> {
        self.stranded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&(user_id.to_owned(), thread_id.to_owned()))
    }

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
    locks: Arc<ThreadLocks>,
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
        // A row an earlier turn of this process could not delete: that turn
        // has ended and the in-process lock is ours, so it is stale.
        if let Some(stale) = locks.take_stranded(&ctx.user_id, thread_id)
            && let Err(err) = store.release_turn_lease(thread_id, &stale, ctx).await
        {
            locks.strand(&ctx.user_id, thread_id, stale);
            return Err(err);
        }
        let owner = format!("{replica}/{}", uuid::Uuid::new_v4().simple());
        if !store.try_lease_turn(thread_id, &owner, ttl, ctx).await? {
            return Err(busy());
        }
        Ok(Self {
            local: Some(local),
            shared: Some(SharedLease {
                locks: Arc::clone(locks),
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
                "could not release the turn lease; the thread's next turn here deletes it, \
                 or it expires on its own"
            );
            shared
                .locks
                .strand(&shared.ctx.user_id, &shared.thread_id, shared.owner);
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
                if shared
                    .store
                    .release_turn_lease(&shared.thread_id, &shared.owner, &shared.ctx)
                    .await
                    .is_err()
                {
                    shared
                        .locks
                        .strand(&shared.ctx.user_id, &shared.thread_id, shared.owner);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Attachment, FeedbackKind, Order, Page, ThreadItem, ThreadMetadata};
    use crate::store::{
        ApprovalDecision, PendingApproval, Store, TurnUsage, UsageScope, UsageTotals,
    };
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Lease rows in memory (they never expire here), whose deletes fail
    /// while `unreachable` is set; nothing else is ever called.
    #[derive(Default)]
    struct Leases {
        rows: Mutex<HashMap<String, String>>,
        unreachable: AtomicBool,
    }

    fn unused<T>() -> Result<T> {
        Err(Error::NotSupported("not part of this test".into()))
    }

    #[async_trait]
    impl Store for Leases {
        async fn load_thread(&self, _: &str, _: &RequestContext) -> Result<ThreadMetadata> {
            unused()
        }
        async fn save_thread(&self, _: &ThreadMetadata, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn load_threads(
            &self,
            _: usize,
            _: Option<&str>,
            _: Order,
            _: &RequestContext,
        ) -> Result<Page<ThreadMetadata>> {
            unused()
        }
        async fn delete_thread(&self, _: &str, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn load_thread_items(
            &self,
            _: &str,
            _: Option<&str>,
            _: usize,
            _: Order,
            _: &RequestContext,
        ) -> Result<Page<ThreadItem>> {
            unused()
        }
        async fn add_thread_item(&self, _: &str, _: &ThreadItem, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn save_item(&self, _: &str, _: &ThreadItem, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn load_item(&self, _: &str, _: &str, _: &RequestContext) -> Result<ThreadItem> {
            unused()
        }
        async fn delete_thread_item(&self, _: &str, _: &str, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn save_attachment(&self, _: &Attachment, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn load_attachment(&self, _: &str, _: &RequestContext) -> Result<Attachment> {
            unused()
        }
        async fn delete_attachment(&self, _: &str, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn add_feedback(
            &self,
            _: &str,
            _: &[String],
            _: FeedbackKind,
            _: &RequestContext,
        ) -> Result<()> {
            unused()
        }
        async fn load_feedback(
            &self,
            _: &str,
            _: &str,
            _: &RequestContext,
        ) -> Result<Option<FeedbackKind>> {
            unused()
        }
        async fn save_approval(&self, _: &PendingApproval, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn decide_approval(
            &self,
            _: &str,
            _: ApprovalDecision,
            _: &RequestContext,
        ) -> Result<Option<PendingApproval>> {
            unused()
        }
        async fn ping(&self) -> Result<()> {
            Ok(())
        }
        fn shares_turn_leases(&self) -> bool {
            true
        }
        async fn try_lease_turn(
            &self,
            thread_id: &str,
            owner: &str,
            _: Duration,
            _: &RequestContext,
        ) -> Result<bool> {
            let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
            if rows.contains_key(thread_id) {
                return Ok(false);
            }
            rows.insert(thread_id.to_owned(), owner.to_owned());
            Ok(true)
        }
        async fn release_turn_lease(
            &self,
            thread_id: &str,
            owner: &str,
            _: &RequestContext,
        ) -> Result<()> {
            if self.unreachable.load(Ordering::SeqCst) {
                return Err(Error::storage("the database is unreachable"));
            }
            let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
            if rows.get(thread_id).is_some_and(|held| held == owner) {
                rows.remove(thread_id);
            }
            Ok(())
        }
        async fn record_turn_usage(&self, _: &TurnUsage, _: &RequestContext) -> Result<()> {
            unused()
        }
        async fn token_usage(&self, _: &UsageScope, _: &RequestContext) -> Result<UsageTotals> {
            unused()
        }
    }

    #[tokio::test]
    async fn a_lease_whose_release_failed_is_deleted_before_the_threads_next_turn_here() {
        let leases = Arc::new(Leases::default());
        let store: SharedStore = leases.clone();
        let locks = Arc::new(ThreadLocks::default());
        let ctx = RequestContext::new("u");
        let ttl = Duration::from_secs(30);
        let first = TurnLease::acquire(&locks, &store, "replica-a", ttl, "thr_1", &ctx)
            .await
            .unwrap();
        // The turn ends while the database is unreachable: its row stays.
        leases.unreachable.store(true, Ordering::SeqCst);
        first.release().await;
        assert_eq!(leases.rows.lock().unwrap().len(), 1);
        // Still unreachable: the next turn fails with the store's error, and
        // the row is still remembered.
        let err = TurnLease::acquire(&locks, &store, "replica-a", ttl, "thr_1", &ctx)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "storage_error");
        // Back: the next turn here deletes the stale row and takes the thread.
        leases.unreachable.store(false, Ordering::SeqCst);
        let second = TurnLease::acquire(&locks, &store, "replica-a", ttl, "thr_1", &ctx)
            .await
            .unwrap();
        second.release().await;
        assert!(leases.rows.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn another_processs_lease_is_never_taken_over() {
        let leases = Arc::new(Leases::default());
        let store: SharedStore = leases.clone();
        let ctx = RequestContext::new("u");
        let ttl = Duration::from_secs(30);
        let (here, there) = (
            Arc::new(ThreadLocks::default()),
            Arc::new(ThreadLocks::default()),
        );
        let held = TurnLease::acquire(&there, &store, "replica-b", ttl, "thr_1", &ctx)
            .await
            .unwrap();
        let err = TurnLease::acquire(&here, &store, "replica-a", ttl, "thr_1", &ctx)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "thread_busy");
        held.release().await;
        assert!(
            TurnLease::acquire(&here, &store, "replica-a", ttl, "thr_1", &ctx)
                .await
                .is_ok()
        );
    }

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
