//! The router: `/chatkit`, the hosted-mode session endpoints, health checks,
//! the demo page and its development sign-in, with request ids, structured
//! request logs, CORS and body limits.

use super::config::{IdentityMode, ServeConfig};
use super::dev_identity::{DevIdentity, unix_now};
use super::session::SessionClient;
use super::sse::{InFlight, sse_response};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use chatkit_engine::todo::{App, Assistant};
use chatkit_engine::tools::mcp::McpHttpService;
use chatkit_engine::{ChatEngine, Error, RequestContext};
use futures::StreamExt;
use rmcp::transport::StreamableHttpServerConfig;
use serde_json::json;
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
    max_body_bytes: usize,
    in_flight: InFlight,
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
                max_body_bytes: config.engine.max_body_bytes,
                in_flight: InFlight::default(),
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
    let routes = Router::new()
        .route("/chatkit", post(chatkit))
        .route("/chatkit/session", post(create_session))
        .route("/chatkit/session/refresh", post(create_session))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/info", get(info))
        .route("/api/dev/token", post(dev_token))
        .route("/", get(index))
        .route("/static/app.js", get(app_js))
        .route("/static/style.css", get(style_css));
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
            tracing::info_span!(
                "http",
                request_id = %request_id,
                method = %request.method(),
                path = %request.uri().path(),
            )
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()));
    let routes = match cors_layer(cors_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    Ok(routes.layer(middleware))
}

/// `/mcp`: the task tools over streamable HTTP MCP
/// ([`McpHttpService`]), with the same Bearer-JWT authentication as
/// `/chatkit`. Its sessions end with the shutdown grace period.
fn mount_mcp(routes: Router<AppState>, state: &AppState) -> Result<Router<AppState>, String> {
    let settings = StreamableHttpServerConfig::default()
        // Every request needs a Bearer token, which a browser never attaches
        // on its own, so rmcp's DNS-rebinding Host check is not needed.
        .disable_allowed_hosts()
        .with_cancellation_token(state.in_flight().stop_token().child_token());
    let service = McpHttpService::with_server_config(
        state.assistant().tools().clone(),
        state.engine().clone(),
        settings,
    );
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

/// Reads a body of at most `limit` bytes; larger ones are a 413-class error
/// (decided from `Content-Length` when present, before reading anything).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    let too_large = || {
        Error::PayloadTooLarge(format!(
            "the request body exceeds the limit of {limit} bytes"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| Error::InvalidRequest(format!("reading the request body failed: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `POST /chatkit`: authenticate, then hand the body to the engine.
async fn chatkit(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let ctx = match authenticate(&state, &headers).await {
        Ok(ctx) => ctx,
        Err(err) => return error_response(&err),
    };
    let body = match read_body(&headers, body, state.inner.max_body_bytes).await {
        Ok(body) => body,
        Err(err) => return error_response(&err),
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

/// `GET /api/info`: what the demo page needs to know about this server.
async fn info(State(state): State<AppState>) -> Response {
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

/// `POST /api/dev/token` `{"user":"alice"}` (development identity mode
/// only): a signed token for that user.
async fn dev_token(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(dev) = &state.inner.dev else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "development sign-in is off: this server verifies real tokens",
        );
    };
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
    let body = match read_body(&headers, body, 4096).await {
        Ok(body) => body,
        Err(err) => return error_response(&err),
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
