//! HTTP-level tests of `serve`: the router runs in-process on 127.0.0.1:0
//! and is called over real TCP with reqwest.

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::post;
use chatkit_engine_examples::logging::{self, LogFormat};
use chatkit_engine_examples::serve::session::http_client;
use chatkit_engine_examples::serve::{Args, IdentityMode, ServeConfig, Server};
use clap::Parser;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

struct TestServer {
    base: String,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), String>>,
}

fn config(extra: &[&str]) -> Result<ServeConfig, String> {
    let mut argv = vec![
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        "sqlite::memory:",
    ];
    argv.extend_from_slice(extra);
    let mut args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
    // clap also reads the environment: keep the tests independent of it.
    let given = |flag: &str| extra.contains(&flag);
    if !given("--openai-api-key") {
        args.openai_api_key = None;
    }
    if !given("--chatkit-workflow-id") {
        args.chatkit_workflow_id = None;
    }
    if !given("--jwt-secret") {
        args.jwt_secret = None;
    }
    args.openai_base_url = None;
    args.chat_model = None;
    args.jwks_url = None;
    args.jwt_issuer = None;
    args.jwt_audience.clear();
    if !given("--better-auth-url") {
        args.better_auth_url = None;
    }
    if !given("--chatkit-path") {
        args.chatkit_path = "/api/chatkit".into();
    }
    if !given("--cors-origin") {
        args.cors_origins.clear();
    }
    if !given("--dev-stream-delay-ms") {
        args.dev_stream_delay_ms = 0;
    }
    if !given("--max-body-bytes") {
        args.max_body_bytes = 1024 * 1024;
    }
    if !given("--shutdown-grace-secs") {
        args.shutdown_grace_secs = 30;
    }
    if !given("--chatkit-api-base") {
        args.chatkit_api_base = "https://api.openai.com/v1".into();
    }
    if !given("--request-body-timeout-secs") {
        args.request_body_timeout_secs = 30;
    }
    if !given("--request-body-idle-secs") {
        args.request_body_idle_secs = 10;
    }
    if !given("--mcp-max-sessions-per-user") {
        args.mcp_max_sessions_per_user = 16;
    }
    if !given("--log-format") {
        args.log_format = LogFormat::Text;
    }
    if !given("--metrics-addr") {
        args.metrics_addr = None;
    }
    if !given("--metrics-token") {
        args.metrics_token = None;
    }
    ServeConfig::from_args(args, |_| None)
}

async fn start(extra: &[&str]) -> TestServer {
    let server = Server::bind(config(extra).expect("valid config"))
        .await
        .expect("server binds");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    TestServer {
        base,
        http: http_client().expect("client"),
        shutdown: Some(tx),
        handle,
    }
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn dev_token(&self, user: &str) -> String {
        let res = self
            .http
            .post(self.url("/api/dev/token"))
            .header("content-type", "application/json")
            .body(json!({ "user": user }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(body["user_id"], user);
        body["token"].as_str().unwrap().to_owned()
    }

    async fn chatkit(&self, token: Option<&str>, body: impl Into<String>) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/chatkit"))
            .header("content-type", "application/json")
            .body(body.into());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("server stops in time")
            .expect("server task")
    }
}

fn create_body(text: &str) -> String {
    json!({"type":"threads.create","params":{"input":{
        "content":[{"type":"input_text","text":text}],
        "attachments":[],"inference_options":{}}}})
    .to_string()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The JSON events of an SSE body, checking the framing of each.
fn sse_events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.ends_with("\n\n"), "body ends with a blank line");
    text.split_terminator("\n\n")
        .map(|frame| {
            let json = frame
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("frame starts with `data: `: {frame:?}"));
            assert!(!json.contains('\n'), "one line per event");
            serde_json::from_str(json).unwrap()
        })
        .collect()
}

