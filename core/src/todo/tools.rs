//! The 7 task tools of the Todo assistant: `create_task`, `list_tasks`,
//! `get_task`, `update_task`, `delete_task`, `toggle_complete`, `get_stats`.
//!
//! They keep the contract of the app's MCP server (names, parameters,
//! validation messages, `{"success": true, "data": ...}` /
//! `{"success": false, "error": "..."}` results) with two deliberate
//! differences: the user is the verified caller of the [`ToolContext`], never
//! a `user_id` argument (one sent anyway is ignored), and `update_task`
//! changes only the fields it is given.
//!
//! `list_tasks` returns one page, so a user with thousands of tasks does not
//! send them all to the model on every call: `limit` (default
//! [`DEFAULT_LIST_LIMIT`], at most [`MAX_TASKS`]) and `offset` pick it, and
//! the result says where it sits:
//! `{"success": true, "data": [...], "total": 120, "limit": 50, "offset": 0, "has_more": true}`.
//!
//! Validation failures and unknown tasks are `Ok` outputs with
//! `is_error: true` and `success: false`, so the model can correct itself;
//! storage failures are `Err`.
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::RequestContext;
//! use chatkit_engine::store::SqliteStore;
//! use chatkit_engine::todo::task_tools;
//! use chatkit_engine::tools::ToolContext;
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! let tools = task_tools(Arc::new(SqliteStore::in_memory().await?));
//! let ctx = ToolContext { request: RequestContext::new("alice"), call_id: "call_1".into() };
//! let create = tools.get("create_task").unwrap();
//! let out = create.call(json!({"title": "Buy milk", "priority": "high"}), &ctx).await?;
//! let result: serde_json::Value = serde_json::from_str(&out.content).unwrap();
//! assert_eq!(result["success"], true);
//! assert_eq!(result["data"]["priority"], "high");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use super::table::TaskStore;
use super::task::{
    Category, INVALID_TASK_ID, MAX_DESCRIPTION_CHARS, MAX_TASKS, MAX_TITLE_CHARS, NewTask,
    Priority, TaskPatch, TaskQuery, TaskSortBy, TaskStatus, parse_due_date,
};
use crate::engine::ToolLabel;
use crate::error::{Error, Result};
use crate::protocol::{Order, Timestamp};
use crate::tools::{Tool, ToolContext, ToolOutput, ToolSet};
use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The names of the task tools, in the order [`task_tools`] adds them.
pub const TASK_TOOL_NAMES: [&str; 7] = [
    "create_task",
    "list_tasks",
    "get_task",
    "update_task",
    "delete_task",
    "toggle_complete",
    "get_stats",
];

/// How many tasks one `list_tasks` call returns unless it asks for a
/// `limit` (at most [`MAX_TASKS`]).
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// The largest `offset` `list_tasks` accepts.
const MAX_LIST_OFFSET: usize = 1_000_000;

/// The `data` of a successful `delete_task`.
pub const TASK_DELETED: &str = "Task deleted successfully";

/// The error of an unknown (or another user's) task.
pub const TASK_NOT_FOUND: &str = "Task not found";

/// Argument names that are accepted and ignored: the user is the caller.
const IGNORED_ARGUMENTS: [&str; 2] = ["user_id", "userId"];

/// All 7 task tools over one store.
pub fn task_tools(store: Arc<dyn TaskStore>) -> ToolSet {
    ToolSet::new()
        .with(CreateTaskTool::new(Arc::clone(&store)))
        .with(ListTasksTool::new(Arc::clone(&store)))
        .with(GetTaskTool::new(Arc::clone(&store)))
        .with(UpdateTaskTool::new(Arc::clone(&store)))
        .with(DeleteTaskTool::new(Arc::clone(&store)))
        .with(ToggleCompleteTool::new(Arc::clone(&store)))
        .with(GetStatsTool::new(store))
}

