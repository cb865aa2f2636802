//! The to-do app's `tasks` table, scoped to the caller, on both backends.
//!
//! [`TaskStore`] is implemented by [`SqliteStore`] (its `tasks` table) and
//! [`PgTaskTable`] (the app's own table on PostgreSQL, by qualified name,
//! default `public.tasks`, in either of the app's shapes) on the table the
//! existing app already uses (UUID `id`, `"userId"`,
//! `"dueDate"`, `"createdAt"`, `"updatedAt"`, `priority`, `category`,
//! `status`, `completed`). Every query filters by the caller's user id:
//! another user's task is [`Error::NotFound`], exactly like a missing one,
//! and is never read or modified.
//!
//! Timestamps are stored as UTC: naive UTC in PostgreSQL `TIMESTAMP` columns,
//! as such in `TIMESTAMPTZ` ones (detected per column), fixed-width
//! `YYYY-MM-DD HH:MM:SS.ffffff` text on SQLite (the form SQLAlchemy writes,
//! and one that sorts chronologically).
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::RequestContext;
//! use chatkit_engine::store::SqliteStore;
//! use chatkit_engine::todo::{NewTask, Priority, TaskPatch, TaskStore};
//! let store = SqliteStore::in_memory().await?;
//! let alice = RequestContext::new("alice");
//! let task = store.create(&NewTask::new("Buy milk"), &alice).await?;
//! let patch = TaskPatch { priority: Some(Priority::High), ..TaskPatch::default() };
//! let task = store.update(&task.id, &patch, &alice).await?;
//! assert_eq!((task.title.as_str(), task.priority), ("Buy milk", Priority::High));
//! // Bob cannot see (or change) Alice's task.
//! let bob = RequestContext::new("bob");
//! assert_eq!(store.get(&task.id, &bob).await.unwrap_err().code(), "not_found");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use super::task::{
    Category, MAX_TASKS, NewTask, Priority, TaskPatch, TaskQuery, TaskRecord, TaskSortBy,
    TaskStats, TaskStatus, clean_description, clean_title, new_record, parse_due_date,
    parse_task_id,
};
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{Order, Timestamp};
use crate::store::pg_schema::quote_ident;
use crate::store::{PgConnectionPool, PostgresStore, SqliteStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Encode, Postgres, QueryBuilder, Row, Sqlite, Type};
use std::sync::Arc;
use uuid::Uuid;

/// The columns of a task row, in [`TaskRecord`] order.
const COLUMNS: &str = r#"id, title, description, priority, category, status, completed, "dueDate", "createdAt", "updatedAt", "userId""#;

/// The SQLite text form of a timestamp (fixed width, so it sorts).
const SQLITE_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// Storage of the caller's to-do tasks.
///
/// Every method receives the [`RequestContext`] and touches only that user's
/// rows. An id that is not a UUID is `InvalidRequest("Invalid task ID
/// format")`; an unknown id, or another user's, is `NotFound`. Validation
/// failures are `InvalidRequest` with the messages of the tools' contract
/// ("Title cannot be empty", ...).
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Creates a pending task owned by the caller.
    async fn create(&self, task: &NewTask, ctx: &RequestContext) -> Result<TaskRecord>;

    /// The caller's tasks matching `query`, sorted, from `query.offset`, at
    /// most `query.limit` (and never more than [`MAX_TASKS`]).
    async fn list(&self, query: &TaskQuery, ctx: &RequestContext) -> Result<Vec<TaskRecord>>;

    /// How many of the caller's tasks match `query`'s filters (its sort,
    /// limit and offset do not matter).
    async fn count(&self, query: &TaskQuery, ctx: &RequestContext) -> Result<u64>;

    /// One of the caller's tasks.
    async fn get(&self, task_id: &str, ctx: &RequestContext) -> Result<TaskRecord>;

    /// Applies a partial update and bumps `updatedAt`; fields the patch does
    /// not name are untouched. An empty patch returns the task unchanged.
    async fn update(
        &self,
        task_id: &str,
        patch: &TaskPatch,
        ctx: &RequestContext,
    ) -> Result<TaskRecord>;

    /// Deletes one of the caller's tasks.
    async fn delete(&self, task_id: &str, ctx: &RequestContext) -> Result<()>;

    /// Flips `completed` and `status` (pending <-> completed) and bumps
    /// `updatedAt`.
    async fn toggle_complete(&self, task_id: &str, ctx: &RequestContext) -> Result<TaskRecord>;

    /// Counts the caller's tasks.
    async fn stats(&self, ctx: &RequestContext) -> Result<TaskStats>;
}

