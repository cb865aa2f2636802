//! The task assistant end to end with a real `OpenAiCompatible` client
//! talking to the local OpenAI-compatible test server, on SQLite and on
//! PostgreSQL.

#[macro_use]
#[path = "support/db.rs"]
mod db;
#[path = "support/openai_server.rs"]
mod openai_server;
#[path = "support/engine.rs"]
mod support;

use chatkit_engine::RequestContext;
use chatkit_engine::agents::{RunConfig, Runner};
use chatkit_engine::engine::ChatEngine;
use chatkit_engine::models::{Dialect, OpenAiCompatible};
use chatkit_engine::store;
use chatkit_engine::todo::{self, Assistant, SharedTaskStore, TaskQuery};
use db::{Backend, TestDb};
use openai_server::{OpenAiServer, Script, chunks};
use serde_json::Value;
use std::sync::Arc;
use support::*;

/// The default assistant on `db`, talking to `server` with `dialect`.
async fn engine_with(db: &TestDb, server: &OpenAiServer, dialect: Dialect) -> (ChatEngine, Stores) {
    let database = store::connect(&db.url).await.unwrap();
    let model = OpenAiCompatible::builder("test-model")
        .base_url(server.base_url())
        .api_key("sk-test")
        .dialect(dialect)
        .build()
        .unwrap();
    let runner = Runner::new(RunConfig::new(Arc::new(model)));
    let tasks = todo::task_table(&database).await.unwrap();
    let responder = Assistant::new(tasks.clone(), runner);
    let engine = ChatEngine::builder()
        .shared_store(database.store())
        .responder(responder)
        .build()
        .unwrap();
    (engine, Stores { tasks })
}

/// The task table the engine's tools write to.
struct Stores {
    tasks: SharedTaskStore,
}

async fn engine(db: &TestDb, server: &OpenAiServer) -> (ChatEngine, Stores) {
    engine_with(db, server, Dialect::openai()).await
}

async fn a_tool_call_from_the_provider_creates_the_task_and_the_answer_streams(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = OpenAiServer::start([
        Script::tool_calls(&[("create_task", r#"{"title":"buy milk","user_id":"mallory"}"#)]),
        Script::text_stream(&["Added ", "\"buy milk\" ", "to your tasks."]),
    ])
    .await;
    let (engine, stores) = engine(&db, &server).await;
    let events = wire(&call_stream(&engine, "alice", create("add a task to buy milk")).await);

    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e["update"]["type"] == "assistant_message.content_part.text_delta")
        .map(|e| e["update"]["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Added ", "\"buy milk\" ", "to your tasks."]);
    let workflow = events
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "workflow")
        .unwrap();
    assert_eq!(
        workflow["item"]["workflow"]["tasks"][0]["status_indicator"],
        "complete"
    );

    let alice = stores
        .tasks
        .list(&TaskQuery::default(), &RequestContext::new("alice"))
        .await
        .unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].title, "buy milk");
    let mallory = stores
        .tasks
        .list(&TaskQuery::default(), &RequestContext::new("mallory"))
        .await
        .unwrap();
    assert!(
        mallory.is_empty(),
        "a user id in model arguments is ignored"
    );

    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2);
    let first = &bodies[0];
    assert_eq!(first["messages"][0]["role"], "system");
    assert!(
        first["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Task Orchestrator")
    );
    assert_eq!(
        first["messages"].as_array().unwrap().last().unwrap()["content"],
        "add a task to buy milk"
    );
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    for name in [
        "create_task",
        "list_tasks",
        "get_task",
        "update_task",
        "delete_task",
        "toggle_complete",
        "get_stats",
        "transfer_to_urdu_specialist",
    ] {
        assert!(tools.contains(&name), "{name} offered to the model");
    }
    let second: Vec<Value> = bodies[1]["messages"].as_array().unwrap().clone();
    let assistant = second.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(assistant["tool_calls"][0]["id"], "call_0");
    let tool = second.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], "call_0");
    assert!(
        tool["content"]
            .as_str()
            .unwrap()
            .contains(r#""success":true"#)
    );
}

async fn a_provider_failure_mid_stream_ends_with_an_error_and_the_thread_accepts_the_next_message(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let broken = Script::chunks(&[
        chunks::delta(serde_json::json!({"role": "assistant", "content": ""})),
        chunks::text("Half an "),
        chunks::text("answer"),
    ])
    .drop_after(4);
    let server = OpenAiServer::start([broken, Script::text_stream(&["Second ", "try."])]).await;
    let (engine, _stores) = engine(&db, &server).await;

    let events = wire(&call_stream(&engine, "alice", create("hello")).await);
    let last = events.last().unwrap();
    assert!(
        events.iter().any(|e| e["update"]["delta"] == "Half an "),
        "text streamed before the failure"
    );
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event");
    assert_eq!(error["code"], "stream.error");
    assert_eq!(error["allow_retry"], true);
    assert!(last["type"] == "error" || last["type"] == "thread.updated");
    let thread_id = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    let stored = items(&engine, "alice", &thread_id).await;
    let kinds: Vec<&str> = stored.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["user_message"],
        "the half answer is not stored as if it were complete"
    );

    let next = wire(&call_stream(&engine, "alice", add_message(&thread_id, "again")).await);
    assert!(next.iter().all(|e| e["type"] != "error"));
    let stored = items(&engine, "alice", &thread_id).await;
    let kinds: Vec<&str> = stored.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user_message", "user_message", "assistant_message"]);
    assert_eq!(stored[2]["content"][0]["text"], "Second try.");
    assert_eq!(
        server.request_count(),
        2,
        "a stream that already showed text is not retried"
    );
}

