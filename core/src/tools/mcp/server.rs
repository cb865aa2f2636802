//! Serving a [`ToolSet`] as an MCP server.
//!
//! [`McpServer`] is an `rmcp` [`ServerHandler`]: `tools/list` answers with
//! every tool's name, description and JSON schema; `tools/call` runs the
//! tool as the verified caller and answers with the tool's JSON both as a
//! text content block and as `structuredContent`. A tool that fails (a
//! validation error, an unknown task, even a storage failure) is an MCP
//! tool error (`isError: true`) the client can show; only an unknown tool
//! name or a missing identity is a protocol error.
//!
//! Before any tool runs, the call is held to the rules of
//! [`crate::validate`]: the caller's user id must be a valid user id, and
//! every string of the arguments (keys included) must be free text without
//! control characters other than tab and line breaks. A call that breaks
//! them is a tool error whose structured content is the engine's error body,
//! `{"error":{"code":"invalid_request","message":..}}`; no store is touched.
//!
//! Who the caller is:
//! - [`McpServer::new`]: every request runs as one user, verified once when
//!   the server starts (stdio, see [`serve_stdio`]);
//! - [`McpServer::per_request`]: each request must carry its own
//!   [`RequestContext`], put there by the HTTP layer after checking the
//!   request's Bearer token (see [`super::http`]).
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::RequestContext;
//! use chatkit_engine::tools::mcp::McpServer;
//! use chatkit_engine::tools::{Tool, ToolContext, ToolOutput, ToolSet};
//! use serde_json::{Value, json};
//!
//! struct WhoAmI;
//! #[async_trait::async_trait]
//! impl Tool for WhoAmI {
//!     fn name(&self) -> &str { "who_am_i" }
//!     fn description(&self) -> &str { "The caller's user id." }
//!     fn parameters(&self) -> Value { json!({"type": "object", "properties": {}}) }
//!     async fn call(&self, _: Value, ctx: &ToolContext) -> chatkit_engine::Result<ToolOutput> {
//!         Ok(ToolOutput::text(ctx.user_id()))
//!     }
//! }
//!
//! let server = McpServer::new(ToolSet::new().with(WhoAmI), RequestContext::new("alice"));
//! assert_eq!(server.tool_list().len(), 1);
//! // `serve_stdio(server).await` would now answer MCP on stdin/stdout.
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::tools::{ToolContext, ToolOutput, ToolSet};
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool as McpTool,
};
use rmcp::service::{RequestContext as McpRequestContext, RoleServer};
use rmcp::{ServerHandler, ServiceExt};
use serde_json::Value;
use std::sync::Arc;
use tracing::Instrument;

/// Instructions sent to MCP clients in the `initialize` answer.
const DEFAULT_INSTRUCTIONS: &str = "Task tools of the chatkit-engine Todo assistant. \
Every call acts on the authenticated user's own tasks.";

/// An MCP server exposing a [`ToolSet`]. Cheap to clone.
#[derive(Clone)]
pub struct McpServer {
    tools: ToolSet,
    identity: Identity,
    instructions: Arc<str>,
}

/// Where the caller of a request comes from.
#[derive(Clone, Debug)]
enum Identity {
    /// Every request runs as this user.
    Fixed(RequestContext),
    /// Each request carries its own [`RequestContext`] in its extensions
    /// (or in its HTTP request's extensions).
    PerRequest,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("tools", &self.tools)
            .field("identity", &self.identity)
            .finish()
    }
}

impl McpServer {
    /// Serves `tools`, every call running as `user` (already verified, e.g.
    /// from the token given to the `mcp-stdio` process).
    pub fn new(tools: ToolSet, user: RequestContext) -> Self {
        Self {
            tools,
            identity: Identity::Fixed(user),
            instructions: Arc::from(DEFAULT_INSTRUCTIONS),
        }
    }

    /// Serves `tools` to callers identified per request: each MCP request
    /// must carry a verified [`RequestContext`] in its extensions, or in the
    /// extensions of the HTTP request it came in (what
    /// [`McpHttpService`](super::http::McpHttpService) inserts). A request
    /// without one is refused.
    pub fn per_request(tools: ToolSet) -> Self {
        Self {
            tools,
            identity: Identity::PerRequest,
            instructions: Arc::from(DEFAULT_INSTRUCTIONS),
        }
    }

