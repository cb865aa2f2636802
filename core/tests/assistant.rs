//! The task assistant end to end through `ChatEngine::process`, with the
//! offline `ScriptedModel`, on SQLite and on PostgreSQL.

#[macro_use]
#[path = "support/db.rs"]
mod db;
#[path = "support/engine.rs"]
mod support;

use chatkit_engine::RequestContext;
use chatkit_engine::agents::{RunConfig, Runner};
use chatkit_engine::engine::ChatEngine;
use chatkit_engine::store::{PostgresStore, SharedStore, SqliteStore};
use chatkit_engine::todo::language::{self, Language};
use chatkit_engine::todo::{self, Assistant, PgTaskTable, TaskQuery, TaskStore};
use db::{Backend, TestDb};
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;

struct Fixture {
    engine: ChatEngine,
    tasks: Arc<dyn TaskStore>,
    _db: TestDb,
}

async fn fixture(backend: Backend) -> Fixture {
    let db = TestDb::new(backend).await;
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
    let responder = Assistant::new(Arc::clone(&tasks), runner);
    let engine = ChatEngine::builder()
        .shared_store(chat)
        .responder(responder)
        .build()
        .unwrap();
    Fixture {
        engine,
        tasks,
        _db: db,
    }
}

async fn titles(tasks: &Arc<dyn TaskStore>, user: &str) -> Vec<(String, bool)> {
    tasks
        .list(&TaskQuery::default(), &RequestContext::new(user))
        .await
        .unwrap()
        .into_iter()
        .map(|task| (task.title, task.completed))
        .collect()
}

/// The text of the last assistant message in a stream.
fn answer(events: &[Value]) -> String {
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

/// Clicks Confirm on the confirmation card of `asked`.
async fn confirm(
    engine: &ChatEngine,
    user: &str,
    thread_id: &str,
    asked: &[Value],
) -> Vec<chatkit_engine::protocol::ThreadStreamEvent> {
    let card = asked
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["widget"]["confirm"].is_object())
        .expect("a confirmation card");
    let body = json!({"type": "threads.custom_action", "params": {
        "thread_id": thread_id, "item_id": card["item"]["id"],
        "action": card["item"]["widget"]["confirm"]["action"]}});
    call_stream(engine, user, body).await
}