/// How a task tool call is shown in the tool-activity workflow; other tools
/// get "Running `<name>`".
pub fn tool_label(name: &str) -> ToolLabel {
    let (title, icon) = match name {
        "create_task" => ("Creating a task", "plus"),
        "list_tasks" => ("Looking up tasks", "search"),
        "get_task" => ("Reading a task", "search"),
        "update_task" => ("Updating a task", "write"),
        "delete_task" => ("Deleting a task", "empty-circle"),
        "toggle_complete" => ("Toggling completion", "check-circle"),
        "get_stats" => ("Counting tasks", "chart"),
        other => return ToolLabel::new(format!("Running {other}"), "bolt"),
    };
    ToolLabel::new(title, icon)
}

// ---------------------------------------------------------------------------
// Results and argument parsing

/// Why a call did not succeed.
enum Failure {
    /// Shown to the model as `{"success": false, "error": ...}`.
    Rejected(String),
    /// Returned as `Err` (storage and internal failures).
    Failed(Error),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidRequest(message) => Failure::Rejected(message),
            Error::NotFound { .. } => Failure::Rejected(TASK_NOT_FOUND.to_owned()),
            other => Failure::Failed(other),
        }
    }
}

type Outcome = std::result::Result<Value, Failure>;

/// The `data` value of a successful call.
fn data(value: &impl Serialize) -> Outcome {
    serde_json::to_value(value)
        .map_err(|err| Failure::Failed(Error::Internal(format!("cannot encode a task: {err}"))))
}

/// Wraps an outcome in the success envelope.
fn finish(outcome: Outcome) -> Result<ToolOutput> {
    match outcome {
        Ok(data) => Ok(ToolOutput::json(
            json!({"success": true, "data": data}),
            false,
        )),
        Err(Failure::Rejected(error)) => Ok(ToolOutput::json(
            json!({"success": false, "error": error}),
            true,
        )),
        Err(Failure::Failed(err)) => Err(err),
    }
}

/// Wraps a page (`data` with its paging fields) in the success envelope:
/// `{"success": true, "data": [...], "total": ..., ...}`.
fn finish_page(outcome: Outcome) -> Result<ToolOutput> {
    match outcome {
        Ok(Value::Object(page)) => {
            let mut envelope = Map::with_capacity(page.len() + 1);
            envelope.insert("success".into(), Value::Bool(true));
            envelope.extend(page);
            Ok(ToolOutput::json(Value::Object(envelope), false))
        }
        other => finish(other),
    }
}

fn rejected(message: impl Into<String>) -> Failure {
    Failure::Rejected(message.into())
}

/// A tool's arguments object, checked against the names it accepts.
struct Args {
    map: Map<String, Value>,
}

impl Args {
    /// Accepts an object (or a JSON string holding one; `null` is `{}`) whose
    /// keys are all in `allowed` or ignored.
    fn parse(tool: &str, arguments: Value, allowed: &[&str]) -> std::result::Result<Self, Failure> {
        let map = match arguments {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            Value::String(text) if text.trim().is_empty() => Map::new(),
            Value::String(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => map,
                _ => return Err(rejected("Arguments must be a JSON object")),
            },
            _ => return Err(rejected("Arguments must be a JSON object")),
        };
        if let Some(unknown) = map.keys().find(|key| {
            !allowed.contains(&key.as_str()) && !IGNORED_ARGUMENTS.contains(&key.as_str())
        }) {
            let accepted = if allowed.is_empty() {
                "no arguments".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(rejected(format!(
                "Unknown argument `{unknown}`: {tool} accepts {accepted}"
            )));
        }
        Ok(Self { map })
    }

    /// A string argument; absent and `null` are `None`.
    fn string(&self, name: &str) -> std::result::Result<Option<&str>, Failure> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(rejected(format!("Invalid {name}: must be a string"))),
        }
    }

    /// An optional string argument where an empty string means absent.
    fn optional(&self, name: &str) -> std::result::Result<Option<&str>, Failure> {
        Ok(self.string(name)?.filter(|text| !text.trim().is_empty()))
    }

    /// The `task_id` argument: required, and a UUID string.
    fn task_id(&self) -> std::result::Result<&str, Failure> {
        match self.map.get("task_id") {
            None | Some(Value::Null) => Err(rejected("Missing required argument `task_id`")),
            Some(Value::String(text)) => Ok(text),
            Some(_) => Err(rejected(INVALID_TASK_ID)),
        }
    }

    /// A whole-number argument in `min..=max`; absent and `null` are `None`.
    fn integer(
        &self,
        name: &str,
        min: usize,
        max: usize,
    ) -> std::result::Result<Option<usize>, Failure> {
        let invalid = || {
            rejected(format!(
                "Invalid {name}: must be a whole number from {min} to {max}"
            ))
        };
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(invalid),
            Some(_) => Err(invalid()),
        }
    }

    /// A filter value where `"all"` (or empty) means no filter.
    fn filter(&self, name: &str) -> std::result::Result<Option<&str>, Failure> {
        Ok(self.string(name)?.filter(|text| {
            let text = text.trim();
            !text.is_empty() && !text.eq_ignore_ascii_case("all")
        }))
    }
}

