//! Callable tools.
//!
//! A [`Tool`] has a name, a description and a JSON schema, and is called
//! with the model's arguments and a [`ToolContext`] that carries the
//! verified caller. A tool never takes the user id from its arguments.
//!
//! | a tool can | how |
//! | --- | --- |
//! | show its result as a ChatKit widget | [`ToolOutput::with_widget`] (the model still sees `content`) |
//! | tell the host page something changed | [`ToolOutput::with_effect`] (a `client_effect` event, never stored) |
//! | wait for the user's confirmation before it runs | [`Tool::requires_approval`], or [`ToolSet::require_approval`] per tool |
//!
//! A host tool that asks first, then shows a card and tells the page:
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use async_trait::async_trait;
//! use chatkit_engine::agents::{Agent, RunConfig, Runner};
//! use chatkit_engine::engine::{AgentResponder, ChatEngine, Response};
//! use chatkit_engine::models::scripted::{Conversation, Reply, Script, ScriptedModel};
//! use chatkit_engine::protocol::widget::Component;
//! use chatkit_engine::store::SqliteStore;
//! use chatkit_engine::tools::{ClientEffect, Tool, ToolContext, ToolOutput, ToolSet};
//! use chatkit_engine::RequestContext;
//! use serde_json::{json, Value};
//! use std::sync::Arc;
//!
//! struct ArchiveNotes;
//! #[async_trait]
//! impl Tool for ArchiveNotes {
//!     fn name(&self) -> &str { "archive_notes" }
//!     fn description(&self) -> &str { "Archives the user's notes" }
//!     fn parameters(&self) -> Value { json!({"type": "object", "properties": {}}) }
//!     fn requires_approval(&self) -> bool { true }
//!     async fn call(&self, _: Value, _: &ToolContext) -> chatkit_engine::Result<ToolOutput> {
//!         let card = Component::card().child(Component::text("3 notes archived")).into_root()?;
//!         Ok(ToolOutput::text("archived 3 notes")
//!             .with_widget(card)
//!             .with_effect(ClientEffect::new("notes_changed", json!({"count": 3}))))
//!     }
//! }
//! // A stand-in model: call the tool, then answer.
//! struct Rules;
//! impl Script for Rules {
//!     fn reply(&self, c: &Conversation<'_>) -> Reply {
//!         if c.calls_since_user().is_empty() { Reply::call("archive_notes", json!({})) }
//!         else { Reply::Text("Done.".into()) }
//!     }
//! }
//! let runner = Runner::new(RunConfig::new(Arc::new(ScriptedModel::new(Rules))));
//! let agent = Agent::new("Notes").tools(ToolSet::new().with(ArchiveNotes));
//! let engine = ChatEngine::builder()
//!     .store(SqliteStore::in_memory().await?)
//!     .responder(AgentResponder::new(runner, Arc::new(agent)))
//!     .build()?;
//! let alice = RequestContext::new("alice");
//! let events = |r: Response| async move {
//!     let Response::Stream(s) = r else { unreachable!() };
//!     let wire = serde_json::to_value(s.collect_events().await).unwrap();
//!     wire.as_array().unwrap().clone()
//! };
//! let body = br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"archive my notes"}]}}}"#;
//! let asked = events(engine.process(body, alice.clone()).await?).await;
//! // The run paused on a card: Confirm / Cancel.
//! let card = asked.iter().find(|e| e["item"]["type"] == "widget").unwrap()["item"].clone();
//! let confirm = json!({"type": "threads.custom_action", "params": {
//!     "thread_id": card["thread_id"], "item_id": card["id"], "action": card["widget"]["confirm"]["action"]}});
//! let done = events(engine.process(confirm.to_string().as_bytes(), alice).await?).await;
//! assert!(done.iter().any(|e| e["type"] == "client_effect" && e["name"] == "notes_changed"));
//! assert!(done.iter().any(|e| e["item"]["widget"]["children"][0]["value"] == "3 notes archived"));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use crate::context::RequestContext;
use crate::error::Result;
use crate::models::ToolSpec;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

