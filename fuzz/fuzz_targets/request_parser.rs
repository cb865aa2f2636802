//! Fuzzes the ChatKit request parser and, for every body that parses, the
//! whole engine behind it.
//!
//! Each input goes through `Request::parse`. Bodies that parse are then given
//! to `ChatEngine::process` on a fresh in-memory engine (the task assistant on
//! the offline scripted model, with an attachment store), whose database
//! already holds a thread `thr_seed` with one item of every kind the
//! streaming requests act on, so that seeds naming those ids reach the deep
//! paths. Streams are drained to the end.
//!
//! Oracles, besides "no panic, no hang":
//! - a body that does not parse is refused by `process` with `invalid_request`
//!   or `payload_too_large`, never anything else;
//! - no input makes the engine fail with `internal` or `storage_error`
//!   (those mean a bug: a value the database refuses, a broken invariant);
//! - a JSON response is valid JSON, and a stream ends without a
//!   `stream.error` event (the event such failures become mid-stream).

#![no_main]

use chatkit_engine::agents::{RunConfig, Runner};
use chatkit_engine::engine::{ChatEngine, Response, UploadUrls};
use chatkit_engine::protocol::{
    Attachment, Request, ThreadItem, ThreadMetadata, ThreadStreamEvent, Timestamp,
};
use chatkit_engine::store::{SqliteStore, Store};
use chatkit_engine::todo::{self, Assistant};
use chatkit_engine::{EngineConfig, Error, RequestContext};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// The user every fuzz request acts as.
const USER: &str = "fuzz";

/// Items of the seeded thread, oldest first (wire JSON).
const SEED_ITEMS: [&str; 5] = [
    r#"{"id":"msg_seed_user","thread_id":"thr_seed","created_at":"2026-01-01T00:00:00Z","type":"user_message","content":[{"type":"input_text","text":"add a task buy milk"}],"attachments":[],"inference_options":{}}"#,
    r#"{"id":"msg_seed_answer","thread_id":"thr_seed","created_at":"2026-01-01T00:00:01Z","type":"assistant_message","content":[{"type":"output_text","text":"Done.","annotations":[]}]}"#,
    r#"{"id":"msg_seed_widget","thread_id":"thr_seed","created_at":"2026-01-01T00:00:02Z","type":"widget","widget":{"type":"Card","children":[]}}"#,
    r#"{"id":"msg_seed_form","thread_id":"thr_seed","created_at":"2026-01-01T00:00:03Z","type":"structured_input","status":"pending","inputs":[{"id":"priority","question":"Priority?","type":"multiple_choice","options":[{"value":"Low"},{"value":"High"}],"multiple":false},{"id":"notes","question":"Notes?","type":"freeform"}]}"#,
    r#"{"id":"cal_seed","thread_id":"thr_seed","created_at":"2026-01-01T00:00:04Z","type":"client_tool_call","status":"pending","call_id":"call_1","name":"get_selection","arguments":{}}"#,
];

/// An attachment of the fuzz user, not yet linked to a thread.
const SEED_ATTACHMENT: &str = r#"{"id":"atc_seed","name":"cat.png","mime_type":"image/png","type":"image","preview_url":"https://files.example.com/atc_seed/preview"}"#;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A fresh engine whose database holds the seed thread and attachment.
async fn engine() -> ChatEngine {
    let store = SqliteStore::in_memory().await.expect("an in-memory store");
    let ctx = RequestContext::new(USER);
    let thread = ThreadMetadata::new("thr_seed", Timestamp::now());
    store.save_thread(&thread, &ctx).await.expect("seed thread");
    for item in SEED_ITEMS {
        let item: ThreadItem = serde_json::from_str(item).expect("seed item");
        store
            .add_thread_item("thr_seed", &item, &ctx)
            .await
            .expect("seed item saved");
    }
    let attachment: Attachment = serde_json::from_str(SEED_ATTACHMENT).expect("seed attachment");
    store
        .save_attachment(&attachment, &ctx)
        .await
        .expect("seed attachment saved");

    let runner = Runner::new(RunConfig::new(Arc::new(todo::offline_model())));
    let responder = Assistant::new(Arc::new(store.clone()), runner);
    ChatEngine::builder()
        .store(store)
        .responder(responder)
        .attachment_store(UploadUrls::new("https://files.example.com"))
        .config(EngineConfig {
            database_url: "sqlite::memory:".into(),
            // Small limits, so the fuzzer reaches them.
            max_body_bytes: 64 * 1024,
            max_text_chars: 2_000,
            ..EngineConfig::default()
        })
        .build()
        .expect("an engine")
}

fn is_bug(err: &Error) -> bool {
    matches!(err.code(), "internal" | "storage_error" | "invalid_config")
}

fuzz_target!(|data: &[u8]| {
    let parsed = Request::parse(data);
    if let Err(err) = &parsed {
        assert_eq!(err.code(), "invalid_request", "parse error code: {err}");
    }
    runtime().block_on(async {
        let engine = engine().await;
        let result = engine.process(data, RequestContext::new(USER)).await;
        match result {
            Ok(Response::Json(bytes)) => {
                assert!(parsed.is_ok(), "an unparsable body was answered");
                serde_json::from_slice::<serde_json::Value>(&bytes).expect("the answer is JSON");
            }
            Ok(Response::Stream(stream)) => {
                assert!(parsed.is_ok(), "an unparsable body was streamed");
                let events = stream.collect_events().await;
                assert!(!events.is_empty(), "an empty stream");
                for event in &events {
                    // `stream.error` is what storage and internal failures
                    // become once a stream has begun.
                    if let ThreadStreamEvent::Error { code, .. } = event {
                        assert_ne!(code, "stream.error", "a turn failed: {events:?}");
                    }
                }
            }
            Err(err) => {
                assert!(!is_bug(&err), "engine bug: {} {err}", err.code());
                if parsed.is_err() {
                    assert!(
                        matches!(err.code(), "invalid_request" | "payload_too_large"),
                        "{err}"
                    );
                }
                // The error body a host sends is always valid JSON.
                serde_json::from_slice::<serde_json::Value>(&err.to_json_body())
                    .expect("error body is JSON");
            }
        }
        // Turns that outlive their stream would leak into the next input.
        for _ in 0..2_000 {
            if engine.running_turns() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
});
