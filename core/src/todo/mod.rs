//! The to-do assistant, built on the generic engine.
//!
//! Everything about tasks lives here and nowhere else: the task type and its
//! validation ([`task`]), the app's `tasks` table on both backends
//! ([`table`]), the 7 tools ([`tools`]), the "Task Orchestrator" and "Urdu
//! Specialist" agents with their prompts and language routing ([`agents`],
//! [`language`]), the offline model's task rules ([`offline`]) and the wiring
//! from an [`EngineConfig`]. The generic modules never import this one;
//! another app replaces it without touching them.
//!
//! | piece | what a host does with it |
//! | --- | --- |
//! | [`Assistant`] | hands it to [`ChatEngine::builder`] as the responder; calls [`Assistant::run_task_tool`] from its task REST routes; serves [`Assistant::tools`] over MCP |
//! | [`App::from_config`] | the whole app (store, task table, model, token verifier) from one config: what `serve` and the bindings run |
//! | [`offline_model`] | the deterministic offline model with the task rules |
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::todo::App;
//! use chatkit_engine::{EngineConfig, RequestContext};
//! use serde_json::json;
//!
//! let config = EngineConfig { database_url: "sqlite::memory:".into(), ..EngineConfig::default() };
//! let app = App::from_config(config).await?;
//! assert_eq!(app.engine.model_name(), "scripted-offline");
//! let alice = RequestContext::new("alice");
//! let created = app.assistant.run_task_tool("create_task", json!({"title": "Buy milk"}), &alice).await?;
//! assert_eq!(created["data"]["title"], "Buy milk");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod agents;
pub mod history;
pub mod language;
pub mod offline;
pub mod table;
pub mod task;
pub mod tools;
pub mod widgets;

pub use agents::{ORCHESTRATOR, TaskAgents, URDU_SPECIALIST};
pub use offline::TaskRules;
pub use table::{DEFAULT_TASKS_TABLE, PgTaskTable, TableName, TaskStore};
pub use task::{
    Category, INVALID_TASK_ID, MAX_DESCRIPTION_CHARS, MAX_TASKS, MAX_TITLE_CHARS, NewTask,
    Priority, TaskPatch, TaskQuery, TaskRecord, TaskSortBy, TaskStats, TaskStatus, parse_due_date,
    parse_task_id,
};
pub use tools::{DEFAULT_LIST_LIMIT, TASK_TOOL_NAMES, task_tools, tool_label};

use crate::agents::{RunConfig, Runner};
use crate::auth::JwtVerifier;
use crate::config::EngineConfig;
use crate::context::RequestContext;
use crate::engine::{ActionHandlers, AgentResponder, ChatEngine, Responder, Turn};
use crate::error::{Error, Result};
use crate::models::{self, ScriptedModel};
use crate::protocol::{Action, StreamOptions, ThreadItem, ThreadMetadata};
use crate::store::{self, Database};
use crate::tools::{ToolContext, ToolSet};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// A shared, type-erased task table.
pub type SharedTaskStore = Arc<dyn TaskStore>;

/// The offline model with the task rules (see [`offline`]).
pub fn offline_model() -> ScriptedModel {
    ScriptedModel::new(TaskRules)
}

/// The to-do assistant: the task table, its tools (plus any a host adds),
/// and the two agents answering with them. Cheap to clone.
///
/// It is a [`Responder`]: hand it to [`ChatEngine::builder`].
#[derive(Clone)]
pub struct Assistant {
    tasks: SharedTaskStore,
    tools: ToolSet,
    agents: TaskAgents,
    responder: AgentResponder,
}

impl std::fmt::Debug for Assistant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assistant")
            .field("tools", &self.tools)
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

impl Assistant {
    /// The assistant over `tasks`, running its agents with `runner`.
    pub fn new(tasks: SharedTaskStore, runner: Runner) -> Self {
        Self::with_tools(tasks, runner, &ToolSet::new())
    }

    /// Like [`Assistant::new`], with `extra` tools given to both agents next
    /// to the 7 task tools: the seam through which the bindings register
    /// host-language functions as tools. An extra tool with a task tool's
    /// name replaces that task tool.
    pub fn with_tools(tasks: SharedTaskStore, runner: Runner, extra: &ToolSet) -> Self {
        Self::with_extensions(tasks, runner, extra, &ActionHandlers::new())
    }

    /// Like [`Assistant::with_tools`], with `actions`: widget action
    /// handlers next to the task widgets' own (see
    /// [`crate::engine::actions`]), the seam through which the bindings
    /// register host-language action handlers. A handler for a task action
    /// type (`tasks.toggle`, ...) replaces the built-in one.
    pub fn with_extensions(
        tasks: SharedTaskStore,
        runner: Runner,
        extra: &ToolSet,
        actions: &ActionHandlers,
    ) -> Self {
        let mut tools = ToolSet::new();
        for tool in task_tools(Arc::clone(&tasks)).iter() {
            tools.push(Arc::new(widgets::Presented::new(
                Arc::clone(tool),
                Arc::clone(&tasks),
            )));
        }
        tools.extend(extra);
        let agents = TaskAgents::new(tools.clone());
        let router = agents.clone();
        let mut handlers = widgets::task_actions(Arc::clone(&tasks));
        handlers.extend(actions);
        let responder =
            AgentResponder::routed(runner, ORCHESTRATOR, move |text| router.route(text))
                .tool_labels(tool_label)
                .action_handlers(&handlers);
        Self {
            tasks,
            tools,
            agents,
            responder,
        }
    }

