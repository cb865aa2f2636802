//! Helpers for driving a `ChatEngine` in tests.
#![allow(dead_code)]

use chatkit_engine::engine::{ChatEngine, Response};
use chatkit_engine::protocol::{ThreadStreamEvent, json};
use chatkit_engine::{Error, RequestContext};
use serde_json::Value;
use std::time::Duration;

/// Sends a request that must answer with JSON and returns it parsed.
pub async fn call_json(engine: &ChatEngine, user: &str, body: Value) -> Value {
    match engine
        .process(body.to_string().as_bytes(), RequestContext::new(user))
        .await
    {
        Ok(Response::Json(bytes)) => serde_json::from_slice(&bytes).expect("valid JSON"),
        Ok(Response::Stream(_)) => panic!("{body} streamed"),
        Err(err) => panic!("{body} failed: {err}"),
    }
}

/// Sends a request and returns its error.
pub async fn call_err(engine: &ChatEngine, user: &str, body: Value) -> Error {
    match engine
        .process(body.to_string().as_bytes(), RequestContext::new(user))
        .await
    {
        Ok(_) => panic!("{body} should have failed"),
        Err(err) => err,
    }
}

/// Sends a streaming request and collects all its events.
pub async fn call_stream(engine: &ChatEngine, user: &str, body: Value) -> Vec<ThreadStreamEvent> {
    match engine
        .process(body.to_string().as_bytes(), RequestContext::new(user))
        .await
    {
        Ok(Response::Stream(stream)) => stream.collect_events().await,
        Ok(Response::Json(json)) => {
            panic!("{body} answered JSON {}", String::from_utf8_lossy(&json))
        }
        Err(err) => panic!("{body} failed: {err}"),
    }
}

/// The `type` of each event.
pub fn types(events: &[ThreadStreamEvent]) -> Vec<&'static str> {
    events.iter().map(ThreadStreamEvent::type_name).collect()
}

/// Each event as wire JSON.
pub fn wire(events: &[ThreadStreamEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|event| serde_json::from_slice(&json::to_vec(event).unwrap()).unwrap())
        .collect()
}

/// The thread id announced by `thread.created`.
pub fn created_thread_id(events: &[ThreadStreamEvent]) -> String {
    match events.first() {
        Some(ThreadStreamEvent::ThreadCreated { thread }) => thread.id.clone(),
        other => panic!("expected thread.created first, got {other:?}"),
    }
}

/// A `threads.create` body with one text part.
pub fn create(text: &str) -> Value {
    serde_json::json!({"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":text}],"attachments":[],"inference_options":{}}}})
}

/// A `threads.add_user_message` body with one text part.
pub fn add_message(thread_id: &str, text: &str) -> Value {
    serde_json::json!({"type":"threads.add_user_message","params":{"thread_id":thread_id,"input":{"content":[{"type":"input_text","text":text}],"attachments":[],"inference_options":{}}}})
}

/// The visible items of a thread, oldest first, as wire JSON.
pub async fn items(engine: &ChatEngine, user: &str, thread_id: &str) -> Vec<Value> {
    let page = call_json(
        engine,
        user,
        serde_json::json!({"type":"items.list","params":{"thread_id":thread_id,"order":"asc","limit":200}}),
    )
    .await;
    page["data"].as_array().cloned().unwrap_or_default()
}

/// Waits until no turn is running (turns finish in their own tasks).
pub async fn settle(engine: &ChatEngine) {
    for _ in 0..1000 {
        if engine.running_turns() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("a turn is still running after 5 s");
}
