//! The SQLite store: the embedded default, one file (or memory) per database.
//!
//! Payloads are kept as the exact wire JSON in `TEXT` columns, timestamps as
//! microseconds since the Unix epoch, and every table has a monotonic `seq`
//! (`INTEGER PRIMARY KEY AUTOINCREMENT`) that orders threads and items. The
//! schema lives in `migrations/sqlite` and is applied when the store opens.

use super::{
    ApprovalDecision, PendingApproval, Store, TurnUsage, UsageScope, UsageTotals, clamp_limit,
    count, stored,
};
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{
    Attachment, FeedbackKind, Order, Page, ThreadItem, ThreadMetadata, Timestamp, json,
};
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The embedded SQLite migrations (`core/migrations/sqlite`, the copy of
/// `migrations/sqlite` that ships in the crate).
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a connection waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a file database pool (WAL: many readers, one writer).
const MAX_FILE_CONNECTIONS: u32 = 8;

/// A [`Store`] on SQLite: the embedded default.
///
/// Cloning is cheap and clones share the connection pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// In-memory databases only: a connection outside the pool that keeps
    /// the database alive when the pool replaces its connection (sqlx closes
    /// a connection whose query was cancelled mid-way).
    _keep_alive: Option<Arc<KeepAlive>>,
}

/// Holds a connection open for as long as any clone of the store lives.
struct KeepAlive {
    _connection: std::sync::Mutex<SqliteConnection>,
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepAlive")
    }
}