    /// How many recent thread items the model reads (default 30); widgets,
    /// which it never reads, neither count nor load.
    pub fn history_items(mut self, items: usize) -> Self {
        self.responder = self.responder.history_items(items);
        self
    }

    /// How long a confirmation before a tool call can be answered
    /// (default 15 minutes).
    pub fn approval_ttl(mut self, ttl: Duration) -> Self {
        self.responder = self.responder.approval_ttl(ttl);
        self
    }

    /// The task table.
    pub fn task_store(&self) -> &SharedTaskStore {
        &self.tasks
    }

    /// The tools the agents use (what an MCP server for this app serves).
    pub fn tools(&self) -> &ToolSet {
        &self.tools
    }

    /// The two agents.
    pub fn agents(&self) -> &TaskAgents {
        &self.agents
    }

    /// Runs one of the 7 task tools directly for `ctx`'s user, outside any
    /// chat turn: what a host's task REST routes call so that the UI and the
    /// assistant share one table and one set of validation rules. Returns the
    /// tool's `{"success": ..., "data" | "error": ...}` result.
    pub async fn run_task_tool(
        &self,
        name: &str,
        arguments: serde_json::Value,
        ctx: &RequestContext,
    ) -> Result<serde_json::Value> {
        crate::validate::user_id(&ctx.user_id)?;
        crate::validate::json_strings("arguments", &arguments)?;
        // The agents' own tool of that name: a host tool that replaced a
        // task tool answers here too, so chat and REST never disagree.
        let tool = TASK_TOOL_NAMES
            .contains(&name)
            .then(|| self.tools.get(name))
            .flatten()
            .ok_or_else(|| Error::not_found("tool", name))?;
        let tool_ctx = ToolContext {
            request: ctx.clone(),
            call_id: "host".to_owned(),
        };
        let output = tool.call(arguments, &tool_ctx).await?;
        Ok(output
            .structured
            .unwrap_or(serde_json::Value::String(output.content)))
    }
}

#[async_trait]
impl Responder for Assistant {
    async fn respond(&self, turn: &mut Turn, input: Option<&ThreadItem>) -> Result<()> {
        self.responder.respond(turn, input).await
    }

    async fn action(
        &self,
        turn: &mut Turn,
        action: &Action,
        sender: Option<&ThreadItem>,
    ) -> Result<()> {
        self.responder.action(turn, action, sender).await
    }

    async fn sync_action(
        &self,
        thread: &ThreadMetadata,
        action: &Action,
        sender: Option<&ThreadItem>,
        ctx: &RequestContext,
    ) -> Result<Option<ThreadItem>> {
        self.responder
            .sync_action(thread, action, sender, ctx)
            .await
    }

    fn model_name(&self) -> &str {
        self.responder.model_name()
    }

    fn stream_options(&self, thread: &ThreadMetadata, ctx: &RequestContext) -> StreamOptions {
        self.responder.stream_options(thread, ctx)
    }
}

/// The task table of an opened database (the same pool as the engine's
/// store): SQLite's `tasks`, or [`DEFAULT_TASKS_TABLE`] on PostgreSQL.
pub async fn task_table(database: &Database) -> Result<SharedTaskStore> {
    task_table_named(database, DEFAULT_TASKS_TABLE).await
}

/// [`task_table`] with the PostgreSQL table named `schema.table` (see
/// [`PgTaskTable`]); SQLite ignores the name.
pub async fn task_table_named(database: &Database, name: &str) -> Result<SharedTaskStore> {
    match database {
        Database::Sqlite(store) => Ok(Arc::new(store.clone())),
        Database::Postgres(store) => Ok(Arc::new(PgTaskTable::open(store, name).await?)),
    }
}

/// The whole to-do app from one configuration: what `serve` and the bindings
/// run.
#[derive(Clone, Debug)]
pub struct App {
    /// The ChatKit engine, answering with [`App::assistant`].
    pub engine: ChatEngine,
    /// The to-do assistant (task table, tools, agents).
    pub assistant: Assistant,
}

impl App {
    /// The app on the configured database, model and token verifier.
    pub async fn from_config(config: EngineConfig) -> Result<Self> {
        Self::from_config_with_tools(config, ToolSet::new()).await
    }

    /// [`App::from_config`] with extra tools given to both agents (see
    /// [`Assistant::with_tools`]).
    pub async fn from_config_with_tools(config: EngineConfig, extra: ToolSet) -> Result<Self> {
        Self::from_config_with_extensions(config, extra, ActionHandlers::new()).await
    }

    /// [`App::from_config`] with extra tools and widget action handlers (see
    /// [`Assistant::with_extensions`]).
    pub async fn from_config_with_extensions(
        config: EngineConfig,
        extra: ToolSet,
        actions: ActionHandlers,
    ) -> Result<Self> {
        config.validate()?;
        let database = store::connect_with(&config.database_options()).await?;
        let tasks = task_table_named(&database, &config.tasks_table).await?;
        let model = models::from_config(&config, || Arc::new(offline_model()))?;
        let mut run = RunConfig::new(model);
        run.max_turns = config.max_turns;
        run.tool_timeout = Duration::from_secs(config.tool_timeout_secs);
        let assistant = Assistant::with_extensions(tasks, Runner::new(run), &extra, &actions)
            .history_items(config.history_items)
            .approval_ttl(Duration::from_secs(config.approval_ttl_secs));
        let verifier = JwtVerifier::from_config(&config).await?;
        let mut builder = ChatEngine::builder()
            .shared_store(database.store())
            .responder(assistant.clone())
            .config(config);
        if let Some(verifier) = verifier {
            builder = builder.verifier(verifier);
        }
        Ok(Self {
            engine: builder.build()?,
            assistant,
        })
    }
}
