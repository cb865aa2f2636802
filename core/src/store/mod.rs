//! Persistence of threads, items, attachments and feedback.
//!
//! [`Store`] has the semantics the ChatKit server relies on (reference §4):
//! `save_thread`, `add_thread_item`, `save_item` and `save_attachment` are
//! upserts; item and thread lists are cursor-paginated in both orders;
//! deleting an unknown item is a no-op. Every method receives the
//! [`RequestContext`] and every query filters by its `user_id`: another user's
//! row is reported as [`Error::NotFound`], exactly like a missing one.
//!
//! Two implementations ship: [`SqliteStore`] (the embedded default) and
//! [`PostgresStore`] (production). Both embed their migrations and apply them
//! when opened.
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::{RequestContext, store::{SqliteStore, Store}};
//! use chatkit_engine::protocol::{new_id, IdKind, ThreadMetadata, Timestamp};
//! let store = SqliteStore::in_memory().await?;
//! let alice = RequestContext::new("alice");
//! let thread = ThreadMetadata::new(new_id(IdKind::Thread), Timestamp::now());
//! store.save_thread(&thread, &alice).await?;
//! assert_eq!(store.load_thread(&thread.id, &alice).await?.id, thread.id);
//! // Bob cannot see Alice's thread.
//! let bob = RequestContext::new("bob");
//! assert_eq!(store.load_thread(&thread.id, &bob).await.unwrap_err().code(), "not_found");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

mod metered;
mod pg_pool;
pub mod pg_schema;
mod postgres;
mod sqlite;

pub(crate) use metered::Metered;
pub use pg_pool::{PgConnectionPool, PoolSettings, PooledConnection};
pub use pg_schema::{DEFAULT_SCHEMA, MigrationReport};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{Attachment, FeedbackKind, Order, Page, ThreadItem, ThreadMetadata};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The largest page a store returns, whatever `limit` asks for.
pub const MAX_PAGE_SIZE: usize = 200;

/// Storage of ChatKit threads, items, attachments and feedback, scoped to the
/// calling user.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Loads a thread's metadata. `NotFound` if absent or not the caller's.
    async fn load_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<ThreadMetadata>;

    /// Inserts or updates a thread's metadata (title, status, metadata,
    /// allowed image domains). An existing thread keeps its `created_at` and
    /// its position in the thread list.
    async fn save_thread(&self, thread: &ThreadMetadata, ctx: &RequestContext) -> Result<()>;

    /// One page of the caller's threads, in the order they were first saved
    /// (creation order). `after` is the id of the last thread of the previous
    /// page; an id that is not one of the caller's threads is `InvalidRequest`.
    async fn load_threads(
        &self,
        limit: usize,
        after: Option<&str>,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadMetadata>>;

    /// Deletes a thread with its items and their feedback. A no-op for an
    /// unknown thread. Attachments are kept: their bytes belong to the
    /// attachment store, so they are removed through `delete_attachment`.
    async fn delete_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<()>;

    /// One page of a thread's items (hidden items included), in insertion
    /// order. `after` is the id of the last item of the previous page; an id
    /// that is not an item of this thread is `InvalidRequest`.
    /// `NotFound` if the thread is absent or not the caller's.
    async fn load_thread_items(
        &self,
        thread_id: &str,
        after: Option<&str>,
        limit: usize,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadItem>>;

    /// Persists an item. An existing item with the same id is replaced in
    /// place (keeping its position).
    async fn add_thread_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()>;

    /// Upserts an item by id (replace, client tool output).
    async fn save_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()>;

    /// Loads one item. `NotFound` if absent or not the caller's.
    async fn load_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<ThreadItem>;

    /// Deletes one item; a no-op for an unknown id.
    async fn delete_thread_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<()>;

    /// Inserts or updates an attachment (including its private metadata).
    async fn save_attachment(&self, attachment: &Attachment, ctx: &RequestContext) -> Result<()>;

    /// Loads an attachment. `NotFound` if absent or not the caller's.
    async fn load_attachment(
        &self,
        attachment_id: &str,
        ctx: &RequestContext,
    ) -> Result<Attachment>;

    /// Deletes an attachment; a no-op for an unknown id.
    async fn delete_attachment(&self, attachment_id: &str, ctx: &RequestContext) -> Result<()>;

    /// Records the caller's feedback on items of one of their threads (the
    /// latest rating of an item wins). `NotFound` if the thread is not theirs.
    async fn add_feedback(
        &self,
        thread_id: &str,
        item_ids: &[String],
        kind: FeedbackKind,
        ctx: &RequestContext,
    ) -> Result<()>;

    /// The caller's current rating of an item, if any.
    async fn load_feedback(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<Option<FeedbackKind>>;

    /// Checks that the database answers (for readiness probes).
    async fn ping(&self) -> Result<()>;

    /// Records the tokens of one turn (an upsert by `usage.turn_id`).
    /// Usage rows outlive their thread: deleting a thread does not give the
    /// user their tokens back.
    async fn record_turn_usage(&self, usage: &TurnUsage, ctx: &RequestContext) -> Result<()>;

    /// The caller's token totals over `scope`.
    async fn token_usage(&self, scope: &UsageScope, ctx: &RequestContext) -> Result<UsageTotals>;

    /// The backend's name in metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str {
        "custom"
    }
}

/// The tokens one turn spent, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnUsage {
    /// The turn's id (`turn_...`).
    pub turn_id: String,
    /// The thread it answered.
    pub thread_id: String,
    /// The UTC day the turn started, `YYYY-MM-DD` (what budgets count by).
    pub day: String,
    /// Prompt tokens of every model call of the turn.
    pub input_tokens: u64,
    /// Generated tokens of every model call of the turn.
    pub output_tokens: u64,
    /// Model calls made.
    pub model_calls: u64,
    /// Whether any count was estimated (the provider reported none).
    pub estimated: bool,
}

