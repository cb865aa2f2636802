//! Task widgets and their actions end to end through `ChatEngine::process`,
//! with the offline model, on SQLite and on PostgreSQL.

#[macro_use]
#[path = "support/db.rs"]
mod db;
#[path = "support/engine.rs"]
mod support;

use chatkit_engine::agents::{RunConfig, Runner};
use chatkit_engine::engine::ChatEngine;
use chatkit_engine::engine::agent::DEFAULT_APPROVAL_TTL;
use chatkit_engine::store::{PostgresStore, SharedStore, SqliteStore};
use chatkit_engine::todo::{self, Assistant, NewTask, PgTaskTable, TaskQuery, TaskStore};
use chatkit_engine::{EngineConfig, RequestContext};
use db::{Backend, TestDb};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::*;

struct Fixture {
    engine: ChatEngine,
    tasks: Arc<dyn TaskStore>,
    _db: TestDb,
}

async fn fixture(backend: Backend) -> Fixture {
    let db = TestDb::new(backend).await;
    let (engine, tasks) = parts(backend, &db, DEFAULT_APPROVAL_TTL).await;
    Fixture {
        engine,
        tasks,
        _db: db,
    }
}

/// Another engine on the same database (a restart, or a second replica).
async fn fixture_on(backend: Backend, db: &TestDb) -> ChatEngine {
    engine_on(backend, db, DEFAULT_APPROVAL_TTL).await
}

async fn engine_on(backend: Backend, db: &TestDb, ttl: Duration) -> ChatEngine {
    parts(backend, db, ttl).await.0
}

async fn parts(backend: Backend, db: &TestDb, ttl: Duration) -> (ChatEngine, Arc<dyn TaskStore>) {
    parts_with(backend, db, ttl, EngineConfig::default()).await
}

async fn parts_with(
    backend: Backend,
    db: &TestDb,
    ttl: Duration,
    config: EngineConfig,
) -> (ChatEngine, Arc<dyn TaskStore>) {
    let (chat, tasks): (SharedStore, Arc<dyn TaskStore>) = match backend {
        Backend::Sqlite => {
            let store = SqliteStore::connect(&db.url).await.unwrap();
            (Arc::new(store.clone()), Arc::new(store))
        }
        Backend::Postgres => {
            let store = PostgresStore::connect(&db.url).await.unwrap();
            let tasks = PgTaskTable::open(&store, todo::DEFAULT_TASKS_TABLE)
                .await
                .unwrap();
            (Arc::new(store), Arc::new(tasks))
        }
    };
    let runner = Runner::new(RunConfig::new(Arc::new(todo::offline_model())));
    let engine = ChatEngine::builder()
        .shared_store(chat)
        .config(config)
        .responder(Assistant::new(Arc::clone(&tasks), runner).approval_ttl(ttl))
        .build()
        .unwrap();
    (engine, tasks)
}

async fn add(f: &Fixture, user: &str, title: &str) -> String {
    f.tasks
        .create(&NewTask::new(title), &RequestContext::new(user))
        .await
        .unwrap()
        .id
}

async fn done(f: &Fixture, user: &str) -> Vec<(String, bool)> {
    f.tasks
        .list(&TaskQuery::default(), &RequestContext::new(user))
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.title, t.completed))
        .collect()
}

/// The widget item a turn showed.
fn widget_item(events: &[Value]) -> Value {
    events
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "widget")
        .map(|e| e["item"].clone())
        .expect("the turn shows a widget")
}

/// Every value of a widget tree with its `type`.
fn components(widget: &Value, kind: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut stack = vec![widget.clone()];
    while let Some(value) = stack.pop() {
        if value["type"] == kind {
            found.push(value.clone());
        }
        if let Some(children) = value["children"].as_array() {
            stack.extend(children.iter().rev().cloned());
        }
    }
    found
}

fn action(thread_id: &str, item_id: &str, kind: &str, task_id: &str) -> Value {
    json!({"type": "threads.custom_action", "params": {"thread_id": thread_id, "item_id": item_id,
        "action": {"type": kind, "payload": {"task_id": task_id}}}})
}