fn title_schema() -> Value {
    json!({
        "type": "string",
        "description": "Short title of the task.",
        "minLength": 1,
        "maxLength": MAX_TITLE_CHARS,
    })
}

fn priority_schema() -> Value {
    json!({"type": "string", "enum": ["low", "medium", "high"]})
}

fn category_schema() -> Value {
    json!({"type": "string", "enum": ["work", "personal", "home", "other"]})
}

fn task_id_schema() -> Value {
    json!({"type": "string", "description": "The task's id (a UUID, as returned by list_tasks or create_task)."})
}

fn object_schema(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

// ---------------------------------------------------------------------------
// The tools

macro_rules! task_tool {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            store: Arc<dyn TaskStore>,
        }

        impl $name {
            /// The tool over `store`.
            pub fn new(store: Arc<dyn TaskStore>) -> Self {
                Self { store }
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    };
}

task_tool!(
    /// `create_task`: creates a task for the caller.
    CreateTaskTool
);
task_tool!(
    /// `list_tasks`: the caller's tasks, filtered, searched and sorted.
    ListTasksTool
);
task_tool!(
    /// `get_task`: one of the caller's tasks by id.
    GetTaskTool
);
task_tool!(
    /// `update_task`: changes the given fields of one of the caller's tasks.
    UpdateTaskTool
);
task_tool!(
    /// `delete_task`: deletes one of the caller's tasks.
    DeleteTaskTool
);
task_tool!(
    /// `toggle_complete`: marks a task completed, or pending again.
    ToggleCompleteTool
);
task_tool!(
    /// `get_stats`: how many tasks the caller has, pending and completed.
    GetStatsTool
);

impl CreateTaskTool {
    async fn run(&self, arguments: Value, ctx: &ToolContext) -> Outcome {
        let args = Args::parse(
            self.name(),
            arguments,
            &["title", "description", "priority", "category", "due_date"],
        )?;
        let title = args.string("title")?.unwrap_or_default();
        if title.trim().is_empty() {
            return Err(rejected("Title cannot be empty"));
        }
        let task = NewTask {
            title: title.to_owned(),
            description: args.string("description")?.map(str::to_owned),
            priority: args
                .optional("priority")?
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
            category: args
                .optional("category")?
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
            due_date: due_date(args.optional("due_date")?)?.flatten(),
        };
        data(&self.store.create(&task, &ctx.request).await?)
    }
}

/// A `due_date` argument: `None` if absent, `Some(None)` if empty (clear).
fn due_date(text: Option<&str>) -> std::result::Result<Option<Option<Timestamp>>, Failure> {
    match text {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(Some(None)),
        Some(text) => Ok(Some(Some(parse_due_date(text)?))),
    }
}

#[async_trait]
impl Tool for CreateTaskTool {
    fn name(&self) -> &str {
        "create_task"
    }

    fn description(&self) -> &str {
        "Create a new task for the current user. Returns the created task, including its id."
    }

    fn parameters(&self) -> Value {
        object_schema(
            json!({
                "title": title_schema(),
                "description": {
                    "type": "string",
                    "description": "Optional details.",
                    "maxLength": MAX_DESCRIPTION_CHARS,
                },
                "priority": priority_schema(),
                "category": category_schema(),
                "due_date": {
                    "type": "string",
                    "description": "Optional due date, ISO-8601: 2026-01-20T17:00:00Z, with an offset, or a plain date 2026-01-20.",
                },
            }),
            &["title"],
        )
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        finish(self.run(arguments, ctx).await)
    }
}

impl ListTasksTool {
    async fn run(&self, arguments: Value, ctx: &ToolContext) -> Outcome {
        let args = Args::parse(
            self.name(),
            arguments,
            &[
                "status",
                "priority",
                "category",
                "search",
                "sort_by",
                "sort_order",
                "limit",
                "offset",
            ],
        )?;
        let limit = args
            .integer("limit", 1, MAX_TASKS)?
            .unwrap_or(DEFAULT_LIST_LIMIT);
        let offset = args.integer("offset", 0, MAX_LIST_OFFSET)?.unwrap_or(0);
        let sort_order = match args
            .string("sort_order")?
            .map(|text| text.trim().to_ascii_lowercase())
        {
            None => Order::Desc,
            Some(text) if text.is_empty() || text == "desc" || text == "descending" => Order::Desc,
            Some(text) if text == "asc" || text == "ascending" => Order::Asc,
            Some(_) => return Err(rejected("Invalid sort_order: must be asc/desc")),
        };
        let query = TaskQuery {
            status: args
                .filter("status")?
                .map(str::parse::<TaskStatus>)
                .transpose()?,
            priority: args
                .filter("priority")?
                .map(str::parse::<Priority>)
                .transpose()?,
            category: args
                .filter("category")?
                .map(str::parse::<Category>)
                .transpose()?,
            search: args
                .string("search")?
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned),
            sort_by: args
                .string("sort_by")?
                .filter(|text| !text.trim().is_empty())
                .map(str::parse::<TaskSortBy>)
                .transpose()?
                .unwrap_or_default(),
            sort_order,
            limit: Some(limit),
            offset,
        };
        let tasks = self.store.list(&query, &ctx.request).await?;
        // A first page that is not full already tells the total.
        let total = if offset == 0 && tasks.len() < limit {
            tasks.len() as u64
        } else {
            self.store.count(&query, &ctx.request).await?
        };
        let shown = (offset + tasks.len()) as u64;
        Ok(json!({
            "data": data(&tasks)?,
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": shown < total,
        }))
    }
}

