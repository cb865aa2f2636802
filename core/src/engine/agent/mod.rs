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

pub mod approval;
pub mod history;
mod workflow;

use super::actions::{ActionHandlers, ActionOutcome};
use super::{Responder, Turn};
use crate::agents::{Agent, PausedRun, RunEvent, RunStream, Runner};
use crate::error::{Error, Result};
use crate::protocol::{
    Action, ItemKind, ThreadItem, ThreadItemUpdate, ThreadMetadata, ThreadStreamEvent,
};
use crate::protocol::{IdKind, Timestamp, WidgetItem, new_id};
use crate::store::{ApprovalDecision, PendingApproval};
use async_trait::async_trait;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
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
    approval_ttl: Duration,
}

/// How long a confirmation can be answered unless set otherwise.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(15 * 60);

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
            approval_ttl: DEFAULT_APPROVAL_TTL,
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
            approval_ttl: DEFAULT_APPROVAL_TTL,
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

    /// How many recent thread items the model reads (default 30); widgets,
    /// which it never reads, neither count nor load.
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

    /// How long a confirmation can be answered (default 15 minutes).
    pub fn approval_ttl(mut self, ttl: Duration) -> Self {
        self.approval_ttl = ttl;
        self
    }

    /// The agent called `name`: the default one or one reachable from it
    /// through handoffs.
    fn find_agent(&self, name: &str) -> Option<Arc<Agent>> {
        let mut stack = vec![(self.router)("")];
        let mut seen: Vec<String> = Vec::new();
        while let Some(agent) = stack.pop() {
            if agent.name() == name {
                return Some(agent);
            }
            if seen.iter().any(|s| s == agent.name()) {
                continue;
            }
            seen.push(agent.name().to_owned());
            stack.extend(agent.handoffs().iter().cloned());
        }
        None
    }

    /// Streams a run's events as ChatKit events; a run that pauses for a
    /// confirmation stores it and shows the card.
    async fn drive(&self, turn: &mut Turn, mapper: &mut Mapper, mut run: RunStream) -> Result<()> {
        while let Some(event) = run.next().await {
            match event {
                Ok(RunEvent::ApprovalRequired {
                    call,
                    prompt,
                    paused,
                }) => {
                    mapper.waiting(turn, &call.id).await?;
                    // The card is what the user acts on now, not a lookup's result.
                    mapper.discard_widget();
                    mapper.close_workflows(turn).await?;
                    Box::pin(self.ask(turn, &call, &prompt, paused)).await?;
                }
                Ok(event) => mapper.apply(turn, event).await?,
                Err(err) => {
                    mapper.close_workflows(turn).await?;
                    return Err(err);
                }
            }
        }
        mapper.close_workflows(turn).await
    }

    /// Stores a paused run and shows its confirmation card.
    async fn ask(
        &self,
        turn: &mut Turn,
        call: &crate::models::ToolCall,
        prompt: &str,
        paused: PausedRun,
    ) -> Result<()> {
        let id = new_id(IdKind::Message).replacen("msg_", "apr_", 1);
        let item = turn.new_item(
            IdKind::Message,
            ItemKind::Widget(WidgetItem {
                widget: approval::ask(prompt, &id),
                copy_text: None,
            }),
        );
        let now = Timestamp::now();
        let ttl = chrono::Duration::from_std(self.approval_ttl).unwrap_or(chrono::Duration::MAX);
        let expires_at = now
            .as_datetime()
            .checked_add_signed(ttl)
            .map_or(now, Timestamp::from_utc);
        let payload = serde_json::json!({
            "prompt": prompt,
            "tool": call.name,
            "run": serde_json::to_value(&paused)
                .map_err(|err| Error::Internal(format!("cannot encode a paused run: {err}")))?,
        });
        let approval = PendingApproval {
            id,
            thread_id: turn.thread().id.clone(),
            item_id: item.id.clone(),
            payload,
            created_at: now,
            expires_at,
        };
        // Stored before the card is shown: a click always finds it.
        turn.store()
            .save_approval(&approval, turn.context())
            .await?;
        turn.emit(ThreadStreamEvent::ItemDone { item }).await
    }

    /// Answers a confirmation card and resumes its run.
    async fn answer(
        &self,
        turn: &mut Turn,
        action: &Action,
        sender: Option<&ThreadItem>,
    ) -> Result<()> {
        let Some(mut item) = sender.cloned() else {
            return Err(Error::invalid("a confirmation must name its card"));
        };
        let ItemKind::Widget(card) = &item.kind else {
            return Err(Error::invalid("only a widget item can send an action"));
        };
        if !super::actions::offers(&card.widget, action) {
            tracing::warn!(action = %action.kind, "refusing an answer its card does not offer");
            return Err(Error::invalid("this confirmation was already answered"));
        }
        let approval_id = action
            .payload
            .as_ref()
            .and_then(|p| p["approval_id"].as_str())
            .ok_or_else(|| Error::invalid("a confirmation needs an approval_id"))?;
        let approved = action.kind == approval::CONFIRM;
        let decision = if approved {
            ApprovalDecision::Approved
        } else {
            ApprovalDecision::Declined
        };
        let Some(pending) = turn
            .store()
            .decide_approval(approval_id, decision, turn.context())
            .await?
        else {
            return Err(Error::invalid("this confirmation was already answered"));
        };
        if pending.thread_id != turn.thread().id || pending.item_id != item.id {
            return Err(Error::invalid("this confirmation belongs to another card"));
        }
        let prompt = pending.payload["prompt"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let expired = pending.expires_at.as_datetime() < chrono::Utc::now();
        let outcome = match (expired, approved) {
            (true, _) => "Expired",
            (false, true) => "Confirmed",
            (false, false) => "Cancelled",
        };
        let widget = approval::answered(&prompt, approval_id, outcome);
        if let ItemKind::Widget(card) = &mut item.kind {
            card.widget = widget.clone();
        }
        turn.store()
            .save_item(&item.thread_id, &item, turn.context())
            .await?;
        turn.emit(ThreadStreamEvent::ItemUpdated {
            item_id: item.id.clone(),
            update: ThreadItemUpdate::WidgetRootUpdated { widget },
        })
        .await?;
        if expired {
            tracing::info!(approval_id, "a confirmation came after it expired");
            return Ok(());
        }
        let paused: PausedRun = serde_json::from_value(pending.payload["run"].clone())
            .map_err(|err| Error::storage_caused_by("corrupt stored paused run", err))?;
        let agent = self
            .find_agent(&paused.agent)
            .ok_or_else(|| Error::NotFound {
                kind: "agent",
                id: paused.agent.clone(),
            })?;
        let run = self
            .runner
            .resume(agent, paused, approved, turn.context().clone());
        let mut mapper = Mapper::new(Arc::clone(&self.labels));
        self.drive(turn, &mut mapper, run).await
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
        if action.kind == approval::CONFIRM || action.kind == approval::CANCEL {
            let span = tracing::info_span!("chatkit.approval", action = %action.kind);
            return Box::pin(self.answer(turn, action, sender))
                .instrument(span)
                .await;
        }
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
        if action.kind == approval::CONFIRM || action.kind == approval::CANCEL {
            return Err(Error::NotSupported(
                "a confirmation resumes a run, which streams: send it as threads.custom_action"
                    .into(),
            ));
        }
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
        let recent = turn
            .store()
            .load_history_items(&thread_id, self.history_items, turn.context())
            .await?;
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
        let run = self
            .runner
            .run_streamed(agent, messages, turn.context().clone());
        self.drive(turn, &mut mapper, run).await?;
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
