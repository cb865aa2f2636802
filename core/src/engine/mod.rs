//! Request dispatch and the turn pipeline.
//!
//! [`ChatEngine::process`] takes a raw ChatKit request body and the caller's
//! [`RequestContext`] and returns either a JSON document or a stream of
//! events. Validation, ownership checks and the persisting of the user
//! message all happen before `process` returns, so every failure there is a
//! typed [`Error`] the host maps to an HTTP status. Once a
//! stream has begun, failures become `error` events.
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::engine::{ChatEngine, EchoResponder, Response};
//! use chatkit_engine::store::SqliteStore;
//! use chatkit_engine::RequestContext;
//!
//! let engine = ChatEngine::builder()
//!     .store(SqliteStore::in_memory().await?)
//!     .responder(EchoResponder)
//!     .build()?;
//! let body = br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"hello"}]}}}"#;
//! let Response::Stream(stream) = engine.process(body, RequestContext::new("alice")).await? else {
//!     unreachable!("threads.create streams")
//! };
//! let types: Vec<_> = stream.collect_events().await.iter().map(|e| e.type_name()).collect();
//! assert_eq!(types.first(), Some(&"thread.created"));
//! assert_eq!(types.last(), Some(&"thread.updated")); // the echo responder set a title
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod actions;
pub mod agent;
mod attachments;
mod json;
mod limits;
mod locks;
#[cfg(feature = "mcp-http")]
mod mcp_auth;
mod pipeline;
mod responder;
mod stream;
mod turn;

pub use crate::context::RequestContext;
pub use actions::{ActionHandler, ActionHandlers, ActionOutcome};
pub use agent::{AgentResponder, AgentRouter, ToolLabel, ToolLabels};
pub use attachments::{AttachmentStore, UploadUrls};
pub use limits::MAX_ID_CHARS;
pub use responder::{EchoResponder, Responder, stream_text};
pub use stream::{EventStream, SseStream};
pub use turn::{CANCELLED_MARKER_TEXT, Turn};

use crate::auth::JwtVerifier;
use crate::clock::{Clock, SystemClock};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::protocol::Request;
use crate::store::{SharedStore, Store, UsageScope, UsageTotals};
use bytes::Bytes;
use locks::ThreadLocks;
use std::sync::Arc;
use tracing::Instrument;

/// A caller's token usage, as [`ChatEngine::token_usage`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageReport {
    /// Today's UTC date (`YYYY-MM-DD`) by the engine's clock.
    pub day: String,
    /// Turns started today.
    pub today: UsageTotals,
    /// Every turn.
    pub total: UsageTotals,
    /// The turns of the thread asked for.
    pub thread: Option<UsageTotals>,
    /// The configured daily budget, if any.
    pub daily_budget: Option<u64>,
    /// Tokens left today under the budget.
    pub remaining_today: Option<u64>,
}

/// What [`ChatEngine::process`] returns.
#[derive(Debug)]
pub enum Response {
    /// A complete JSON document (send as `application/json`).
    Json(Bytes),
    /// A stream of events (send as `text/event-stream`, one SSE frame per
    /// event, see [`EventStream::sse`]).
    Stream(EventStream),
}

impl Response {
    /// Whether this is a stream.
    pub fn is_streaming(&self) -> bool {
        matches!(self, Response::Stream(_))
    }
}

/// The ChatKit backend: parses requests, enforces ownership, persists, and
/// runs turns. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ChatEngine {
    inner: Arc<Inner>,
}

struct Inner {
    store: SharedStore,
    verifier: Option<JwtVerifier>,
    model_name: String,
    responder: Arc<dyn Responder>,
    attachments: Option<Arc<dyn AttachmentStore>>,
    config: EngineConfig,
    locks: Arc<ThreadLocks>,
    /// Names this engine in the turn leases it takes.
    replica: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ChatEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatEngine")
            .field("config", &self.inner.config)
            .field("attachments", &self.inner.attachments.is_some())
            .finish()
    }
}

/// Builds a [`ChatEngine`].
#[derive(Default)]
pub struct ChatEngineBuilder {
    store: Option<SharedStore>,
    verifier: Option<JwtVerifier>,
    responder: Option<Arc<dyn Responder>>,
    attachments: Option<Arc<dyn AttachmentStore>>,
    config: EngineConfig,
    clock: Option<Arc<dyn Clock>>,
}

