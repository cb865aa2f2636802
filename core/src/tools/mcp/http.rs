//! MCP over Streamable HTTP, as a mountable tower service (feature
//! `mcp-http`).
//!
//! [`McpHttpService`] binds no port: a host mounts it, e.g. on axum with
//! `Router::new().route_service("/mcp", McpHttpService::new(tools, authenticator))`.
//! Every HTTP request (POST, GET and DELETE alike) must carry
//! `Authorization: Bearer <JWT>`; the token is checked by the host's
//! [`Authenticator`] (a `ChatEngine` is one: it checks with its `JwtVerifier`) and
//! the request runs as the token's user. Without a valid token the answer
//! is `401` with `WWW-Authenticate: Bearer` and the engine's JSON error
//! body. Tokens are never logged.
//!
//! Sessions (`Mcp-Session-Id`) only route messages: the identity comes from
//! each request's own token, so one user's token can never act inside
//! another user's session.

use super::server::McpServer;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::tools::ToolSet;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::convert::Infallible;
use std::fmt::Display;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The HTTP response type of [`McpHttpService`].
pub type McpHttpResponse = http::Response<BoxBody<Bytes, Infallible>>;

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
/// [`ToolSet`], with Bearer-JWT authentication. Cheap to clone.
#[derive(Clone)]
pub struct McpHttpService {
    inner: StreamableHttpService<McpServer, LocalSessionManager>,
    auth: Arc<dyn Authenticator>,
}

impl std::fmt::Debug for McpHttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHttpService").finish_non_exhaustive()
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
    /// cancellation token).
    pub fn with_server_config(
        tools: ToolSet,
        auth: impl Authenticator,
        config: StreamableHttpServerConfig,
    ) -> Self {
        let server = McpServer::per_request(tools);
        let inner = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        Self {
            inner,
            auth: Arc::new(auth),
        }
    }
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let mut inner = self.inner.clone();
        let auth = Arc::clone(&self.auth);
        Box::pin(async move {
            let authorization = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            match auth.authenticate(authorization.as_deref()).await {
                Ok(caller) => {
                    tracing::debug!(user_id = %caller.user_id, method = %request.method(), "MCP HTTP request");
                    request.extensions_mut().insert(caller);
                    tower_service::Service::call(&mut inner, request).await
                }
                Err(err) => {
                    tracing::info!(code = err.code(), "MCP HTTP request refused");
                    Ok(unauthorized(&err))
                }
            }
        })
    }
}
