//! `OpenAiCompatible` against a local scripted server: request shapes,
//! provider quirks of the streamed chunks, retries and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/openai_server.rs"]
mod openai_server;

use chatkit_engine::Error;
use chatkit_engine::models::{
    ChatMessage, Dialect, FinishReason, Model, ModelEvent, ModelRequest, ModelResponse,
    ModelSettings, OpenAiCompatible, OpenAiCompatibleBuilder, RetryPolicy, ToolCall, ToolChoice,
    ToolSpec, Usage,
};
use futures::StreamExt;
use openai_server::{OpenAiServer, Script, chunks};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A client for the server with fast retries.
fn client(server: &OpenAiServer) -> OpenAiCompatibleBuilder {
    OpenAiCompatible::builder("test-model")
        .base_url(server.base_url())
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: ms(2),
            max_backoff: ms(10),
            max_retry_after: Duration::from_secs(2),
        })
}

fn user(text: &str) -> ModelRequest {
    ModelRequest {
        messages: vec![
            ChatMessage::System {
                content: "You manage tasks.".into(),
            },
            ChatMessage::User {
                content: text.into(),
            },
        ],
        ..ModelRequest::default()
    }
}

fn task_tool() -> ToolSpec {
    ToolSpec {
        name: "create_task".into(),
        description: "Creates a task.".into(),
        parameters: json!({"type": "object", "properties": {"title": {"type": "string"}},
                           "required": ["title"], "additionalProperties": false}),
        strict: true,
    }
}

/// Runs a call to the end: the error of `stream()` or every stream item.
async fn run(
    model: &OpenAiCompatible,
    request: ModelRequest,
) -> Result<Vec<Result<ModelEvent, Error>>, Error> {
    let stream = model.stream(request).await?;
    Ok(stream.collect().await)
}

/// Runs a call that must succeed; returns the deltas and the response.
async fn complete(
    model: &OpenAiCompatible,
    request: ModelRequest,
) -> (Vec<ModelEvent>, ModelResponse) {
    let items = run(model, request).await.expect("stream started");
    let mut events: Vec<ModelEvent> = items
        .into_iter()
        .map(|item| item.expect("no error item"))
        .collect();
    match events.pop() {
        Some(ModelEvent::Completed(response)) => {
            assert!(
                events
                    .iter()
                    .all(|e| !matches!(e, ModelEvent::Completed(_)))
            );
            (events, response)
        }
        other => panic!("last event is not Completed: {other:?}"),
    }
}

