//! MCP sessions that belong to the user who opened them.
//!
//! [`McpHttpService`](super::http::McpHttpService) keeps rmcp's in-memory
//! sessions behind this [`SessionManager`], which records the owner of each
//! session when it is created and forgets it when the session ends:
//!
//! | request | owner of the named session | answer |
//! | --- | --- | --- |
//! | `initialize` (no `Mcp-Session-Id`) | — | a new session owned by the caller, or 429 `too_many_sessions` when the caller already has the cap of open sessions |
//! | POST, GET or DELETE with `Mcp-Session-Id` | the caller | served |
//! | POST, GET or DELETE with `Mcp-Session-Id` | another user, or none (unknown, ended) | 404, the same answer as for an unknown session |
//!
//! A session ends on DELETE, when it is idle for rmcp's keep-alive (5
//! minutes), and at shutdown; then it no longer counts towards the cap.
//! The cap is checked and taken in one step (a reservation), so concurrent
//! `initialize` requests cannot overshoot it. Restoring sessions from an
//! external rmcp `SessionStore` is not supported: the store does not know
//! owners.

use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The default cap on the open sessions of one user.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 16;

tokio::task_local! {
    /// The reservation of the `initialize` request being handled: rmcp
    /// creates the session inside that request's future.
    static OPENING: Mutex<Option<Reservation>>;
}

/// Who owns which session, and how many each user holds (sessions plus
/// outstanding reservations).
#[derive(Default)]
struct Owners {
    by_session: HashMap<SessionId, Arc<str>>,
    open: HashMap<Arc<str>, usize>,
}

impl Owners {
    fn release(&mut self, user: &str) {
        if let Some(count) = self.open.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.open.remove(user);
            }
        }
    }
}

fn lock(owners: &Mutex<Owners>) -> MutexGuard<'_, Owners> {
    // The map stays consistent even if a holder panicked.
    owners
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One slot of a user's cap, taken before `initialize` runs; it becomes the
/// session's ownership, or is given back when dropped unused.
pub(crate) struct Reservation {
    owners: Arc<Mutex<Owners>>,
    user: Arc<str>,
    used: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            lock(&self.owners).release(&self.user);
        }
    }
}

/// rmcp's local session manager, with an owner for each session.
pub(crate) struct OwnedSessions {
    inner: LocalSessionManager,
    owners: Arc<Mutex<Owners>>,
    max_per_user: usize,
}

/// A session could not be created or used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionsError {
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    #[error("a session is only opened by an authenticated initialize request")]
    NoOwner,
}

impl OwnedSessions {
    /// Sessions with at most `max_per_user` open per user (at least 1).
    pub(crate) fn new(max_per_user: usize) -> Self {
        Self {
            inner: LocalSessionManager::default(),
            owners: Arc::default(),
            max_per_user: max_per_user.max(1),
        }
    }

    /// Whether `session` is open and belongs to `user`.
    pub(crate) fn is_owned_by(&self, session: &str, user: &str) -> bool {
        lock(&self.owners)
            .by_session
            .get(session)
            .is_some_and(|owner| &**owner == user)
    }

    /// How many sessions `user` holds open (or is opening).
    pub(crate) fn open_sessions(&self, user: &str) -> usize {
        lock(&self.owners).open.get(user).copied().unwrap_or(0)
    }

    /// The cap.
    pub(crate) fn max_per_user(&self) -> usize {
        self.max_per_user
    }

    /// Takes one slot of `user`'s cap, or `None` when all are taken.
    pub(crate) fn reserve(&self, user: &str) -> Option<Reservation> {
        let mut owners = lock(&self.owners);
        let user: Arc<str> = Arc::from(user);
        let count = owners.open.entry(Arc::clone(&user)).or_insert(0);
        if *count >= self.max_per_user {
            return None;
        }
        *count += 1;
        Some(Reservation {
            owners: Arc::clone(&self.owners),
            user,
            used: false,
        })
    }

    /// Runs `handle` (an `initialize` request) with `reservation` available
    /// to the session it creates.
    pub(crate) async fn opening<F: Future>(reservation: Reservation, handle: F) -> F::Output {
        OPENING.scope(Mutex::new(Some(reservation)), handle).await
    }
}

impl SessionManager for OwnedSessions {
    type Error = SessionsError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let reservation = OPENING
            .try_with(|slot| slot.lock().ok().and_then(|mut slot| slot.take()))
            .ok()
            .flatten()
            .ok_or(SessionsError::NoOwner)?;
        let (id, transport) = self.inner.create_session().await?;
        let mut reservation = reservation;
        reservation.used = true;
        lock(&self.owners)
            .by_session
            .insert(id.clone(), Arc::clone(&reservation.user));
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        let mut owners = lock(&self.owners);
        if let Some(user) = owners.by_session.remove(id) {
            owners.release(&user);
        }
        Ok(closed?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>
    {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>
    {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>
    {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    async fn restore_session(
        &self,
        _id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(RestoreOutcome::NotSupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_reservations_and_an_unused_one_is_given_back() {
        let sessions = OwnedSessions::new(2);
        let first = sessions.reserve("alice");
        let second = sessions.reserve("alice");
        assert!(first.is_some() && second.is_some());
        assert!(sessions.reserve("alice").is_none(), "at the cap");
        assert!(sessions.reserve("bob").is_some(), "caps are per user");
        drop(first);
        assert_eq!(sessions.open_sessions("alice"), 1);
        assert!(sessions.reserve("alice").is_some());
        assert!(!sessions.is_owned_by("nope", "alice"));
    }

    #[tokio::test]
    async fn a_session_belongs_to_its_opener_until_it_closes() {
        let sessions = OwnedSessions::new(4);
        assert!(matches!(
            sessions.create_session().await,
            Err(SessionsError::NoOwner)
        ));
        let reservation = sessions.reserve("alice").unwrap();
        let (id, _transport) = OwnedSessions::opening(reservation, sessions.create_session())
            .await
            .unwrap();
        assert!(sessions.is_owned_by(&id, "alice"));
        assert!(!sessions.is_owned_by(&id, "bob"));
        assert_eq!(sessions.open_sessions("alice"), 1);
        sessions.close_session(&id).await.unwrap();
        assert!(!sessions.is_owned_by(&id, "alice"));
        assert_eq!(sessions.open_sessions("alice"), 0);
    }
}