fn sync_action(thread_id: &str, item_id: &str, kind: &str, task_id: &str) -> Value {
    let mut body = action(thread_id, item_id, kind, task_id);
    body["type"] = json!("threads.sync_custom_action");
    body
}

/// The row keyed `task_id` of a stored list widget.
fn row_of(widget: &Value, task_id: &str) -> Value {
    widget["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == task_id)
        .cloned()
        .expect("the row is there")
}

/// Alice clicks `kind` for `task_id` on the widget item (a sync action);
/// returns the answer.
async fn click(f: &Fixture, thread_id: &str, item_id: &str, kind: &str, task_id: &str) -> Value {
    call_json(
        &f.engine,
        "alice",
        sync_action(thread_id, item_id, kind, task_id),
    )
    .await
}

/// Lists alice's tasks and returns (thread id, the list widget item).
async fn listed(f: &Fixture) -> (String, Value) {
    let events = wire(&call_stream(&f.engine, "alice", create("show my tasks")).await);
    (created_thread_id_of(&events), widget_item(&events))
}

fn created_thread_id_of(events: &[Value]) -> String {
    events[0]["thread"]["id"].as_str().unwrap().to_owned()
}

async fn listing_tasks_shows_them_as_a_list_widget_with_buttons(backend: Backend) {
    let f = fixture(backend).await;
    let milk = add(&f, "alice", "buy milk").await;
    add(&f, "alice", "call mom").await;
    add(&f, "bob", "bob's secret").await;
    let events = wire(&call_stream(&f.engine, "alice", create("show my tasks")).await);
    let item = widget_item(&events);
    let list = &item["widget"];
    assert_eq!(list["type"], "ListView");
    let rows = list["children"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    let milk_row = rows.iter().find(|r| r["key"] == milk.as_str()).unwrap();
    let texts: Vec<_> = components(milk_row, "Text")
        .iter()
        .map(|t| t["value"].clone())
        .collect();
    assert_eq!(texts, [json!("buy milk")]);
    let badges: Vec<_> = components(milk_row, "Badge")
        .iter()
        .map(|b| b["label"].clone())
        .collect();
    let record = f
        .tasks
        .get(&milk, &RequestContext::new("alice"))
        .await
        .unwrap();
    assert_eq!(
        badges,
        [
            json!(record.priority.as_str()),
            json!(record.category.as_str())
        ]
    );
    let buttons = components(milk_row, "Button");
    assert_eq!(buttons[0]["onClickAction"]["type"], "tasks.toggle");
    assert_eq!(buttons[1]["onClickAction"]["type"], "tasks.edit");
    assert_eq!(buttons[2]["onClickAction"]["type"], "tasks.delete");
    assert_eq!(
        buttons[0]["onClickAction"]["payload"]["task_id"],
        milk.as_str()
    );
    assert!(!list.to_string().contains("bob's secret"));
    // The model still got the JSON and answered with text.
    assert!(events.iter().any(|e| {
        e["type"] == "thread.item.done"
            && e["item"]["type"] == "assistant_message"
            && e["item"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("buy milk")
    }));
    // The widget is stored with the thread.
    let stored = items(&f.engine, "alice", &created_thread_id_of(&events)).await;
    assert!(
        stored
            .iter()
            .any(|i| i["id"] == item["id"] && i["widget"] == item["widget"])
    );
}

async fn a_toggle_from_the_widget_updates_it_in_place_without_the_model(backend: Backend) {
    let f = fixture(backend).await;
    let milk = add(&f, "alice", "buy milk").await;
    let (thread_id, item) = listed(&f).await;
    let before = items(&f.engine, "alice", &thread_id).await.len();
    let item_id = item["id"].as_str().unwrap();
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            action(&thread_id, item_id, "tasks.toggle", &milk),
        )
        .await,
    );
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["stream_options", "thread.item.updated", "client_effect"],
        "{events:?}"
    );
    let updated = &events[1]["update"];
    assert_eq!(events[1]["item_id"], item_id);
    assert_eq!(updated["type"], "widget.root.updated");
    let row = &updated["widget"]["children"][0];
    assert_eq!(components(row, "Text")[0]["lineThrough"], true);
    assert_eq!(components(row, "Button")[0]["label"], "Undo");
    assert_eq!(events[2]["name"], "tasks_changed");
    assert_eq!(events[2]["data"], json!({"task_ids": [milk]}));
    assert_eq!(done(&f, "alice").await, [("buy milk".to_owned(), true)]);
    // A reload shows the updated widget; no message was added.
    let stored = items(&f.engine, "alice", &thread_id).await;
    assert_eq!(stored.len(), before, "no model answer");
    let reloaded = stored.iter().find(|i| i["id"] == item_id).unwrap();
    assert_eq!(reloaded["widget"], updated["widget"]);
}

