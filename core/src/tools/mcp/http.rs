//! MCP over Streamable HTTP, as a mountable tower service (feature
//! `mcp-http`).
//!
//! [`McpHttpService`] binds no port: a host mounts it, e.g. on axum with
//! `Router::new().route_service("/mcp", McpHttpService::new(tools, authenticator))`.
//! Every HTTP request (POST, GET and DELETE alike) must carry
//! `Authorization: Bearer <JWT>`; the token is checked by the host's
//! [`Authenticator`] (a `ChatEngine` is one: it checks with its `JwtVerifier`) and
//! the request runs as the token's user. Tokens are never logged.
//!
//! What a request gets before rmcp sees it, in order:
//!
//! | condition | answer |
//! | --- | --- |
//! | more than one `Authorization` header | 400 `invalid_request` |
//! | no valid token | the authenticator's error (401 with `WWW-Authenticate: Bearer`, 400 for a user id that breaks [`validate::user_id`](crate::validate::user_id)) |
//! | `Mcp-Session-Id` names a session the caller did not open (another user's, an unknown or an ended one) | 404 `Not Found: Session not found`, rmcp's own answer for unknown sessions |
//! | a POST body larger than rmcp's `max_request_body_bytes`, not complete within the body deadline (default 30 s), or idle for the idle deadline (default 10 s) | 413 `payload_too_large` / 408 `request_timeout`, `Connection: close` on HTTP/1.1 |
//! | `initialize` when the caller already has the cap of open sessions (default [`DEFAULT_MAX_SESSIONS_PER_USER`]) | 429 `too_many_sessions` |
//!
//! Several replicas without sticky sessions: build the service with
//! `StreamableHttpServerConfig::default().with_legacy_session_mode(false)`
//! ([`McpHttpService::with_server_config`]). rmcp then serves every request
//! on its own (no `Mcp-Session-Id` is issued and no state is kept between
//! requests), so consecutive requests of one client may reach different
//! processes; the session rows above do not apply, since there are no
//! sessions. With sessions (the default) a session lives in the memory of
//! the process that opened it.
//!
//! Sessions therefore belong to the user who opened them (see the session
//! rules in [`McpHttpService::max_sessions_per_user`]), and each tool call
//! still runs as the user of its own request's token. Tool arguments are
//! checked by [`McpServer`] with
//! [`validate::json_strings`](crate::validate::json_strings).
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::tools::mcp::McpHttpService;
//! use chatkit_engine::tools::ToolSet;
//! use chatkit_engine::ChatEngine;
//! use chatkit_engine::engine::EchoResponder;
//! use chatkit_engine::store::SqliteStore;
//! use std::time::Duration;
//!
//! // A ChatEngine is an Authenticator: tokens are checked by its verifier.
//! let engine = ChatEngine::builder()
//!     .store(SqliteStore::in_memory().await?)
//!     .responder(EchoResponder)
//!     .build()?;
//! let service = McpHttpService::new(ToolSet::new(), engine)
//!     .max_sessions_per_user(4)
//!     .body_deadlines(Duration::from_secs(30), Duration::from_secs(10));
//! assert_eq!(service.open_sessions("alice"), 0);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use super::server::McpServer;
pub use super::sessions::DEFAULT_MAX_SESSIONS_PER_USER;
use super::sessions::OwnedSessions;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::http::{BodyLimits, read_body};
use crate::tools::ToolSet;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::convert::Infallible;
use std::fmt::Display;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The HTTP response type of [`McpHttpService`].
pub type McpHttpResponse = http::Response<BoxBody<Bytes, Infallible>>;

/// The session header of Streamable HTTP.
const SESSION_HEADER: &str = "mcp-session-id";

/// Checks the `Authorization` header of an MCP HTTP request.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The verified caller for the header value (`Bearer <JWT>`), or an
    /// [`Error::Unauthorized`].
    async fn authenticate(&self, authorization: Option<&str>) -> Result<RequestContext>;
}

#[async_trait]
impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    async fn authenticate(&self, authorization: Option<&str>) -> Result<RequestContext> {
        (**self).authenticate(authorization).await
    }
}