#[async_trait]
impl Tool for ListTasksTool {
    fn name(&self) -> &str {
        "list_tasks"
    }

    fn description(&self) -> &str {
        "List the current user's tasks (newest first by default), optionally filtered by status, priority, category and a search text, and sorted. Returns one page (`limit`, default 50) with the `total` count; ask for the next page with `offset` when `has_more` is true."
    }

    fn parameters(&self) -> Value {
        object_schema(
            json!({
                "status": {
                    "type": "string",
                    "enum": ["all", "pending", "completed"],
                    "description": "Only tasks with this status (omit or \"all\" for every task).",
                },
                "priority": priority_schema(),
                "category": category_schema(),
                "search": {
                    "type": "string",
                    "description": "Only tasks whose title or description contains this text (case-insensitive).",
                },
                "sort_by": {
                    "type": "string",
                    "enum": ["createdAt", "updatedAt", "dueDate", "priority", "title"],
                    "default": "createdAt",
                },
                "sort_order": {
                    "type": "string",
                    "enum": ["asc", "desc"],
                    "default": "desc",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_TASKS,
                    "default": DEFAULT_LIST_LIMIT,
                    "description": "At most this many tasks in this page.",
                },
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "default": 0,
                    "description": "Skip this many tasks first (the start of the next page).",
                },
            }),
            &[],
        )
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        finish_page(self.run(arguments, ctx).await)
    }
}

impl GetTaskTool {
    async fn run(&self, arguments: Value, ctx: &ToolContext) -> Outcome {
        let args = Args::parse(self.name(), arguments, &["task_id"])?;
        data(&self.store.get(args.task_id()?, &ctx.request).await?)
    }
}

#[async_trait]
impl Tool for GetTaskTool {
    fn name(&self) -> &str {
        "get_task"
    }

    fn description(&self) -> &str {
        "Get one of the current user's tasks by its id."
    }

    fn parameters(&self) -> Value {
        object_schema(json!({"task_id": task_id_schema()}), &["task_id"])
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        finish(self.run(arguments, ctx).await)
    }
}