fn workflow_titles(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "workflow")
        .flat_map(|e| {
            e["item"]["workflow"]["tasks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|task| task["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn adding_a_task_creates_it_for_that_user_only_and_streams_the_answer(backend: Backend) {
    let f = fixture(backend).await;
    let events = call_stream(&f.engine, "alice", create("add a task to buy milk")).await;
    let wire = wire(&events);
    let kinds = types(&events);
    assert!(kinds.contains(&"thread.item.added"));
    assert!(
        kinds
            .iter()
            .filter(|k| **k == "thread.item.updated")
            .count()
            >= 3,
        "the answer streams in deltas"
    );
    let workflow = wire
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "workflow")
        .unwrap();
    let task = &workflow["item"]["workflow"]["tasks"][0];
    assert_eq!(task["status_indicator"], "complete");
    assert!(
        task["title"]
            .as_str()
            .unwrap()
            .starts_with("Creating a task")
    );
    assert!(workflow["item"]["workflow"]["summary"]["duration"].is_i64());
    assert!(answer(&wire).contains("buy milk"));
    assert_eq!(
        wire.last().unwrap()["type"],
        "thread.updated",
        "a new thread gets a title"
    );
    assert_eq!(
        wire.last().unwrap()["thread"]["title"],
        "Add a task to buy milk"
    );

    assert_eq!(
        titles(&f.tasks, "alice").await,
        [("buy milk".to_owned(), false)]
    );
    assert!(titles(&f.tasks, "bob").await.is_empty());
}

async fn a_conversation_creates_lists_completes_and_deletes_across_turns(backend: Backend) {
    let f = fixture(backend).await;
    let first = call_stream(&f.engine, "alice", create("add a task to buy milk")).await;
    let thread_id = created_thread_id(&first);
    let say = |text: &'static str| add_message(&thread_id, text);

    call_stream(
        &f.engine,
        "alice",
        say("add a high priority task to call mom"),
    )
    .await;
    let listed = answer(&wire(
        &call_stream(&f.engine, "alice", say("show my tasks")).await,
    ));
    assert!(
        listed.contains("buy milk") && listed.contains("call mom"),
        "{listed}"
    );

    let completed = wire(&call_stream(&f.engine, "alice", say("mark buy milk as done")).await);
    assert!(
        answer(&completed).contains("completed"),
        "{}",
        answer(&completed)
    );
    assert_eq!(
        workflow_titles(&completed).len(),
        2,
        "a lookup, then the toggle"
    );

    // A delete waits for the user's confirmation, then the run goes on.
    let asked = wire(&call_stream(&f.engine, "alice", say("delete call mom")).await);
    assert_eq!(
        titles(&f.tasks, "alice").await.len(),
        2,
        "not before Confirm"
    );
    let deleted = answer(&wire(
        &confirm(&f.engine, "alice", &thread_id, &asked).await,
    ));
    assert!(deleted.contains("Deleted"), "{deleted}");
    assert_eq!(
        titles(&f.tasks, "alice").await,
        [("buy milk".to_owned(), true)]
    );

    let stats = answer(&wire(
        &call_stream(&f.engine, "alice", say("how many tasks do I have?")).await,
    ));
    assert!(
        stats.contains("1 tasks: 0 pending and 1 completed"),
        "{stats}"
    );

    // The whole conversation is persisted, in order.
    let stored = items(&f.engine, "alice", &thread_id).await;
    let users = stored
        .iter()
        .filter(|i| i["type"] == "user_message")
        .count();
    let answers = stored
        .iter()
        .filter(|i| i["type"] == "assistant_message")
        .count();
    assert_eq!((users, answers), (6, 6));
    assert!(stored.iter().any(|i| i["type"] == "widget"));
    assert!(stored.iter().any(|i| i["type"] == "workflow"));
}

async fn urdu_is_answered_by_the_urdu_specialist_in_urdu(backend: Backend) {
    let f = fixture(backend).await;
    let events = wire(&call_stream(&f.engine, "alice", create("دودھ خریدنے کا ٹاسک بنائیں")).await);
    assert!(workflow_titles(&events).contains(&"Handed off to Urdu Specialist".to_owned()));
    let reply = answer(&events);
    assert_eq!(language::detect(&reply), Language::Urdu, "{reply}");
    assert_eq!(
        titles(&f.tasks, "alice").await,
        [("دودھ خریدنے".to_owned(), false)]
    );

    let thread_id = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    let listed = answer(&wire(
        &call_stream(
            &f.engine,
            "alice",
            add_message(&thread_id, "میرے ٹاسک دکھائیں"),
        )
        .await,
    ));
    assert!(listed.contains("دودھ خریدنے"), "{listed}");
    let roman = answer(&wire(
        &call_stream(
            &f.engine,
            "alice",
            add_message(&thread_id, "mere kitne task hain"),
        )
        .await,
    ));
    assert_eq!(language::detect(&roman), Language::Urdu, "{roman}");
}

async fn users_never_see_each_others_tasks_even_by_id(backend: Backend) {
    let f = fixture(backend).await;
    call_stream(&f.engine, "alice", create("add a task to buy milk")).await;
    let alice_task = f
        .tasks
        .list(&TaskQuery::default(), &RequestContext::new("alice"))
        .await
        .unwrap()
        .remove(0);

    let attempt = answer(&wire(
        &call_stream(
            &f.engine,
            "bob",
            create(&format!("complete {}", alice_task.id)),
        )
        .await,
    ));
    assert!(attempt.contains("Task not found"), "{attempt}");
    let attempt = answer(&wire(
        &call_stream(
            &f.engine,
            "bob",
            create(&format!("delete {}", alice_task.id)),
        )
        .await,
    ));
    assert!(attempt.contains("Task not found"), "{attempt}");
    let listed = answer(&wire(
        &call_stream(&f.engine, "bob", create("show my tasks")).await,
    ));
    assert!(!listed.contains("buy milk"), "{listed}");
    assert!(
        answer(&wire(
            &call_stream(&f.engine, "bob", create("mark buy milk as done")).await
        ))
        .contains("couldn't find")
    );

    assert_eq!(
        titles(&f.tasks, "alice").await,
        [("buy milk".to_owned(), false)]
    );
}

on_both_stores!(
    adding_a_task_creates_it_for_that_user_only_and_streams_the_answer,
    a_conversation_creates_lists_completes_and_deletes_across_turns,
    urdu_is_answered_by_the_urdu_specialist_in_urdu,
    users_never_see_each_others_tasks_even_by_id,
);

#[tokio::test]
async fn the_first_turn_titles_the_thread_and_later_turns_keep_it() {
    let f = fixture(Backend::Sqlite).await;
    let events = wire(&call_stream(&f.engine, "alice", create("hello")).await);
    let thread_id = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    assert_eq!(events.last().unwrap()["thread"]["title"], "Hello");
    let next =
        wire(&call_stream(&f.engine, "alice", add_message(&thread_id, "show my tasks")).await);
    assert!(next.iter().all(|e| e["type"] != "thread.updated"));
    let _ = json!({});
}

#[tokio::test]
async fn hosts_run_the_task_tools_directly_on_the_same_table_the_chat_uses() {
    let config = chatkit_engine::EngineConfig {
        database_url: "sqlite::memory:".into(),
        ..chatkit_engine::EngineConfig::default()
    };
    let todo::App { engine, assistant } = todo::App::from_config(config).await.unwrap();
    let alice = RequestContext::new("alice");
    let created = assistant
        .run_task_tool(
            "create_task",
            json!({"title": "file taxes", "priority": "high"}),
            &alice,
        )
        .await
        .unwrap();
    assert_eq!(created["success"], true);
    assert_eq!(created["data"]["priority"], "high");

    let listed = answer(&wire(
        &call_stream(&engine, "alice", create("show my tasks")).await,
    ));
    assert!(listed.contains("file taxes"), "{listed}");

    let refused = assistant
        .run_task_tool("get_task", json!({"task_id": "nope"}), &alice)
        .await
        .unwrap();
    assert_eq!(
        refused,
        json!({"success": false, "error": "Invalid task ID format"})
    );
    let bob = assistant
        .run_task_tool("list_tasks", json!({}), &RequestContext::new("bob"))
        .await
        .unwrap();
    assert_eq!(bob["data"], json!([]));
    let err = assistant
        .run_task_tool("format_disk", json!({}), &alice)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
}