/// A tower service answering MCP Streamable HTTP requests for a
/// [`ToolSet`], with Bearer-JWT authentication and sessions owned by their
/// users. Cheap to clone.
#[derive(Clone)]
pub struct McpHttpService {
    inner: StreamableHttpService<McpServer, OwnedSessions>,
    auth: Arc<dyn Authenticator>,
    sessions: Arc<OwnedSessions>,
    /// Building blocks of the service, kept to rebuild it when a setting
    /// changes.
    parts: Arc<Parts>,
    body_deadline: Duration,
    body_idle: Duration,
}

struct Parts {
    server: McpServer,
    config: StreamableHttpServerConfig,
}

impl std::fmt::Debug for McpHttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHttpService")
            .field("max_sessions_per_user", &self.sessions.max_per_user())
            .field("body_deadline", &self.body_deadline)
            .field("body_idle", &self.body_idle)
            .finish_non_exhaustive()
    }
}

impl McpHttpService {
    /// Serves `tools`; callers are checked by `auth`.
    ///
    /// The `Host` allow-list of rmcp (a DNS-rebinding guard for
    /// unauthenticated local servers) is off, because every request needs a
    /// Bearer token that a browser never attaches on its own; use
    /// [`Self::with_server_config`] to restrict hosts or origins anyway.
    pub fn new(tools: ToolSet, auth: impl Authenticator) -> Self {
        let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
        Self::with_server_config(tools, auth, config)
    }

    /// Like [`Self::new`], with rmcp's Streamable HTTP settings (allowed
    /// hosts and origins, SSE keep-alive, JSON responses, body limit,
    /// cancellation token). An rmcp `session_store` is not used: restored
    /// sessions would have no owner.
    pub fn with_server_config(
        tools: ToolSet,
        auth: impl Authenticator,
        config: StreamableHttpServerConfig,
    ) -> Self {
        let parts = Arc::new(Parts {
            server: McpServer::per_request(tools),
            config,
        });
        let sessions = Arc::new(OwnedSessions::new(DEFAULT_MAX_SESSIONS_PER_USER));
        Self {
            inner: Self::build(&parts, &sessions),
            auth: Arc::new(auth),
            sessions,
            parts,
            body_deadline: BodyLimits::DEFAULT_DEADLINE,
            body_idle: BodyLimits::DEFAULT_IDLE,
        }
    }

    fn build(
        parts: &Parts,
        sessions: &Arc<OwnedSessions>,
    ) -> StreamableHttpService<McpServer, OwnedSessions> {
        let server = parts.server.clone();
        StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::clone(sessions),
            parts.config.clone(),
        )
    }

    /// Caps the sessions one user may hold open at once (default
    /// [`DEFAULT_MAX_SESSIONS_PER_USER`], at least 1); an `initialize` over
    /// the cap is answered 429 `too_many_sessions`. Call it before serving:
    /// it starts a fresh set of sessions.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.sessions = Arc::new(OwnedSessions::new(max));
        self.inner = Self::build(&self.parts, &self.sessions);
        self
    }

    /// The deadlines of a POST body: the whole body within `deadline`
    /// (default 30 s), and no gap longer than `idle` (default 10 s);
    /// otherwise 408 `request_timeout`.
    pub fn body_deadlines(mut self, deadline: Duration, idle: Duration) -> Self {
        self.body_deadline = deadline;
        self.body_idle = idle;
        self
    }

    /// How many sessions `user_id` holds open.
    pub fn open_sessions(&self, user_id: &str) -> usize {
        self.sessions.open_sessions(user_id)
    }

    fn body_limits(&self) -> BodyLimits {
        BodyLimits::new(self.parts.config.max_request_body_bytes)
            .with_deadlines(self.body_deadline, self.body_idle)
    }
}