pub mod mcp;

/// Who calls a tool, and for which model call.
#[derive(Clone, Debug)]
pub struct ToolContext {
    /// The verified caller; tools scope every read and write to its user id.
    pub request: RequestContext,
    /// The model's call id.
    pub call_id: String,
}

impl ToolContext {
    /// The verified user id.
    pub fn user_id(&self) -> &str {
        &self.request.user_id
    }
}

/// What a tool returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    /// The text the model sees.
    pub content: String,
    /// The same result as JSON, when the tool has one (MCP structured
    /// content, UI summaries).
    pub structured: Option<Value>,
    /// Whether the call failed (the model still sees `content`).
    pub is_error: bool,
    /// A widget root shown to the user after the tool activity (see
    /// [`crate::protocol::widget`]); the model never sees it.
    pub widget: Option<Value>,
    /// `client_effect` events for the host page (fire and forget).
    pub effects: Vec<ClientEffect>,
}

/// A `client_effect` event: a name and its data, for the page's `onEffect`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientEffect {
    /// The effect name (`tasks_changed`).
    pub name: String,
    /// Its data.
    pub data: serde_json::Map<String, Value>,
}

impl ClientEffect {
    /// The `effects` list of a host envelope (`[{"name": .., "data": {..}}]`;
    /// absent or not a list: none), or what is wrong with it.
    pub(crate) fn from_envelope(
        effects: Option<Value>,
    ) -> std::result::Result<Vec<Self>, &'static str> {
        let Some(Value::Array(effects)) = effects else {
            return Ok(Vec::new());
        };
        effects
            .into_iter()
            .map(|effect| match effect.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => Ok(ClientEffect::new(
                    name,
                    effect.get("data").cloned().unwrap_or(Value::Null),
                )),
                _ => Err("a client effect needs a non-empty `name`"),
            })
            .collect()
    }

    /// An effect with this name and data (a non-object `data` is wrapped as
    /// `{"value": data}`).
    pub fn new(name: impl Into<String>, data: Value) -> Self {
        let data = match data {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => serde_json::Map::from_iter([("value".to_owned(), other)]),
        };
        Self {
            name: name.into(),
            data,
        }
    }
}

impl ToolOutput {
    /// A successful text result.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            structured: None,
            is_error: false,
            widget: None,
            effects: Vec::new(),
        }
    }

    /// A JSON result; the model sees its compact text.
    pub fn json(value: Value, is_error: bool) -> Self {
        Self {
            content: value.to_string(),
            structured: Some(value),
            is_error,
            widget: None,
            effects: Vec::new(),
        }
    }

    /// A failed call with a message for the model.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            content: message.into(),
            structured: None,
            is_error: true,
            widget: None,
            effects: Vec::new(),
        }
    }

    /// The output a host-language tool (Python, JS) described as a JSON
    /// envelope, the one format both bindings share:
    ///
    /// | key | meaning |
    /// | --- | --- |
    /// | `ok` | `false`: the call failed, `error` is shown to the model |
    /// | `text` / `json` | what the model sees (text as is, anything else as JSON) |
    /// | `widget` | a widget root shown to the user ([`crate::protocol::widget`]) |
    /// | `effects` | `[{"name": .., "data": {..}}]`: `client_effect` events |
    ///
    /// A widget that is not a root, or a malformed effect, fails the call
    /// with a message that says why (the model and the logs see it).
    pub fn from_envelope(envelope: Value) -> Self {
        let Value::Object(mut map) = envelope else {
            return Self::error("a host tool answered with something other than an object");
        };
        if map.get("ok") == Some(&Value::Bool(false)) {
            let message = map
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("the tool failed");
            return Self::error(message);
        }
        let mut output = match (map.remove("text"), map.remove("json")) {
            (Some(Value::String(text)), _) => Self::text(text),
            (_, Some(json)) => Self::json(json, false),
            _ => Self::text(""),
        };
        if let Some(widget) = map.remove("widget").filter(|w| !w.is_null()) {
            if let Err(err) = crate::protocol::widget::check_root(&widget) {
                return Self::error(format!("the tool's widget was refused: {err}"));
            }
            output.widget = Some(widget);
        }
        match ClientEffect::from_envelope(map.remove("effects")) {
            Ok(effects) => output.effects = effects,
            Err(message) => return Self::error(message),
        }
        output
    }

    /// Shows `widget` (a widget root) to the user.
    pub fn with_widget(mut self, widget: Value) -> Self {
        self.widget = Some(widget);
        self
    }

    /// Adds a `client_effect` for the host page.
    pub fn with_effect(mut self, effect: ClientEffect) -> Self {
        self.effects.push(effect);
        self
    }
}

