//! [`OpenAiCompatible`]: a streaming Chat Completions client for any
//! OpenAI-compatible endpoint (OpenAI, Xiaomi MiMo, DeepSeek, Ollama, vLLM,
//! ...), with provider quirks described by a [`Dialect`].
//!
//! ```no_run
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::models::{ChatMessage, Dialect, Model, ModelRequest, OpenAiCompatible};
//!
//! let model = OpenAiCompatible::builder("mimo-v2-flash")
//!     .base_url("https://api.xiaomimimo.com/v1")
//!     .api_key("sk-...")
//!     .dialect(Dialect::mimo().with_thinking(false))
//!     .build()?;
//! let request = ModelRequest {
//!     messages: vec![ChatMessage::User { content: "Hi".into() }],
//!     ..Default::default()
//! };
//! let mut stream = model.stream(request).await?;
//! # let _ = &mut stream; Ok(()) }
//! ```
//!
//! # Transport
//!
//! The request body is written here as plain JSON, serialised straight from
//! the borrowed request (no intermediate `serde_json::Value`), so vendor
//! fields (`thinking`, `reasoning_content`, `max_completion_tokens`, ...) pass
//! through untouched. Base URL, API key and extra headers are held in
//! async-openai's [`OpenAIConfig`] (its `Config::url`/`Config::headers` make
//! the URL and header map).
//!
//! The streaming transport is **reqwest (rustls + ring) with the SSE lines
//! parsed by hand** (module `models::accumulate`), not async-openai's
//! `create_stream_byot`. In async-openai 0.43 that stream cannot surface what
//! a tolerant client needs: it ends the same way on `[DONE]` and on a bare
//! EOF (so a truncated response looks complete), it drops the response
//! headers of an error reply (no `Retry-After`), and its default executor
//! retries 429/5xx on its own schedule, which would break the rule below that
//! nothing is retried once text reached the caller.
//!
//! # Retries and timeouts
//!
//! A call is retried (up to [`RetryPolicy::max_attempts`], exponential
//! backoff with jitter, `Retry-After`/`retry-after-ms` honoured up to
//! [`RetryPolicy::max_retry_after`]) on HTTP 408/409/429/5xx, connection
//! errors, timeouts, truncated streams and transient in-stream error frames,
//! **only while nothing has been streamed to the caller**. Once a text or
//! reasoning delta was yielded, a failure arrives as an `Err` item of the
//! stream. [`Timeouts`] bounds connecting, the wait for the first chunk, the
//! gap between chunks and the whole call; each becomes [`Error::Timeout`].
//!
//! [`Model::stream`] returns only after the first event is available, so
//! every failure before it (including exhausted retries) is its `Err`.
//!
//! Each attempt runs in a `model.call` tracing span (model, provider,
//! attempt). Neither the API key nor message contents are logged.

use super::accumulate::{ChunkAccumulator, SseDecoder, error_from_body};
use super::dialect::{AuthHeader, Dialect};
use super::request_body::RequestBody;
use super::{Model, ModelEvent, ModelRequest, ModelStream};
use crate::error::{Error, Result};
use async_openai::config::{Config, OpenAIConfig};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

/// The default base URL (OpenAI).
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// When and how often a failed call is tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry). Default 3.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt. Default 500 ms.
    pub initial_backoff: Duration,
    /// Upper bound of the exponential backoff. Default 8 s.
    pub max_backoff: Duration,
    /// Upper bound on a provider's `Retry-After`. Default 30 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based): the
    /// provider's `retry_after` (capped) if given, else exponential backoff
    /// with "equal jitter" (half fixed, half random).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let base = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = base / 2;
        // The low 53 bits of a v4 UUID are random (version and variant bits
        // sit higher).
        let bits = (uuid::Uuid::new_v4().as_u128() as u64) & ((1u64 << 53) - 1);
        let random = bits as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(random)
    }
}