async fn a_widget_action_goes_through_when_the_days_token_budget_is_spent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let config = EngineConfig {
        daily_token_budget: Some(1),
        ..EngineConfig::default()
    };
    let (engine, tasks) = parts_with(backend, &db, DEFAULT_APPROVAL_TTL, config).await;
    let f = Fixture {
        engine,
        tasks,
        _db: db,
    };
    let milk = add(&f, "alice", "buy milk").await;
    // The first turn starts under the budget and spends it.
    let (thread_id, item) = listed(&f).await;
    let refused = wire(
        &call_stream(
            &f.engine,
            "alice",
            json!({"type": "threads.add_user_message", "params": {"thread_id": thread_id,
                "input": {"content": [{"type": "input_text", "text": "show my tasks"}],
                          "attachments": [], "inference_options": {}}}}),
        )
        .await,
    );
    assert!(
        refused
            .iter()
            .any(|e| e["type"] == "error" && e["message"].as_str().unwrap_or("").contains("budget")),
        "a message is refused once the budget is spent: {refused:?}"
    );
    // A click calls no model: it is not refused.
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            action(
                &thread_id,
                item["id"].as_str().unwrap(),
                "tasks.toggle",
                &milk,
            ),
        )
        .await,
    );
    assert!(
        events.iter().any(|e| e["type"] == "thread.item.updated"),
        "{events:?}"
    );
    assert_eq!(done(&f, "alice").await, [("buy milk".to_owned(), true)]);
}

async fn an_action_naming_another_users_task_or_a_forged_payload_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    add(&f, "alice", "buy milk").await;
    let bobs = add(&f, "bob", "bob's task").await;
    let (thread_id, item) = listed(&f).await;
    let item_id = item["id"].as_str().unwrap();
    // A payload the widget does not offer: another user's task id.
    let err = call_err(
        &f.engine,
        "alice",
        sync_action(&thread_id, item_id, "tasks.toggle", &bobs),
    )
    .await;
    assert_eq!(err.code(), "invalid_request");
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            action(&thread_id, item_id, "tasks.delete_confirm", &bobs),
        )
        .await,
    );
    assert!(events.iter().any(|e| e["type"] == "error"), "{events:?}");
    assert!(!events.iter().any(|e| e["type"] == "thread.item.updated"));
    // Bob cannot act through alice's widget.
    let milk = item["widget"]["children"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = call_err(
        &f.engine,
        "bob",
        sync_action(&thread_id, item_id, "tasks.toggle", &milk),
    )
    .await;
    assert_eq!(err.code(), "not_found");
    assert_eq!(done(&f, "alice").await, [("buy milk".to_owned(), false)]);
    assert_eq!(done(&f, "bob").await, [("bob's task".to_owned(), false)]);
    let stored = items(&f.engine, "alice", &thread_id).await;
    assert_eq!(
        stored.iter().find(|i| i["id"] == item_id).unwrap()["widget"],
        item["widget"]
    );
}

