//! Proof that one user cannot reach another user's data, on both stores.
//!
//! Alice builds up a thread with items of every kind (user and assistant
//! messages, a widget, a pending form, a pending client tool call), two
//! attachments (one linked to her message, one not), feedback and tasks.
//! Then Bob sends every one of the 16 request types naming Alice's thread,
//! item and attachment ids, chats with the assistant about Alice's task id,
//! and calls every task tool with it. Each attempt is `not_found` (or, for
//! requests that name nothing of Alice's, shows Bob only his own data), and
//! the database, read directly with SQL afterwards, holds exactly what it
//! held before.
//!
//! A second test stores SQL metacharacters, Urdu and emoji in thread and task
//! titles and search terms and checks that they are stored and matched
//! literally.
//!
//! Two more cover the adversarial pass over `serve`: over MCP Streamable
//! HTTP, Bob cannot use or end a session Alice opened and each user has a
//! cap of open sessions; and identities and text with NUL or other control
//! characters (a token's `sub`, a task title over MCP, chat text, titles and
//! ids) are refused with `invalid_request` before any store is touched, the
//! same on both stores.
//!
//! Each test runs as `sqlite::<name>` (a temp file) and `postgres::<name>` (a
//! fresh database on `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/db.rs"]
mod db;
#[path = "support/jwt.rs"]
mod jwt;
#[path = "support/engine.rs"]
mod support;

use chatkit_engine::agents::{RunConfig, Runner};
use chatkit_engine::auth::JwtVerifier;
use chatkit_engine::engine::{ChatEngine, UploadUrls};
use chatkit_engine::protocol::{REQUEST_TYPES, ThreadItem};
use chatkit_engine::store::{self, SharedStore};
use chatkit_engine::todo::{self, Assistant, TASK_TOOL_NAMES};
use chatkit_engine::tools::mcp::McpHttpService;
use chatkit_engine::tools::{ToolContext, ToolSet};
use chatkit_engine::{EngineConfig, RequestContext};
use db::{Backend, TestDb};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use std::collections::BTreeSet;
use std::sync::Arc;
use support::{call_err, call_json, call_stream, created_thread_id, settle, wire};
use tower_service::Service;

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let fixture = super::Fixture::new(super::Backend::Sqlite).await;
                    super::$test(&fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let fixture = super::Fixture::new(super::Backend::Postgres).await;
                    super::$test(&fixture).await;
                }
            )*
        }
    };
}

both_backends! {
    another_users_ids_are_not_found_and_change_nothing,
    sql_metacharacters_and_unicode_are_stored_and_matched_literally,
    another_users_mcp_session_is_not_found_and_cannot_be_ended,
    identities_and_text_with_control_characters_are_refused_before_the_store,
}

const ALICE: &str = "alice";
const BOB: &str = "bob";
const CAROL: &str = "carol";

// ---------------------------------------------------------------------------
// Fixture

struct Fixture {
    engine: ChatEngine,
    store: SharedStore,
    tools: ToolSet,
    /// Last, so the pools above are dropped before the database.
    db: TestDb,
}

