//! Several `serve` replicas on one PostgreSQL database, every query through a
//! transaction-mode PgBouncer, behind no load balancer at all: each request
//! picks its replica, so nothing can be sticky.
//!
//! - Three replicas started at once on a fresh database apply the
//!   migrations exactly once (over the direct URL).
//! - Two messages sent at once to one thread through two replicas: one
//!   answer and one `thread_busy`, and the thread holds one whole answer per
//!   accepted message, never two interleaved.
//! - The replica running a turn is killed with SIGKILL: the thread is usable
//!   from another replica once the lease expires (no `thread_busy` for a
//!   request sent later than the lease time plus 5 s after the kill), and
//!   every item completed before the kill is stored.
//! - MCP over Streamable HTTP (stateless): `initialize`, `tools/list` and
//!   `tools/call` of one client each land on a different replica and work.
//! - `loadtest` with `--url` three times (round-robin): 32 users x 100 turns
//!   with no error; the same run while one replica is killed and restarted
//!   mid-run has errors only on that replica's streams, each a clean one,
//!   and loses no stored item.
//!
//! `#[ignore]`d: they need the pooler that `scripts/stages/35-replicas.sh`
//! starts (`CHATKIT_TEST_POOLER_URL`); the PostgreSQL server itself comes
//! from `DATABASE_URL` as in every other test. The only mock is the model
//! provider (the load tool's local OpenAI-compatible server).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../src/loadtest/mod.rs"]
mod loadtest;