async fn a_delete_from_the_widget_asks_in_place_then_removes_the_row(backend: Backend) {
    let f = fixture(backend).await;
    let milk = add(&f, "alice", "buy milk").await;
    let mom = add(&f, "alice", "call mom").await;
    let (thread_id, item) = listed(&f).await;
    let item_id = item["id"].as_str().unwrap();
    let asked = click(&f, &thread_id, item_id, "tasks.delete", &mom).await;
    let widget = &asked["updated_item"]["widget"];
    let row = row_of(widget, &mom);
    let labels: Vec<_> = components(&row, "Button")
        .iter()
        .map(|b| b["onClickAction"]["type"].clone())
        .collect();
    assert_eq!(
        labels,
        [json!("tasks.delete_confirm"), json!("tasks.delete_cancel")]
    );
    assert_eq!(done(&f, "alice").await.len(), 2, "asking deletes nothing");

    // Keep it, then ask again and delete it.
    let kept = click(&f, &thread_id, item_id, "tasks.delete_cancel", &mom).await;
    assert_eq!(kept["updated_item"]["widget"], item["widget"]);
    click(&f, &thread_id, item_id, "tasks.delete", &mom).await;
    let gone = click(&f, &thread_id, item_id, "tasks.delete_confirm", &mom).await;
    let rows = gone["updated_item"]["widget"]["children"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], milk.as_str());
    assert_eq!(gone["updated_item"]["widget"]["status"]["text"], "1 task");
    assert_eq!(done(&f, "alice").await, [("buy milk".to_owned(), false)]);
    // A second click on the stale confirm changes nothing.
    let err = call_err(
        &f.engine,
        "alice",
        sync_action(&thread_id, item_id, "tasks.delete_confirm", &mom),
    )
    .await;
    assert_eq!(err.code(), "invalid_request");
    let stored = items(&f.engine, "alice", &thread_id).await;
    assert_eq!(
        stored.iter().find(|i| i["id"] == item_id).unwrap()["widget"],
        gone["updated_item"]["widget"]
    );
}

async fn created_and_counted_tasks_show_a_card_and_tell_the_page(backend: Backend) {
    let f = fixture(backend).await;
    let events = wire(&call_stream(&f.engine, "alice", create("add a task to buy milk")).await);
    let card = widget_item(&events)["widget"].clone();
    assert_eq!(card["type"], "Card");
    assert_eq!(components(&card, "Text")[0]["value"], "buy milk");
    let effect = events
        .iter()
        .find(|e| e["type"] == "client_effect")
        .unwrap();
    assert_eq!(effect["name"], "tasks_changed");
    assert_eq!(effect["data"]["task_ids"][0], card["key"]);
    let thread_id = created_thread_id_of(&events);
    let stats = wire(
        &call_stream(
            &f.engine,
            "alice",
            add_message(&thread_id, "how many tasks do I have?"),
        )
        .await,
    );
    let card = widget_item(&stats)["widget"].clone();
    let values: Vec<_> = components(&card, "Title")
        .iter()
        .map(|t| t["value"].clone())
        .collect();
    assert_eq!(values, [json!("1"), json!("1"), json!("0")]);
    assert!(
        !stats.iter().any(|e| e["type"] == "client_effect"),
        "counting changes nothing"
    );
}