impl Fixture {
    /// The offline task assistant with an attachment store on a fresh
    /// database of `backend`.
    async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let database = store::connect(&db.url).await.unwrap();
        let runner = Runner::new(RunConfig::new(Arc::new(todo::offline_model())));
        let assistant = Assistant::new(todo::task_table(&database).await.unwrap(), runner);
        let tools = assistant.tools().clone();
        let engine = ChatEngine::builder()
            .shared_store(database.store())
            .responder(assistant)
            .attachment_store(UploadUrls::new("https://files.example.com/attachments"))
            .verifier(JwtVerifier::from_secret(jwt::SECRET).unwrap())
            .config(EngineConfig {
                database_url: db.url.clone(),
                ..EngineConfig::default()
            })
            .build()
            .unwrap();
        Self {
            db,
            engine,
            store: database.store(),
            tools,
        }
    }

    /// Calls a task tool as `user` and returns its JSON envelope.
    async fn tool(&self, user: &str, name: &str, arguments: Value) -> Value {
        let ctx = ToolContext {
            request: RequestContext::new(user),
            call_id: "call_isolation".to_owned(),
        };
        let output = self
            .tools
            .get(name)
            .unwrap_or_else(|| panic!("no tool {name}"))
            .call(arguments, &ctx)
            .await
            .unwrap_or_else(|err| panic!("{name} failed: {err}"));
        serde_json::from_str(&output.content).unwrap()
    }

    /// Every row of every table, as text, in a stable order. `user` limits
    /// it to one user's rows.
    async fn snapshot(&self, user: Option<&str>) -> Vec<(String, Vec<Vec<Option<String>>>)> {
        let tables = [
            (
                "chat_sessions",
                "SELECT id, user_id, title, CAST(created_at AS TEXT), CAST(updated_at AS TEXT), payload \
                 FROM chat_sessions {where} ORDER BY seq",
                "user_id",
            ),
            (
                "chat_messages",
                "SELECT id, thread_id, user_id, item_type, CAST(created_at AS TEXT), payload \
                 FROM chat_messages {where} ORDER BY seq",
                "user_id",
            ),
            (
                "chat_attachments",
                "SELECT id, user_id, thread_id, payload, metadata, CAST(updated_at AS TEXT) \
                 FROM chat_attachments {where} ORDER BY user_id, id",
                "user_id",
            ),
            (
                "chat_feedback",
                "SELECT user_id, thread_id, item_id, kind, CAST(created_at AS TEXT) \
                 FROM chat_feedback {where} ORDER BY user_id, thread_id, item_id",
                "user_id",
            ),
            (
                "tasks",
                "SELECT CAST(id AS TEXT), title, description, priority, category, status, \
                 CAST(completed AS TEXT), CAST(\"dueDate\" AS TEXT), CAST(\"createdAt\" AS TEXT), \
                 CAST(\"updatedAt\" AS TEXT), \"userId\" FROM tasks {where} ORDER BY CAST(id AS TEXT)",
                "\"userId\"",
            ),
        ];
        let mut out = Vec::new();
        for (table, sql, user_column) in tables {
            // The user names are constants of this file, never input.
            let filter = user
                .map(|user| format!("WHERE {user_column} = '{user}'"))
                .unwrap_or_default();
            let sql = sql.replace("{where}", &filter);
            out.push((table.to_owned(), rows(&self.db, &sql).await));
        }
        out
    }

    async fn count(&self, table: &str, user: &str) -> i64 {
        let column = if table == "tasks" {
            "\"userId\""
        } else {
            "user_id"
        };
        self.db
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM {table} WHERE {column} = '{user}'"
            ))
            .await
    }
}

/// Runs `sql` on a fresh connection; every column must be text (or NULL).
async fn rows(db: &TestDb, sql: &str) -> Vec<Vec<Option<String>>> {
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let found = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            found
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| row.try_get::<Option<String>, _>(i).unwrap())
                        .collect()
                })
                .collect()
        }
        Backend::Postgres => {
            let mut conn = db.pg_connection().await;
            let found = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            found
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| row.try_get::<Option<String>, _>(i).unwrap())
                        .collect()
                })
                .collect()
        }
    }
}

fn item(id: &str, thread_id: &str, rest: Value) -> ThreadItem {
    let mut wire = json!({"id": id, "thread_id": thread_id, "created_at": "2026-01-01T00:00:00Z"});
    wire.as_object_mut()
        .unwrap()
        .extend(rest.as_object().unwrap().clone());
    serde_json::from_value(wire).unwrap()
}

fn user_input(text: &str, attachments: &[&str]) -> Value {
    json!({"content":[{"type":"input_text","text":text}],"attachments":attachments,"inference_options":{}})
}

/// Everything Alice owns, by id.
struct AliceData {
    thread: String,
    user_message: String,
    assistant_message: String,
    widget: String,
    form: String,
    client_call: String,
    linked_attachment: String,
    free_attachment: String,
    task: String,
    task_title: String,
}

