//! Fault tests through `ChatEngine::process`:
//!
//! - the provider (the real `OpenAiCompatible` client against the local
//!   OpenAI-compatible test server) answers 429 or 500, times out, drops the
//!   connection mid-stream or sends garbage: the stream ends with an `error`
//!   event, the thread stays consistent, and a retry works;
//! - a client that disconnects at a random point of each of 1,000 turns (on a
//!   SQLite file, an in-memory SQLite database and PostgreSQL): no
//!   turn or task is left running, memory stays flat, and every thread is
//!   consistent (each user message is followed by a complete answer, or by
//!   the kept partial answer and the hidden cancellation marker).
//!
//! No timing assertions: timeouts are small so the tests take seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
#[path = "support/db.rs"]
mod db;
#[path = "support/openai_server.rs"]
mod openai_server;
#[path = "support/engine.rs"]
mod support;

use chatkit_engine::agents::{RunConfig, Runner};
use chatkit_engine::engine::{CANCELLED_MARKER_TEXT, ChatEngine, Response};
use chatkit_engine::models::{OpenAiCompatible, RetryPolicy};
use chatkit_engine::protocol::{ItemKind, Order, ThreadItem, ThreadItemUpdate, ThreadStreamEvent};
use chatkit_engine::todo::{self, Assistant};
use chatkit_engine::{EngineConfig, RequestContext, store};
use db::{Backend, TestDb};
use openai_server::{OpenAiServer, Script, chunks};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Every item of a thread, hidden ones included, oldest first.
async fn stored_items(engine: &ChatEngine, user: &str, thread_id: &str) -> Vec<ThreadItem> {
    let ctx = RequestContext::new(user);
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine
            .store()
            .load_thread_items(thread_id, after.as_deref(), 200, Order::Asc, &ctx)
            .await
            .unwrap();
        all.extend(page.data);
        if !page.has_more {
            return all;
        }
        after = all.last().map(|item| item.id.clone());
    }
}

fn kinds(items: &[ThreadItem]) -> Vec<&'static str> {
    items.iter().map(ThreadItem::type_name).collect()
}

