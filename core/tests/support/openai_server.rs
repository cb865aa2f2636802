//! A local, scripted OpenAI-compatible server for tests (no network).
//!
//! It listens on `127.0.0.1:0`, answers every request with the next
//! [`Script`] of its queue, and records each request (method, path, headers,
//! JSON body) so tests can assert on what the client sent. Scripts are raw:
//! an HTTP status, headers and a list of body lines written one by one (each
//! followed by `\n`), so tests can replay exactly the chunk formats real
//! providers send, plus failure modes: a delay before the first byte, a
//! pause after some lines, a dropped connection.
//!
//! ```ignore
//! #[path = "support/openai_server.rs"]
//! mod openai_server;
//! use openai_server::{OpenAiServer, Script};
//!
//! let server = OpenAiServer::start([
//!     Script::status(429),
//!     Script::text_stream(&["Hel", "lo"]),
//! ])
//! .await;
//! let model = OpenAiCompatible::builder("test-model").base_url(server.base_url()).build()?;
//! // ... run the model ...
//! assert_eq!(server.requests().len(), 2);
//! assert_eq!(server.requests()[0].body["model"], "test-model");
//! ```
//!
//! Responses use chunked transfer encoding and `Connection: close`, so a
//! dropped connection ([`Script::drop_after`]) is seen by the client as a
//! broken body, while a normal end without `data: [DONE]` is a clean EOF.
//! When the queue is empty the server answers HTTP 400 (not retryable) with
//! an error saying so.
#![allow(dead_code, clippy::panic)]

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Builders for Chat Completions chunk objects (all with id [`chunks::ID`]).
pub mod chunks {
    use serde_json::{Value, json};

    /// The response id every built chunk carries.
    pub const ID: &str = "chatcmpl-test";

    /// A chunk with one choice carrying `delta`.
    pub fn delta(delta: Value) -> Value {
        json!({"id": ID, "object": "chat.completion.chunk", "created": 1764100000,
               "model": "test-model",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]})
    }

    /// A text fragment.
    pub fn text(text: &str) -> Value {
        delta(json!({"content": text}))
    }

    /// A `reasoning_content` fragment (MiMo / DeepSeek style).
    pub fn reasoning(text: &str) -> Value {
        delta(json!({"content": null, "reasoning_content": text}))
    }

    /// One tool-call fragment; `None` fields are left out.
    pub fn tool_call(
        index: Option<u64>,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Value,
    ) -> Value {
        let mut call = json!({"type": "function", "function": {"arguments": arguments}});
        if let Some(index) = index {
            call["index"] = json!(index);
        }
        if let Some(id) = id {
            call["id"] = json!(id);
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        delta(json!({"tool_calls": [call]}))
    }

    /// The finish chunk (empty delta, `finish_reason`).
    pub fn finish(reason: &str) -> Value {
        let mut chunk = delta(json!({}));
        chunk["choices"][0]["finish_reason"] = json!(reason);
        chunk
    }

    /// The `choices: []` usage chunk sent with `include_usage`.
    pub fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Value {
        json!({"id": ID, "object": "chat.completion.chunk", "created": 1764100000,
               "model": "test-model", "choices": [],
               "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion,
                         "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                         "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0}}})
    }

    /// The SSE line for a chunk: `data: {...}`.
    pub fn data(chunk: &Value) -> String {
        format!("data: {chunk}")
    }
}

/// One scripted response.
#[derive(Clone, Debug)]
pub struct Script {
    /// HTTP status.
    pub status: u16,
    /// Response headers (`content-type` included).
    pub headers: Vec<(String, String)>,
    /// Body lines, each written followed by `\n`.
    pub lines: Vec<String>,
    /// Wait before the first byte of the response (status line).
    pub delay: Duration,
    /// Wait before each line.
    pub line_delay: Duration,
    /// After this many lines, stall for the duration (then go on).
    pub pause_after: Option<(usize, Duration)>,
    /// After this many lines, drop the connection (no chunked terminator).
    pub drop_after: Option<usize>,
}

