//! Callable tools.
//!
//! A [`Tool`] has a name, a description and a JSON schema, and is called
//! with the model's arguments and a [`ToolContext`] that carries the
//! verified caller. A tool never takes the user id from its arguments.

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
}

impl ToolOutput {
    /// A successful text result.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            structured: None,
            is_error: false,
        }
    }

    /// A JSON result; the model sees its compact text.
    pub fn json(value: Value, is_error: bool) -> Self {
        Self {
            content: value.to_string(),
            structured: Some(value),
            is_error,
        }
    }

    /// A failed call with a message for the model.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            content: message.into(),
            structured: None,
            is_error: true,
        }
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

    /// The specs sent to the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|tool| tool.spec()).collect()
    }
}
