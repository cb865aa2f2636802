//! Importing the app's own chat history into engine threads.
//!
//! The existing app kept conversations in `public.chat_sessions` and
//! `public.chat_messages`, in one of two shapes, detected by their columns:
//!
//! | Shape | Sessions | Messages |
//! |---|---|---|
//! | [`HistoryShape::Current`] | `session_id`, `user_id`, `title`, `created_at`, `updated_at`, `metadata` (`title`) | `message_id`, `session_id`, `content`, `sender_type` (`user`/`assistant`/`tool`), `"timestamp"` |
//! | [`HistoryShape::Older`] | `id`, `"userId"`, `"startedAt"`, `"endedAt"`, `status` | `id`, `session_id`, `content`, `direction` (`user_to_agent`/`agent_to_user`), `"timestamp"` |
//!
//! | Rule | |
//! |---|---|
//! | Threads | one per session, id `thr_` + the session's UUID (hex), owned by the session's user; title from the row (or `metadata.title` over the default `New Chat`); creation time from the row |
//! | Items | `user` rows become user messages, `assistant` rows assistant messages, id `msg_` + the row's UUID (hex), in timestamp order, with their timestamps |
//! | Tool rows | skipped (counted): their results are already told by the assistant's next message, and the engine's tool items carry structured data the app never stored |
//! | Idempotence | rows are keyed by their source id: a second run imports nothing new; a run interrupted half way completes on the next |
//! | Source | only read (`SELECT`); never changed |
//! | Malformed rows | skipped with a warning naming the row (table and id); the import goes on |
//! | Dry run | counts what would be imported and writes nothing |
//! | Timestamps | naive `TIMESTAMP` columns are read as UTC |
//!
//! ```no_run
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::store::PostgresStore;
//! use chatkit_engine::todo::history::{ImportOptions, import_history};
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
//! let report = import_history(&store, &ImportOptions::default()).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{
    AssistantMessage, AssistantMessageContent, InferenceOptions, ItemKind, ThreadItem,
    ThreadMetadata, Timestamp, UserMessage, UserMessageContent,
};
use crate::store::pg_schema::quote_ident;
use crate::store::{PostgresStore, Store};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

/// Which of the app's chat shapes a database holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryShape {
    /// `chat_sessions(session_id, user_id, title, ...)`, `sender_type`.
    Current,
    /// `chat_sessions(id, "userId", "startedAt", ...)`, `direction`.
    Older,
}

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Count only; write nothing.
    pub dry_run: bool,
    /// Only this user's sessions.
    pub user: Option<String>,
    /// The schema of the app's chat tables (default `public`).
    pub source_schema: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            user: None,
            source_schema: "public".to_owned(),
        }
    }
}

/// What an import did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The detected shape; `None` when the app has no chat tables.
    pub shape: Option<HistoryShape>,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Sessions read.
    pub sessions: u64,
    /// Threads created.
    pub threads_imported: u64,
    /// Sessions whose thread already existed.
    pub threads_existing: u64,
    /// Messages written as items.
    pub messages_imported: u64,
    /// Messages whose item already existed.
    pub messages_existing: u64,
    /// Tool rows skipped.
    pub tool_rows_skipped: u64,
    /// Warnings about malformed rows, each naming its row.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(shape) = self.shape else {
            return writeln!(
                f,
                "no chat history found (no chat_sessions/chat_messages of a known shape)"
            );
        };
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(f, "chat history shape: {shape:?}")?;
        writeln!(f, "sessions read: {}", self.sessions)?;
        writeln!(
            f,
            "threads {verb}: {} (already there: {})",
            self.threads_imported, self.threads_existing
        )?;
        writeln!(
            f,
            "messages {verb}: {} (already there: {})",
            self.messages_imported, self.messages_existing
        )?;
        writeln!(f, "tool rows skipped: {}", self.tool_rows_skipped)?;
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

/// The SQL of one shape, built once per import.
struct ShapeSql {
    sessions: String,
    messages: String,
}

/// Reads a column's time as UTC whatever its type.
async fn time_expr(
    store: &PostgresStore,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<String> {
    let data_type: Option<String> = sqlx::query_scalar(
        "SELECT data_type::TEXT FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 AND column_name = $3",
    )
    .bind(schema)
    .bind(table)
    .bind(column)
    .fetch_optional(store.pool())
    .await?;
    let quoted = quote_ident(column);
    Ok(match data_type.as_deref() {
        Some("timestamp without time zone") => format!("({quoted} AT TIME ZONE 'UTC')"),
        _ => quoted,
    })
}

async fn has_column(
    store: &PostgresStore,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 AND column_name = $3)",
    )
    .bind(schema)
    .bind(table)
    .bind(column)
    .fetch_one(store.pool())
    .await?)
}