/// Alice's thread, items, attachments, feedback and tasks.
async fn alice_builds_up_her_data(fx: &Fixture) -> AliceData {
    let engine = &fx.engine;
    let create_attachment = |name: &str, mime: &str| json!({"type":"attachments.create","params":{"name":name,"size":10,"mime_type":mime}});
    let linked = call_json(engine, ALICE, create_attachment("cat.png", "image/png")).await;
    let free = call_json(engine, ALICE, create_attachment("notes.txt", "text/plain")).await;
    let linked_attachment = linked["id"].as_str().unwrap().to_owned();
    let free_attachment = free["id"].as_str().unwrap().to_owned();

    let task_title = "Alice's secret plan".to_owned();
    let created = fx
        .tool(
            ALICE,
            "create_task",
            json!({"title": task_title, "description": "private", "priority": "high"}),
        )
        .await;
    assert_eq!(created["success"], true, "{created}");
    let task = created["data"]["id"].as_str().unwrap().to_owned();

    let events = wire(
        &call_stream(
            engine,
            ALICE,
            json!({"type":"threads.create","params":{"input":user_input("Add a task: buy milk", &[&linked_attachment])}}),
        )
        .await,
    );
    settle(engine).await;
    let thread = events[0]["thread"]["id"].as_str().unwrap().to_owned();
    let user_message = events[1]["item"]["id"].as_str().unwrap().to_owned();
    assert_eq!(events[1]["item"]["attachments"][0]["id"], linked_attachment);
    let assistant_message = events
        .iter()
        .rev()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "assistant_message")
        .unwrap_or_else(|| panic!("no assistant answer in {events:?}"))["item"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Items the scripted assistant never makes, added through the store.
    let ctx = RequestContext::new(ALICE);
    let widget = "msg_alice_widget".to_owned();
    let form = "msg_alice_form".to_owned();
    let client_call = "cal_alice_call".to_owned();
    for extra in [
        item(
            &widget,
            &thread,
            json!({"type":"widget","widget":{"type":"Card","children":[]}}),
        ),
        item(
            &form,
            &thread,
            json!({"type":"structured_input","status":"pending","inputs":[{"id":"q","question":"Why?","type":"freeform"}]}),
        ),
        item(
            &client_call,
            &thread,
            json!({"type":"client_tool_call","status":"pending","call_id":"call_1","name":"get_selection","arguments":{}}),
        ),
    ] {
        fx.store
            .add_thread_item(&thread, &extra, &ctx)
            .await
            .unwrap();
    }
    call_json(
        engine,
        ALICE,
        json!({"type":"items.feedback","params":{"thread_id":thread,"item_ids":[assistant_message],"kind":"positive"}}),
    )
    .await;
    call_json(
        engine,
        ALICE,
        json!({"type":"threads.update","params":{"thread_id":thread,"title":"Alice's plans"}}),
    )
    .await;

    AliceData {
        thread,
        user_message,
        assistant_message,
        widget,
        form,
        client_call,
        linked_attachment,
        free_attachment,
        task,
        task_title,
    }
}

// ---------------------------------------------------------------------------
// Tests