/// A validated patch, ready to write.
struct CleanPatch {
    title: Option<String>,
    description: Option<Option<String>>,
    priority: Option<Priority>,
    category: Option<Category>,
    due_date: Option<Option<Timestamp>>,
}

impl CleanPatch {
    fn new(patch: &TaskPatch) -> Result<Self> {
        Ok(Self {
            title: patch.title.as_deref().map(clean_title).transpose()?,
            description: patch
                .description
                .as_ref()
                .map(|description| clean_description(description.as_deref()))
                .transpose()?,
            priority: patch.priority,
            category: patch.category,
            due_date: patch.due_date,
        })
    }

    /// Whether the patch changes nothing.
    fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.category.is_none()
            && self.due_date.is_none()
    }

    /// The `UPDATE ... RETURNING` of this patch on task `id` of `user_id`,
    /// for either backend: the changed columns plus `"updatedAt"`; `time`
    /// turns a timestamp into the backend's column value.
    fn update_query<'a, DB, T, I>(
        self,
        time: impl Fn(Timestamp) -> T,
        user_id: &'a str,
        id: I,
        target: UpdateTarget<'_>,
    ) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        DB::Arguments<'a>: Default,
        T: 'a + Encode<'a, DB> + Type<DB>,
        Option<T>: 'a + Encode<'a, DB> + Type<DB>,
        I: 'a + Encode<'a, DB> + Type<DB>,
        String: Encode<'a, DB> + Type<DB>,
        Option<String>: Encode<'a, DB> + Type<DB>,
        &'a str: Encode<'a, DB> + Type<DB>,
    {
        let mut builder = QueryBuilder::<DB>::new(format!("UPDATE {} SET ", target.table));
        let mut set = builder.separated(", ");
        if let Some(title) = self.title {
            set.push("title = ").push_bind_unseparated(title);
        }
        if let Some(description) = self.description {
            set.push("description = ")
                .push_bind_unseparated(description);
        }
        if let Some(priority) = self.priority {
            set.push("priority = ")
                .push_bind_unseparated(priority.as_str());
        }
        if let Some(category) = self.category {
            set.push("category = ")
                .push_bind_unseparated(category.as_str());
        }
        if let Some(due_date) = self.due_date {
            set.push(r#""dueDate" = "#)
                .push_unseparated(open_time(target.naive_due))
                .push_bind_unseparated(due_date.map(&time))
                .push_unseparated(close_time(target.naive_due));
        }
        set.push(r#""updatedAt" = "#)
            .push_unseparated(open_time(target.naive_updated))
            .push_bind_unseparated(time(Timestamp::now()))
            .push_unseparated(close_time(target.naive_updated));
        builder.push(r#" WHERE "userId" = "#);
        builder.push_bind(user_id);
        builder.push(" AND id = ");
        builder.push_bind(id);
        builder.push(format!(" RETURNING {}", target.returning));
        builder
    }
}

/// Where an update writes: the quoted table, its `RETURNING` list, and
/// whether the bound `timestamptz` must be turned into naive UTC.
struct UpdateTarget<'s> {
    table: &'s str,
    returning: &'s str,
    naive_due: bool,
    naive_updated: bool,
}

impl UpdateTarget<'static> {
    /// SQLite's `tasks` table (text timestamps, bound as they are).
    const SQLITE: Self = Self {
        table: "tasks",
        returning: COLUMNS,
        naive_due: false,
        naive_updated: false,
    };
}

fn open_time(naive: bool) -> &'static str {
    if naive { "(" } else { "" }
}

fn close_time(naive: bool) -> &'static str {
    if naive { " AT TIME ZONE 'UTC')" } else { "" }
}

