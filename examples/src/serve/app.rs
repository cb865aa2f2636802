//! The router: `/chatkit`, the hosted-mode session endpoints, health checks,
//! the demo page and its development sign-in, with request ids, structured
//! request logs, CORS and body limits.
//!
//! What every request goes through before its handler, outside in:
//!
//! | step | rule | answer when broken |
//! | --- | --- | --- |
//! | request id | an `x-request-id` that breaks [`validate::request_id`] (1 to 200 visible ASCII characters) is replaced by a fresh one before anything logs or echoes it | 400 `invalid_request` (after the log line) |
//! | request id | one is generated when absent, logged with the request, returned | — |
//! | headers | at most one `Authorization` header | 400 `invalid_request` |
//! | body (`/chatkit`, `/mcp`, `/api/dev/token`) | `MAX_BODY_BYTES`; whole body within `REQUEST_BODY_TIMEOUT_SECS`; no gap over `REQUEST_BODY_IDLE_SECS` | 413 `payload_too_large` / 408 `request_timeout`, HTTP/1.1 connection closed |
//! | development identity mode, `/api/*` | `Host` is loopback (`127.0.0.0/8`, `[::1]`, `localhost`, any port); `Origin` absent or `http://` + that `Host` | 403 `forbidden` |
//!
//! The last rule keeps web pages the developer visits from minting tokens
//! through DNS rebinding (their requests carry the attacker's host name) or
//! cross-site requests (their `Origin`).

use super::config::{IdentityMode, MetricsExposure, ServeConfig};
use super::dev_identity::{DevIdentity, unix_now};
use super::session::SessionClient;
use super::sse::{InFlight, sse_response};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use chatkit_engine::http::{BodyError, BodyLimits};
use chatkit_engine::todo::{App, Assistant};
use chatkit_engine::tools::mcp::McpHttpService;
use chatkit_engine::{ChatEngine, Error, RequestContext, validate};
use rmcp::transport::StreamableHttpServerConfig;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

const INDEX_HTML: &str = include_str!("static/index.html");
const APP_JS: &str = include_str!("static/app.js");
const STYLE_CSS: &str = include_str!("static/style.css");

/// The demo page may load only its own scripts and styles and talk only to
/// this server.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: ChatEngine,
    assistant: Assistant,
    dev: Option<DevIdentity>,
    sessions: Option<SessionClient>,
    body_limits: BodyLimits,
    mcp_max_sessions_per_user: usize,
    mcp_stateless: bool,
    in_flight: InFlight,
    metrics: MetricsExposure,
}

impl AppState {
    /// State for the to-do `app` as `config` describes it.
    pub fn new(app: App, config: &ServeConfig) -> Result<Self, String> {
        let dev = match config.identity {
            IdentityMode::Dev => {
                let secret = config
                    .engine
                    .jwt_secret
                    .clone()
                    .ok_or("development identity mode needs its signing key")?;
                let issuer = config
                    .engine
                    .jwt_issuer
                    .clone()
                    .ok_or("development identity mode needs its issuer")?;
                Some(DevIdentity::new(secret, issuer))
            }
            IdentityMode::Jwt => None,
        };
        let sessions = config.hosted.clone().map(SessionClient::new).transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine: app.engine,
                assistant: app.assistant,
                dev,
                sessions,
                body_limits: BodyLimits::new(config.engine.max_body_bytes)
                    .with_deadlines(config.body_deadline, config.body_idle),
                mcp_max_sessions_per_user: config.mcp_max_sessions_per_user,
                mcp_stateless: config.mcp_stateless,
                in_flight: InFlight::default(),
                metrics: config.metrics.clone(),
            }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &ChatEngine {
        &self.inner.engine
    }

    /// The to-do assistant the engine answers with (its tools are served
    /// over MCP).
    pub fn assistant(&self) -> &Assistant {
        &self.inner.assistant
    }

    /// Responses whose stream is still being written.
    pub fn in_flight(&self) -> &InFlight {
        &self.inner.in_flight
    }

    /// Whether development identity mode is on.
    pub fn is_dev(&self) -> bool {
        self.inner.dev.is_some()
    }
}

/// The complete router with all middleware.
pub fn router(state: AppState, cors_origins: &[String]) -> Result<Router, String> {
    router_at(state, cors_origins, "/api/chatkit")
}

