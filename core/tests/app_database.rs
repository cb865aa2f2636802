//! The engine on the existing app's PostgreSQL database, in each of its known
//! shapes (fixtures in `fixtures/app/`, written from the app's facts): engine
//! tables in their own schema, the app's tables untouched row for row, the
//! app's task table used as it is, and the earlier layout moved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/db.rs"]
mod db;
#[path = "support/engine.rs"]
mod support;

use chatkit_engine::protocol::{IdKind, Order, ThreadMetadata, Timestamp, new_id};
use chatkit_engine::store::{self, PostgresStore, Store};
use chatkit_engine::todo::{self, App, PgTaskTable, TaskQuery, TaskStore};
use chatkit_engine::{EngineConfig, RequestContext};
use db::{Backend, TestDb};
use serde_json::{Value, json};
use support::*;

const USERS: &str = include_str!("fixtures/app/better_auth_user.sql");
const TASKS_SQLMODEL: &str = include_str!("fixtures/app/tasks_sqlmodel.sql");
const TASKS_SPEC: &str = include_str!("fixtures/app/tasks_spec.sql");
const CHAT_CURRENT: &str = include_str!("fixtures/app/chat_sessions_current.sql");
const CHAT_OLDER: &str = include_str!("fixtures/app/chat_sessions_older.sql");

/// A fresh database holding the app's tables.
async fn app_db(parts: &[&str]) -> TestDb {
    let db = TestDb::new(Backend::Postgres).await;
    for sql in parts {
        db.execute(sql).await;
    }
    db
}

/// A digest of every row of a table (`public` unless qualified).
async fn table_hash(db: &TestDb, table: &str) -> String {
    db.scalar_text(&format!(
        "SELECT COALESCE(md5(string_agg(t::TEXT, '|' ORDER BY t::TEXT)), 'empty') FROM {table} t"
    ))
    .await
}

async fn app_chat_hashes(db: &TestDb) -> Vec<String> {
    vec![
        table_hash(db, "public.chat_sessions").await,
        table_hash(db, "public.chat_messages").await,
    ]
}

async fn app_on(db: &TestDb) -> App {
    let config = EngineConfig {
        database_url: db.url.clone(),
        ..EngineConfig::default()
    };
    App::from_config(config).await.unwrap()
}

/// Creates, lists, toggles and deletes through a chat and checks the rows in
/// the app's table.
async fn a_chat_turn_manages_tasks_in_the_apps_table(db: &TestDb, app: &App) {
    let engine = &app.engine;
    let first = call_stream(engine, "alice", create("add a task to buy milk")).await;
    let thread_id = created_thread_id(&first);
    let say = |text: &'static str| add_message(&thread_id, text);
    assert_eq!(
        db.scalar_i64(
            "SELECT COUNT(*) FROM public.tasks WHERE title = 'buy milk' AND \"userId\" = 'alice'"
        )
        .await,
        1
    );
    let listed = wire(&call_stream(engine, "alice", say("show my tasks")).await);
    let text = listed.iter().map(Value::to_string).collect::<String>();
    assert!(text.contains("buy milk") && text.contains("From the app"));
    call_stream(engine, "alice", say("mark buy milk as done")).await;
    assert_eq!(
        db.scalar_text(
            "SELECT status || '/' || completed::TEXT FROM public.tasks WHERE title = 'buy milk'"
        )
        .await,
        "completed/true"
    );
    let asked = wire(&call_stream(engine, "alice", say("delete buy milk")).await);
    let card = asked
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["widget"]["confirm"].is_object())
        .expect("a delete asks for confirmation");
    let confirm = serde_json::json!({"type": "threads.custom_action", "params": {
        "thread_id": thread_id, "item_id": card["item"]["id"],
        "action": card["item"]["widget"]["confirm"]["action"]}});
    call_stream(engine, "alice", confirm).await;
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM public.tasks WHERE title = 'buy milk'")
            .await,
        0
    );
    // The app's own row is still there, untouched.
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM public.tasks").await, 1);
}

