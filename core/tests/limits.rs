//! The engine's limits and its behaviour on hostile bodies: every limit is
//! configurable and breaking one is a clear error that writes nothing;
//! deeply nested JSON, huge numbers, long strings, invalid UTF-8 and NUL
//! characters neither crash nor hang.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/engine.rs"]
mod support;

use chatkit_engine::engine::{ChatEngine, EchoResponder, MAX_ID_CHARS, UploadUrls};
use chatkit_engine::store::SqliteStore;
use chatkit_engine::{EngineConfig, Error, RequestContext};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

async fn engine_with(config: EngineConfig) -> ChatEngine {
    ChatEngine::builder()
        .store(SqliteStore::in_memory().await.unwrap())
        .responder(EchoResponder)
        .attachment_store(UploadUrls::new("https://files.example.com"))
        .config(config)
        .build()
        .unwrap()
}

async fn engine() -> ChatEngine {
    engine_with(EngineConfig::default()).await
}

/// Sends raw bytes that must be refused, within a second.
async fn refused(engine: &ChatEngine, body: &[u8]) -> Error {
    let started = Instant::now();
    let result = engine.process(body, RequestContext::new("alice")).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    match result {
        Ok(_) => panic!(
            "{} should have been refused",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
        Err(err) => err,
    }
}

fn message_input(content: Value, attachments: Value) -> Value {
    json!({"content": content, "attachments": attachments, "inference_options": {}})
}

fn text_parts(texts: &[&str]) -> Value {
    Value::Array(
        texts
            .iter()
            .map(|text| json!({"type":"input_text","text":text}))
            .collect(),
    )
}

async fn thread_count(engine: &ChatEngine, user: &str) -> usize {
    let page = call_json(
        engine,
        user,
        json!({"type":"threads.list","params":{"limit":200}}),
    )
    .await;
    page["data"].as_array().unwrap().len()
}

// ---------------------------------------------------------------------------
// Per-message limits

#[tokio::test]
async fn message_text_parts_and_attachments_are_limited_before_anything_is_written() {
    let config = EngineConfig {
        max_text_chars: 10,
        max_content_parts: 3,
        max_attachments: 2,
        ..EngineConfig::default()
    };
    let engine = engine_with(config).await;
    let mut attachments = Vec::new();
    for name in ["a.png", "b.png", "c.png"] {
        let created = call_json(
            &engine,
            "alice",
            json!({"type":"attachments.create","params":{"name":name,"size":1,"mime_type":"image/png"}}),
        )
        .await;
        attachments.push(created["id"].as_str().unwrap().to_owned());
    }

    // Exactly at every limit: accepted. Characters, not bytes, are counted.
    let at_limit = message_input(
        text_parts(&["اردو", "ab", "🎉🎉🎉🎉"]),
        json!(attachments[..2]),
    );
    let events = call_stream(
        &engine,
        "alice",
        json!({"type":"threads.create","params":{"input":at_limit}}),
    )
    .await;
    let thread_id = created_thread_id(&events);
    settle(&engine).await;
    let items_before = items(&engine, "alice", &thread_id).await;

    let over: [(Value, &str); 4] = [
        (
            message_input(text_parts(&["0123456789x"]), json!([])),
            "11 characters",
        ),
        (
            json!({"content": text_parts(&["12345"]), "quoted_text": "123456", "attachments": []}),
            "11 characters",
        ),
        (
            message_input(text_parts(&["a", "b", "c", "d"]), json!([])),
            "4 content parts",
        ),
        (
            message_input(text_parts(&["hi"]), json!(attachments)),
            "3 attachments",
        ),
    ];
    for (input, says) in over {
        for body in [
            json!({"type":"threads.create","params":{"input":input.clone()}}),
            json!({"type":"threads.add_user_message","params":{"thread_id":thread_id,"input":input.clone()}}),
        ] {
            let err = call_err(&engine, "alice", body.clone()).await;
            assert_eq!(
                (err.code(), err.http_status()),
                ("payload_too_large", 413),
                "{body}"
            );
            assert!(err.to_string().contains(says), "{err} should say {says}");
        }
    }
    // Nothing was written: one thread, the same items, the third attachment
    // still unlinked.
    assert_eq!(thread_count(&engine, "alice").await, 1);
    assert_eq!(items(&engine, "alice", &thread_id).await, items_before);
    let third = engine
        .store()
        .load_attachment(&attachments[2], &RequestContext::new("alice"))
        .await
        .unwrap();
    assert_eq!(third.thread_id, None);
}

#[tokio::test]
async fn the_default_limits_are_documented_values() {
    let config = EngineConfig::default();
    assert_eq!(config.max_body_bytes, 1024 * 1024);
    assert_eq!(config.max_text_chars, 16_000);
    assert_eq!(config.max_content_parts, 32);
    assert_eq!(config.max_attachments, 10);
    assert_eq!(config.default_page_size, 20);
    assert_eq!(config.max_page_size, 200);
    assert_eq!(config.max_title_chars, 255);
    assert_eq!(MAX_ID_CHARS, 256);

    let engine = engine().await;
    let long = "x".repeat(16_001);
    let err = call_err(&engine, "alice", create(&long)).await;
    assert_eq!(err.code(), "payload_too_large");
    call_stream(&engine, "alice", create(&"x".repeat(16_000))).await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_parsing() {
    let engine = engine_with(EngineConfig {
        max_body_bytes: 1_000,
        ..EngineConfig::default()
    })
    .await;
    // Not even JSON: the size is checked first.
    let err = refused(&engine, &[b'{'; 1_001]).await;
    assert_eq!((err.code(), err.http_status()), ("payload_too_large", 413));
    assert!(err.to_string().contains("1001 bytes"), "{err}");
    let body = json!({"type":"threads.list","params":{"x":"y".repeat(990)}});
    assert!(body.to_string().len() > 1_000);
    assert_eq!(
        refused(&engine, body.to_string().as_bytes()).await.code(),
        "payload_too_large"
    );
    assert_eq!(thread_count(&engine, "alice").await, 0);
}

// ---------------------------------------------------------------------------
// Lists and titles

#[tokio::test]
async fn list_limits_are_clamped_and_bad_ones_are_clear_errors() {
    let engine = engine_with(EngineConfig {
        default_page_size: 2,
        max_page_size: 3,
        ..EngineConfig::default()
    })
    .await;
    for text in ["one", "two", "three", "four"] {
        call_stream(&engine, "alice", create(text)).await;
    }
    settle(&engine).await;
    let thread_id = {
        let page = call_json(&engine, "alice", json!({"type":"threads.list","params":{}})).await;
        page["data"][0]["id"].as_str().unwrap().to_owned()
    };
    for (limit, expected) in [
        (json!(null), 2),
        (json!(0), 2),
        (json!(1), 1),
        (json!(3), 3),
        (json!(4), 3),
        (json!(i64::MAX), 3),
        (json!(u32::MAX), 3),
    ] {
        let page = call_json(
            &engine,
            "alice",
            json!({"type":"threads.list","params":{"limit":limit}}),
        )
        .await;
        assert_eq!(page["data"].as_array().unwrap().len(), expected, "{limit}");
        assert_eq!(page["has_more"], true, "{limit}");
    }
    let page = call_json(
        &engine,
        "alice",
        json!({"type":"items.list","params":{"thread_id":thread_id,"limit":i64::MAX}}),
    )
    .await;
    assert!(page["data"].as_array().unwrap().len() <= 3);

    // Not a usable integer: a 400 naming the field, for both lists.
    for limit in [
        "-1",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "1e999999",
        "1e3",
        "2.5",
        "\"20\"",
        "true",
    ] {
        for kind in ["threads.list", "items.list"] {
            let body = format!(
                r#"{{"type":"{kind}","params":{{"thread_id":"{thread_id}","limit":{limit}}}}}"#
            );
            let err = refused(&engine, body.as_bytes()).await;
            assert_eq!(err.code(), "invalid_request", "{body}");
            assert!(err.to_string().contains("limit"), "{err}");
        }
    }
}

#[tokio::test]
async fn titles_are_limited_in_characters_and_nul_is_refused() {
    let engine = engine_with(EngineConfig {
        max_title_chars: 5,
        ..EngineConfig::default()
    })
    .await;
    let thread_id = created_thread_id(&call_stream(&engine, "alice", create("hi")).await);
    settle(&engine).await;
    let rename = |title: &str| json!({"type":"threads.update","params":{"thread_id":thread_id,"title":title}});
    // Five characters, many bytes; surrounding spaces are trimmed first.
    let updated = call_json(&engine, "alice", rename("  اردو🎉  ")).await;
    assert_eq!(updated["title"], "اردو🎉");
    for title in ["123456", "a\u{0}b"] {
        let err = call_err(&engine, "alice", rename(title)).await;
        assert_eq!((err.code(), err.http_status()), ("invalid_request", 400));
        assert!(err.to_string().contains("params.title"), "{err}");
    }
    let thread = call_json(
        &engine,
        "alice",
        json!({"type":"threads.get_by_id","params":{"thread_id":thread_id}}),
    )
    .await;
    assert_eq!(thread["title"], "اردو🎉");
    // Bob's over-long rename of a thread he cannot see is refused as well.
    let err = call_err(&engine, "bob", rename("123456")).await;
    assert_eq!(err.code(), "invalid_request");
}

#[tokio::test]
async fn ids_feedback_lists_and_attachment_names_are_bounded() {
    let engine = engine().await;
    let long_id = "t".repeat(MAX_ID_CHARS + 1);
    for body in [
        json!({"type":"threads.get_by_id","params":{"thread_id":long_id}}),
        json!({"type":"items.list","params":{"thread_id":"thr_1","after":long_id}}),
        json!({"type":"threads.list","params":{"after":long_id}}),
        json!({"type":"attachments.delete","params":{"attachment_id":long_id}}),
        json!({"type":"threads.get_by_id","params":{"thread_id":"thr_\u{0}"}}),
        json!({"type":"attachments.create","params":{"name":"n".repeat(300),"size":1,"mime_type":"text/plain"}}),
    ] {
        let err = call_err(&engine, "alice", body.clone()).await;
        assert_eq!(err.code(), "invalid_request", "{body}");
    }
    // An id of exactly the maximum length is merely unknown.
    let err = call_err(
        &engine,
        "alice",
        json!({"type":"threads.get_by_id","params":{"thread_id":"t".repeat(MAX_ID_CHARS)}}),
    )
    .await;
    assert_eq!(err.code(), "not_found");

    let thread_id = created_thread_id(&call_stream(&engine, "alice", create("hi")).await);
    settle(&engine).await;
    let ids: Vec<String> = (0..=200).map(|i| format!("msg_{i}")).collect();
    let err = call_err(
        &engine,
        "alice",
        json!({"type":"items.feedback","params":{"thread_id":thread_id,"item_ids":ids,"kind":"positive"}}),
    )
    .await;
    assert_eq!(err.code(), "payload_too_large");
}

// ---------------------------------------------------------------------------
// Hostile bodies

#[tokio::test]
async fn deeply_nested_json_is_an_invalid_request_wherever_it_is() {
    let engine = engine().await;
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let unclosed = "[".repeat(depth);
    let bodies = [
        deep.clone(),
        deep_objects.clone(),
        unclosed.clone(),
        format!(r#"{{"type":"threads.list","params":{deep}}}"#),
        format!(r#"{{"type":"threads.list","params":{{"limit":{deep}}}}}"#),
        format!(r#"{{"type":"threads.list","params":{{}},"metadata":{unclosed}}}"#),
        format!(r#"{{"type":{deep_objects},"params":{{}}}}"#),
        format!(
            r#"{{"type":"threads.custom_action","params":{{"thread_id":"thr_1","action":{{"type":"x","payload":{deep}}}}}}}"#
        ),
        format!(
            r#"{{"type":"threads.add_client_tool_output","params":{{"thread_id":"thr_1","result":{deep_objects}}}}}"#
        ),
        format!(
            r#"{{"type":"threads.create","params":{{"input":{{"content":[{{"type":"input_tag","id":"t","text":"x","data":{{"d":{deep}}}}}]}}}}}}"#
        ),
    ];
    for body in &bodies {
        let err = refused(&engine, body.as_bytes()).await;
        assert_eq!(
            err.code(),
            "invalid_request",
            "{}",
            &body[..60.min(body.len())]
        );
        assert_eq!(err.http_status(), 400);
    }
    // Deep but finite nesting in an ignored field is skipped without
    // recursion, like any unknown field.
    let ok = format!(r#"{{"type":"threads.list","params":{{}},"metadata":{deep}}}"#);
    let page = engine
        .process(ok.as_bytes(), RequestContext::new("alice"))
        .await
        .unwrap();
    assert!(!page.is_streaming());
    // Nesting within serde_json's limit (128) is fine in free-form fields.
    let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let body = format!(
        r#"{{"type":"threads.create","params":{{"input":{{"content":[{{"type":"input_tag","id":"t","text":"x","data":{{"d":{fine}}}}}]}}}}}}"#
    );
    let events = engine
        .process(body.as_bytes(), RequestContext::new("alice"))
        .await
        .unwrap();
    assert!(events.is_streaming());
}

#[tokio::test]
async fn huge_numbers_are_refused_or_kept_but_never_crash() {
    let engine = engine().await;
    // Out of f64 range: not valid JSON for serde_json, wherever it is.
    for number in ["1e999999", "-1e999999", "1e400"] {
        for body in [
            format!(r#"{{"type":"threads.list","params":{{"limit":{number}}}}}"#),
            format!(
                r#"{{"type":"threads.custom_action","params":{{"thread_id":"t","action":{{"type":"x","payload":{{"n":{number}}}}}}}}}"#
            ),
            format!(
                r#"{{"type":"attachments.create","params":{{"name":"a","size":{number},"mime_type":"a/b"}}}}"#
            ),
        ] {
            assert_eq!(
                refused(&engine, body.as_bytes()).await.code(),
                "invalid_request",
                "{body}"
            );
        }
    }
    // Ignored fields are only scanned: any number is fine there.
    let body = r#"{"type":"threads.list","params":{"x":1e999999},"metadata":{"n":123456789012345678901234567890}}"#;
    assert!(
        engine
            .process(body.as_bytes(), RequestContext::new("alice"))
            .await
            .is_ok()
    );
    // Big integers beyond u64 in free-form data become floats and are kept.
    let body = r#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_tag","id":"t","text":"x","data":{"n":123456789012345678901234567890,"m":-1e308,"z":0.000000000000000000000000000001}}]}}}"#;
    let Ok(chatkit_engine::Response::Stream(stream)) = engine
        .process(body.as_bytes(), RequestContext::new("alice"))
        .await
    else {
        panic!("a huge integer in free-form data is accepted");
    };
    let events = wire(&stream.collect_events().await);
    let data = &events[1]["item"]["content"][0]["data"];
    assert_eq!(data["n"].as_f64(), Some(1.2345678901234568e29), "{data}");
    assert_eq!(data["m"].as_f64(), Some(-1e308));
    // Sizes beyond u64 and negative sizes are refused.
    for size in ["18446744073709551616", "-1", "1.5"] {
        let body = format!(
            r#"{{"type":"attachments.create","params":{{"name":"a","size":{size},"mime_type":"a/b"}}}}"#
        );
        assert_eq!(
            refused(&engine, body.as_bytes()).await.code(),
            "invalid_request"
        );
    }
}

#[tokio::test]
async fn invalid_utf8_nul_and_odd_encodings_are_invalid_requests() {
    let engine = engine().await;
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"   ".to_vec(),
        b"null".to_vec(),
        b"\"threads.list\"".to_vec(),
        b"42".to_vec(),
        b"\0".to_vec(),
        b"{\"type\":\"threads.list\",\"params\":{}}\0".to_vec(),
        b"{\"type\":\"threads.list\0\",\"params\":{}}".to_vec(),
        // A BOM is not JSON whitespace.
        b"\xef\xbb\xbf{\"type\":\"threads.list\",\"params\":{}}".to_vec(),
        // Lone surrogates.
        br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"\ud800"}]}}}"#.to_vec(),
        br#"{"type":"threads.update","params":{"thread_id":"t","title":"\udc00x"}}"#.to_vec(),
        // Other control characters (validate's rules) in text, titles and ids.
        br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"\u001b[2J"}]}}}"#.to_vec(),
        br#"{"type":"threads.update","params":{"thread_id":"t","title":"a\nFAKE"}}"#.to_vec(),
        br#"{"type":"items.list","params":{"thread_id":"t\u0085"}}"#.to_vec(),
        // Escaped NUL in text, quoted text, titles and ids.
        br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"a\u0000b"}]}}}"#.to_vec(),
        br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"ok"}],"quoted_text":"\u0000"}}}"#.to_vec(),
        br#"{"type":"threads.update","params":{"thread_id":"t","title":"\u0000"}}"#.to_vec(),
        br#"{"type":"items.list","params":{"thread_id":"t\u0000"}}"#.to_vec(),
        br#"{"type":"items.feedback","params":{"thread_id":"t","item_ids":["\u0000"],"kind":"positive"}}"#.to_vec(),
        // Duplicate and wrongly typed fields.
        br#"{"type":"threads.list","type":"threads.delete","params":{}}"#.to_vec(),
        br#"{"type":["threads.list"],"params":{}}"#.to_vec(),
        br#"{"type":"threads.list","params":"x"}"#.to_vec(),
        // Trailing garbage.
        br#"{"type":"threads.list","params":{}} x"#.to_vec(),
    ];
    // Invalid UTF-8 inside a string, in a key, and an overlong encoding.
    cases.push(b"{\"type\":\"threads.create\",\"params\":{\"input\":{\"content\":[{\"type\":\"input_text\",\"text\":\"\xff\xfe\"}]}}}".to_vec());
    cases.push(b"{\"\xc3\x28\":1,\"type\":\"threads.list\",\"params\":{}}".to_vec());
    cases.push(b"{\"type\":\"threads.list\",\"params\":{\"after\":\"\xc0\xaf\"}}".to_vec());
    for body in &cases {
        let err = refused(&engine, body).await;
        assert_eq!(
            err.code(),
            "invalid_request",
            "{:?}: {err}",
            String::from_utf8_lossy(body)
        );
        let error_body: Value = serde_json::from_slice(&err.to_json_body()).unwrap();
        assert_eq!(error_body["error"]["code"], "invalid_request");
    }
    assert_eq!(thread_count(&engine, "alice").await, 0);
}

#[tokio::test]
async fn long_strings_and_unicode_within_the_limits_round_trip() {
    let engine = engine().await;
    // A long text in a field the engine only stores.
    let payload = "ü".repeat(200_000);
    let body = json!({"type":"threads.list","params":{"after":null,"x":payload}});
    assert!(
        engine
            .process(body.to_string().as_bytes(), RequestContext::new("alice"))
            .await
            .is_ok()
    );
    let text = "اردو 🎉 \u{200f}\u{feff}\t'x'\r\n\"y\" \\ %_";
    let events = wire(&call_stream(&engine, "alice", create(text)).await);
    assert_eq!(events[1]["item"]["content"][0]["text"], text);
    let thread_id = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    settle(&engine).await;
    let stored = items(&engine, "alice", &thread_id).await;
    assert_eq!(stored[0]["content"][0]["text"], text);
}