/// A JSON error answer `{"error":{"code","message"}}`.
fn json_error(status: http::StatusCode, body: Vec<u8>) -> McpHttpResponse {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer for an error of the engine (authentication, validation).
fn error_response(err: &Error) -> McpHttpResponse {
    let status = http::StatusCode::from_u16(err.http_status())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if status == http::StatusCode::UNAUTHORIZED {
        return unauthorized(err);
    }
    json_error(status, err.to_json_body())
}

/// The answer for a session the caller does not own: exactly rmcp's answer
/// for an unknown session, so the two cannot be told apart.
fn session_not_found() -> McpHttpResponse {
    let mut response = http::Response::new(
        Full::new(Bytes::from_static(b"Not Found: Session not found"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}

/// Whether a JSON-RPC body is an `initialize` request.
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Method<'_>>(body)
        .ok()
        .and_then(|m| m.method)
        .is_some_and(|method| method == "initialize")
}

/// The `401` answer.
fn unauthorized(err: &Error) -> McpHttpResponse {
    let body = Full::new(Bytes::from(err.to_json_body()))
        .map_err(|never| match never {})
        .boxed();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl<B> tower_service::Service<http::Request<B>> for McpHttpService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send + 'static,
    B::Error: Display,
{
    type Response = McpHttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<'static, std::result::Result<McpHttpResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut inner = self.inner.clone();
        let auth = Arc::clone(&self.auth);
        let sessions = Arc::clone(&self.sessions);
        let limits = self.body_limits();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut authorization = parts.headers.get_all(http::header::AUTHORIZATION).iter();
            let first = authorization.next();
            if authorization.next().is_some() {
                let err = Error::invalid("send exactly one Authorization header");
                tracing::info!(code = err.code(), "MCP HTTP request refused");
                return Ok(error_response(&err));
            }
            let authorization = first.and_then(|value| value.to_str().ok());
            let caller = match auth
                .authenticate(authorization)
                .await
                .and_then(|caller| crate::validate::user_id(&caller.user_id).map(|()| caller))
            {
                Ok(caller) => caller,
                Err(err) => {
                    tracing::info!(code = err.code(), "MCP HTTP request refused");
                    return Ok(error_response(&err));
                }
            };
            let session = parts.headers.get(SESSION_HEADER);
            if let Some(session) = session {
                let owned = session
                    .to_str()
                    .is_ok_and(|id| sessions.is_owned_by(id, &caller.user_id));
                if !owned {
                    tracing::info!(
                        user_id = %caller.user_id,
                        "MCP request for a session the caller did not open"
                    );
                    return Ok(session_not_found());
                }
            }
            let body = if parts.method == http::Method::POST {
                let declared = parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                match read_body(body, declared, limits).await {
                    Ok(body) => body,
                    Err(err) => {
                        tracing::info!(code = err.code(), error = %err, "MCP HTTP request body refused");
                        let status = http::StatusCode::from_u16(err.http_status())
                            .unwrap_or(http::StatusCode::BAD_REQUEST);
                        let mut response = json_error(status, err.to_json_body());
                        if parts.version <= http::Version::HTTP_11 {
                            response.headers_mut().insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("close"),
                            );
                        }
                        return Ok(response);
                    }
                }
            } else {
                Bytes::new()
            };
            let reservation = if session.is_none() && is_initialize(&body) {
                match sessions.reserve(&caller.user_id) {
                    Some(reservation) => Some(reservation),
                    None => {
                        tracing::info!(user_id = %caller.user_id, "MCP session cap reached");
                        let body = serde_json::json!({"error": {
                            "code": "too_many_sessions",
                            "message": format!(
                                "this user already has {} open MCP sessions; end one (DELETE) first",
                                sessions.max_per_user()
                            ),
                        }});
                        return Ok(json_error(
                            http::StatusCode::TOO_MANY_REQUESTS,
                            body.to_string().into_bytes(),
                        ));
                    }
                }
            } else {
                None
            };
            tracing::debug!(user_id = %caller.user_id, method = %parts.method, "MCP HTTP request");
            let mut request = http::Request::from_parts(parts, Full::new(body));
            request.extensions_mut().insert(caller);
            let handle = tower_service::Service::call(&mut inner, request);
            match reservation {
                Some(reservation) => OwnedSessions::opening(reservation, handle).await,
                None => handle.await,
            }
        })
    }
}