/// The confirmation card a turn showed: (item id, approval id).
fn confirmation(events: &[Value]) -> (String, String) {
    let item = events
        .iter()
        .find(|e| {
            e["type"] == "thread.item.done"
                && e["item"]["type"] == "widget"
                && e["item"]["widget"]["confirm"].is_object()
        })
        .map(|e| e["item"].clone())
        .expect("the turn asks for a confirmation");
    let card = &item["widget"];
    assert_eq!(
        card["confirm"]["action"]["type"],
        "chatkit.approval.confirm"
    );
    assert_eq!(card["cancel"]["action"]["type"], "chatkit.approval.cancel");
    (
        item["id"].as_str().unwrap().to_owned(),
        card["confirm"]["action"]["payload"]["approval_id"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn answer_card(thread_id: &str, item_id: &str, kind: &str, approval_id: &str) -> Value {
    json!({"type": "threads.custom_action", "params": {"thread_id": thread_id, "item_id": item_id,
        "action": {"type": kind, "payload": {"approval_id": approval_id}}}})
}

fn answer_text(events: &[Value]) -> String {
    events
        .iter()
        .rev()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "assistant_message")
        .map(|e| {
            e["item"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Asks alice's assistant to delete "call mom": (thread id, card item id, approval id).
async fn ask_delete(f: &Fixture) -> (String, String, String, Vec<Value>) {
    let events = wire(&call_stream(&f.engine, "alice", create("delete call mom")).await);
    let (item_id, approval_id) = confirmation(&events);
    (created_thread_id_of(&events), item_id, approval_id, events)
}

async fn a_delete_by_chat_waits_for_confirm_then_the_same_run_deletes_and_answers(
    backend: Backend,
) {
    let f = fixture(backend).await;
    add(&f, "alice", "buy milk").await;
    let mom = add(&f, "alice", "call mom").await;
    let (thread_id, item_id, approval_id, asked) = ask_delete(&f).await;
    let card = asked
        .iter()
        .find(|e| e["item"]["id"] == item_id.as_str())
        .unwrap();
    assert_eq!(
        card["item"]["widget"]["children"][0]["value"],
        "Delete the task “call mom”?"
    );
    assert!(
        answer_text(&asked).is_empty(),
        "the run paused before answering"
    );
    let waiting = asked
        .iter()
        .rev()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "workflow")
        .unwrap();
    let tasks = waiting["item"]["workflow"]["tasks"].as_array().unwrap();
    assert_eq!(
        tasks.last().unwrap()["content"],
        "Waiting for your confirmation"
    );
    assert_eq!(done(&f, "alice").await.len(), 2, "nothing deleted yet");

    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            answer_card(
                &thread_id,
                &item_id,
                "chatkit.approval.confirm",
                &approval_id,
            ),
        )
        .await,
    );
    let updated = events
        .iter()
        .find(|e| e["type"] == "thread.item.updated" && e["item_id"] == item_id.as_str())
        .unwrap();
    assert_eq!(
        updated["update"]["widget"]["children"][1]["children"][1]["value"],
        "Confirmed"
    );
    assert!(
        updated["update"]["widget"]["confirm"].is_null(),
        "an answered card offers nothing"
    );
    assert!(
        answer_text(&events).contains("Deleted"),
        "{}",
        answer_text(&events)
    );
    let effect = events
        .iter()
        .find(|e| e["type"] == "client_effect")
        .unwrap();
    assert_eq!(effect["data"]["task_ids"], json!([mom]));
    assert_eq!(done(&f, "alice").await, [("buy milk".to_owned(), false)]);

    // A second click (a stale page) changes nothing.
    let again = wire(
        &call_stream(
            &f.engine,
            "alice",
            answer_card(
                &thread_id,
                &item_id,
                "chatkit.approval.confirm",
                &approval_id,
            ),
        )
        .await,
    );
    assert!(again.iter().any(|e| e["type"] == "error"), "{again:?}");
    assert!(answer_text(&again).is_empty());
    let stored = items(&f.engine, "alice", &thread_id).await;
    let card = stored.iter().find(|i| i["id"] == item_id.as_str()).unwrap();
    assert_eq!(
        card["widget"], updated["update"]["widget"],
        "a reload shows the answered card"
    );
}

async fn cancel_tells_the_model_the_user_declined_and_deletes_nothing(backend: Backend) {
    let f = fixture(backend).await;
    add(&f, "alice", "call mom").await;
    let (thread_id, item_id, approval_id, _) = ask_delete(&f).await;
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            answer_card(
                &thread_id,
                &item_id,
                "chatkit.approval.cancel",
                &approval_id,
            ),
        )
        .await,
    );
    assert!(
        answer_text(&events).contains("nothing was deleted"),
        "{}",
        answer_text(&events)
    );
    assert!(!events.iter().any(|e| e["type"] == "client_effect"));
    assert_eq!(done(&f, "alice").await, [("call mom".to_owned(), false)]);
    // Confirm after cancel: refused, still nothing deleted.
    let late = wire(
        &call_stream(
            &f.engine,
            "alice",
            answer_card(
                &thread_id,
                &item_id,
                "chatkit.approval.confirm",
                &approval_id,
            ),
        )
        .await,
    );
    assert!(late.iter().any(|e| e["type"] == "error"));
    assert_eq!(done(&f, "alice").await, [("call mom".to_owned(), false)]);
}

async fn a_pending_confirmation_survives_a_restart_and_is_answered_by_another_engine(
    backend: Backend,
) {
    let f = fixture(backend).await;
    add(&f, "alice", "call mom").await;
    let (thread_id, item_id, approval_id, _) = ask_delete(&f).await;
    // A second engine on the same database: another process, or a replica.
    let other = fixture_on(backend, &f._db).await;
    let Fixture { engine, tasks, _db } = f;
    drop(engine);
    let f = Fixture {
        engine: other.clone(),
        tasks,
        _db,
    };
    let events = wire(
        &call_stream(
            &other,
            "alice",
            answer_card(
                &thread_id,
                &item_id,
                "chatkit.approval.confirm",
                &approval_id,
            ),
        )
        .await,
    );
    assert!(answer_text(&events).contains("Deleted"), "{events:?}");
    assert!(done(&f, "alice").await.is_empty());
}

async fn another_user_cannot_answer_a_confirmation(backend: Backend) {
    let f = fixture(backend).await;
    add(&f, "alice", "call mom").await;
    let (thread_id, item_id, approval_id, _) = ask_delete(&f).await;
    let err = call_err(
        &f.engine,
        "bob",
        answer_card(
            &thread_id,
            &item_id,
            "chatkit.approval.confirm",
            &approval_id,
        ),
    )
    .await;
    assert_eq!(err.code(), "not_found");
    assert_eq!(done(&f, "alice").await.len(), 1);
    // Alice can still answer it.
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            answer_card(
                &thread_id,
                &item_id,
                "chatkit.approval.confirm",
                &approval_id,
            ),
        )
        .await,
    );
    assert!(answer_text(&events).contains("Deleted"));
}