fn assistant_text(item: &ThreadItem) -> Option<String> {
    match &item.kind {
        ItemKind::AssistantMessage(message) => Some(message.text()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Provider faults

/// The task assistant on `db`, talking to `server` through the real client
/// with small timeouts and fast retries (`attempts` in total).
async fn provider_engine(db: &TestDb, server: &OpenAiServer, attempts: u32) -> ChatEngine {
    let database = store::connect(&db.url).await.unwrap();
    let model = OpenAiCompatible::builder("test-model")
        .base_url(server.base_url())
        .api_key("sk-test")
        .retry(RetryPolicy {
            max_attempts: attempts,
            initial_backoff: ms(2),
            max_backoff: ms(10),
            max_retry_after: ms(50),
        })
        .first_token_timeout(ms(250))
        .idle_timeout(ms(250))
        .build()
        .unwrap();
    let responder = Assistant::new(
        todo::task_table(&database).await.unwrap(),
        Runner::new(RunConfig::new(Arc::new(model))),
    );
    ChatEngine::builder()
        .shared_store(database.store())
        .responder(responder)
        .build()
        .unwrap()
}

/// Checks that a failed turn ended with a retryable `error` event after
/// anything it streamed, and stored nothing but the user message.
async fn assert_failed_cleanly(engine: &ChatEngine, events: &[Value], what: &str) -> String {
    let thread_id = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    let error = events
        .iter()
        .rposition(|e| e["type"] == "error")
        .unwrap_or_else(|| panic!("{what}: no error event in {events:#?}"));
    assert_eq!(events[error]["code"], "stream.error", "{what}");
    assert_eq!(events[error]["allow_retry"], true, "{what}");
    assert!(
        events[error + 1..]
            .iter()
            .all(|e| e["type"] == "thread.updated"),
        "{what}: the error event ends the stream: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| !(e["type"] == "thread.item.done" && e["item"]["type"] == "assistant_message")),
        "{what}: no assistant message is completed"
    );
    settle(engine).await;
    let stored = stored_items(engine, "alice", &thread_id).await;
    assert_eq!(
        kinds(&stored),
        ["user_message"],
        "{what}: only the user message is stored"
    );
    // The thread still loads as a whole.
    let thread = call_json(
        engine,
        "alice",
        json!({"type": "threads.get_by_id", "params": {"thread_id": thread_id}}),
    )
    .await;
    assert_eq!(
        thread["items"]["data"].as_array().unwrap().len(),
        1,
        "{what}"
    );
    thread_id
}

/// Retries the user message of a failed thread with
/// `threads.retry_after_item` and checks the answer is stored.
async fn retry_succeeds(engine: &ChatEngine, thread_id: &str, expected: &str) {
    let stored = stored_items(engine, "alice", thread_id).await;
    let user_item = stored[0].id.clone();
    let events = wire(
        &call_stream(
            engine,
            "alice",
            json!({"type": "threads.retry_after_item",
                   "params": {"thread_id": thread_id, "item_id": user_item}}),
        )
        .await,
    );
    assert!(
        events.iter().all(|e| e["type"] != "error"),
        "the retry succeeds: {events:#?}"
    );
    settle(engine).await;
    let stored = stored_items(engine, "alice", thread_id).await;
    assert_eq!(kinds(&stored), ["user_message", "assistant_message"]);
    assert_eq!(stored[0].id, user_item, "the user message is kept");
    assert_eq!(assistant_text(&stored[1]).unwrap(), expected);
}

/// Sends the next message on a failed thread and checks it is answered.
async fn next_message_succeeds(engine: &ChatEngine, thread_id: &str, expected: &str) {
    let events = wire(&call_stream(engine, "alice", add_message(thread_id, "again")).await);
    assert!(
        events.iter().all(|e| e["type"] != "error"),
        "the next message succeeds: {events:#?}"
    );
    settle(engine).await;
    let stored = stored_items(engine, "alice", thread_id).await;
    assert_eq!(
        kinds(&stored),
        ["user_message", "user_message", "assistant_message"]
    );
    assert_eq!(assistant_text(&stored[2]).unwrap(), expected);
}

/// One provider fault: the first turn meets `failing` (the client makes
/// `attempts` attempts), then the thread is retried, either by
/// `threads.retry_after_item` or by the next message.
async fn provider_fault(
    backend: Backend,
    what: &str,
    failing: Vec<Script>,
    attempts: u32,
    retry_by_item: bool,
) {
    let db = TestDb::new(backend).await;
    let requests = failing.len();
    let server = OpenAiServer::start(failing).await;
    let engine = provider_engine(&db, &server, attempts).await;
    let events = wire(&call_stream(&engine, "alice", create("hello there")).await);
    let thread_id = assert_failed_cleanly(&engine, &events, what).await;
    assert_eq!(server.request_count(), requests, "{what}: attempts made");

    server.push(Script::text_stream(&["Recovered ", "answer."]));
    if retry_by_item {
        retry_succeeds(&engine, &thread_id, "Recovered answer.").await;
    } else {
        next_message_succeeds(&engine, &thread_id, "Recovered answer.").await;
    }
    assert_eq!(engine.running_turns(), 0);
}

async fn rate_limited_on_every_attempt(backend: Backend) {
    provider_fault(
        backend,
        "429",
        vec![Script::status(429), Script::status(429)],
        2,
        true,
    )
    .await;
}

async fn server_error_on_every_attempt(backend: Backend) {
    provider_fault(
        backend,
        "500",
        vec![Script::status(500), Script::status(500)],
        2,
        false,
    )
    .await;
}

async fn first_token_timeout(backend: Backend) {
    // Headers arrive, then nothing for longer than the first-token limit.
    provider_fault(
        backend,
        "first-token timeout",
        vec![Script::text_stream(&["too late"]).pause_after(0, ms(3000))],
        1,
        true,
    )
    .await;
}

async fn no_response_at_all_times_out(backend: Backend) {
    // Not even a status line.
    provider_fault(
        backend,
        "no response",
        vec![Script::text_stream(&["too late"]).delay(ms(3000))],
        1,
        false,
    )
    .await;
}

async fn stall_mid_stream_times_out(backend: Backend) {
    // Role chunk and "Half " (4 lines), then a stall past the idle limit.
    provider_fault(
        backend,
        "idle timeout",
        vec![Script::text_stream(&["Half ", "an answer"]).pause_after(4, ms(3000))],
        3,
        true,
    )
    .await;
}

async fn connection_dropped_mid_stream(backend: Backend) {
    provider_fault(
        backend,
        "dropped connection",
        vec![Script::text_stream(&["Half ", "an answer"]).drop_after(4)],
        3,
        false,
    )
    .await;
}

async fn garbage_before_any_text(backend: Backend) {
    provider_fault(
        backend,
        "garbage",
        vec![Script::sse([
            "data: {\"id\": \"chatcmpl-x\", \"choices\": [{\"delta\": {\"content\": ",
            "",
            "data: <html><body>502 Bad Gateway</body></html>",
            "",
        ])],
        1,
        true,
    )
    .await;
}

async fn garbage_after_text(backend: Backend) {
    provider_fault(
        backend,
        "garbage after text",
        vec![Script::sse([
            chunks::data(&chunks::text("Half ")),
            String::new(),
            "data: \u{1}\u{2}not json at all".into(),
            String::new(),
        ])],
        3,
        false,
    )
    .await;
}

async fn html_error_page(backend: Backend) {
    // A proxy's HTML page instead of JSON, retried, then given up.
    let page = || {
        let mut script = Script::sse(["<html><body><h1>502 Bad Gateway</h1></body></html>"]);
        script.status = 502;
        script.headers = vec![("content-type".into(), "text/html".into())];
        script
    };
    provider_fault(backend, "HTML error page", vec![page(), page()], 2, true).await;
}

async fn rate_limit_then_success_needs_no_retry_from_the_user(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = OpenAiServer::start([
        Script::status(429),
        Script::status(500),
        Script::text_stream(&["Third ", "time."]),
    ])
    .await;
    let engine = provider_engine(&db, &server, 3).await;
    let events = wire(&call_stream(&engine, "alice", create("hello")).await);
    assert!(events.iter().all(|e| e["type"] != "error"), "{events:#?}");
    let thread_id = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    settle(&engine).await;
    let stored = stored_items(&engine, "alice", &thread_id).await;
    assert_eq!(kinds(&stored), ["user_message", "assistant_message"]);
    assert_eq!(assistant_text(&stored[1]).unwrap(), "Third time.");
    assert_eq!(server.request_count(), 3);
}

on_both_stores!(
    rate_limited_on_every_attempt,
    server_error_on_every_attempt,
    first_token_timeout,
    no_response_at_all_times_out,
    stall_mid_stream_times_out,
    connection_dropped_mid_stream,
    garbage_before_any_text,
    garbage_after_text,
    html_error_page,
    rate_limit_then_success_needs_no_retry_from_the_user,
);

// ---------------------------------------------------------------------------
// Clients that disconnect at random points

/// SplitMix64: a tiny seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (bounded) until no turn runs on `engine`; fails otherwise.
async fn settle_quickly(engine: &ChatEngine) {
    for _ in 0..5000 {
        if engine.running_turns() == 0 {
            return;
        }
        tokio::time::sleep(ms(1)).await;
    }
    panic!("a turn is still running after 5 s");
}

/// Starts a streaming request.
async fn start(
    engine: &ChatEngine,
    user: &str,
    body: &Value,
) -> chatkit_engine::engine::EventStream {
    match engine
        .process(body.to_string().as_bytes(), RequestContext::new(user))
        .await
        .unwrap_or_else(|err| panic!("{body}: {err}"))
    {
        Response::Stream(stream) => stream,
        Response::Json(_) => panic!("{body} answered JSON"),
    }
}

/// Checks the stored items of one thread: every user message is followed by
/// (tool workflows and) a complete answer, or by the partial answer the
/// client saw (possibly none) and the hidden cancellation marker. Answers
/// must be `full[prompt]` or a prefix of it. Returns (completed, cancelled).
fn check_thread(
    items: &[ThreadItem],
    full: &HashMap<String, String>,
    label: &str,
) -> (usize, usize) {
    let (mut completed, mut cancelled) = (0, 0);
    let mut at = 0;
    while at < items.len() {
        let ItemKind::UserMessage(user) = &items[at].kind else {
            panic!(
                "{label}: item {at} is a {} where a user message was expected: {:?}",
                items[at].type_name(),
                kinds(items)
            );
        };
        let expected = full
            .get(&user.text())
            .unwrap_or_else(|| panic!("{label}: unknown prompt {:?}", user.text()));
        let end = items[at + 1..]
            .iter()
            .position(|item| matches!(item.kind, ItemKind::UserMessage(_)))
            .map_or(items.len(), |n| at + 1 + n);
        let answer = &items[at + 1..end];
        let shape = kinds(answer);
        // Tool workflows (and the widget of their result) first, then the
        // answer and/or the marker.
        let tool_side =
            |item: &ThreadItem| matches!(item.kind, ItemKind::Workflow(_) | ItemKind::Widget(_));
        let first_other = answer
            .iter()
            .position(|item| !tool_side(item))
            .unwrap_or(answer.len());
        let rest = &answer[first_other..];
        assert!(
            rest.iter().all(|item| !tool_side(item)),
            "{label}: workflows come before the answer: {shape:?}"
        );
        match rest {
            [message] if assistant_text(message).is_some() => {
                assert_eq!(
                    &assistant_text(message).unwrap(),
                    expected,
                    "{label}: a complete answer"
                );
                completed += 1;
            }
            [.., marker] if matches!(&marker.kind, ItemKind::SdkHiddenContext(h) if h.content == CANCELLED_MARKER_TEXT) =>
            {
                let partial = &rest[..rest.len() - 1];
                assert!(
                    partial.len() <= 1,
                    "{label}: at most one partial answer: {shape:?}"
                );
                if let Some(message) = partial.first() {
                    let text = assistant_text(message)
                        .unwrap_or_else(|| panic!("{label}: unexpected {shape:?}"));
                    assert!(
                        !text.trim().is_empty(),
                        "{label}: an empty partial is not kept"
                    );
                    assert!(
                        expected.starts_with(&text),
                        "{label}: partial {text:?} is a prefix of {expected:?}"
                    );
                }
                cancelled += 1;
            }
            _ => panic!(
                "{label}: inconsistent turn after user message {at}: {shape:?} (thread: {:?})",
                kinds(items)
            ),
        }
        at = end;
    }
    (completed, cancelled)
}

/// 1,000 turns over 25 threads on the offline `ScriptedModel` and a SQLite
/// file; each client reads a random number of events, then goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_disconnecting_at_random_points_leave_consistent_threads_and_no_leaks() {
    let db = TestDb::sqlite();
    random_disconnects(&db.url, 1000).await;
}

/// The same on `sqlite::memory:`: sqlx closes a connection whose query was
/// cancelled mid-flight, so the in-memory store must keep its database alive
/// with a connection of its own (this test caught the database vanishing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_disconnecting_at_random_points_on_an_in_memory_database() {
    random_disconnects("sqlite::memory:", 1000).await;
}

/// The same on PostgreSQL: a client that leaves can cancel a store query
/// mid-flight, and the store's pool must close that connection rather than
/// lend it again with the query half done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_disconnecting_at_random_points_on_postgresql() {
    let db = TestDb::postgres().await;
    random_disconnects(&db.url, 1000).await;
}

