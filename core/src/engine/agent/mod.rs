//! The bridge from a turn to an agent run: the only part of the engine that
//! knows about agents, models and tools.
//!
//! | step | where |
//! | --- | --- |
//! | recent thread items -> Chat Completions messages | [`history::to_messages`] |
//! | pick the agent (a host's router) and run it | [`AgentResponder::respond`] |
//! | run events -> ChatKit events (messages, tool and reasoning workflows, handoffs) | `workflow` (private) |
//! | how a tool call is labelled in the UI | [`ToolLabels`] (a host's, or "Running `<name>`") |
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::agents::{Agent, RunConfig, Runner};
//! use chatkit_engine::engine::{AgentResponder, ChatEngine, Response, ToolLabel};
//! use chatkit_engine::models::scripted::{Conversation, Reply, Script, ScriptedModel};
//! use chatkit_engine::store::SqliteStore;
//! use chatkit_engine::RequestContext;
//! use std::sync::Arc;
//!
//! struct Greeter;
//! impl Script for Greeter {
//!     fn reply(&self, _: &Conversation<'_>) -> Reply { Reply::Text("Hello!".into()) }
//! }
//! let runner = Runner::new(RunConfig::new(Arc::new(ScriptedModel::new(Greeter))));
//! let responder = AgentResponder::new(runner, Arc::new(Agent::new("Greeter")))
//!     .tool_labels(|tool: &str| ToolLabel::new(format!("Calling {tool}"), "bolt"));
//! let engine = ChatEngine::builder()
//!     .store(SqliteStore::in_memory().await?)
//!     .responder(responder)
//!     .build()?;
//! let body = br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"hi"}]}}}"#;
//! let Response::Stream(stream) = engine.process(body, RequestContext::new("alice")).await? else { unreachable!() };
//! let events = stream.collect_events().await;
//! assert!(events.iter().any(|e| e.type_name() == "thread.item.done"));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod history;
mod workflow;

use super::actions::{ActionHandlers, ActionOutcome};
use super::{Responder, Turn};
use crate::agents::{Agent, Runner};
use crate::error::{Error, Result};
use crate::protocol::{
    Action, ItemKind, Order, ThreadItem, ThreadItemUpdate, ThreadMetadata, ThreadStreamEvent,
};
use async_trait::async_trait;
use futures::StreamExt;
use std::sync::Arc;
use tracing::Instrument;
use workflow::Mapper;

/// Picks the agent that answers a user message.
pub type AgentRouter = Arc<dyn Fn(&str) -> Arc<Agent> + Send + Sync>;

/// Answers with an agent run.
///
/// Each turn loads a bounded number of recent items (never the whole
/// thread), runs the routed agent, and streams: assistant text as
/// `content_part.added` / `text_delta` / `content_part.done` / `done` with
/// ids minted here (unique whatever the provider returns); every tool call
/// as a task of a `custom` workflow (loading, then complete or failed,
/// closed with a duration summary); provider reasoning as a `reasoning`
/// workflow of `thought` tasks; a handoff as a task. A new thread is titled
/// after its first turn.
#[derive(Clone)]
pub struct AgentResponder {
    runner: Runner,
    router: AgentRouter,
    default_agent: String,
    history_items: usize,
    labels: ToolLabels,
    actions: ActionHandlers,
}

/// How one tool call is shown in the tool-activity workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolLabel {
    /// The task title while the tool runs ("Creating a task").
    pub title: String,
    /// A ChatKit icon name (`plus`, `search`, `bolt`, ...).
    pub icon: String,
}

impl ToolLabel {
    /// A label with this title and icon.
    pub fn new(title: impl Into<String>, icon: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            icon: icon.into(),
        }
    }
}

/// Labels tool calls by tool name.
pub type ToolLabels = Arc<dyn Fn(&str) -> ToolLabel + Send + Sync>;

/// "Running <name>" with a bolt, for tools a host did not label.
fn default_labels() -> ToolLabels {
    Arc::new(|name: &str| ToolLabel::new(format!("Running {name}"), "bolt"))
}

impl std::fmt::Debug for AgentResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentResponder")
            .field("runner", &self.runner)
            .field("default_agent", &self.default_agent)
            .field("history_items", &self.history_items)
            .finish()
    }
}

impl AgentResponder {
    /// Always starts at `agent`.
    pub fn new(runner: Runner, agent: Arc<Agent>) -> Self {
        let default_agent = agent.name().to_owned();
        Self {
            runner,
            router: Arc::new(move |_| Arc::clone(&agent)),
            default_agent,
            history_items: 30,
            labels: default_labels(),
            actions: ActionHandlers::new(),
        }
    }

    /// Starts at the agent `router` picks for the latest user text; a turn
    /// that starts elsewhere than `default_agent` shows a handoff task.
    pub fn routed(
        runner: Runner,
        default_agent: impl Into<String>,
        router: impl Fn(&str) -> Arc<Agent> + Send + Sync + 'static,
    ) -> Self {
        Self {
            runner,
            router: Arc::new(router),
            default_agent: default_agent.into(),
            history_items: 30,
            labels: default_labels(),
            actions: ActionHandlers::new(),
        }
    }

    /// How tool calls are labelled in the tool-activity workflow.
    pub fn tool_labels(
        mut self,
        labels: impl Fn(&str) -> ToolLabel + Send + Sync + 'static,
    ) -> Self {
        self.labels = Arc::new(labels);
        self
    }

