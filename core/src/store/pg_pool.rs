//! The PostgreSQL store's connection pool.
//!
//! sqlx's own pool sends a `Sync` and waits for the answer every time a
//! connection goes back to it, to catch connections left mid-query by a
//! cancelled future. That doubles the round trips of a turn (each of its
//! statements is one). This pool gets the same safety another way: a
//! connection is only taken back when its borrower says the work finished
//! ([`PooledConnection::release`]); one dropped without that (an error, a
//! cancelled request) may be mid-query and is closed instead. A connection
//! that sat idle is pinged before it is handed out, so one the server (or a
//! restart) closed in the meantime is replaced instead of failing a query.
//!
//! ## Through a transaction-mode pooler
//!
//! PgBouncer in transaction mode (Neon's pooled endpoint) hands the server
//! connection to another client at every transaction boundary. sqlx sends a
//! parameterised statement in two flights (`Parse`+`Sync`, then
//! `Bind`+`Execute`+`Sync`) and names it (`sqlx_s_N`) for its per-connection
//! cache even when the cache is off (sqlx 0.8.6,
//! `sqlx-postgres/src/connection/executor.rs`), so through such a pooler the
//! second flight can reach a server that never saw the first one, and names
//! collide between clients. With [`PoolSettings::transaction_pooler`] set:
//!
//! | Rule | Why |
//! |---|---|
//! | every statement run on the pool is unnamed (`persistent(false)`) | nothing outlives the transaction on the server connection |
//! | a statement that is not already in a transaction runs between `BEGIN` and `COMMIT` (simple-protocol messages) | the pooler keeps one server connection for the whole transaction, so both flights land on it; it costs two round trips more |
//! | code that takes a raw connection ([`PgConnectionPool::acquire`]) must use unnamed statements too ([`PgConnectionPool::prepared_statements`] says which to use) | the pool cannot rewrite queries it never sees |
//! | `prepare_with` / `describe` on the pool fail with a configuration error | they exist to make named statements |
//! | the idle check is a lone `Sync` (sqlx's `ping`) | a pooler answers it from any server connection, which is what the check needs |
//!
//! The mode is a setting, not a probe: nothing a client can ask tells it
//! reliably that a pooler sits in between (`SHOW` commands reach only
//! PgBouncer's admin console, `application_name` and `pg_backend_pid()` look
//! the same with one backend reused), so a wrong guess would fail later,
//! under load, rather than at start.

use crate::error::{Error, Result};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgQueryResult, PgRow, PgStatement, PgTypeInfo,
    Postgres,
};
use sqlx::{ConnectOptions, Connection, Describe, Either, Execute, Executor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Limits and timings of a [`PgConnectionPool`]. The defaults suit a
/// serverless endpoint such as Neon's: a few connections, recycled before
/// the endpoint would drop them.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Open connections at most (idle and lent).
    pub max_connections: usize,
    /// How long `acquire` waits for a connection to be free.
    pub acquire_timeout: Duration,
    /// A connection idle this long is closed rather than reused.
    pub idle_timeout: Duration,
    /// A connection this old is closed rather than reused.
    pub max_lifetime: Duration,
    /// A connection idle this long is pinged before it is handed out.
    pub recheck_after_idle: Duration,
    /// The server is reached through a transaction-mode pooler such as
    /// PgBouncer or Neon's pooled endpoint: statements are unnamed and each
    /// one runs in a transaction of its own (see the module docs).
    pub transaction_pooler: bool,
}

/// A pool of PostgreSQL connections. Cloning is cheap; clones share it.
///
/// ```no_run
/// # async fn demo() -> chatkit_engine::Result<()> {
/// use chatkit_engine::store::{PgConnectionPool, PoolSettings};
/// use sqlx::postgres::PgConnectOptions;
///
/// let options: PgConnectOptions = "postgres://postgres@127.0.0.1/app".parse()?;
/// let pool = PgConnectionPool::connect(options, PoolSettings::default()).await?;
/// let mut conn = pool.acquire().await?;
/// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(conn.get()?).await?;
/// conn.release(); // the query completed: the connection can be reused
/// # assert_eq!(one, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgConnectionPool {
    shared: Arc<Shared>,
}

struct Shared {
    options: PgConnectOptions,
    settings: PoolSettings,
    /// One permit per connection that may be open.
    permits: Arc<Semaphore>,
    /// Idle connections, the most recently used last (taken first, so the
    /// least used ones age out).
    idle: Mutex<Vec<IdleConnection>>,
    /// Connections lent right now (for the metrics).
    lent: AtomicUsize,
}

impl Shared {
    /// Reports the pool's connections to `chatkit_pool_connections`.
    fn report(&self) {
        let idle = self.idle().len();
        crate::telemetry::pool_connections(self.lent.load(Ordering::Relaxed), idle);
    }
}