/// A function the model can call.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The name the model uses.
    fn name(&self) -> &str;

    /// What the tool does, for the model.
    fn description(&self) -> &str;

    /// JSON schema of the arguments object.
    fn parameters(&self) -> Value;

    /// Runs the tool. An `Err` is reported to the model as text; domain
    /// failures (validation, not found) should be an `Ok` with
    /// `is_error: true`.
    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput>;

    /// Whether a run pauses for the user's confirmation before calling it
    /// (default `false`; [`ToolSet::require_approval`] overrides it).
    fn requires_approval(&self) -> bool {
        false
    }

    /// What the confirmation asks, for a call with these arguments; `None`
    /// when this call needs no confirmation after all (its target does not
    /// exist, say): it then runs at once.
    async fn approval_prompt(&self, arguments: &Value, ctx: &ToolContext) -> Option<String> {
        let _ = (arguments, ctx);
        Some(format!("Run {}?", self.name()))
    }

    /// The spec sent to the model.
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            parameters: self.parameters(),
            strict: false,
        }
    }
}

/// Checks a tool a host defines at run time (a Python or JS function): a
/// non-empty name and a JSON-schema object for its parameters.
pub fn check_definition(name: &str, parameters: &Value) -> crate::error::Result<()> {
    if name.trim().is_empty() {
        return Err(crate::Error::Config("a tool needs a name".into()));
    }
    if !parameters.is_object() {
        return Err(crate::Error::Config(format!(
            "tool `{name}`: parameters must be a JSON schema object"
        )));
    }
    Ok(())
}

/// A named collection of tools.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: Vec<Arc<dyn Tool>>,
    /// Per-tool overrides of [`Tool::requires_approval`].
    approvals: Vec<(String, bool)>,
}

impl std::fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.tools.iter().map(|tool| tool.name()))
            .finish()
    }
}

impl ToolSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool (a later tool with the same name replaces the earlier one).
    pub fn with(mut self, tool: impl Tool) -> Self {
        self.push(Arc::new(tool));
        self
    }

    /// Adds a shared tool (a later tool with the same name replaces the
    /// earlier one).
    pub fn push(&mut self, tool: Arc<dyn Tool>) {
        self.tools.retain(|existing| existing.name() != tool.name());
        self.tools.push(tool);
    }

    /// Adds every tool of `other`.
    pub fn extend(&mut self, other: &ToolSet) {
        for tool in &other.tools {
            self.push(Arc::clone(tool));
        }
        for (name, required) in &other.approvals {
            self.require_approval(name, *required);
        }
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|tool| tool.name() == name)
    }

    /// The tools, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.iter()
    }

    /// How many tools there are.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Makes the tool `name` wait (or not) for the user's confirmation,
    /// whatever the tool itself says.
    pub fn require_approval(&mut self, name: &str, required: bool) {
        self.approvals.retain(|(tool, _)| tool != name);
        self.approvals.push((name.to_owned(), required));
    }

    /// Whether a call of `name` waits for the user's confirmation.
    pub fn needs_approval(&self, name: &str) -> bool {
        self.approvals
            .iter()
            .find(|(tool, _)| tool == name)
            .map(|(_, required)| *required)
            .or_else(|| self.get(name).map(|tool| tool.requires_approval()))
            .unwrap_or(false)
    }

    /// The specs sent to the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|tool| tool.spec()).collect()
    }
}