fn text_deltas(events: &[ModelEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn calls(response: &ModelResponse) -> Vec<(&str, &str, &str)> {
    response
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------
// Requests

#[tokio::test]
async fn streams_text_and_reports_usage() {
    let server = OpenAiServer::start([Script::text_stream(&["Hel", "lo"])]).await;
    let model = client(&server).build().unwrap();
    let (events, response) = complete(&model, user("hi")).await;
    assert_eq!(text_deltas(&events), vec!["Hel", "lo"]);
    assert_eq!(response.text, "Hello");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.tool_calls.is_empty());
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 0,
            reasoning_tokens: 0,
            requests: 1,
            estimated: false,
        })
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn request_carries_model_messages_tools_and_settings() {
    let server = OpenAiServer::start([Script::text_stream(&["ok"])]).await;
    let model = client(&server).build().unwrap();
    let mut request = user("Add milk");
    request.tools = vec![task_tool()].into();
    request.settings = ModelSettings {
        temperature: Some(0.3),
        top_p: Some(0.9),
        max_tokens: Some(256),
        tool_choice: Some(ToolChoice::Required),
        parallel_tool_calls: Some(true),
    };
    complete(&model, request).await;
    assert_eq!(
        server.bodies()[0],
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You manage tasks."},
                {"role": "user", "content": "Add milk"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "create_task", "description": "Creates a task.",
                "parameters": {"type": "object", "properties": {"title": {"type": "string"}},
                               "required": ["title"], "additionalProperties": false},
                "strict": true}}],
            "tool_choice": "required",
            "parallel_tool_calls": true,
            "temperature": 0.3,
            "top_p": 0.9,
            "max_tokens": 256,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[tokio::test]
async fn optional_fields_are_omitted() {
    let server =
        OpenAiServer::start([Script::text_stream(&["a"]), Script::text_stream(&["b"])]).await;
    let model = client(&server).build().unwrap();
    // parallel_tool_calls without tools is not sent (OpenAI rejects it).
    let mut request = user("hi");
    request.settings.parallel_tool_calls = Some(false);
    complete(&model, request).await;
    // A named tool choice.
    let mut request = user("hi");
    request.tools = vec![task_tool()].into();
    request.settings.tool_choice = Some(ToolChoice::Named("create_task".into()));
    complete(&model, request).await;
    let bodies = server.bodies();
    let first = bodies[0].as_object().unwrap();
    for key in [
        "parallel_tool_calls",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "max_tokens",
        "thinking",
    ] {
        assert!(!first.contains_key(key), "{key} sent: {}", bodies[0]);
    }
    assert_eq!(
        bodies[1]["tool_choice"],
        json!({"type": "function", "function": {"name": "create_task"}})
    );
    assert!(bodies[1].get("parallel_tool_calls").is_none());
}

#[tokio::test]
async fn tool_call_turn_round_trips_with_the_same_ids() {
    let server = OpenAiServer::start([
        Script::tool_calls(&[("create_task", r#"{"title":"milk"}"#), ("get_stats", "")]),
        Script::text_stream(&["Added milk."]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let mut request = user("Add milk and show stats");
    request.tools = vec![task_tool()].into();
    let (events, response) = complete(&model, request.clone()).await;
    assert!(
        events.is_empty(),
        "a pure tool-call turn has no deltas: {events:?}"
    );
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        calls(&response),
        vec![
            ("call_0", "create_task", r#"{"title":"milk"}"#),
            ("call_1", "get_stats", "{}")
        ]
    );

    request.messages.push(ChatMessage::Assistant {
        content: None,
        tool_calls: response.tool_calls.clone(),
        reasoning: response.reasoning.clone(),
    });
    for call in &response.tool_calls {
        request.messages.push(ChatMessage::Tool {
            tool_call_id: call.id.clone(),
            content: format!("{} done", call.name),
        });
    }
    let (_, answer) = complete(&model, request).await;
    assert_eq!(answer.text, "Added milk.");

    let follow_up = &server.bodies()[1];
    assert_eq!(
        follow_up["messages"][2],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "create_task", "arguments": "{\"title\":\"milk\"}"}},
            {"id": "call_1", "type": "function", "function": {"name": "get_stats", "arguments": "{}"}}
        ]})
    );
    assert_eq!(
        follow_up["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_0", "content": "create_task done"})
    );
    assert_eq!(follow_up["messages"][4]["tool_call_id"], "call_1");
}

fn tool_turn(reasoning: Option<&str>) -> ChatMessage {
    ChatMessage::Assistant {
        content: None,
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            name: "list_tasks".into(),
            arguments: "{}".into(),
        }],
        reasoning: reasoning.map(Into::into),
    }
}

fn history_with_tool_turns() -> ModelRequest {
    let mut request = user("What is on my list?");
    request
        .messages
        .push(tool_turn(Some("I should list the tasks.")));
    request.messages.push(ChatMessage::Tool {
        tool_call_id: "call_1".into(),
        content: "[]".into(),
    });
    request.messages.push(ChatMessage::Assistant {
        content: Some("Nothing yet.".into()),
        tool_calls: vec![],
        reasoning: Some("plain answer".into()),
    });
    request.messages.push(tool_turn(None));
    request.messages.push(ChatMessage::Tool {
        tool_call_id: "call_1".into(),
        content: "[]".into(),
    });
    request.settings.max_tokens = Some(1000);
    request
}