async fn an_expired_confirmation_runs_nothing(backend: Backend) {
    let mut f = fixture(backend).await;
    f.engine = engine_on(backend, &f._db, Duration::ZERO).await;
    add(&f, "alice", "call mom").await;
    let (thread_id, item_id, approval_id, _) = ask_delete(&f).await;
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            answer_card(
                &thread_id,
                &item_id,
                "chatkit.approval.confirm",
                &approval_id,
            ),
        )
        .await,
    );
    let updated = events
        .iter()
        .find(|e| e["type"] == "thread.item.updated")
        .unwrap();
    assert_eq!(
        updated["update"]["widget"]["children"][1]["children"][1]["value"],
        "Expired"
    );
    assert!(answer_text(&events).is_empty());
    assert_eq!(done(&f, "alice").await.len(), 1);
}

async fn a_task_mentioned_with_an_input_tag_reaches_the_tools_by_id(backend: Backend) {
    let f = fixture(backend).await;
    add(&f, "alice", "buy milk").await;
    let second = add(&f, "alice", "buy milk").await;
    // By title the two are ambiguous; the tag names one by id.
    let by_title = wire(&call_stream(&f.engine, "alice", create("mark buy milk as done")).await);
    assert!(
        answer_text(&by_title).contains("Several"),
        "{}",
        answer_text(&by_title)
    );
    let body = json!({"type":"threads.create","params":{"input":{"content":[
        {"type":"input_text","text":"mark "},
        {"type":"input_tag","id": second,"text":"buy milk","data":{},"group":"Tasks","interactive":false},
        {"type":"input_text","text":" as done"}],"attachments":[],"inference_options":{}}}});
    let events = wire(&call_stream(&f.engine, "alice", body).await);
    assert!(
        answer_text(&events).contains("completed"),
        "{}",
        answer_text(&events)
    );
    let toggled: Vec<_> = f
        .tasks
        .list(&TaskQuery::default(), &RequestContext::new("alice"))
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.completed)
        .map(|t| t.id)
        .collect();
    assert_eq!(toggled, [second]);
}