async fn another_users_ids_are_not_found_and_change_nothing(fx: &Fixture) {
    let a = alice_builds_up_her_data(fx).await;
    for table in [
        "chat_sessions",
        "chat_messages",
        "chat_attachments",
        "chat_feedback",
        "tasks",
    ] {
        assert!(fx.count(table, ALICE).await > 0, "alice has {table} rows");
    }
    let everything_before = fx.snapshot(None).await;
    let alice_before = fx.snapshot(Some(ALICE)).await;
    let engine = &fx.engine;

    // 1. Every request type naming Alice's ids: not found, nothing written.
    let thread = a.thread.as_str();
    let attempts: Vec<Value> = vec![
        json!({"type":"threads.create","params":{"input":user_input("mine now", &[&a.free_attachment])}}),
        json!({"type":"threads.create","params":{"input":user_input("mine now", &[&a.linked_attachment])}}),
        json!({"type":"threads.add_user_message","params":{"thread_id":thread,"input":user_input("bob was here", &[])}}),
        json!({"type":"threads.add_client_tool_output","params":{"thread_id":thread,"result":{"stolen":true}}}),
        json!({"type":"threads.add_structured_input","params":{"thread_id":thread,"item_id":a.form,"input":{"answers":{"q":{"values":["bob"]}}}}}),
        json!({"type":"threads.retry_after_item","params":{"thread_id":thread,"item_id":a.user_message}}),
        json!({"type":"threads.custom_action","params":{"thread_id":thread,"item_id":a.widget,"action":{"type":"click"}}}),
        json!({"type":"threads.custom_action","params":{"thread_id":thread,"action":{"type":"click"}}}),
        json!({"type":"threads.get_by_id","params":{"thread_id":thread}}),
        json!({"type":"threads.update","params":{"thread_id":thread,"title":"pwned"}}),
        json!({"type":"threads.delete","params":{"thread_id":thread}}),
        json!({"type":"items.list","params":{"thread_id":thread}}),
        json!({"type":"items.list","params":{"thread_id":thread,"after":a.user_message,"order":"asc"}}),
        json!({"type":"items.feedback","params":{"thread_id":thread,"item_ids":[a.assistant_message],"kind":"negative"}}),
        json!({"type":"items.feedback","params":{"thread_id":thread,"item_ids":[],"kind":"negative"}}),
        json!({"type":"attachments.delete","params":{"attachment_id":a.linked_attachment}}),
        json!({"type":"attachments.delete","params":{"attachment_id":a.free_attachment}}),
        json!({"type":"threads.sync_custom_action","params":{"thread_id":thread,"item_id":a.widget,"action":{"type":"click"}}}),
        json!({"type":"threads.sync_custom_action","params":{"thread_id":thread,"action":{"type":"click"}}}),
    ];
    let mut covered = BTreeSet::new();
    for body in &attempts {
        let err = call_err(engine, BOB, body.clone()).await;
        assert_eq!(err.code(), "not_found", "{body}: {err}");
        assert_eq!(err.http_status(), 404);
        // The error names Bob's request, never Alice's data.
        assert!(!err.to_string().contains("Alice"), "{err}");
        covered.insert(body["type"].as_str().unwrap().to_owned());
    }
    // Requests that name nothing of Alice's show Bob nothing of hers.
    let list = call_json(engine, BOB, json!({"type":"threads.list","params":{}})).await;
    assert_eq!(list["data"], json!([]), "{list}");
    let err = call_err(
        engine,
        BOB,
        json!({"type":"threads.list","params":{"after":thread}}),
    )
    .await;
    assert!(
        matches!(err.code(), "not_found" | "invalid_request"),
        "{err}"
    );
    covered.insert("threads.list".to_owned());
    let err = call_err(
        engine,
        BOB,
        json!({"type":"input.transcribe","params":{"audio_base64":"YWJj","mime_type":"audio/webm"}}),
    )
    .await;
    assert_eq!(err.code(), "not_supported", "{err}");
    covered.insert("input.transcribe".to_owned());
    settle(engine).await;
    assert_eq!(
        fx.snapshot(None).await,
        everything_before,
        "a refused request wrote something"
    );

    // attachments.create names nothing of Alice's: Bob gets a new one of his own.
    let bobs = call_json(
        engine,
        BOB,
        json!({"type":"attachments.create","params":{"name":"b.png","size":1,"mime_type":"image/png"}}),
    )
    .await;
    assert_ne!(bobs["id"], json!(a.linked_attachment));
    assert_ne!(bobs["id"], json!(a.free_attachment));
    covered.insert("attachments.create".to_owned());
    let expected: BTreeSet<String> = REQUEST_TYPES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(covered, expected, "every request type was tried");

    // 2. Bob's own thread, naming Alice's items and attachments.
    let bob_thread = created_thread_id(
        &call_stream(
            engine,
            BOB,
            json!({"type":"threads.create","params":{"input":user_input("hello", &[])}}),
        )
        .await,
    );
    settle(engine).await;
    let own = bob_thread.as_str();
    for body in [
        json!({"type":"threads.add_user_message","params":{"thread_id":own,"input":user_input("take it", &[&a.free_attachment])}}),
        json!({"type":"threads.add_structured_input","params":{"thread_id":own,"item_id":a.form,"input":{"answers":{}}}}),
        json!({"type":"threads.retry_after_item","params":{"thread_id":own,"item_id":a.user_message}}),
        json!({"type":"threads.retry_after_item","params":{"thread_id":own,"item_id":a.client_call}}),
        json!({"type":"threads.custom_action","params":{"thread_id":own,"item_id":a.widget,"action":{"type":"click"}}}),
        json!({"type":"threads.sync_custom_action","params":{"thread_id":own,"item_id":a.widget,"action":{"type":"click"}}}),
    ] {
        let err = call_err(engine, BOB, body.clone()).await;
        assert_eq!(err.code(), "not_found", "{body}: {err}");
    }
    for body in [
        json!({"type":"items.list","params":{"thread_id":own,"after":a.user_message}}),
        json!({"type":"threads.add_client_tool_output","params":{"thread_id":own,"result":{}}}),
    ] {
        let err = call_err(engine, BOB, body.clone()).await;
        assert!(
            matches!(err.code(), "not_found" | "invalid_request"),
            "{body}: {err}"
        );
    }
    let bobs_items = support::items(engine, BOB, own).await;
    assert!(
        bobs_items.iter().all(|item| item["thread_id"] == json!(own)
            && item.to_string().find(&a.task_title).is_none()),
        "{bobs_items:?}"
    );

    // 3. Bob asks the assistant to act on Alice's task by id.
    for text in [
        format!("delete task {}", a.task),
        format!("complete {}", a.task),
        format!("show task {}", a.task),
        "list my tasks".to_owned(),
    ] {
        let events = wire(&call_stream(engine, BOB, support::add_message(own, &text)).await);
        settle(engine).await;
        let shown = serde_json::to_string(&events).unwrap();
        assert!(!shown.contains(&a.task_title), "{text}: {shown}");
        assert!(!shown.contains("private"), "{text}: {shown}");
    }

    // 4. Every task tool with Alice's task id.
    let mut tools_tried = BTreeSet::new();
    for (name, arguments) in [
        ("get_task", json!({"task_id": a.task})),
        (
            "update_task",
            json!({"task_id": a.task, "title": "hacked", "priority": "low"}),
        ),
        ("delete_task", json!({"task_id": a.task})),
        ("toggle_complete", json!({"task_id": a.task})),
    ] {
        let out = fx.tool(BOB, name, arguments).await;
        assert_eq!(
            out,
            json!({"success": false, "error": "Task not found"}),
            "{name}"
        );
        tools_tried.insert(name);
    }
    let created = fx
        .tool(
            BOB,
            "create_task",
            json!({"title": "Bob's", "user_id": ALICE}),
        )
        .await;
    assert_eq!(created["success"], true, "{created}");
    assert_ne!(created["data"]["id"], json!(a.task));
    assert_eq!(created["data"]["userId"], BOB);
    tools_tried.insert("create_task");
    for search in [a.task_title.as_str(), "secret", "a"] {
        let listed = fx
            .tool(
                BOB,
                "list_tasks",
                json!({"search": search, "user_id": ALICE}),
            )
            .await;
        let listed = listed["data"].as_array().unwrap().clone();
        assert!(
            listed.iter().all(|task| task["userId"] == BOB),
            "{listed:?}"
        );
    }
    tools_tried.insert("list_tasks");
    let stats = fx.tool(BOB, "get_stats", json!({"user_id": ALICE})).await;
    assert_eq!(
        stats["data"]["total"],
        fx.count("tasks", BOB).await,
        "{stats}"
    );
    tools_tried.insert("get_stats");
    assert_eq!(
        tools_tried,
        TASK_TOOL_NAMES.iter().copied().collect::<BTreeSet<_>>()
    );

    // 5. The database, read directly: every row of Alice's is as it was.
    assert_eq!(fx.snapshot(Some(ALICE)).await, alice_before);
    let alice_task = fx.tool(ALICE, "get_task", json!({"task_id": a.task})).await;
    assert_eq!(alice_task["data"]["title"], json!(a.task_title));
    assert_eq!(alice_task["data"]["completed"], false);
}