use loadtest::client;
use loadtest::provider::{FakeProvider, HOLD_MARKER, ProviderConfig, TOOL_MARKER};
use loadtest::server::ServeChild;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SECRET: &str = "replicas-test-secret-0123456789abcdef012345678";
/// Short, so a dead replica's thread comes back quickly in the tests.
const LEASE_SECS: u64 = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn pooler_url() -> String {
    std::env::var("CHATKIT_TEST_POOLER_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
        .expect("CHATKIT_TEST_POOLER_URL (run by scripts/stages/35-replicas.sh)")
}

fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chatkit-replicas-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh database, its direct and pooled URLs; dropped with the value.
struct Database {
    name: String,
    direct: String,
    pooled: String,
}

impl Database {
    async fn create() -> Self {
        let name = format!("chatkit_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self {
            direct: with_database(&admin_url(), &name),
            pooled: with_database(&pooler_url(), &name),
            name,
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut conn = PgConnection::connect(&self.direct).await.unwrap();
        let value: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        value
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The environment of one replica: pooled URL for traffic, direct URL for
/// migrations, shared JWT secret, short leases.
fn replica_env(db: &Database, provider: &FakeProvider, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.pooled.clone()),
        ("DATABASE_URL_DIRECT", db.direct.clone()),
        ("DATABASE_POOLER", "transaction".to_owned()),
        ("TURN_LEASE_SECS", LEASE_SECS.to_string()),
        ("OPENAI_API_KEY", "replicas-key".to_owned()),
        ("OPENAI_BASE_URL", provider.base_url()),
        ("CHAT_MODEL", "replicas-model".to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("SHUTDOWN_GRACE_SECS", "2".to_owned()),
        ("PORT", port.to_string()),
        ("MCP_STATELESS", "true".to_owned()),
    ]
}

fn start_replica(
    db: &Database,
    provider: &FakeProvider,
    dir: &Path,
    index: usize,
    port: u16,
) -> ServeChild {
    ServeChild::spawn(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &replica_env(db, provider, port),
        &dir.join(format!("replica-{index}.log")),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("replica {index} does not start: {e}"))
}

/// Three replicas started at the same moment (they race for the migration).
fn start_replicas(db: &Database, provider: &FakeProvider, dir: &Path) -> Vec<ServeChild> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|i| scope.spawn(move || start_replica(db, provider, dir, i, 0)))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

/// One whole streamed turn: every SSE frame, parsed.
async fn turn(http: &reqwest::Client, base: &str, token: &str, body: String) -> Vec<Value> {
    let res = http
        .post(format!("{base}/chatkit"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = tokio::time::timeout(REQUEST_TIMEOUT, res.text())
        .await
        .expect("the turn ends")
        .unwrap();
    text.split("\n\n")
        .filter_map(|frame| frame.trim().strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}

fn is_busy(frames: &[Value]) -> bool {
    frames.len() == 1 && frames[0]["type"] == "error" && frames[0]["reason"] == "thread_busy"
}

fn has_error(frames: &[Value]) -> bool {
    frames.iter().any(|frame| frame["type"] == "error")
}

/// The streamed answer's text: its deltas joined.
fn answer_text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|frame| frame["update"]["type"] == "assistant_message.content_part.text_delta")
        .map(|frame| frame["update"]["delta"].as_str().unwrap())
        .collect()
}

async fn items(http: &reqwest::Client, base: &str, token: &str, thread_id: &str) -> Vec<Value> {
    let (_, page) = client::json_request(
        http,
        &format!("{base}/chatkit"),
        token,
        client::items_list_body(thread_id, 200),
        REQUEST_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("items.list fails: {e}"));
    page["data"].as_array().cloned().unwrap_or_default()
}

fn text_of(item: &Value) -> String {
    item["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["text"].as_str())
        .collect()
}

fn created_thread(frames: &[Value]) -> String {
    frames
        .iter()
        .find(|f| f["type"] == "thread.created")
        .and_then(|f| f["thread"]["id"].as_str())
        .expect("thread.created")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the pooler of scripts/stages/35-replicas.sh"]
async fn replicas_migrate_once_and_a_thread_answers_one_of_two_messages_sent_at_once() {
    let dir = temp_dir("busy");
    let db = Database::create().await;
    // Slow enough that two requests sent together overlap.
    let provider = FakeProvider::start(
        ProviderConfig {
            answer_tokens: 20,
            token_delay: Duration::from_millis(100),
        },
        0,
    )
    .await
    .unwrap();
    let replicas = start_replicas(&db, &provider, &dir);
    // Every migration of the release is recorded exactly once, although
    // three replicas started on the database at the same time.
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/migrations/postgres"
    ))
    .unwrap()
    .count() as i64;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM chatkit._sqlx_migrations WHERE success")
            .await,
        migrations,
        "each migration applied once"
    );
    let bases: Vec<String> = replicas.iter().map(ServeChild::base_url).collect();
    let http = client::http_client().unwrap();
    let token = client::sign_token(SECRET, "busy-user").unwrap();

    let first = turn(&http, &bases[0], &token, client::create_body("hello")).await;
    assert!(!has_error(&first), "{first:?}");
    let thread_id = created_thread(&first);

    let mut accepted: Vec<(String, String)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut busy_rounds = 0;
    for round in 0..4 {
        let (a, b) = (round % 3, (round + 1) % 3);
        let (text_a, text_b) = (
            format!("round {round} via {a}"),
            format!("round {round} via {b}"),
        );
        let (frames_a, frames_b) = tokio::join!(
            turn(
                &http,
                &bases[a],
                &token,
                client::add_message_body(&thread_id, &text_a)
            ),
            turn(
                &http,
                &bases[b],
                &token,
                client::add_message_body(&thread_id, &text_b)
            ),
        );
        for (text, frames) in [(text_a, &frames_a), (text_b, &frames_b)] {
            if is_busy(frames) {
                refused.push(text);
            } else {
                assert!(!has_error(frames), "a turn failed: {frames:?}");
                accepted.push((text, answer_text(frames)));
            }
        }
        // Both may only succeed when one ended before the other started.
        if is_busy(&frames_a) || is_busy(&frames_b) {
            busy_rounds += 1;
            assert!(
                !(is_busy(&frames_a) && is_busy(&frames_b)),
                "both requests were refused"
            );
        }
    }
    assert!(
        busy_rounds > 0,
        "two messages sent at once never met a busy thread"
    );

    // The thread, read through a third replica: every accepted message once,
    // followed by its whole answer; no refused message at all.
    let stored = items(&http, &bases[2], &token, &thread_id).await;
    let users: Vec<String> = stored
        .iter()
        .filter(|i| i["type"] == "user_message")
        .map(text_of)
        .collect();
    for text in &refused {
        assert!(
            !users.contains(text),
            "the refused message {text} was stored"
        );
    }
    for (text, answer) in &accepted {
        let at = stored
            .iter()
            .position(|i| i["type"] == "user_message" && &text_of(i) == text)
            .unwrap_or_else(|| panic!("accepted message {text} is missing"));
        let next = &stored[at + 1];
        assert_eq!(next["type"], "assistant_message", "{stored:?}");
        assert_eq!(&text_of(next), answer, "the answer to {text} is not whole");
    }
    assert_eq!(
        stored
            .iter()
            .filter(|i| i["type"] == "assistant_message")
            .count(),
        accepted.len() + 1
    );
    // Every turn released its lease.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM chatkit.chat_turn_leases")
            .await,
        0
    );

    drop(replicas);
    provider.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the pooler of scripts/stages/35-replicas.sh"]
async fn a_replica_killed_mid_turn_frees_the_thread_for_the_others_when_its_lease_expires() {
    let dir = temp_dir("kill");
    let db = Database::create().await;
    let provider = FakeProvider::start(ProviderConfig::default(), 0)
        .await
        .unwrap();
    let mut replicas = start_replicas(&db, &provider, &dir);
    let bases: Vec<String> = replicas.iter().map(ServeChild::base_url).collect();
    let http = client::http_client().unwrap();
    let token = client::sign_token(SECRET, "kill-user").unwrap();

    let first = turn(&http, &bases[0], &token, client::create_body("hello")).await;
    let thread_id = created_thread(&first);

    // On replica 1: a tool call, then an answer the provider holds after its
    // first token, so the turn is mid-stream with completed items behind it.
    let text = format!("{TOOL_MARKER} {HOLD_MARKER} add a task to water the plants");
    let mut res = http
        .post(format!("{}/chatkit", bases[1]))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(client::add_message_body(&thread_id, &text))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while !buf.contains("text_delta") {
        let chunk = tokio::time::timeout_at(deadline.into(), res.chunk())
            .await
            .expect("the turn streams")
            .unwrap()
            .expect("the stream goes on");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    let done: Vec<String> = buf
        .split("\n\n")
        .filter_map(|frame| frame.trim().strip_prefix("data:"))
        .map(|data| serde_json::from_str::<Value>(data.trim()).unwrap())
        .filter(|frame| frame["type"] == "thread.item.done")
        .map(|frame| frame["item"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        done.len() >= 2,
        "user message and tool items were done: {buf}"
    );

    replicas[1].kill();
    let killed_at = Instant::now();
    drop(res);

    // Keep asking through replica 2 until the thread takes a turn.
    let bound = Duration::from_secs(LEASE_SECS + 5);
    let mut late_refusals = Vec::new();
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let after = loop {
        let sent = killed_at.elapsed();
        let frames = turn(
            &http,
            &bases[2],
            &token,
            client::add_message_body(&thread_id, "is it free now?"),
        )
        .await;
        if !is_busy(&frames) {
            assert!(!has_error(&frames), "{frames:?}");
            break frames;
        }
        if sent > bound {
            late_refusals.push(sent);
        }
        assert!(Instant::now() < deadline, "the thread never became usable");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        late_refusals.is_empty(),
        "still busy for requests sent {late_refusals:?} after the kill (lease {LEASE_SECS} s + 5 s)"
    );
    assert!(!answer_text(&after).is_empty());

    let stored = items(&http, &bases[0], &token, &thread_id).await;
    let ids: Vec<&str> = stored.iter().filter_map(|i| i["id"].as_str()).collect();
    for id in &done {
        assert!(
            ids.contains(&id.as_str()),
            "completed item {id} was lost: {stored:?}"
        );
    }
    assert_eq!(stored.last().unwrap()["type"], "assistant_message");

    provider.release_held();
    drop(replicas);
    provider.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One MCP JSON-RPC POST; the JSON-RPC answer (from a JSON body or the
/// first SSE `data:` line), or `None` for an accepted notification.
async fn mcp(http: &reqwest::Client, base: &str, token: &str, message: Value) -> Option<Value> {
    let res = http
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(message.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        res.headers().get("mcp-session-id").is_none(),
        "a stateless server issues no session"
    );
    let status = res.status();
    let text = res.text().await.unwrap();
    if status == 202 {
        return None;
    }
    assert_eq!(status, 200, "{text}");
    let json = text
        .lines()
        .find_map(|line| line.strip_prefix("data:"))
        .unwrap_or(&text);
    Some(serde_json::from_str(json.trim()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the pooler of scripts/stages/35-replicas.sh"]
async fn an_mcp_client_whose_requests_land_on_different_replicas_works() {
    let dir = temp_dir("mcp");
    let db = Database::create().await;
    let provider = FakeProvider::start(ProviderConfig::default(), 0)
        .await
        .unwrap();
    let replicas = start_replicas(&db, &provider, &dir);
    let bases: Vec<String> = replicas.iter().map(ServeChild::base_url).collect();
    let http = client::http_client().unwrap();
    let token = client::sign_token(SECRET, "mcp-user").unwrap();

    let init = mcp(
        &http,
        &bases[0],
        &token,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "replicas-test", "version": "1"}}}),
    )
    .await
    .unwrap();
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    let accepted = mcp(
        &http,
        &bases[1],
        &token,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(accepted.is_none());
    let listed = mcp(
        &http,
        &bases[2],
        &token,
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await
    .unwrap();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert!(names.contains(&"create_task"), "{names:?}");
    let created = mcp(
        &http,
        &bases[0],
        &token,
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "create_task", "arguments": {"title": "water the plants across replicas"}}}),
    )
    .await
    .unwrap();
    assert_ne!(created["result"]["isError"], true, "{created}");
    let tasks = mcp(
        &http,
        &bases[1],
        &token,
        serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "list_tasks", "arguments": {}}}),
    )
    .await
    .unwrap();
    assert!(
        tasks
            .to_string()
            .contains("water the plants across replicas"),
        "{tasks}"
    );

    drop(replicas);
    provider.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `loadtest` round-robin over `bases`: 32 users x 100 turns, items
/// verified; its child process and the summary file.
fn spawn_loadtest(bases: &[String], summary: &Path, log: &Path) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"));
    for base in bases {
        command.arg("--url").arg(base);
    }
    command
        .args(["--jwt-secret", SECRET, "--users", "32", "--turns", "100"])
        .args(["--timeout-secs", "120", "--verify-items", "--summary-json"])
        .arg(summary)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap()
}

fn read_summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// How a client sees a replica die under it: the stream or the request is
/// cut, or (once every replica refused) the connection. Never a hang, a
/// truncated answer passed off as whole, or a server error.
fn is_clean_cut(kind: &str) -> bool {
    matches!(kind, "stream_broken" | "request" | "connect")
}

async fn wait_for_calls(provider: &FakeProvider, at_least: u64, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while provider.calls() < at_least {
        assert!(
            child.try_wait().unwrap().is_none(),
            "loadtest ended before {at_least} model calls"
        );
        assert!(Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the pooler of scripts/stages/35-replicas.sh"]
async fn loadtest_round_robin_has_no_errors_and_a_killed_replica_fails_only_its_own_streams() {
    let dir = temp_dir("load");
    let db = Database::create().await;
    // Streams slowly enough that the 32 users' turns overlap on every replica.
    let provider = FakeProvider::start(
        ProviderConfig {
            answer_tokens: 5,
            token_delay: Duration::from_millis(5),
        },
        0,
    )
    .await
    .unwrap();
    let mut replicas = start_replicas(&db, &provider, &dir);
    let bases: Vec<String> = replicas.iter().map(ServeChild::base_url).collect();

    // 1. Every replica up: no error at all.
    let summary = dir.join("run1.json");
    let mut run = spawn_loadtest(&bases, &summary, &dir.join("run1.log"));
    let status = tokio::task::spawn_blocking(move || run.wait())
        .await
        .unwrap()
        .unwrap();
    let first = read_summary(&summary);
    assert!(status.success(), "loadtest failed: {first}");
    assert_eq!(first["ok"], 3200, "{first}");
    assert_eq!(first["errors"], serde_json::json!({}), "{first}");
    assert_eq!(first["lost_items"], 0, "{first}");

    // 2. Replica 2 killed with SIGKILL a third of the way in, restarted on
    // the same port a while later.
    let summary = dir.join("run2.json");
    let calls = provider.calls();
    let mut run = spawn_loadtest(&bases, &summary, &dir.join("run2.log"));
    wait_for_calls(&provider, calls + 1200, &mut run).await;
    let port = replicas[2].addr().port();
    replicas[2].kill();
    wait_for_calls(&provider, calls + 1700, &mut run).await;
    replicas[2] = start_replica(&db, &provider, &dir, 3, port);
    let status = tokio::task::spawn_blocking(move || run.wait())
        .await
        .unwrap()
        .unwrap();
    let second = read_summary(&summary);
    assert!(status.success(), "loadtest failed: {second}");
    assert_eq!(second["lost_items"], 0, "stored items were lost: {second}");
    let by_url = second["errors_by_url"].as_object().unwrap();
    for (url, kinds) in by_url {
        assert_eq!(
            url, &bases[2],
            "errors on a replica that was not killed: {second}"
        );
        for kind in kinds.as_object().unwrap().keys() {
            assert!(is_clean_cut(kind), "an unclean error `{kind}`: {second}");
        }
    }
    let failed: u64 = second["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(failed > 0, "the kill cut no stream: {second}");
    assert_eq!(second["ok"].as_u64().unwrap() + failed, 3200, "{second}");

    drop(replicas);
    provider.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
