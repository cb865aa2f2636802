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
//! every failure before it (including exhausted retries) is its `Err`; the
//! request body kept for retries is released then.
//!
//! The returned stream reads the response body itself, when polled: no task,
//! no channel, nothing read while the caller is busy elsewhere. Dropping it
//! closes the request. The idle limit counts only time spent waiting for the provider,
//! not time the caller takes between two polls.
//!
//! Each attempt runs in a `model.call` tracing span (model, provider,
//! attempt). Neither the API key nor message contents are logged.

use super::accumulate::{ChunkAccumulator, SseDecoder, SseEvent, error_from_body};
use super::dialect::{AuthHeader, Dialect};
use super::request_body::RequestBody;
use super::{Model, ModelEvent, ModelRequest, ModelStream};
use crate::error::{Error, Result};
use async_openai::config::{Config, OpenAIConfig};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep, timeout_at};
use tracing::{Instrument, Span};

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

/// Why an attempt ended before its first event.
struct Failure {
    error: Error,
    /// The wait the provider asked for, if any.
    retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
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
    /// Makes attempts (with retries) until one has its first event ready,
    /// and returns that attempt's reader.
    ///
    /// `body` is kept for retries, which only happen before anything was
    /// streamed, and is released when this returns: an answer that streams
    /// for minutes does not hold the whole request.
    async fn start(self: &Arc<Self>, body: Bytes) -> Result<Reader> {
        let attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let span = tracing::info_span!(
                "model.call",
                model = %self.model,
                provider = %self.dialect.name,
                attempt,
            );
            let Failure { error, retry_after } =
                match self.attempt(&body, &span).instrument(span.clone()).await {
                    Ok(reader) => return Ok(reader),
                    Err(failure) => failure,
                };
            if !is_retryable(&error) || attempt >= attempts {
                span.in_scope(
                    || tracing::warn!(error = %error, emitted = false, "model call failed"),
                );
                return Err(error);
            }
            let delay = self.retry.delay(attempt, retry_after);
            span.in_scope(|| {
                tracing::warn!(
                    error = %error,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "model call failed; retrying"
                );
            });
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP request, read until its first event is ready.
    async fn attempt(self: &Arc<Self>, body: &Bytes, span: &Span) -> Result<Reader, Failure> {
        let started = Instant::now();
        let end = self.timeouts.request.map(|limit| started + limit);
        let first_deadline = cap(end, started + self.timeouts.first_token);

        let send = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body.clone())
            .send();
        let response = match timeout_at(first_deadline, send).await {
            Err(_) => return Err(self.timeout_error(end, true).into()),
            Ok(Err(err)) => return Err(transport_error(err).into()),
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
            return Err(Failure {
                error: error_from_body(&body, Some(status.as_u16())),
                retry_after,
            });
        }

        let fallback_id = uuid::Uuid::new_v4().simple().to_string();
        let fallback_id: String = fallback_id.chars().take(16).collect();
        let mut acc = ChunkAccumulator::new(&self.dialect.reasoning_fields, fallback_id);
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        let body = if is_json {
            // The provider ignored `stream: true` and sent one document.
            let bytes = match timeout_at(first_deadline, response.bytes()).await {
                Err(_) => return Err(self.timeout_error(end, true).into()),
                Ok(Err(err)) => return Err(transport_error(err).into()),
                Ok(Ok(bytes)) => bytes,
            };
            let value = serde_json::from_slice::<Value>(&bytes).map_err(|err| Error::Model {
                message: format!("the provider sent invalid JSON: {err}"),
                retryable: true,
                source: Some(Box::new(err)),
            })?;
            // Its text becomes one delta when the reader finishes.
            acc.push(&value)?;
            acc.mark_done();
            None
        } else {
            // Owns the body only: the response headers are dropped here.
            Some(response.bytes_stream().boxed())
        };
        let mut reader = Reader {
            inner: Arc::clone(self),
            body,
            decoder: SseDecoder::default(),
            acc: Some(acc),
            events: VecDeque::new(),
            ready: Vec::new().into_iter(),
            timer: Box::pin(tokio::time::sleep_until(first_deadline)),
            waiting: false,
            burst: 0,
            yielded: false,
            failed: None,
            first_deadline,
            end,
            got_data: false,
            text_streamed: false,
            span: span.clone(),
        };
        if std::future::poll_fn(|cx| reader.poll_ready(cx)).await? {
            Ok(reader)
        } else {
            Err(Error::Internal("the model call ended without a result".to_owned()).into())
        }
    }

    /// The error of a deadline that passed while waiting for the provider.
    fn timeout_error(&self, end: Option<Instant>, waiting_for_first: bool) -> Error {
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
    }
}

