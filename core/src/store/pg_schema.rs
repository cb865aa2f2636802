//! Where the engine's tables live on PostgreSQL, and how they get there.
//!
//! | Rule | |
//! |---|---|
//! | Engine tables | `chat_sessions`, `chat_messages`, `chat_attachments`, `chat_feedback`, `chat_turn_leases`, `chat_approvals`, `chat_token_usage` and sqlx's `_sqlx_migrations` live in a schema of their own (default [`DEFAULT_SCHEMA`], `chatkit`), created by the migration |
//! | Queries | name the schema explicitly: nothing depends on the connection's `search_path` |
//! | App tables | never created, altered or dropped here; an app's own `public.chat_sessions` is left exactly as it is |
//! | Earlier layout | a database made by an earlier version (the first migration's tables and `_sqlx_migrations` in `public`, recognised by their `seq` and `payload` columns) is moved into the schema with `ALTER TABLE ... SET SCHEMA`, in one transaction: every row, sequence and index is kept |
//! | Concurrency | several replicas may start at once: the whole migration holds an advisory lock (and sqlx's migrator takes its own) |
//! | Extending | new steps are files `migrations/postgres/NNNN_*.sql`, run with `search_path` set to the engine schema, so they name tables unqualified |
//!
//! ```no_run
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::store::PostgresStore;
//! let store = PostgresStore::connect_in("postgres://postgres@127.0.0.1/app", "chatkit").await?;
//! assert_eq!(store.schema(), "chatkit");
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use sqlx::PgConnection;
use sqlx::migrate::Migrator;

/// The embedded PostgreSQL migrations (`core/migrations/postgres`, the copy
/// of `migrations/postgres` that ships in the crate).
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The schema of the engine's tables unless configured otherwise.
pub const DEFAULT_SCHEMA: &str = "chatkit";

/// The engine tables an earlier layout kept in `public`, in move order.
const ENGINE_TABLES: [&str; 4] = [
    "chat_sessions",
    "chat_messages",
    "chat_attachments",
    "chat_feedback",
];

/// The advisory lock key held while the layout is checked and migrated
/// (`chatkit_engine` in ASCII, so it does not meet sqlx's own key).
const LAYOUT_LOCK: i64 = 0x6368_6174_6b69_7465;

/// What [`PostgresStore::migrate`](super::PostgresStore::migrate) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// The engine schema.
    pub schema: String,
    /// Whether the schema had to be created.
    pub schema_created: bool,
    /// Engine tables moved from `public` (earlier layout), as `public.name`.
    pub moved_tables: Vec<String>,
    /// Migrations applied by this run: `(version, description)`.
    pub applied: Vec<(i64, String)>,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.schema_created {
            writeln!(f, "created schema {}", self.schema)?;
        }
        for table in &self.moved_tables {
            writeln!(f, "moved {table} to schema {}", self.schema)?;
        }
        for (version, description) in &self.applied {
            writeln!(f, "applied migration {version} ({description})")?;
        }
        if !self.schema_created && self.moved_tables.is_empty() && self.applied.is_empty() {
            writeln!(f, "schema {} is up to date", self.schema)?;
        }
        Ok(())
    }
}

/// `name` as a double-quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks a schema name: 1 to 63 bytes, no NUL, not a `pg_` system schema.
pub fn validate_schema(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(Error::Config(format!(
            "invalid PostgreSQL schema name `{name}` (1 to 63 bytes)"
        )));
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Err(Error::Config(format!(
            "`{name}` is a system schema; choose another for the engine tables"
        )));
    }
    Ok(())
}

/// Creates the schema, moves an earlier layout into it and applies the
/// migrations, under [`LAYOUT_LOCK`]. On error the caller must close the
/// connection (which also frees the lock).
pub(crate) async fn migrate(conn: &mut PgConnection, schema: &str) -> Result<MigrationReport> {
    validate_schema(schema)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LAYOUT_LOCK)
        .execute(&mut *conn)
        .await?;
    let report = migrate_locked(conn, schema).await?;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LAYOUT_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(report)
}