impl ChatEngineBuilder {
    /// The store for threads and items (required).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// An already shared store (required, unless [`Self::store`] is used).
    pub fn shared_store(mut self, store: SharedStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Verifies the Bearer tokens given to [`ChatEngine::authenticate`].
    pub fn verifier(mut self, verifier: JwtVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// What answers the user (required).
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Some(Arc::new(responder));
        self
    }

    /// An already shared responder.
    pub fn shared_responder(mut self, responder: Arc<dyn Responder>) -> Self {
        self.responder = Some(responder);
        self
    }

    /// Enables `attachments.create` / `attachments.delete`.
    pub fn attachment_store(mut self, attachments: impl AttachmentStore) -> Self {
        self.attachments = Some(Arc::new(attachments));
        self
    }

    /// Engine tunables.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock that says which UTC day a turn's tokens count against
    /// (default [`SystemClock`]; tests pass a [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Builds the engine. With [`EngineConfig::metrics`] on, this installs
    /// the process's metrics recorder (once; see [`crate::telemetry`]).
    pub fn build(self) -> Result<ChatEngine> {
        let store = self
            .store
            .ok_or_else(|| Error::Config("ChatEngine needs a store".into()))?;
        let responder = self
            .responder
            .ok_or_else(|| Error::Config("ChatEngine needs a responder".into()))?;
        let config = self.config;
        config.validate()?;
        let model_name = responder.model_name().to_owned();
        let store = if config.metrics {
            crate::telemetry::install();
            Arc::new(crate::store::Metered::new(store)) as SharedStore
        } else {
            store
        };
        Ok(ChatEngine {
            inner: Arc::new(Inner {
                store,
                verifier: self.verifier,
                model_name,
                responder,
                attachments: self.attachments,
                config,
                locks: Arc::new(ThreadLocks::default()),
                replica: replica_name(),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            }),
        })
    }
}

/// `host:pid:random`, so an operator reading the lease table can tell the
/// replicas apart, and two engines in one process still differ.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

impl ChatEngine {
    /// Starts building an engine.
    pub fn builder() -> ChatEngineBuilder {
        ChatEngineBuilder::default()
    }

    /// The engine's store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// The name of the model answering (e.g. `scripted-offline`).
    pub fn model_name(&self) -> &str {
        &self.inner.model_name
    }

    /// Whether Bearer tokens can be verified.
    pub fn has_verifier(&self) -> bool {
        self.inner.verifier.is_some()
    }

    /// The caller's identity from an `Authorization` header value
    /// (`Bearer <JWT>`). Fails with a 401-class error when the header is
    /// missing or malformed, the token does not verify, or no verification
    /// is configured.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<RequestContext> {
        let result = self.verify(authorization).await;
        if let Err(err) = &result {
            crate::telemetry::auth_failure(err.code());
        }
        result
    }

    async fn verify(&self, authorization: Option<&str>) -> Result<RequestContext> {
        let header = authorization
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::Unauthorized("missing Authorization header".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let verifier = self.inner.verifier.as_ref().ok_or_else(|| {
            Error::Unauthorized(
                "token verification is not configured (set JWKS_URL, JWKS or JWT_SECRET)".into(),
            )
        })?;
        Ok(verifier.verify(token).await?.into_context())
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The caller's token usage: today (the engine clock's UTC day, what
    /// the daily budget counts), overall, and for `thread_id` when given.
    pub async fn token_usage(
        &self,
        ctx: &RequestContext,
        thread_id: Option<&str>,
    ) -> Result<UsageReport> {
        crate::validate::user_id(&ctx.user_id)?;
        let store = self.store();
        let day = self.inner.clock.today();
        let today = store
            .token_usage(&UsageScope::Day(day.clone()), ctx)
            .await?;
        let total = store.token_usage(&UsageScope::All, ctx).await?;
        let thread = match thread_id {
            Some(id) => {
                limits::check_id("thread_id", id)?;
                // Another user's (or no) thread is not found, as everywhere.
                store.load_thread(id, ctx).await?;
                Some(
                    store
                        .token_usage(&UsageScope::Thread(id.to_owned()), ctx)
                        .await?,
                )
            }
            None => None,
        };
        let budget = self.inner.config.daily_token_budget;
        Ok(UsageReport {
            day,
            today,
            total,
            thread,
            daily_budget: budget,
            remaining_today: budget.map(|b| b.saturating_sub(today.total_tokens())),
        })
    }

    /// This process's metrics in the Prometheus text format (every engine
    /// of the process shares one recorder). Fails with `invalid_config` when
    /// [`EngineConfig::metrics`] is off or the host installed another
    /// recorder.
    pub fn metrics_text(&self) -> Result<String> {
        crate::telemetry::render()
    }

    /// How many turns are running right now.
    pub fn running_turns(&self) -> usize {
        self.inner.locks.busy_count()
    }

    /// Handles one ChatKit request for the caller in `ctx`.
    ///
    /// Errors returned here happened before any byte was streamed: map them
    /// to HTTP with [`Error::http_status`] and [`Error::to_json_body`].
    pub async fn process(&self, body: &[u8], ctx: RequestContext) -> Result<Response> {
        let span = tracing::info_span!(
            "chatkit.request",
            request_type = tracing::field::Empty,
            bytes = body.len()
        );
        async move {
            if ctx.user_id.trim().is_empty() {
                return Err(Error::Unauthorized(
                    "the request context has no user id".into(),
                ));
            }
            crate::validate::user_id(&ctx.user_id)?;
            if body.len() > self.inner.config.max_body_bytes {
                return Err(Error::PayloadTooLarge(format!(
                    "request body of {} bytes exceeds the limit of {} bytes",
                    body.len(),
                    self.inner.config.max_body_bytes
                )));
            }
            let request = Request::parse(body)?;
            tracing::Span::current().record("request_type", request.type_name());
            limits::check_request(&request, &self.inner.config)?;
            let result = match request {
                Request::Stream(request) => pipeline::start(self, request, ctx)
                    .await
                    .map(Response::Stream),
                Request::Json(request) => {
                    json::handle(self, request, &ctx).await.map(Response::Json)
                }
            };
            if let Err(err) = &result {
                tracing::debug!(code = err.code(), error = %err, "request failed");
            }
            result
        }
        .instrument(span)
        .await
    }
}