/// Time limits of one model call attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP/TLS connection. Default 10 s.
    pub connect: Duration,
    /// From sending the request to the first SSE data event (or the whole
    /// body of a non-streamed reply). Default 120 s.
    pub first_token: Duration,
    /// The longest gap between two reads of the stream (keep-alive comments
    /// count as activity). Default 60 s.
    pub idle: Duration,
    /// The whole attempt, `None` for no limit. Default 10 min.
    pub request: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            request: Some(Duration::from_secs(600)),
        }
    }
}

/// Builds an [`OpenAiCompatible`]; see [`OpenAiCompatible::builder`].
#[derive(Clone)]
pub struct OpenAiCompatibleBuilder {
    model: String,
    base_url: String,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    dialect: Option<Dialect>,
    retry: RetryPolicy,
    timeouts: Timeouts,
    http2_prior_knowledge: bool,
}

impl fmt::Debug for OpenAiCompatibleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatibleBuilder")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatibleBuilder {
    /// A builder for `model` at [`DEFAULT_BASE_URL`].
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            headers: Vec::new(),
            dialect: None,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            http2_prior_knowledge: false,
        }
    }

    /// Speaks HTTP/2 without negotiation ("prior knowledge") to a provider
    /// or gateway known to accept it: every model call then shares one
    /// connection instead of holding one each. The server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` caps the calls that run at once (the
    /// others wait), so only use it with a peer whose limit is above the
    /// number of answers you stream at once. Off by default: HTTP/1.1, one
    /// connection per open answer, no such cap.
    pub fn http2_prior_knowledge(mut self, enabled: bool) -> Self {
        self.http2_prior_knowledge = enabled;
        self
    }

    /// The API base URL, e.g. `https://api.xiaomimimo.com/v1` (the client
    /// posts to `{base_url}/chat/completions`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The API key (omit for servers that need none, like Ollama).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// An extra header sent with every request (wins over the defaults).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The provider dialect; by default guessed with
    /// [`Dialect::for_base_url`].
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// The retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Attempts in total, the first included.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts;
        self
    }

    /// All time limits at once.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// The time allowed until the first chunk.
    pub fn first_token_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.first_token = timeout;
        self
    }

    /// The longest gap allowed between chunks.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.idle = timeout;
        self
    }

    /// The limit on a whole attempt (`None`: no limit).
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeouts.request = timeout;
        self
    }

    /// Builds the client. Fails with [`Error::Config`] on an invalid base
    /// URL, API key or header.
    pub fn build(self) -> Result<OpenAiCompatible> {
        let base_url = self.base_url.trim().trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(Error::Config(format!(
                    "model base URL {base_url:?} is not an http(s) URL"
                )));
            }
        }
        if self.model.trim().is_empty() {
            return Err(Error::Config("the model name is empty".to_owned()));
        }
        let dialect = self
            .dialect
            .unwrap_or_else(|| Dialect::for_base_url(&base_url));
        let key = self.api_key.unwrap_or_default().trim().to_owned();
        let bearer = format!("Bearer {key}");
        if HeaderValue::from_str(&bearer).is_err() {
            return Err(Error::Config(
                "the model API key contains characters not allowed in a header".to_owned(),
            ));
        }

        let mut config = OpenAIConfig::new()
            .with_api_base(base_url.clone())
            .with_api_key(key.clone())
            .with_org_id("")
            .with_project_id("");
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| Error::Config(format!("invalid model header name {name:?}")))?;
            config = config
                .with_header(name.clone(), value.as_str())
                .map_err(|_| Error::Config(format!("invalid value for model header {name}")))?;
        }
        let url = config.url("/chat/completions");
        let mut headers = config.headers();
        // `OpenAIConfig` always adds `Authorization: Bearer <key>`; drop or
        // move it unless an explicit header replaced it.
        let generated = headers
            .get(AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == bearer.as_bytes());
        if generated {
            headers.remove(AUTHORIZATION);
            if !key.is_empty() {
                let (name, value) = match &dialect.auth_header {
                    AuthHeader::Bearer => (AUTHORIZATION, bearer.clone()),
                    AuthHeader::Header(name) => (
                        HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            Error::Config(format!("invalid auth header name {name:?}"))
                        })?,
                        key.clone(),
                    ),
                };
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    Error::Config("the model API key is not a valid header value".to_owned())
                })?;
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        if let Some(value) = headers.get_mut(AUTHORIZATION) {
            value.set_sensitive(true);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("text/event-stream"));

        let http = http_client(self.timeouts.connect, self.http2_prior_knowledge)?;
        Ok(OpenAiCompatible {
            inner: Arc::new(Inner {
                http,
                config,
                url,
                headers,
                model: self.model,
                dialect,
                retry: self.retry,
                timeouts: self.timeouts,
            }),
        })
    }
}