async fn starts_and_keeps_the_apps_tables(tasks: &str, chat: &str) {
    let db = app_db(&[USERS, tasks, chat]).await;
    let before = app_chat_hashes(&db).await;
    let users = table_hash(&db, "public.\"user\"").await;
    let app = app_on(&db).await;
    a_chat_turn_manages_tasks_in_the_apps_table(&db, &app).await;
    assert_eq!(
        app_chat_hashes(&db).await,
        before,
        "the app's chat tables changed"
    );
    assert_eq!(table_hash(&db, "public.\"user\"").await, users);
    // The engine's own tables and history live in `chatkit` only.
    assert!(
        db.scalar_i64("SELECT COUNT(*) FROM chatkit.chat_sessions")
            .await
            > 0
    );
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '_sqlx_migrations'")
            .await,
        0
    );
    // A second start (another replica, a restart) is a no-op.
    drop(app);
    let again = app_on(&db).await;
    let threads = again
        .engine
        .store()
        .load_threads(10, None, Order::Asc, &RequestContext::new("alice"))
        .await
        .unwrap();
    assert_eq!(threads.data.len(), 1);
    assert_eq!(app_chat_hashes(&db).await, before);
}

#[tokio::test]
async fn the_engine_starts_on_the_sqlmodel_tasks_beside_the_apps_chatkit_tables() {
    starts_and_keeps_the_apps_tables(TASKS_SQLMODEL, CHAT_CURRENT).await;
}

#[tokio::test]
async fn the_engine_starts_on_the_spec_tasks_beside_the_apps_chatkit_tables() {
    starts_and_keeps_the_apps_tables(TASKS_SPEC, CHAT_CURRENT).await;
}

#[tokio::test]
async fn the_engine_starts_beside_the_older_chat_tables_and_agents() {
    starts_and_keeps_the_apps_tables(TASKS_SQLMODEL, CHAT_OLDER).await;
}

#[tokio::test]
async fn naive_app_timestamps_read_as_utc_and_tools_write_every_column() {
    for shape in [TASKS_SQLMODEL, TASKS_SPEC] {
        let db = app_db(&[USERS, shape]).await;
        // Whatever the session's zone, naive values are UTC.
        let url = format!("{}?options=-c%20TimeZone%3DAsia%2FKarachi", db.url);
        let store = PostgresStore::connect(&url).await.unwrap();
        let tasks = PgTaskTable::open(&store, "public.tasks").await.unwrap();
        let alice = RequestContext::new("alice");
        let app_task = tasks
            .get("11111111-1111-4111-8111-111111111111", &alice)
            .await
            .unwrap();
        assert_eq!(
            app_task.due_date.map(|at| at.to_string()).as_deref(),
            Some("2026-01-20T17:00:00Z")
        );
        let made = tasks
            .create(
                &todo::NewTask {
                    due_date: Some(Timestamp::parse("2026-02-01T08:30:00Z").unwrap()),
                    ..todo::NewTask::new("Pay rent")
                },
                &alice,
            )
            .await
            .unwrap();
        let raw = db
            .scalar_text(&format!(
                "SELECT status || ' ' || completed::TEXT || ' ' || \
                 to_char(\"dueDate\" {}, 'YYYY-MM-DD HH24:MI') FROM public.tasks WHERE id = '{}'",
                if shape == TASKS_SPEC {
                    "AT TIME ZONE 'UTC'"
                } else {
                    ""
                },
                made.id
            ))
            .await;
        assert_eq!(raw, "pending false 2026-02-01 08:30");
        let toggled = tasks.toggle_complete(&made.id, &alice).await.unwrap();
        assert!(toggled.completed);
        assert_eq!(
            db.scalar_text(&format!(
                "SELECT status || ' ' || completed::TEXT FROM public.tasks WHERE id = '{}'",
                made.id
            ))
            .await,
            "completed true"
        );
        let listed = tasks.list(&TaskQuery::default(), &alice).await.unwrap();
        assert_eq!(listed.len(), 2);
        store.pool().close().await;
    }
}

#[tokio::test]
async fn a_user_missing_from_the_apps_user_table_is_an_unknown_user_tool_error() {
    let db = app_db(&[USERS, TASKS_SPEC]).await;
    let app = app_on(&db).await;
    let result = app
        .assistant
        .run_task_tool(
            "create_task",
            json!({"title": "Ghost task"}),
            &RequestContext::new("ghost"),
        )
        .await
        .unwrap();
    assert_eq!(result["success"], false, "{result}");
    assert!(
        result["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown user"),
        "{result}"
    );
}