/// [`router`] answering ChatKit at `chatkit_path` as well as `/chatkit`.
pub fn router_at(
    state: AppState,
    cors_origins: &[String],
    chatkit_path: &str,
) -> Result<Router, String> {
    const TAKEN: [&str; 12] = [
        "/metrics",
        "/api/usage",
        "/chatkit/session",
        "/chatkit/session/refresh",
        "/healthz",
        "/readyz",
        "/api/info",
        "/api/dev/token",
        "/",
        "/static/app.js",
        "/static/style.css",
        "/mcp",
    ];
    if TAKEN.contains(&chatkit_path) {
        return Err(format!(
            "CHATKIT_PATH `{chatkit_path}` is already a route of serve; choose another"
        ));
    }
    let mut routes = Router::new().route("/chatkit", post(chatkit));
    if chatkit_path != "/chatkit" {
        routes = routes.route(chatkit_path, post(chatkit));
    }
    let routes = routes
        .route("/chatkit/session", post(create_session))
        .route("/chatkit/session/refresh", post(create_session))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/info", get(info))
        .route("/api/usage", get(usage))
        .route("/api/dev/token", post(dev_token))
        .route("/", get(index))
        .route("/static/app.js", get(app_js))
        .route("/static/style.css", get(style_css));
    let routes = if matches!(state.inner.metrics, MetricsExposure::Main { .. }) {
        routes.route("/metrics", get(metrics))
    } else {
        routes
    };
    let routes = mount_mcp(routes, &state)?;
    let routes = routes.fallback(not_found).with_state(state);

    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let request_id = request
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // The path only: query strings and headers (tokens) never reach
            // the logs.
            let span = tracing::info_span!(
                "http",
                request_id = %request_id,
                method = %request.method(),
                path = %request.uri().path(),
            );
            crate::otel::continue_trace(&span, request.headers());
            span
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    let middleware = ServiceBuilder::new()
        .layer(middleware::from_fn(screen_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(middleware::from_fn(refuse_bad_headers));
    let routes = match cors_layer(cors_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    Ok(routes.layer(middleware))
}

/// `/mcp`: the task tools over streamable HTTP MCP
/// ([`McpHttpService`]), with the same Bearer-JWT authentication as
/// `/chatkit`. Its sessions end with the shutdown grace period. With
/// `MCP_STATELESS` there are no sessions (rmcp's stateless mode): each
/// request is served on its own, so replicas need no stickiness.
fn mount_mcp(routes: Router<AppState>, state: &AppState) -> Result<Router<AppState>, String> {
    let stateless = state.inner.mcp_stateless;
    let settings = StreamableHttpServerConfig::default()
        // Every request needs a Bearer token, which a browser never attaches
        // on its own, so rmcp's DNS-rebinding Host check is not needed.
        .disable_allowed_hosts()
        .with_legacy_session_mode(!stateless)
        .with_json_response(stateless)
        .with_cancellation_token(state.in_flight().stop_token().child_token());
    let limits = state.inner.body_limits;
    let service = McpHttpService::with_server_config(
        state.assistant().tools().clone(),
        state.engine().clone(),
        settings,
    )
    .max_sessions_per_user(state.inner.mcp_max_sessions_per_user)
    .body_deadlines(limits.deadline, limits.idle);
    Ok(routes.route_service("/mcp", service))
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::ACCEPT_LANGUAGE,
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("mcp-protocol-version"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                REQUEST_ID.clone(),
                HeaderName::from_static("mcp-session-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// A JSON error response with the engine's `{"error":{"code","message"}}`.
pub fn error_response(err: &Error) -> Response {
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(code = err.code(), error = %err, "request failed");
    } else {
        tracing::info!(code = err.code(), error = %err, "request rejected");
    }
    let mut response = json_response(status, Bytes::from(err.to_json_body()));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message } });
    json_response(status, Bytes::from(body.to_string()))
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The caller's identity from the `Authorization` header, with the first
/// language of `Accept-Language` as locale.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<RequestContext, Error> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str())
        .transpose()
        .map_err(|_| Error::Unauthorized("the Authorization header is not valid text".into()))?;
    let mut ctx = state.inner.engine.authenticate(authorization).await?;
    ctx.locale = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|tag| tag.split(';').next().unwrap_or(tag).trim().to_owned())
        .filter(|tag| !tag.is_empty() && tag.len() <= 35);
    Ok(ctx)
}

/// An `x-request-id` that breaks [`validate::request_id`] (or is sent twice)
/// is replaced by a fresh one before the request is logged, so neither the
/// logs nor the response carry it; [`refuse_bad_headers`] then refuses the
/// request.
async fn screen_request_id(mut request: Request, next: Next) -> Response {
    let ids = request.headers().get_all(&REQUEST_ID);
    let mut values = ids.iter();
    let bad = match (values.next(), values.next()) {
        (None, _) => false,
        (Some(id), None) => id
            .to_str()
            .map_or(true, |id| validate::request_id(id).is_err()),
        (Some(_), Some(_)) => true,
    };
    if bad {
        let fresh = uuid::Uuid::new_v4().to_string();
        if let Ok(fresh) = HeaderValue::from_str(&fresh) {
            request.headers_mut().insert(&REQUEST_ID, fresh);
        } else {
            request.headers_mut().remove(&REQUEST_ID);
        }
        request.extensions_mut().insert(RefusedRequestId);
    }
    next.run(request).await
}

/// Marks a request whose `x-request-id` was replaced.
#[derive(Clone, Copy, Debug)]
struct RefusedRequestId;

/// Refuses (with a logged 400) a request whose `x-request-id` was replaced
/// or that carries more than one `Authorization` header.
async fn refuse_bad_headers(request: Request, next: Next) -> Response {
    if request.extensions().get::<RefusedRequestId>().is_some() {
        return error_response(&Error::invalid(format!(
            "x-request-id must be 1 to {} visible ASCII characters, sent once",
            validate::MAX_REQUEST_ID_CHARS
        )));
    }
    if request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return error_response(&Error::invalid("send exactly one Authorization header"));
    }
    next.run(request).await
}