fn http_client(connect_timeout: Duration, http2_prior_knowledge: bool) -> Result<reqwest::Client> {
    crate::http::client(|builder| {
        let builder = builder.connect_timeout(connect_timeout);
        if http2_prior_knowledge {
            builder.http2_prior_knowledge()
        } else {
            builder
        }
    })
}

/// A [`Model`] speaking streamed Chat Completions to any OpenAI-compatible
/// base URL. Cheap to clone.
#[derive(Clone)]
pub struct OpenAiCompatible {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: OpenAIConfig,
    url: String,
    headers: HeaderMap,
    model: String,
    dialect: Dialect,
    retry: RetryPolicy,
    timeouts: Timeouts,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("model", &self.inner.model)
            .field("url", &self.inner.url)
            .field("dialect", &self.inner.dialect.name)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// A builder for `model` (defaults: OpenAI's base URL, no key, dialect
    /// guessed from the base URL, [`RetryPolicy::default`],
    /// [`Timeouts::default`]).
    pub fn builder(model: impl Into<String>) -> OpenAiCompatibleBuilder {
        OpenAiCompatibleBuilder::new(model)
    }

    /// The model id sent in requests.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        self.inner.config.api_base()
    }

    /// The provider dialect.
    pub fn dialect(&self) -> &Dialect {
        &self.inner.dialect
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The time limits.
    pub fn timeouts(&self) -> &Timeouts {
        &self.inner.timeouts
    }

    /// The JSON body this client posts for `request`.
    pub fn request_body(&self, request: &ModelRequest) -> Value {
        serde_json::to_value(self.body(request)).unwrap_or(Value::Null)
    }

    fn body<'a>(&'a self, request: &'a ModelRequest) -> RequestBody<'a> {
        RequestBody {
            model: &self.inner.model,
            dialect: &self.inner.dialect,
            request,
        }
    }
}

/// Events are boxed on their way through the channel: a channel allocates
/// room for 32 values up front, and an open stream should not hold 32
/// inline `ModelEvent`s.
type Sender = mpsc::Sender<Box<Result<ModelEvent>>>;

/// Why an attempt ended without a response.
enum Failure {
    /// The caller dropped the stream.
    Cancelled,
    /// It failed.
    Failed {
        error: Error,
        retry_after: Option<Duration>,
        /// Whether a delta already reached the caller (no retry then).
        emitted: bool,
    },
}

fn failed(error: Error, emitted: bool) -> Failure {
    Failure::Failed {
        error,
        retry_after: None,
        emitted,
    }
}

fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Model { retryable, .. } => *retryable,
        Error::Timeout(_) => true,
        _ => false,
    }
}

