//! The engine's request handling, specified through `ChatEngine::process`.

#[path = "support/engine.rs"]
mod support;

#[path = "support/db.rs"]
mod db;

use async_trait::async_trait;
use chatkit_engine::engine::{
    CANCELLED_MARKER_TEXT, ChatEngine, EchoResponder, Responder, Response, Turn, UploadUrls,
    stream_text,
};
use chatkit_engine::protocol::{
    Action, AssistantMessage, AssistantMessageContent, Attachment, ChoiceOption, ClientToolCall,
    ClientToolCallStatus, FeedbackKind, HiddenContext, IdKind, ItemKind, Order, Page,
    StructuredInput, StructuredInputItem, StructuredInputKind, StructuredInputStatus, ThreadItem,
    ThreadItemUpdate, ThreadMetadata, ThreadStreamEvent, WidgetItem,
};
use chatkit_engine::store::{SqliteStore, Store as _};
use chatkit_engine::{EngineConfig, Error, RequestContext, Result};
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;
use tokio::sync::Notify;

/// A responder whose behaviour is picked by the user's text, so each test can
/// ask for the events it needs.
#[derive(Default)]
struct Scripted {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl Responder for Scripted {
    async fn respond(&self, turn: &mut Turn, input: Option<&ThreadItem>) -> Result<()> {
        let text = match input.map(|item| &item.kind) {
            Some(ItemKind::UserMessage(message)) => message.text(),
            _ => return stream_text(turn, "continued").await,
        };
        match text.as_str() {
            "fail" => {
                turn.emit(ThreadStreamEvent::ProgressUpdate {
                    icon: None,
                    text: "working".into(),
                })
                .await?;
                Err(Error::Internal("the model exploded".into()))
            }
            "custom fail" => Err(Error::Custom {
                message: "Quota exceeded, try tomorrow.".into(),
                allow_retry: false,
            }),
            "hidden" => {
                let hidden = turn.new_item(
                    IdKind::Message,
                    ItemKind::HiddenContextItem(HiddenContext {
                        content: Some(json!("secret")),
                    }),
                );
                turn.emit(ThreadStreamEvent::ItemDone { item: hidden })
                    .await?;
                stream_text(turn, "visible").await
            }
            "replace and remove" => {
                let answer = assistant(turn, "Done.");
                turn.emit(ThreadStreamEvent::ItemDone {
                    item: answer.clone(),
                })
                .await?;
                let temp = assistant(turn, "temporary");
                turn.emit(ThreadStreamEvent::ItemDone { item: temp.clone() })
                    .await?;
                turn.emit(ThreadStreamEvent::ItemRemoved { item_id: temp.id })
                    .await?;
                let edited = ThreadItem {
                    kind: ItemKind::AssistantMessage(AssistantMessage {
                        content: vec![AssistantMessageContent::text("Done (edited).")],
                    }),
                    ..answer
                };
                turn.emit(ThreadStreamEvent::ItemReplaced { item: edited })
                    .await
            }
            "block" => {
                let item = turn.new_item(
                    IdKind::Message,
                    ItemKind::AssistantMessage(AssistantMessage {
                        content: vec![AssistantMessageContent::text("Partial ")],
                    }),
                );
                let id = item.id.clone();
                turn.emit(ThreadStreamEvent::ItemAdded { item }).await?;
                turn.emit(ThreadStreamEvent::ItemUpdated {
                    item_id: id,
                    update: ThreadItemUpdate::TextDelta {
                        content_index: 0,
                        delta: "answer".into(),
                    },
                })
                .await?;
                self.started.notify_one();
                self.release.notified().await;
                stream_text(turn, "released").await
            }
            "client tool" => {
                let call = turn.new_item(
                    IdKind::ToolCall,
                    ItemKind::ClientToolCall(ClientToolCall {
                        status: ClientToolCallStatus::Pending,
                        call_id: "call_1".into(),
                        name: "get_selection".into(),
                        arguments: json!({"scope": "page", "z": null}),
                        output: None,
                    }),
                );
                turn.emit(ThreadStreamEvent::ItemDone { item: call }).await
            }
            "form" => {
                let form = turn.new_item(
                    IdKind::Message,
                    ItemKind::StructuredInput(StructuredInputItem {
                        status: StructuredInputStatus::Pending,
                        inputs: vec![
                            StructuredInput {
                                id: "priority".into(),
                                question: "Priority?".into(),
                                answer: None,
                                kind: StructuredInputKind::MultipleChoice {
                                    options: vec![
                                        ChoiceOption {
                                            value: "Low".into(),
                                        },
                                        ChoiceOption {
                                            value: "High".into(),
                                        },
                                    ],
                                    multiple: false,
                                },
                            },
                            StructuredInput {
                                id: "notes".into(),
                                question: "Notes?".into(),
                                answer: None,
                                kind: StructuredInputKind::Freeform {
                                    description: Some("Optional".into()),
                                },
                            },
                        ],
                    }),
                );
                turn.emit(ThreadStreamEvent::ItemDone { item: form }).await
            }
            "widget" => {
                let widget = turn.new_item(IdKind::Message, ItemKind::Widget(WidgetItem { widget: json!({"type":"Card","children":[{"type":"Text","value":"Click me"}]}), copy_text: None }));
                turn.emit(ThreadStreamEvent::ItemDone { item: widget })
                    .await
            }
            other => stream_text(turn, other).await,
        }
    }