#[tokio::test]
async fn a_configured_schema_and_task_table_are_used_by_their_qualified_names() {
    let db = app_db(&[
        USERS,
        "CREATE SCHEMA app;",
        &TASKS_SQLMODEL
            .replace("TABLE tasks", "TABLE app.todo_items")
            .replace("ON tasks", "ON app.todo_items")
            .replace("INTO tasks", "INTO app.todo_items"),
    ])
    .await;
    let config = EngineConfig {
        database_url: db.url.clone(),
        database_schema: "Chat Engine".into(),
        tasks_table: "app.todo_items".into(),
        ..EngineConfig::default()
    };
    let app = App::from_config(config).await.unwrap();
    let events = call_stream(&app.engine, "alice", create("add a task to buy milk")).await;
    created_thread_id(&events);
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM \"Chat Engine\".chat_sessions")
            .await,
        1
    );
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM app.todo_items").await,
        2
    );
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM pg_namespace WHERE nspname = 'chatkit'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_missing_task_table_is_created_and_a_malformed_one_is_a_clear_error() {
    let db = app_db(&[]).await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    PgTaskTable::open(&store, "public.tasks").await.unwrap();
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM public.tasks").await, 0);
    db.execute("CREATE TABLE public.notes (id UUID PRIMARY KEY, title TEXT)")
        .await;
    let err = PgTaskTable::open(&store, "public.notes").await.unwrap_err();
    assert!(err.to_string().contains("lacks the column"), "{err}");
    let err = PgTaskTable::open(&store, "nowhere.tasks")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn the_earlier_layout_in_public_is_moved_with_every_row() {
    let db = app_db(&[]).await;
    // The earlier layout: engine tables and sqlx's history in `public`,
    // written by the store itself, with the first migration's old checksum.
    let alice = RequestContext::new("alice");
    let thread = ThreadMetadata::new(new_id(IdKind::Thread), Timestamp::now());
    {
        let old = PostgresStore::connect_in(&db.url, "public").await.unwrap();
        for _ in 0..3 {
            let thread = ThreadMetadata::new(new_id(IdKind::Thread), Timestamp::now());
            old.save_thread(&thread, &alice).await.unwrap();
        }
        old.save_thread(&thread, &alice).await.unwrap();
        old.pool().close().await;
    }
    // That layout predates every migration after the first.
    db.execute(
        "DROP TABLE public.chat_turn_leases; \
         DROP TABLE public.chat_approvals; \
         DROP TABLE public.chat_token_usage; \
         DELETE FROM public._sqlx_migrations WHERE version > 1; \
         UPDATE public._sqlx_migrations SET checksum = '\\x0123'::BYTEA",
    )
    .await;
    let before = table_hash(&db, "public.chat_sessions").await;

    let moved = PostgresStore::connect(&db.url).await.unwrap();
    assert_eq!(table_hash(&db, "chatkit.chat_sessions").await, before);
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'")
            .await,
        0
    );
    let threads = moved
        .load_threads(10, None, Order::Asc, &alice)
        .await
        .unwrap();
    assert_eq!(threads.data.len(), 4);
    assert_eq!(threads.data[3].id, thread.id);
    // New rows continue the same sequence.
    let newer = ThreadMetadata::new(new_id(IdKind::Thread), Timestamp::now());
    moved.save_thread(&newer, &alice).await.unwrap();
    let threads = moved
        .load_threads(10, None, Order::Asc, &alice)
        .await
        .unwrap();
    assert_eq!(threads.data[4].id, newer.id);
    // Opening again does nothing more.
    let report = PostgresStore::migrate(moved.pool(), "chatkit")
        .await
        .unwrap();
    assert!(
        report.moved_tables.is_empty() && report.applied.is_empty(),
        "{report}"
    );
}

#[tokio::test]
async fn replicas_starting_at_once_all_open_the_same_schema() {
    let db = app_db(&[USERS, TASKS_SQLMODEL, CHAT_CURRENT]).await;
    let opens = (0..4).map(|_| store::connect(&db.url));
    for database in futures::future::join_all(opens).await {
        database.unwrap().store().ping().await.unwrap();
    }
    // Each migration applied once.
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM chatkit._sqlx_migrations")
            .await,
        shipped
    );
    // On an empty database the replicas also create the task table once.
    let empty = app_db(&[]).await;
    let apps = (0..4).map(|_| app_on(&empty));
    let apps = futures::future::join_all(apps).await;
    assert_eq!(apps.len(), 4);
    assert_eq!(
        empty.scalar_i64("SELECT COUNT(*) FROM public.tasks").await,
        0
    );
}

// ---------------------------------------------------------------------------
// import-history