#[tokio::test]
async fn mimo_echoes_reasoning_and_sends_thinking() {
    let server = OpenAiServer::start([Script::text_stream(&["ok"])]).await;
    let model = client(&server)
        .api_key("mimo-key")
        .dialect(Dialect::mimo().with_thinking(true))
        .build()
        .unwrap();
    complete(&model, history_with_tool_turns()).await;
    let body = &server.bodies()[0];
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[2]["reasoning_content"], "I should list the tasks.");
    assert_eq!(messages[2]["content"], Value::Null);
    // Not on turns without tool calls.
    assert!(messages[4].get("reasoning_content").is_none());
    // Every tool-call turn carries the field, empty when it had none.
    assert_eq!(messages[5]["reasoning_content"], "");
    assert_eq!(body["thinking"], json!({"type": "enabled"}));
    assert_eq!(body["max_completion_tokens"], 1000);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["stream_options"], json!({"include_usage": true}));

    let server = OpenAiServer::start([Script::text_stream(&["ok"])]).await;
    let model = client(&server)
        .dialect(Dialect::mimo().with_thinking(false))
        .build()
        .unwrap();
    complete(&model, user("hi")).await;
    assert_eq!(server.bodies()[0]["thinking"], json!({"type": "disabled"}));
}

#[tokio::test]
async fn deepseek_echoes_only_present_reasoning_and_openai_never() {
    let server =
        OpenAiServer::start([Script::text_stream(&["a"]), Script::text_stream(&["b"])]).await;
    let deepseek = client(&server)
        .dialect(Dialect::deepseek())
        .build()
        .unwrap();
    complete(&deepseek, history_with_tool_turns()).await;
    let openai = client(&server).dialect(Dialect::openai()).build().unwrap();
    complete(&openai, history_with_tool_turns()).await;
    let bodies = server.bodies();
    assert_eq!(
        bodies[0]["messages"][2]["reasoning_content"],
        "I should list the tasks."
    );
    assert!(bodies[0]["messages"][5].get("reasoning_content").is_none());
    for message in bodies[1]["messages"].as_array().unwrap() {
        assert!(message.get("reasoning_content").is_none(), "{message}");
    }
    assert!(bodies[1].get("thinking").is_none());
    assert_eq!(bodies[1]["max_completion_tokens"], 1000);
}

#[tokio::test]
async fn sends_bearer_key_and_extra_headers() {
    let server =
        OpenAiServer::start([Script::text_stream(&["a"]), Script::text_stream(&["b"])]).await;
    let model = client(&server)
        .api_key("sk-test-123")
        .header("X-Title", "chatkit-engine tests")
        .header("OpenAI-Organization", "org-1")
        .build()
        .unwrap();
    complete(&model, user("hi")).await;
    let ollama = client(&server).dialect(Dialect::ollama()).build().unwrap();
    complete(&ollama, user("hi")).await;
    let requests = server.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer sk-test-123")
    );
    assert_eq!(requests[0].header("x-title"), Some("chatkit-engine tests"));
    assert_eq!(requests[0].header("openai-organization"), Some("org-1"));
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests[0].header("accept"), Some("text/event-stream"));
    // No key (Ollama): no Authorization header at all.
    assert_eq!(requests[1].header("authorization"), None);
}

#[tokio::test]
async fn include_usage_follows_the_dialect() {
    let server =
        OpenAiServer::start([Script::text_stream(&["a"]), Script::text_stream(&["b"])]).await;
    let with = client(&server).dialect(Dialect::vllm()).build().unwrap();
    complete(&with, user("hi")).await;
    let without = client(&server)
        .dialect(Dialect::generic().with_include_usage(false))
        .build()
        .unwrap();
    complete(&without, user("hi")).await;
    let bodies = server.bodies();
    assert_eq!(bodies[0]["stream_options"], json!({"include_usage": true}));
    assert!(bodies[1].get("stream_options").is_none());
}

// ---------------------------------------------------------------------------
// Provider quirks in the stream (reference §4.5)