impl Inner {
    /// Runs the call with retries, feeding `tx`.
    async fn run(self: Arc<Self>, body: Bytes, tx: Sender) {
        // Kept for retries, which only happen before anything was streamed;
        // the attempt releases it at the first delta, so an answer that
        // streams for minutes does not hold the whole request.
        let mut body = Some(body);
        let attempts = self.retry.max_attempts.max(1);
        for attempt in 1..=attempts {
            let span = tracing::info_span!(
                "model.call",
                model = %self.model,
                provider = %self.dialect.name,
                attempt,
            );
            let outcome = self.attempt(&mut body, &tx).instrument(span.clone()).await;
            let (error, retry_after, emitted) = match outcome {
                Ok(()) | Err(Failure::Cancelled) => return,
                Err(Failure::Failed {
                    error,
                    retry_after,
                    emitted,
                }) => (error, retry_after, emitted),
            };
            if emitted || !is_retryable(&error) || attempt == attempts {
                span.in_scope(|| tracing::warn!(error = %error, emitted, "model call failed"));
                let _ = tx.send(Box::new(Err(error))).await;
                return;
            }
            let delay = self.retry.delay(attempt, retry_after);
            span.in_scope(|| {
                tracing::warn!(
                    error = %error,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "model call failed; retrying"
                );
            });
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One HTTP request and its stream. `body` is set to `None` once a delta
    /// was sent on `tx` (the call is not retried after that).
    async fn attempt(&self, body: &mut Option<Bytes>, tx: &Sender) -> Result<(), Failure> {
        let Some(payload) = body.clone() else {
            return Err(failed(
                Error::Internal("the model request was already released".to_owned()),
                true,
            ));
        };
        let started = Instant::now();
        let end = self.timeouts.request.map(|limit| started + limit);
        let cap = |deadline: Instant| match end {
            Some(end) if end < deadline => end,
            _ => deadline,
        };
        let first_deadline = cap(started + self.timeouts.first_token);
        let timeout_error = |waiting_for_first: bool| {
            if end.is_some_and(|end| end <= Instant::now()) {
                Error::Timeout(format!(
                    "the model call took longer than {:?}",
                    self.timeouts.request.unwrap_or_default()
                ))
            } else if waiting_for_first {
                Error::Timeout(format!(
                    "the model sent nothing within {:?}",
                    self.timeouts.first_token
                ))
            } else {
                Error::Timeout(format!(
                    "the model stream stalled for more than {:?}",
                    self.timeouts.idle
                ))
            }
        };

        let send = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .body(payload)
            .send();
        let response = tokio::select! {
            _ = tx.closed() => return Err(Failure::Cancelled),
            response = timeout_at(first_deadline, send) => response,
        };
        let response = match response {
            Err(_) => return Err(failed(timeout_error(true), false)),
            Ok(Err(err)) => return Err(failed(transport_error(&err), false)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        tracing::debug!(status = status.as_u16(), "model response");
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let bytes = match timeout_at(first_deadline, response.bytes()).await {
                Ok(Ok(bytes)) => bytes,
                _ => Bytes::new(),
            };
            let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                let text = if text.is_empty() {
                    status.canonical_reason().unwrap_or("no body").to_owned()
                } else {
                    text.chars().take(300).collect()
                };
                Value::String(text)
            });
            return Err(Failure::Failed {
                error: error_from_body(&body, Some(status.as_u16())),
                retry_after,
                emitted: false,
            });
        }

        let fallback_id = uuid::Uuid::new_v4().simple().to_string();
        let fallback_id: String = fallback_id.chars().take(16).collect();
        let mut acc = ChunkAccumulator::new(&self.dialect.reasoning_fields, fallback_id);
        let mut emitted = false;
        let mut text_streamed = false;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));

