//! External MCP servers as tool sources for agents.
//!
//! An [`McpToolSource`] owns one long-lived `rmcp` client connection to an
//! external MCP server (a stdio command it starts, or a Streamable HTTP
//! URL), shared by every request and every run. It is independent of the
//! request tasks that use it: a request that ends or is cancelled never
//! closes it.
//!
//! - **Reconnection**: a call that finds the connection gone (the process
//!   exited, the HTTP server went away) reconnects first; a call that fails
//!   with a transport error on a connection that had been working is retried
//!   once on a fresh connection. Failed connection attempts back off
//!   (0.25 s doubling to 30 s) and calls fail fast, as tool errors, in
//!   between.
//! - **Tool list cache**: the tools are listed on every (re)connection and
//!   again when the server sends `notifications/tools/list_changed`.
//!   [`McpToolSource::tools`] is a cheap, synchronous snapshot of the cache.
//! - **Names**: an optional prefix (`"weather_"` turns `forecast` into
//!   `weather_forecast`) and an optional allow-list of remote names.
//! - **Timeouts**: each call has [`McpClientConfig::call_timeout`]; when it
//!   runs out the server is sent a cancellation and the model gets a tool
//!   error ("timed out"), the run goes on.
//! - **Tenant credentials**: a [`CredentialsHook`] sees the caller's
//!   [`RequestContext`] of every call and returns HTTP headers (sent with
//!   that call's POST only, Streamable HTTP transport) and/or `_meta` fields
//!   (added to that call's `tools/call` request, any transport), without
//!   reconnecting.
//!
//! # How refreshed tools reach agents
//!
//! An [`Agent`](crate::agents::Agent)'s [`ToolSet`] is fixed when the agent
//! is built. The tools of [`McpToolSource::tools`] forward calls by name
//! over the shared connection, so an agent built once keeps working across
//! reconnections. To pick up tools added or removed by `list_changed`, a
//! host builds its agent (cheap: a few `Arc`s) per turn from the current
//! snapshot, `Agent::new(..).tools(source.tools())`; a tool that disappeared
//! from the server answers the model with a tool error.
//!
//! ```no_run
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::agents::Agent;
//! use chatkit_engine::tools::mcp::{McpClientConfig, McpToolSource, McpTransportConfig};
//!
//! let config = McpClientConfig::new(
//!     "weather",
//!     McpTransportConfig::http("https://mcp.example.com/mcp").header("x-api-key", "k"),
//! )
//! .tool_prefix("weather_")
//! .allow_tools(["forecast"]);
//! let source = McpToolSource::connect(config).await?;
//! let agent = Agent::new("Assistant").tools(source.tools());
//! # let _ = agent; Ok(()) }
//! ```

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::tools::{Tool, ToolContext, ToolOutput, ToolSet};
use async_trait::async_trait;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    ClientJsonRpcMessage, ClientRequest, GetExtensions, Implementation, JsonObject,
    RequestMetaObject, ServerResult, Tool as McpTool,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RoleClient, RunningService, ServiceError,
};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// First delay after a failed connection attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest delay between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How to reach an external MCP server.
#[derive(Clone, Debug, PartialEq)]
pub enum McpTransportConfig {
    /// A command started as a child process, speaking MCP on its
    /// stdin/stdout (its stderr is inherited).
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
        /// Working directory, when not the current one.
        cwd: Option<PathBuf>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        /// The endpoint URL, e.g. `https://example.com/mcp`.
        url: String,
        /// Headers sent with every request (e.g. a service API key).
        headers: BTreeMap<String, String>,
    },
}

impl McpTransportConfig {
    /// A stdio server started as `command args...`.
    pub fn stdio(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::Stdio {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            cwd: None,
        }
    }

    /// A Streamable HTTP server at `url`.
    pub fn http(url: impl Into<String>) -> Self {
        Self::Http {
            url: url.into(),
            headers: BTreeMap::new(),
        }
    }

    /// Adds a header sent with every HTTP request (ignored for stdio).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Self::Http { headers, .. } = &mut self {
            headers.insert(name.into(), value.into());
        }
        self
    }

    /// Adds an environment variable of the child process (ignored for HTTP).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Self::Stdio { env, .. } = &mut self {
            env.insert(name.into(), value.into());
        }
        self
    }
}

/// Per-call credentials of one tenant or user.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    /// HTTP headers added to this call's request (Streamable HTTP only).
    pub headers: BTreeMap<String, String>,
    /// Fields added to this call's `_meta` (any transport).
    pub meta: Map<String, Value>,
}

