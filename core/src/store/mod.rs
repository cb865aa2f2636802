//! Persistence of threads, items, attachments and feedback, and the turn
//! leases that keep one turn per thread across replicas.
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
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

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

    /// The newest `limit` items of a thread that are model input (every item
    /// but widgets, which a model never reads), oldest first: what a turn
    /// gives the model as history. `NotFound` if the thread is absent or not
    /// the caller's.
    ///
    /// The default pages through [`Store::load_thread_items`]; the built-in
    /// stores filter in the query, so a turn never decodes the widgets of
    /// its history (a task list widget is tens of KiB of JSON).
    async fn load_history_items(
        &self,
        thread_id: &str,
        limit: usize,
        ctx: &RequestContext,
    ) -> Result<Vec<ThreadItem>> {
        let mut newest_first = Vec::with_capacity(limit);
        let mut after: Option<String> = None;
        while newest_first.len() < limit {
            let page = self
                .load_thread_items(thread_id, after.as_deref(), limit, Order::Desc, ctx)
                .await?;
            after = page.data.last().map(|item| item.id.clone());
            newest_first.extend(
                page.data
                    .into_iter()
                    .filter(|item| item.type_name() != "widget"),
            );
            if !page.has_more || after.is_none() {
                break;
            }
        }
        newest_first.truncate(limit);
        newest_first.reverse();
        Ok(newest_first)
    }

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

    /// Stores a pending approval of one of the caller's threads.
    /// `NotFound` if the thread is not theirs.
    async fn save_approval(&self, approval: &PendingApproval, ctx: &RequestContext) -> Result<()>;

    /// Answers the caller's pending approval `id`, exactly once: the first
    /// call marks it `decision` and returns it (also when it has expired:
    /// the caller checks [`PendingApproval::expires_at`]); a second call,
    /// from any process, and another user's id return `None`.
    async fn decide_approval(
        &self,
        id: &str,
        decision: ApprovalDecision,
        ctx: &RequestContext,
    ) -> Result<Option<PendingApproval>>;

    /// Checks that the database answers (for readiness probes).
    async fn ping(&self) -> Result<()>;

    /// Whether this store keeps turn leases that every process sharing the
    /// database sees ([`PostgresStore`]). When `false` (the default, and
    /// [`SqliteStore`]), the engine's in-process lock alone keeps one turn
    /// per thread and the lease methods below are never needed.
    fn shares_turn_leases(&self) -> bool {
        false
    }

    /// Takes the turn lease of a thread for `owner` until `ttl` from now
    /// (the database's clock): granted when no lease exists or the existing
    /// one expired, in one atomic step; `Ok(false)` while another owner
    /// holds an unexpired lease. Scoped by the caller like every method.
    async fn try_lease_turn(
        &self,
        thread_id: &str,
        owner: &str,
        ttl: Duration,
        ctx: &RequestContext,
    ) -> Result<bool> {
        let _ = (thread_id, owner, ttl, ctx);
        Ok(true)
    }

    /// Pushes the expiry of `owner`'s lease to `ttl` from now; `Ok(false)`
    /// when the lease is no longer `owner`'s (it expired and was taken).
    async fn renew_turn_lease(
        &self,
        thread_id: &str,
        owner: &str,
        ttl: Duration,
        ctx: &RequestContext,
    ) -> Result<bool> {
        let _ = (thread_id, owner, ttl, ctx);
        Ok(true)
    }

    /// Ends `owner`'s lease; a no-op when it is not (or no longer) theirs.
    async fn release_turn_lease(
        &self,
        thread_id: &str,
        owner: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        let _ = (thread_id, owner, ctx);
        Ok(())
    }

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

/// A run paused until the user confirms or cancels a tool call.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingApproval {
    /// Its id (in the confirmation widget's actions).
    pub id: String,
    /// The thread of the run.
    pub thread_id: String,
    /// The confirmation widget item.
    pub item_id: String,
    /// What resuming needs (the paused run), as JSON.
    pub payload: Value,
    /// When it was asked.
    pub created_at: crate::protocol::Timestamp,
    /// After this, an answer only says it expired.
    pub expires_at: crate::protocol::Timestamp,
}

