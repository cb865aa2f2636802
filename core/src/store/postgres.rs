//! The PostgreSQL store: the production backend (Neon compatible).
//!
//! Payloads are kept as the exact wire JSON in `TEXT` columns (never `JSONB`,
//! which reorders keys), timestamps as `TIMESTAMPTZ` (microsecond precision),
//! and every table has a monotonic `seq` (`BIGSERIAL`) that orders threads and
//! items. The tables live in the engine schema (default `chatkit`, see
//! [`super::pg_schema`]); `migrations/postgres` is applied there when the
//! store opens, and every statement names the schema.

use super::pg_pool::{PgConnectionPool, PoolSettings};
use super::pg_schema::{self, DEFAULT_SCHEMA, MigrationReport, quote_ident, validate_schema};
use super::{
    ApprovalDecision, DatabaseOptions, PendingApproval, Store, TurnUsage, UsageScope, UsageTotals,
    clamp_limit, count, stored,
};
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{
    Attachment, FeedbackKind, Order, Page, ThreadItem, ThreadMetadata, Timestamp, json,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A [`Store`] on PostgreSQL: the production backend.
///
/// The tables live in the engine schema ([`DEFAULT_SCHEMA`] unless chosen with
/// [`PostgresStore::connect_in`]); see [`super::pg_schema`] for the rules.
/// Cloning is cheap and clones share the connection pool.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgConnectionPool,
    schema: Arc<str>,
    sql: Arc<Sql>,
}