        if is_json {
            // The provider ignored `stream: true` and sent one document.
            let bytes = match timeout_at(first_deadline, response.bytes()).await {
                Err(_) => return Err(failed(timeout_error(true), false)),
                Ok(Err(err)) => return Err(failed(transport_error(&err), false)),
                Ok(Ok(bytes)) => bytes,
            };
            let value = serde_json::from_slice::<Value>(&bytes).map_err(|err| {
                failed(
                    Error::Model {
                        message: format!("the provider sent invalid JSON: {err}"),
                        retryable: true,
                    },
                    false,
                )
            })?;
            acc.push(&value).map_err(|err| failed(err, false))?;
            acc.mark_done();
        } else {
            let mut stream = response.bytes_stream();
            let mut decoder = SseDecoder::default();
            let mut got_data = false;
            loop {
                let deadline = if got_data {
                    cap(Instant::now() + self.timeouts.idle)
                } else {
                    first_deadline
                };
                let next = tokio::select! {
                    _ = tx.closed() => return Err(Failure::Cancelled),
                    next = timeout_at(deadline, stream.next()) => next,
                };
                let (events, eof) = match next {
                    Err(_) => return Err(failed(timeout_error(!got_data), emitted)),
                    Ok(Some(Err(err))) => {
                        let error = Error::Model {
                            message: format!(
                                "the connection to the model provider broke: {}",
                                error_chain(&err)
                            ),
                            retryable: true,
                        };
                        return Err(failed(error, emitted));
                    }
                    Ok(Some(Ok(bytes))) => (decoder.feed(&bytes), false),
                    Ok(None) => (decoder.finish(), true),
                };
                for event in &events {
                    got_data = true;
                    let deltas = acc.push_event(event).map_err(|err| failed(err, emitted))?;
                    for delta in deltas {
                        text_streamed |= matches!(delta, ModelEvent::TextDelta(_));
                        emitted = true;
                        *body = None;
                        tx.send(Box::new(Ok(delta)))
                            .await
                            .map_err(|_| Failure::Cancelled)?;
                    }
                    if acc.is_done() {
                        break;
                    }
                }
                if eof || acc.is_done() {
                    break;
                }
            }
        }

        let response = acc.finish().map_err(|err| failed(err, emitted))?;
        if let Some(usage) = &response.usage {
            tracing::debug!(
                input_tokens = usage.input_tokens,
                output_tokens = usage.output_tokens,
                cached_tokens = usage.cached_tokens,
                tool_calls = response.tool_calls.len(),
                "model call completed"
            );
        }
        if !text_streamed && !response.text.is_empty() {
            // A non-streamed reply: its text still arrives as one delta, so
            // the deltas always add up to the final text.
            tx.send(Box::new(Ok(ModelEvent::TextDelta(response.text.clone()))))
                .await
                .map_err(|_| Failure::Cancelled)?;
        }
        tx.send(Box::new(Ok(ModelEvent::Completed(response))))
            .await
            .map_err(|_| Failure::Cancelled)
    }
}

