//! The load tool's ChatKit client: tokens, requests, and the timings of one
//! streamed turn.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::{Duration, Instant};

/// An HTTP client for loopback load: no overall timeout (callers bound each
/// request), no idle-connection limit, TLS set up like `serve`'s own client.
pub fn http_client() -> Result<reqwest::Client, String> {
    loopback_client(false)
}

/// Like [`http_client`], speaking HTTP/2 without negotiation (h2c with prior
/// knowledge): its requests share one connection.
pub fn http2_client() -> Result<reqwest::Client, String> {
    loopback_client(true)
}

fn loopback_client(http2_prior_knowledge: bool) -> Result<reqwest::Client, String> {
    let mut builder = chatkit_engine::http::client_builder()
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true);
    if http2_prior_knowledge {
        builder = builder.http2_prior_knowledge();
    }
    builder
        .build()
        .map_err(|e| format!("HTTP client setup failed: {e}"))
}

/// An HS256 token for `user`, valid for 12 hours, as `serve` verifies with
/// `JWT_SECRET=secret`.
pub fn sign_token(secret: &str, user: &str) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = json!({"sub": user, "iat": now, "nbf": now, "exp": now + 12 * 3600});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| format!("bad key: {e}"))?;
    mac.update(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    ))
}

/// A token from `serve`'s development sign-in (`POST /api/dev/token`).
pub async fn dev_token(http: &reqwest::Client, base: &str, user: &str) -> Result<String, String> {
    let res = http
        .post(format!("{base}/api/dev/token"))
        .header("content-type", "application/json")
        .body(json!({ "user": user }).to_string())
        .send()
        .await
        .map_err(|e| format!("dev token request failed: {e}"))?;
    let status = res.status();
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("dev token body: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "dev token: HTTP {status}: {} (is the server in development identity mode? \
             otherwise pass --jwt-secret)",
            String::from_utf8_lossy(&body)
        ));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| format!("dev token JSON: {e}"))?;
    value
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "dev token: no `token` in the answer".into())
}

/// The body of `threads.create` with `text`.
pub fn create_body(text: &str) -> String {
    json!({"type": "threads.create", "params": {"input": {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [], "inference_options": {}}}})
    .to_string()
}

/// The body of `threads.add_user_message` on `thread_id` with `text`.
pub fn add_message_body(thread_id: &str, text: &str) -> String {
    json!({"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [], "inference_options": {}}}})
    .to_string()
}

/// The body of `items.list` on `thread_id` after item `after`, oldest first.
pub fn items_page_body(thread_id: &str, limit: usize, after: Option<&str>) -> String {
    json!({"type": "items.list", "params": {
        "thread_id": thread_id, "limit": limit, "order": "asc", "after": after}})
    .to_string()
}

/// The body of `items.list` on `thread_id`.
pub fn items_list_body(thread_id: &str, limit: usize) -> String {
    json!({"type": "items.list", "params": {"thread_id": thread_id, "limit": limit, "order": "asc"}})
        .to_string()
}

/// What went wrong with one request, as a short stable kind for the report.
pub type ErrorKind = String;

/// Timings of one streamed turn, from just before the request was sent.
#[derive(Clone, Debug, Default)]
pub struct TurnTiming {
    /// Response headers received.
    pub headers: Option<Duration>,
    /// First complete SSE frame.
    pub first_event: Option<Duration>,
    /// First `assistant_message.content_part.text_delta`.
    pub first_delta: Option<Duration>,
    /// End of the stream.
    pub end: Option<Duration>,
    /// The thread id of a `thread.created` event.
    pub thread_id: Option<String>,
    /// Frames received.
    pub frames: usize,
    /// The failure, if any.
    pub error: Option<ErrorKind>,
}

/// Options of [`stream_turn`].
#[derive(Clone, Copy, Debug)]
pub struct TurnOptions {
    /// Give up (error `timeout`) after this long.
    pub timeout: Duration,
    /// Return as soon as the first text delta arrived, leaving the stream
    /// open (the caller keeps the returned response).
    pub stop_at_first_delta: bool,
}

/// Sends `body` to `/chatkit` and reads the event stream to its end (or to
/// the first text delta), timing it.
pub async fn stream_turn(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
    options: TurnOptions,
) -> (TurnTiming, Option<reqwest::Response>) {
    let started = Instant::now();
    let mut timing = TurnTiming::default();
    let run = async {
        let res = match http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(res) => res,
            Err(err) => {
                timing.error = Some(request_error_kind(&err));
                return None;
            }
        };
        timing.headers = Some(started.elapsed());
        let status = res.status();
        if !status.is_success() {
            let code = res
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                .unwrap_or_default();
            timing.error = Some(format!("http_{}{}", status.as_u16(), suffix(&code)));
            return None;
        }
        let is_stream = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_stream {
            timing.error = Some("not_a_stream".into());
            return None;
        }
        let mut res = res;
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        loop {
            let chunk = match res.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    timing.error = Some("stream_broken".into());
                    return None;
                }
            };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = find_frame_end(&buf) {
                let frame: Vec<u8> = buf.drain(..pos + 2).collect();
                timing.frames += 1;
                if timing.first_event.is_none() {
                    timing.first_event = Some(started.elapsed());
                }
                if timing.thread_id.is_none() && contains(&frame, b"\"thread.created\"") {
                    timing.thread_id = thread_id_of(&frame);
                }
                if timing.first_delta.is_none() && contains(&frame, b"text_delta") {
                    timing.first_delta = Some(started.elapsed());
                    if options.stop_at_first_delta {
                        return Some(res);
                    }
                }
                if contains(&frame, b"{\"type\":\"error\"") && timing.error.is_none() {
                    timing.error = Some(format!("error_event{}", suffix(&error_code(&frame))));
                }
            }
        }
        timing.end = Some(started.elapsed());
        if timing.error.is_none() && timing.first_delta.is_none() {
            timing.error = Some("no_text".into());
        }
        None
    };
    match tokio::time::timeout(options.timeout, run).await {
        Ok(open) => (timing, open),
        Err(_) => {
            timing.error = Some("timeout".into());
            (timing, None)
        }
    }
}