/// The user's answer to a pending approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// Run the tool.
    Approved,
    /// Do not run it.
    Declined,
}

impl ApprovalDecision {
    /// `"approved"` or `"declined"` (the stored status).
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::Approved => "approved",
            ApprovalDecision::Declined => "declined",
        }
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

/// Whether the PostgreSQL server is reached through a transaction-mode
/// pooler (PgBouncer, Neon's pooled endpoint), which changes how statements
/// are sent (see [`PgConnectionPool`]'s module rules).
///
/// | Value | Meaning |
/// |---|---|
/// | `auto` (default) | `transaction` when the host name is a Neon pooled endpoint (`…-pooler.…`), `none` otherwise |
/// | `transaction` | a transaction-mode pooler: unnamed statements, each in a transaction |
/// | `none` | a direct connection or a session-mode pooler: named, cached statements |
///
/// `auto` trusts only the host name, never a probe of the server: no query
/// tells reliably whether a pooler sits in between. Set `transaction` for
/// any other transaction-mode pooler.
///
/// ```
/// use chatkit_engine::store::PoolerMode;
/// assert!(PoolerMode::Auto.is_transaction_pooler(
///     "postgres://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/db"
/// ));
/// assert!(!PoolerMode::Auto.is_transaction_pooler("postgres://postgres@127.0.0.1:6432/db"));
/// assert!(PoolerMode::Transaction.is_transaction_pooler("postgres://postgres@127.0.0.1:6432/db"));
/// assert_eq!("transaction".parse::<PoolerMode>().unwrap(), PoolerMode::Transaction);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolerMode {
    /// Decide from the URL's host (Neon's `-pooler` endpoints).
    #[default]
    Auto,
    /// A transaction-mode pooler.
    Transaction,
    /// No transaction-mode pooler.
    None,
}

impl PoolerMode {
    /// Whether a server at `database_url` is treated as reached through a
    /// transaction-mode pooler.
    pub fn is_transaction_pooler(self, database_url: &str) -> bool {
        match self {
            PoolerMode::Transaction => true,
            PoolerMode::None => false,
            PoolerMode::Auto => url_host(database_url)
                .split('.')
                .next()
                .is_some_and(|label| label.ends_with("-pooler")),
        }
    }
}

impl std::str::FromStr for PoolerMode {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(PoolerMode::Auto),
            "transaction" => Ok(PoolerMode::Transaction),
            "none" | "session" => Ok(PoolerMode::None),
            other => Err(Error::Config(format!(
                "the database pooler must be auto, transaction or none, got `{other}`"
            ))),
        }
    }
}

/// The host of a `scheme://user:password@host:port/db` URL (empty if none).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host_port.split(':').next().unwrap_or_default()
}

/// Where and how to open the database (see [`connect_with`]).
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    /// The URL the store's traffic goes to (Neon: the pooled endpoint).
    pub url: String,
    /// A direct URL (Neon: the endpoint without `-pooler`) for migrations,
    /// which hold a session-level advisory lock that a transaction pooler
    /// cannot keep. PostgreSQL only.
    pub direct_url: Option<String>,
    /// The PostgreSQL schema of the engine tables.
    pub schema: String,
    /// Whether `url` goes through a transaction-mode pooler.
    pub pooler: PoolerMode,
}

impl DatabaseOptions {
    /// Options for `url`, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            direct_url: None,
            schema: DEFAULT_SCHEMA.to_owned(),
            pooler: PoolerMode::Auto,
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
    connect_with(&DatabaseOptions {
        schema: schema.to_owned(),
        ..DatabaseOptions::new(database_url)
    })
    .await
}

/// [`connect`] with every option: on PostgreSQL the migrations run over
/// `direct_url` when given, and the pool follows `pooler` (see
/// [`PostgresStore::open`]). SQLite ignores all but the URL.
pub async fn connect_with(options: &DatabaseOptions) -> Result<Database> {
    let database_url = options.url.as_str();
    if is_postgres_url(database_url) {
        Ok(Database::Postgres(PostgresStore::open(options).await?))
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