/// `deadline`, or the end of the whole call if that comes first.
fn cap(end: Option<Instant>, deadline: Instant) -> Instant {
    match end {
        Some(end) if end < deadline => end,
        _ => deadline,
    }
}

/// The stream [`OpenAiCompatible::stream`] returns: the answer's HTTP body,
/// read only when the caller polls (no task of its own, no channel).
/// Dropping it closes the request.
///
/// It holds what an open answer needs between two reads and frees the rest:
/// the buffers of a read (its SSE events, their deltas) are released once
/// consumed, so an answer paused after a token holds no spare events.
// Why not async-stream: this code as a generator keeps its largest await
// state for the life of the answer (the task future it replaces: 1,704
// bytes); `Reader` is 568 bytes and a 112-byte timer.
struct Reader {
    inner: Arc<Inner>,
    /// The response body; `None` once it ended or the answer is complete.
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    decoder: SseDecoder,
    /// `None` once the answer is complete or failed.
    acc: Option<ChunkAccumulator>,
    /// The SSE events read and not yet fed to `acc`.
    events: VecDeque<SseEvent>,
    /// Events for the caller, in order.
    ready: std::vec::IntoIter<ModelEvent>,
    /// The deadline of the read in progress: the first token (and the whole
    /// call) before any data, then the idle gap. Reset per read, never
    /// reallocated.
    timer: Pin<Box<Sleep>>,
    /// Whether `timer` was set for the read in progress.
    waiting: bool,
    /// Reads of the burst in progress (0: not reading, the events read are
    /// handed over).
    burst: u8,
    /// Whether the burst yielded since its last read.
    yielded: bool,
    /// A read failure, reported after the events read before it.
    failed: Option<Error>,
    first_deadline: Instant,
    end: Option<Instant>,
    /// Whether an SSE event arrived (the idle limit then replaces the
    /// first-token one).
    got_data: bool,
    /// Whether a text delta was produced (else the final text is sent as
    /// one delta, so the deltas always add up to the final text).
    text_streamed: bool,
    span: Span,
}