async fn mimo_reasoning_becomes_a_reasoning_workflow_and_is_echoed_on_tool_call_turns(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let thinking_then_call = Script::chunks(&[
        chunks::reasoning("The user wants "),
        chunks::reasoning("their stats."),
        chunks::tool_call(
            Some(0),
            Some("call_s"),
            Some("get_stats"),
            serde_json::json!("{}"),
        ),
        chunks::finish("tool_calls"),
    ]);
    let server =
        OpenAiServer::start([thinking_then_call, Script::text_stream(&["No tasks yet."])]).await;
    let (engine, _stores) = engine_with(&db, &server, Dialect::mimo()).await;

    let events = wire(&call_stream(&engine, "alice", create("how many tasks do I have?")).await);
    let reasoning = events
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["workflow"]["type"] == "reasoning")
        .expect("a reasoning workflow");
    let thought = &reasoning["item"]["workflow"]["tasks"][0];
    assert_eq!(thought["type"], "thought");
    assert_eq!(thought["content"], "The user wants their stats.");
    assert!(reasoning["item"]["workflow"]["summary"]["duration"].is_i64());

    let second = &server.bodies()[1];
    let assistant = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(
        assistant["reasoning_content"],
        "The user wants their stats."
    );
    assert_eq!(assistant["tool_calls"][0]["id"], "call_s");
}

async fn urdu_reaches_the_specialist_without_an_orchestrator_round_trip(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = OpenAiServer::start([Script::text_stream(&["جی، ", "ضرور۔"])]).await;
    let (engine, _stores) = engine(&db, &server).await;
    let events = wire(&call_stream(&engine, "alice", create("میرے ٹاسک دکھائیں")).await);
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "assistant_message")
    );
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 1, "one model call, made as the specialist");
    assert!(
        bodies[0]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Urdu Specialist")
    );
}

async fn a_client_that_stops_mid_answer_keeps_the_partial_text(backend: Backend) {
    let db = TestDb::new(backend).await;
    let slow = Script::chunks(&[
        chunks::delta(serde_json::json!({"role": "assistant", "content": ""})),
        chunks::text("Partial "),
        chunks::text("answer"),
        chunks::text(" that never ends"),
    ])
    .pause_after(6, std::time::Duration::from_secs(30));
    let server = OpenAiServer::start([slow]).await;
    let (engine, _stores) = engine(&db, &server).await;
    let chatkit_engine::engine::Response::Stream(mut stream) = engine
        .process(
            create("tell me a story").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await
        .unwrap()
    else {
        panic!("streams")
    };
    let mut thread_id = String::new();
    let mut seen = String::new();
    while let Some(event) = stream.next_event().await {
        match event {
            chatkit_engine::protocol::ThreadStreamEvent::ThreadCreated { thread } => {
                thread_id = thread.id
            }
            chatkit_engine::protocol::ThreadStreamEvent::ItemUpdated {
                update: chatkit_engine::protocol::ThreadItemUpdate::TextDelta { delta, .. },
                ..
            } => {
                seen.push_str(&delta);
                if seen == "Partial answer" {
                    break;
                }
            }
            _ => {}
        }
    }
    drop(stream);
    settle(&engine).await;
    let stored = engine
        .store()
        .load_thread_items(
            &thread_id,
            None,
            20,
            chatkit_engine::protocol::Order::Asc,
            &RequestContext::new("alice"),
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = stored.data.iter().map(|i| i.type_name()).collect();
    assert_eq!(
        kinds,
        ["user_message", "assistant_message", "sdk_hidden_context"]
    );
    match &stored.data[1].kind {
        chatkit_engine::protocol::ItemKind::AssistantMessage(message) => {
            assert_eq!(message.text(), "Partial answer")
        }
        other => panic!("{other:?}"),
    }
}

on_both_stores!(
    a_tool_call_from_the_provider_creates_the_task_and_the_answer_streams,
    a_provider_failure_mid_stream_ends_with_an_error_and_the_thread_accepts_the_next_message,
    mimo_reasoning_becomes_a_reasoning_workflow_and_is_echoed_on_tool_call_turns,
    urdu_reaches_the_specialist_without_an_orchestrator_round_trip,
    a_client_that_stops_mid_answer_keeps_the_partial_text,
);