impl SqliteStore {
    /// Opens the database a `sqlite:` URL names (for example
    /// `sqlite://chat.db` or `sqlite:///var/lib/app/chat.db`), creating the
    /// file if it is missing, and applies the migrations.
    ///
    /// The connections use WAL journaling, enforce foreign keys and wait up to
    /// five seconds for a concurrent writer. `sqlite::memory:` opens a private
    /// in-memory database, like [`SqliteStore::in_memory`].
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| Error::Config(format!("invalid SQLite URL: {err}")))?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Self::open_in_memory(options).await;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_FILE_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        tracing::debug!("opened SQLite database file");
        Self::from_pool(pool).await
    }

    /// A fresh, empty in-memory database, private to this store (and its
    /// clones). It lives as long as the store does.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::open_in_memory(options).await
    }

    /// Wraps an existing pool and applies the migrations.
    ///
    /// The pool's connections should enforce foreign keys and have a busy
    /// timeout, as [`SqliteStore::connect`] sets up; the store does not rely
    /// on either for correctness.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        MIGRATOR.run(&pool).await?;
        tracing::debug!("SQLite migrations applied");
        Ok(Self {
            pool,
            _keep_alive: None,
        })
    }

    /// The underlying connection pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// An in-memory database exists only while a connection to it is open:
    /// one connection is held outside the pool for the store's lifetime, and
    /// the pool uses a single connection (shared-cache databases lock whole
    /// tables, so more would only contend).
    async fn open_in_memory(options: SqliteConnectOptions) -> Result<Self> {
        let options = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        let keeper = SqliteConnection::connect_with(&options).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let store = Self::from_pool(pool).await?;
        Ok(Self {
            _keep_alive: Some(Arc::new(KeepAlive {
                _connection: std::sync::Mutex::new(keeper),
            })),
            ..store
        })
    }

    /// `NotFound` unless the caller owns the thread.
    async fn require_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<()> {
        let found = sqlx::query("SELECT 1 FROM chat_sessions WHERE user_id = ? AND id = ?")
            .bind(&ctx.user_id)
            .bind(thread_id)
            .fetch_optional(&self.pool)
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(Error::not_found("thread", thread_id)),
        }
    }

    /// Inserts or replaces an item of one of the caller's threads.
    async fn upsert_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()> {
        let payload = encode(item)?;
        // The ownership check and the write are one statement; on conflict
        // the row (and so its seq, its position) is kept.
        let done = sqlx::query(
            "INSERT INTO chat_messages (id, thread_id, user_id, item_type, created_at, payload) \
             SELECT ?, ?, ?, ?, ?, ? \
             WHERE EXISTS (SELECT 1 FROM chat_sessions WHERE user_id = ? AND id = ?) \
             ON CONFLICT (user_id, thread_id, id) DO UPDATE SET \
             item_type = excluded.item_type, created_at = excluded.created_at, \
             payload = excluded.payload",
        )
        .bind(&item.id)
        .bind(thread_id)
        .bind(&ctx.user_id)
        .bind(item.type_name())
        .bind(item.created_at.as_micros())
        .bind(&payload)
        .bind(&ctx.user_id)
        .bind(thread_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("thread", thread_id));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<ThreadMetadata> {
        let row = sqlx::query(
            "SELECT created_at, payload FROM chat_sessions WHERE user_id = ? AND id = ?",
        )
        .bind(&ctx.user_id)
        .bind(thread_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("thread", thread_id))?;
        thread_from_row(&row)
    }

    async fn save_thread(&self, thread: &ThreadMetadata, ctx: &RequestContext) -> Result<()> {
        let payload = encode(thread)?;
        let row = sqlx::query(
            "INSERT INTO chat_sessions (id, user_id, title, created_at, updated_at, payload) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_id, id) DO UPDATE SET \
             title = excluded.title, updated_at = excluded.updated_at, \
             payload = excluded.payload \
             RETURNING created_at",
        )
        .bind(&thread.id)
        .bind(&ctx.user_id)
        .bind(thread.title.as_deref())
        .bind(thread.created_at.as_micros())
        .bind(Timestamp::now().as_micros())
        .bind(&payload)
        .fetch_one(&self.pool)
        .await?;
        // An existing thread keeps its creation time; keep the payload truthful.
        let created_at: i64 = row.try_get("created_at")?;
        if created_at != thread.created_at.as_micros() {
            let mut kept = thread.clone();
            kept.created_at = micros_to_timestamp(created_at)?;
            sqlx::query("UPDATE chat_sessions SET payload = ? WHERE user_id = ? AND id = ?")
                .bind(encode(&kept)?)
                .bind(&ctx.user_id)
                .bind(&thread.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn load_threads(
        &self,
        limit: usize,
        after: Option<&str>,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadMetadata>> {
        let limit = clamp_limit(limit);
        let cursor = match after {
            Some(id) => {
                let seq: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM chat_sessions WHERE user_id = ? AND id = ?",
                )
                .bind(&ctx.user_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Some(seq.ok_or_else(|| unknown_cursor(id))?)
            }
            None => None,
        };
        let sql = match order {
            Order::Asc => {
                "SELECT created_at, payload FROM chat_sessions WHERE user_id = ? AND seq > ? \
                 ORDER BY seq ASC LIMIT ?"
            }
            Order::Desc => {
                "SELECT created_at, payload FROM chat_sessions WHERE user_id = ? AND seq < ? \
                 ORDER BY seq DESC LIMIT ?"
            }
        };
        let rows = sqlx::query(sql)
            .bind(&ctx.user_id)
            .bind(cursor.unwrap_or_else(|| open_cursor(order)))
            .bind(fetch_size(limit))
            .fetch_all(&self.pool)
            .await?;
        let threads = rows
            .iter()
            .map(thread_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(finish_page(threads, limit, |thread| &thread.id))
    }

    async fn delete_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM chat_feedback WHERE user_id = ? AND thread_id = ?",
            "DELETE FROM chat_messages WHERE user_id = ? AND thread_id = ?",
            "DELETE FROM chat_sessions WHERE user_id = ? AND id = ?",
        ] {
            sqlx::query(sql)
                .bind(&ctx.user_id)
                .bind(thread_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_thread_items(
        &self,
        thread_id: &str,
        after: Option<&str>,
        limit: usize,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadItem>> {
        let limit = clamp_limit(limit);
        // Rows are filtered by owner, so finding the cursor or any item
        // proves the caller owns the thread; the separate ownership query
        // only runs when nothing was found, to tell the two cases apart.
        let cursor = match after {
            Some(id) => {
                let seq: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM chat_messages WHERE user_id = ? AND thread_id = ? AND id = ?",
                )
                .bind(&ctx.user_id)
                .bind(thread_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                match seq {
                    Some(seq) => Some(seq),
                    None => {
                        self.require_thread(thread_id, ctx).await?;
                        return Err(unknown_cursor(id));
                    }
                }
            }
            None => None,
        };
        let sql = match order {
            Order::Asc => {
                "SELECT payload FROM chat_messages WHERE user_id = ? AND thread_id = ? \
                 AND seq > ? ORDER BY seq ASC LIMIT ?"
            }
            Order::Desc => {
                "SELECT payload FROM chat_messages WHERE user_id = ? AND thread_id = ? \
                 AND seq < ? ORDER BY seq DESC LIMIT ?"
            }
        };
        let payloads: Vec<String> = sqlx::query_scalar(sql)
            .bind(&ctx.user_id)
            .bind(thread_id)
            .bind(cursor.unwrap_or_else(|| open_cursor(order)))
            .bind(fetch_size(limit))
            .fetch_all(&self.pool)
            .await?;
        if payloads.is_empty() && cursor.is_none() {
            self.require_thread(thread_id, ctx).await?;
        }
        let items = payloads
            .iter()
            .map(|payload| decode::<ThreadItem>(payload, "item"))
            .collect::<Result<Vec<_>>>()?;
        Ok(finish_page(items, limit, |item| &item.id))
    }

    async fn load_history_items(
        &self,
        thread_id: &str,
        limit: usize,
        ctx: &RequestContext,
    ) -> Result<Vec<ThreadItem>> {
        let payloads: Vec<String> = sqlx::query_scalar(
            "SELECT payload FROM chat_messages WHERE user_id = ? AND thread_id = ? \
             AND item_type <> 'widget' ORDER BY seq DESC LIMIT ?",
        )
        .bind(&ctx.user_id)
        .bind(thread_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        if payloads.is_empty() {
            self.require_thread(thread_id, ctx).await?;
        }
        payloads
            .iter()
            .rev()
            .map(|payload| decode::<ThreadItem>(payload, "item"))
            .collect()
    }

    async fn add_thread_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.upsert_item(thread_id, item, ctx).await
    }

    async fn save_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.upsert_item(thread_id, item, ctx).await
    }

    async fn load_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<ThreadItem> {
        let payload: String = sqlx::query_scalar(
            "SELECT payload FROM chat_messages WHERE user_id = ? AND thread_id = ? AND id = ?",
        )
        .bind(&ctx.user_id)
        .bind(thread_id)
        .bind(item_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("item", item_id))?;
        decode(&payload, "item")
    }

    async fn delete_thread_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM chat_messages WHERE user_id = ? AND thread_id = ? AND id = ?",
            "DELETE FROM chat_feedback WHERE user_id = ? AND thread_id = ? AND item_id = ?",
        ] {
            sqlx::query(sql)
                .bind(&ctx.user_id)
                .bind(thread_id)
                .bind(item_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_attachment(&self, attachment: &Attachment, ctx: &RequestContext) -> Result<()> {
        // `metadata` is never serialized, so it gets its own column.
        let payload = encode(attachment)?;
        let metadata = attachment.metadata.as_ref().map(encode).transpose()?;
        sqlx::query(
            "INSERT INTO chat_attachments (id, user_id, thread_id, payload, metadata, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_id, id) DO UPDATE SET \
             thread_id = excluded.thread_id, payload = excluded.payload, \
             metadata = excluded.metadata, updated_at = excluded.updated_at",
        )
        .bind(&attachment.id)
        .bind(&ctx.user_id)
        .bind(attachment.thread_id.as_deref())
        .bind(&payload)
        .bind(metadata.as_deref())
        .bind(Timestamp::now().as_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load_attachment(
        &self,
        attachment_id: &str,
        ctx: &RequestContext,
    ) -> Result<Attachment> {
        let row = sqlx::query(
            "SELECT payload, metadata FROM chat_attachments WHERE user_id = ? AND id = ?",
        )
        .bind(&ctx.user_id)
        .bind(attachment_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("attachment", attachment_id))?;
        let payload: String = row.try_get("payload")?;
        let metadata: Option<String> = row.try_get("metadata")?;
        let mut attachment: Attachment = decode(&payload, "attachment")?;
        attachment.metadata = metadata
            .map(|text| decode::<Map<String, Value>>(&text, "attachment metadata"))
            .transpose()?;
        Ok(attachment)
    }

    async fn delete_attachment(&self, attachment_id: &str, ctx: &RequestContext) -> Result<()> {
        sqlx::query("DELETE FROM chat_attachments WHERE user_id = ? AND id = ?")
            .bind(&ctx.user_id)
            .bind(attachment_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_feedback(
        &self,
        thread_id: &str,
        item_ids: &[String],
        kind: FeedbackKind,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.require_thread(thread_id, ctx).await?;
        let now = Timestamp::now().as_micros();
        // Writes only, so the transaction takes the write lock on its first
        // statement (no read-to-write upgrade that could fail as busy).
        let mut tx = self.pool.begin().await?;
        for item_id in item_ids {
            let done = sqlx::query(
                "INSERT INTO chat_feedback (user_id, thread_id, item_id, kind, created_at) \
                 SELECT ?, ?, ?, ?, ? \
                 WHERE EXISTS (SELECT 1 FROM chat_messages WHERE user_id = ? AND thread_id = ? AND id = ?) \
                 ON CONFLICT (user_id, thread_id, item_id) DO UPDATE SET \
                 kind = excluded.kind, created_at = excluded.created_at",
            )
            .bind(&ctx.user_id)
            .bind(thread_id)
            .bind(item_id)
            .bind(kind.as_str())
            .bind(now)
            .bind(&ctx.user_id)
            .bind(thread_id)
            .bind(item_id)
            .execute(&mut *tx)
            .await?;
            // Only items of this thread can be rated.
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(Error::not_found("item", item_id.as_str()));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_feedback(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<Option<FeedbackKind>> {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM chat_feedback WHERE user_id = ? AND thread_id = ? AND item_id = ?",
        )
        .bind(&ctx.user_id)
        .bind(thread_id)
        .bind(item_id)
        .fetch_optional(&self.pool)
        .await?;
        kind.as_deref().map(feedback_kind).transpose()
    }

    async fn save_approval(&self, approval: &PendingApproval, ctx: &RequestContext) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO chat_approvals (id, user_id, thread_id, item_id, payload, created_at, expires_at) \
             SELECT ?, ?, ?, ?, ?, ?, ? \
             WHERE EXISTS (SELECT 1 FROM chat_sessions WHERE user_id = ? AND id = ?)",
        )
        .bind(&approval.id)
        .bind(&ctx.user_id)
        .bind(&approval.thread_id)
        .bind(&approval.item_id)
        .bind(encode(&approval.payload)?)
        .bind(approval.created_at.as_micros())
        .bind(approval.expires_at.as_micros())
        .bind(&ctx.user_id)
        .bind(&approval.thread_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("thread", approval.thread_id.as_str()));
        }
        Ok(())
    }

    async fn decide_approval(
        &self,
        id: &str,
        decision: ApprovalDecision,
        ctx: &RequestContext,
    ) -> Result<Option<PendingApproval>> {
        // One statement: of two concurrent answers, one updates the row and
        // the other finds it no longer pending.
        let row = sqlx::query(
            "UPDATE chat_approvals SET status = ? \
             WHERE user_id = ? AND id = ? AND status = 'pending' \
             RETURNING thread_id, item_id, payload, created_at, expires_at",
        )
        .bind(decision.as_str())
        .bind(&ctx.user_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let payload: String = row.try_get("payload")?;
        let micros = |column: &str| -> Result<Timestamp> {
            let value: i64 = row.try_get(column)?;
            Timestamp::from_micros(value)
                .ok_or_else(|| Error::storage(format!("corrupt stored approval {column}")))
        };
        Ok(Some(PendingApproval {
            id: id.to_owned(),
            thread_id: row.try_get("thread_id")?,
            item_id: row.try_get("item_id")?,
            payload: decode(&payload, "approval")?,
            created_at: micros("created_at")?,
            expires_at: micros("expires_at")?,
        }))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn record_turn_usage(&self, usage: &TurnUsage, ctx: &RequestContext) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_token_usage (user_id, turn_id, thread_id, day, input_tokens, \
             output_tokens, model_calls, estimated, recorded_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_id, turn_id) DO UPDATE SET \
             input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
             model_calls = excluded.model_calls, estimated = excluded.estimated, \
             recorded_at = excluded.recorded_at",
        )
        .bind(&ctx.user_id)
        .bind(&usage.turn_id)
        .bind(&usage.thread_id)
        .bind(&usage.day)
        .bind(stored(usage.input_tokens))
        .bind(stored(usage.output_tokens))
        .bind(stored(usage.model_calls))
        .bind(usage.estimated)
        .bind(Timestamp::now().as_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token_usage(&self, scope: &UsageScope, ctx: &RequestContext) -> Result<UsageTotals> {
        const TOTALS: &str = "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), \
             COUNT(*), COALESCE(SUM(model_calls), 0), COALESCE(MAX(estimated), 0) \
             FROM chat_token_usage WHERE user_id = ?";
        let (sql, value) = match scope {
            UsageScope::All => (TOTALS.to_owned(), None),
            UsageScope::Day(day) => (format!("{TOTALS} AND day = ?"), Some(day)),
            UsageScope::Thread(id) => (format!("{TOTALS} AND thread_id = ?"), Some(id)),
            UsageScope::Turn(id) => (format!("{TOTALS} AND turn_id = ?"), Some(id)),
        };
        let mut query = sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(&sql).bind(&ctx.user_id);
        if let Some(value) = value {
            query = query.bind(value);
        }
        let (input, output, turns, calls, estimated) = query.fetch_one(&self.pool).await?;
        Ok(UsageTotals {
            input_tokens: count(input),
            output_tokens: count(output),
            turns: count(turns),
            model_calls: count(calls),
            estimated: estimated != 0,
        })
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// A thread from a `(created_at, payload)` row; the column's creation time wins.
fn thread_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ThreadMetadata> {
    let created_at: i64 = row.try_get("created_at")?;
    let payload: String = row.try_get("payload")?;
    let mut thread: ThreadMetadata = decode(&payload, "thread")?;
    thread.created_at = micros_to_timestamp(created_at)?;
    Ok(thread)
}

/// Serializes a payload exactly as the wire needs it.
fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    json::to_string(value)
        .map_err(|err| Error::Internal(format!("cannot serialize payload: {err}")))
}

/// Parses a stored payload.
fn decode<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|err| Error::storage_caused_by(format_args!("corrupt stored {what}"), err))
}

fn micros_to_timestamp(micros: i64) -> Result<Timestamp> {
    Timestamp::from_micros(micros)
        .ok_or_else(|| Error::storage(format!("stored timestamp out of range: {micros}")))
}

fn feedback_kind(text: &str) -> Result<FeedbackKind> {
    match text {
        "positive" => Ok(FeedbackKind::Positive),
        "negative" => Ok(FeedbackKind::Negative),
        other => Err(Error::storage(format!(
            "corrupt stored feedback kind `{other}`"
        ))),
    }
}

fn unknown_cursor(id: &str) -> Error {
    Error::invalid(format!("unknown cursor `{id}`"))
}

/// The cursor value that lets every row through in `order`.
fn open_cursor(order: Order) -> i64 {
    match order {
        Order::Asc => i64::MIN,
        Order::Desc => i64::MAX,
    }
}

/// One row more than the page, to learn whether more follow.
fn fetch_size(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
}

/// Cuts the extra row off and sets `has_more` / `after`.
fn finish_page<T>(mut data: Vec<T>, limit: usize, id_of: impl Fn(&T) -> &String) -> Page<T> {
    let has_more = data.len() > limit;
    data.truncate(limit);
    let after = if has_more {
        data.last().map(|last| id_of(last).clone())
    } else {
        None
    };
    Page {
        data,
        has_more,
        after,
    }
}