impl UpdateTaskTool {
    async fn run(&self, arguments: Value, ctx: &ToolContext) -> Outcome {
        let args = Args::parse(
            self.name(),
            arguments,
            &[
                "task_id",
                "title",
                "description",
                "priority",
                "category",
                "due_date",
            ],
        )?;
        let task_id = args.task_id()?;
        let patch = TaskPatch {
            title: args.string("title")?.map(str::to_owned),
            description: args
                .string("description")?
                .map(|text| Some(text.to_owned()).filter(|text| !text.trim().is_empty())),
            priority: args.optional("priority")?.map(str::parse).transpose()?,
            category: args.optional("category")?.map(str::parse).transpose()?,
            due_date: due_date(args.string("due_date")?)?,
        };
        if patch.is_empty() {
            // Still report a bad or unknown id first.
            self.store.get(task_id, &ctx.request).await?;
            return Err(rejected(
                "Nothing to update: give at least one of title, description, priority, category, due_date",
            ));
        }
        data(&self.store.update(task_id, &patch, &ctx.request).await?)
    }
}

#[async_trait]
impl Tool for UpdateTaskTool {
    fn name(&self) -> &str {
        "update_task"
    }

    fn description(&self) -> &str {
        "Update one of the current user's tasks. Only the fields given are changed; an empty string clears the description or the due date."
    }

    fn parameters(&self) -> Value {
        object_schema(
            json!({
                "task_id": task_id_schema(),
                "title": title_schema(),
                "description": {
                    "type": "string",
                    "description": "New details (an empty string removes them).",
                    "maxLength": MAX_DESCRIPTION_CHARS,
                },
                "priority": priority_schema(),
                "category": category_schema(),
                "due_date": {
                    "type": "string",
                    "description": "New due date, ISO-8601 (2026-01-20T17:00:00Z, with an offset, or 2026-01-20); an empty string removes it.",
                },
            }),
            &["task_id"],
        )
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        finish(self.run(arguments, ctx).await)
    }
}

impl DeleteTaskTool {
    async fn run(&self, arguments: Value, ctx: &ToolContext) -> Outcome {
        let args = Args::parse(self.name(), arguments, &["task_id"])?;
        self.store.delete(args.task_id()?, &ctx.request).await?;
        Ok(Value::from(TASK_DELETED))
    }
}

#[async_trait]
impl Tool for DeleteTaskTool {
    fn name(&self) -> &str {
        "delete_task"
    }

    fn description(&self) -> &str {
        "Delete one of the current user's tasks by its id. Use list_tasks first to find the id of a task the user names."
    }

    fn parameters(&self) -> Value {
        object_schema(json!({"task_id": task_id_schema()}), &["task_id"])
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        finish(self.run(arguments, ctx).await)
    }
}

impl ToggleCompleteTool {
    async fn run(&self, arguments: Value, ctx: &ToolContext) -> Outcome {
        let args = Args::parse(self.name(), arguments, &["task_id"])?;
        data(
            &self
                .store
                .toggle_complete(args.task_id()?, &ctx.request)
                .await?,
        )
    }
}

#[async_trait]
impl Tool for ToggleCompleteTool {
    fn name(&self) -> &str {
        "toggle_complete"
    }

    fn description(&self) -> &str {
        "Toggle a task between pending and completed. Returns the task with its new status."
    }

    fn parameters(&self) -> Value {
        object_schema(json!({"task_id": task_id_schema()}), &["task_id"])
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        finish(self.run(arguments, ctx).await)
    }
}

impl GetStatsTool {
    async fn run(&self, arguments: Value, ctx: &ToolContext) -> Outcome {
        Args::parse(self.name(), arguments, &[])?;
        data(&self.store.stats(&ctx.request).await?)
    }
}

#[async_trait]
impl Tool for GetStatsTool {
    fn name(&self) -> &str {
        "get_stats"
    }

    fn description(&self) -> &str {
        "Count the current user's tasks: total, pending and completed."
    }

    fn parameters(&self) -> Value {
        object_schema(json!({}), &[])
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        finish(self.run(arguments, ctx).await)
    }
}