struct IdleConnection {
    connection: PgConnection,
    opened: Instant,
    idle_since: Instant,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(240),
            max_lifetime: Duration::from_secs(30 * 60),
            recheck_after_idle: Duration::from_millis(500),
            transaction_pooler: false,
        }
    }
}

impl std::fmt::Debug for PgConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnectionPool")
            .field("settings", &self.shared.settings)
            .field("idle", &self.shared.idle().len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn idle(&self) -> MutexGuard<'_, Vec<IdleConnection>> {
        // The lock is never held across a panic point that leaves the list
        // inconsistent, so a poisoned lock is still usable.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PgConnectionPool {
    /// A pool for `options`, opening one connection now so that a wrong
    /// URL or an unreachable server is reported at once.
    pub async fn connect(options: PgConnectOptions, settings: PoolSettings) -> Result<Self> {
        // sqlx names (and never closes) every statement it prepares when its
        // cache is on; a pooler would hand them to other clients.
        let options = if settings.transaction_pooler {
            options.statement_cache_capacity(0)
        } else {
            options
        };
        let pool = PgConnectionPool {
            shared: Arc::new(Shared {
                options,
                permits: Arc::new(Semaphore::new(settings.max_connections.max(1))),
                settings,
                idle: Mutex::new(Vec::new()),
                lent: AtomicUsize::new(0),
            }),
        };
        pool.acquire().await?.release();
        Ok(pool)
    }

    /// Lends a connection: an idle one that is still usable, or a new one.
    pub async fn acquire(&self) -> Result<PooledConnection> {
        self.lend().await.map_err(|err| match err {
            sqlx::Error::PoolTimedOut => Error::storage(format!(
                "no database connection was available within {} s",
                self.shared.settings.acquire_timeout.as_secs_f64()
            )),
            sqlx::Error::PoolClosed => Error::storage("the database connection pool is closed"),
            other => other.into(),
        })
    }

    async fn lend(&self) -> std::result::Result<PooledConnection, sqlx::Error> {
        let shared = &self.shared;
        // Waiting for a permit, checking idle connections and opening a new
        // one all count against the same limit.
        let deadline = tokio::time::Instant::now() + shared.settings.acquire_timeout;
        let permit = match Arc::clone(&shared.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(sqlx::Error::PoolClosed),
            Err(TryAcquireError::NoPermits) => {
                let waiting = Instant::now();
                let permit =
                    tokio::time::timeout_at(deadline, Arc::clone(&shared.permits).acquire_owned())
                        .await;
                crate::telemetry::pool_waited(waiting.elapsed());
                permit
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
                    .map_err(|_| sqlx::Error::PoolClosed)?
            }
        };
        loop {
            let Some(idle) = shared.idle().pop() else {
                break;
            };
            let now = Instant::now();
            let idle_for = now.saturating_duration_since(idle.idle_since);
            if now.saturating_duration_since(idle.opened) >= shared.settings.max_lifetime
                || idle_for >= shared.settings.idle_timeout
            {
                close_in_background(idle.connection);
                continue;
            }
            let mut connection = idle.connection;
            if idle_for >= shared.settings.recheck_after_idle {
                match tokio::time::timeout_at(deadline, connection.ping()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, "an idle database connection was gone; replacing it");
                        continue;
                    }
                    Err(_) => return Err(sqlx::Error::PoolTimedOut),
                }
            }
            return Ok(PooledConnection::lend(
                connection,
                idle.opened,
                shared,
                permit,
            ));
        }
        let connection = tokio::time::timeout_at(deadline, shared.options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(PooledConnection::lend(
            connection,
            Instant::now(),
            shared,
            permit,
        ))
    }

    /// Closes the idle connections and refuses to lend any more; lent ones
    /// are closed when they come back.
    pub async fn close(&self) {
        self.shared.permits.close();
        let idle = std::mem::take(&mut *self.shared.idle());
        for idle in idle {
            let _ = idle.connection.close().await;
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.permits.is_closed()
    }

    /// Whether statements may be named and cached on a connection: `false`
    /// through a transaction-mode pooler, where code running queries on a
    /// raw connection must call `.persistent(false)` on them.
    pub fn prepared_statements(&self) -> bool {
        !self.shared.settings.transaction_pooler
    }

    /// Connections idle in the pool right now.
    pub fn idle_count(&self) -> usize {
        self.shared.idle().len()
    }
}