impl Script {
    /// A 200 `text/event-stream` response with raw lines (write the blank
    /// lines between events yourself, e.g. `["data: {..}", "", ": ping", ""]`).
    pub fn sse<I, S>(lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            lines: lines.into_iter().map(Into::into).collect(),
            delay: Duration::ZERO,
            line_delay: Duration::ZERO,
            pause_after: None,
            drop_after: None,
        }
    }

    /// A stream of these chunks, each as `data: ..` + blank line, then
    /// `data: [DONE]`.
    pub fn chunks(chunks: &[Value]) -> Self {
        let mut script = Self::chunks_without_done(chunks);
        script.lines.push("data: [DONE]".into());
        script.lines.push(String::new());
        script
    }

    /// Like [`Script::chunks`] but the stream ends without `data: [DONE]`.
    pub fn chunks_without_done(chunks: &[Value]) -> Self {
        Self::sse(
            chunks
                .iter()
                .flat_map(|c| [self::chunks::data(c), String::new()]),
        )
    }

    /// A plain text answer streamed in these fragments: role chunk, one
    /// chunk per fragment, `finish_reason: "stop"`, usage chunk (10 prompt,
    /// 5 completion tokens), `[DONE]`.
    pub fn text_stream(parts: &[&str]) -> Self {
        let mut all = vec![self::chunks::delta(
            json!({"role": "assistant", "content": ""}),
        )];
        all.extend(parts.iter().map(|p| self::chunks::text(p)));
        all.push(self::chunks::finish("stop"));
        all.push(self::chunks::usage(10, 5, 0, 0));
        Self::chunks(&all)
    }

    /// A turn calling these tools `(name, arguments JSON)` OpenAI-style: per
    /// call a first fragment with id `call_<n>` and name, then the arguments
    /// in a second fragment; `finish_reason: "tool_calls"`, usage, `[DONE]`.
    pub fn tool_calls(calls: &[(&str, &str)]) -> Self {
        let mut all = Vec::new();
        for (n, (name, arguments)) in calls.iter().enumerate() {
            let index = n as u64;
            let id = format!("call_{n}");
            all.push(self::chunks::tool_call(
                Some(index),
                Some(&id),
                Some(name),
                json!(""),
            ));
            all.push(self::chunks::tool_call(
                Some(index),
                None,
                None,
                json!(arguments),
            ));
        }
        all.push(self::chunks::finish("tool_calls"));
        all.push(self::chunks::usage(10, 5, 0, 0));
        Self::chunks(&all)
    }

    /// An error response with this status and an OpenAI-style JSON error.
    pub fn status(status: u16) -> Self {
        let kind = match status {
            429 => "rate_limit_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        };
        Self::json(
            status,
            json!({"error": {"message": format!("scripted status {status}"),
                             "type": kind, "param": null, "code": null}}),
        )
    }

    /// A JSON response (one body line).
    pub fn json(status: u16, body: Value) -> Self {
        let mut script = Self::sse([body.to_string()]);
        script.status = status;
        script.headers = vec![("content-type".into(), "application/json".into())];
        script
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Hangs this long before the first byte of the response.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Waits this long before each line.
    pub fn line_delay(mut self, delay: Duration) -> Self {
        self.line_delay = delay;
        self
    }

    /// Stalls for `pause` after `lines` lines, then goes on.
    pub fn pause_after(mut self, lines: usize, pause: Duration) -> Self {
        self.pause_after = Some((lines, pause));
        self
    }

    /// Drops the connection after `lines` lines.
    pub fn drop_after(mut self, lines: usize) -> Self {
        self.drop_after = Some(lines);
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `POST`, ...
    pub method: String,
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers with lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    scripts: VecDeque<Script>,
    requests: Vec<RecordedRequest>,
}

/// The running server; stops when dropped.
pub struct OpenAiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl OpenAiServer {
    /// Starts a server answering with these scripts, in order.
    pub async fn start(scripts: impl IntoIterator<Item = Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("test server could not bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test server has no address: {e}"));
        let state = Arc::new(Mutex::new(State {
            scripts: scripts.into_iter().collect(),
            requests: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&shared)));
            }
        });
        Self { addr, state, task }
    }

    /// The base URL to give the client: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues another script.
    pub fn push(&self, script: Script) {
        lock(&self.state).scripts.push_back(script);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// The JSON bodies of every request received so far.
    pub fn bodies(&self) -> Vec<Value> {
        lock(&self.state)
            .requests
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.state).requests.len()
    }

    /// How many scripts are still queued.
    pub fn remaining(&self) -> usize {
        lock(&self.state).scripts.len()
    }
}

impl Drop for OpenAiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request, records it, replays the next script.
async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let script = {
        let mut state = lock(&state);
        state.requests.push(request);
        state.scripts.pop_front()
    };
    let script = script.unwrap_or_else(|| {
        Script::json(
            400,
            json!({"error": {"message": "test server: no scripted response left",
                             "type": "invalid_request_error"}}),
        )
    });
    let _ = write_script(&mut socket, &script).await;
}

async fn read_request(socket: &mut TcpStream) -> Option<RecordedRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split_whitespace();
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
    })
}

async fn write_script(socket: &mut TcpStream, script: &Script) -> std::io::Result<()> {
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", script.status, reason(script.status));
    for (name, value) in &script.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.flush().await?;
    for (n, line) in script.lines.iter().enumerate() {
        if script.drop_after == Some(n) {
            return Ok(()); // dropping the socket without the terminator
        }
        if let Some((after, pause)) = script.pause_after
            && after == n
        {
            tokio::time::sleep(pause).await;
        }
        if !script.line_delay.is_zero() {
            tokio::time::sleep(script.line_delay).await;
        }
        let data = format!("{line}\n");
        socket
            .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
            .await?;
        socket.flush().await?;
    }
    if script.drop_after == Some(script.lines.len()) {
        return Ok(());
    }
    if let Some((after, pause)) = script.pause_after
        && after == script.lines.len()
    {
        tokio::time::sleep(pause).await;
    }
    socket.write_all(b"0\r\n\r\n").await?;
    socket.flush().await?;
    socket.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