    /// How many recent thread items the model sees (default 30).
    pub fn history_items(mut self, items: usize) -> Self {
        self.history_items = items.max(1);
        self
    }

    /// Widget actions answered without the model (see [`super::actions`]);
    /// added to those already registered.
    pub fn action_handlers(mut self, handlers: &ActionHandlers) -> Self {
        self.actions.extend(handlers);
        self
    }

    /// The registered widget action handlers.
    pub fn actions(&self) -> &ActionHandlers {
        &self.actions
    }

    /// Runs the handler of a widget action: the sender must be a widget of
    /// the caller's thread that offers the action.
    async fn handle_action(
        &self,
        action: &Action,
        sender: Option<&ThreadItem>,
        ctx: &crate::context::RequestContext,
    ) -> Result<(ThreadItem, ActionOutcome)> {
        let Some(sender) = sender else {
            return Err(Error::invalid(format!(
                "the `{}` action must name the widget item that sent it",
                action.kind
            )));
        };
        let ItemKind::Widget(widget) = &sender.kind else {
            return Err(Error::invalid("only a widget item can send an action"));
        };
        let outcome = self.actions.handle(action, &widget.widget, ctx).await?;
        Ok((sender.clone(), outcome))
    }
}

#[async_trait]
impl Responder for AgentResponder {
    fn model_name(&self) -> &str {
        self.runner.config().model.name()
    }

    async fn action(
        &self,
        turn: &mut Turn,
        action: &Action,
        sender: Option<&ThreadItem>,
    ) -> Result<()> {
        let span = tracing::info_span!("chatkit.action", action = %action.kind);
        let (mut item, outcome) = self
            .handle_action(action, sender, turn.context())
            .instrument(span)
            .await?;
        if let Some(widget) = outcome.widget {
            if let ItemKind::Widget(current) = &mut item.kind {
                current.widget = widget.clone();
            }
            // Stored first, so a reload shows what the page is told.
            turn.store()
                .save_item(&item.thread_id, &item, turn.context())
                .await?;
            turn.emit(ThreadStreamEvent::ItemUpdated {
                item_id: item.id.clone(),
                update: ThreadItemUpdate::WidgetRootUpdated { widget },
            })
            .await?;
        }
        for effect in outcome.effects {
            turn.emit(ThreadStreamEvent::ClientEffect {
                name: effect.name,
                data: effect.data,
            })
            .await?;
        }
        Ok(())
    }

    async fn sync_action(
        &self,
        thread: &ThreadMetadata,
        action: &Action,
        sender: Option<&ThreadItem>,
        ctx: &crate::context::RequestContext,
    ) -> Result<Option<ThreadItem>> {
        let _ = thread;
        let span = tracing::info_span!("chatkit.sync_action", action = %action.kind);
        let (mut item, outcome) = self
            .handle_action(action, sender, ctx)
            .instrument(span)
            .await?;
        // A synchronous answer has no stream for effects: the page refreshes
        // from the replaced item.
        Ok(outcome.widget.map(|widget| {
            if let ItemKind::Widget(current) = &mut item.kind {
                current.widget = widget;
            }
            item
        }))
    }

    async fn respond(&self, turn: &mut Turn, input: Option<&ThreadItem>) -> Result<()> {
        let thread_id = turn.thread().id.clone();
        let mut recent = turn
            .store()
            .load_thread_items(
                &thread_id,
                None,
                self.history_items,
                Order::Desc,
                turn.context(),
            )
            .await?
            .data;
        recent.reverse();
        let messages = history::to_messages(&recent);
        let latest_text = input
            .or_else(|| {
                recent
                    .iter()
                    .rev()
                    .find(|item| matches!(item.kind, ItemKind::UserMessage(_)))
            })
            .and_then(|item| match &item.kind {
                ItemKind::UserMessage(message) => Some(message.text()),
                _ => None,
            })
            .unwrap_or_default();
        let agent = (self.router)(&latest_text);
        // The history is not needed while the answer streams (which can take
        // minutes); only a title for an untitled thread is.
        let title = turn
            .thread()
            .title
            .is_none()
            .then(|| title_for(&recent))
            .flatten();
        drop(recent);
        let mut mapper = Mapper::new(Arc::clone(&self.labels));
        if agent.name() != self.default_agent {
            // Routed without a model round trip; still show who answers.
            Box::pin(mapper.handoff(turn, agent.name())).await?;
        }
        let mut run = self
            .runner
            .run_streamed(agent, messages, turn.context().clone());
        while let Some(event) = run.next().await {
            match event {
                Ok(event) => mapper.apply(turn, event).await?,
                Err(err) => {
                    mapper.close_workflows(turn).await?;
                    return Err(err);
                }
            }
        }
        mapper.close_workflows(turn).await?;
        if turn.thread().title.is_none()
            && let Some(title) = title
        {
            turn.thread_mut().title = Some(title);
        }
        Ok(())
    }
}

/// A short title from the thread's first user message.
fn title_for(items: &[ThreadItem]) -> Option<String> {
    let text = items.iter().find_map(|item| match &item.kind {
        ItemKind::UserMessage(message) => Some(message.text()),
        _ => None,
    })?;
    let words: Vec<&str> = text.split_whitespace().take(6).collect();
    if words.is_empty() {
        return None;
    }
    let mut title: String = words.join(" ").chars().take(60).collect();
    title = title
        .trim_end_matches(['.', '!', '?', ',', '۔', '؟'])
        .to_owned();
    let mut chars = title.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
}