/// Supplies per-call credentials from the caller's identity.
///
/// Any `Fn(&RequestContext) -> Credentials` is a hook; implement the trait
/// for lookups that need to await.
#[async_trait]
pub trait CredentialsHook: Send + Sync + 'static {
    /// The credentials for one call by `caller`. An `Err` fails the call
    /// (the model sees a tool error).
    async fn credentials(&self, caller: &RequestContext) -> Result<Credentials>;
}

#[async_trait]
impl<F> CredentialsHook for F
where
    F: Fn(&RequestContext) -> Credentials + Send + Sync + 'static,
{
    async fn credentials(&self, caller: &RequestContext) -> Result<Credentials> {
        Ok(self(caller))
    }
}

/// Configuration of one external MCP server.
#[derive(Clone)]
pub struct McpClientConfig {
    /// A name for logs and errors.
    pub name: String,
    /// How to reach the server.
    pub transport: McpTransportConfig,
    /// Prepended to every remote tool name the model sees.
    pub tool_prefix: Option<String>,
    /// When set, only these remote tool names are offered.
    pub allowed_tools: Option<BTreeSet<String>>,
    /// How long one tool call may take (default 30 s).
    pub call_timeout: Duration,
    /// How long a connection (start + `initialize` + first `tools/list`) may
    /// take (default 10 s).
    pub connect_timeout: Duration,
    /// Per-call tenant credentials.
    pub credentials: Option<Arc<dyn CredentialsHook>>,
}