/// Strings that break naive SQL, LIKE patterns or encodings.
const NASTY: [&str; 7] = [
    "'; DROP TABLE tasks; --",
    "100% done",
    "snake_case",
    r"C:\temp\new",
    "Robert'); DELETE FROM chat_sessions; --",
    "اردو میں کام",
    "ship it 🚀🎉 👩‍💻",
];

async fn sql_metacharacters_and_unicode_are_stored_and_matched_literally(fx: &Fixture) {
    let engine = &fx.engine;
    // Thread titles, through the engine.
    let thread = created_thread_id(
        &call_stream(
            engine,
            ALICE,
            json!({"type":"threads.create","params":{"input":user_input("hello", &[])}}),
        )
        .await,
    );
    settle(engine).await;
    for title in NASTY {
        let updated = call_json(
            engine,
            ALICE,
            json!({"type":"threads.update","params":{"thread_id":thread,"title":title}}),
        )
        .await;
        assert_eq!(updated["title"], title);
        let loaded = call_json(
            engine,
            ALICE,
            json!({"type":"threads.get_by_id","params":{"thread_id":thread}}),
        )
        .await;
        assert_eq!(loaded["title"], title);
        let stored = rows(
            &fx.db,
            &format!("SELECT title FROM chat_sessions WHERE id = '{thread}'"),
        )
        .await;
        assert_eq!(stored, vec![vec![Some(title.to_owned())]]);
    }
    // Message text with the same strings comes back byte for byte (Carol's
    // thread: the assistant may act on these words, on Carol's tasks).
    let carols = created_thread_id(
        &call_stream(
            engine,
            CAROL,
            json!({"type":"threads.create","params":{"input":user_input("hi", &[])}}),
        )
        .await,
    );
    settle(engine).await;
    for text in NASTY {
        call_stream(engine, CAROL, support::add_message(&carols, text)).await;
        settle(engine).await;
    }
    let texts: Vec<String> = support::items(engine, CAROL, &carols)
        .await
        .iter()
        .filter(|item| item["type"] == "user_message")
        .map(|item| item["content"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    for text in NASTY {
        assert!(texts.iter().any(|t| t == text), "{text} in {texts:?}");
    }

    // Task titles and search terms, through the tools.
    let plain = ["plain task", "another one", "xyz"];
    for title in NASTY.iter().chain(plain.iter()) {
        let out = fx.tool(ALICE, "create_task", json!({"title": title})).await;
        assert_eq!(out["data"]["title"], *title, "{out}");
    }
    assert_eq!(
        fx.count("tasks", ALICE).await,
        (NASTY.len() + plain.len()) as i64,
        "the tasks table survived"
    );
    let search = |term: &'static str| async move {
        let out = fx.tool(ALICE, "list_tasks", json!({"search": term})).await;
        let mut titles: Vec<String> = out["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{term}: {out}"))
            .iter()
            .map(|task| task["title"].as_str().unwrap().to_owned())
            .collect();
        titles.sort();
        titles
    };
    let expect = |wanted: &[&str]| {
        let mut wanted: Vec<String> = wanted.iter().map(|t| (*t).to_owned()).collect();
        wanted.sort();
        wanted
    };
    assert_eq!(search("%").await, expect(&["100% done"]));
    assert_eq!(
        search("_").await,
        expect(&["snake_case", "Robert'); DELETE FROM chat_sessions; --"])
    );
    assert_eq!(search("e_c").await, expect(&["snake_case"]));
    assert_eq!(search(r"\").await, expect(&[r"C:\temp\new"]));
    assert_eq!(search(r"\t").await, expect(&[r"C:\temp\new"]));
    assert_eq!(
        search("'; DROP TABLE tasks; --").await,
        expect(&["'; DROP TABLE tasks; --"])
    );
    assert_eq!(
        search("'").await,
        expect(&[
            "'; DROP TABLE tasks; --",
            "Robert'); DELETE FROM chat_sessions; --"
        ])
    );
    assert_eq!(search("--").await.len(), 2);
    assert_eq!(search("اردو").await, expect(&["اردو میں کام"]));
    assert_eq!(search("🎉").await, expect(&["ship it 🚀🎉 👩‍💻"]));
    assert_eq!(search("👩‍💻").await, expect(&["ship it 🚀🎉 👩‍💻"]));
    assert_eq!(search("%_%").await, Vec::<String>::new());
    assert_eq!(search("*").await, Vec::<String>::new());
    for title in NASTY {
        let stored = rows(
            &fx.db,
            &format!(
                "SELECT title FROM tasks WHERE \"userId\" = '{ALICE}' AND title = '{}'",
                title.replace('\'', "''")
            ),
        )
        .await;
        assert_eq!(stored, vec![vec![Some(title.to_owned())]], "{title}");
    }
    // Nothing reached Bob, and both tables are intact.
    assert_eq!(fx.count("tasks", BOB).await, 0);
    assert_eq!(fx.count("chat_sessions", ALICE).await, 1);
}

// ---------------------------------------------------------------------------
// MCP over HTTP and hostile identities (the adversarial pass over `serve`)

/// A Bearer token for `sub`, signed with the fixture's secret.
fn bearer(sub: &str) -> String {
    let mut claims = jwt::claims("x");
    claims["sub"] = json!(sub);
    claims["email"] = json!("user@example.com");
    let key = jwt::TestKey::hs256(jwt::SECRET.as_bytes());
    format!("Bearer {}", key.sign(&claims))
}

/// One answer of the MCP service: status, session header, body text.
struct McpAnswer {
    status: u16,
    session: Option<String>,
    body: String,
}

impl McpAnswer {
    /// The JSON-RPC result of request `id` (the body is SSE or JSON).
    fn result(&self, id: i64) -> Value {
        self.body
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .chain(std::iter::once(self.body.as_str()))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|message| message["id"] == id)
            .map(|message| message["result"].clone())
            .unwrap_or_else(|| panic!("no result {id} in {}", self.body))
    }
}

async fn mcp(
    service: &McpHttpService,
    method: &str,
    user: &str,
    session: Option<&str>,
    body: Option<Value>,
) -> McpAnswer {
    let mut request = http::Request::builder()
        .method(method)
        .uri("/mcp")
        .header("host", "127.0.0.1")
        .header("authorization", bearer(user))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18");
    }
    let request = request
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .unwrap();
    let response = service.clone().call(request).await.unwrap();
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    McpAnswer {
        status,
        session,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"isolation","version":"0"}}})
}

