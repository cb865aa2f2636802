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

use crate::error::{Error, Result};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgQueryResult, PgRow, PgStatement, PgTypeInfo, Postgres,
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

    /// Connections idle in the pool right now.
    pub fn idle_count(&self) -> usize {
        self.shared.idle().len()
    }
}

/// Runs each query on a lent connection and releases it when the query
/// completed; a query that fails or is dropped unfinished closes its
/// connection. Results are collected before they are handed on, which
/// suits the store's queries (none streams a large result).
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
            let results: Vec<_> = match lent.connection() {
                Ok(connection) => connection.fetch_many(query).collect().await,
                Err(err) => return vec![Err(err)],
            };
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
            let mut lent = self.lend().await?;
            let described = lent.connection()?.describe(sql).await?;
            lent.release();
            Ok(described)
        })
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
