//! The to-do app's task: its fields, their allowed values and validation.
//!
//! These are the rules of the app's own task API (names, limits and error
//! texts), shared by the task table ([`super::table`]), the tools
//! ([`super::tools`]) and any host that writes tasks through
//! [`super::Assistant::run_task_tool`].
//!
//! | field | rule | error text |
//! | --- | --- | --- |
//! | `title` | trimmed, 1..=255 characters | `Title cannot be empty` / `Title cannot be longer than 255 characters` |
//! | `description` | trimmed, at most 1,000 characters; empty means none | `Description cannot be longer than 1000 characters` |
//! | `priority` | `low` / `medium` / `high` | `Invalid priority: ...` |
//! | `category` | `work` / `personal` / `shopping` / `health` / `other` | `Invalid category: ...` |
//! | `task_id` | any UUID spelling | `Invalid task ID format` |
//! | `due_date` | ISO-8601 with `Z` or offset, naive (UTC), or `YYYY-MM-DD` | `Invalid due_date: ...` |
//!
//! ```
//! use chatkit_engine::todo::{Priority, parse_due_date, parse_task_id};
//! assert_eq!("HIGH".parse::<Priority>().unwrap(), Priority::High);
//! assert_eq!(parse_task_id("nope").unwrap_err().code(), "invalid_request");
//! assert_eq!(parse_due_date("2026-01-20").unwrap().to_string(), "2026-01-20T00:00:00Z");
//! ```

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{Order, Timestamp};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The most tasks one [`TaskStore::list`](super::TaskStore::list) call returns.
pub const MAX_TASKS: usize = 200;

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 255;

/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// The message of an id that is not a UUID.
pub const INVALID_TASK_ID: &str = "Invalid task ID format";

/// How important a task is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Can wait.
    Low,
    /// The default.
    #[default]
    Medium,
    /// Do it first.
    High,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 3] = [Priority::Low, Priority::Medium, Priority::High];

    /// `"low"`, `"medium"` or `"high"` (the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

impl FromStr for Priority {
    type Err = Error;

    /// Parses `low`/`medium`/`high`, ignoring case and surrounding spaces.
    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Priority::Low),
            "medium" => Ok(Priority::Medium),
            "high" => Ok(Priority::High),
            _ => Err(Error::invalid("Invalid priority: must be low/medium/high")),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What area of life a task belongs to (the app's stand-in for tags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Work (the default).
    #[default]
    Work,
    /// Personal matters.
    Personal,
    /// Household.
    Home,
    /// Anything else.
    Other,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 4] = [
        Category::Work,
        Category::Personal,
        Category::Home,
        Category::Other,
    ];

    /// `"work"`, `"personal"`, `"home"` or `"other"` (the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Work => "work",
            Category::Personal => "personal",
            Category::Home => "home",
            Category::Other => "other",
        }
    }
}

impl FromStr for Category {
    type Err = Error;

    /// Parses `work`/`personal`/`home`/`other`, ignoring case and
    /// surrounding spaces.
    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "work" => Ok(Category::Work),
            "personal" => Ok(Category::Personal),
            "home" => Ok(Category::Home),
            "other" => Ok(Category::Other),
            _ => Err(Error::invalid(
                "Invalid category: must be work/personal/home/other",
            )),
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a task is still to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Still to do (the default).
    #[default]
    Pending,
    /// Done.
    Completed,
}

impl TaskStatus {
    /// `"pending"` or `"completed"` (the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Completed => "completed",
        }
    }
}

impl FromStr for TaskStatus {
    type Err = Error;

    /// Parses `pending`/`completed`, ignoring case and surrounding spaces.
    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "pending" => Ok(TaskStatus::Pending),
            "completed" => Ok(TaskStatus::Completed),
            _ => Err(Error::invalid("Invalid status: must be pending/completed")),
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task, as the REST contract shows it.
///
/// Serialized with camelCase keys (`id, title, description, priority,
/// category, status, completed, dueDate, createdAt, updatedAt, userId`);
/// absent values are `null`, timestamps ISO-8601 UTC with `Z`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// The task id: a lowercase, hyphenated UUID.
    pub id: String,
    /// The title (1–255 characters).
    pub title: String,
    /// Free text (at most 1000 characters).
    pub description: Option<String>,
    /// How important it is.
    pub priority: Priority,
    /// Its category.
    pub category: Category,
    /// Pending or completed (kept in step with `completed`).
    pub status: TaskStatus,
    /// Whether it is done.
    pub completed: bool,
    /// When it is due, if it has a due date.
    pub due_date: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
    /// The owner.
    pub user_id: String,
}

/// A task to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewTask {
    /// The title: 1–255 characters once surrounding spaces are trimmed.
    pub title: String,
    /// Free text, at most 1000 characters; empty means none.
    pub description: Option<String>,
    /// Defaults to medium.
    pub priority: Priority,
    /// Defaults to work.
    pub category: Category,
    /// When it is due.
    pub due_date: Option<Timestamp>,
}

impl NewTask {
    /// A medium-priority work task with no description or due date.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }
}

/// A partial update: a field that is `None` stays untouched.
///
/// `description` and `due_date` are doubly optional: `Some(None)` clears
/// them (as does an empty description).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskPatch {
    /// A new title (1–255 characters once trimmed).
    pub title: Option<String>,
    /// A new description, or `Some(None)` to clear it.
    pub description: Option<Option<String>>,
    /// A new priority.
    pub priority: Option<Priority>,
    /// A new category.
    pub category: Option<Category>,
    /// A new due date, or `Some(None)` to clear it.
    pub due_date: Option<Option<Timestamp>>,
}