/// Detects the app's chat shape in `schema`, if any.
pub async fn detect_shape(store: &PostgresStore, schema: &str) -> Result<Option<HistoryShape>> {
    let col = |table, column| has_column(store, schema, table, column);
    if col("chat_sessions", "session_id").await?
        && col("chat_messages", "sender_type").await?
        && col("chat_messages", "message_id").await?
    {
        return Ok(Some(HistoryShape::Current));
    }
    if col("chat_sessions", "startedAt").await?
        && col("chat_sessions", "userId").await?
        && col("chat_messages", "direction").await?
    {
        return Ok(Some(HistoryShape::Older));
    }
    Ok(None)
}

async fn shape_sql(store: &PostgresStore, schema: &str, shape: HistoryShape) -> Result<ShapeSql> {
    let q = quote_ident(schema);
    let at = time_expr(store, schema, "chat_messages", "timestamp").await?;
    Ok(match shape {
        HistoryShape::Current => {
            let created = time_expr(store, schema, "chat_sessions", "created_at").await?;
            ShapeSql {
                sessions: format!(
                    "SELECT session_id::TEXT AS id, user_id::TEXT AS user_id, \
                     CASE WHEN (title IS NULL OR title = 'New Chat') \
                     AND COALESCE(metadata->>'title', '') <> '' THEN metadata->>'title' ELSE title END AS title, \
                     {created} AS created_at \
                     FROM {q}.chat_sessions WHERE ($1::TEXT IS NULL OR user_id = $1) \
                     ORDER BY {created} NULLS FIRST, session_id"
                ),
                messages: format!(
                    "SELECT message_id::TEXT AS id, content, sender_type::TEXT AS role, {at} AS at \
                     FROM {q}.chat_messages WHERE session_id::TEXT = $1 \
                     ORDER BY {at} NULLS LAST, message_id"
                ),
            }
        }
        HistoryShape::Older => {
            let started = time_expr(store, schema, "chat_sessions", "startedAt").await?;
            ShapeSql {
                sessions: format!(
                    "SELECT id::TEXT AS id, \"userId\"::TEXT AS user_id, NULL::TEXT AS title, \
                     {started} AS created_at \
                     FROM {q}.chat_sessions WHERE ($1::TEXT IS NULL OR \"userId\" = $1) \
                     ORDER BY {started} NULLS FIRST, id"
                ),
                messages: format!(
                    "SELECT id::TEXT AS id, content, \
                     CASE direction WHEN 'user_to_agent' THEN 'user' \
                     WHEN 'agent_to_user' THEN 'assistant' ELSE direction END AS role, {at} AS at \
                     FROM {q}.chat_messages WHERE session_id::TEXT = $1 \
                     ORDER BY {at} NULLS LAST, id"
                ),
            }
        }
    })
}

