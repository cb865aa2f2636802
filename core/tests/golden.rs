//! Golden tests: every event and response body captured from the Python SDK
//! (openai-chatkit 1.6.5) parses into our types and serializes back to the
//! same bytes, once timestamps are normalised (ours carry a `Z`).

use chatkit_engine::protocol::{Attachment, Page, Thread, ThreadItem, ThreadStreamEvent, json};
use serde::Serialize;
use serde::de::DeserializeOwned;

const CAPTURES: &str = include_str!("fixtures/captures-1.6.5.txt");

/// Replaces every `"created_at":"..."` value with a fixed marker.
fn normalise_timestamps(text: &str) -> String {
    const KEY: &str = "\"created_at\":\"";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(KEY) {
        out.push_str(&rest[..start + KEY.len()]);
        rest = &rest[start + KEY.len()..];
        let end = rest.find('"').expect("a closed timestamp string");
        out.push_str("<ts>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn round_trip<T: DeserializeOwned + Serialize>(captured: &str) -> String {
    let value: T = serde_json::from_str(captured)
        .unwrap_or_else(|err| panic!("capture does not parse: {err}\n{captured}"));
    json::to_string(&value).expect("serializes")
}

fn assert_same_bytes(ours: &str, captured: &str) {
    assert_eq!(normalise_timestamps(ours), normalise_timestamps(captured));
}

#[test]
fn every_captured_stream_event_round_trips_byte_for_byte() {
    let mut seen = std::collections::BTreeSet::new();
    let mut count = 0;
    for line in CAPTURES.lines() {
        let Some(captured) = line.strip_prefix("data: ") else {
            continue;
        };
        let ours = round_trip::<ThreadStreamEvent>(captured);
        assert_same_bytes(&ours, captured);
        let event: ThreadStreamEvent = serde_json::from_str(captured).unwrap();
        seen.insert(event.type_name());
        count += 1;
    }
    assert_eq!(count, 88, "the fixture holds 88 captured events");
    // The captures cover every event type but notice-less ones we also build
    // in the engine tests.
    for expected in [
        "thread.created",
        "thread.updated",
        "thread.item.added",
        "thread.item.updated",
        "thread.item.done",
        "thread.item.removed",
        "thread.item.replaced",
        "stream_options",
        "progress_update",
        "client_effect",
        "error",
        "notice",
    ] {
        assert!(seen.contains(expected), "no captured {expected} event");
    }
}

#[test]
fn every_captured_non_streaming_body_round_trips_byte_for_byte() {
    let mut request_type = String::new();
    let mut checked = 0;
    for line in CAPTURES.lines() {
        if let Some(body) = line.strip_prefix(">>> request body: ") {
            let request: serde_json::Value = serde_json::from_str(body).unwrap();
            request_type = request["type"].as_str().unwrap().to_owned();
            continue;
        }
        let Some(captured) = line.strip_prefix("<<< non-streaming body: ") else {
            continue;
        };
        let ours = match request_type.as_str() {
            "threads.get_by_id" | "threads.update" => round_trip::<Thread>(captured),
            "threads.list" => round_trip::<Page<Thread>>(captured),
            "items.list" => round_trip::<Page<ThreadItem>>(captured),
            "attachments.create" => round_trip::<Attachment>(captured),
            "threads.sync_custom_action" if captured != "{}" => {
                #[derive(serde::Deserialize, Serialize)]
                struct Synced {
                    updated_item: ThreadItem,
                }
                round_trip::<Synced>(captured)
            }
            "input.transcribe" => round_trip::<serde_json::Value>(captured),
            _ => {
                assert_eq!(captured, "{}", "{request_type} answers an empty object");
                captured.to_owned()
            }
        };
        assert_same_bytes(&ours, captured);
        checked += 1;
    }
    assert_eq!(checked, 13);
}

#[test]
fn requests_sent_by_the_real_client_parse() {
    for line in CAPTURES.lines() {
        if let Some(body) = line.strip_prefix(">>> request body: ") {
            chatkit_engine::protocol::Request::parse(body.as_bytes())
                .unwrap_or_else(|err| panic!("{err}: {body}"));
        }
    }
    // Logged from the real web component (reference §1.2).
    let real = r#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"Hi there!"}],"quoted_text":"","attachments":[],"inference_options":{}}}}"#;
    chatkit_engine::protocol::Request::parse(real.as_bytes()).unwrap();
}