async fn random_disconnects(database_url: &str, turns: usize) {
    const THREADS: usize = 25;
    const SEED: u64 = 0x00C0_FFEE_5EED;
    const PROMPTS: [&str; 4] = [
        "hello",
        "what can you do?",
        "hi again",
        "how many tasks do I have?",
    ];
    let config = EngineConfig {
        database_url: database_url.to_owned(),
        // One event in flight: the turn really is mid-stream when the
        // client leaves.
        stream_buffer: 1,
        ..EngineConfig::default()
    };
    let engine = todo::App::from_config(config).await.unwrap().engine;
    let user = "alice";

    // The full answer to each prompt, and how many events a whole turn has.
    let mut full = HashMap::new();
    let mut longest = 0;
    for prompt in PROMPTS {
        let events = call_stream(&engine, user, create(prompt)).await;
        longest = longest.max(events.len());
        let answer = events.iter().find_map(|e| match e {
            ThreadStreamEvent::ItemDone { item } => assistant_text(item),
            _ => None,
        });
        full.insert(prompt.to_owned(), answer.expect("a complete answer"));
        // The stream of a complete turn carries text deltas.
        assert!(events.iter().any(|e| matches!(
            e,
            ThreadStreamEvent::ItemUpdated {
                update: ThreadItemUpdate::TextDelta { .. },
                ..
            }
        )));
    }
    settle_quickly(&engine).await;
    tokio::time::sleep(ms(50)).await;
    let baseline_tasks = alive_tasks();

    let mut rng = Rng(SEED);
    let mut threads: Vec<Option<String>> = vec![None; THREADS];
    let mut rss_after_first_200 = 0;
    let mut disconnected_early = 0;
    for turn in 0..turns {
        let slot = turn % THREADS;
        let prompt = PROMPTS[rng.below(PROMPTS.len())];
        let body = match &threads[slot] {
            Some(thread_id) => add_message(thread_id, prompt),
            None => create(prompt),
        };
        // Stop after `k` events; a new thread needs its `thread.created`.
        let k = rng
            .below(longest + 2)
            .max(usize::from(threads[slot].is_none()));
        let mut stream = start(&engine, user, &body).await;
        let mut seen = 0;
        while seen < k {
            match stream.next_event().await {
                Some(ThreadStreamEvent::ThreadCreated { thread }) => {
                    threads[slot] = Some(thread.id);
                    seen += 1;
                }
                Some(ThreadStreamEvent::Error { code, message, .. }) => {
                    panic!("turn {turn} (seed {SEED:#x}): error event {code} {message:?}")
                }
                Some(_) => seen += 1,
                None => break,
            }
        }
        if seen == k {
            disconnected_early += 1;
        }
        drop(stream);
        settle_quickly(&engine).await;
        if turn + 1 == 200 {
            rss_after_first_200 = rss_bytes();
        }
    }
    let rss_at_end = rss_bytes();

    // No turn and no task is left behind.
    assert_eq!(engine.running_turns(), 0);
    let mut tasks = alive_tasks();
    for _ in 0..500 {
        if tasks <= baseline_tasks {
            break;
        }
        tokio::time::sleep(ms(10)).await;
        tasks = alive_tasks();
    }
    assert!(
        tasks <= baseline_tasks,
        "{tasks} tasks alive after the turns, {baseline_tasks} before"
    );

    // Memory: a sanity bound, not a measurement.
    let growth = rss_at_end.saturating_sub(rss_after_first_200);
    assert!(
        growth < 64 * 1024 * 1024,
        "RSS grew by {} KiB between turn 200 and turn {turns} ({} -> {} KiB)",
        growth / 1024,
        rss_after_first_200 / 1024,
        rss_at_end / 1024
    );

    // Every thread is consistent.
    let (mut completed, mut cancelled) = (0, 0);
    for (slot, thread_id) in threads.iter().enumerate() {
        let thread_id = thread_id.as_ref().expect("every thread was created");
        let items = stored_items(&engine, user, thread_id).await;
        let (c, x) = check_thread(&items, &full, &format!("thread {slot} (seed {SEED:#x})"));
        completed += c;
        cancelled += x;
    }
    assert_eq!(completed + cancelled, turns);
    // The random points really cover both outcomes.
    assert!(
        cancelled > turns / 4,
        "only {cancelled} turns were cancelled"
    );
    assert!(completed > turns / 20, "only {completed} turns completed");
    eprintln!(
        "{turns} turns: {completed} completed, {cancelled} cancelled ({disconnected_early} clients left early); \
         RSS {} -> {} KiB; tasks {baseline_tasks} -> {tasks}",
        rss_after_first_200 / 1024,
        rss_at_end / 1024
    );
}

