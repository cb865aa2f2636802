//! JS async functions as agent tools.

use async_trait::async_trait;
use chatkit_engine::tools::{Tool, ToolContext, ToolOutput};
use chatkit_engine::{Error, Result};
use napi::Status;
use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use serde_json::Value;

/// What a JS tool handler receives: the verified caller, the model's call id
/// and the model's arguments as JSON text.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct ToolCall {
    /// The verified user id (never taken from the model's arguments).
    pub user_id: String,
    /// The caller's e-mail, when known.
    pub email: Option<String>,
    /// The caller's display name, when known.
    pub name: Option<String>,
    /// The model's call id.
    pub call_id: String,
    /// The model's arguments object, as JSON text.
    pub arguments: String,
}

/// The handler of a JS tool: called on the JS thread with a [`ToolCall`],
/// it resolves to a JSON envelope `{"ok":true,"text":"..."}`,
/// `{"ok":true,"json":<value>}` or `{"ok":false,"error":"..."}` (the TS layer
/// builds it from the user's function). Weak: a registered tool never keeps
/// the Node process alive.
pub type ToolHandler = ThreadsafeFunction<ToolCall, Promise<String>, ToolCall, Status, false, true>;

/// A tool defined in JS.
#[napi(object, object_to_js = false)]
pub struct NativeTool {
    /// The name the model uses.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON schema of the arguments object, as JSON text.
    pub parameters: String,
    /// Runs the tool: resolves to a JSON envelope `{"ok":true,"text":..}`,
    /// `{"ok":true,"json":..}` or `{"ok":false,"error":..}`.
    #[napi(ts_type = "(call: ToolCall) => Promise<string>")]
    pub handler: ToolHandler,
    /// Whether a call waits for the user's confirmation (a Confirm / Cancel
    /// card) before it runs.
    pub requires_approval: Option<bool>,
}

/// A [`NativeTool`] as a core [`Tool`].
pub(crate) struct JsTool {
    name: String,
    description: String,
    parameters: Value,
    handler: ToolHandler,
    requires_approval: bool,
}

impl JsTool {
    /// Checks the definition: a non-empty name and an object schema.
    pub(crate) fn new(tool: NativeTool) -> Result<Self> {
        let parameters: Value = serde_json::from_str(&tool.parameters).map_err(|err| {
            Error::Config(format!(
                "tool `{}`: parameters are not JSON: {err}",
                tool.name
            ))
        })?;
        chatkit_engine::tools::check_definition(&tool.name, &parameters)?;
        Ok(Self {
            name: tool.name,
            description: tool.description,
            parameters,
            handler: tool.handler,
            requires_approval: tool.requires_approval.unwrap_or(false),
        })
    }
}

#[async_trait]
impl Tool for JsTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn requires_approval(&self) -> bool {
        self.requires_approval
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        let call = ToolCall {
            user_id: ctx.request.user_id.clone(),
            email: ctx.request.email.clone(),
            name: ctx.request.name.clone(),
            call_id: ctx.call_id.clone(),
            arguments: arguments.to_string(),
        };
        let failed = |err: napi::Error| {
            Error::Internal(format!("JS tool `{}` failed: {}", self.name, err.reason))
        };
        let promise = self.handler.call_async_catch(call).await.map_err(failed)?;
        let envelope = promise.await.map_err(failed)?;
        Ok(output_of(&envelope))
    }
}

/// The [`ToolOutput`] of a handler's envelope (see
/// [`ToolOutput::from_envelope`]); text that is not JSON is shown as is.
fn output_of(envelope: &str) -> ToolOutput {
    match serde_json::from_str::<Value>(envelope) {
        Ok(value) => ToolOutput::from_envelope(value),
        Err(_) => ToolOutput::text(envelope),
    }
}