/// Sends a JSON (non-streaming) ChatKit request; `Ok(elapsed, body)` on 200.
pub async fn json_request(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
    timeout: Duration,
) -> Result<(Duration, Value), ErrorKind> {
    let started = Instant::now();
    let run = async {
        let res = http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| request_error_kind(&e))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|_| "body_broken".to_owned())?;
        let elapsed = started.elapsed();
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| "bad_json".to_owned())?;
        if !status.is_success() {
            let code = value["error"]["code"].as_str().unwrap_or_default();
            return Err(format!("http_{}{}", status.as_u16(), suffix(code)));
        }
        Ok((elapsed, value))
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

fn suffix(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!(":{code}")
    }
}

fn request_error_kind(err: &reqwest::Error) -> ErrorKind {
    if err.is_connect() {
        "connect".into()
    } else if err.is_timeout() {
        "timeout".into()
    } else {
        "request".into()
    }
}

fn find_frame_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn frame_json(frame: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(frame).ok()?;
    let data = text.trim().strip_prefix("data:")?.trim();
    serde_json::from_str(data).ok()
}

fn thread_id_of(frame: &[u8]) -> Option<String> {
    frame_json(frame)?["thread"]["id"]
        .as_str()
        .map(str::to_owned)
}

/// An error event's `reason` when it has one (`thread_busy`), else its
/// `code`.
fn error_code(frame: &[u8]) -> String {
    frame_json(frame)
        .and_then(|v| {
            v["reason"]
                .as_str()
                .or_else(|| v["code"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// The error kind of a turn refused because its thread was busy (the
/// client may retry it: `allow_retry` is true).
pub const BUSY_ERROR: &str = "error_event:thread_busy";

/// Whether a turn failed before anything reached a server (connection
/// refused): a load balancer would have sent it to another replica.
pub fn never_reached_a_server(kind: &str) -> bool {
    kind == "connect"
}

/// Latency samples in microseconds, summarised as percentiles.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<u64>);

impl Samples {
    /// Adds one sample.
    pub fn push(&mut self, d: Duration) {
        self.0
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `p50 / p90 / p99 / max` in milliseconds, or `-` with no samples.
    pub fn summary(&self) -> String {
        if self.0.is_empty() {
            return "-".into();
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let pct = |p: f64| {
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[i.clamp(1, v.len()) - 1] as f64 / 1000.0
        };
        let max = v[v.len() - 1] as f64 / 1000.0;
        format!(
            "p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  max {:>8.2}  (n={})",
            pct(50.0),
            pct(90.0),
            pct(99.0),
            max,
            v.len()
        )
    }

    /// The `p`-th percentile in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
        Some(v[i.clamp(1, v.len()) - 1] as f64 / 1000.0)
    }
}