/// Which SQL dialect a statement is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// The `ORDER BY ... LIMIT` tail of a list query (no user input inside).
fn order_clause(sort_by: TaskSortBy, order: Order, dialect: Dialect) -> String {
    let dir = match order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    };
    let keys = match (sort_by, dialect) {
        (TaskSortBy::CreatedAt, _) => String::new(),
        (TaskSortBy::UpdatedAt, _) => format!(r#""updatedAt" {dir}, "#),
        // Tasks without a due date come last either way.
        (TaskSortBy::DueDate, _) => format!(r#"("dueDate" IS NULL) ASC, "dueDate" {dir}, "#),
        (TaskSortBy::Priority, _) => format!(
            "CASE priority WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 \
             ELSE 0 END {dir}, "
        ),
        // Byte order after lowercasing, identical on both backends whatever
        // the database collation.
        (TaskSortBy::Title, Dialect::Postgres) => {
            format!(r#"lower(title) COLLATE "C" {dir}, title COLLATE "C" {dir}, "#)
        }
        (TaskSortBy::Title, Dialect::Sqlite) => format!("lower(title) {dir}, title {dir}, "),
    };
    format!(r#" ORDER BY {keys}"createdAt" {dir}, id {dir}"#)
}

/// The `WHERE` clause of a list or count query, binding every value.
fn push_list_filters<'a, DB>(
    builder: &mut QueryBuilder<'a, DB>,
    query: &'a TaskQuery,
    ctx: &'a RequestContext,
    dialect: Dialect,
) where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    builder.push(r#" WHERE "userId" = "#);
    builder.push_bind(ctx.user_id.as_str());
    if let Some(status) = query.status {
        builder.push(" AND status = ");
        builder.push_bind(status.as_str());
    }
    if let Some(priority) = query.priority {
        builder.push(" AND priority = ");
        builder.push_bind(priority.as_str());
    }
    if let Some(category) = query.category {
        builder.push(" AND category = ");
        builder.push_bind(category.as_str());
    }
    if let Some(search) = query.search.as_deref().filter(|text| !text.is_empty()) {
        // A plain substring test: no LIKE, so no wildcard can leak in.
        let find = match dialect {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        };
        builder.push(format!(" AND ({find}(lower(title), lower("));
        builder.push_bind(search);
        builder.push(format!(
            ")) > 0 OR {find}(lower(COALESCE(description, '')), lower("
        ));
        builder.push_bind(search);
        builder.push(")) > 0)");
    }
}

/// The `ORDER BY ... LIMIT ... OFFSET` tail of a list query.
fn push_page<'a, DB>(builder: &mut QueryBuilder<'a, DB>, query: &'a TaskQuery, dialect: Dialect)
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    builder.push(order_clause(query.sort_by, query.sort_order, dialect));
    builder.push(" LIMIT ");
    let limit = query.limit.unwrap_or(MAX_TASKS).clamp(1, MAX_TASKS);
    builder.push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    builder.push(" OFFSET ");
    builder.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
}

/// A stored priority; an unknown value (written by another program) reads as
/// medium rather than failing the whole list.
fn stored_priority(text: &str) -> Priority {
    text.parse().unwrap_or_else(|_| {
        tracing::warn!(priority = text, "unknown task priority in the database");
        Priority::Medium
    })
}

/// A stored category; an unknown value reads as other.
fn stored_category(text: &str) -> Category {
    text.parse().unwrap_or_else(|_| {
        tracing::warn!(category = text, "unknown task category in the database");
        Category::Other
    })
}

/// A stored status; an unknown value follows the `completed` flag.
fn stored_status(text: &str, completed: bool) -> TaskStatus {
    text.parse().unwrap_or(if completed {
        TaskStatus::Completed
    } else {
        TaskStatus::Pending
    })
}

/// Counts from a `(total, completed)` row.
fn stats_from(total: i64, completed: i64) -> TaskStats {
    let total = u64::try_from(total).unwrap_or_default();
    let completed = u64::try_from(completed).unwrap_or_default();
    TaskStats {
        total,
        pending: total.saturating_sub(completed),
        completed,
    }
}

const STATS_SQL_SQLITE: &str = "SELECT COUNT(*) AS total, \
     COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS done \
     FROM tasks WHERE \"userId\" = ?";

/// The toggle statement's `SET` list (the right-hand sides see the old row).
const TOGGLE_SET: &str = "completed = NOT completed, \
     status = CASE WHEN completed THEN 'pending' ELSE 'completed' END";

// ---------------------------------------------------------------------------
// SQLite

/// The SQLite text of a timestamp.
fn sqlite_time(at: Timestamp) -> String {
    at.as_datetime().format(SQLITE_TIME_FORMAT).to_string()
}

/// Reads a SQLite timestamp: our fixed-width text, or any ISO-8601 form
/// another program may have written (naive values are UTC).
fn sqlite_parse_time(text: &str) -> Result<Timestamp> {
    parse_due_date(text)
        .map_err(|_| Error::storage(format!("invalid timestamp `{text}` in the tasks table")))
}

fn sqlite_task(row: &SqliteRow) -> Result<TaskRecord> {
    let completed: bool = row.try_get("completed")?;
    let due_date: Option<String> = row.try_get("dueDate")?;
    let priority: String = row.try_get("priority")?;
    let category: String = row.try_get("category")?;
    let status: String = row.try_get("status")?;
    let created_at: String = row.try_get("createdAt")?;
    let updated_at: String = row.try_get("updatedAt")?;
    Ok(TaskRecord {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        priority: stored_priority(&priority),
        category: stored_category(&category),
        status: stored_status(&status, completed),
        completed,
        due_date: due_date.as_deref().map(sqlite_parse_time).transpose()?,
        created_at: sqlite_parse_time(&created_at)?,
        updated_at: sqlite_parse_time(&updated_at)?,
        user_id: row.try_get("userId")?,
    })
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create(&self, task: &NewTask, ctx: &RequestContext) -> Result<TaskRecord> {
        let record = new_record(task, ctx)?;
        sqlx::query(&format!(
            "INSERT INTO tasks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&record.id)
        .bind(&record.title)
        .bind(record.description.as_deref())
        .bind(record.priority.as_str())
        .bind(record.category.as_str())
        .bind(record.status.as_str())
        .bind(record.completed)
        .bind(record.due_date.map(sqlite_time))
        .bind(sqlite_time(record.created_at))
        .bind(sqlite_time(record.updated_at))
        .bind(&record.user_id)
        .execute(self.pool())
        .await?;
        Ok(record)
    }

    async fn list(&self, query: &TaskQuery, ctx: &RequestContext) -> Result<Vec<TaskRecord>> {
        let mut builder = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM tasks"));
        push_list_filters(&mut builder, query, ctx, Dialect::Sqlite);
        push_page(&mut builder, query, Dialect::Sqlite);
        let rows = builder.build().fetch_all(self.pool()).await?;
        rows.iter().map(sqlite_task).collect()
    }

    async fn count(&self, query: &TaskQuery, ctx: &RequestContext) -> Result<u64> {
        let mut builder = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) AS total FROM tasks");
        push_list_filters(&mut builder, query, ctx, Dialect::Sqlite);
        let row = builder.build().fetch_one(self.pool()).await?;
        let total: i64 = row.try_get("total")?;
        Ok(u64::try_from(total).unwrap_or_default())
    }

    async fn get(&self, task_id: &str, ctx: &RequestContext) -> Result<TaskRecord> {
        let id = parse_task_id(task_id)?.to_string();
        let row = sqlx::query(&format!(
            r#"SELECT {COLUMNS} FROM tasks WHERE "userId" = ? AND id = ?"#
        ))
        .bind(&ctx.user_id)
        .bind(&id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("task", task_id))?;
        sqlite_task(&row)
    }

    async fn update(
        &self,
        task_id: &str,
        patch: &TaskPatch,
        ctx: &RequestContext,
    ) -> Result<TaskRecord> {
        let id = parse_task_id(task_id)?.to_string();
        let patch = CleanPatch::new(patch)?;
        if patch.is_empty() {
            return self.get(task_id, ctx).await;
        }
        let row = patch
            .update_query::<Sqlite, _, _>(sqlite_time, &ctx.user_id, id, UpdateTarget::SQLITE)
            .build()
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("task", task_id))?;
        sqlite_task(&row)
    }

    async fn delete(&self, task_id: &str, ctx: &RequestContext) -> Result<()> {
        let id = parse_task_id(task_id)?.to_string();
        let done = sqlx::query(r#"DELETE FROM tasks WHERE "userId" = ? AND id = ?"#)
            .bind(&ctx.user_id)
            .bind(&id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("task", task_id));
        }
        Ok(())
    }

    async fn toggle_complete(&self, task_id: &str, ctx: &RequestContext) -> Result<TaskRecord> {
        let id = parse_task_id(task_id)?.to_string();
        let row = sqlx::query(&format!(
            r#"UPDATE tasks SET {TOGGLE_SET}, "updatedAt" = ? WHERE "userId" = ? AND id = ? RETURNING {COLUMNS}"#
        ))
        .bind(sqlite_time(Timestamp::now()))
        .bind(&ctx.user_id)
        .bind(&id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("task", task_id))?;
        sqlite_task(&row)
    }

    async fn stats(&self, ctx: &RequestContext) -> Result<TaskStats> {
        let row = sqlx::query(STATS_SQL_SQLITE)
            .bind(&ctx.user_id)
            .fetch_one(self.pool())
            .await?;
        Ok(stats_from(row.try_get("total")?, row.try_get("done")?))
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL

/// The task table used unless configured otherwise (`TASKS_TABLE`).
pub const DEFAULT_TASKS_TABLE: &str = "public.tasks";

/// The columns a task table must have.
const REQUIRED_COLUMNS: [&str; 11] = [
    "id",
    "title",
    "description",
    "priority",
    "category",
    "status",
    "completed",
    "dueDate",
    "createdAt",
    "updatedAt",
    "userId",
];

/// The table created when the configured one does not exist (the app's
/// SQLModel shape, naive `TIMESTAMP`s; an existing table is used exactly as
/// it is).
const CREATE_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS {t} (
    id          UUID         PRIMARY KEY,
    title       VARCHAR(255) NOT NULL,
    description TEXT,
    priority    TEXT         NOT NULL,
    category    TEXT         NOT NULL,
    status      TEXT         NOT NULL DEFAULT 'pending',
    completed   BOOLEAN      NOT NULL DEFAULT false,
    "dueDate"   TIMESTAMP,
    "createdAt" TIMESTAMP    NOT NULL,
    "updatedAt" TIMESTAMP    NOT NULL,
    "userId"    TEXT         NOT NULL
)"#;

/// A qualified table name, `schema.table` or `table` (in `public`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    /// The schema.
    pub schema: String,
    /// The table.
    pub table: String,
}

impl TableName {
    /// Parses `schema.table` or `table`; names are taken literally (no
    /// quotes, case kept), 1 to 63 bytes each.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (schema, table) = match text.split_once('.') {
            Some((schema, table)) => (schema, table),
            None => ("public", text),
        };
        for part in [schema, table] {
            if part.is_empty() || part.len() > 63 || part.contains(['"', '.', '\0']) {
                return Err(Error::Config(format!(
                    "invalid task table name `{text}` (use schema.table, e.g. public.tasks)"
                )));
            }
        }
        Ok(Self {
            schema: schema.to_owned(),
            table: table.to_owned(),
        })
    }

    /// The quoted, qualified SQL name.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Which timestamp columns are `TIMESTAMP` (naive UTC) rather than
/// `TIMESTAMPTZ`, in `dueDate`, `createdAt`, `updatedAt` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NaiveColumns([bool; 3]);

/// The statements of one task table, built once when it opens.
#[derive(Debug)]
struct PgTaskSql {
    name: TableName,
    table: String,
    naive: NaiveColumns,
    returning: String,
    insert: String,
    select: String,
    get: String,
    delete: String,
    toggle: String,
    stats: String,
}

/// The read expression of a timestamp column: always a `timestamptz`.
fn read_time(column: &str, naive: bool) -> String {
    if naive {
        format!(r#"({column} AT TIME ZONE 'UTC') AS {column}"#)
    } else {
        column.to_owned()
    }
}

/// The write expression of a bound `timestamptz` for a column.
fn write_time(param: &str, naive: bool) -> String {
    if naive {
        format!("({param} AT TIME ZONE 'UTC')")
    } else {
        param.to_owned()
    }
}

impl PgTaskSql {
    fn new(name: TableName, naive: NaiveColumns) -> Self {
        let table = name.quoted();
        let [due, created, updated] = naive.0;
        let returning = format!(
            r#"id, title, description, priority, category, status, completed, {}, {}, {}, "userId""#,
            read_time(r#""dueDate""#, due),
            read_time(r#""createdAt""#, created),
            read_time(r#""updatedAt""#, updated),
        );
        Self {
            insert: format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, {}, {}, {}, $11)",
                write_time("$8", due),
                write_time("$9", created),
                write_time("$10", updated),
            ),
            select: format!("SELECT {returning} FROM {table}"),
            get: format!(r#"SELECT {returning} FROM {table} WHERE "userId" = $1 AND id = $2"#),
            delete: format!(r#"DELETE FROM {table} WHERE "userId" = $1 AND id = $2"#),
            toggle: format!(
                r#"UPDATE {table} SET {TOGGLE_SET}, "updatedAt" = {} WHERE "userId" = $2 AND id = $3 RETURNING {returning}"#,
                write_time("$1", updated)
            ),
            stats: format!(
                "SELECT COUNT(*) AS total, \
                 COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0)::BIGINT AS done \
                 FROM {table} WHERE \"userId\" = $1"
            ),
            returning,
            table,
            naive,
            name,
        }
    }
}

/// The app's task table on PostgreSQL: a configurable qualified name
/// (default [`DEFAULT_TASKS_TABLE`]), used as it is.
///
/// | Rule | |
/// |---|---|
/// | Existing table | never created, altered or dropped; only the rows the tools change are written |
/// | Missing table | created in the SQLModel shape (naive `TIMESTAMP`s, no defaults), indexes included |
/// | Columns | every column is written by the engine: `id`, `status` and `completed` in step, `"createdAt"`, `"updatedAt"` |
/// | Timestamps | `TIMESTAMP` columns hold naive UTC, `TIMESTAMPTZ` columns are used as such (detected per column when the table opens) |
/// | Constraint failures | a `"userId"` the app's `"user"` table lacks (foreign key) is `InvalidRequest("unknown user ...")`; a rejected value (CHECK, length) is `InvalidRequest` too: tool errors the model can act on |
#[derive(Clone, Debug)]
pub struct PgTaskTable {
    pool: PgConnectionPool,
    sql: Arc<PgTaskSql>,
}

impl PgTaskTable {
    /// Opens the task table `name` (`schema.table`) on the store's pool,
    /// creating it only when it does not exist, and detects its column types.
    pub async fn open(store: &PostgresStore, name: &str) -> Result<Self> {
        let name = TableName::parse(name)?;
        let pool = store.pool().clone();
        let mut conn = pool.acquire().await?;
        // One transaction: a transaction pooler keeps one server connection
        // for all of it (the statements are unnamed, see `prepare_table`).
        let mut tx = sqlx::Connection::begin(conn.get()?).await?;
        let naive = prepare_table(&mut tx, &name).await?;
        tx.commit().await?;
        conn.release();
        Ok(Self {
            pool,
            sql: Arc::new(PgTaskSql::new(name, naive)),
        })
    }

    /// The table's name.
    pub fn name(&self) -> &TableName {
        &self.sql.name
    }

    fn time_wraps(&self) -> [bool; 3] {
        self.sql.naive.0
    }
}

/// Creates the table when missing, checks its columns and reports which
/// timestamp columns are naive. Runs once per start, so its statements are
/// unnamed: that costs nothing here and passes any transaction pooler.
async fn prepare_table(conn: &mut sqlx::PgConnection, name: &TableName) -> Result<NaiveColumns> {
    let table = name.quoted();
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .persistent(false)
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        create_table(conn, name, &table).await?;
    }
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2",
    )
    .persistent(false)
    .bind(&name.schema)
    .bind(&name.table)
    .fetch_all(&mut *conn)
    .await?;
    let type_of = |column: &str| {
        columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, data_type)| data_type.as_str())
    };
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .into_iter()
        .filter(|column| type_of(column).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "the task table {name} lacks the column(s) {}",
            missing.join(", ")
        )));
    }
    if type_of("id") != Some("uuid") {
        return Err(Error::Config(format!(
            "the task table {name} must have a UUID `id` column"
        )));
    }
    let naive = |column: &str| type_of(column) == Some("timestamp without time zone");
    Ok(NaiveColumns([
        naive("dueDate"),
        naive("createdAt"),
        naive("updatedAt"),
    ]))
}