impl TaskPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.category.is_none()
            && self.due_date.is_none()
    }
}

/// What [`TaskQuery`] sorts by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TaskSortBy {
    /// Creation time (the default).
    #[default]
    CreatedAt,
    /// Time of the last change.
    UpdatedAt,
    /// Due date; tasks without one come last in both directions.
    DueDate,
    /// Priority by meaning: `desc` puts high first, `asc` low first.
    Priority,
    /// Title, case-insensitively.
    Title,
}

impl TaskSortBy {
    /// The camelCase name (`createdAt`, `updatedAt`, `dueDate`, `priority`,
    /// `title`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskSortBy::CreatedAt => "createdAt",
            TaskSortBy::UpdatedAt => "updatedAt",
            TaskSortBy::DueDate => "dueDate",
            TaskSortBy::Priority => "priority",
            TaskSortBy::Title => "title",
        }
    }
}

impl FromStr for TaskSortBy {
    type Err = Error;

    /// Accepts camelCase (`createdAt`) and snake_case (`created_at`) names,
    /// in any case.
    fn from_str(text: &str) -> Result<Self> {
        let key: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "createdat" | "created" => Ok(TaskSortBy::CreatedAt),
            "updatedat" | "updated" => Ok(TaskSortBy::UpdatedAt),
            "duedate" | "due" => Ok(TaskSortBy::DueDate),
            "priority" => Ok(TaskSortBy::Priority),
            "title" => Ok(TaskSortBy::Title),
            _ => Err(Error::invalid(
                "Invalid sort_by: must be createdAt/updatedAt/dueDate/priority/title",
            )),
        }
    }
}

/// Which of the caller's tasks [`TaskStore::list`](super::TaskStore::list) returns, and in which
/// order.
///
/// Filters combine (all must hold). Ties of the sort key are broken by
/// creation time and then id, in the same direction, so the order is always
/// deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks with this priority.
    pub priority: Option<Priority>,
    /// Only tasks in this category.
    pub category: Option<Category>,
    /// Only tasks whose title or description contains this text,
    /// case-insensitively and literally (`%`, `_`, quotes and backslashes
    /// are ordinary characters). Empty means no filter.
    pub search: Option<String>,
    /// The sort key (default: creation time).
    pub sort_by: TaskSortBy,
    /// The direction (default: descending, newest first).
    pub sort_order: Order,
    /// At most this many tasks (clamped to `1..=MAX_TASKS`; `None` means
    /// [`MAX_TASKS`]).
    pub limit: Option<usize>,
    /// Skip this many tasks of the sorted list first (a page's start).
    pub offset: usize,
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            status: None,
            priority: None,
            category: None,
            search: None,
            sort_by: TaskSortBy::CreatedAt,
            sort_order: Order::Desc,
            limit: None,
            offset: 0,
        }
    }
}

/// How many tasks the caller has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStats {
    /// All tasks.
    pub total: u64,
    /// Tasks not done yet.
    pub pending: u64,
    /// Tasks done.
    pub completed: u64,
}

/// Parses a task id: any UUID spelling, `InvalidRequest("Invalid task ID
/// format")` otherwise.
pub fn parse_task_id(task_id: &str) -> Result<Uuid> {
    Uuid::parse_str(task_id.trim()).map_err(|_| Error::invalid(INVALID_TASK_ID))
}

/// Parses a due date: ISO-8601 with `Z` or an offset, a naive date-time
/// (read as UTC, `T` or space separated, seconds optional), or a plain date
/// `YYYY-MM-DD` (midnight UTC).
pub fn parse_due_date(text: &str) -> Result<Timestamp> {
    let text = text.trim();
    if let Some(at) = Timestamp::parse(text) {
        return Ok(at);
    }
    let spaced = text.replacen(' ', "T", 1);
    if let Some(at) = Timestamp::parse(&spaced) {
        return Ok(at);
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(&spaced, "%Y-%m-%dT%H:%M") {
        return Ok(Timestamp::from_utc(naive.and_utc()));
    }
    if let Some(at) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
    {
        return Ok(Timestamp::from_utc(at.and_utc()));
    }
    Err(Error::invalid(
        "Invalid due_date: use ISO-8601, e.g. 2026-01-20T17:00:00Z or 2026-01-20",
    ))
}

/// A trimmed, length-checked title.
pub(super) fn clean_title(title: &str) -> Result<String> {
    let title = title.trim();
    crate::validate::line("Title", title)?;
    if title.is_empty() {
        return Err(Error::invalid("Title cannot be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::invalid(format!(
            "Title cannot be longer than {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title.to_owned())
}

/// A trimmed, length-checked description; empty becomes `None`.
pub(super) fn clean_description(description: Option<&str>) -> Result<Option<String>> {
    let Some(description) = description.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    crate::validate::text("Description", description)?;
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!(
            "Description cannot be longer than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(Some(description.to_owned()))
}

/// Builds the record of a new task after validating it.
pub(super) fn new_record(task: &NewTask, ctx: &RequestContext) -> Result<TaskRecord> {
    let now = Timestamp::now();
    Ok(TaskRecord {
        id: Uuid::new_v4().to_string(),
        title: clean_title(&task.title)?,
        description: clean_description(task.description.as_deref())?,
        priority: task.priority,
        category: task.category,
        status: TaskStatus::Pending,
        completed: false,
        due_date: task.due_date,
        created_at: now,
        updated_at: now,
        user_id: ctx.user_id.clone(),
    })
}