async fn migrate_locked(conn: &mut PgConnection, schema: &str) -> Result<MigrationReport> {
    let quoted = quote_ident(schema);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
            .execute(&mut *conn)
            .await?;
    }
    let moved_tables = move_earlier_layout(conn, schema).await?;
    let before = applied_versions(conn, schema).await?;
    sqlx::query("SELECT set_config('search_path', $1, false)")
        .bind(&quoted)
        .execute(&mut *conn)
        .await?;
    MIGRATOR.run_direct(&mut *conn).await?;
    sqlx::query("RESET search_path").execute(&mut *conn).await?;
    let applied = applied_versions(conn, schema)
        .await?
        .into_iter()
        .filter(|row| !before.contains(row))
        .collect();
    Ok(MigrationReport {
        schema: schema.to_owned(),
        schema_created: !exists,
        moved_tables,
        applied,
    })
}

/// The versions of the embedded migrations that the schema lacks, checked
/// with plain queries on the pool (so also through a transaction pooler).
pub(crate) async fn pending(pool: &super::PgConnectionPool, schema: &str) -> Result<Vec<i64>> {
    let table = format!("{}._sqlx_migrations", quote_ident(schema));
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(pool)
        .await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar(&format!("SELECT version FROM {table} WHERE success"))
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect())
}

/// The `(version, description)` rows of the schema's `_sqlx_migrations`.
async fn applied_versions(conn: &mut PgConnection, schema: &str) -> Result<Vec<(i64, String)>> {
    let table = format!("{}._sqlx_migrations", quote_ident(schema));
    if !relation_exists(conn, &table).await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
        "SELECT version, description FROM {table} WHERE success ORDER BY version"
    ))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows)
}

async fn relation_exists(conn: &mut PgConnection, qualified: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(qualified)
        .fetch_one(&mut *conn)
        .await?)
}

/// Whether `public.table` has `column`.
async fn public_column(conn: &mut PgConnection, table: &str, column: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2)",
    )
    .bind(table)
    .bind(column)
    .fetch_one(&mut *conn)
    .await?)
}

/// Moves the engine tables of the earlier layout from `public` into
/// `schema`, with their migration history (see the module rules).
async fn move_earlier_layout(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>> {
    let quoted = quote_ident(schema);
    if schema == "public"
        || relation_exists(conn, &format!("{quoted}.chat_sessions")).await?
        || !(public_column(conn, "chat_sessions", "seq").await?
            && public_column(conn, "chat_sessions", "payload").await?
            && public_column(conn, "chat_messages", "payload").await?)
    {
        return Ok(Vec::new());
    }
    let ours: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let mut moved = Vec::new();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for table in ENGINE_TABLES {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("public.{table}"))
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {quoted}"))
                .execute(&mut *tx)
                .await?;
            moved.push(format!("public.{table}"));
        }
    }
    let history: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await?;
    if history {
        let foreign: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM public._sqlx_migrations WHERE NOT (version = ANY($1))",
        )
        .bind(&ours)
        .fetch_one(&mut *tx)
        .await?;
        if foreign == 0 {
            sqlx::query(&format!(
                "ALTER TABLE public._sqlx_migrations SET SCHEMA {quoted}"
            ))
            .execute(&mut *tx)
            .await?;
            moved.push("public._sqlx_migrations".to_owned());
        } else {
            // Another program's history shares the table: copy ours, touch nothing.
            sqlx::query(&format!(
                "CREATE TABLE {quoted}._sqlx_migrations \
                 (LIKE public._sqlx_migrations INCLUDING ALL)"
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "INSERT INTO {quoted}._sqlx_migrations \
                 SELECT * FROM public._sqlx_migrations WHERE version = ANY($1)"
            ))
            .bind(&ours)
            .execute(&mut *tx)
            .await?;
        }
        // The first migration no longer creates the app's `tasks` table in
        // the engine schema; the moved history adopts its current checksum.
        if let Some(init) = MIGRATOR.iter().find(|m| m.version == 1) {
            sqlx::query(&format!(
                "UPDATE {quoted}._sqlx_migrations SET checksum = $1 \
                 WHERE version = 1 AND description = $2"
            ))
            .bind(init.checksum.as_ref())
            .bind(init.description.as_ref())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    for table in &moved {
        tracing::info!(table = %table, schema, "moved engine table from the earlier layout");
    }
    Ok(moved)
}