/// The advisory lock key held while a missing task table is created, so
/// replicas starting together do not race (`chatkit_tasks` in ASCII).
const TASK_TABLE_LOCK: i64 = 0x0063_6b5f_7461_736b;

/// Creates the task table and its indexes, once, under [`TASK_TABLE_LOCK`].
async fn create_table(conn: &mut sqlx::PgConnection, name: &TableName, table: &str) -> Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .persistent(false)
        .bind(TASK_TABLE_LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .persistent(false)
        .bind(table)
        .fetch_one(&mut *tx)
        .await?;
    if exists {
        return Ok(tx.commit().await?);
    }
    let schema: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .persistent(false)
            .bind(&name.schema)
            .fetch_one(&mut *tx)
            .await?;
    if !schema {
        return Err(Error::Config(format!(
            "the task table {name} cannot be created: schema `{}` does not exist",
            name.schema
        )));
    }
    sqlx::query(&CREATE_TABLE.replace("{t}", table))
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    for (index, column) in [
        ("userId", r#""userId""#),
        ("status", "status"),
        ("priority", "priority"),
        ("category", "category"),
        ("dueDate", r#""dueDate""#),
    ] {
        let index = quote_ident(&format!("ix_{}_{index}", name.table));
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS {index} ON {table} ({column})"
        ))
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    }
    tracing::info!(table = %name, "created the task table");
    tx.commit().await?;
    Ok(())
}