/// Opens a session as `user` and returns its id.
async fn open_session(service: &McpHttpService, user: &str) -> String {
    let answer = mcp(service, "POST", user, None, Some(initialize())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let session = answer.session.expect("a session id");
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let answer = mcp(service, "POST", user, Some(&session), Some(initialized)).await;
    assert!(answer.status < 300, "{}", answer.body);
    session
}

fn tool_call(id: i64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":arguments}})
}

async fn another_users_mcp_session_is_not_found_and_cannot_be_ended(fx: &Fixture) {
    let service = McpHttpService::new(fx.tools.clone(), fx.engine.clone()).max_sessions_per_user(2);
    let session = open_session(&service, ALICE).await;
    let created = mcp(
        &service,
        "POST",
        ALICE,
        Some(&session),
        Some(tool_call(
            2,
            "create_task",
            json!({"title": "Alice's secret"}),
        )),
    )
    .await
    .result(2);
    assert_eq!(created["isError"], false, "{created}");
    let task_id = created["structuredContent"]["data"]["id"].clone();
    let before = fx.snapshot(None).await;

    // Bob, with a valid token of his own, names Alice's session.
    let unknown = mcp(
        &service,
        "POST",
        BOB,
        Some("no-such-session"),
        Some(tool_call(3, "list_tasks", json!({}))),
    )
    .await;
    assert_eq!(unknown.status, 404);
    for (method, body) in [
        ("POST", Some(tool_call(3, "list_tasks", json!({})))),
        (
            "POST",
            Some(tool_call(4, "delete_task", json!({"task_id": task_id}))),
        ),
        (
            "POST",
            Some(tool_call(5, "create_task", json!({"title": "planted"}))),
        ),
        ("GET", None),
        ("DELETE", None),
    ] {
        let answer = mcp(&service, method, BOB, Some(&session), body).await;
        assert_eq!(answer.status, 404, "{method}: {}", answer.body);
        assert_eq!(
            answer.body, unknown.body,
            "the same answer as an unknown session"
        );
    }
    assert_eq!(fx.snapshot(None).await, before, "Bob changed nothing");

    // Alice's session still works and still shows her task.
    let listed = mcp(
        &service,
        "POST",
        ALICE,
        Some(&session),
        Some(tool_call(6, "list_tasks", json!({}))),
    )
    .await;
    assert_eq!(listed.status, 200);
    assert!(listed.result(6).to_string().contains("Alice's secret"));

    // The cap: two open sessions per user; ending one frees its slot.
    let second = open_session(&service, ALICE).await;
    let over = mcp(&service, "POST", ALICE, None, Some(initialize())).await;
    assert_eq!(over.status, 429, "{}", over.body);
    assert!(over.body.contains("too_many_sessions"), "{}", over.body);
    open_session(&service, BOB).await;
    let ended = mcp(&service, "DELETE", ALICE, Some(&second), None).await;
    assert!(ended.status < 300, "{}: {}", ended.status, ended.body);
    assert_eq!(service.open_sessions(ALICE), 1);
    open_session(&service, ALICE).await;
    assert_eq!(service.open_sessions(ALICE), 2);
}

async fn identities_and_text_with_control_characters_are_refused_before_the_store(fx: &Fixture) {
    let a = alice_builds_up_her_data(fx).await;
    let before = fx.snapshot(None).await;
    let service = McpHttpService::new(fx.tools.clone(), fx.engine.clone());

    // A token's sub: NUL (PostgreSQL answered 503 before), a line break,
    // an escape sequence, 5,000 characters.
    let long = "m".repeat(5_000);
    for sub in [
        "mallory\u{0}",
        "mallory\nadmin",
        "\u{1b}[31mred",
        long.as_str(),
    ] {
        let err = fx
            .engine
            .authenticate(Some(&bearer(sub)))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("invalid_request", 400),
            "{sub:?}"
        );
        let answer = mcp(&service, "POST", sub, None, Some(initialize())).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.body.contains("invalid_request"), "{}", answer.body);
    }

    // Task text over MCP: refused at the boundary, before the tool runs
    // (PostgreSQL failed on a NUL title, SQLite stored it).
    let session = open_session(&service, ALICE).await;
    for (id, arguments) in [
        (2, json!({"title": "a\u{0}b"})),
        (3, json!({"title": "ok", "description": "\u{1b}[2J"})),
        (4, json!({"title": "bell\u{7}"})),
        (5, json!({"task_id": &a.task, "title": "a\u{0}"})),
    ] {
        let name = if arguments.get("task_id").is_some() {
            "update_task"
        } else {
            "create_task"
        };
        let result = mcp(
            &service,
            "POST",
            ALICE,
            Some(&session),
            Some(tool_call(id, name, arguments)),
        )
        .await
        .result(id);
        assert_eq!(result["isError"], true, "{result}");
        assert_eq!(
            result["structuredContent"]["error"]["code"], "invalid_request",
            "{result}"
        );
    }

    // Chat text, titles and ids: refused before the thread is even looked up.
    for body in [
        json!({"type":"threads.create","params":{"input":user_input("a\u{0}b", &[])}}),
        json!({"type":"threads.create","params":{"input":user_input("\u{1b}[2J", &[])}}),
        json!({"type":"threads.add_user_message","params":{"thread_id":a.thread,"input":user_input("del\u{7f}", &[])}}),
        json!({"type":"threads.update","params":{"thread_id":a.thread,"title":"two\nlines"}}),
        json!({"type":"threads.get_by_id","params":{"thread_id":"thr_\u{0}"}}),
        json!({"type":"items.list","params":{"thread_id":a.thread,"after":"msg\u{85}"}}),
    ] {
        let err = call_err(&fx.engine, ALICE, body.clone()).await;
        assert_eq!(err.code(), "invalid_request", "{body}");
    }

    // Nothing reached either store.
    assert_eq!(fx.snapshot(None).await, before);
}
