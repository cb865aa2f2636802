//! Host tools: functions of the Kotlin, Swift or Python app as agent tools.
//!
//! A host implements the foreign trait [`HostTool`] and passes instances to
//! the [`ChatEngine`](crate::ChatEngine) constructor; both agents get them,
//! and one named like a task tool (`list_tasks`, ...) replaces it, exactly
//! as with the Python and Node bindings.
//!
//! | rule | detail |
//! | --- | --- |
//! | definition | `name()`, `description()` and `parameters_json()` (a JSON-schema object) are read once, in the constructor; a bad one is `invalid_config` there |
//! | identity | [`ToolCall`] carries the verified caller from the request context, never from the model's arguments |
//! | where it runs | `call` is a foreign async method: a Kotlin `suspend fun` (on `GlobalScope`), a Swift `async func`, a Python coroutine (on the loop given to `uniffi_set_default_event_loop`) |
//! | result | [`ToolResult::Text`] or [`ToolResult::Json`]; JSON that does not parse is reported to the model as a failed call |
//! | failure | a thrown [`ToolError`] (or any other exception) is reported to the model as a failed call, as the other bindings do; the turn goes on |
//! | cancellation | a cancelled turn drops the call; uniffi cancels the foreign coroutine or task |

use async_trait::async_trait;
use chatkit_engine::tools::{Tool, ToolContext, ToolOutput, check_definition};
use chatkit_engine::{Error, Result};
use serde_json::Value;
use std::sync::Arc;

/// What a host tool receives.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ToolCall {
    /// The verified user id (from the request context).
    pub user_id: String,
    /// The caller's e-mail, when known.
    pub email: Option<String>,
    /// The caller's display name, when known.
    pub name: Option<String>,
    /// The caller's locale, when the host passed it on.
    pub locale: Option<String>,
    /// The model's call id.
    pub call_id: String,
    /// The model's arguments object, as JSON text.
    pub arguments_json: String,
}

/// What a host tool returns.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum ToolResult {
    /// Plain text for the model.
    Text {
        /// The text.
        text: String,
    },
    /// A JSON document (as text): the model sees it compact, the engine
    /// keeps it structured.
    Json {
        /// The JSON text.
        json: String,
    },
}

/// A host tool's failure; the model sees the reason.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ToolError {
    /// The tool failed.
    #[error("{reason}")]
    Failed {
        /// What went wrong, for the model.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ToolError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { reason: err.reason }
    }
}

/// A tool implemented by the host app.
#[uniffi::export(foreign)]
#[async_trait]
pub trait HostTool: Send + Sync {
    /// The name the model calls it by.
    fn name(&self) -> String;
    /// What it does, for the model.
    fn description(&self) -> String;
    /// JSON schema of its arguments object, as JSON text.
    fn parameters_json(&self) -> String;
    /// Runs the tool.
    async fn call(&self, call: ToolCall) -> std::result::Result<ToolResult, ToolError>;
}

/// A [`HostTool`] as a core [`Tool`]; its definition is read once.
pub(crate) struct ForeignTool {
    name: String,
    description: String,
    parameters: Value,
    host: Arc<dyn HostTool>,
}

impl ForeignTool {
    /// Reads and checks the definition (a name and an object schema).
    pub(crate) fn new(host: Arc<dyn HostTool>) -> Result<Self> {
        let name = host.name();
        let parameters: Value = serde_json::from_str(&host.parameters_json()).map_err(|err| {
            Error::Config(format!("tool `{name}`: parameters_json is not JSON: {err}"))
        })?;
        check_definition(&name, &parameters)?;
        Ok(Self {
            description: host.description(),
            name,
            parameters,
            host,
        })
    }
}

#[async_trait]
impl Tool for ForeignTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        let call = ToolCall {
            user_id: ctx.request.user_id.clone(),
            email: ctx.request.email.clone(),
            name: ctx.request.name.clone(),
            locale: ctx.request.locale.clone(),
            call_id: ctx.call_id.clone(),
            arguments_json: arguments.to_string(),
        };
        Ok(match self.host.call(call).await {
            Ok(ToolResult::Text { text }) => ToolOutput::text(text),
            Ok(ToolResult::Json { json }) => match serde_json::from_str(&json) {
                Ok(value) => ToolOutput::json(value, false),
                Err(err) => {
                    ToolOutput::error(format!("tool `{}` returned invalid JSON: {err}", self.name))
                }
            },
            Err(ToolError::Failed { reason }) => {
                ToolOutput::error(format!("tool `{}` failed: {reason}", self.name))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatkit_engine::RequestContext;

    struct Echo(&'static str);

    #[async_trait]
    impl HostTool for Echo {
        fn name(&self) -> String {
            "echo".into()
        }
        fn description(&self) -> String {
            "Echoes".into()
        }
        fn parameters_json(&self) -> String {
            self.0.into()
        }
        async fn call(&self, call: ToolCall) -> std::result::Result<ToolResult, ToolError> {
            match call.arguments_json.as_str() {
                r#"{"fail":true}"# => Err(ToolError::Failed {
                    reason: "boom".into(),
                }),
                r#"{"bad":true}"# => Ok(ToolResult::Json {
                    json: "{nope".into(),
                }),
                _ => Ok(ToolResult::Json {
                    json: format!(r#"{{"user":"{}"}}"#, call.user_id),
                }),
            }
        }
    }

    fn ctx() -> ToolContext {
        ToolContext {
            request: RequestContext::new("alice"),
            call_id: "call_1".into(),
        }
    }

    #[tokio::test]
    async fn a_host_tool_gets_the_verified_user_and_its_json_reaches_the_model() {
        let tool = ForeignTool::new(Arc::new(Echo(r#"{"type":"object"}"#)));
        let output = match tool {
            Ok(tool) => tool.call(serde_json::json!({}), &ctx()).await.ok(),
            Err(_) => None,
        };
        let output = output.map(|o| (o.content, o.is_error));
        assert_eq!(output, Some((r#"{"user":"alice"}"#.to_owned(), false)));
    }

    #[tokio::test]
    async fn a_failure_or_invalid_json_is_a_failed_call_for_the_model() {
        let Ok(tool) = ForeignTool::new(Arc::new(Echo(r#"{"type":"object"}"#))) else {
            panic!("valid definition");
        };
        for args in [
            serde_json::json!({"fail": true}),
            serde_json::json!({"bad": true}),
        ] {
            let output = tool.call(args, &ctx()).await.ok();
            assert!(matches!(output, Some(o) if o.is_error && o.content.contains("`echo`")));
        }
    }

    #[test]
    fn a_tool_whose_parameters_are_not_an_object_schema_is_invalid_config() {
        for params in ["[]", "not json"] {
            let err = ForeignTool::new(Arc::new(Echo(params))).err();
            assert_eq!(err.map(|e| e.code()), Some("invalid_config"));
        }
    }
}