/// Turns the app's constraint failures into errors the model can act on.
fn pg_write_error(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        match db.code().as_deref() {
            Some("23503") => {
                return Error::InvalidRequest(
                    "unknown user: the app has no user with this id, so the task cannot be saved"
                        .into(),
                );
            }
            Some("23514") => {
                return Error::InvalidRequest(format!(
                    "the app's task table rejected a value ({})",
                    db.constraint().unwrap_or("check constraint")
                ));
            }
            Some("22001") => {
                return Error::InvalidRequest(
                    "a value is too long for the app's task table".into(),
                );
            }
            _ => {}
        }
    }
    Error::from(err)
}

fn pg_task(row: &PgRow) -> Result<TaskRecord> {
    let completed: bool = row.try_get("completed")?;
    let id: Uuid = row.try_get("id")?;
    let due_date: Option<DateTime<Utc>> = row.try_get("dueDate")?;
    let priority: String = row.try_get("priority")?;
    let category: String = row.try_get("category")?;
    let status: String = row.try_get("status")?;
    let created_at: DateTime<Utc> = row.try_get("createdAt")?;
    let updated_at: DateTime<Utc> = row.try_get("updatedAt")?;
    Ok(TaskRecord {
        id: id.to_string(),
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        priority: stored_priority(&priority),
        category: stored_category(&category),
        status: stored_status(&status, completed),
        completed,
        due_date: due_date.map(Timestamp::from_utc),
        created_at: Timestamp::from_utc(created_at),
        updated_at: Timestamp::from_utc(updated_at),
        user_id: row.try_get("userId")?,
    })
}