impl std::fmt::Debug for McpClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values and environment values may be secrets: names only.
        let transport = match &self.transport {
            McpTransportConfig::Stdio { command, args, .. } => format!("stdio: {command} {args:?}"),
            McpTransportConfig::Http { url, headers } => {
                format!(
                    "http: {url} headers {:?}",
                    headers.keys().collect::<Vec<_>>()
                )
            }
        };
        f.debug_struct("McpClientConfig")
            .field("name", &self.name)
            .field("transport", &transport)
            .field("tool_prefix", &self.tool_prefix)
            .field("allowed_tools", &self.allowed_tools)
            .field("call_timeout", &self.call_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

impl McpClientConfig {
    /// A server called `name` reached through `transport`, with default
    /// timeouts, no prefix, no allow-list and no credentials hook.
    pub fn new(name: impl Into<String>, transport: McpTransportConfig) -> Self {
        Self {
            name: name.into(),
            transport,
            tool_prefix: None,
            allowed_tools: None,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            credentials: None,
        }
    }

    /// Prefixes every tool name the model sees.
    pub fn tool_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.tool_prefix = Some(prefix.into());
        self
    }

    /// Offers only these remote tools.
    pub fn allow_tools(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_tools = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the per-call timeout.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets the connection timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-call credentials hook.
    pub fn credentials(mut self, hook: impl CredentialsHook) -> Self {
        self.credentials = Some(Arc::new(hook));
        self
    }

    /// The name the model sees for a remote tool.
    fn local_name(&self, remote: &str) -> String {
        match &self.tool_prefix {
            Some(prefix) => format!("{prefix}{remote}"),
            None => remote.to_owned(),
        }
    }

    fn allows(&self, remote: &str) -> bool {
        self.allowed_tools
            .as_ref()
            .is_none_or(|allowed| allowed.contains(remote))
    }
}

/// An external MCP server whose tools agents can call. Cheap to clone; all
/// clones share one connection.
#[derive(Clone)]
pub struct McpToolSource {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for McpToolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpToolSource")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

type Client = RunningService<RoleClient, Handler>;

struct Shared {
    config: McpClientConfig,
    http: Option<reqwest::Client>,
    state: tokio::sync::Mutex<ConnState>,
    tools: RwLock<Arc<Vec<McpTool>>>,
}

struct ConnState {
    current: Option<Arc<Client>>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
}

/// Receives the server's notifications.
struct Handler {
    shared: Weak<Shared>,
    info: ClientConfig,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let peer = context.peer.clone();
        // Listing is a request on the same connection: never await it inside
        // the notification handler.
        tokio::spawn(async move {
            if let Err(err) = shared.refresh_with(&peer).await {
                tracing::warn!(server = %shared.config.name, error = %err, "MCP tool list refresh failed");
            }
        });
    }
}

/// Per-call headers, carried from [`Shared::call`] to [`TenantHttpClient`]
/// in the request's extensions (never serialised).
#[derive(Clone, Debug)]
struct CallHeaders(Vec<(http::HeaderName, http::HeaderValue)>);

impl McpToolSource {
    /// Connects to the server and lists its tools. Fails when the first
    /// connection fails; later failures are recovered from by reconnecting.
    pub async fn connect(config: McpClientConfig) -> Result<Self> {
        let source = Self::lazy(config)?;
        source.shared.connection().await?;
        Ok(source)
    }

    /// A source that connects on first use (the first call, or
    /// [`Self::refresh`]); [`Self::tools`] is empty until then.
    pub fn lazy(config: McpClientConfig) -> Result<Self> {
        let http = match &config.transport {
            McpTransportConfig::Http { .. } => Some(http_client()?),
            McpTransportConfig::Stdio { .. } => None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                http,
                state: tokio::sync::Mutex::new(ConnState {
                    current: None,
                    retry_at: None,
                    backoff: MIN_BACKOFF,
                    last_error: None,
                }),
                tools: RwLock::new(Arc::new(Vec::new())),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &McpClientConfig {
        &self.shared.config
    }

    /// The cached tools (prefixed and filtered) as agent tools forwarding
    /// to the server. Synchronous and cheap: call it whenever an agent is
    /// built.
    pub fn tools(&self) -> ToolSet {
        let mut set = ToolSet::new();
        for tool in self.shared.cached().iter() {
            set.push(Arc::new(RemoteTool {
                shared: Arc::clone(&self.shared),
                remote_name: tool.name.to_string(),
                local_name: self.shared.config.local_name(&tool.name),
                description: tool.description.as_deref().unwrap_or_default().to_owned(),
                parameters: Value::Object((*tool.input_schema).clone()),
            }));
        }
        set
    }

    /// The remote tool definitions in the cache (after the allow-list,
    /// under their remote names).
    pub fn remote_tools(&self) -> Vec<McpTool> {
        self.shared.cached().as_ref().clone()
    }

    /// Connects if needed and lists the tools again.
    pub async fn refresh(&self) -> Result<ToolSet> {
        let client = self.shared.connection().await?;
        self.shared.refresh_with(client.peer()).await?;
        Ok(self.tools())
    }

    /// Whether a connection is open right now.
    pub async fn is_connected(&self) -> bool {
        let state = self.shared.state.lock().await;
        state.current.as_ref().is_some_and(|client| is_open(client))
    }

    /// Calls the remote tool `remote_name` (its name on the server) as
    /// `caller`. Failures of the call (timeouts, an unreachable server, an
    /// MCP error) are `Ok` outputs with `is_error: true`.
    pub async fn call(
        &self,
        remote_name: &str,
        arguments: Value,
        caller: &RequestContext,
    ) -> Result<ToolOutput> {
        self.shared.call(remote_name, arguments, caller).await
    }

    /// Closes the connection (a later call reconnects).
    pub async fn close(&self) {
        let client = self.shared.state.lock().await.current.take();
        if let Some(client) = client {
            client.cancellation_token().cancel();
        }
    }
}

fn is_open(client: &Client) -> bool {
    !client.is_closed() && !client.peer().is_transport_closed()
}

impl Shared {
    fn cached(&self) -> Arc<Vec<McpTool>> {
        match self.tools.read() {
            Ok(tools) => Arc::clone(&tools),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set_cached(&self, tools: Vec<McpTool>) {
        let tools = Arc::new(tools);
        match self.tools.write() {
            Ok(mut slot) => *slot = tools,
            Err(poisoned) => *poisoned.into_inner() = tools,
        }
    }

    async fn refresh_with(&self, peer: &Peer<RoleClient>) -> Result<()> {
        let tools = peer
            .list_all_tools()
            .await
            .map_err(|err| self.unavailable(&err.to_string()))?;
        let tools: Vec<McpTool> = tools
            .into_iter()
            .filter(|tool| self.config.allows(&tool.name))
            .collect();
        tracing::debug!(server = %self.config.name, tools = tools.len(), "MCP tool list cached");
        self.set_cached(tools);
        Ok(())
    }

    fn unavailable(&self, reason: &str) -> Error {
        Error::Custom {
            message: format!("MCP server `{}` is unavailable: {reason}", self.config.name),
            allow_retry: true,
        }
    }

    /// The open connection, connecting first when there is none.
    async fn connection(self: &Arc<Self>) -> Result<Arc<Client>> {
        let mut state = self.state.lock().await;
        if let Some(client) = &state.current {
            if is_open(client) {
                return Ok(Arc::clone(client));
            }
            tracing::info!(server = %self.config.name, "MCP connection lost; reconnecting");
            state.current = None;
        }
        if let Some(at) = state.retry_at
            && Instant::now() < at
        {
            let reason = state.last_error.clone().unwrap_or_default();
            return Err(self.unavailable(&format!("{reason} (retrying shortly)")));
        }
        let attempt = tokio::time::timeout(self.config.connect_timeout, self.open()).await;
        let result = match attempt {
            Ok(result) => result,
            Err(_) => Err(self.unavailable("connection timed out")),
        };
        match result {
            Ok(client) => {
                let client = Arc::new(client);
                state.current = Some(Arc::clone(&client));
                state.retry_at = None;
                state.backoff = MIN_BACKOFF;
                state.last_error = None;
                Ok(client)
            }
            Err(err) => {
                tracing::warn!(server = %self.config.name, error = %err, "MCP connection failed");
                state.retry_at = Some(Instant::now() + state.backoff);
                state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
                state.last_error = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// Starts a connection and fills the tool cache.
    async fn open(self: &Arc<Self>) -> Result<Client> {
        let handler = Handler {
            shared: Arc::downgrade(self),
            info: ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("chatkit-engine", crate::VERSION),
            ),
        };
        let client = match &self.config.transport {
            McpTransportConfig::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env).kill_on_drop(true);
                if let Some(cwd) = cwd {
                    cmd.current_dir(cwd);
                }
                let transport = TokioChildProcess::new(cmd)
                    .map_err(|err| self.unavailable(&format!("cannot start `{command}`: {err}")))?;
                handler
                    .serve(transport)
                    .await
                    .map_err(|err| self.unavailable(&err.to_string()))?
            }
            McpTransportConfig::Http { url, headers } => {
                let mut custom = HashMap::new();
                for (name, value) in headers {
                    let (name, value) = header_pair(name, value)?;
                    custom.insert(name, value);
                }
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom);
                config.reinit_on_expired_session = true;
                let http = self
                    .http
                    .clone()
                    .ok_or_else(|| Error::Internal("MCP HTTP client missing".into()))?;
                let transport =
                    StreamableHttpClientTransport::with_client(TenantHttpClient(http), config);
                handler
                    .serve(transport)
                    .await
                    .map_err(|err| self.unavailable(&err.to_string()))?
            }
        };
        self.refresh_with(client.peer()).await?;
        tracing::info!(server = %self.config.name, tools = self.cached().len(), "MCP server connected");
        Ok(client)
    }

    async fn call(
        self: &Arc<Self>,
        remote_name: &str,
        arguments: Value,
        caller: &RequestContext,
    ) -> Result<ToolOutput> {
        let span = tracing::info_span!(
            "mcp.client.tool_call",
            server = %self.config.name,
            tool = %remote_name,
            user_id = %caller.user_id,
            is_error = tracing::field::Empty,
        );
        async {
            let output = match self.call_inner(remote_name, arguments, caller).await {
                Ok(output) => output,
                Err(err) => ToolOutput::error(
                    err.user_message()
                        .unwrap_or_else(|| format!("the MCP tool `{remote_name}` failed")),
                ),
            };
            tracing::Span::current().record("is_error", output.is_error);
            Ok(output)
        }
        .instrument(span)
        .await
    }

    async fn call_inner(
        self: &Arc<Self>,
        remote_name: &str,
        arguments: Value,
        caller: &RequestContext,
    ) -> Result<ToolOutput> {
        let credentials = match &self.config.credentials {
            Some(hook) => hook.credentials(caller).await?,
            None => Credentials::default(),
        };
        let mut headers = Vec::with_capacity(credentials.headers.len());
        for (name, value) in &credentials.headers {
            headers.push(header_pair(name, value)?);
        }
        let arguments = match arguments {
            Value::Object(map) => map,
            Value::Null => JsonObject::new(),
            other => {
                return Ok(ToolOutput::error(format!(
                    "the arguments must be a JSON object, not {other}"
                )));
            }
        };
        let mut params = CallToolRequestParams::new(remote_name.to_owned());
        params.arguments = Some(arguments);
        if !credentials.meta.is_empty() {
            params.meta = Some(RequestMetaObject::from(credentials.meta.clone()));
        }

        let mut retried = false;
        loop {
            let was_open = {
                let state = self.state.lock().await;
                state.current.as_ref().is_some_and(|client| is_open(client))
            };
            let client = self.connection().await?;
            let mut request = CallToolRequest::new(params.clone());
            if !headers.is_empty() {
                request.extensions.insert(CallHeaders(headers.clone()));
            }
            let options = PeerRequestOptions::with_timeout(self.config.call_timeout);
            let sent = client
                .peer()
                .send_request_with_option(ClientRequest::CallToolRequest(request), options)
                .await;
            let response = match sent {
                Ok(handle) => handle.await_response().await,
                Err(err) => Err(err),
            };
            match response {
                Ok(ServerResult::CallToolResult(result)) => return Ok(from_result(result)),
                Ok(_) => {
                    return Ok(ToolOutput::error(format!(
                        "the MCP server answered `{remote_name}` with an unexpected result"
                    )));
                }
                Err(ServiceError::Timeout { timeout }) => {
                    return Ok(ToolOutput::error(format!(
                        "the MCP tool `{remote_name}` timed out after {:.1} s",
                        timeout.as_secs_f64()
                    )));
                }
                Err(ServiceError::McpError(err)) => {
                    return Ok(ToolOutput::error(format!(
                        "the MCP server refused `{remote_name}`: {}",
                        err.message
                    )));
                }
                Err(err @ (ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                    self.drop_connection(&client).await;
                    if was_open && !retried {
                        tracing::info!(server = %self.config.name, error = %err, "MCP call failed on a stale connection; reconnecting");
                        retried = true;
                        continue;
                    }
                    return Err(self.unavailable(&err.to_string()));
                }
                Err(err) => return Err(self.unavailable(&err.to_string())),
            }
        }
    }

    async fn drop_connection(&self, client: &Arc<Client>) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, client))
        {
            state.current = None;
            client.cancellation_token().cancel();
        }
    }
}

/// An MCP result as a [`ToolOutput`]: the text blocks joined (the model
/// sees them), structured content kept.
fn from_result(result: CallToolResult) -> ToolOutput {
    let texts: Vec<String> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect();
    let structured = result.structured_content;
    let content = if texts.is_empty() {
        structured
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default()
    } else {
        texts.join("\n")
    };
    let mut output = ToolOutput::text(content);
    output.structured = structured;
    output.is_error = result.is_error.unwrap_or(false);
    output
}

fn header_pair(name: &str, value: &str) -> Result<(http::HeaderName, http::HeaderValue)> {
    let name = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::Config(format!("invalid MCP header name `{name}`")))?;
    let value = http::HeaderValue::from_str(value)
        .map_err(|_| Error::Config(format!("invalid value for MCP header `{name}`")))?;
    Ok((name, value))
}

/// The HTTP client of MCP connections (rustls with ring and the webpki
/// roots, like the model client).
fn http_client() -> Result<reqwest::Client> {
    crate::http::client(|builder| builder.connect_timeout(Duration::from_secs(10)))
}

/// `reqwest::Client` plus the per-call headers a request carries in its
/// extensions ([`CallHeaders`]).
#[derive(Clone)]
struct TenantHttpClient(reqwest::Client);

fn with_call_headers(
    message: &ClientJsonRpcMessage,
    mut headers: HashMap<http::HeaderName, http::HeaderValue>,
) -> HashMap<http::HeaderName, http::HeaderValue> {
    if let ClientJsonRpcMessage::Request(request) = message
        && let Some(CallHeaders(extra)) = request.request.extensions().get::<CallHeaders>()
    {
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers
}

type HttpError = StreamableHttpError<reqwest::Error>;

impl StreamableHttpClient for TenantHttpClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
    ) -> std::result::Result<StreamableHttpPostResponse, HttpError> {
        let headers = with_call_headers(&message, custom_headers);
        self.0
            .post_message(uri, message, session_id, auth_header, headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
        max_sse_event_size: usize,
    ) -> std::result::Result<StreamableHttpPostResponse, HttpError> {
        let headers = with_call_headers(&message, custom_headers);
        self.0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> std::result::Result<StreamableHttpPostResponse, HttpError> {
        let headers = with_call_headers(&message, custom_headers);
        self.0
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
    ) -> std::result::Result<(), HttpError> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
    ) -> std::result::Result<
        futures::stream::BoxStream<
            'static,
            std::result::Result<sse_stream::Sse, sse_stream::Error>,
        >,
        HttpError,
    > {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
        max_sse_event_size: usize,
    ) -> std::result::Result<
        futures::stream::BoxStream<
            'static,
            std::result::Result<sse_stream::Sse, sse_stream::Error>,
        >,
        HttpError,
    > {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

/// One remote tool, as the model sees it.
struct RemoteTool {
    shared: Arc<Shared>,
    remote_name: String,
    local_name: String,
    description: String,
    parameters: Value,
}

#[async_trait]
impl Tool for RemoteTool {
    fn name(&self) -> &str {
        &self.local_name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        self.shared
            .call(&self.remote_name, arguments, &ctx.request)
            .await
    }
}