/// A statement sent unnamed, whatever its builder asked for: nothing of it
/// outlives the transaction it runs in.
struct Unprepared<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unprepared<E> {
    fn sql(&self) -> &'q str {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement<'q>> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> std::result::Result<Option<PgArguments>, BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

/// Ends the one-statement transaction of the pooler mode: `COMMIT` after
/// success, `ROLLBACK` after a failed statement. The connection goes back
/// to the pool when the transaction ended cleanly; otherwise it is dropped
/// (closed), like any connection left in an unknown state.
async fn end_pinned(
    mut lent: PooledConnection,
    succeeded: bool,
) -> std::result::Result<(), sqlx::Error> {
    let end = if succeeded { "COMMIT" } else { "ROLLBACK" };
    lent.connection()?.execute(end).await?;
    lent.release();
    Ok(())
}

/// Runs each query on a lent connection and releases it when the query
/// completed; a query that fails or is dropped unfinished closes its
/// connection. Results are collected before they are handed on, which
/// suits the store's queries (none streams a large result). Through a
/// transaction pooler each query is unnamed and runs in a transaction of
/// its own (see the module docs).
impl<'p> Executor<'p> for &'p PgConnectionPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, std::result::Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let results = async move {
            let mut lent = match self.lend().await {
                Ok(lent) => lent,
                Err(err) => return vec![Err(err)],
            };
            let connection = match lent.connection() {
                Ok(connection) => connection,
                Err(err) => return vec![Err(err)],
            };
            if self.shared.settings.transaction_pooler {
                if let Err(err) = connection.execute("BEGIN").await {
                    return vec![Err(err)];
                }
                let mut results: Vec<_> = connection.fetch_many(Unprepared(query)).collect().await;
                let succeeded = results.iter().all(|step| step.is_ok());
                if let Err(err) = end_pinned(lent, succeeded).await
                    && succeeded
                {
                    results.push(Err(err));
                }
                return results;
            }
            let results: Vec<_> = connection.fetch_many(query).collect().await;
            if results.iter().all(|step| step.is_ok()) {
                lent.release();
            }
            results
        };
        stream::once(results).flat_map(stream::iter).boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, std::result::Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(async move {
            let mut lent = self.lend().await?;
            if self.shared.settings.transaction_pooler {
                let connection = lent.connection()?;
                connection.execute("BEGIN").await?;
                let row = connection.fetch_optional(Unprepared(query)).await;
                let ended = end_pinned(lent, row.is_ok()).await;
                return row.and_then(|row| ended.map(|()| row));
            }
            let row = lent.connection()?.fetch_optional(query).await?;
            lent.release();
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, std::result::Result<PgStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        Box::pin(async move {
            self.refuse_named("prepare")?;
            let mut lent = self.lend().await?;
            let statement = lent.connection()?.prepare_with(sql, parameters).await?;
            lent.release();
            Ok(statement)
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, std::result::Result<Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        Box::pin(async move {
            self.refuse_named("describe")?;
            let mut lent = self.lend().await?;
            let described = lent.connection()?.describe(sql).await?;
            lent.release();
            Ok(described)
        })
    }
}

impl PgConnectionPool {
    /// `prepare_with` and `describe` make named statements, which a
    /// transaction pooler would hand to other clients.
    fn refuse_named(&self, what: &str) -> std::result::Result<(), sqlx::Error> {
        if self.shared.settings.transaction_pooler {
            return Err(sqlx::Error::Configuration(
                format!("cannot {what} a named statement through a transaction pooler").into(),
            ));
        }
        Ok(())
    }
}

/// A connection lent by [`PgConnectionPool::acquire`]. Call
/// [`release`](Self::release) once the work on it finished; dropped without
/// that, the connection is closed, because a query may be half done on it.
pub struct PooledConnection {
    connection: Option<PgConnection>,
    opened: Instant,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl PooledConnection {
    fn lend(
        connection: PgConnection,
        opened: Instant,
        shared: &Arc<Shared>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        shared.lent.fetch_add(1, Ordering::Relaxed);
        shared.report();
        Self {
            connection: Some(connection),
            opened,
            shared: Arc::clone(shared),
            _permit: permit,
        }
    }

    /// The connection, to run queries on.
    pub fn get(&mut self) -> Result<&mut PgConnection> {
        Ok(self.connection()?)
    }

    fn connection(&mut self) -> std::result::Result<&mut PgConnection, sqlx::Error> {
        // Only `release` takes the connection, and it consumes the lease.
        self.connection.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Gives the connection back for reuse: every query on it completed and
    /// no transaction is open on it.
    pub fn release(mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if self.shared.permits.is_closed() {
            close_in_background(connection);
            return;
        }
        let now = Instant::now();
        let mut idle = self.shared.idle();
        // Retire the least recently used connection when it has idled too
        // long, so a pool that was busy once shrinks while it is used.
        if idle.first().is_some_and(|oldest| {
            now.saturating_duration_since(oldest.idle_since) >= self.shared.settings.idle_timeout
        }) {
            let oldest = idle.remove(0);
            close_in_background(oldest.connection);
        }
        idle.push(IdleConnection {
            connection,
            opened: self.opened,
            idle_since: now,
        });
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        self.shared.lent.fetch_sub(1, Ordering::Relaxed);
        self.shared.report();
        if self.connection.is_some() {
            tracing::debug!(
                "a database connection was not released (error or cancellation); closing it"
            );
        }
    }
}

/// Says goodbye to the server without making anyone wait for it.
fn close_in_background(connection: PgConnection) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                let _ = connection.close().await;
            });
        }
        Err(_) => drop(connection),
    }
}