async fn error_body(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(header(&res, "content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body
}

#[tokio::test]
async fn streams_are_sse_with_no_buffering_headers_and_plain_requests_are_json() {
    let server = start(&[]).await;
    let token = server.dev_token("alice").await;

    let res = server
        .chatkit(Some(&token), create_body("add a task to buy milk"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(header(&res, "cache-control"), Some("no-cache"));
    assert_eq!(header(&res, "x-accel-buffering"), Some("no"));
    assert!(header(&res, "x-request-id").is_some_and(|id| id.len() >= 32));
    let events = sse_events(&res.bytes().await.unwrap());
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types[0], "thread.created");
    assert!(types.contains(&"thread.item.updated"));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "workflow"),
        "the tool call shows as a workflow"
    );
    let answer = events
        .iter()
        .rev()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "assistant_message")
        .expect("an assistant message");
    assert!(
        answer["item"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("buy milk")
    );

    let res = server
        .chatkit(Some(&token), r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), Some("application/json"));
    let page: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));

    // Another user sees nothing of alice's.
    let bob = server.dev_token("bob").await;
    let res = server
        .chatkit(Some(&bob), r#"{"type":"threads.list","params":{}}"#)
        .await;
    let page: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(0));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn http2_clients_with_prior_knowledge_stream_answers_too() {
    let server = start(&[]).await;
    let token = server.dev_token("alice").await;
    let h2 = chatkit_engine::http::client_builder()
        .unwrap()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    let res = h2
        .post(server.url("/chatkit"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(create_body("add a task to buy milk"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let events = sse_events(&res.bytes().await.unwrap());
    assert_eq!(events[0]["type"], "thread.created");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "assistant_message")
    );

    let res = h2.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_head_that_arrives_in_pieces_is_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(&[]).await;
    let body = json!({ "user": "alice" }).to_string();
    let request = format!(
        "POST /api/dev/token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    // "P" could still be the start of the HTTP/2 preface: the server has to
    // wait for more before it can tell.
    let (first, rest) = request.as_bytes().split_at(1);
    tcp.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(rest).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\"user_id\":\"alice\""), "{response}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn each_event_is_flushed_as_it_is_produced() {
    let server = start(&["--dev-stream-delay-ms", "80"]).await;
    let token = server.dev_token("alice").await;
    let started = Instant::now();
    let mut res = server
        .chatkit(Some(&token), create_body("add a task to buy milk"))
        .await;
    assert_eq!(res.status(), 200);
    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        arrivals.push(started.elapsed());
        body.extend_from_slice(&chunk);
    }
    let events = sse_events(&body);
    assert!(events.len() >= 10, "{} events", events.len());
    // Delivered one by one, not all at the end.
    assert!(arrivals.len() >= events.len() / 2, "{arrivals:?}");
    // The paced model waits 80 ms before each text delta, and the deltas
    // reach the client spread out by at least that much (a lower bound, so
    // a slow machine cannot fail it).
    let deltas = events
        .iter()
        .filter(|e| e["update"]["type"] == "assistant_message.content_part.text_delta")
        .count() as u64;
    assert!(deltas >= 3, "{deltas} text deltas");
    let first = arrivals[0];
    let last = *arrivals.last().unwrap();
    assert!(
        last - first >= Duration::from_millis(80 * (deltas - 1)),
        "first {first:?}, last {last:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn failures_are_json_errors_with_the_right_status() {
    let server = start(&["--max-body-bytes", "4096"]).await;
    let token = server.dev_token("alice").await;

    let res = server
        .chatkit(None, r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(header(&res, "www-authenticate"), Some("Bearer"));
    error_body(res, 401, "unauthorized").await;

    let res = server
        .http
        .post(server.url("/chatkit"))
        .header("authorization", "Basic YWxpY2U6cHc=")
        .body("{}")
        .send()
        .await
        .unwrap();
    error_body(res, 401, "unauthorized").await;

    let res = server
        .chatkit(
            Some("not.a.token"),
            r#"{"type":"threads.list","params":{}}"#,
        )
        .await;
    assert_eq!(res.status(), 401);

    let res = server.chatkit(Some(&token), "{not json").await;
    error_body(res, 400, "invalid_request").await;
    let res = server
        .chatkit(Some(&token), r#"{"type":"threads.nope","params":{}}"#)
        .await;
    error_body(res, 400, "invalid_request").await;

    let res = server
        .chatkit(
            Some(&token),
            r#"{"type":"threads.get_by_id","params":{"thread_id":"thr_missing"}}"#,
        )
        .await;
    error_body(res, 404, "not_found").await;
    // A streaming request on an unknown thread fails before the stream.
    let res = server
        .chatkit(
            Some(&token),
            json!({"type":"threads.add_user_message","params":{"thread_id":"thr_missing","input":{
                "content":[{"type":"input_text","text":"hi"}],"attachments":[],"inference_options":{}}}})
            .to_string(),
        )
        .await;
    error_body(res, 404, "not_found").await;

    let big = format!(
        r#"{{"type":"threads.list","params":{{}},"metadata":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let res = server.chatkit(Some(&token), big.clone()).await;
    error_body(res, 413, "payload_too_large").await;
    // Also without Content-Length (chunked upload).
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let res = server
        .http
        .post(server.url("/chatkit"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    error_body(res, 413, "payload_too_large").await;

    let res = server.http.get(server.url("/nope")).send().await.unwrap();
    error_body(res, 404, "not_found").await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_readiness_page_and_request_ids() {
    let server = start(&[]).await;
    let res = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), r#"{"status":"ok"}"#);
    let res = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), r#"{"status":"ready"}"#);

    let res = server
        .http
        .get(server.url("/"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-request-id"), Some("req-123"));
    assert_eq!(
        header(&res, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(header(&res, "content-security-policy").is_some_and(|c| c.contains("'self'")));
    let html = res.text().await.unwrap();
    assert!(html.contains("/static/app.js"));
    assert!(!html.contains("https://"), "nothing from a CDN");
    for (path, kind) in [
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ] {
        let res = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(header(&res, "content-type").is_some_and(|c| c.starts_with(kind)));
    }

    let res = server
        .http
        .get(server.url("/api/info"))
        .send()
        .await
        .unwrap();
    let info: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(info["identity"], "dev");
    assert_eq!(info["model"], "scripted-offline");
    assert_eq!(info["offline_model"], true);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cors_preflight_follows_the_configured_origins() {
    let server = start(&["--cors-origin", "http://app.example:3000"]).await;
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/chatkit"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let res = preflight("http://app.example:3000").await.unwrap();
    assert!(res.status().is_success());
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        Some("http://app.example:3000")
    );
    let allowed = header(&res, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(header(&res, "access-control-allow-methods").is_some_and(|m| m.contains("POST")));

    let res = preflight("http://evil.example").await.unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    server.stop().await.unwrap();

    // Without configuration, no CORS headers at all.
    let server = start(&[]).await;
    let res = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/chatkit"))
        .header("origin", "http://app.example:3000")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn development_identity_mode_cannot_be_switched_on_by_accident() {
    // Not on a non-loopback address.
    for host in ["0.0.0.0", "::"] {
        let mut argv = vec!["serve", "--host", host, "--database-url", "sqlite::memory:"];
        argv.push("--port");
        argv.push("0");
        let args = Args::try_parse_from(argv).unwrap();
        let err = ServeConfig::from_args(args, |_| None).unwrap_err();
        assert!(err.contains("refusing to start"), "{err}");
    }
    // Not when JWT configuration is present, from flags or the environment.
    let jwt = config(&["--jwt-secret", SECRET]).unwrap();
    assert_eq!(jwt.identity, IdentityMode::Jwt);
    let args = Args::try_parse_from(["serve", "--database-url", "sqlite::memory:"]).unwrap();
    let from_env = ServeConfig::from_args(args, |name| {
        (name == "JWKS").then(|| r#"{"keys":[]}"#.to_owned())
    })
    .unwrap();
    assert_eq!(from_env.identity, IdentityMode::Jwt);
    let err = config(&["--dev-stream-delay-ms", "5", "--jwt-secret", SECRET]).unwrap_err();
    assert!(err.contains("development identity mode"), "{err}");

    // A JWT server issues no dev tokens, and rejects those of a dev server.
    let dev = start(&[]).await;
    let dev_token = dev.dev_token("mallory").await;
    dev.stop().await.unwrap();
    let server = start(&["--jwt-secret", SECRET]).await;
    let res = server
        .http
        .post(server.url("/api/dev/token"))
        .header("content-type", "application/json")
        .body(r#"{"user":"mallory"}"#)
        .send()
        .await
        .unwrap();
    error_body(res, 404, "not_found").await;
    let res = server
        .chatkit(Some(&dev_token), r#"{"type":"threads.list","params":{}}"#)
        .await;
    assert_eq!(res.status(), 401);
    let res = server
        .http
        .get(server.url("/api/info"))
        .send()
        .await
        .unwrap();
    let info: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(info["identity"], "jwt");
    server.stop().await.unwrap();

    // The dev sign-in wants JSON (a cross-site form post cannot mint tokens).
    let dev = start(&[]).await;
    let res = dev
        .http
        .post(dev.url("/api/dev/token"))
        .header("content-type", "text/plain")
        .body(r#"{"user":"mallory"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    dev.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_a_running_turn_finish() {
    let server = start(&["--dev-stream-delay-ms", "60"]).await;
    let token = server.dev_token("alice").await;
    let mut res = server
        .chatkit(Some(&token), create_body("add a task to buy milk"))
        .await;
    let mut body = res.chunk().await.unwrap().unwrap().to_vec();
    // Shut down while the answer is still streaming.
    let TestServer {
        base,
        http,
        mut shutdown,
        handle,
    } = server;
    if let Some(tx) = shutdown.take() {
        let _ = tx.send(());
    }
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let events = sse_events(&body);
    assert!(events.iter().all(|e| e["type"] != "error"));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "assistant_message")
    );
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(http.get(format!("{base}/healthz")).send().await.is_err());
}

#[tokio::test]
async fn shutdown_deadline_ends_streams_with_a_retryable_error() {
    let server = start(&["--dev-stream-delay-ms", "300", "--shutdown-grace-secs", "0"]).await;
    let token = server.dev_token("alice").await;
    let mut res = server
        .chatkit(Some(&token), create_body("add a task to buy milk"))
        .await;
    let mut body = res.chunk().await.unwrap().unwrap().to_vec();
    let stopping = tokio::spawn(server.stop());
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let events = sse_events(&body);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["allow_retry"], true);
    assert!(events.len() < 10, "the stream was cut short");
    stopping.await.unwrap().unwrap();
}

/// What the fake ChatKit sessions API saw.
#[derive(Default)]
struct Seen {
    headers: Vec<(String, String)>,
    bodies: Vec<Value>,
}

async fn fake_sessions_api(fail: bool) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chatkit/sessions",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let recorder = Arc::clone(&recorder);
            async move {
                let mut seen = recorder.lock().unwrap();
                for name in ["authorization", "openai-beta", "content-type"] {
                    let value = headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    seen.headers.push((name.to_owned(), value.to_owned()));
                }
                seen.bodies.push(body.clone());
                let n = seen.bodies.len();
                if fail {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        Json(json!({"error":{"message":"Workflow not found","type":"invalid_request_error"}})),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    Json(json!({
                        "id": format!("cksess_{n}"),
                        "object": "chatkit.session",
                        "client_secret": format!("ek_secret_{n}"),
                        "expires_at": 1_900_000_000 + n,
                        "workflow": body["workflow"],
                        "user": body["user"],
                        "rate_limits": {"max_requests_per_1_minute": 10},
                        "max_requests_per_1_minute": 10,
                        "status": "active",
                        "chatkit_configuration": {}
                    })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

/// `serve` with hosted sessions of `workflow` on the fake API at `api`, and
/// alice's development token.
async fn start_hosted(api: &str, workflow: &str) -> (TestServer, String) {
    let server = start(&[
        "--openai-api-key",
        "sk-test-key",
        "--chatkit-workflow-id",
        workflow,
        "--chatkit-api-base",
        api,
    ])
    .await;
    let token = server.dev_token("alice").await;
    (server, token)
}

#[tokio::test]
async fn hosted_sessions_are_created_through_the_chatkit_sessions_api() {
    let (api, seen) = fake_sessions_api(false).await;
    let (server, token) = start_hosted(&api, "wf_123").await;

    let res = server
        .http
        .post(server.url("/chatkit/session"))
        .send()
        .await
        .unwrap();
    error_body(res, 401, "unauthorized").await;
    assert!(
        seen.lock().unwrap().bodies.is_empty(),
        "no call without a user"
    );

    for (path, n) in [("/chatkit/session", 1), ("/chatkit/session/refresh", 2)] {
        let res = server
            .http
            .post(server.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(body["client_secret"], format!("ek_secret_{n}"));
        assert_eq!(body["expires_at"], 1_900_000_000 + n);
        assert_eq!(body["session_id"], format!("cksess_{n}"));
    }
    let (bodies, headers) = {
        let seen = seen.lock().unwrap();
        (seen.bodies.clone(), seen.headers.clone())
    };
    assert_eq!(
        bodies[0],
        json!({"workflow":{"id":"wf_123"},"user":"alice"})
    );
    let headers: std::collections::HashMap<_, _> = headers.into_iter().collect();
    assert_eq!(headers["authorization"], "Bearer sk-test-key");
    assert_eq!(headers["openai-beta"], "chatkit_beta=v1");
    assert_eq!(headers["content-type"], "application/json");
    server.stop().await.unwrap();

    // Upstream failures are 502 JSON errors that never echo the key.
    let (api, _) = fake_sessions_api(true).await;
    let (server, token) = start_hosted(&api, "wf_missing").await;
    let res = server
        .http
        .post(server.url("/chatkit/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = error_body(res, 502, "upstream_error").await;
    assert!(body.to_string().contains("Workflow not found"));
    assert!(!body.to_string().contains("sk-test-key"));
    server.stop().await.unwrap();

    // Not configured: 501.
    let server = start(&[]).await;
    let token = server.dev_token("alice").await;
    let res = server
        .http
        .post(server.url("/chatkit/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    error_body(res, 501, "not_supported").await;
    server.stop().await.unwrap();
}

/// The JSON-RPC messages of an MCP HTTP response (JSON or SSE).
async fn mcp_messages(res: reqwest::Response) -> Vec<Value> {
    let is_sse = header(&res, "content-type").is_some_and(|c| c.starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    if is_sse {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim)
            .filter(|data| !data.is_empty())
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    } else {
        vec![serde_json::from_str(&text).unwrap()]
    }
}

#[tokio::test]
async fn mcp_endpoint_serves_the_task_tools_to_authenticated_users() {
    let server = start(&[]).await;
    let rpc = |token: Option<&str>, session: Option<&str>, body: Value| {
        let mut req = server
            .http
            .post(server.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(session) = session {
            req = req
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        req.send()
    };
    let initialize = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"serve-test","version":"0"}}});

    let res = rpc(None, None, initialize.clone()).await.unwrap();
    assert_eq!(header(&res, "www-authenticate"), Some("Bearer"));
    error_body(res, 401, "unauthorized").await;

    let token = server.dev_token("alice").await;
    let res = rpc(Some(&token), None, initialize).await.unwrap();
    assert_eq!(res.status(), 200);
    let session = header(&res, "mcp-session-id").map(str::to_owned);
    let messages = mcp_messages(res).await;
    assert!(
        messages
            .iter()
            .any(|m| m["id"] == 1 && m["result"]["serverInfo"].is_object()),
        "{messages:?}"
    );

    let res = rpc(
        Some(&token),
        session.as_deref(),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await
    .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let res = rpc(
        Some(&token),
        session.as_deref(),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let messages = mcp_messages(res).await;
    let tools: Vec<&str> = messages
        .iter()
        .find(|m| m["id"] == 2)
        .and_then(|m| m["result"]["tools"].as_array())
        .map(|tools| tools.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        tools.contains(&"create_task") && tools.contains(&"list_tasks"),
        "{tools:?}"
    );
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------
// Attacks found by the adversarial pass, one case each.

/// An HS256 token for `claims`, signed with [`SECRET`] (a server started
/// with `--jwt-secret SECRET` accepts it).
fn hs256(claims: &Value) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A token for `sub`, valid for ten minutes.
fn token_for(sub: &str) -> String {
    let now = chatkit_engine_examples::serve::dev_identity::unix_now();
    hs256(&json!({"sub": sub, "iat": now, "exp": now + 600}))
}

/// Sends `request` (a whole HTTP/1.1 request with `connection: close`) over
/// a fresh TCP connection and reads the answer until the server closes.
async fn raw_http(server: &TestServer, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut response))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// A JSON-RPC POST to `/mcp` as `token`, in `session` when given.
async fn mcp_post(
    server: &TestServer,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = server
        .http
        .post(server.url("/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(session) = session {
        req = req
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18");
    }
    req.send().await.unwrap()
}

/// Opens an MCP session as `token` and returns its id.
async fn mcp_open(server: &TestServer, token: &str) -> String {
    let initialize = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"serve-test","version":"0"}}});
    let res = mcp_post(server, token, None, initialize).await;
    assert_eq!(res.status(), 200);
    let session = header(&res, "mcp-session-id").unwrap().to_owned();
    mcp_messages(res).await;
    let res = mcp_post(
        server,
        token,
        Some(&session),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert!(res.status().is_success(), "{}", res.status());
    session
}

/// The result of one `tools/call` in `session`.
async fn mcp_call(
    server: &TestServer,
    token: &str,
    session: &str,
    name: &str,
    args: Value,
) -> Value {
    let res = mcp_post(
        server,
        token,
        Some(session),
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":name,"arguments":args}}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let messages = mcp_messages(res).await;
    messages
        .into_iter()
        .find(|m| m["id"] == 7)
        .map(|m| m["result"].clone())
        .expect("a result")
}

/// A log writer the test can read back.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Finding 1: a newline in a logged value started a fake log line (text
/// format). Every request-borne value that reaches a log goes through here
/// with newlines and control characters, in both formats.
#[tokio::test]
async fn hostile_values_never_start_a_log_line_in_either_log_format() {
    for format in [LogFormat::Text, LogFormat::Json] {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let _guard = tracing::subscriber::set_default(logging::subscriber(
            format,
            "debug,hyper=info,h2=info,sqlx=warn",
            false,
            move || writer.clone(),
        ));
        let server = start(&["--jwt-secret", SECRET]).await;
        let alice = token_for("alice");
        let forged = "x\nERROR FORGED line\r\n\u{1b}[2J\u{85}\u{2028}\t\u{0}end";

        // A request type, a thread id and a title that end up in error
        // messages and log fields.
        for body in [
            json!({"type": forged, "params": {}}),
            json!({"type": "threads.get_by_id", "params": {"thread_id": forged}}),
            json!({"type": "threads.update", "params": {"thread_id": "thr_1", "title": forged}}),
            json!({"type": "items.list", "params": {"thread_id": "thr_missing", "after": forged}}),
        ] {
            let res = server.chatkit(Some(&alice), body.to_string()).await;
            assert_eq!(res.status(), 400, "{body}");
        }
        // A token whose sub holds a newline, and a request id with a tab and
        // a C1 control (the header's raw bytes).
        let res = server
            .chatkit(
                Some(&token_for(forged)),
                r#"{"type":"threads.list","params":{}}"#,
            )
            .await;
        error_body(res, 400, "invalid_request").await;
        let res = server
            .http
            .get(server.url("/healthz"))
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(b"req\tFORGED\x85id").unwrap(),
            )
            .send()
            .await
            .unwrap();
        error_body(res, 400, "invalid_request").await;
        // A path, an MCP tool name, MCP arguments and a session id.
        let res = server
            .http
            .get(server.url("/nope%0AERROR%20FORGED"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        let session = mcp_open(&server, &alice).await;
        let result = mcp_call(
            &server,
            &alice,
            &session,
            "create_task",
            json!({"title": forged}),
        )
        .await;
        assert_eq!(result["isError"], true);
        let res = mcp_post(
            &server,
            &alice,
            Some(&session),
            json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":forged,"arguments":{}}}),
        )
        .await;
        mcp_messages(res).await;
        let res = server
            .http
            .post(server.url("/mcp"))
            .bearer_auth(&alice)
            .header("mcp-session-id", "sess\tFORGED")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        server.stop().await.unwrap();

        let text = logs.text();
        assert!(
            text.lines().count() > 10,
            "{format:?}: the requests were logged:\n{text}"
        );
        for line in text.lines() {
            assert!(
                !line.contains(|c: char| chatkit_engine::validate::is_unsafe(c)),
                "{format:?}: a raw control character in {line:?}"
            );
            match format {
                LogFormat::Text => {
                    let mut words = line.split(' ').filter(|w| !w.is_empty());
                    let (time, level) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    assert!(
                        time.starts_with("20") && time.ends_with('Z'),
                        "a line that does not start with a timestamp: {line:?}"
                    );
                    assert!(
                        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
                        "{line:?}"
                    );
                }
                LogFormat::Json => {
                    let event: Value = serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line:?}"));
                    assert!(event["timestamp"].is_string() && event["level"].is_string());
                }
            }
        }
        // The hostile request type did reach the log, escaped.
        match format {
            LogFormat::Text => assert!(
                text.contains(r"x\nERROR FORGED line\r\n\u{1b}[2J"),
                "{text}"
            ),
            LogFormat::Json => assert!(
                text.contains(r"x\nERROR FORGED line\r\n\u001b[2J"),
                "{text}"
            ),
        }
    }
}

/// Sends the head of a POST announcing a large body, then `trickle`s body
/// bytes every 100 ms until the server answers; returns everything the
/// server sent until it closed the connection.
async fn send_slow_body(server: &TestServer, path: &str, token: &str, trickle: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: 100000\r\n\r\n{{\"type\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let mut writing = true;
    // Generous: the deadline in these tests is 1 s.
    let until = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    writing = false;
                    response.extend_from_slice(&buf[..n]);
                }
            },
            () = tokio::time::sleep(Duration::from_millis(100)), if writing && trickle => {
                if tcp.write_all(b" ").await.is_err() {
                    writing = false;
                }
            }
            () = tokio::time::sleep_until(until) => panic!(
                "the connection was still open after 90 s: {}",
                String::from_utf8_lossy(&response)
            ),
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// Finding 2: a body trickled by a client with a valid token kept its
/// connection and task open (70 s on /chatkit, 45 s on /mcp).
#[tokio::test]
async fn a_trickled_body_is_cut_off_after_the_deadline() {
    let server = start(&[
        "--request-body-timeout-secs",
        "1",
        "--request-body-idle-secs",
        "1",
    ])
    .await;
    let token = server.dev_token("alice").await;
    for path in ["/chatkit", "/mcp"] {
        let response = send_slow_body(&server, path, &token, true).await;
        assert!(response.starts_with("HTTP/1.1 408 "), "{path}: {response}");
        let lower = response.to_ascii_lowercase();
        assert!(
            lower.contains("\r\nconnection: close\r\n"),
            "{path}: {response}"
        );
        assert!(
            response.contains(r#""code":"request_timeout""#),
            "{path}: {response}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_the_idle_deadline() {
    let server = start(&["--request-body-idle-secs", "1"]).await;
    let token = server.dev_token("alice").await;
    for path in ["/chatkit", "/mcp"] {
        let response = send_slow_body(&server, path, &token, false).await;
        assert!(response.starts_with("HTTP/1.1 408 "), "{path}: {response}");
        assert!(response.contains("stalled"), "{path}: {response}");
    }
    server.stop().await.unwrap();
}

/// Finding 3: in development identity mode a web page the developer visits
/// could mint tokens (DNS rebinding: its requests name the attacker's host;
/// a cross-site page: its Origin).
#[tokio::test]
async fn development_sign_in_answers_only_a_loopback_host_and_its_own_origin() {
    let server = start(&[]).await;
    let authority = server.base.trim_start_matches("http://").to_owned();
    let port = authority.rsplit(':').next().unwrap().to_owned();
    let sign_in = |host: Option<String>, origin: Option<String>| {
        let mut req = server
            .http
            .post(server.url("/api/dev/token"))
            .header("content-type", "application/json")
            .body(r#"{"user":"mallory"}"#);
        if let Some(host) = host {
            req = req.header("host", host);
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send()
    };
    for (host, origin) in [
        (Some(format!("rebound.example:{port}")), None),
        (
            Some(format!("rebound.example:{port}")),
            Some(format!("http://rebound.example:{port}")),
        ),
        (Some("192.0.2.5".to_owned()), None),
        (None, Some("https://evil.example".to_owned())),
        (None, Some("null".to_owned())),
        (None, Some(format!("http://localhost:{port}"))),
        (None, Some(format!("https://{authority}"))),
    ] {
        let res = sign_in(host.clone(), origin.clone()).await.unwrap();
        error_body(res, 403, "forbidden").await;
        let _ = (host, origin);
    }
    for (host, origin) in [
        (None, None),
        (None, Some(format!("http://{authority}"))),
        (
            Some(format!("localhost:{port}")),
            Some(format!("http://localhost:{port}")),
        ),
        (Some(format!("[::1]:{port}")), None),
    ] {
        let res = sign_in(host.clone(), origin.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{host:?} {origin:?}");
    }
    // The page's other API too.
    let res = server
        .http
        .get(server.url("/api/info"))
        .header("host", format!("rebound.example:{port}"))
        .send()
        .await
        .unwrap();
    error_body(res, 403, "forbidden").await;
    server.stop().await.unwrap();

    // With real tokens there is nothing to mint, and no such rule.
    let server = start(&["--jwt-secret", SECRET]).await;
    let res = server
        .http
        .get(server.url("/api/info"))
        .header("host", "app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.stop().await.unwrap();
}

/// Finding 4: another user's MCP session id ran requests (as the caller)
/// and its DELETE ended the other user's session.
#[tokio::test]
async fn an_mcp_session_belongs_to_the_user_who_opened_it() {
    let server = start(&["--mcp-max-sessions-per-user", "2"]).await;
    let alice = server.dev_token("alice").await;
    let bob = server.dev_token("bob").await;
    let session = mcp_open(&server, &alice).await;
    let created = mcp_call(
        &server,
        &alice,
        &session,
        "create_task",
        json!({"title": "Alice's"}),
    )
    .await;
    assert_eq!(created["isError"], false);

    let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_tasks","arguments":{}}});
    let res = mcp_post(&server, &bob, Some(&session), list.clone()).await;
    assert_eq!(res.status(), 404);
    let unknown = mcp_post(&server, &bob, Some("no-such-session"), list.clone()).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        res.text().await.unwrap(),
        unknown.text().await.unwrap(),
        "indistinguishable"
    );
    let res = server
        .http
        .get(server.url("/mcp"))
        .bearer_auth(&bob)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = server
        .http
        .delete(server.url("/mcp"))
        .bearer_auth(&bob)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Alice's session is untouched.
    let listed = mcp_call(&server, &alice, &session, "list_tasks", json!({})).await;
    assert!(listed.to_string().contains("Alice's"), "{listed}");

    // The cap: two sessions each; ending one frees its slot.
    let second = mcp_open(&server, &alice).await;
    let initialize = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}});
    let res = mcp_post(&server, &alice, None, initialize.clone()).await;
    error_body(res, 429, "too_many_sessions").await;
    mcp_open(&server, &bob).await;
    let res = server
        .http
        .delete(server.url("/mcp"))
        .bearer_auth(&alice)
        .header("mcp-session-id", &second)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    mcp_open(&server, &alice).await;
    server.stop().await.unwrap();
}

/// Finding 5: NUL and control characters in identities and text, unbounded
/// `sub` and `x-request-id`, and a silent choice between two Authorization
/// headers.
#[tokio::test]
async fn hostile_identities_and_headers_are_refused_with_400() {
    let server = start(&["--jwt-secret", SECRET]).await;
    let alice = token_for("alice");
    let list = r#"{"type":"threads.list","params":{}}"#;
    for sub in [
        "mallory\u{0}",
        "mallory\nadmin",
        "\u{1b}[31m",
        &"m".repeat(5_000),
    ] {
        let res = server.chatkit(Some(&token_for(sub)), list).await;
        error_body(res, 400, "invalid_request").await;
        let res = mcp_post(
            &server,
            &token_for(sub),
            None,
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}),
        )
        .await;
        error_body(res, 400, "invalid_request").await;
    }
    let res = server
        .chatkit(Some(&token_for(&"m".repeat(256))), list)
        .await;
    assert_eq!(res.status(), 200, "256 characters are allowed");

    // Two Authorization headers, on both endpoints, whichever comes first.
    for path in ["/chatkit", "/mcp"] {
        for (first, second) in [(alice.as_str(), "bogus"), ("bogus", alice.as_str())] {
            let body = list;
            let request = format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {first}\r\n\
                 authorization: Bearer {second}\r\ncontent-type: application/json\r\n\
                 accept: application/json, text/event-stream\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let response = raw_http(&server, request.as_bytes()).await;
            assert!(response.starts_with("HTTP/1.1 400 "), "{path}: {response}");
            assert!(
                response.contains(r#""code":"invalid_request""#),
                "{response}"
            );
        }
    }

    // An x-request-id of 100 KB is refused, neither echoed nor kept.
    let res = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "r".repeat(100_000))
        .send()
        .await
        .unwrap();
    let echoed = header(&res, "x-request-id").unwrap_or_default().to_owned();
    assert_eq!(
        echoed.len(),
        36,
        "a fresh id instead: {}",
        &echoed[..echoed.len().min(64)]
    );
    error_body(res, 400, "invalid_request").await;
    let res = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "r".repeat(200))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // An MCP task title with NUL is refused before the store (both stores:
    // see core/tests/isolation.rs).
    let session = mcp_open(&server, &alice).await;
    let result = mcp_call(
        &server,
        &alice,
        &session,
        "create_task",
        json!({"title": "a\u{0}b"}),
    )
    .await;
    assert_eq!(result["isError"], true);
    assert_eq!(
        result["structuredContent"]["error"]["code"],
        "invalid_request"
    );
    let listed = mcp_call(&server, &alice, &session, "list_tasks", json!({})).await;
    assert!(!listed.to_string().contains("a\\u0000b"), "{listed}");
    server.stop().await.unwrap();
}

/// Finding 6: the busy-thread error was a `custom` error clients could only
/// tell apart by its text.
#[tokio::test]
async fn a_busy_thread_answers_with_an_error_event_clients_can_match() {
    let server = start(&["--dev-stream-delay-ms", "300"]).await;
    let token = server.dev_token("alice").await;
    let mut first = server
        .chatkit(Some(&token), create_body("add a task to buy milk"))
        .await;
    let mut head = Vec::new();
    let thread_id = loop {
        head.extend_from_slice(&first.chunk().await.unwrap().expect("the first event"));
        if let Some(frame) = std::str::from_utf8(&head)
            .ok()
            .and_then(|t| t.split_once("\n\n"))
        {
            let event: Value = serde_json::from_str(frame.0.trim_start_matches("data: ")).unwrap();
            break event["thread"]["id"].as_str().unwrap().to_owned();
        }
    };
    let res = server
        .chatkit(
            Some(&token),
            json!({"type":"threads.add_user_message","params":{"thread_id":thread_id,"input":{
                "content":[{"type":"input_text","text":"again"}],"attachments":[],"inference_options":{}}}})
            .to_string(),
        )
        .await;
    assert_eq!(res.status(), 200);
    let events = sse_events(&res.bytes().await.unwrap());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "error");
    assert_eq!(events[0]["code"], "custom");
    assert_eq!(events[0]["reason"], "thread_busy");
    assert_eq!(events[0]["allow_retry"], true);
    while first.chunk().await.unwrap().is_some() {}
    server.stop().await.unwrap();
}

#[tokio::test]
async fn chatkit_is_answered_at_the_apps_api_path_as_well_as_chatkit() {
    let server = start(&[]).await;
    let token = server.dev_token("alice").await;
    for path in ["/chatkit", "/api/chatkit"] {
        let res = server
            .http
            .post(server.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(r#"{"type":"threads.list","params":{}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    server.stop().await.unwrap();

    let server = start(&["--chatkit-path", "/backend/chat"]).await;
    let token = server.dev_token("alice").await;
    let res = server
        .http
        .post(server.url("/backend/chat"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"type":"threads.list","params":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.stop().await.unwrap();
    let err = config(&["--chatkit-path", "api/chatkit"]).unwrap_err();
    assert!(err.contains("CHATKIT_PATH"), "{err}");
}

#[tokio::test]
async fn better_auth_url_alone_sets_jwks_issuer_and_audience_and_explicit_settings_win() {
    let args = Args::try_parse_from(["serve", "--database-url", "sqlite::memory:"]).unwrap();
    let config = ServeConfig::from_args(args, |name| {
        (name == "BETTER_AUTH_URL").then(|| "https://app.example.com".to_owned())
    });
    // clap reads BETTER_AUTH_URL itself in a real process; here the engine's
    // environment lookup does.
    let config = config.unwrap();
    assert_eq!(config.identity, IdentityMode::Jwt);
    assert_eq!(
        config.engine.jwks_url.as_deref(),
        Some("https://app.example.com/api/auth/jwks")
    );
    assert_eq!(
        config.engine.jwt_issuer.as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(config.engine.jwt_audience, ["https://app.example.com"]);

    let config = config_with_auth(&[
        "--better-auth-url",
        "https://app.example.com/",
        "--jwt-audience",
        "chat-backend",
    ]);
    assert_eq!(config.engine.jwt_audience, ["chat-backend"]);
    assert_eq!(
        config.engine.jwt_issuer.as_deref(),
        Some("https://app.example.com")
    );
}

fn config_with_auth(extra: &[&str]) -> ServeConfig {
    let mut argv = vec!["serve", "--database-url", "sqlite::memory:"];
    argv.extend_from_slice(extra);
    let mut args = Args::try_parse_from(argv).unwrap();
    args.jwks_url = None;
    args.jwt_issuer = None;
    args.jwt_secret = None;
    ServeConfig::from_args(args, |_| None).unwrap()
}

#[tokio::test]
async fn metrics_are_served_on_loopback_behind_a_token_or_on_their_own_address() {
    // Loopback, nothing set: on the main port, counting the turn that ran.
    let server = start(&[]).await;
    let token = server.dev_token("alice").await;
    let res = server.chatkit(Some(&token), create_body("hello")).await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    let res = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        header(&res, "content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE chatkit_turns_started_total counter"),
        "{text}"
    );
    assert!(
        text.contains("chatkit_turns_finished_total{outcome=\"completed\"}"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE chatkit_turn_duration_seconds histogram"),
        "{text}"
    );
    server.stop().await.unwrap();

    // Behind a token.
    let metrics_token = "metrics-0123456789abcdef";
    let server = start(&["--metrics-token", metrics_token]).await;
    let res = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    error_body(res, 401, "unauthorized").await;
    let res = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("metrics-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    error_body(res, 401, "unauthorized").await;
    let res = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(metrics_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.stop().await.unwrap();

    // On an address of its own: not on the main port.
    let bound = Server::bind(config(&["--metrics-addr", "127.0.0.1:0"]).unwrap())
        .await
        .unwrap();
    let main = format!("http://{}", bound.local_addr());
    let metrics = format!("http://{}/metrics", bound.metrics_addr().unwrap());
    assert!(bound.banner().contains(&metrics), "{}", bound.banner());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(bound.run_until(async move {
        let _ = rx.await;
    }));
    let http = http_client().unwrap();
    let res = http.get(format!("{main}/metrics")).send().await.unwrap();
    error_body(res, 404, "not_found").await;
    let res = http.get(&metrics).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = tx.send(());
    handle.await.unwrap().unwrap();

    let err = config(&["--metrics-token", "short"]).unwrap_err();
    assert!(err.contains("METRICS_TOKEN"), "{err}");
    let err = config(&["--metrics-addr", "nowhere"]).unwrap_err();
    assert!(err.contains("METRICS_ADDR"), "{err}");
}

#[tokio::test]
async fn the_demo_page_reads_the_callers_token_usage() {
    let server = start(&[]).await;
    let token = server.dev_token("alice").await;
    let res = server
        .chatkit(Some(&token), create_body("add task buy milk"))
        .await;
    let events = sse_events(&res.bytes().await.unwrap());
    let thread_id = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    let res = server
        .http
        .get(server.url(&format!("/api/usage?thread_id={thread_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let usage: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(usage["today"]["turns"], 1);
    assert_eq!(usage["thread"]["turns"], 1);
    assert_eq!(
        usage["today"]["estimated"], true,
        "the offline model reports no usage"
    );
    assert!(usage["today"]["input_tokens"].as_u64().unwrap() > 0);
    let res = server
        .http
        .get(server.url("/api/usage"))
        .send()
        .await
        .unwrap();
    error_body(res, 401, "unauthorized").await;
    let bob = server.dev_token("bob").await;
    let res = server
        .http
        .get(server.url(&format!("/api/usage?thread_id={thread_id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    error_body(res, 404, "not_found").await;
    let page = server
        .http
        .get(server.url("/static/app.js"))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("/api/usage"));
    server.stop().await.unwrap();
}