/// Reads a body within the server's limits (size, whole-body and idle
/// deadlines; see [`chatkit_engine::http::read_body`]).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    chatkit_engine::http::read_body(body, declared, limits).await
}

/// The answer for a body that was not read: 413 or 408 (400 when the
/// connection failed), closing an HTTP/1.1 connection, whose unread rest
/// would otherwise be taken for the next request.
fn body_error_response(err: &BodyError, version: Version) -> Response {
    tracing::info!(code = err.code(), error = %err, "request body refused");
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json_response(status, Bytes::from(err.to_json_body()));
    if version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// `POST /chatkit`: authenticate, then hand the body to the engine.
async fn chatkit(
    State(state): State<AppState>,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ctx = match authenticate(&state, &headers).await {
        Ok(ctx) => ctx,
        Err(err) => return error_response(&err),
    };
    let body = match read_body(&headers, body, state.inner.body_limits).await {
        Ok(body) => body,
        Err(err) => return body_error_response(&err, version),
    };
    let user_id = ctx.user_id.clone();
    match state.inner.engine.process(&body, ctx).await {
        Ok(chatkit_engine::Response::Json(json)) => {
            tracing::debug!(user_id = %user_id, "json response");
            json_response(StatusCode::OK, json)
        }
        Ok(chatkit_engine::Response::Stream(events)) => {
            tracing::info!(user_id = %user_id, "stream started");
            sse_response(events, &state.inner.in_flight)
        }
        Err(err) => error_response(&err),
    }
}

/// `POST /chatkit/session` and `/chatkit/session/refresh` (hosted mode):
/// a fresh OpenAI ChatKit session for the verified user.
async fn create_session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ctx = match authenticate(&state, &headers).await {
        Ok(ctx) => ctx,
        Err(err) => return error_response(&err),
    };
    let Some(sessions) = &state.inner.sessions else {
        return error_response(&Error::NotSupported(
            "hosted ChatKit sessions are not configured (set OPENAI_API_KEY and CHATKIT_WORKFLOW_ID)"
                .into(),
        ));
    };
    match sessions.create(&ctx.user_id).await {
        Ok(secret) => {
            tracing::info!(user_id = %ctx.user_id, session_id = %secret.session_id, "ChatKit session created");
            let body = json!({
                "client_secret": secret.client_secret,
                "expires_at": secret.expires_at,
                "session_id": secret.session_id,
            });
            json_response(StatusCode::OK, Bytes::from(body.to_string()))
        }
        Err(err) => {
            tracing::warn!(code = err.code, "ChatKit session creation failed");
            json_error(
                StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_GATEWAY),
                err.code,
                &err.message,
            )
        }
    }
}

/// `GET /healthz`: the process is up.
async fn healthz() -> Response {
    json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
}

/// `GET /readyz`: the database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    let ping =
        tokio::time::timeout(Duration::from_secs(3), state.inner.engine.store().ping()).await;
    match ping {
        Ok(Ok(())) => json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ready"}"#)),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check: database unreachable");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(br#"{"status":"unavailable","reason":"database unreachable"}"#),
            )
        }
        Err(_) => {
            tracing::warn!("readiness check: database did not answer within 3 s");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(br#"{"status":"unavailable","reason":"database timed out"}"#),
            )
        }
    }
}

/// In development identity mode, the demo page's API (`/api/*`) answers
/// only requests for a loopback `Host` with no `Origin` or the page's own
/// (see the module docs); `None` when the request may go on.
fn refuse_foreign_page(state: &AppState, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    if !state.is_dev() {
        return None;
    }
    // HTTP/2 carries the host as `:authority` (in the URI), HTTP/1.1 as Host.
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
    let origin_ok = |host: &str| match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin.to_str().is_ok_and(|origin| {
            origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        }),
    };
    match host {
        Some(host) if is_loopback_host(host) && origin_ok(host) => None,
        _ => {
            tracing::warn!(
                "development sign-in refused a request from another host or origin \
                 (DNS rebinding or a cross-site page)"
            );
            Some(json_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "development sign-in only answers its own page on a loopback address: \
                 open it at http://127.0.0.1:<port>/ (or localhost, [::1])",
            ))
        }
    }
}