use chatkit_engine::todo::history::{HistoryShape, ImportOptions, import_history};

async fn imports_once(chat: &str, shape: HistoryShape, user: &str, expected: (u64, u64, u64)) {
    let db = app_db(&[USERS, TASKS_SQLMODEL, chat]).await;
    let before = app_chat_hashes(&db).await;
    let app = app_on(&db).await;
    let store = PostgresStore::connect(&db.url).await.unwrap();

    // A dry run counts and writes nothing.
    let dry = ImportOptions {
        dry_run: true,
        ..ImportOptions::default()
    };
    let report = import_history(&store, &dry).await.unwrap();
    assert_eq!(report.shape, Some(shape));
    assert_eq!(
        (
            report.threads_imported,
            report.messages_imported,
            report.tool_rows_skipped
        ),
        expected,
        "{report}"
    );
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM chatkit.chat_sessions")
            .await,
        0
    );

    let report = import_history(&store, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (
            report.threads_imported,
            report.messages_imported,
            report.tool_rows_skipped
        ),
        expected,
        "{report}"
    );
    assert!(report.warnings.is_empty(), "{report}");
    // Idempotent: a second run finds everything there.
    let again = import_history(&store, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (again.threads_imported, again.messages_imported),
        (0, 0),
        "{again}"
    );
    assert_eq!(again.threads_existing, expected.0);
    assert_eq!(app_chat_hashes(&db).await, before, "the source changed");

    // The imported thread lists, loads and continues like any other.
    let listed = call_json(
        &app.engine,
        user,
        json!({"type": "threads.list", "params": {}}),
    )
    .await;
    let thread_id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let stored = items(&app.engine, user, &thread_id).await;
    let kinds: Vec<&str> = stored.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user_message", "assistant_message"]);
    call_stream(&app.engine, user, add_message(&thread_id, "show my tasks")).await;
    assert!(items(&app.engine, user, &thread_id).await.len() >= 4);
    // Nobody else sees it.
    let other = if user == "alice" { "bob" } else { "alice" };
    let theirs = call_json(
        &app.engine,
        other,
        json!({"type": "threads.list", "params": {}}),
    )
    .await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    listed["data"][0]["title"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
}

#[tokio::test]
async fn import_history_copies_the_current_chat_shape_once_and_a_dry_run_changes_nothing() {
    imports_once(CHAT_CURRENT, HistoryShape::Current, "alice", (1, 2, 1)).await;
}

#[tokio::test]
async fn import_history_copies_the_older_chat_shape_once() {
    imports_once(CHAT_OLDER, HistoryShape::Older, "bob", (1, 2, 0)).await;
}

#[tokio::test]
async fn import_history_keeps_titles_order_and_timestamps_and_warns_on_malformed_rows() {
    let db = app_db(&[USERS, TASKS_SQLMODEL, CHAT_CURRENT]).await;
    // A message with an unknown sender is malformed.
    db.execute(
        "ALTER TABLE public.chat_messages DROP CONSTRAINT chat_messages_sender_type_check; \
         INSERT INTO public.chat_messages VALUES ('66666666-6666-4666-8666-666666666666', \
         '22222222-2222-4222-8222-222222222222', 'alice', '?', 'robot', NULL, now(), NULL);",
    )
    .await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let only_bob = ImportOptions {
        user: Some("bob".into()),
        ..ImportOptions::default()
    };
    assert_eq!(import_history(&store, &only_bob).await.unwrap().sessions, 0);
    let report = import_history(&store, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{report}");
    assert!(report.warnings[0].contains("66666666-6666-4666-8666-666666666666"));
    assert_eq!(report.messages_imported, 2);
    let alice = RequestContext::new("alice");
    let thread = store
        .load_thread("thr_22222222222242228222222222222222", &alice)
        .await
        .unwrap();
    assert_eq!(thread.title.as_deref(), Some("Groceries"));
    assert_eq!(thread.created_at.to_string(), "2026-01-10T09:00:00Z");
    let page = store
        .load_thread_items(&thread.id, None, 10, Order::Asc, &alice)
        .await
        .unwrap();
    let texts: Vec<String> = page
        .data
        .iter()
        .map(|item| {
            serde_json::to_value(item).unwrap()["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, ["add milk", "Added \"milk\"."]);
    assert_eq!(page.data[1].created_at.to_string(), "2026-01-10T09:00:05Z");
}