/// Which of the caller's turns [`Store::token_usage`] adds up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "value", rename_all = "snake_case")]
pub enum UsageScope {
    /// Every turn.
    All,
    /// Turns started on this UTC day (`YYYY-MM-DD`).
    Day(String),
    /// Turns of this thread.
    Thread(String),
    /// One turn.
    Turn(String),
}

/// Token totals of some turns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Turns counted.
    pub turns: u64,
    /// Model calls counted.
    pub model_calls: u64,
    /// Whether any of the counts was estimated.
    pub estimated: bool,
}

impl UsageTotals {
    /// Input plus output tokens (what budgets count).
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A store count read back as `u64` (stored as signed 64-bit integers).
pub(crate) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A token count as stored (signed 64-bit integers; saturates).
pub(crate) fn stored(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A shared, type-erased store.
pub type SharedStore = Arc<dyn Store>;

/// An opened database of either backend: the engine's [`Store`], and the
/// pool an app's own tables on the same database can use.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file or in-memory database.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

impl Database {
    /// The engine's store on this database.
    pub fn store(&self) -> SharedStore {
        match self {
            Database::Sqlite(store) => Arc::new(store.clone()),
            Database::Postgres(store) => Arc::new(store.clone()),
        }
    }
}

/// Opens the database a URL names: `postgres://` / `postgresql://` for
/// [`PostgresStore`] (engine tables in [`DEFAULT_SCHEMA`]), `sqlite:` for
/// [`SqliteStore`] (a file path such as `sqlite://chat.db` is created if
/// missing). Migrations are applied.
pub async fn connect(database_url: &str) -> Result<Database> {
    connect_in(database_url, DEFAULT_SCHEMA).await
}

/// [`connect`] with the PostgreSQL engine tables in `schema` (SQLite has no
/// schemas and ignores it).
pub async fn connect_in(database_url: &str, schema: &str) -> Result<Database> {
    if is_postgres_url(database_url) {
        Ok(Database::Postgres(
            PostgresStore::connect_in(database_url, schema).await?,
        ))
    } else if database_url.starts_with("sqlite:") {
        Ok(Database::Sqlite(SqliteStore::connect(database_url).await?))
    } else {
        Err(Error::Config(format!(
            "unsupported database URL scheme in `{}` (use postgres:// or sqlite:)",
            database_url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Whether a URL names a PostgreSQL database.
pub fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// Opens the store a database URL names (see [`connect`]).
pub async fn open(database_url: &str) -> Result<SharedStore> {
    connect(database_url).await.map(|database| database.store())
}

/// Clamps a requested page size to `1..=MAX_PAGE_SIZE`.
pub(crate) fn clamp_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE_SIZE)
}