/// The `timestamptz` value of a timestamp.
fn pg_time(at: Timestamp) -> DateTime<Utc> {
    at.as_datetime()
}

#[async_trait]
impl TaskStore for PgTaskTable {
    async fn create(&self, task: &NewTask, ctx: &RequestContext) -> Result<TaskRecord> {
        let record = new_record(task, ctx)?;
        let id = parse_task_id(&record.id)?;
        sqlx::query(&self.sql.insert)
            .bind(id)
            .bind(&record.title)
            .bind(record.description.as_deref())
            .bind(record.priority.as_str())
            .bind(record.category.as_str())
            .bind(record.status.as_str())
            .bind(record.completed)
            .bind(record.due_date.map(pg_time))
            .bind(pg_time(record.created_at))
            .bind(pg_time(record.updated_at))
            .bind(&record.user_id)
            .execute(&self.pool)
            .await
            .map_err(pg_write_error)?;
        Ok(record)
    }

    async fn list(&self, query: &TaskQuery, ctx: &RequestContext) -> Result<Vec<TaskRecord>> {
        let mut builder = QueryBuilder::<Postgres>::new(&self.sql.select);
        push_list_filters(&mut builder, query, ctx, Dialect::Postgres);
        push_page(&mut builder, query, Dialect::Postgres);
        let rows = builder.build().fetch_all(&self.pool).await?;
        rows.iter().map(pg_task).collect()
    }