    /// Replaces the instructions sent to clients at `initialize`.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions = Arc::from(text.into());
        self
    }

    /// The served tools.
    pub fn tools(&self) -> &ToolSet {
        &self.tools
    }

    /// The tools as MCP tool definitions (what `tools/list` answers).
    pub fn tool_list(&self) -> Vec<McpTool> {
        self.tools
            .iter()
            .map(|tool| {
                McpTool::new(
                    tool.name().to_owned(),
                    tool.description().to_owned(),
                    Arc::new(input_schema(tool.parameters())),
                )
            })
            .collect()
    }

    /// The caller of one request.
    fn caller(&self, context: &McpRequestContext<RoleServer>) -> Option<RequestContext> {
        match &self.identity {
            Identity::Fixed(user) => Some(user.clone()),
            Identity::PerRequest => context
                .extensions
                .get::<RequestContext>()
                .cloned()
                .or_else(|| http_caller(context)),
        }
    }

    /// Runs one tool call as `caller`.
    async fn run(&self, name: &str, arguments: Value, ctx: ToolContext) -> CallToolResult {
        let Some(tool) = self.tools.get(name) else {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "unknown tool: {name}"
            ))]);
        };
        match tool.call(arguments, &ctx).await {
            Ok(output) => to_result(output),
            Err(err) => {
                tracing::warn!(error = %err, "MCP tool call failed");
                let message = err
                    .user_message()
                    .unwrap_or_else(|| "the tool failed; see the server logs".to_owned());
                to_result(ToolOutput::error(message))
            }
        }
    }
}

#[cfg(feature = "mcp-http")]
fn http_caller(context: &McpRequestContext<RoleServer>) -> Option<RequestContext> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestContext>())
        .cloned()
}

#[cfg(not(feature = "mcp-http"))]
fn http_caller(_context: &McpRequestContext<RoleServer>) -> Option<RequestContext> {
    None
}

/// A tool's parameter schema as an MCP `inputSchema` (always an object
/// schema).
fn input_schema(parameters: Value) -> JsonObject {
    match parameters {
        Value::Object(mut schema) => {
            schema
                .entry("type")
                .or_insert_with(|| Value::String("object".into()));
            schema
        }
        _ => {
            let mut schema = JsonObject::new();
            schema.insert("type".into(), Value::String("object".into()));
            schema
        }
    }
}

/// A [`ToolOutput`] as an MCP result: text content, structured content when
/// the output is a JSON object, and `isError`.
pub(crate) fn to_result(output: ToolOutput) -> CallToolResult {
    let content = vec![ContentBlock::text(output.content)];
    let mut result = if output.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    // MCP's `structuredContent` is an object; other JSON stays text only.
    result.structured_content = output.structured.filter(Value::is_object);
    result
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("chatkit-engine", crate::VERSION))
            .with_instructions(self.instructions.to_string())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: McpRequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tool_list()))
    }

    fn get_tool(&self, name: &str) -> Option<McpTool> {
        self.tool_list().into_iter().find(|tool| tool.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: McpRequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        if self.tools.get(&name).is_none() {
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        let Some(caller) = self.caller(&context) else {
            return Err(McpError::invalid_request(
                "the request carries no authenticated user",
                None,
            ));
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        if let Err(err) = crate::validate::user_id(&caller.user_id)
            .and_then(|()| crate::validate::json_strings("arguments", &arguments))
        {
            tracing::info!(tool = %name, code = err.code(), "MCP tool call refused");
            return Ok(refused(&err).into());
        }
        let call_id = format!("mcp_{}", request_id_text(&context));
        let span = tracing::info_span!(
            "mcp.server.tool_call",
            tool = %name,
            user_id = %caller.user_id,
            call_id = %call_id,
            is_error = tracing::field::Empty,
        );
        let ctx = ToolContext {
            request: caller,
            call_id,
        };
        let cancelled = context.ct.clone();
        let result = async {
            let result = tokio::select! {
                result = self.run(&name, arguments, ctx) => result,
                () = cancelled.cancelled() => CallToolResult::error(vec![ContentBlock::text(
                    "the call was cancelled by the client",
                )]),
            };
            tracing::Span::current().record("is_error", result.is_error.unwrap_or(false));
            result
        }
        .instrument(span)
        .await;
        Ok(result.into())
    }
}

/// The tool error for a call refused before it ran: the message as text and
/// the engine's JSON error body as structured content.
fn refused(err: &Error) -> CallToolResult {
    let message = err
        .user_message()
        .unwrap_or_else(|| "the call was refused".to_owned());
    let mut result = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
    result.structured_content = Some(serde_json::json!({
        "error": {"code": err.code(), "message": message}
    }));
    result
}

fn request_id_text(context: &McpRequestContext<RoleServer>) -> String {
    match serde_json::to_value(&context.id) {
        Ok(Value::String(id)) => id,
        Ok(other) => other.to_string(),
        Err(_) => "call".to_owned(),
    }
}

/// Serves `server` on this process's stdin/stdout until the client closes
/// stdin. Log to stderr only: stdout carries the protocol.
pub async fn serve_stdio(server: McpServer) -> Result<()> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|err| Error::Internal(format!("MCP stdio initialisation failed: {err}")))?;
    running
        .waiting()
        .await
        .map_err(|err| Error::Internal(format!("MCP stdio server stopped: {err}")))?;
    Ok(())
}