/// Whether a `Host` value (`name[:port]`) names this machine: `localhost` or
/// a loopback IP address, with any port.
pub fn is_loopback_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) => (
                ip,
                port.strip_prefix(':')
                    .or(Some(port).filter(|p| p.is_empty())),
            ),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, Some("")),
        }
    };
    let port_ok = port.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 5);
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    port_ok && loopback
}

/// `GET /api/info`: what the demo page needs to know about this server.
async fn info(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_foreign_page(&state, &uri, &headers) {
        return refused;
    }
    let engine = &state.inner.engine;
    let model = engine.model_name();
    let body = json!({
        "identity": if state.is_dev() { "dev" } else { "jwt" },
        "model": model,
        "offline_model": model == chatkit_engine::models::scripted::SCRIPTED_MODEL_NAME,
        "hosted_sessions": state.inner.sessions.is_some(),
        "version": chatkit_engine::VERSION,
    });
    json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

/// The router of a separate metrics listener (`METRICS_ADDR`): `/metrics`
/// only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// `GET /metrics`: the process's metrics in the Prometheus text format,
/// behind `METRICS_TOKEN` when one is set.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = match &state.inner.metrics {
        MetricsExposure::Main { token } | MetricsExposure::Separate { token, .. } => token,
        MetricsExposure::Off => return not_found().await,
    };
    if let Some(expected) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Digests compared, so the comparison time says nothing about the
        // token.
        if Sha256::digest(given.as_bytes()) != Sha256::digest(expected.as_bytes()) {
            let mut response = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    match state.inner.engine.metrics_text() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(err) => error_response(&err),
    }
}

/// `GET /api/usage[?thread_id=..]`: the caller's token usage and daily
/// budget (what the demo page shows).
async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<UsageQuery>,
) -> Response {
    let ctx = match authenticate(&state, &headers).await {
        Ok(ctx) => ctx,
        Err(err) => return error_response(&err),
    };
    match state
        .inner
        .engine
        .token_usage(&ctx, query.thread_id.as_deref())
        .await
    {
        Ok(report) => match serde_json::to_vec(&report) {
            Ok(body) => json_response(StatusCode::OK, Bytes::from(body)),
            Err(err) => error_response(&Error::Internal(err.to_string())),
        },
        Err(err) => error_response(&err),
    }
}

/// The query of `GET /api/usage`.
#[derive(serde::Deserialize)]
struct UsageQuery {
    thread_id: Option<String>,
}

/// `POST /api/dev/token` `{"user":"alice"}` (development identity mode
/// only): a signed token for that user.
async fn dev_token(
    State(state): State<AppState>,
    version: Version,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(dev) = &state.inner.dev else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "development sign-in is off: this server verifies real tokens",
        );
    };
    if let Some(refused) = refuse_foreign_page(&state, &uri, &headers) {
        return refused;
    }
    // Requiring JSON forces a CORS preflight, so other web pages cannot
    // mint tokens through the visitor's browser.
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send the user as JSON: {\"user\":\"alice\"}",
        );
    }
    let limits = BodyLimits {
        max_bytes: 4096,
        ..state.inner.body_limits
    };
    let body = match read_body(&headers, body, limits).await {
        Ok(body) => body,
        Err(err) => return body_error_response(&err, version),
    };
    let user = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("user").and_then(|u| u.as_str()).map(str::to_owned));
    let Some(user) = user else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the user as JSON: {\"user\":\"alice\"}",
        );
    };
    match dev.issue(&user, unix_now()) {
        Ok(token) => {
            tracing::info!(user_id = %token.user_id, "development token issued");
            let body = json!({
                "token": token.token,
                "user_id": token.user_id,
                "expires_at": token.expires_at,
            });
            json_response(StatusCode::OK, Bytes::from(body.to_string()))
        }
        Err(message) => json_error(StatusCode::BAD_REQUEST, "invalid_request", &message),
    }
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn index() -> Response {
    let mut response = static_file("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn app_js() -> Response {
    static_file("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    static_file("text/css; charset=utf-8", STYLE_CSS)
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_localhost_and_loopback_ips_with_any_port() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8000",
            "127.1.2.3:80",
            "localhost",
            "LOCALHOST:3000",
            "[::1]",
            "[::1]:8000",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8000",
            "127.0.0.1.evil.example",
            "localhost.evil.example:8000",
            "10.0.0.1:8000",
            "0.0.0.0:8000",
            "[::2]:8000",
            "[::1",
            "127.0.0.1:80x",
            "::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