    async fn count(&self, query: &TaskQuery, ctx: &RequestContext) -> Result<u64> {
        let mut builder = QueryBuilder::<Postgres>::new(format!(
            "SELECT COUNT(*) AS total FROM {}",
            self.sql.table
        ));
        push_list_filters(&mut builder, query, ctx, Dialect::Postgres);
        let row = builder.build().fetch_one(&self.pool).await?;
        let total: i64 = row.try_get("total")?;
        Ok(u64::try_from(total).unwrap_or_default())
    }

    async fn get(&self, task_id: &str, ctx: &RequestContext) -> Result<TaskRecord> {
        let id = parse_task_id(task_id)?;
        let row = sqlx::query(&self.sql.get)
            .bind(&ctx.user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("task", task_id))?;
        pg_task(&row)
    }

    async fn update(
        &self,
        task_id: &str,
        patch: &TaskPatch,
        ctx: &RequestContext,
    ) -> Result<TaskRecord> {
        let id = parse_task_id(task_id)?;
        let patch = CleanPatch::new(patch)?;
        if patch.is_empty() {
            return self.get(task_id, ctx).await;
        }
        let [due, _, updated] = self.time_wraps();
        let target = UpdateTarget {
            table: &self.sql.table,
            returning: &self.sql.returning,
            naive_due: due,
            naive_updated: updated,
        };
        let row = patch
            .update_query::<Postgres, _, _>(pg_time, &ctx.user_id, id, target)
            .build()
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_write_error)?
            .ok_or_else(|| Error::not_found("task", task_id))?;
        pg_task(&row)
    }

    async fn delete(&self, task_id: &str, ctx: &RequestContext) -> Result<()> {
        let id = parse_task_id(task_id)?;
        let done = sqlx::query(&self.sql.delete)
            .bind(&ctx.user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("task", task_id));
        }
        Ok(())
    }

    async fn toggle_complete(&self, task_id: &str, ctx: &RequestContext) -> Result<TaskRecord> {
        let id = parse_task_id(task_id)?;
        let row = sqlx::query(&self.sql.toggle)
            .bind(pg_time(Timestamp::now()))
            .bind(&ctx.user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_write_error)?
            .ok_or_else(|| Error::not_found("task", task_id))?;
        pg_task(&row)
    }

    async fn stats(&self, ctx: &RequestContext) -> Result<TaskStats> {
        let row = sqlx::query(&self.sql.stats)
            .bind(&ctx.user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(stats_from(row.try_get("total")?, row.try_get("done")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_accept_camel_and_snake_case() {
        for (text, key) in [
            ("createdAt", TaskSortBy::CreatedAt),
            ("created_at", TaskSortBy::CreatedAt),
            ("updatedAt", TaskSortBy::UpdatedAt),
            ("updated_at", TaskSortBy::UpdatedAt),
            ("dueDate", TaskSortBy::DueDate),
            ("due_date", TaskSortBy::DueDate),
            ("priority", TaskSortBy::Priority),
            ("Title", TaskSortBy::Title),
        ] {
            assert_eq!(text.parse::<TaskSortBy>().ok(), Some(key), "{text}");
        }
        assert!("size".parse::<TaskSortBy>().is_err());
    }

    #[test]
    fn due_dates_accept_offsets_and_plain_dates() {
        let parse = |text: &str| parse_due_date(text).map(|at| at.to_string()).ok();
        assert_eq!(
            parse("2026-01-20T17:00:00Z").as_deref(),
            Some("2026-01-20T17:00:00Z")
        );
        assert_eq!(
            parse("2026-01-20T22:00:00+05:00").as_deref(),
            Some("2026-01-20T17:00:00Z")
        );
        assert_eq!(parse("2026-01-20").as_deref(), Some("2026-01-20T00:00:00Z"));
        assert_eq!(
            parse("2026-01-20 17:00").as_deref(),
            Some("2026-01-20T17:00:00Z")
        );
        assert_eq!(
            parse("2026-01-20 17:00:00.250000").as_deref(),
            Some("2026-01-20T17:00:00.250000Z")
        );
        assert_eq!(parse("tomorrow"), None);
        assert_eq!(parse("2026-13-40"), None);
    }

    #[test]
    fn sqlite_timestamps_are_fixed_width() {
        let at = Timestamp::parse("2026-01-20T17:00:00Z").unwrap_or_else(Timestamp::now);
        assert_eq!(sqlite_time(at), "2026-01-20 17:00:00.000000");
        assert_eq!(sqlite_parse_time(&sqlite_time(at)).ok(), Some(at));
    }
}