/// A transport failure as an engine error.
fn transport_error(err: &reqwest::Error) -> Error {
    let detail = error_chain(err);
    if err.is_timeout() {
        Error::Timeout(format!("connecting to the model provider: {detail}"))
    } else if err.is_connect() {
        Error::Model {
            message: format!("could not connect to the model provider: {detail}"),
            retryable: true,
        }
    } else {
        Error::Model {
            message: format!("the request to the model provider failed: {detail}"),
            retryable: !err.is_builder(),
        }
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The wait a provider asked for: `retry-after-ms` (OpenAI, Azure) or
/// `Retry-After` in (possibly fractional) seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let value = headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
    }
    number(RETRY_AFTER.as_str()).map(|secs| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[async_trait]
impl Model for OpenAiCompatible {
    fn name(&self) -> &str {
        &self.inner.model
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream> {
        let mut body = serde_json::to_vec(&self.body(&request))
            .map_err(|e| Error::Internal(format!("model request did not serialise: {e}")))?;
        // The body is kept for retries while the answer streams; drop the
        // spare capacity the serializer's growth left behind.
        body.shrink_to_fit();
        let (tx, mut rx) = mpsc::channel(64);
        tokio::spawn(Arc::clone(&self.inner).run(Bytes::from(body), tx));
        match rx.recv().await.map(|event| *event) {
            None => Err(Error::Internal(
                "the model call ended without a result".to_owned(),
            )),
            Some(Err(err)) => Err(err),
            Some(Ok(first)) => {
                let rest = futures::stream::poll_fn(move |cx| {
                    rx.poll_recv(cx).map(|event| event.map(|event| *event))
                });
                Ok(futures::stream::once(async move { Ok(first) })
                    .chain(rest)
                    .boxed())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::models::{ChatMessage, ModelSettings, ToolCall, ToolChoice, ToolSpec};
    use serde_json::json;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..RetryPolicy::default()
        };
        for _ in 0..20 {
            let first = policy.delay(1, None);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.delay(3, None);
            assert!(third >= Duration::from_millis(150) && third <= Duration::from_millis(300));
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            policy.max_retry_after
        );
        assert!(policy.delay(40, None) <= policy.max_backoff);
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.25"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        headers.insert("retry-after-ms", HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(120)));
        headers.remove("retry-after-ms");
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn builder_validates() {
        assert!(matches!(
            OpenAiCompatible::builder("m").base_url("ftp://x").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            OpenAiCompatible::builder("m").api_key("a\nb").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            OpenAiCompatible::builder("m")
                .header("bad name", "v")
                .build(),
            Err(Error::Config(_))
        ));
        let model = OpenAiCompatible::builder("gpt-x").build().unwrap();
        assert_eq!(model.base_url(), DEFAULT_BASE_URL);
        assert_eq!(model.dialect().name, "openai");
        assert_eq!(
            model.inner.url,
            "https://api.openai.com/v1/chat/completions"
        );
        // No key: no Authorization header at all.
        assert!(model.inner.headers.get(AUTHORIZATION).is_none());
        let mimo = OpenAiCompatible::builder("mimo-v2-flash")
            .base_url("https://api.xiaomimimo.com/v1/")
            .api_key("k")
            .dialect(Dialect::mimo().with_auth_header(AuthHeader::Header("api-key".into())))
            .build()
            .unwrap();
        assert_eq!(
            mimo.inner.url,
            "https://api.xiaomimimo.com/v1/chat/completions"
        );
        assert!(mimo.inner.headers.get(AUTHORIZATION).is_none());
        assert_eq!(mimo.inner.headers.get("api-key").unwrap(), "k");
        assert!(!format!("{mimo:?}").contains("\"k\""));
    }

    #[test]
    fn body_shapes() {
        let model = OpenAiCompatible::builder("m")
            .base_url("http://localhost:1/v1")
            .dialect(Dialect::generic().with_include_usage(false))
            .build()
            .unwrap();
        let request = ModelRequest {
            messages: vec![
                ChatMessage::Assistant {
                    content: Some(String::new()),
                    tool_calls: vec![ToolCall {
                        id: "c".into(),
                        name: "t".into(),
                        arguments: "{}".into(),
                    }],
                    reasoning: Some("r".into()),
                },
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![],
                    reasoning: None,
                },
            ],
            tools: vec![ToolSpec {
                name: "t".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
                strict: false,
            }]
            .into(),
            settings: ModelSettings {
                temperature: Some(0.2),
                max_tokens: Some(10),
                tool_choice: Some(ToolChoice::Named("t".into())),
                ..ModelSettings::default()
            },
        };
        let body = model.request_body(&request);
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
                    {"role": "assistant", "content": ""}
                ],
                "tools": [{"type": "function", "function": {"name": "t", "description": "d",
                           "parameters": {"type": "object", "properties": {}}}}],
                "tool_choice": {"type": "function", "function": {"name": "t"}},
                "temperature": 0.2,
                "max_tokens": 10,
                "stream": true
            })
        );
    }

    #[test]
    fn https_client_builds_without_a_global_crypto_provider() {
        assert!(http_client(Duration::from_secs(1), false).is_ok());
        assert!(http_client(Duration::from_secs(1), true).is_ok());
    }
}