/// One session row, or why it is malformed.
struct Session {
    id: Uuid,
    user_id: String,
    title: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

fn session_from(row: &PgRow) -> std::result::Result<Session, String> {
    let id: String = row.try_get("id").map_err(|e| e.to_string())?;
    let uuid = Uuid::parse_str(&id).map_err(|_| format!("chat_sessions {id}: id is not a UUID"))?;
    let user_id: Option<String> = row
        .try_get("user_id")
        .map_err(|e| format!("chat_sessions {id}: {e}"))?;
    let user_id = user_id
        .filter(|user| crate::validate::user_id(user).is_ok())
        .ok_or_else(|| format!("chat_sessions {id}: missing or invalid user id"))?;
    Ok(Session {
        id: uuid,
        user_id,
        title: row
            .try_get("title")
            .map_err(|e| format!("chat_sessions {id}: {e}"))?,
        created_at: row
            .try_get("created_at")
            .map_err(|e| format!("chat_sessions {id}: {e}"))?,
    })
}

/// Copies the app's conversations into engine threads (see the module rules).
pub async fn import_history(
    store: &PostgresStore,
    options: &ImportOptions,
) -> Result<ImportReport> {
    let schema = options.source_schema.as_str();
    let mut report = ImportReport {
        dry_run: options.dry_run,
        ..ImportReport::default()
    };
    if schema == store.schema() {
        return Err(Error::Config(format!(
            "the app's chat tables and the engine's are both in schema `{schema}`"
        )));
    }
    let Some(shape) = detect_shape(store, schema).await? else {
        return Ok(report);
    };
    report.shape = Some(shape);
    let sql = shape_sql(store, schema, shape).await?;
    let rows = sqlx::query(&sql.sessions)
        .bind(options.user.as_deref())
        .fetch_all(store.pool())
        .await?;
    for row in &rows {
        report.sessions += 1;
        let session = match session_from(row) {
            Ok(session) => session,
            Err(warning) => {
                tracing::warn!("{warning}");
                report.warnings.push(warning);
                continue;
            }
        };
        import_session(store, &sql, &session, options.dry_run, &mut report).await?;
    }
    Ok(report)
}

async fn import_session(
    store: &PostgresStore,
    sql: &ShapeSql,
    session: &Session,
    dry_run: bool,
    report: &mut ImportReport,
) -> Result<()> {
    let ctx = RequestContext::new(session.user_id.clone());
    let thread_id = format!("thr_{}", session.id.simple());
    let messages = sqlx::query(&sql.messages)
        .bind(session.id.to_string())
        .fetch_all(store.pool())
        .await?;
    let exists = match store.load_thread(&thread_id, &ctx).await {
        Ok(_) => true,
        Err(Error::NotFound { .. }) => false,
        Err(err) => return Err(err),
    };
    if exists {
        report.threads_existing += 1;
    } else {
        report.threads_imported += 1;
        if !dry_run {
            let first_message = messages
                .iter()
                .find_map(|row| row.try_get::<Option<DateTime<Utc>>, _>("at").ok().flatten());
            let created = session
                .created_at
                .or(first_message)
                .unwrap_or_else(Utc::now);
            let mut thread = ThreadMetadata::new(thread_id.clone(), Timestamp::from_utc(created));
            thread.title = session
                .title
                .as_deref()
                .map(str::trim)
                .filter(|title| !title.is_empty())
                .map(str::to_owned);
            store.save_thread(&thread, &ctx).await?;
        }
    }
    let mut last = session.created_at;
    for row in &messages {
        let id: String = match row.try_get("id") {
            Ok(id) => id,
            Err(err) => {
                report
                    .warnings
                    .push(format!("chat_messages of session {}: {err}", session.id));
                continue;
            }
        };
        let parsed = (|| -> std::result::Result<Option<ThreadItem>, String> {
            let uuid = Uuid::parse_str(&id).map_err(|_| "id is not a UUID".to_owned())?;
            let role: Option<String> = row.try_get("role").map_err(|e| e.to_string())?;
            let content: Option<String> = row.try_get("content").map_err(|e| e.to_string())?;
            let at: Option<DateTime<Utc>> = row.try_get("at").map_err(|e| e.to_string())?;
            let content = content.ok_or("no content")?;
            let at = at.or(last).unwrap_or_else(Utc::now);
            last = Some(at);
            let kind = match role.as_deref() {
                Some("user") => ItemKind::UserMessage(UserMessage {
                    content: vec![UserMessageContent::InputText { text: content }],
                    attachments: Vec::new(),
                    quoted_text: None,
                    inference_options: InferenceOptions::default(),
                }),
                Some("assistant") => ItemKind::AssistantMessage(AssistantMessage {
                    content: vec![AssistantMessageContent::text(content)],
                }),
                Some("tool") => return Ok(None),
                other => return Err(format!("unknown sender `{}`", other.unwrap_or("NULL"))),
            };
            Ok(Some(ThreadItem {
                id: format!("msg_{}", uuid.simple()),
                thread_id: thread_id.clone(),
                created_at: Timestamp::from_utc(at),
                kind,
            }))
        })();
        let item = match parsed {
            Ok(Some(item)) => item,
            Ok(None) => {
                report.tool_rows_skipped += 1;
                continue;
            }
            Err(why) => {
                let warning = format!("chat_messages {id}: {why}; skipped");
                tracing::warn!("{warning}");
                report.warnings.push(warning);
                continue;
            }
        };
        let item_exists = exists
            && match store.load_item(&thread_id, &item.id, &ctx).await {
                Ok(_) => true,
                Err(Error::NotFound { .. }) => false,
                Err(err) => return Err(err),
            };
        if item_exists {
            report.messages_existing += 1;
        } else {
            report.messages_imported += 1;
            if !dry_run {
                store.add_thread_item(&thread_id, &item, &ctx).await?;
            }
        }
    }
    Ok(())
}