impl PostgresStore {
    /// Connects to the database a `postgres://` / `postgresql://` URL names
    /// and applies the migrations in the default schema, with the default
    /// [`PoolSettings`].
    ///
    /// TLS follows the URL's `sslmode` (Neon URLs carry `sslmode=require`).
    /// Idle connections are recycled before a serverless endpoint would drop
    /// them, and one that sat idle for half a second or more is checked
    /// before it is handed out.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_in(url, DEFAULT_SCHEMA).await
    }

    /// [`PostgresStore::connect`] with the engine tables in `schema`.
    pub async fn connect_in(url: &str, schema: &str) -> Result<Self> {
        let pool = Self::pool_for(url).await?;
        Self::with_pool_in(pool, schema).await
    }

    /// A pool on the database a URL names (no migration).
    pub async fn pool_for(url: &str) -> Result<PgConnectionPool> {
        Self::pool_with(url, PoolSettings::default()).await
    }

    /// A pool on the database a URL names with explicit settings (no
    /// migration).
    pub async fn pool_with(url: &str, settings: PoolSettings) -> Result<PgConnectionPool> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| Error::Config(format!("invalid PostgreSQL URL: {err}")))?;
        let transaction_pooler = settings.transaction_pooler;
        let pool = PgConnectionPool::connect(options, settings).await?;
        tracing::debug!(transaction_pooler, "connected to PostgreSQL");
        Ok(pool)
    }

    /// Opens the store as [`DatabaseOptions`] say, the way replicas behind
    /// one database do:
    ///
    /// | Given | Migrations |
    /// |---|---|
    /// | `direct_url` | applied over a connection of its own to that URL, closed afterwards (under advisory locks, so replicas starting together apply each one exactly once) |
    /// | no `direct_url`, no transaction pooler | applied over the store's pool |
    /// | no `direct_url`, transaction pooler | only checked: a pending migration is an `invalid_config` error naming `DATABASE_URL_DIRECT`, because the migration's session-level lock cannot be held through such a pooler |
    pub async fn open(options: &DatabaseOptions) -> Result<Self> {
        validate_schema(&options.schema)?;
        let transaction_pooler = options.pooler.is_transaction_pooler(&options.url);
        if let Some(direct) = &options.direct_url {
            let direct = Self::pool_with(
                direct,
                PoolSettings {
                    max_connections: 1,
                    ..PoolSettings::default()
                },
            )
            .await?;
            let migrated = Self::migrate(&direct, &options.schema).await;
            direct.close().await;
            let report = migrated?;
            tracing::debug!(
                schema = options.schema,
                applied = report.applied.len(),
                "PostgreSQL migrations applied over the direct URL"
            );
        }
        let pool = Self::pool_with(
            &options.url,
            PoolSettings {
                transaction_pooler,
                ..PoolSettings::default()
            },
        )
        .await?;
        if options.direct_url.is_some() {
            Self::without_migrating(pool, &options.schema)
        } else if transaction_pooler {
            let pending = pg_schema::pending(&pool, &options.schema).await?;
            if let Some(first) = pending.first() {
                return Err(Error::Config(format!(
                    "migration {first} of the engine tables is not applied, and it cannot run \
                     through a transaction-mode pooler: set DATABASE_URL_DIRECT (or the \
                     database_url_direct setting) to the database's direct URL, or run \
                     `chatkit-admin migrate` with it first"
                )));
            }
            Self::without_migrating(pool, &options.schema)
        } else {
            Self::with_pool_in(pool, &options.schema).await
        }
    }

    /// Uses an existing pool and applies the migrations in the default schema.
    pub async fn with_pool(pool: PgConnectionPool) -> Result<Self> {
        Self::with_pool_in(pool, DEFAULT_SCHEMA).await
    }

    /// Uses an existing pool and applies the migrations in `schema`.
    pub async fn with_pool_in(pool: PgConnectionPool, schema: &str) -> Result<Self> {
        let report = Self::migrate(&pool, schema).await?;
        tracing::debug!(
            schema,
            applied = report.applied.len(),
            "PostgreSQL migrations applied"
        );
        Self::without_migrating(pool, schema)
    }

    /// A store on tables already migrated (by `chatkit-admin migrate` over a
    /// direct connection, for instance): nothing is created or checked.
    pub fn without_migrating(pool: PgConnectionPool, schema: &str) -> Result<Self> {
        validate_schema(schema)?;
        Ok(Self {
            sql: Arc::new(Sql::new(schema)),
            schema: Arc::from(schema),
            pool,
        })
    }

    /// Creates the engine schema, moves an earlier layout into it and
    /// applies the migrations (see [`super::pg_schema`]); says what it did.
    pub async fn migrate(pool: &PgConnectionPool, schema: &str) -> Result<MigrationReport> {
        let mut conn = pool.acquire().await?;
        // On error the connection is dropped, not released: closing it also
        // frees the advisory lock.
        let report = pg_schema::migrate(conn.get()?, schema).await?;
        conn.release();
        Ok(report)
    }

    /// The schema of the engine tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgConnectionPool {
        &self.pool
    }

    /// A statement for a raw connection of the pool: named and cached on the
    /// connection, unless a transaction pooler sits in between (see
    /// [`PgConnectionPool::prepared_statements`]).
    fn query<'q>(&self, sql: &'q str) -> Query<'q, Postgres, PgArguments> {
        sqlx::query(sql).persistent(self.pool.prepared_statements())
    }

    /// `NotFound` unless the caller owns the thread.
    async fn require_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<()> {
        let found = sqlx::query(&self.sql.thread_exists)
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
        let done = sqlx::query(&self.sql.upsert_item)
            .bind(&item.id)
            .bind(thread_id)
            .bind(&ctx.user_id)
            .bind(item.type_name())
            .bind(item.created_at.as_datetime())
            .bind(&payload)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("thread", thread_id));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn load_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<ThreadMetadata> {
        let row = sqlx::query(&self.sql.load_thread)
            .bind(&ctx.user_id)
            .bind(thread_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("thread", thread_id))?;
        thread_from_row(&row)
    }

    async fn save_thread(&self, thread: &ThreadMetadata, ctx: &RequestContext) -> Result<()> {
        let payload = encode(thread)?;
        let row = sqlx::query(&self.sql.save_thread)
            .bind(&thread.id)
            .bind(&ctx.user_id)
            .bind(thread.title.as_deref())
            .bind(thread.created_at.as_datetime())
            .bind(Utc::now())
            .bind(&payload)
            .fetch_one(&self.pool)
            .await?;
        // An existing thread keeps its creation time; keep the payload truthful.
        let created_at = Timestamp::from_utc(row.try_get::<DateTime<Utc>, _>("created_at")?);
        if created_at != thread.created_at {
            let mut kept = thread.clone();
            kept.created_at = created_at;
            sqlx::query(&self.sql.fix_thread_payload)
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
                let seq: Option<i64> = sqlx::query_scalar(&self.sql.thread_seq)
                    .bind(&ctx.user_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Some(seq.ok_or_else(|| unknown_cursor(id))?)
            }
            None => None,
        };
        let sql = match order {
            Order::Asc => &self.sql.threads_asc,
            Order::Desc => &self.sql.threads_desc,
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
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.get()?.begin().await?;
        for sql in &self.sql.delete_thread {
            self.query(sql)
                .bind(&ctx.user_id)
                .bind(thread_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        conn.release();
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
                let seq: Option<i64> = sqlx::query_scalar(&self.sql.item_seq)
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
            Order::Asc => &self.sql.items_asc,
            Order::Desc => &self.sql.items_desc,
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
        let payloads: Vec<String> = sqlx::query_scalar(&self.sql.history_items)
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
        let payload: String = sqlx::query_scalar(&self.sql.load_item)
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
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.get()?.begin().await?;
        for sql in &self.sql.delete_item {
            self.query(sql)
                .bind(&ctx.user_id)
                .bind(thread_id)
                .bind(item_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        conn.release();
        Ok(())
    }

    async fn save_attachment(&self, attachment: &Attachment, ctx: &RequestContext) -> Result<()> {
        // `metadata` is never serialized, so it gets its own column.
        let payload = encode(attachment)?;
        let metadata = attachment.metadata.as_ref().map(encode).transpose()?;
        sqlx::query(&self.sql.save_attachment)
            .bind(&attachment.id)
            .bind(&ctx.user_id)
            .bind(attachment.thread_id.as_deref())
            .bind(&payload)
            .bind(metadata.as_deref())
            .bind(Utc::now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_attachment(
        &self,
        attachment_id: &str,
        ctx: &RequestContext,
    ) -> Result<Attachment> {
        let row = sqlx::query(&self.sql.load_attachment)
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
        sqlx::query(&self.sql.delete_attachment)
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
        let now = Utc::now();
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.get()?.begin().await?;
        for item_id in item_ids {
            let done = self
                .query(&self.sql.add_feedback)
                .bind(&ctx.user_id)
                .bind(thread_id)
                .bind(item_id)
                .bind(kind.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // Only items of this thread can be rated.
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                conn.release();
                return Err(Error::not_found("item", item_id.as_str()));
            }
        }
        tx.commit().await?;
        conn.release();
        Ok(())
    }

    async fn load_feedback(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<Option<FeedbackKind>> {
        let kind: Option<String> = sqlx::query_scalar(&self.sql.load_feedback)
            .bind(&ctx.user_id)
            .bind(thread_id)
            .bind(item_id)
            .fetch_optional(&self.pool)
            .await?;
        kind.as_deref().map(feedback_kind).transpose()
    }

    async fn save_approval(&self, approval: &PendingApproval, ctx: &RequestContext) -> Result<()> {
        let done = sqlx::query(&self.sql.save_approval)
            .bind(&approval.id)
            .bind(&ctx.user_id)
            .bind(&approval.thread_id)
            .bind(&approval.item_id)
            .bind(encode(&approval.payload)?)
            .bind(approval.created_at.as_datetime())
            .bind(approval.expires_at.as_datetime())
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
        let row = sqlx::query(&self.sql.decide_approval)
            .bind(decision.as_str())
            .bind(&ctx.user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let payload: String = row.try_get("payload")?;
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
        Ok(Some(PendingApproval {
            id: id.to_owned(),
            thread_id: row.try_get("thread_id")?,
            item_id: row.try_get("item_id")?,
            payload: decode(&payload, "approval")?,
            created_at: Timestamp::from_utc(created_at),
            expires_at: Timestamp::from_utc(expires_at),
        }))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn shares_turn_leases(&self) -> bool {
        true
    }

    async fn try_lease_turn(
        &self,
        thread_id: &str,
        owner: &str,
        ttl: Duration,
        ctx: &RequestContext,
    ) -> Result<bool> {
        let taken = sqlx::query(&self.sql.take_lease)
            .bind(&ctx.user_id)
            .bind(thread_id)
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?;
        Ok(taken.is_some())
    }

    async fn renew_turn_lease(
        &self,
        thread_id: &str,
        owner: &str,
        ttl: Duration,
        ctx: &RequestContext,
    ) -> Result<bool> {
        let done = sqlx::query(&self.sql.renew_lease)
            .bind(&ctx.user_id)
            .bind(thread_id)
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_turn_lease(
        &self,
        thread_id: &str,
        owner: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        sqlx::query(&self.sql.release_lease)
            .bind(&ctx.user_id)
            .bind(thread_id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_turn_usage(&self, usage: &TurnUsage, ctx: &RequestContext) -> Result<()> {
        sqlx::query(&self.sql.record_usage)
            .bind(&ctx.user_id)
            .bind(&usage.turn_id)
            .bind(&usage.thread_id)
            .bind(&usage.day)
            .bind(stored(usage.input_tokens))
            .bind(stored(usage.output_tokens))
            .bind(stored(usage.model_calls))
            .bind(usage.estimated)
            .bind(Utc::now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token_usage(&self, scope: &UsageScope, ctx: &RequestContext) -> Result<UsageTotals> {
        let (sql, value) = match scope {
            UsageScope::All => (&self.sql.usage_totals[0], None),
            UsageScope::Day(day) => (&self.sql.usage_totals[1], Some(day)),
            UsageScope::Thread(id) => (&self.sql.usage_totals[2], Some(id)),
            UsageScope::Turn(id) => (&self.sql.usage_totals[3], Some(id)),
        };
        let mut query = sqlx::query_as::<_, (i64, i64, i64, i64, bool)>(sql).bind(&ctx.user_id);
        if let Some(value) = value {
            query = query.bind(value);
        }
        let (input, output, turns, calls, estimated) = query.fetch_one(&self.pool).await?;
        Ok(UsageTotals {
            input_tokens: count(input),
            output_tokens: count(output),
            turns: count(turns),
            model_calls: count(calls),
            estimated,
        })
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

/// The engine's runtime statements, built once per store with the quoted
/// schema name (no formatting on the hot paths).
#[derive(Debug)]
struct Sql {
    thread_exists: String,
    upsert_item: String,
    load_thread: String,
    save_thread: String,
    fix_thread_payload: String,
    thread_seq: String,
    threads_asc: String,
    threads_desc: String,
    delete_thread: [String; 3],
    item_seq: String,
    items_asc: String,
    items_desc: String,
    history_items: String,
    load_item: String,
    delete_item: [String; 2],
    save_attachment: String,
    load_attachment: String,
    delete_attachment: String,
    add_feedback: String,
    load_feedback: String,
    take_lease: String,
    renew_lease: String,
    release_lease: String,
    save_approval: String,
    decide_approval: String,
    record_usage: String,
    /// Totals over every turn, a day, a thread, a turn.
    usage_totals: [String; 4],
}

impl Sql {
    /// The statements on the tables of `schema` (already validated).
    fn new(schema: &str) -> Self {
        let quoted = quote_ident(schema);
        let q = |template: &str| template.replace("{s}", &quoted);
        Self {
            thread_exists: q("SELECT 1 FROM {s}.chat_sessions WHERE user_id = $1 AND id = $2"),
            // One statement, so two replicas racing for a free (or expired)
            // lease cannot both win: the loser meets the winner's row in
            // ON CONFLICT, whose WHERE then fails. Expiry uses the database's
            // clock, the one clock every replica shares.
            take_lease: q(
                "INSERT INTO {s}.chat_turn_leases AS l (user_id, thread_id, owner, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
                 ON CONFLICT (user_id, thread_id) DO UPDATE SET \
                 owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                 WHERE l.expires_at <= now() \
                 RETURNING owner",
            ),
            renew_lease: q(
                "UPDATE {s}.chat_turn_leases SET expires_at = now() + make_interval(secs => $4) \
                 WHERE user_id = $1 AND thread_id = $2 AND owner = $3",
            ),
            release_lease: q(
                "DELETE FROM {s}.chat_turn_leases WHERE user_id = $1 AND thread_id = $2 AND owner = $3",
            ),
            upsert_item: q(
                "INSERT INTO {s}.chat_messages (id, thread_id, user_id, item_type, created_at, payload) \
                 SELECT $1, $2, $3, $4, $5, $6 \
                 WHERE EXISTS (SELECT 1 FROM {s}.chat_sessions WHERE user_id = $3 AND id = $2) \
                 ON CONFLICT (user_id, thread_id, id) DO UPDATE SET \
                 item_type = EXCLUDED.item_type, created_at = EXCLUDED.created_at, \
                 payload = EXCLUDED.payload",
            ),
            load_thread: q(
                "SELECT created_at, payload FROM {s}.chat_sessions WHERE user_id = $1 AND id = $2",
            ),
            save_thread: q(
                "INSERT INTO {s}.chat_sessions (id, user_id, title, created_at, updated_at, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (user_id, id) DO UPDATE SET \
                 title = EXCLUDED.title, updated_at = EXCLUDED.updated_at, \
                 payload = EXCLUDED.payload \
                 RETURNING created_at",
            ),
            fix_thread_payload: q(
                "UPDATE {s}.chat_sessions SET payload = $1 WHERE user_id = $2 AND id = $3",
            ),
            thread_seq: q("SELECT seq FROM {s}.chat_sessions WHERE user_id = $1 AND id = $2"),
            threads_asc: q(
                "SELECT created_at, payload FROM {s}.chat_sessions WHERE user_id = $1 AND seq > $2 \
                 ORDER BY seq ASC LIMIT $3",
            ),
            threads_desc: q(
                "SELECT created_at, payload FROM {s}.chat_sessions WHERE user_id = $1 AND seq < $2 \
                 ORDER BY seq DESC LIMIT $3",
            ),
            delete_thread: [
                q("DELETE FROM {s}.chat_feedback WHERE user_id = $1 AND thread_id = $2"),
                q("DELETE FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2"),
                q("DELETE FROM {s}.chat_sessions WHERE user_id = $1 AND id = $2"),
            ],
            item_seq: q(
                "SELECT seq FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2 AND id = $3",
            ),
            items_asc: q(
                "SELECT payload FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2 \
                 AND seq > $3 ORDER BY seq ASC LIMIT $4",
            ),
            items_desc: q(
                "SELECT payload FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2 \
                 AND seq < $3 ORDER BY seq DESC LIMIT $4",
            ),
            history_items: q(
                "SELECT payload FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2 \
                 AND item_type <> 'widget' ORDER BY seq DESC LIMIT $3",
            ),
            load_item: q(
                "SELECT payload FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2 AND id = $3",
            ),
            delete_item: [
                q(
                    "DELETE FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2 AND id = $3",
                ),
                q(
                    "DELETE FROM {s}.chat_feedback WHERE user_id = $1 AND thread_id = $2 AND item_id = $3",
                ),
            ],
            save_attachment: q(
                "INSERT INTO {s}.chat_attachments (id, user_id, thread_id, payload, metadata, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (user_id, id) DO UPDATE SET \
                 thread_id = EXCLUDED.thread_id, payload = EXCLUDED.payload, \
                 metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at",
            ),
            load_attachment: q(
                "SELECT payload, metadata FROM {s}.chat_attachments WHERE user_id = $1 AND id = $2",
            ),
            delete_attachment: q("DELETE FROM {s}.chat_attachments WHERE user_id = $1 AND id = $2"),
            add_feedback: q(
                "INSERT INTO {s}.chat_feedback (user_id, thread_id, item_id, kind, created_at) \
                 SELECT $1, $2, $3, $4, $5 \
                 WHERE EXISTS (SELECT 1 FROM {s}.chat_messages WHERE user_id = $1 AND thread_id = $2 AND id = $3) \
                 ON CONFLICT (user_id, thread_id, item_id) DO UPDATE SET \
                 kind = EXCLUDED.kind, created_at = EXCLUDED.created_at",
            ),
            load_feedback: q(
                "SELECT kind FROM {s}.chat_feedback WHERE user_id = $1 AND thread_id = $2 AND item_id = $3",
            ),
            save_approval: q(
                "INSERT INTO {s}.chat_approvals (id, user_id, thread_id, item_id, payload, created_at, expires_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 \
                 WHERE EXISTS (SELECT 1 FROM {s}.chat_sessions WHERE user_id = $2 AND id = $3)",
            ),
            // One statement: of two concurrent answers, one updates the row
            // and the other finds it no longer pending.
            decide_approval: q("UPDATE {s}.chat_approvals SET status = $1 \
                 WHERE user_id = $2 AND id = $3 AND status = 'pending' \
                 RETURNING thread_id, item_id, payload, created_at, expires_at"),
            record_usage: q(
                "INSERT INTO {s}.chat_token_usage (user_id, turn_id, thread_id, day, input_tokens, \
                 output_tokens, model_calls, estimated, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (user_id, turn_id) DO UPDATE SET \
                 input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, \
                 model_calls = EXCLUDED.model_calls, estimated = EXCLUDED.estimated, \
                 recorded_at = EXCLUDED.recorded_at",
            ),
            usage_totals: {
                let totals = "SELECT COALESCE(SUM(input_tokens), 0)::BIGINT, \
                     COALESCE(SUM(output_tokens), 0)::BIGINT, COUNT(*), \
                     COALESCE(SUM(model_calls), 0)::BIGINT, COALESCE(BOOL_OR(estimated), FALSE) \
                     FROM {s}.chat_token_usage WHERE user_id = $1";
                [
                    q(totals),
                    q(&format!("{totals} AND day = $2")),
                    q(&format!("{totals} AND thread_id = $2")),
                    q(&format!("{totals} AND turn_id = $2")),
                ]
            },
        }
    }
}

/// A thread from a `(created_at, payload)` row; the column's creation time wins.
fn thread_from_row(row: &PgRow) -> Result<ThreadMetadata> {
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let payload: String = row.try_get("payload")?;
    let mut thread: ThreadMetadata = decode(&payload, "thread")?;
    thread.created_at = Timestamp::from_utc(created_at);
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