impl Reader {
    /// Reads until an event for the caller is ready (`Ok(true)`) or the
    /// answer is over (`Ok(false)`). After an error it is over.
    ///
    /// Reads come in bursts (at most `MAX_BURST` reads): the reader takes
    /// what the body has, yields once and reads again while more arrived,
    /// and only then hands the burst's events over. hyper's HTTP/1.1 client
    /// body passes one chunk at a time from its connection task; handing
    /// each chunk's events over at once let the client connection write once
    /// per event of a provider's burst (24 writes per turn, against 12 with
    /// the tasks this replaced and 8.5 with bursts: docs/performance.md,
    /// "One task per turn").
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool>> {
        loop {
            if !self.ready.as_slice().is_empty() {
                return Poll::Ready(Ok(true));
            }
            let Some(acc) = &mut self.acc else {
                return Poll::Ready(Ok(false));
            };
            if !acc.is_done() {
                if self.burst == 0
                    && let Some(event) = pop_freeing(&mut self.events)
                {
                    match acc.push_event(&event) {
                        Ok(deltas) => {
                            self.text_streamed |= deltas
                                .iter()
                                .any(|delta| matches!(delta, ModelEvent::TextDelta(_)));
                            self.ready = deltas.into_iter();
                        }
                        Err(err) => return Poll::Ready(Err(self.stop(err))),
                    }
                    continue;
                }
                if let Some(err) = self.failed.take() {
                    return Poll::Ready(Err(self.stop(err)));
                }
                if self.body.is_some() {
                    match self.poll_read(cx) {
                        Poll::Ready(Ok(Some(bytes))) => {
                            let events = self.decoder.feed(&bytes);
                            self.got_data |= !events.is_empty();
                            self.events.extend(events);
                            self.burst = self.burst.saturating_add(1);
                            self.yielded = false;
                            if self.burst >= MAX_BURST {
                                self.burst = 0;
                            }
                        }
                        Poll::Ready(Ok(None)) => {
                            self.body = None;
                            self.burst = 0;
                            self.events.extend(self.decoder.finish());
                        }
                        Poll::Ready(Err(err)) if self.events.is_empty() => {
                            return Poll::Ready(Err(self.stop(err)));
                        }
                        Poll::Ready(Err(err)) => {
                            // The events read before it go first.
                            self.failed = Some(err);
                            self.body = None;
                            self.burst = 0;
                        }
                        Poll::Pending if self.burst > 0 && !self.yielded => {
                            // Let the connection task pass on what it has.
                            self.yielded = true;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Poll::Pending if self.burst > 0 => {
                            // The events go first; the idle limit restarts
                            // when reading resumes.
                            self.burst = 0;
                            self.waiting = false;
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                    continue;
                }
            }
            // `[DONE]`, or the body ended (`finish` tells a truncated answer).
            self.body = None;
            self.events = VecDeque::new();
            let Some(acc) = self.acc.take() else {
                return Poll::Ready(Ok(false));
            };
            let response = match acc.finish() {
                Ok(response) => response,
                Err(err) => return Poll::Ready(Err(self.stop(err))),
            };
            if let Some(usage) = &response.usage {
                self.span.in_scope(|| {
                    tracing::debug!(
                        input_tokens = usage.input_tokens,
                        output_tokens = usage.output_tokens,
                        cached_tokens = usage.cached_tokens,
                        tool_calls = response.tool_calls.len(),
                        "model call completed"
                    );
                });
            }
            let mut events = Vec::with_capacity(2);
            if !self.text_streamed && !response.text.is_empty() {
                // A non-streamed reply: its text still arrives as one delta.
                events.push(ModelEvent::TextDelta(response.text.clone()));
            }
            events.push(ModelEvent::Completed(response));
            self.ready = events.into_iter();
        }
    }

    /// The next read of the body (`None` at its end), bounded by the timer.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>>> {
        let Some(body) = &mut self.body else {
            return Poll::Ready(Ok(None));
        };
        if !self.waiting {
            let deadline = if self.got_data {
                cap(self.end, Instant::now() + self.inner.timeouts.idle)
            } else {
                self.first_deadline
            };
            self.timer.as_mut().reset(deadline);
            self.waiting = true;
        }
        let read = match body.poll_next_unpin(cx) {
            Poll::Ready(read) => read,
            Poll::Pending => {
                ready!(self.timer.as_mut().poll(cx));
                self.waiting = false;
                return Poll::Ready(Err(self.inner.timeout_error(self.end, !self.got_data)));
            }
        };
        self.waiting = false;
        Poll::Ready(match read {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(err)) => Err(Error::Model {
                message: format!(
                    "the connection to the model provider broke: {}",
                    error_chain(&err)
                ),
                retryable: true,
                source: Some(Box::new(err)),
            }),
        })
    }

    /// Ends the answer after `err`: the body is closed, nothing more is read.
    fn stop(&mut self, err: Error) -> Error {
        self.body = None;
        self.acc = None;
        self.failed = None;
        self.events = VecDeque::new();
        self.ready = Vec::new().into_iter();
        err
    }
}

impl Stream for Reader {
    type Item = Result<ModelEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match ready!(this.poll_ready(cx)) {
            Ok(true) => Poll::Ready(next_freeing(&mut this.ready).map(Ok)),
            Ok(false) => Poll::Ready(None),
            Err(error) => {
                // Something already reached the caller: no retry.
                this.span.in_scope(|| {
                    tracing::warn!(error = %error, emitted = true, "model call failed");
                });
                Poll::Ready(Some(Err(error)))
            }
        }
    }
}

/// Reads one burst may take before its events are handed over.
const MAX_BURST: u8 = 16;

/// The front of `queue`; its buffer is freed with the last item.
fn pop_freeing<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let item = queue.pop_front();
    if queue.is_empty() {
        *queue = VecDeque::new();
    }
    item
}

/// The next item of `iter`; its buffer is freed with the last one.
fn next_freeing<T>(iter: &mut std::vec::IntoIter<T>) -> Option<T> {
    let item = iter.next();
    if iter.as_slice().is_empty() {
        *iter = Vec::new().into_iter();
    }
    item
}

/// A transport failure as an engine error.
fn transport_error(err: reqwest::Error) -> Error {
    let detail = error_chain(&err);
    if err.is_timeout() {
        Error::Timeout(format!("connecting to the model provider: {detail}"))
    } else if err.is_connect() {
        Error::Model {
            message: format!("could not connect to the model provider: {detail}"),
            retryable: true,
            source: Some(Box::new(err)),
        }
    } else {
        let retryable = !err.is_builder();
        Error::Model {
            message: format!("the request to the model provider failed: {detail}"),
            retryable,
            source: Some(Box::new(err)),
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

    fn provider(&self) -> &str {
        &self.inner.dialect.name
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream> {
        let mut body = serde_json::to_vec(&self.body(&request))
            .map_err(|e| Error::Internal(format!("model request did not serialise: {e}")))?;
        drop(request);
        // The body is kept for retries until the first event; drop the spare
        // capacity the serializer's growth left behind.
        body.shrink_to_fit();
        let reader = self.inner.start(Bytes::from(body)).await?;
        Ok(Box::pin(reader))
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
