//! Throwaway databases for integration tests.
//!
//! [`TestDb::new`] gives an empty database of either backend: a fresh SQLite
//! file in the temp directory, or a fresh PostgreSQL database
//! (`chatkit_test_<hex>`) on the server `DATABASE_URL` names (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Dropping the `TestDb`
//! deletes it, also when the test panicked. Nothing is shared between tests,
//! so they can run in parallel (`cargo test`, `cargo nextest run`).
//!
//! With `CHATKIT_TEST_POOLER_URL` set (a transaction-mode PgBouncer in
//! front of that server, as `scripts/stages/35-replicas.sh` starts one),
//! [`TestDb::open`] opens the PostgreSQL store through the pooler in
//! transaction-pooler mode, with migrations over the direct URL; databases
//! are still created, inspected and dropped directly.
//!
//! Declare it from a test file with `#[path = "support/db.rs"] mod db;`
//! (`#[macro_use]` on it for [`on_both_stores!`]).

#![allow(
    dead_code,
    unused_macros,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

/// Turns `async fn name(backend: Backend)` specifications into two tests
/// each, `sqlite::name` and `postgres::name`. The calling file must have
/// `Backend` in scope.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

use chatkit_engine::store::{DatabaseOptions, PoolerMode, PostgresStore, SharedStore, SqliteStore};
use chatkit_engine::todo::{DEFAULT_TASKS_TABLE, PgTaskTable};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The server used when `DATABASE_URL` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which store implementation a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// [`SqliteStore`] on a temp file.
    Sqlite,
    /// [`PostgresStore`] on a fresh database.
    Postgres,
}

/// An empty database that is deleted on drop.
pub struct TestDb {
    /// The backend.
    pub backend: Backend,
    /// The URL to open it with (`sqlite://...` or `postgres://...`).
    pub url: String,
    /// SQLite: the database file.
    path: Option<PathBuf>,
    /// Postgres: the server's admin URL and the database name, for the drop.
    admin: Option<(String, String)>,
}

impl TestDb {
    /// A fresh, empty database (no migrations applied yet).
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// A fresh SQLite file name in the temp directory (the file is created
    /// when something opens it).
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("chatkit_test_{}.db", random_hex()));
        Self {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", path.display()),
            path: Some(path),
            admin: None,
        }
    }

    /// A fresh PostgreSQL database on the `DATABASE_URL` server.
    pub async fn postgres() -> Self {
        let admin_url = admin_url();
        let name = format!("chatkit_test_{}", random_hex());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot reach PostgreSQL (set DATABASE_URL): {err}"));
        // Concurrent CREATE DATABASE can transiently fail on the template.
        let mut attempt = 0;
        loop {
            match sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(err) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("CREATE DATABASE {name} failed ({err}), retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(err) => panic!("CREATE DATABASE {name}: {err}"),
            }
        }
        let _ = conn.close().await;
        Self {
            backend: Backend::Postgres,
            url: with_database(&admin_url, &name),
            path: None,
            admin: Some((admin_url, name)),
        }
    }

    /// Opens the store on this database with the backend's own `connect`
    /// (which applies the migrations).
    pub async fn open(&self) -> SharedStore {
        match self.backend {
            Backend::Sqlite => Arc::new(SqliteStore::connect(&self.url).await.unwrap()),
            Backend::Postgres => {
                let store = match self.pooled_url() {
                    Some(pooled) => PostgresStore::open(&DatabaseOptions {
                        direct_url: Some(self.url.clone()),
                        pooler: PoolerMode::Transaction,
                        ..DatabaseOptions::new(pooled)
                    })
                    .await
                    .unwrap(),
                    None => PostgresStore::connect(&self.url).await.unwrap(),
                };
                // What the app does on open: the task table too.
                PgTaskTable::open(&store, DEFAULT_TASKS_TABLE)
                    .await
                    .unwrap();
                Arc::new(store)
            }
        }
    }

    /// This PostgreSQL database's URL through the transaction pooler named
    /// by `CHATKIT_TEST_POOLER_URL`, if set.
    pub fn pooled_url(&self) -> Option<String> {
        let (_, name) = self.admin.as_ref()?;
        pooler_url().map(|pooler| with_database(&pooler, name))
    }

    /// A raw PostgreSQL connection whose `search_path` finds the engine
    /// tables (`chatkit`) and then the app's (`public`), for assertions
    /// written with unqualified names.
    pub async fn pg_connection(&self) -> PgConnection {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        sqlx::query("SET search_path TO chatkit, public")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    }

    /// Runs raw SQL (several statements allowed) on a fresh connection.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.sqlite_connection().await;
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = self.pg_connection().await;
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Runs a query returning one integer (e.g. `SELECT COUNT(*) ...`).
    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.sqlite_connection().await;
                let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                value
            }
            Backend::Postgres => {
                let mut conn = self.pg_connection().await;
                let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                value
            }
        }
    }

    /// Runs a PostgreSQL query returning one float (e.g. `EXTRACT(...)`).
    pub async fn scalar_f64(&self, sql: &str) -> f64 {
        let mut conn = self.pg_connection().await;
        let value: f64 = sqlx::query_scalar(&format!("SELECT ({sql})::FLOAT8"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        value
    }

    /// Runs a query returning one text value.
    pub async fn scalar_text(&self, sql: &str) -> String {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.sqlite_connection().await;
                let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                value
            }
            Backend::Postgres => {
                let mut conn = self.pg_connection().await;
                let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                value
            }
        }
    }

    async fn sqlite_connection(&self) -> SqliteConnection {
        SqliteConnectOptions::from_str(&self.url)
            .unwrap()
            .create_if_missing(true)
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
        if let Some((admin_url, name)) = self.admin.take() {
            // Drop may run inside (or while unwinding out of) the test's
            // runtime, so the cleanup gets a thread and a runtime of its own.
            let cleanup = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut conn = PgConnection::connect(&admin_url).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
            });
            match cleanup.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => eprintln!("could not drop test database: {err}"),
                Err(_) => eprintln!("could not drop test database: cleanup thread panicked"),
            }
        }
    }
}

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// The transaction pooler in front of the test server, if the run has one
/// (`CHATKIT_TEST_POOLER_URL`).
pub fn pooler_url() -> Option<String> {
    std::env::var("CHATKIT_TEST_POOLER_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// `url` with its database (path) replaced by `name`, query string kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
