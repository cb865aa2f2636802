//! The PostgreSQL store's connection pool: connections are reused only
//! when released after completed work, idle ones are checked, and the pool
//! never lends more than its limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/db.rs"]
mod db;

use chatkit_engine::store::{PgConnectionPool, PoolSettings, PooledConnection};
use db::TestDb;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::str::FromStr;
use std::time::Duration;

fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_lifetime: Duration::from_secs(600),
        recheck_after_idle: Duration::from_millis(500),
        transaction_pooler: false,
    }
}

async fn pool(db: &TestDb) -> PgConnectionPool {
    let options = PgConnectOptions::from_str(&db.url).unwrap();
    PgConnectionPool::connect(options, settings())
        .await
        .unwrap()
}

async fn backend_pid(conn: &mut PooledConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn.get().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_released_connection_is_lent_again() {
    let db = TestDb::postgres().await;
    let pool = pool(&db).await;
    let mut first = pool.acquire().await.unwrap();
    let pid = backend_pid(&mut first).await;
    first.release();
    assert_eq!(pool.idle_count(), 1);
    let mut again = pool.acquire().await.unwrap();
    assert_eq!(backend_pid(&mut again).await, pid);
}

#[tokio::test]
async fn a_connection_dropped_without_release_is_not_reused() {
    let db = TestDb::postgres().await;
    let pool = pool(&db).await;
    let mut conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    drop(conn);
    assert_eq!(pool.idle_count(), 0);
    let mut next = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&mut next).await, pid);
}

#[tokio::test]
async fn a_query_cancelled_mid_flight_does_not_poison_the_pool() {
    let db = TestDb::postgres().await;
    let pool = pool(&db).await;
    let mut conn = pool.acquire().await.unwrap();
    let slow = sqlx::query("SELECT pg_sleep(5)").execute(conn.get().unwrap());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slow)
            .await
            .is_err()
    );
    drop(conn);
    let mut next = pool.acquire().await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(next.get().unwrap())
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test]
async fn at_most_max_connections_are_lent_and_a_waiter_gets_a_released_one() {
    let db = TestDb::postgres().await;
    let options = PgConnectOptions::from_str(&db.url).unwrap();
    let pool = PgConnectionPool::connect(
        options,
        PoolSettings {
            acquire_timeout: Duration::from_millis(200),
            ..settings()
        },
    )
    .await
    .unwrap();
    let a = pool.acquire().await.unwrap();
    let _b = pool.acquire().await.unwrap();
    let err = pool.acquire().await.err().unwrap();
    assert_eq!(err.code(), "storage_error");
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    a.release();
    waiter.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced() {
    let db = TestDb::postgres().await;
    let pool = PgConnectionPool::connect(
        PgConnectOptions::from_str(&db.url).unwrap(),
        PoolSettings {
            recheck_after_idle: Duration::ZERO,
            ..settings()
        },
    )
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    conn.release();
    // Another session ends the idle one, as a server restart or an idle
    // timeout on the server would.
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    let mut next = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&mut next).await, pid);
}

#[tokio::test]
async fn a_closed_pool_lends_nothing() {
    let db = TestDb::postgres().await;
    let pool = pool(&db).await;
    pool.close().await;
    assert!(pool.is_closed());
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(pool.acquire().await.err().unwrap().code(), "storage_error");
}

#[tokio::test]
async fn the_pool_runs_queries_itself_and_keeps_connections_whose_queries_completed() {
    let db = TestDb::postgres().await;
    let pool = pool(&db).await;
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT pg_backend_pid() FROM generate_series(1, 3)")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let again: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(pool.idle_count(), 1);

    // A failed query leaves its connection in an unknown state: closed.
    let failed = sqlx::query("SELECT 1 / 0").execute(&pool).await;
    assert!(failed.is_err());
    assert_eq!(pool.idle_count(), 0);
    let after: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(after, first);
}

/// A pool in transaction-pooler mode, through the test pooler when the run
/// has one (`CHATKIT_TEST_POOLER_URL`), else directly.
async fn pooler_pool(db: &TestDb, settings: PoolSettings) -> PgConnectionPool {
    let url = db.pooled_url().unwrap_or_else(|| db.url.clone());
    PgConnectionPool::connect(
        PgConnectOptions::from_str(&url).unwrap(),
        PoolSettings {
            transaction_pooler: true,
            ..settings
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn through_a_transaction_pooler_idle_connections_are_checked_and_statements_stay_unnamed() {
    let db = TestDb::postgres().await;
    let pool = pooler_pool(
        &db,
        PoolSettings {
            recheck_after_idle: Duration::ZERO,
            max_connections: 4,
            ..settings()
        },
    )
    .await;
    assert!(!pool.prepared_statements());
    // Every reuse pings first (the check before acquire), then runs a
    // parameterised statement; concurrent ones share the pooler's servers.
    for round in 0..3_i64 {
        let queries = (0..8_i64).map(|i| {
            let pool = pool.clone();
            async move {
                let value: i64 = sqlx::query_scalar("SELECT $1::BIGINT * 2")
                    .bind(round * 100 + i)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                assert_eq!(value, (round * 100 + i) * 2);
            }
        });
        futures::future::join_all(queries).await;
    }
    // A failed statement rolls its transaction back and leaves a usable pool.
    let err = sqlx::query("SELECT 1 / $1::INT")
        .bind(0)
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("division by zero"), "{err}");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    // Named statements are refused rather than leaked to other clients.
    let err = sqlx::Executor::prepare(&pool, "SELECT 1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("transaction pooler"), "{err}");
}