/// Clients that leave while a slow provider is mid-stream: the provider
/// connection is abandoned, the partial text the client saw is kept with the
/// marker, and the thread answers the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_leaving_during_a_slow_provider_stream_keep_consistent_threads() {
    const TURNS: usize = 12;
    let db = TestDb::sqlite();
    let server = OpenAiServer::start([]).await;
    let engine = provider_engine(&db, &server, 1).await;
    let words = ["One ", "two ", "three ", "four ", "five ", "six."];
    let full_text: String = words.concat();
    let mut rng = Rng(0x51_0E);
    let mut thread_id: Option<String> = None;
    for turn in 0..TURNS {
        server.push(Script::text_stream(&words).line_delay(ms(15)));
        let body = match &thread_id {
            Some(id) => add_message(id, "count"),
            None => create("count"),
        };
        let mut stream = start(&engine, "alice", &body).await;
        // Leave after a random number of text deltas (1..=3 of 6), so
        // every turn reaches the provider.
        let stop_after = 1 + rng.below(3);
        let mut deltas = 0;
        while let Some(event) = stream.next_event().await {
            match event {
                ThreadStreamEvent::ThreadCreated { thread } => thread_id = Some(thread.id),
                ThreadStreamEvent::ItemUpdated {
                    update: ThreadItemUpdate::TextDelta { .. },
                    ..
                } => {
                    deltas += 1;
                }
                ThreadStreamEvent::Error { code, .. } => panic!("turn {turn}: error {code}"),
                _ => {}
            }
            if thread_id.is_some() && deltas >= stop_after {
                break;
            }
        }
        drop(stream);
        settle_quickly(&engine).await;
    }
    let thread_id = thread_id.unwrap();
    let items = stored_items(&engine, "alice", &thread_id).await;
    let full = HashMap::from([("count".to_owned(), full_text.clone())]);
    let (_, cancelled) = check_thread(&items, &full, "slow provider");
    assert_eq!(cancelled, TURNS, "every client left before the end");
    assert_eq!(server.request_count(), TURNS);

    // The thread still answers.
    server.push(Script::text_stream(&["Still ", "here."]));
    let events = wire(&call_stream(&engine, "alice", add_message(&thread_id, "hello?")).await);
    assert!(events.iter().all(|e| e["type"] != "error"));
    settle(&engine).await;
    let items = stored_items(&engine, "alice", &thread_id).await;
    assert_eq!(
        assistant_text(items.last().unwrap()).unwrap(),
        "Still here."
    );
}