/// A form submission: the form's payload with the submitted fields merged in,
/// as the ChatKit client sends it.
fn submit(thread_id: &str, item_id: &str, task_id: &str, fields: Value) -> Value {
    let mut payload = json!({"task_id": task_id});
    for (key, value) in fields.as_object().unwrap() {
        payload[key] = value.clone();
    }
    json!({"type": "threads.custom_action", "params": {"thread_id": thread_id, "item_id": item_id,
        "action": {"type": "tasks.edit_save", "payload": payload}}})
}

async fn editing_from_the_widget_opens_a_form_in_place_and_saves_it_without_the_model(
    backend: Backend,
) {
    let f = fixture(backend).await;
    let milk = add(&f, "alice", "buy milk").await;
    let (thread_id, item) = listed(&f).await;
    let item_id = item["id"].as_str().unwrap();
    let before = items(&f.engine, "alice", &thread_id).await.len();

    // Edit: the row becomes a form with the task's current values.
    let opened = click(&f, &thread_id, item_id, "tasks.edit", &milk).await;
    let row = row_of(&opened["updated_item"]["widget"], &milk);
    let form = &row["children"][0];
    assert_eq!(form["type"], "Form");
    assert_eq!(form["onSubmitAction"]["type"], "tasks.edit_save");
    assert_eq!(form["onSubmitAction"]["payload"], json!({"task_id": milk}));
    let input = |name: &str| {
        let mut stack = vec![form.clone()];
        while let Some(node) = stack.pop() {
            if node["name"] == name {
                return node;
            }
            if let Some(children) = node["children"].as_array() {
                stack.extend(children.iter().cloned());
            }
        }
        panic!("no control named {name} in {form}");
    };
    assert_eq!(input("title")["defaultValue"], "buy milk");
    assert_eq!(input("priority")["type"], "Select");
    assert_eq!(input("priority")["defaultValue"], "medium");
    assert_eq!(input("category")["defaultValue"], "work");
    assert_eq!(input("due_date")["type"], "Input");
    assert_eq!(done(&f, "alice").await, [("buy milk".to_owned(), false)]);

    // Save: the submitted fields update the task and the row is redrawn.
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            submit(
                &thread_id,
                item_id,
                &milk,
                json!({"title": "buy oat milk", "priority": "high", "category": "home", "due_date": "2027-01-05"}),
            ),
        )
        .await,
    );
    let kinds: Vec<_> = events.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(
        kinds,
        [
            json!("stream_options"),
            json!("thread.item.updated"),
            json!("client_effect")
        ],
        "{events:?}"
    );
    assert_eq!(events[2]["data"], json!({"task_ids": [milk]}));
    let record = f
        .tasks
        .get(&milk, &RequestContext::new("alice"))
        .await
        .unwrap();
    assert_eq!(record.title, "buy oat milk");
    assert_eq!(record.priority.as_str(), "high");
    assert_eq!(record.category.as_str(), "home");
    assert_eq!(
        record.due_date.map(|d| d.to_string()[..10].to_owned()),
        Some("2027-01-05".to_owned())
    );
    let redrawn = row_of(&events[1]["update"]["widget"], &milk);
    assert_eq!(components(&redrawn, "Text")[0]["value"], "buy oat milk");
    assert!(components(&redrawn, "Form").is_empty());
    // A reload shows the saved row; no model answer was added.
    let stored = items(&f.engine, "alice", &thread_id).await;
    assert_eq!(stored.len(), before, "no model answer");
    let reloaded = stored.iter().find(|i| i["id"] == item_id).unwrap();
    assert_eq!(reloaded["widget"], events[1]["update"]["widget"]);

    // Edit again, then Cancel: the row comes back unchanged; an empty due
    // date clears it.
    click(&f, &thread_id, item_id, "tasks.edit", &milk).await;
    let cancelled = click(&f, &thread_id, item_id, "tasks.edit_cancel", &milk).await;
    assert_eq!(
        row_of(&cancelled["updated_item"]["widget"], &milk),
        redrawn,
        "cancel redraws the task as it was"
    );
    click(&f, &thread_id, item_id, "tasks.edit", &milk).await;
    call_stream(
        &f.engine,
        "alice",
        submit(&thread_id, item_id, &milk, json!({"due_date": ""})),
    )
    .await;
    let record = f
        .tasks
        .get(&milk, &RequestContext::new("alice"))
        .await
        .unwrap();
    assert_eq!(record.due_date, None);
    assert_eq!(record.title, "buy oat milk");
}

