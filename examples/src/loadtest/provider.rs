//! A built-in OpenAI-compatible fake provider for load and fault tests: a
//! small axum app on `127.0.0.1` (HTTP/1.1, or HTTP/2 with prior knowledge)
//! that answers `POST /v1/chat/completions`
//! with a streamed Chat Completions response (`data: {...}\n\n` chunks, then
//! `data: [DONE]`), so the engine's real `OpenAiCompatible` client does all of
//! its usual work.
//!
//! What it answers depends on the last message of the request:
//!
//! - the last message is the user's and contains [`TOOL_MARKER`]: a tool call
//!   (`create_task` and `list_tasks` in turn), i.e. the first model call of a
//!   "tool" turn;
//! - otherwise a text answer of `answer_tokens` tokens, each one preceded by
//!   `token_delay`;
//! - if the user's message contains [`HOLD_MARKER`], the text answer stops
//!   after its first token until [`FakeProvider::release_held`] is called
//!   (also after a tool call: the turn's latest user message decides); the
//!   load tool's open-streams phase holds thousands of streams open this way,
//!   the fault tests kill `serve` during such a held answer.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A user message containing this makes the first model call of the turn a
/// tool call.
pub const TOOL_MARKER: &str = "#tool";
/// A user message containing this holds the answer after its first token
/// until [`FakeProvider::release_held`].
pub const HOLD_MARKER: &str = "#hold";

/// How the fake provider answers.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Text tokens per answer (at least 1).
    pub answer_tokens: usize,
    /// Pause before each text token.
    pub token_delay: Duration,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            answer_tokens: 20,
            token_delay: Duration::ZERO,
        }
    }
}

struct Shared {
    config: ProviderConfig,
    release: CancellationToken,
    calls: AtomicU64,
    tool_calls: AtomicU64,
}

/// A running fake provider.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl FakeProvider {
    /// Starts the provider on `127.0.0.1:port` (0 picks a free port).
    pub async fn start(config: ProviderConfig, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            release: CancellationToken::new(),
            calls: AtomicU64::new(0),
            tool_calls: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/chat/completions", post(chat_completions))
            .with_state(Arc::clone(&shared));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let handle = tokio::spawn(serve(listener, app, stopped));
        Ok(Self {
            addr,
            shared,
            stop,
            handle,
        })
    }

    /// The base URL to give the engine (`OPENAI_BASE_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Lets every held answer (and every later one) go on.
    pub fn release_held(&self) {
        self.shared.release.cancel();
    }

    /// Model calls answered so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    /// Tool calls answered so far.
    pub fn tool_calls(&self) -> u64 {
        self.shared.tool_calls.load(Ordering::Relaxed)
    }

    /// Stops accepting requests (held answers are released first).
    pub fn stop(self) {
        self.shared.release.cancel();
        self.stop.cancel();
        self.handle.abort();
    }
}

/// Serves HTTP/1.1 and HTTP/2 (prior knowledge) until `stop`.
///
/// Not `axum::serve`: the open-streams phase holds thousands of answers open
/// on one HTTP/2 connection when `serve` runs with
/// `OPENAI_HTTP2_PRIOR_KNOWLEDGE`, and hyper's default limit of 200
/// concurrent streams per connection would queue all the others.
async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(None);
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                // Out of descriptors, most likely: wait for some to close.
                eprintln!("fake provider: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small chunks go out at once (no Nagle delay waiting for the
        // client's delayed ACK).
        let _ = tcp.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let service = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

enum Step {
    Chunk(Bytes),
    Delay(Duration),
    Hold,
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> Bytes {
    let value = json!({
        "id": "chatcmpl-load",
        "object": "chat.completion.chunk",
        "created": 1_764_100_000,
        "model": "loadtest-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    Bytes::from(format!("data: {value}\n\n"))
}

async fn chat_completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let n = shared.calls.fetch_add(1, Ordering::Relaxed);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => {
            let body = json!({"error": {"message": format!("invalid JSON: {err}"),
                                        "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let last = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last());
    let is_user = |m: &Value| m.get("role").and_then(Value::as_str) == Some("user");
    let last_is_user = last.is_some_and(is_user);
    let last_text = last.map(Value::to_string).unwrap_or_default();
    // The user message of this turn, also after tool results.
    let user_text = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| is_user(m)))
        .map(Value::to_string)
        .unwrap_or_default();
    let has_tools = request
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());

    let mut steps = vec![Step::Chunk(chunk(
        json!({"role": "assistant", "content": ""}),
        None,
    ))];
    if last_is_user && has_tools && last_text.contains(TOOL_MARKER) {
        let t = shared.tool_calls.fetch_add(1, Ordering::Relaxed);
        let (name, args) = if t % 2 == 0 {
            (
                "create_task",
                json!({"title": format!("load test task {n}")}),
            )
        } else {
            ("list_tasks", json!({}))
        };
        steps.push(Step::Chunk(chunk(
            json!({"tool_calls": [{"index": 0, "id": format!("call_{n}"), "type": "function",
                    "function": {"name": name, "arguments": args.to_string()}}]}),
            None,
        )));
        steps.push(Step::Chunk(chunk(json!({}), Some("tool_calls"))));
    } else {
        let hold = user_text.contains(HOLD_MARKER);
        let tokens = shared.config.answer_tokens.max(1);
        for i in 0..tokens {
            if !shared.config.token_delay.is_zero() {
                steps.push(Step::Delay(shared.config.token_delay));
            }
            let word = if i == 0 { "Done" } else { " word" };
            steps.push(Step::Chunk(chunk(json!({"content": word}), None)));
            if i == 0 && hold {
                steps.push(Step::Hold);
            }
        }
        steps.push(Step::Chunk(chunk(json!({}), Some("stop"))));
    }
    steps.push(Step::Chunk(Bytes::from_static(b"data: [DONE]\n\n")));

    let release = shared.release.clone();
    let stream = futures::stream::unfold(
        (steps.into_iter(), release),
        |(mut steps, release)| async move {
            loop {
                match steps.next()? {
                    Step::Chunk(bytes) => {
                        return Some((Ok::<_, Infallible>(bytes), (steps, release)));
                    }
                    Step::Delay(delay) => tokio::time::sleep(delay).await,
                    Step::Hold => release.cancelled().await,
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}