#[tokio::test]
async fn reasoning_content_streams_before_tool_calls() {
    let server = OpenAiServer::start([Script::chunks(&[
        chunks::delta(
            json!({"role": "assistant", "content": null, "reasoning_content": "The user "}),
        ),
        chunks::reasoning("wants milk."),
        chunks::tool_call(
            Some(0),
            Some("call_m1"),
            Some("create_task"),
            json!("{\"title\":\"milk\"}"),
        ),
        chunks::finish("tool_calls"),
        chunks::usage(30, 12, 16, 8),
    ])])
    .await;
    let model = client(&server).dialect(Dialect::mimo()).build().unwrap();
    let (events, response) = complete(&model, user("add milk")).await;
    assert_eq!(
        events,
        vec![
            ModelEvent::ReasoningDelta("The user ".into()),
            ModelEvent::ReasoningDelta("wants milk.".into())
        ]
    );
    assert_eq!(response.reasoning.as_deref(), Some("The user wants milk."));
    assert_eq!(
        calls(&response),
        vec![("call_m1", "create_task", r#"{"title":"milk"}"#)]
    );
    let usage = response.usage.unwrap();
    assert_eq!((usage.cached_tokens, usage.reasoning_tokens), (16, 8));
}

#[tokio::test]
async fn ollama_reasoning_field_and_all_calls_at_index_zero() {
    let server = OpenAiServer::start([Script::chunks(&[
        chunks::delta(json!({"role": "assistant", "content": "", "reasoning": "Two tasks."})),
        chunks::tool_call(
            Some(0),
            Some("call_a1"),
            Some("create_task"),
            json!("{\"title\":\"milk\"}"),
        ),
        chunks::tool_call(
            Some(0),
            Some("call_b2"),
            Some("create_task"),
            json!("{\"title\":\"eggs\"}"),
        ),
        chunks::finish("tool_calls"),
    ])])
    .await;
    let model = client(&server).dialect(Dialect::ollama()).build().unwrap();
    let (_, response) = complete(&model, user("milk and eggs")).await;
    assert_eq!(response.reasoning.as_deref(), Some("Two tasks."));
    assert_eq!(
        calls(&response),
        vec![
            ("call_a1", "create_task", r#"{"title":"milk"}"#),
            ("call_b2", "create_task", r#"{"title":"eggs"}"#)
        ]
    );
}

#[tokio::test]
async fn whole_calls_in_one_chunk_with_object_arguments_and_missing_ids() {
    let server = OpenAiServer::start([Script::chunks(&[
        chunks::delta(json!({"role": "assistant", "tool_calls": [
            {"index": 0, "type": "function", "function": {"name": "create_task", "arguments": {"title": "milk"}}},
            {"index": 1, "id": "", "type": "function", "function": {"name": "get_stats", "arguments": ""}},
            {"index": 2, "id": "call.with/odd:chars", "type": "function", "function": {"name": "list_tasks", "arguments": "{}"}}
        ]})),
        chunks::finish("tool_calls"),
    ])])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(
        calls(&response),
        vec![
            ("call_chatcmpl-test_0", "create_task", r#"{"title":"milk"}"#),
            ("call_chatcmpl-test_1", "get_stats", "{}"),
            ("call_with_odd_chars", "list_tasks", "{}")
        ]
    );
}

#[tokio::test]
async fn missing_index_fragments_open_new_calls() {
    let server = OpenAiServer::start([Script::chunks(&[
        chunks::tool_call(
            None,
            Some("call_x"),
            Some("create_task"),
            json!("{\"title\":\"a\"}"),
        ),
        chunks::tool_call(
            None,
            Some("call_y"),
            Some("create_task"),
            json!("{\"title\":\"b\"}"),
        ),
        chunks::finish("tool_calls"),
    ])])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(response.tool_calls.len(), 2);
    assert_eq!(response.tool_calls[1].id, "call_y");
}

#[tokio::test]
async fn finish_reason_stop_with_tool_calls_still_wants_tools() {
    let server = OpenAiServer::start([Script::chunks(&[
        chunks::tool_call(Some(0), Some("call_s"), Some("get_stats"), json!("{}")),
        chunks::finish("stop"),
    ])])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.tool_calls.len(), 1);
}

#[tokio::test]
async fn unknown_finish_reason_is_kept() {
    let server = OpenAiServer::start([Script::chunks(&[
        chunks::text("partial"),
        chunks::finish("insufficient_system_resource"),
    ])])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(
        response.finish_reason,
        FinishReason::Other("insufficient_system_resource".into())
    );
    assert_eq!(response.text, "partial");
}

#[tokio::test]
async fn keep_alive_comments_are_ignored() {
    let server = OpenAiServer::start([Script::sse([
        ": OPENROUTER PROCESSING",
        "",
        &chunks::data(&chunks::text("Hi")),
        "",
        ": keep-alive",
        "",
        &chunks::data(&chunks::finish("stop")),
        "",
        "data: [DONE]",
        "",
    ])])
    .await;
    let model = client(&server).build().unwrap();
    let (events, response) = complete(&model, user("x")).await;
    assert_eq!(text_deltas(&events), vec!["Hi"]);
    assert_eq!(response.text, "Hi");
}

#[tokio::test]
async fn eof_after_finish_reason_without_done_is_complete() {
    let server = OpenAiServer::start([Script::chunks_without_done(&[
        chunks::text("Done."),
        chunks::finish("stop"),
        chunks::usage(3, 2, 0, 0),
    ])])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(response.text, "Done.");
    assert_eq!(response.usage.map(|u| u.input_tokens), Some(3));
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn truncated_stream_after_text_is_an_error_item() {
    let server = OpenAiServer::start([
        Script::chunks_without_done(&[chunks::text("Hel")]),
        Script::text_stream(&["never used"]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let items = run(&model, user("x")).await.unwrap();
    assert!(matches!(&items[0], Ok(ModelEvent::TextDelta(t)) if t == "Hel"));
    assert!(
        matches!(&items[1], Err(Error::Model { message, .. }) if message.contains("truncated")),
        "{items:?}"
    );
    assert_eq!(items.len(), 2);
    assert_eq!(
        server.request_count(),
        1,
        "no retry after text was streamed"
    );
}

#[tokio::test]
async fn truncated_tool_call_stream_is_retried() {
    // Nothing reached the caller (tool-call fragments only), so it retries.
    let server = OpenAiServer::start([
        Script::chunks_without_done(&[chunks::tool_call(
            Some(0),
            Some("call_1"),
            Some("get_stats"),
            json!("{"),
        )]),
        Script::tool_calls(&[("get_stats", "{}")]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(calls(&response), vec![("call_0", "get_stats", "{}")]);
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn error_frame_before_output_is_returned_by_stream() {
    let server = OpenAiServer::start([Script::sse([
        r#"data: {"error": {"message": "Invalid schema for function 'create_task'", "type": "invalid_request_error", "code": "invalid_function_parameters"}}"#,
        "",
    ])])
    .await;
    let model = client(&server).build().unwrap();
    let err = run(&model, user("x")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Model { message, retryable: false, .. } if message.contains("Invalid schema")),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn transient_error_frame_before_output_is_retried() {
    let server = OpenAiServer::start([
        Script::sse([
            r#"data: {"error": {"message": "Model is overloaded", "type": "server_error"}}"#,
            "",
        ]),
        Script::text_stream(&["ok"]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(response.text, "ok");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn non_streamed_json_reply_is_accepted() {
    let server = OpenAiServer::start([Script::json(
        200,
        json!({"id": "chatcmpl-json", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Whole answer"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2}}),
    )])
    .await;
    let model = client(&server).build().unwrap();
    let (events, response) = complete(&model, user("x")).await;
    assert_eq!(text_deltas(&events), vec!["Whole answer"]);
    assert_eq!(response.text, "Whole answer");
}

// ---------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn rate_limit_then_success_gives_one_response() {
    let server = OpenAiServer::start([Script::status(429), Script::text_stream(&["ok"])]).await;
    let model = client(&server).build().unwrap();
    let (events, response) = complete(&model, user("x")).await;
    assert_eq!(text_deltas(&events), vec!["ok"]);
    assert_eq!(response.text, "ok");
    assert_eq!(server.request_count(), 2);
    assert_eq!(server.bodies()[0], server.bodies()[1]);
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let server = OpenAiServer::start([
        Script::status(500),
        Script::status(502),
        Script::status(503),
        Script::text_stream(&["too late"]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let err = run(&model, user("x")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Model { message, retryable: true, .. } if message.starts_with("HTTP 503")),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 3);
    assert_eq!(server.remaining(), 1);

    let server = OpenAiServer::start([Script::status(500), Script::text_stream(&["x"])]).await;
    let model = client(&server).max_attempts(1).build().unwrap();
    assert!(run(&model, user("x")).await.is_err());
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = OpenAiServer::start([Script::status(400), Script::text_stream(&["x"])]).await;
    let model = client(&server).build().unwrap();
    let err = run(&model, user("x")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Model { retryable: false, message, .. } if message.contains("scripted status 400"))
    );
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_and_capped() {
    let server = OpenAiServer::start([
        Script::status(429).header("retry-after", "0.3"),
        Script::text_stream(&["ok"]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let started = Instant::now();
    complete(&model, user("x")).await;
    assert!(
        started.elapsed() >= ms(300),
        "waited only {:?}",
        started.elapsed()
    );

    let server = OpenAiServer::start([
        Script::status(503).header("retry-after", "120"),
        Script::text_stream(&["ok"]),
    ])
    .await;
    let model = client(&server)
        .retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: ms(1),
            max_backoff: ms(1),
            max_retry_after: ms(50),
        })
        .build()
        .unwrap();
    let started = Instant::now();
    complete(&model, user("x")).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn server_error_after_text_is_an_error_item_without_retry() {
    let server = OpenAiServer::start([
        Script::sse([
            chunks::data(&chunks::text("Partial ")),
            String::new(),
            r#"data: {"error": {"message": "The server had an error", "type": "server_error", "code": 500}}"#.into(),
            String::new(),
        ]),
        Script::text_stream(&["never"]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let items = run(&model, user("x")).await.unwrap();
    assert!(matches!(&items[0], Ok(ModelEvent::TextDelta(t)) if t == "Partial "));
    assert!(
        matches!(&items[1], Err(Error::Model { retryable: true, message, .. }) if message.contains("server had an error"))
    );
    assert_eq!(items.len(), 2);
    assert_eq!(server.request_count(), 1);
}

// ---------------------------------------------------------------------------
// Timeouts and broken connections

#[tokio::test]
async fn first_token_timeout() {
    // The server hangs before sending anything.
    let server = OpenAiServer::start([Script::text_stream(&["late"]).delay(ms(2000))]).await;
    let model = client(&server)
        .max_attempts(1)
        .first_token_timeout(ms(150))
        .build()
        .unwrap();
    // A timeout error (not the late text) shows the deadline fired.
    let err = run(&model, user("x")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");

    // Headers arrive, but no chunk: same timeout; retried before the first token.
    let server = OpenAiServer::start([
        Script::text_stream(&["late"]).pause_after(0, ms(2000)),
        Script::text_stream(&["on time"]),
    ])
    .await;
    let model = client(&server)
        .first_token_timeout(ms(150))
        .build()
        .unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(response.text, "on time");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn idle_timeout_after_text_is_an_error_item() {
    // Role chunk + "Hel" (4 lines), then a stall longer than the idle limit.
    let server = OpenAiServer::start([
        Script::text_stream(&["Hel", "lo"]).pause_after(4, ms(2000)),
        Script::text_stream(&["never"]),
    ])
    .await;
    let model = client(&server).idle_timeout(ms(150)).build().unwrap();
    let items = run(&model, user("x")).await.unwrap();
    assert!(matches!(&items[0], Ok(ModelEvent::TextDelta(t)) if t == "Hel"));
    assert!(
        matches!(&items[1], Err(Error::Timeout(m)) if m.contains("stalled")),
        "{items:?}"
    );
    assert_eq!(items.len(), 2);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn connection_drop_mid_stream() {
    // After text: an error item, no retry.
    let server = OpenAiServer::start([
        Script::text_stream(&["Hel", "lo"]).drop_after(4),
        Script::text_stream(&["never"]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let items = run(&model, user("x")).await.unwrap();
    assert!(matches!(&items[0], Ok(ModelEvent::TextDelta(t)) if t == "Hel"));
    assert!(
        matches!(&items[1], Err(Error::Model { retryable: true, message, .. }) if message.contains("broke")),
        "{items:?}"
    );
    // The transport's own error is kept as the cause.
    let Err(err) = &items[1] else { unreachable!() };
    let cause = std::error::Error::source(err).expect("the broken connection is the cause");
    assert!(
        cause.downcast_ref::<reqwest::Error>().is_some(),
        "{cause:?}"
    );
    assert_eq!(items.len(), 2);
    assert_eq!(server.request_count(), 1);

    // Before any delta (only the role chunk arrived): retried.
    let server = OpenAiServer::start([
        Script::text_stream(&["Hel", "lo"]).drop_after(2),
        Script::text_stream(&["again"]),
    ])
    .await;
    let model = client(&server).build().unwrap();
    let (_, response) = complete(&model, user("x")).await;
    assert_eq!(response.text, "again");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let model = OpenAiCompatible::builder("test-model")
        .base_url(closed)
        .retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: ms(1),
            max_backoff: ms(2),
            max_retry_after: ms(10),
        })
        .build()
        .unwrap();
    let err = run(&model, user("x")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Model { retryable: true, message, .. } if message.contains("connect")),
        "{err:?}"
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_the_call() {
    let server =
        OpenAiServer::start([Script::text_stream(&["a", "b", "c"]).line_delay(ms(50))]).await;
    let model = client(&server).build().unwrap();
    let mut stream = model.stream(user("x")).await.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(ModelEvent::TextDelta(_)))
    ));
    drop(stream);
    assert_eq!(server.request_count(), 1);
}

/// An h2c server (HTTP/2 without TLS) that counts its connections and the
/// HTTP versions of its requests, and answers every call with "hi".
async fn h2c_server() -> (
    String,
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<axum::http::Version>>>,
) {
    use axum::serve::ListenerExt as _;
    let connections = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&versions);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |request: axum::extract::Request| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(request.version());
                // Long enough that concurrent calls overlap.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let body = concat!(
                    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
                    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                    "data: [DONE]\n\n"
                );
                ([("content-type", "text/event-stream")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counted = Arc::clone(&connections);
    let listener = listener.tap_io(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), connections, versions)
}

#[tokio::test]
async fn http2_prior_knowledge_carries_concurrent_calls_on_one_connection() {
    let (base_url, connections, versions) = h2c_server().await;
    let model = OpenAiCompatible::builder("test-model")
        .base_url(base_url)
        .http2_prior_knowledge(true)
        .build()
        .unwrap();

    let calls = (0..8).map(|i| complete(&model, user(&format!("call {i}"))));
    let answers = futures::future::join_all(calls).await;

    for (_, response) in &answers {
        assert_eq!(response.text, "hi");
    }
    let versions = versions.lock().unwrap().clone();
    assert_eq!(versions.len(), 8);
    assert!(versions.iter().all(|v| *v == axum::http::Version::HTTP_2));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_prior_knowledge_a_plain_http_provider_gets_http1() {
    let (base_url, _, versions) = h2c_server().await;
    let model = OpenAiCompatible::builder("test-model")
        .base_url(base_url)
        .build()
        .unwrap();

    let (_, response) = complete(&model, user("hello")).await;

    assert_eq!(response.text, "hi");
    assert_eq!(
        versions.lock().unwrap().as_slice(),
        [axum::http::Version::HTTP_11]
    );
}