    async fn action(
        &self,
        turn: &mut Turn,
        action: &Action,
        sender: Option<&ThreadItem>,
    ) -> Result<()> {
        let from = sender.map(|item| item.id.as_str()).unwrap_or("nowhere");
        stream_text(turn, &format!("action {} from {from}", action.kind)).await
    }

    async fn sync_action(
        &self,
        _thread: &ThreadMetadata,
        _action: &Action,
        sender: Option<&ThreadItem>,
        _ctx: &RequestContext,
    ) -> Result<Option<ThreadItem>> {
        Ok(sender.cloned().map(|mut item| {
            if let ItemKind::Widget(widget) = &mut item.kind {
                widget.copy_text = Some("clicked".into());
            }
            item
        }))
    }

    async fn transcribe(
        &self,
        audio: &[u8],
        media_type: &str,
        _ctx: &RequestContext,
    ) -> Result<String> {
        Ok(format!("{} bytes of {media_type}", audio.len()))
    }
}

fn assistant(turn: &Turn, text: &str) -> ThreadItem {
    turn.new_item(
        IdKind::Message,
        ItemKind::AssistantMessage(AssistantMessage {
            content: vec![AssistantMessageContent::text(text)],
        }),
    )
}

async fn engine_with(responder: impl Responder) -> ChatEngine {
    ChatEngine::builder()
        .store(SqliteStore::in_memory().await.unwrap())
        .responder(responder)
        .attachment_store(UploadUrls::new("https://files.example.com/attachments"))
        .build()
        .unwrap()
}

async fn engine() -> ChatEngine {
    engine_with(Scripted::default()).await
}

fn item_types(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn threads_create_streams_the_created_thread_the_user_message_then_the_answer() {
    let engine = engine_with(EchoResponder).await;
    let events = call_stream(&engine, "alice", create("hello there")).await;
    assert_eq!(
        types(&events),
        [
            "thread.created",
            "thread.item.done",
            "stream_options",
            "thread.item.added",
            "thread.item.updated",
            "thread.item.updated",
            "thread.item.updated",
            "thread.item.updated",
            "thread.item.done",
            "thread.updated",
        ]
    );
    let wire = wire(&events);
    assert_eq!(
        wire[0]["thread"]["items"],
        json!({"data":[],"has_more":false})
    );
    assert_eq!(wire[0]["thread"]["metadata"], json!({}));
    assert!(
        wire[0]["thread"].get("title").is_none(),
        "no title until set"
    );
    assert_eq!(wire[1]["item"]["type"], "user_message");
    assert_eq!(wire[2]["stream_options"], json!({"allow_cancel": true}));
    assert_eq!(wire[8]["item"]["content"][0]["text"], "hello there");
    assert_eq!(wire[9]["thread"]["title"], "hello there");

    let thread_id = created_thread_id(&events);
    let thread = call_json(
        &engine,
        "alice",
        json!({"type":"threads.get_by_id","params":{"thread_id":thread_id}}),
    )
    .await;
    assert_eq!(thread["title"], "hello there");
    assert_eq!(
        item_types(thread["items"]["data"].as_array().unwrap()),
        ["user_message", "assistant_message"]
    );
}

#[tokio::test]
async fn ids_are_long_random_and_timestamps_are_utc() {
    let engine = engine_with(EchoResponder).await;
    let events = wire(&call_stream(&engine, "alice", create("hi")).await);
    let thread_id = events[0]["thread"]["id"].as_str().unwrap();
    let message_id = events[1]["item"]["id"].as_str().unwrap();
    assert!(thread_id.starts_with("thr_") && thread_id.len() == 4 + 32);
    assert!(message_id.starts_with("msg_") && message_id.len() == 4 + 32);
    assert!(
        events[1]["item"]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn the_user_message_is_persisted_before_the_responder_runs_and_failures_become_error_events()
{
    let engine = engine().await;
    let events = call_stream(&engine, "alice", create("fail")).await;
    let wire = wire(&events);
    assert_eq!(
        types(&events),
        [
            "thread.created",
            "thread.item.done",
            "stream_options",
            "progress_update",
            "error"
        ]
    );
    assert_eq!(
        wire[4],
        json!({"type":"error","code":"stream.error","allow_retry":true})
    );

    let thread_id = created_thread_id(&events);
    assert_eq!(
        item_types(&items(&engine, "alice", &thread_id).await),
        ["user_message"]
    );

    // The thread stays usable.
    let next = call_stream(&engine, "alice", add_message(&thread_id, "again")).await;
    assert_eq!(types(&next).last(), Some(&"thread.item.done"));
    assert_eq!(
        item_types(&items(&engine, "alice", &thread_id).await),
        ["user_message", "user_message", "assistant_message"]
    );
}

#[tokio::test]
async fn custom_errors_carry_their_message() {
    let engine = engine().await;
    let events = wire(&call_stream(&engine, "alice", create("custom fail")).await);
    assert_eq!(
        events.last().unwrap(),
        &json!({"type":"error","code":"custom","message":"Quota exceeded, try tomorrow.","allow_retry":false})
    );
}

#[tokio::test]
async fn hidden_items_are_persisted_but_never_sent() {
    let engine = engine().await;
    let events = call_stream(&engine, "alice", create("hidden")).await;
    let wire_text = serde_json::to_string(&wire(&events)).unwrap();
    assert!(!wire_text.contains("hidden_context_item"));
    let thread_id = created_thread_id(&events);
    // Listed items leave it out, but the store has it.
    assert_eq!(
        item_types(&items(&engine, "alice", &thread_id).await),
        ["user_message", "assistant_message"]
    );
    let stored = engine
        .store()
        .load_thread_items(
            &thread_id,
            None,
            50,
            chatkit_engine::protocol::Order::Asc,
            &RequestContext::new("alice"),
        )
        .await
        .unwrap();
    let kinds: Vec<_> = stored.data.iter().map(|item| item.type_name()).collect();
    assert_eq!(
        kinds,
        ["user_message", "hidden_context_item", "assistant_message"]
    );
}

#[tokio::test]
async fn replaced_items_are_upserted_and_removed_items_deleted() {
    let engine = engine().await;
    let events = call_stream(&engine, "alice", create("replace and remove")).await;
    assert!(types(&events).contains(&"thread.item.removed"));
    assert!(types(&events).contains(&"thread.item.replaced"));
    let thread_id = created_thread_id(&events);
    let stored = items(&engine, "alice", &thread_id).await;
    assert_eq!(item_types(&stored), ["user_message", "assistant_message"]);
    assert_eq!(stored[1]["content"][0]["text"], "Done (edited).");
}

#[tokio::test]
async fn a_client_that_disconnects_keeps_the_partial_answer_and_a_hidden_marker() {
    let scripted = Scripted::default();
    let started = scripted.started.clone();
    let engine = engine_with(scripted).await;
    let Response::Stream(mut stream) = engine
        .process(
            create("block").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await
        .unwrap()
    else {
        panic!("streams")
    };
    let thread_id = match stream.next_event().await {
        Some(ThreadStreamEvent::ThreadCreated { thread }) => thread.id,
        other => panic!("{other:?}"),
    };
    started.notified().await;
    drop(stream);
    settle(&engine).await;

    let stored = engine
        .store()
        .load_thread_items(
            &thread_id,
            None,
            50,
            chatkit_engine::protocol::Order::Asc,
            &RequestContext::new("alice"),
        )
        .await
        .unwrap();
    let kinds: Vec<_> = stored.data.iter().map(|item| item.type_name()).collect();
    assert_eq!(
        kinds,
        ["user_message", "assistant_message", "sdk_hidden_context"]
    );
    match (&stored.data[1].kind, &stored.data[2].kind) {
        (ItemKind::AssistantMessage(message), ItemKind::SdkHiddenContext(marker)) => {
            assert_eq!(message.text(), "Partial answer");
            assert_eq!(marker.content, CANCELLED_MARKER_TEXT);
        }
        other => panic!("{other:?}"),
    }
    // The marker never reaches the client.
    assert_eq!(
        item_types(&items(&engine, "alice", &thread_id).await),
        ["user_message", "assistant_message"]
    );
}

#[tokio::test]
async fn a_second_request_on_a_busy_thread_gets_an_error_event_and_changes_nothing() {
    let scripted = Scripted::default();
    let (started, release) = (scripted.started.clone(), scripted.release.clone());
    let engine = engine_with(scripted).await;
    let first = call_stream(&engine, "alice", create("hi")).await;
    let thread_id = created_thread_id(&first);

    let Response::Stream(running) = engine
        .process(
            add_message(&thread_id, "block").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await
        .unwrap()
    else {
        panic!("streams")
    };
    started.notified().await;
    let second =
        wire(&call_stream(&engine, "alice", add_message(&thread_id, "interleave me")).await);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["type"], "error");
    assert_eq!(second[0]["code"], "custom");
    assert_eq!(second[0]["allow_retry"], true);
    assert_eq!(
        second[0]["reason"], "thread_busy",
        "a code clients can match on"
    );

    release.notify_one();
    let rest = running.collect_events().await;
    assert_eq!(types(&rest).last(), Some(&"thread.item.done"));
    let texts: Vec<String> = items(&engine, "alice", &thread_id)
        .await
        .iter()
        .filter(|item| item["type"] == "user_message")
        .map(|item| item["content"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["hi", "block"]);
}

/// Two "replicas": engines with their own pools on one PostgreSQL database
/// (through the test pooler when the run has one), each with its own
/// responder.
async fn replicas_on_postgres(
    db: &db::TestDb,
    lease_secs: u64,
) -> [(ChatEngine, Arc<Notify>, Arc<Notify>); 2] {
    let open = || async {
        let scripted = Scripted::default();
        let handles = (scripted.started.clone(), scripted.release.clone());
        let engine = ChatEngine::builder()
            .shared_store(db.open().await)
            .responder(scripted)
            .config(EngineConfig {
                turn_lease_secs: lease_secs,
                ..EngineConfig::default()
            })
            .build()
            .unwrap();
        (engine, handles.0, handles.1)
    };
    [open().await, open().await]
}

#[tokio::test]
async fn a_busy_thread_is_busy_on_every_replica_of_the_database_until_its_turn_ends() {
    let db = db::TestDb::postgres().await;
    let [(a, a_started, a_release), (b, _, _)] = replicas_on_postgres(&db, 30).await;
    let thread_id = created_thread_id(&call_stream(&a, "alice", create("hi")).await);

    let Response::Stream(running) = a
        .process(
            add_message(&thread_id, "block").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await
        .unwrap()
    else {
        panic!("streams")
    };
    a_started.notified().await;
    let second = wire(&call_stream(&b, "alice", add_message(&thread_id, "interleave me")).await);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0]["reason"], "thread_busy");
    // Another user's request is not held up by Alice's lease.
    let bobs = call_stream(&b, "bob", create("hello")).await;
    assert_eq!(types(&bobs).first(), Some(&"thread.created"));

    a_release.notify_one();
    let rest = running.collect_events().await;
    assert_eq!(types(&rest).last(), Some(&"thread.item.done"));
    // Released at the end of the turn: the other replica can go on at once.
    let next = call_stream(&b, "alice", add_message(&thread_id, "after")).await;
    assert!(
        !wire(&next).iter().any(|event| event["type"] == "error"),
        "{next:?}"
    );
    let texts: Vec<String> = items(&b, "alice", &thread_id)
        .await
        .iter()
        .filter(|item| item["type"] == "user_message")
        .map(|item| item["content"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["hi", "block", "after"]);
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM chat_turn_leases").await,
        0,
        "every lease was released"
    );
}

#[tokio::test]
async fn a_turn_outliving_its_lease_time_keeps_the_thread_by_renewing_the_lease() {
    let db = db::TestDb::postgres().await;
    let [(a, a_started, a_release), (b, _, _)] = replicas_on_postgres(&db, 1).await;
    let thread_id = created_thread_id(&call_stream(&a, "alice", create("hi")).await);
    let Response::Stream(running) = a
        .process(
            add_message(&thread_id, "block").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await
        .unwrap()
    else {
        panic!("streams")
    };
    a_started.notified().await;
    // Wait until the database's clock is well past the first expiry: only
    // renewals can have kept the lease alive.
    let first_expiry: f64 = db
        .scalar_f64("SELECT EXTRACT(EPOCH FROM expires_at) FROM chat_turn_leases")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while db.scalar_f64("SELECT EXTRACT(EPOCH FROM now())").await < first_expiry + 1.5 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let second = wire(&call_stream(&b, "alice", add_message(&thread_id, "interleave me")).await);
    assert_eq!(second[0]["reason"], "thread_busy", "{second:?}");
    a_release.notify_one();
    running.collect_events().await;
}

#[tokio::test]
async fn the_lease_of_a_replica_that_died_expires_and_the_thread_is_usable_again() {
    let db = db::TestDb::postgres().await;
    let [(a, _, _), (b, _, _)] = replicas_on_postgres(&db, 30).await;
    let thread_id = created_thread_id(&call_stream(&a, "alice", create("hi")).await);
    // A replica that died mid-turn leaves its lease row behind...
    assert!(
        a.store()
            .try_lease_turn(
                &thread_id,
                "dead-replica/turn",
                std::time::Duration::from_secs(300),
                &RequestContext::new("alice"),
            )
            .await
            .unwrap()
    );
    let busy = wire(&call_stream(&b, "alice", add_message(&thread_id, "now?")).await);
    assert_eq!(busy[0]["reason"], "thread_busy");
    // ...whose last renewal was long enough ago that it expires in a second.
    db.execute("UPDATE chat_turn_leases SET expires_at = now() + interval '1 second'")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let events = wire(&call_stream(&b, "alice", add_message(&thread_id, "again")).await);
        if events.iter().all(|event| event["type"] != "error") {
            break;
        }
        assert_eq!(events[0]["reason"], "thread_busy", "{events:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[test]
fn the_busy_reason_is_the_code_every_binding_raises() {
    use chatkit_engine::protocol::ERROR_REASON_THREAD_BUSY;
    assert_eq!(
        chatkit_engine::Error::ThreadBusy("thr_1".into()).code(),
        ERROR_REASON_THREAD_BUSY
    );
    // The bindings map errors by the core's code: Python's exception class
    // and Node's code union carry the same string as the event's `reason`.
    let python = include_str!("../../bindings-python/python/chatkit_engine/errors.py");
    let python_code = python
        .split("class ThreadBusyError(ChatKitError):")
        .nth(1)
        .and_then(|class| class.split("code = \"").nth(1))
        .and_then(|rest| rest.split('"').next());
    assert_eq!(python_code, Some(ERROR_REASON_THREAD_BUSY));
    let node = include_str!("../../bindings-node/lib/errors.ts");
    assert!(node.contains(&format!("| \"{ERROR_REASON_THREAD_BUSY}\"")));
}

#[tokio::test]
async fn unknown_and_foreign_threads_are_not_found_before_anything_streams() {
    let engine = engine().await;
    let alice_thread = created_thread_id(&call_stream(&engine, "alice", create("mine")).await);
    for body in [
        add_message("thr_missing", "hi"),
        add_message(&alice_thread, "bob was here"),
        json!({"type":"threads.get_by_id","params":{"thread_id":alice_thread}}),
        json!({"type":"items.list","params":{"thread_id":alice_thread}}),
        json!({"type":"threads.update","params":{"thread_id":alice_thread,"title":"pwned"}}),
        json!({"type":"threads.delete","params":{"thread_id":alice_thread}}),
        json!({"type":"threads.retry_after_item","params":{"thread_id":alice_thread,"item_id":"msg_x"}}),
        json!({"type":"threads.add_client_tool_output","params":{"thread_id":alice_thread,"result":{}}}),
        json!({"type":"items.feedback","params":{"thread_id":alice_thread,"item_ids":["msg_x"],"kind":"positive"}}),
        json!({"type":"threads.custom_action","params":{"thread_id":alice_thread,"action":{"type":"x"}}}),
    ] {
        let err = call_err(&engine, "bob", body.clone()).await;
        assert_eq!(err.code(), "not_found", "{body}");
        assert_eq!(err.http_status(), 404);
    }
    let thread = call_json(
        &engine,
        "alice",
        json!({"type":"threads.get_by_id","params":{"thread_id":alice_thread}}),
    )
    .await;
    assert!(thread.get("title").is_none(), "bob's rename did not land");
    assert_eq!(
        thread["items"]["data"].as_array().unwrap().len(),
        2,
        "bob's message did not land"
    );
}

#[tokio::test]
async fn malformed_requests_are_typed_errors() {
    let engine = engine().await;
    for body in [
        &b"{"[..],
        br#"{"type":"threads.teleport","params":{}}"#,
        br#"{"type":"threads.get_by_id","params":{}}"#,
        br#"[1,2]"#,
    ] {
        let err = engine
            .process(body, RequestContext::new("alice"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert_eq!(err.http_status(), 400);
        let error_body: Value = serde_json::from_slice(&err.to_json_body()).unwrap();
        assert_eq!(error_body["error"]["code"], "invalid_request");
        assert!(error_body["error"]["message"].as_str().unwrap().len() > 10);
    }
    let err = engine
        .process(
            br#"{"type":"threads.list","params":{}}"#,
            RequestContext::new(" "),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unauthorized");
    let err = call_err(
        &engine,
        "alice",
        json!({"type":"threads.list","params":{"limit":-1}}),
    )
    .await;
    assert_eq!(err.code(), "invalid_request");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let engine = ChatEngine::builder()
        .store(SqliteStore::in_memory().await.unwrap())
        .responder(EchoResponder)
        .config(EngineConfig {
            max_body_bytes: 64,
            ..EngineConfig::default()
        })
        .build()
        .unwrap();
    let err = call_err(&engine, "alice", create(&"x".repeat(100))).await;
    assert_eq!(err.code(), "payload_too_large");
    assert_eq!(err.http_status(), 413);
}

#[tokio::test]
async fn thread_lists_paginate_and_never_leak_metadata_or_items() {
    let engine = engine_with(EchoResponder).await;
    for text in ["one", "two", "three"] {
        call_stream(&engine, "alice", create(text)).await;
    }
    call_stream(&engine, "bob", create("bob's")).await;
    let first = call_json(
        &engine,
        "alice",
        json!({"type":"threads.list","params":{"limit":2}}),
    )
    .await;
    let titles: Vec<_> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["three", "two"]);
    assert_eq!(first["has_more"], true);
    assert_eq!(
        first["data"][0]["items"],
        json!({"data":[],"has_more":false})
    );
    let rest = call_json(
        &engine,
        "alice",
        json!({"type":"threads.list","params":{"limit":2,"after":first["after"]}}),
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["title"], "one");
    assert_eq!(rest["has_more"], false);
    assert!(rest.get("after").is_none());
}

#[tokio::test]
async fn threads_can_be_renamed_and_deleted() {
    let engine = engine_with(EchoResponder).await;
    let thread_id = created_thread_id(&call_stream(&engine, "alice", create("hi")).await);
    let renamed = call_json(
        &engine,
        "alice",
        json!({"type":"threads.update","params":{"thread_id":thread_id,"title":"Renamed"}}),
    )
    .await;
    assert_eq!(renamed["title"], "Renamed");
    assert_eq!(renamed["items"], json!({"data":[],"has_more":false}));
    let err = call_err(
        &engine,
        "alice",
        json!({"type":"threads.update","params":{"thread_id":thread_id,"title":"x".repeat(300)}}),
    )
    .await;
    assert_eq!(err.code(), "invalid_request");
    assert_eq!(
        call_json(
            &engine,
            "alice",
            json!({"type":"threads.delete","params":{"thread_id":thread_id}})
        )
        .await,
        json!({})
    );
    let err = call_err(
        &engine,
        "alice",
        json!({"type":"threads.get_by_id","params":{"thread_id":thread_id}}),
    )
    .await;
    assert_eq!(err.code(), "not_found");
}

#[tokio::test]
async fn retry_deletes_everything_after_the_user_message_and_answers_again() {
    let engine = engine().await;
    let events = call_stream(&engine, "alice", create("first")).await;
    let thread_id = created_thread_id(&events);
    let first_message = wire(&events)[1]["item"]["id"].as_str().unwrap().to_owned();
    call_stream(&engine, "alice", add_message(&thread_id, "second")).await;
    assert_eq!(items(&engine, "alice", &thread_id).await.len(), 4);

    let retried = call_stream(&engine, "alice", json!({"type":"threads.retry_after_item","params":{"thread_id":thread_id,"item_id":first_message}})).await;
    assert_eq!(types(&retried)[0], "stream_options");
    let stored = items(&engine, "alice", &thread_id).await;
    assert_eq!(item_types(&stored), ["user_message", "assistant_message"]);
    assert_eq!(stored[1]["content"][0]["text"], "first");

    let assistant_id = stored[1]["id"].as_str().unwrap();
    let err = call_err(&engine, "alice", json!({"type":"threads.retry_after_item","params":{"thread_id":thread_id,"item_id":assistant_id}})).await;
    assert_eq!(err.code(), "invalid_request");
    let err = call_err(&engine, "alice", json!({"type":"threads.retry_after_item","params":{"thread_id":thread_id,"item_id":"msg_nope"}})).await;
    assert_eq!(err.code(), "not_found");
}

#[tokio::test]
async fn client_tool_output_completes_the_pending_call_and_continues() {
    let engine = engine().await;
    let events = call_stream(&engine, "alice", create("client tool")).await;
    let thread_id = created_thread_id(&events);
    assert_eq!(wire(&events).last().unwrap()["item"]["status"], "pending");

    let continued = call_stream(&engine, "alice", json!({"type":"threads.add_client_tool_output","params":{"thread_id":thread_id,"result":{"nodes":3,"none":null}}})).await;
    assert_eq!(types(&continued)[0], "stream_options");
    let stored = items(&engine, "alice", &thread_id).await;
    assert_eq!(
        item_types(&stored),
        ["user_message", "client_tool_call", "assistant_message"]
    );
    assert_eq!(stored[1]["status"], "completed");
    assert_eq!(
        serde_json::to_string(&stored[1]["output"]).unwrap(),
        r#"{"nodes":3,"none":null}"#
    );
    assert_eq!(
        serde_json::to_string(&stored[1]["arguments"]).unwrap(),
        r#"{"scope":"page","z":null}"#
    );

    // Nothing is pending any more.
    let err = call_err(&engine, "alice", json!({"type":"threads.add_client_tool_output","params":{"thread_id":thread_id,"result":1}})).await;
    assert_eq!(err.code(), "invalid_request");
}

#[tokio::test]
async fn structured_input_answers_replace_the_form_then_the_turn_continues() {
    let engine = engine().await;
    let events = call_stream(&engine, "alice", create("form")).await;
    let thread_id = created_thread_id(&events);
    let form_id = wire(&events).last().unwrap()["item"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = call_stream(&engine, "alice", json!({"type":"threads.add_structured_input","params":{"thread_id":thread_id,"item_id":form_id,"input":{"status":"answered","answers":{"priority":{"values":["High","Low"]}}}}})).await;
    assert_eq!(
        types(&answered)[..2],
        ["stream_options", "thread.item.replaced"]
    );
    let replaced = &wire(&answered)[1]["item"];
    assert_eq!(replaced["status"], "answered");
    assert_eq!(
        replaced["inputs"][0]["answer"],
        json!({"values":["High"],"skipped":false})
    );
    assert_eq!(
        replaced["inputs"][1]["answer"],
        json!({"values":[],"skipped":true})
    );
    let stored = items(&engine, "alice", &thread_id).await;
    assert_eq!(stored[1]["status"], "answered");
    // A form can be submitted once.
    let err = call_err(&engine, "alice", json!({"type":"threads.add_structured_input","params":{"thread_id":thread_id,"item_id":form_id,"input":{}}})).await;
    assert_eq!(err.code(), "invalid_request");
}

#[tokio::test]
async fn widget_actions_stream_or_answer_synchronously() {
    let engine = engine().await;
    let events = call_stream(&engine, "alice", create("widget")).await;
    let thread_id = created_thread_id(&events);
    let widget_id = wire(&events).last().unwrap()["item"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let acted = wire(&call_stream(&engine, "alice", json!({"type":"threads.custom_action","params":{"thread_id":thread_id,"item_id":widget_id,"action":{"type":"demo.click","payload":{"x":1}}}})).await);
    assert_eq!(acted[0]["type"], "stream_options");
    assert_eq!(
        acted.last().unwrap()["item"]["content"][0]["text"],
        format!("action demo.click from {widget_id}")
    );

    let synced = call_json(&engine, "alice", json!({"type":"threads.sync_custom_action","params":{"thread_id":thread_id,"item_id":widget_id,"action":{"type":"demo.toggle"}}})).await;
    assert_eq!(synced["updated_item"]["copy_text"], "clicked");
    let stored = items(&engine, "alice", &thread_id).await;
    assert_eq!(
        stored[1]["copy_text"], "clicked",
        "the updated widget is persisted"
    );
    let nothing = call_json(&engine, "alice", json!({"type":"threads.sync_custom_action","params":{"thread_id":thread_id,"action":{"type":"demo.toggle"}}})).await;
    assert_eq!(nothing, json!({}));

    let user_message = stored[0]["id"].as_str().unwrap();
    let err = call_err(&engine, "alice", json!({"type":"threads.custom_action","params":{"thread_id":thread_id,"item_id":user_message,"action":{"type":"x"}}})).await;
    assert_eq!(err.code(), "invalid_request");
}

#[tokio::test]
async fn attachments_are_created_linked_to_the_message_and_deleted() {
    let engine = engine().await;
    let image = call_json(&engine, "alice", json!({"type":"attachments.create","params":{"name":"cat.png","size":1234,"mime_type":"image/png"}})).await;
    let id = image["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("atc_"));
    assert_eq!(image["type"], "image");
    assert_eq!(image["upload_descriptor"]["method"], "POST");
    assert!(image.get("metadata").is_none());

    let body = json!({"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"see pic"}],"attachments":[id],"inference_options":{}}}});
    let events = wire(&call_stream(&engine, "alice", body.clone()).await);
    let attached = &events[1]["item"]["attachments"][0];
    assert_eq!(attached["id"], id.as_str());
    assert_eq!(attached["thread_id"], events[0]["thread"]["id"]);

    // Bob can neither use nor delete Alice's attachment.
    assert_eq!(call_err(&engine, "bob", body).await.code(), "not_found");
    assert_eq!(
        call_err(
            &engine,
            "bob",
            json!({"type":"attachments.delete","params":{"attachment_id":id}})
        )
        .await
        .code(),
        "not_found"
    );
    assert_eq!(
        call_json(
            &engine,
            "alice",
            json!({"type":"attachments.delete","params":{"attachment_id":id}})
        )
        .await,
        json!({})
    );
    assert_eq!(
        call_err(
            &engine,
            "alice",
            json!({"type":"attachments.delete","params":{"attachment_id":id}})
        )
        .await
        .code(),
        "not_found"
    );

    let without = engine_with(EchoResponder).await;
    let no_store = ChatEngine::builder()
        .shared_store(without.store().clone())
        .responder(EchoResponder)
        .build()
        .unwrap();
    let err = call_err(&no_store, "alice", json!({"type":"attachments.create","params":{"name":"a.txt","size":1,"mime_type":"text/plain"}})).await;
    assert_eq!((err.code(), err.http_status()), ("not_supported", 501));
}

#[tokio::test]
async fn transcription_decodes_the_audio_and_strips_mime_parameters() {
    let engine = engine().await;
    let text = call_json(&engine, "alice", json!({"type":"input.transcribe","params":{"audio_base64":"YWJj","mime_type":"audio/webm;codecs=opus"}})).await;
    assert_eq!(text, json!({"text":"3 bytes of audio/webm"}));
    let err = call_err(
        &engine,
        "alice",
        json!({"type":"input.transcribe","params":{"audio_base64":"!!!","mime_type":"audio/ogg"}}),
    )
    .await;
    assert_eq!(err.code(), "invalid_request");
    let echo = engine_with(EchoResponder).await;
    let err = call_err(
        &echo,
        "alice",
        json!({"type":"input.transcribe","params":{"audio_base64":"YWJj","mime_type":"audio/ogg"}}),
    )
    .await;
    assert_eq!(err.code(), "not_supported");
}

#[tokio::test]
async fn feedback_is_stored() {
    let engine = engine_with(EchoResponder).await;
    let events = wire(&call_stream(&engine, "alice", create("rate me")).await);
    let thread_id = events[0]["thread"]["id"].as_str().unwrap();
    let answer_id = events
        .iter()
        .rev()
        .find(|e| e["type"] == "thread.item.done")
        .unwrap()["item"]["id"]
        .as_str()
        .unwrap();
    let body = json!({"type":"items.feedback","params":{"thread_id":thread_id,"item_ids":[answer_id],"kind":"negative"}});
    assert_eq!(call_json(&engine, "alice", body).await, json!({}));
    let stored = engine
        .store()
        .load_feedback(thread_id, answer_id, &RequestContext::new("alice"))
        .await
        .unwrap();
    assert_eq!(
        stored,
        Some(chatkit_engine::protocol::FeedbackKind::Negative)
    );
}

#[tokio::test]
async fn sse_frames_are_data_lines_separated_by_blank_lines() {
    let engine = engine_with(EchoResponder).await;
    let Response::Stream(stream) = engine
        .process(
            create("line\nbreak").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await
        .unwrap()
    else {
        panic!("streams")
    };
    let mut frames = stream.sse();
    let mut count = 0;
    while let Some(frame) = frames.next_frame().await {
        let text = std::str::from_utf8(&frame).unwrap();
        let json = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap();
        assert!(!json.contains('\n'));
        serde_json::from_str::<Value>(json).unwrap();
        count += 1;
    }
    assert!(count >= 8);
}

/// A store whose assistant-message writes reach the database at once but
/// land `delay` later, even when the caller stops waiting: what a dropped
/// query does (the database already has it).
struct LandsLate {
    inner: Arc<SqliteStore>,
    delay: std::time::Duration,
}

#[async_trait]
impl chatkit_engine::store::Store for LandsLate {
    async fn load_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<ThreadMetadata> {
        self.inner.load_thread(thread_id, ctx).await
    }
    async fn save_thread(&self, thread: &ThreadMetadata, ctx: &RequestContext) -> Result<()> {
        self.inner.save_thread(thread, ctx).await
    }
    async fn load_threads(
        &self,
        limit: usize,
        after: Option<&str>,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadMetadata>> {
        self.inner.load_threads(limit, after, order, ctx).await
    }
    async fn delete_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<()> {
        self.inner.delete_thread(thread_id, ctx).await
    }
    async fn load_thread_items(
        &self,
        thread_id: &str,
        after: Option<&str>,
        limit: usize,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadItem>> {
        self.inner
            .load_thread_items(thread_id, after, limit, order, ctx)
            .await
    }
    async fn add_thread_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()> {
        if !matches!(item.kind, ItemKind::AssistantMessage(_)) {
            return self.inner.add_thread_item(thread_id, item, ctx).await;
        }
        let (inner, delay) = (Arc::clone(&self.inner), self.delay);
        let (thread_id, item, ctx) = (thread_id.to_owned(), item.clone(), ctx.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            inner.add_thread_item(&thread_id, &item, &ctx).await
        })
        .await
        .map_err(|err| Error::Internal(err.to_string()))?
    }
    async fn save_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.inner.save_item(thread_id, item, ctx).await
    }
    async fn load_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<ThreadItem> {
        self.inner.load_item(thread_id, item_id, ctx).await
    }
    async fn delete_thread_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.inner.delete_thread_item(thread_id, item_id, ctx).await
    }
    async fn save_attachment(&self, attachment: &Attachment, ctx: &RequestContext) -> Result<()> {
        self.inner.save_attachment(attachment, ctx).await
    }
    async fn load_attachment(
        &self,
        attachment_id: &str,
        ctx: &RequestContext,
    ) -> Result<Attachment> {
        self.inner.load_attachment(attachment_id, ctx).await
    }
    async fn delete_attachment(&self, attachment_id: &str, ctx: &RequestContext) -> Result<()> {
        self.inner.delete_attachment(attachment_id, ctx).await
    }
    async fn save_approval(
        &self,
        approval: &chatkit_engine::store::PendingApproval,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.inner.save_approval(approval, ctx).await
    }
    async fn decide_approval(
        &self,
        id: &str,
        decision: chatkit_engine::store::ApprovalDecision,
        ctx: &RequestContext,
    ) -> Result<Option<chatkit_engine::store::PendingApproval>> {
        self.inner.decide_approval(id, decision, ctx).await
    }
    async fn add_feedback(
        &self,
        thread_id: &str,
        item_ids: &[String],
        kind: FeedbackKind,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.inner
            .add_feedback(thread_id, item_ids, kind, ctx)
            .await
    }
    async fn load_feedback(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<Option<FeedbackKind>> {
        self.inner.load_feedback(thread_id, item_id, ctx).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn record_turn_usage(
        &self,
        usage: &chatkit_engine::store::TurnUsage,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.inner.record_turn_usage(usage, ctx).await
    }
    async fn token_usage(
        &self,
        scope: &chatkit_engine::store::UsageScope,
        ctx: &RequestContext,
    ) -> Result<chatkit_engine::store::UsageTotals> {
        self.inner.token_usage(scope, ctx).await
    }
}

/// Answers with one finished message, in a single `thread.item.done`.
struct AnswersAtOnce;

#[async_trait]
impl Responder for AnswersAtOnce {
    async fn respond(&self, turn: &mut Turn, _input: Option<&ThreadItem>) -> Result<()> {
        let answer = turn.new_item(
            IdKind::Message,
            ItemKind::AssistantMessage(AssistantMessage {
                content: vec![AssistantMessageContent::text(
                    "stored before the client left",
                )],
            }),
        );
        turn.emit(ThreadStreamEvent::ItemDone { item: answer })
            .await
    }
}

#[tokio::test]
async fn an_item_being_written_when_the_client_leaves_is_stored_before_the_cancellation_marker() {
    let sqlite = Arc::new(SqliteStore::in_memory().await.unwrap());
    let engine = ChatEngine::builder()
        .store(LandsLate {
            inner: Arc::clone(&sqlite),
            delay: std::time::Duration::from_millis(200),
        })
        .responder(AnswersAtOnce)
        .build()
        .unwrap();
    let Ok(Response::Stream(mut stream)) = engine
        .process(
            create("hello").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await
    else {
        panic!("threads.create streams");
    };
    let mut thread_id = None;
    while let Some(event) = stream.next_event().await {
        match event {
            ThreadStreamEvent::ThreadCreated { thread } => thread_id = Some(thread.id),
            // The responder starts after stream_options; its answer is now
            // on its way to the database.
            ThreadStreamEvent::StreamOptions { .. } => break,
            _ => {}
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(stream);
    settle(&engine).await;

    let thread_id = thread_id.unwrap();
    let stored = sqlite
        .load_thread_items(
            &thread_id,
            None,
            50,
            Order::Asc,
            &RequestContext::new("alice"),
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = stored.data.iter().map(|item| item.type_name()).collect();
    assert_eq!(
        kinds,
        ["user_message", "assistant_message", "sdk_hidden_context"]
    );
    let ItemKind::SdkHiddenContext(marker) = &stored.data[2].kind else {
        unreachable!()
    };
    assert_eq!(marker.content, CANCELLED_MARKER_TEXT);
}

#[tokio::test]
async fn a_store_without_its_own_history_query_pages_to_the_same_history() {
    let sqlite = Arc::new(SqliteStore::in_memory().await.unwrap());
    let paging = LandsLate {
        inner: Arc::clone(&sqlite),
        delay: std::time::Duration::ZERO,
    };
    let alice = RequestContext::new("alice");
    let thread = ThreadMetadata::new("thr_history", chatkit_engine::protocol::Timestamp::now());
    sqlite.save_thread(&thread, &alice).await.unwrap();
    // More widgets than a page holds at the limit, so the default pages on.
    for index in 0..5_i64 {
        let message: ThreadItem = serde_json::from_value(json!({"id": format!("m{index}"),
            "thread_id": thread.id, "created_at": "2025-01-01T00:00:00Z", "type": "assistant_message",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}]}))
        .unwrap();
        sqlite
            .add_thread_item(&thread.id, &message, &alice)
            .await
            .unwrap();
        for copy in 0..3 {
            let widget: ThreadItem =
                serde_json::from_value(json!({"id": format!("w{index}_{copy}"),
                "thread_id": thread.id, "created_at": "2025-01-01T00:00:00Z", "type": "widget",
                "widget": {"type": "Card", "children": []}}))
                .unwrap();
            sqlite
                .add_thread_item(&thread.id, &widget, &alice)
                .await
                .unwrap();
        }
    }
    let ids = |items: Vec<ThreadItem>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let paged = ids(paging
        .load_history_items(&thread.id, 3, &alice)
        .await
        .unwrap());
    assert_eq!(paged, ["m2", "m3", "m4"]);
    assert_eq!(
        paged,
        ids(sqlite
            .load_history_items(&thread.id, 3, &alice)
            .await
            .unwrap())
    );
}