async fn a_bad_or_forged_edit_submission_is_refused_and_changes_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let milk = add(&f, "alice", "buy milk").await;
    let bobs = add(&f, "bob", "bob's task").await;
    let (thread_id, item) = listed(&f).await;
    let item_id = item["id"].as_str().unwrap();
    // Saving is only offered once the form is open.
    let events = wire(
        &call_stream(
            &f.engine,
            "alice",
            submit(&thread_id, item_id, &milk, json!({"title": "early"})),
        )
        .await,
    );
    assert!(events.iter().any(|e| e["type"] == "error"), "{events:?}");
    let opened = click(&f, &thread_id, item_id, "tasks.edit", &milk).await;
    let form_widget = opened["updated_item"]["widget"].clone();
    for (fields, what) in [
        (json!({"title": "   "}), "an empty title"),
        (json!({"priority": "urgent"}), "an unknown priority"),
        (
            json!({"due_date": "next week"}),
            "a due date that is no date",
        ),
        (
            json!({"title": "x".repeat(300)}),
            "a title that is too long",
        ),
        (json!({"title": 7}), "a title that is not text"),
        (json!({"user_id": "bob"}), "a field the form does not have"),
    ] {
        let events = wire(
            &call_stream(
                &f.engine,
                "alice",
                submit(&thread_id, item_id, &milk, fields),
            )
            .await,
        );
        let error = events
            .iter()
            .find(|e| e["type"] == "error")
            .unwrap_or_else(|| panic!("{what} is refused: {events:?}"));
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(
            !events.iter().any(|e| e["type"] == "thread.item.updated"),
            "{what}: {events:?}"
        );
    }
    // Another user's task id in place of the form's own.
    let mut forged = submit(&thread_id, item_id, &bobs, json!({"title": "mine now"}));
    forged["type"] = json!("threads.sync_custom_action");
    assert_eq!(
        call_err(&f.engine, "alice", forged).await.code(),
        "invalid_request"
    );
    // Bob cannot submit alice's form.
    let mut as_bob = submit(&thread_id, item_id, &milk, json!({"title": "hijacked"}));
    as_bob["type"] = json!("threads.sync_custom_action");
    assert_eq!(call_err(&f.engine, "bob", as_bob).await.code(), "not_found");
    assert_eq!(done(&f, "alice").await, [("buy milk".to_owned(), false)]);
    assert_eq!(done(&f, "bob").await, [("bob's task".to_owned(), false)]);
    // The open form is still there to correct.
    let stored = items(&f.engine, "alice", &thread_id).await;
    assert_eq!(
        stored.iter().find(|i| i["id"] == item_id).unwrap()["widget"],
        form_widget
    );
}

on_both_stores!(
    editing_from_the_widget_opens_a_form_in_place_and_saves_it_without_the_model,
    a_bad_or_forged_edit_submission_is_refused_and_changes_nothing,
    a_delete_by_chat_waits_for_confirm_then_the_same_run_deletes_and_answers,
    cancel_tells_the_model_the_user_declined_and_deletes_nothing,
    a_pending_confirmation_survives_a_restart_and_is_answered_by_another_engine,
    a_widget_action_goes_through_when_the_days_token_budget_is_spent,
    another_user_cannot_answer_a_confirmation,
    an_expired_confirmation_runs_nothing,
    a_task_mentioned_with_an_input_tag_reaches_the_tools_by_id,
    listing_tasks_shows_them_as_a_list_widget_with_buttons,
    a_toggle_from_the_widget_updates_it_in_place_without_the_model,
    an_action_naming_another_users_task_or_a_forged_payload_is_refused,
    a_delete_from_the_widget_asks_in_place_then_removes_the_row,
    created_and_counted_tasks_show_a_card_and_tell_the_page,
);
