//! The behaviour of the 7 task tools, on both stores.
//!
//! Each test is written once, as an async function over a [`Fixture`] (a
//! [`TaskStore`] and the [`ToolSet`] of `task_tools` over it), and the
//! `both_backends!` macro runs it as `sqlite::<name>` (a private in-memory
//! database) and `postgres::<name>` (a fresh database on the server named by
//! `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/db.rs"]
mod db;

use chatkit_engine::protocol::{Order, Timestamp};
use chatkit_engine::store::{PostgresStore, SqliteStore};
use chatkit_engine::todo::{
    DEFAULT_LIST_LIMIT, DEFAULT_TASKS_TABLE, MAX_TASKS, NewTask, PgTaskTable, TASK_TOOL_NAMES,
    TaskQuery, TaskSortBy, TaskStore, task_tools,
};
use chatkit_engine::tools::{ToolContext, ToolSet};
use chatkit_engine::{Error, RequestContext};
use db::TestDb;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------
// The runner: every listed test runs once per backend.

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let fixture = super::Fixture::sqlite().await;
                    super::$test(&fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let fixture = super::Fixture::postgres().await;
                    super::$test(&fixture).await;
                }
            )*
        }
    };
}

both_backends! {
    tools_have_the_contract_names_and_no_user_id_parameter,
    create_task_returns_the_task_with_defaults,
    create_task_accepts_every_field_and_due_date_form,
    create_task_validates_its_arguments,
    malformed_arguments_are_clear_errors,
    list_tasks_defaults_to_newest_first,
    list_tasks_filters_combine,
    list_tasks_rejects_bad_filters,
    every_sort_key_orders_both_ways,
    search_is_literal_and_case_insensitive,
    list_tasks_returns_one_page_with_the_total,
    get_task_finds_only_existing_tasks,
    update_task_changes_only_the_given_fields,
    update_task_ignores_null_fields,
    update_task_clears_description_and_due_date,
    update_task_validates_its_arguments,
    delete_task_removes_the_task,
    toggle_complete_flips_and_flips_back,
    get_stats_counts_the_callers_tasks,
    other_users_tasks_are_not_found_and_unchanged,
    a_user_id_argument_has_no_effect,
    non_uuid_ids_are_invalid_everywhere,
    storage_failures_are_errors,
}

// ---------------------------------------------------------------------------
// Fixture and helpers

enum Backend {
    Sqlite(SqliteStore),
    /// The database is dropped with the fixture.
    Postgres(PostgresStore, #[allow(dead_code)] TestDb),
}

struct Fixture {
    store: Arc<dyn TaskStore>,
    tools: ToolSet,
    backend: Backend,
}

impl Fixture {
    async fn sqlite() -> Self {
        let store = SqliteStore::in_memory().await.unwrap();
        Self::new(Arc::new(store.clone()), Backend::Sqlite(store))
    }

    async fn postgres() -> Self {
        let db = TestDb::postgres().await;
        let store = PostgresStore::connect(&db.url).await.unwrap();
        let tasks = PgTaskTable::open(&store, DEFAULT_TASKS_TABLE)
            .await
            .unwrap();
        Self::new(Arc::new(tasks), Backend::Postgres(store, db))
    }

    fn new(store: Arc<dyn TaskStore>, backend: Backend) -> Self {
        let tools = task_tools(Arc::clone(&store));
        Self {
            store,
            tools,
            backend,
        }
    }

    /// Closes the connection pool, so that every later query fails.
    async fn break_database(&self) {
        match &self.backend {
            Backend::Sqlite(store) => store.pool().close().await,
            Backend::Postgres(store, _) => store.pool().close().await,
        }
    }

    /// Calls a tool as `user`; checks the envelope and returns it.
    async fn call(&self, user: &str, tool: &str, arguments: Value) -> Value {
        let ctx = ToolContext {
            request: RequestContext::new(user),
            call_id: "call_test".to_owned(),
        };
        let output = self
            .tools
            .get(tool)
            .unwrap_or_else(|| panic!("no tool {tool}"))
            .call(arguments.clone(), &ctx)
            .await
            .unwrap_or_else(|err| panic!("{tool}({arguments}) failed: {err}"));
        let value: Value = serde_json::from_str(&output.content).unwrap();
        assert_eq!(output.structured.as_ref(), Some(&value));
        let success = value["success"].as_bool().expect("a success flag");
        assert_eq!(output.is_error, !success, "{value}");
        if success && tool == "list_tasks" {
            // A page: the tasks and where they sit in the whole list.
            let keys: Vec<&str> = value
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                ["success", "data", "total", "limit", "offset", "has_more"],
                "{value}"
            );
        } else if success {
            assert_eq!(value.as_object().unwrap().len(), 2, "{value}");
            assert!(value.get("data").is_some(), "{value}");
        } else {
            assert_eq!(value.as_object().unwrap().len(), 2, "{value}");
            assert!(value["error"].is_string(), "{value}");
        }
        value
    }

    /// Calls a tool that must succeed and returns its `data`.
    async fn ok(&self, user: &str, tool: &str, arguments: Value) -> Value {
        let value = self.call(user, tool, arguments.clone()).await;
        assert_eq!(value["success"], true, "{tool}({arguments}) -> {value}");
        value["data"].clone()
    }

    /// Calls a tool that must fail and returns its `error`.
    async fn err(&self, user: &str, tool: &str, arguments: Value) -> String {
        let value = self.call(user, tool, arguments.clone()).await;
        assert_eq!(value["success"], false, "{tool}({arguments}) -> {value}");
        value["error"].as_str().unwrap().to_owned()
    }

    /// Creates a task and returns it.
    async fn create(&self, user: &str, arguments: Value) -> Value {
        self.ok(user, "create_task", arguments).await
    }

    /// The titles `list_tasks` returns for these arguments.
    async fn titles(&self, user: &str, arguments: Value) -> Vec<String> {
        let data = self.ok(user, "list_tasks", arguments).await;
        data.as_array()
            .unwrap()
            .iter()
            .map(|task| task["title"].as_str().unwrap().to_owned())
            .collect()
    }
}

const ALICE: &str = "alice";
const BOB: &str = "bob";
const MISSING_ID: &str = "00000000-0000-4000-8000-000000000000";

fn id_of(task: &Value) -> String {
    task["id"].as_str().unwrap().to_owned()
}

fn time_of(task: &Value, key: &str) -> Timestamp {
    Timestamp::parse(task[key].as_str().unwrap()).unwrap()
}

/// Consecutive creations get distinct, increasing timestamps.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// Tests

async fn tools_have_the_contract_names_and_no_user_id_parameter(fx: &Fixture) {
    let names: Vec<String> = fx.tools.iter().map(|tool| tool.name().to_owned()).collect();
    assert_eq!(names, strings(&TASK_TOOL_NAMES));
    for spec in fx.tools.specs() {
        let schema = &spec.parameters;
        assert_eq!(schema["type"], "object", "{}", spec.name);
        assert!(schema["properties"].is_object(), "{}", spec.name);
        assert!(
            schema["properties"].get("user_id").is_none(),
            "{}",
            spec.name
        );
        assert!(!spec.description.is_empty());
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        let expected: &[&str] = match spec.name.as_str() {
            "create_task" => &["title"],
            "get_task" | "update_task" | "delete_task" | "toggle_complete" => &["task_id"],
            _ => &[],
        };
        assert_eq!(required, expected, "{}", spec.name);
    }
    let create = fx.tools.get("create_task").unwrap().parameters();
    assert_eq!(
        create["properties"]["priority"]["enum"],
        json!(["low", "medium", "high"])
    );
    assert_eq!(
        create["properties"]["category"]["enum"],
        json!(["work", "personal", "home", "other"])
    );
    let list = fx.tools.get("list_tasks").unwrap().parameters();
    assert_eq!(
        list["properties"]["sort_by"]["enum"],
        json!(["createdAt", "updatedAt", "dueDate", "priority", "title"])
    );
}

async fn create_task_returns_the_task_with_defaults(fx: &Fixture) {
    let task = fx.create(ALICE, json!({"title": "  Buy milk  "})).await;
    let keys: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "title",
            "description",
            "priority",
            "category",
            "status",
            "completed",
            "dueDate",
            "createdAt",
            "updatedAt",
            "userId"
        ]
    );
    assert!(uuid::Uuid::parse_str(task["id"].as_str().unwrap()).is_ok());
    assert_eq!(task["title"], "Buy milk");
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["priority"], "medium");
    assert_eq!(task["category"], "work");
    assert_eq!(task["status"], "pending");
    assert_eq!(task["completed"], false);
    assert_eq!(task["dueDate"], Value::Null);
    assert_eq!(task["userId"], ALICE);
    assert!(task["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(task["createdAt"], task["updatedAt"]);
    // What create returns is what is stored.
    let stored = fx
        .ok(ALICE, "get_task", json!({"task_id": id_of(&task)}))
        .await;
    assert_eq!(stored, task);
}

async fn create_task_accepts_every_field_and_due_date_form(fx: &Fixture) {
    let task = fx
        .create(
            ALICE,
            json!({
                "title": "File taxes",
                "description": "Before the deadline",
                "priority": "high",
                "category": "personal",
                "due_date": "2026-04-15T17:30:00Z",
            }),
        )
        .await;
    assert_eq!(task["description"], "Before the deadline");
    assert_eq!(task["priority"], "high");
    assert_eq!(task["category"], "personal");
    assert_eq!(task["dueDate"], "2026-04-15T17:30:00Z");

    for (due, expected) in [
        ("2026-04-15T22:30:00+05:00", "2026-04-15T17:30:00Z"),
        ("2026-04-15", "2026-04-15T00:00:00Z"),
        ("2026-04-15T17:30:00.125Z", "2026-04-15T17:30:00.125000Z"),
        ("2026-04-15T17:30:00", "2026-04-15T17:30:00Z"),
    ] {
        let task = fx
            .create(ALICE, json!({"title": "due", "due_date": due}))
            .await;
        assert_eq!(task["dueDate"], expected, "{due}");
        let stored = fx
            .ok(ALICE, "get_task", json!({"task_id": id_of(&task)}))
            .await;
        assert_eq!(stored["dueDate"], expected, "{due}");
    }

    // Other categories and priorities, in any case.
    for category in ["work", "personal", "home", "other"] {
        let task = fx
            .create(ALICE, json!({"title": category, "category": category}))
            .await;
        assert_eq!(task["category"], category);
    }
    let task = fx
        .create(
            ALICE,
            json!({"title": "shout", "priority": "LOW", "category": "Home"}),
        )
        .await;
    assert_eq!(
        (&task["priority"], &task["category"]),
        (&json!("low"), &json!("home"))
    );
    // Empty optional strings mean "not given".
    let task = fx
        .create(
            ALICE,
            json!({"title": "blank", "description": "", "priority": "", "category": "", "due_date": ""}),
        )
        .await;
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["priority"], "medium");
    assert_eq!(task["category"], "work");
    assert_eq!(task["dueDate"], Value::Null);
    // Urdu titles round-trip, and the limit counts characters, not bytes.
    let urdu = "دودھ".repeat(63) + "خری"; // 255 characters
    assert_eq!(urdu.chars().count(), 255);
    let task = fx.create(ALICE, json!({"title": urdu})).await;
    assert_eq!(task["title"], urdu.as_str());
    let description = "x".repeat(1000);
    let task = fx
        .create(ALICE, json!({"title": "long", "description": description}))
        .await;
    assert_eq!(task["description"], description.as_str());
}

async fn create_task_validates_its_arguments(fx: &Fixture) {
    for arguments in [
        json!({"title": ""}),
        json!({"title": "   "}),
        json!({}),
        json!({"title": null}),
    ] {
        assert_eq!(
            fx.err(ALICE, "create_task", arguments).await,
            "Title cannot be empty"
        );
    }
    let too_long = fx
        .err(ALICE, "create_task", json!({"title": "a".repeat(256)}))
        .await;
    assert!(too_long.contains("255"), "{too_long}");
    let too_long = fx
        .err(
            ALICE,
            "create_task",
            json!({"title": "a", "description": "d".repeat(1001)}),
        )
        .await;
    assert!(too_long.contains("1000"), "{too_long}");
    assert_eq!(
        fx.err(
            ALICE,
            "create_task",
            json!({"title": "a", "priority": "urgent"})
        )
        .await,
        "Invalid priority: must be low/medium/high"
    );
    assert_eq!(
        fx.err(
            ALICE,
            "create_task",
            json!({"title": "a", "category": "school"})
        )
        .await,
        "Invalid category: must be work/personal/home/other"
    );
    for due in [
        "tomorrow",
        "2026-13-01",
        "15/04/2026",
        "2026-04-15T25:00:00Z",
    ] {
        let error = fx
            .err(ALICE, "create_task", json!({"title": "a", "due_date": due}))
            .await;
        assert!(error.starts_with("Invalid due_date"), "{due}: {error}");
    }
    assert_eq!(
        fx.err(ALICE, "create_task", json!({"title": 42})).await,
        "Invalid title: must be a string"
    );
    assert_eq!(
        fx.err(ALICE, "create_task", json!({"title": "a", "priority": 3}))
            .await,
        "Invalid priority: must be a string"
    );
    // Nothing was created by the failed calls.
    assert_eq!(
        fx.ok(ALICE, "get_stats", json!({})).await,
        json!({"total": 0, "pending": 0, "completed": 0})
    );
}

async fn malformed_arguments_are_clear_errors(fx: &Fixture) {
    let error = fx
        .err(ALICE, "create_task", json!({"title": "a", "colour": "red"}))
        .await;
    assert!(
        error.contains("colour") && error.contains("title"),
        "{error}"
    );
    let error = fx.err(ALICE, "get_stats", json!({"verbose": true})).await;
    assert!(error.contains("verbose"), "{error}");
    for arguments in [json!([1, 2]), json!(7), json!(true), json!("not json")] {
        assert_eq!(
            fx.err(ALICE, "list_tasks", arguments).await,
            "Arguments must be a JSON object"
        );
    }
    // Arguments sent as a JSON string and missing arguments are understood.
    let task = fx
        .create(
            ALICE,
            Value::String(r#"{"title": "from a string"}"#.to_owned()),
        )
        .await;
    assert_eq!(task["title"], "from a string");
    assert_eq!(
        fx.ok(ALICE, "list_tasks", Value::Null)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(fx.ok(ALICE, "get_stats", Value::Null).await["total"], 1);
    let error = fx.err(ALICE, "get_task", json!({})).await;
    assert!(error.contains("task_id"), "{error}");
}

async fn list_tasks_defaults_to_newest_first(fx: &Fixture) {
    assert_eq!(fx.ok(ALICE, "list_tasks", json!({})).await, json!([]));
    for title in ["first", "second", "third"] {
        fx.create(ALICE, json!({"title": title})).await;
        tick().await;
    }
    assert_eq!(
        fx.titles(ALICE, json!({})).await,
        strings(&["third", "second", "first"])
    );
    // The listed objects are full task objects.
    let listed = fx.ok(ALICE, "list_tasks", json!({})).await;
    let first = &listed[0];
    assert_eq!(
        fx.ok(ALICE, "get_task", json!({"task_id": id_of(first)}))
            .await,
        *first
    );
}

async fn list_tasks_filters_combine(fx: &Fixture) {
    let specs = [
        ("w-high", "high", "work"),
        ("w-low", "low", "work"),
        ("h-high", "high", "home"),
        ("h-low-done", "low", "home"),
        ("p-high-done", "high", "personal"),
    ];
    for (title, priority, category) in specs {
        let task = fx
            .create(
                ALICE,
                json!({"title": title, "priority": priority, "category": category}),
            )
            .await;
        if title.ends_with("done") {
            fx.ok(ALICE, "toggle_complete", json!({"task_id": id_of(&task)}))
                .await;
        }
        tick().await;
    }
    let asc = |mut filters: Value| {
        filters["sort_order"] = json!("asc");
        filters
    };
    let cases = [
        (
            json!({}),
            vec!["w-high", "w-low", "h-high", "h-low-done", "p-high-done"],
        ),
        (
            json!({"status": "all"}),
            vec!["w-high", "w-low", "h-high", "h-low-done", "p-high-done"],
        ),
        (
            json!({"status": "pending"}),
            vec!["w-high", "w-low", "h-high"],
        ),
        (
            json!({"status": "completed"}),
            vec!["h-low-done", "p-high-done"],
        ),
        (
            json!({"priority": "high"}),
            vec!["w-high", "h-high", "p-high-done"],
        ),
        (json!({"category": "home"}), vec!["h-high", "h-low-done"]),
        (
            json!({"priority": "high", "status": "pending"}),
            vec!["w-high", "h-high"],
        ),
        (
            json!({"priority": "high", "category": "home", "status": "pending"}),
            vec!["h-high"],
        ),
        (json!({"priority": "low", "category": "personal"}), vec![]),
        (json!({"priority": "high", "search": "h-h"}), vec!["h-high"]),
        (
            json!({"status": "completed", "search": "DONE", "category": "personal"}),
            vec!["p-high-done"],
        ),
        (
            json!({"priority": "all", "category": "all"}),
            vec!["w-high", "w-low", "h-high", "h-low-done", "p-high-done"],
        ),
    ];
    for (filters, expected) in cases {
        assert_eq!(
            fx.titles(ALICE, asc(filters.clone())).await,
            strings(&expected),
            "{filters}"
        );
    }
}

async fn list_tasks_rejects_bad_filters(fx: &Fixture) {
    assert_eq!(
        fx.err(ALICE, "list_tasks", json!({"status": "done"})).await,
        "Invalid status: must be pending/completed"
    );
    assert_eq!(
        fx.err(ALICE, "list_tasks", json!({"priority": "urgent"}))
            .await,
        "Invalid priority: must be low/medium/high"
    );
    assert_eq!(
        fx.err(ALICE, "list_tasks", json!({"category": "school"}))
            .await,
        "Invalid category: must be work/personal/home/other"
    );
    assert_eq!(
        fx.err(ALICE, "list_tasks", json!({"sort_by": "size"}))
            .await,
        "Invalid sort_by: must be createdAt/updatedAt/dueDate/priority/title"
    );
    assert_eq!(
        fx.err(ALICE, "list_tasks", json!({"sort_order": "sideways"}))
            .await,
        "Invalid sort_order: must be asc/desc"
    );
    assert_eq!(
        fx.err(ALICE, "list_tasks", json!({"search": 5})).await,
        "Invalid search: must be a string"
    );
}

async fn every_sort_key_orders_both_ways(fx: &Fixture) {
    // Created in the order A, B, C, D; B is updated last.
    fx.create(
        ALICE,
        json!({"title": "Banana", "priority": "low", "due_date": "2026-03-01"}),
    )
    .await;
    tick().await;
    let b = fx
        .create(ALICE, json!({"title": "apple", "priority": "high"}))
        .await;
    tick().await;
    fx.create(
        ALICE,
        json!({"title": "cherry", "priority": "medium", "due_date": "2026-01-01T08:00:00Z"}),
    )
    .await;
    tick().await;
    fx.create(
        ALICE,
        json!({"title": "Date", "priority": "medium", "due_date": "2026-02-01"}),
    )
    .await;
    tick().await;
    fx.ok(
        ALICE,
        "update_task",
        json!({"task_id": id_of(&b), "description": "touched"}),
    )
    .await;

    let (banana, apple, cherry, date) = ("Banana", "apple", "cherry", "Date");
    let cases: [(&[&str], [&str; 4], [&str; 4]); 5] = [
        (
            &["createdAt", "created_at"],
            [banana, apple, cherry, date],
            [date, cherry, apple, banana],
        ),
        (
            &["updatedAt", "updated_at"],
            [banana, cherry, date, apple],
            [apple, date, cherry, banana],
        ),
        // Tasks without a due date come last in both directions.
        (
            &["dueDate", "due_date"],
            [cherry, date, banana, apple],
            [banana, date, cherry, apple],
        ),
        // By meaning (high > medium > low), ties by creation time.
        (
            &["priority"],
            [banana, cherry, date, apple],
            [apple, date, cherry, banana],
        ),
        // Case-insensitive.
        (
            &["title"],
            [apple, banana, cherry, date],
            [date, cherry, banana, apple],
        ),
    ];
    for (names, ascending, descending) in cases {
        for name in names {
            assert_eq!(
                fx.titles(ALICE, json!({"sort_by": name, "sort_order": "asc"}))
                    .await,
                strings(&ascending),
                "{name} asc"
            );
            assert_eq!(
                fx.titles(ALICE, json!({"sort_by": name, "sort_order": "desc"}))
                    .await,
                strings(&descending),
                "{name} desc"
            );
            // The default direction is descending.
            assert_eq!(
                fx.titles(ALICE, json!({"sort_by": name})).await,
                strings(&descending),
                "{name} default"
            );
        }
    }
    // The default key is createdAt.
    assert_eq!(
        fx.titles(ALICE, json!({"sort_order": "asc"})).await,
        strings(&[banana, apple, cherry, date])
    );

    // Ties are broken deterministically by creation time then id, also for
    // tasks created within the same instant.
    let mut ties = Vec::new();
    for _ in 0..6 {
        ties.push(
            fx.create(BOB, json!({"title": "same", "priority": "low"}))
                .await,
        );
    }
    let listed = fx
        .ok(
            BOB,
            "list_tasks",
            json!({"sort_by": "priority", "sort_order": "asc"}),
        )
        .await;
    let mut expected: Vec<(Timestamp, String)> = ties
        .iter()
        .map(|task| (time_of(task, "createdAt"), id_of(task)))
        .collect();
    expected.sort();
    let got: Vec<String> = listed.as_array().unwrap().iter().map(id_of).collect();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(got, expected);
}

async fn search_is_literal_and_case_insensitive(fx: &Fixture) {
    let titles = [
        "50% off sale",
        "5000 items",
        "file_name fix",
        "filename fix",
        "Ali's birthday",
        "Alis party",
        r"back\slash",
        "backslash",
        "دودھ خریدیں",
        "Call mom",
    ];
    for title in titles {
        fx.create(ALICE, json!({"title": title})).await;
        tick().await;
    }
    fx.create(
        ALICE,
        json!({"title": "Groceries", "description": "Buy MILK and bread"}),
    )
    .await;
    fx.create(
        ALICE,
        json!({"title": "بازار", "description": "دودھ خریدیں اور روٹی"}),
    )
    .await;
    fx.create(BOB, json!({"title": "Bob's 50% milk"})).await;

    let search = |term: &str| {
        fx.titles(
            ALICE,
            json!({"search": term, "sort_by": "title", "sort_order": "asc"}),
        )
    };
    assert_eq!(search("%").await, strings(&["50% off sale"]));
    assert_eq!(search("50%").await, strings(&["50% off sale"]));
    assert_eq!(search("_").await, strings(&["file_name fix"]));
    assert_eq!(search("file_").await, strings(&["file_name fix"]));
    assert_eq!(search("'").await, strings(&["Ali's birthday"]));
    assert_eq!(search("ali's").await, strings(&["Ali's birthday"]));
    assert_eq!(
        search("'; DROP TABLE tasks; --").await,
        Vec::<String>::new()
    );
    assert_eq!(search(r"\").await, strings(&[r"back\slash"]));
    assert_eq!(search(r"k\s").await, strings(&[r"back\slash"]));
    assert_eq!(
        search("دودھ خریدیں").await,
        strings(&["بازار", "دودھ خریدیں"])
    );
    assert_eq!(search("خریدیں").await, strings(&["بازار", "دودھ خریدیں"]));
    // Title or description, case-insensitively.
    assert_eq!(search("milk").await, strings(&["Groceries"]));
    assert_eq!(search("CALL MOM").await, strings(&["Call mom"]));
    assert_eq!(search("zebra").await, Vec::<String>::new());
    // An empty search is no filter.
    assert_eq!(search("").await.len(), titles.len() + 2);
    // Nothing was damaged by the hostile terms.
    assert_eq!(
        fx.ok(ALICE, "get_stats", json!({})).await["total"],
        titles.len() + 2
    );
}

async fn list_tasks_returns_one_page_with_the_total(fx: &Fixture) {
    // A user with fewer tasks than a page gets them all, and the total.
    fx.create(ALICE, json!({"title": "only one"})).await;
    let page = fx.call(ALICE, "list_tasks", json!({})).await;
    assert_eq!(
        (page["total"].clone(), page["has_more"].clone()),
        (json!(1), json!(false))
    );
    fx.ok(
        ALICE,
        "delete_task",
        json!({"task_id": id_of(&page["data"][0])}),
    )
    .await;

    let alice = RequestContext::new(ALICE);
    for index in 0..(MAX_TASKS + 3) {
        fx.store
            .create(&NewTask::new(format!("task {index:03}")), &alice)
            .await
            .unwrap();
    }
    let total = MAX_TASKS + 3;
    // The default page is DEFAULT_LIST_LIMIT tasks, with the total.
    let page = fx
        .call(
            ALICE,
            "list_tasks",
            json!({"sort_by": "title", "sort_order": "asc"}),
        )
        .await;
    assert_eq!(page["success"], true);
    assert_eq!(page["data"].as_array().unwrap().len(), DEFAULT_LIST_LIMIT);
    assert_eq!(page["data"][0]["title"], "task 000");
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone(),
            page["has_more"].clone()
        ),
        (
            json!(total),
            json!(DEFAULT_LIST_LIMIT),
            json!(0),
            json!(true)
        )
    );
    // The last page: what is left, no more after it.
    let last = fx
        .call(
            ALICE,
            "list_tasks",
            json!({"sort_by": "title", "sort_order": "asc", "limit": 50, "offset": 200}),
        )
        .await;
    let titles: Vec<&str> = last["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["task 200", "task 201", "task 202"]);
    assert_eq!(
        (last["total"].clone(), last["has_more"].clone()),
        (json!(total), json!(false))
    );
    // Past the end: an empty page, the total still right.
    let past = fx.call(ALICE, "list_tasks", json!({"offset": 5000})).await;
    assert_eq!(
        (past["data"].clone(), past["total"].clone()),
        (json!([]), json!(total))
    );
    // The largest page is MAX_TASKS; filters count too.
    let biggest = fx
        .ok(ALICE, "list_tasks", json!({"limit": MAX_TASKS}))
        .await;
    assert_eq!(biggest.as_array().unwrap().len(), MAX_TASKS);
    let filtered = fx
        .call(
            ALICE,
            "list_tasks",
            json!({"search": "task 20", "limit": 2}),
        )
        .await;
    assert_eq!(
        (filtered["total"].clone(), filtered["has_more"].clone()),
        (json!(3), json!(true))
    );
    for bad in [
        json!({"limit": 0}),
        json!({"limit": MAX_TASKS + 1}),
        json!({"limit": "ten"}),
        json!({"offset": -1}),
        json!({"limit": 2.5}),
    ] {
        let error = fx.err(ALICE, "list_tasks", bad.clone()).await;
        assert!(error.starts_with("Invalid "), "{bad} -> {error}");
    }
    // Another user's tasks are not counted.
    let bob = fx.call(BOB, "list_tasks", json!({})).await;
    assert_eq!(
        (bob["data"].clone(), bob["total"].clone()),
        (json!([]), json!(0))
    );

    // The store honours smaller limits and clamps silly ones.
    let query = |limit| TaskQuery {
        sort_by: TaskSortBy::Title,
        sort_order: Order::Asc,
        limit: Some(limit),
        ..TaskQuery::default()
    };
    let two = fx.store.list(&query(2), &alice).await.unwrap();
    let titles: Vec<&str> = two.iter().map(|task| task.title.as_str()).collect();
    assert_eq!(titles, ["task 000", "task 001"]);
    assert_eq!(fx.store.list(&query(0), &alice).await.unwrap().len(), 1);
    assert_eq!(
        fx.store.list(&query(10_000), &alice).await.unwrap().len(),
        MAX_TASKS
    );
    assert_eq!(
        fx.store.count(&query(2), &alice).await.unwrap(),
        total as u64
    );
}

async fn get_task_finds_only_existing_tasks(fx: &Fixture) {
    let task = fx
        .create(ALICE, json!({"title": "Read", "due_date": "2026-05-01"}))
        .await;
    let id = id_of(&task);
    assert_eq!(fx.ok(ALICE, "get_task", json!({"task_id": id})).await, task);
    // Any UUID spelling finds it.
    assert_eq!(
        fx.ok(ALICE, "get_task", json!({"task_id": id.to_uppercase()}))
            .await,
        task
    );
    assert_eq!(
        fx.err(ALICE, "get_task", json!({"task_id": MISSING_ID}))
            .await,
        "Task not found"
    );
    assert_eq!(
        fx.err(ALICE, "get_task", json!({"task_id": "abc"})).await,
        "Invalid task ID format"
    );
    assert_eq!(
        fx.err(ALICE, "get_task", json!({"task_id": 5})).await,
        "Invalid task ID format"
    );
}

async fn update_task_changes_only_the_given_fields(fx: &Fixture) {
    let task = fx
        .create(
            ALICE,
            json!({
                "title": "Write report",
                "description": "Quarterly numbers",
                "priority": "low",
                "category": "work",
                "due_date": "2026-06-30T12:00:00Z",
            }),
        )
        .await;
    tick().await;
    let updated = fx
        .ok(
            ALICE,
            "update_task",
            json!({"task_id": id_of(&task), "priority": "high"}),
        )
        .await;
    assert_eq!(updated["priority"], "high");
    for key in [
        "id",
        "title",
        "description",
        "category",
        "status",
        "completed",
        "dueDate",
        "createdAt",
        "userId",
    ] {
        assert_eq!(updated[key], task[key], "{key}");
    }
    assert!(time_of(&updated, "updatedAt") > time_of(&task, "updatedAt"));
    assert_eq!(
        fx.ok(ALICE, "get_task", json!({"task_id": id_of(&task)}))
            .await,
        updated
    );

    // Every other field on its own.
    let steps = [
        (
            json!({"title": "  Write the report "}),
            "title",
            json!("Write the report"),
        ),
        (
            json!({"description": "Q3 numbers"}),
            "description",
            json!("Q3 numbers"),
        ),
        (json!({"category": "home"}), "category", json!("home")),
        (
            json!({"due_date": "2026-07-01"}),
            "dueDate",
            json!("2026-07-01T00:00:00Z"),
        ),
    ];
    let mut current = updated;
    for (mut change, key, value) in steps {
        change["task_id"] = json!(id_of(&task));
        let next = fx.ok(ALICE, "update_task", change.clone()).await;
        assert_eq!(next[key], value, "{change}");
        for other in [
            "title",
            "description",
            "priority",
            "category",
            "dueDate",
            "completed",
        ] {
            if other != key {
                assert_eq!(next[other], current[other], "{change} changed {other}");
            }
        }
        current = next;
    }
    // A completed task stays completed through an update.
    fx.ok(ALICE, "toggle_complete", json!({"task_id": id_of(&task)}))
        .await;
    let after = fx
        .ok(
            ALICE,
            "update_task",
            json!({"task_id": id_of(&task), "title": "Done report"}),
        )
        .await;
    assert_eq!(
        (&after["status"], &after["completed"]),
        (&json!("completed"), &json!(true))
    );
}

async fn update_task_ignores_null_fields(fx: &Fixture) {
    let task = fx
        .create(
            ALICE,
            json!({"title": "Keep", "description": "all of it", "due_date": "2026-01-02"}),
        )
        .await;
    let updated = fx
        .ok(
            ALICE,
            "update_task",
            json!({
                "task_id": id_of(&task),
                "title": null,
                "description": null,
                "priority": "low",
                "category": null,
                "due_date": null,
            }),
        )
        .await;
    assert_eq!(updated["title"], "Keep");
    assert_eq!(updated["description"], "all of it");
    assert_eq!(updated["category"], "work");
    assert_eq!(updated["dueDate"], "2026-01-02T00:00:00Z");
    assert_eq!(updated["priority"], "low");
}

async fn update_task_clears_description_and_due_date(fx: &Fixture) {
    let task = fx
        .create(
            ALICE,
            json!({"title": "Trim", "description": "extra", "due_date": "2026-01-02"}),
        )
        .await;
    let cleared = fx
        .ok(
            ALICE,
            "update_task",
            json!({"task_id": id_of(&task), "description": "", "due_date": ""}),
        )
        .await;
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["dueDate"], Value::Null);
    assert_eq!(cleared["title"], "Trim");
    assert_eq!(
        fx.ok(ALICE, "get_task", json!({"task_id": id_of(&task)}))
            .await,
        cleared
    );
}

async fn update_task_validates_its_arguments(fx: &Fixture) {
    let task = fx.create(ALICE, json!({"title": "Stable"})).await;
    let id = id_of(&task);
    let cases = [
        (json!({"task_id": id, "title": ""}), "Title cannot be empty"),
        (
            json!({"task_id": id, "title": "  "}),
            "Title cannot be empty",
        ),
        (
            json!({"task_id": id, "priority": "urgent"}),
            "Invalid priority: must be low/medium/high",
        ),
        (
            json!({"task_id": id, "category": "school"}),
            "Invalid category: must be work/personal/home/other",
        ),
        (
            json!({"task_id": MISSING_ID, "title": "x"}),
            "Task not found",
        ),
        (
            json!({"task_id": "42", "title": "x"}),
            "Invalid task ID format",
        ),
        (json!({"task_id": MISSING_ID}), "Task not found"),
    ];
    for (arguments, expected) in cases {
        assert_eq!(
            fx.err(ALICE, "update_task", arguments.clone()).await,
            expected,
            "{arguments}"
        );
    }
    let error = fx
        .err(
            ALICE,
            "update_task",
            json!({"task_id": id, "title": "a".repeat(256)}),
        )
        .await;
    assert!(error.contains("255"), "{error}");
    let error = fx
        .err(
            ALICE,
            "update_task",
            json!({"task_id": id, "due_date": "soon"}),
        )
        .await;
    assert!(error.starts_with("Invalid due_date"), "{error}");
    let error = fx.err(ALICE, "update_task", json!({"task_id": id})).await;
    assert!(error.starts_with("Nothing to update"), "{error}");
    let error = fx
        .err(
            ALICE,
            "update_task",
            json!({"task_id": id, "status": "completed"}),
        )
        .await;
    assert!(error.contains("status"), "{error}");
    // None of that changed the task.
    assert_eq!(fx.ok(ALICE, "get_task", json!({"task_id": id})).await, task);
}

async fn delete_task_removes_the_task(fx: &Fixture) {
    let keep = fx.create(ALICE, json!({"title": "keep"})).await;
    let task = fx.create(ALICE, json!({"title": "drop"})).await;
    assert_eq!(
        fx.ok(ALICE, "delete_task", json!({"task_id": id_of(&task)}))
            .await,
        "Task deleted successfully"
    );
    assert_eq!(
        fx.err(ALICE, "get_task", json!({"task_id": id_of(&task)}))
            .await,
        "Task not found"
    );
    assert_eq!(
        fx.err(ALICE, "delete_task", json!({"task_id": id_of(&task)}))
            .await,
        "Task not found"
    );
    assert_eq!(fx.titles(ALICE, json!({})).await, strings(&["keep"]));
    assert_eq!(
        fx.ok(ALICE, "get_task", json!({"task_id": id_of(&keep)}))
            .await,
        keep
    );
}

async fn toggle_complete_flips_and_flips_back(fx: &Fixture) {
    let task = fx.create(ALICE, json!({"title": "Laundry"})).await;
    tick().await;
    let done = fx
        .ok(ALICE, "toggle_complete", json!({"task_id": id_of(&task)}))
        .await;
    assert_eq!(done["completed"], true);
    assert_eq!(done["status"], "completed");
    assert!(time_of(&done, "updatedAt") > time_of(&task, "updatedAt"));
    assert_eq!(done["createdAt"], task["createdAt"]);
    assert_eq!(done["title"], task["title"]);
    tick().await;
    let again = fx
        .ok(ALICE, "toggle_complete", json!({"task_id": id_of(&task)}))
        .await;
    assert_eq!(again["completed"], false);
    assert_eq!(again["status"], "pending");
    assert!(time_of(&again, "updatedAt") > time_of(&done, "updatedAt"));
    assert_eq!(
        fx.ok(ALICE, "get_task", json!({"task_id": id_of(&task)}))
            .await,
        again
    );
    assert_eq!(
        fx.err(ALICE, "toggle_complete", json!({"task_id": MISSING_ID}))
            .await,
        "Task not found"
    );
}

async fn get_stats_counts_the_callers_tasks(fx: &Fixture) {
    let zero = json!({"total": 0, "pending": 0, "completed": 0});
    assert_eq!(fx.ok(ALICE, "get_stats", json!({})).await, zero);
    let mut ids = Vec::new();
    for title in ["a", "b", "c", "d"] {
        ids.push(id_of(&fx.create(ALICE, json!({"title": title})).await));
    }
    fx.create(BOB, json!({"title": "bob's"})).await;
    for id in &ids[..2] {
        fx.ok(ALICE, "toggle_complete", json!({"task_id": id}))
            .await;
    }
    assert_eq!(
        fx.ok(ALICE, "get_stats", json!({})).await,
        json!({"total": 4, "pending": 2, "completed": 2})
    );
    fx.ok(ALICE, "delete_task", json!({"task_id": ids[0]}))
        .await;
    assert_eq!(
        fx.ok(ALICE, "get_stats", json!({"user_id": BOB})).await,
        json!({"total": 3, "pending": 2, "completed": 1})
    );
    assert_eq!(
        fx.ok(BOB, "get_stats", json!({})).await,
        json!({"total": 1, "pending": 1, "completed": 0})
    );
    assert_eq!(fx.ok("carol", "get_stats", json!({})).await, zero);
}

async fn other_users_tasks_are_not_found_and_unchanged(fx: &Fixture) {
    let task = fx
        .create(
            ALICE,
            json!({"title": "Alice's secret", "description": "private", "due_date": "2026-02-02"}),
        )
        .await;
    let id = id_of(&task);
    let attempts = [
        ("get_task", json!({"task_id": id})),
        (
            "update_task",
            json!({"task_id": id, "title": "hacked", "priority": "high"}),
        ),
        ("update_task", json!({"task_id": id, "description": ""})),
        ("toggle_complete", json!({"task_id": id})),
        ("delete_task", json!({"task_id": id})),
    ];
    for (tool, arguments) in attempts {
        assert_eq!(
            fx.err(BOB, tool, arguments.clone()).await,
            "Task not found",
            "{tool}({arguments})"
        );
    }
    // Alice's row is exactly as it was.
    assert_eq!(fx.ok(ALICE, "get_task", json!({"task_id": id})).await, task);
    assert_eq!(fx.ok(BOB, "list_tasks", json!({})).await, json!([]));
    assert_eq!(
        fx.ok(BOB, "list_tasks", json!({"search": "secret"})).await,
        json!([])
    );
    assert_eq!(fx.ok(BOB, "get_stats", json!({})).await["total"], 0);
    assert_eq!(fx.ok(ALICE, "get_stats", json!({})).await["total"], 1);
}

async fn a_user_id_argument_has_no_effect(fx: &Fixture) {
    let alices = fx.create(ALICE, json!({"title": "Alice's task"})).await;
    let alice_id = id_of(&alices);
    // Bob claims to be Alice: he still acts as Bob.
    let created = fx
        .create(BOB, json!({"title": "Bob's task", "user_id": ALICE}))
        .await;
    assert_eq!(created["userId"], BOB);
    tick().await;
    let created = fx
        .create(BOB, json!({"title": "Bob's other", "userId": ALICE}))
        .await;
    assert_eq!(created["userId"], BOB);
    assert_eq!(
        fx.titles(BOB, json!({"user_id": ALICE, "sort_order": "asc"}))
            .await,
        strings(&["Bob's task", "Bob's other"])
    );
    assert_eq!(
        fx.titles(ALICE, json!({})).await,
        strings(&["Alice's task"])
    );
    for (tool, arguments) in [
        ("get_task", json!({"task_id": alice_id, "user_id": ALICE})),
        (
            "update_task",
            json!({"task_id": alice_id, "user_id": ALICE, "title": "mine now"}),
        ),
        (
            "toggle_complete",
            json!({"task_id": alice_id, "user_id": ALICE}),
        ),
        (
            "delete_task",
            json!({"task_id": alice_id, "user_id": ALICE}),
        ),
    ] {
        assert_eq!(
            fx.err(BOB, tool, arguments.clone()).await,
            "Task not found",
            "{tool}({arguments})"
        );
    }
    assert_eq!(
        fx.ok(BOB, "get_stats", json!({"user_id": ALICE})).await["total"],
        2
    );
    assert_eq!(
        fx.ok(ALICE, "get_task", json!({"task_id": alice_id})).await,
        alices
    );
}

async fn non_uuid_ids_are_invalid_everywhere(fx: &Fixture) {
    fx.create(ALICE, json!({"title": "something"})).await;
    for tool in ["get_task", "update_task", "delete_task", "toggle_complete"] {
        for id in [
            json!("1"),
            json!("not-a-uuid"),
            json!("' OR '1'='1"),
            json!(""),
            json!(7),
            json!({"id": 1}),
        ] {
            let mut arguments = json!({"task_id": id});
            if tool == "update_task" {
                arguments["title"] = json!("x");
            }
            assert_eq!(
                fx.err(ALICE, tool, arguments.clone()).await,
                "Invalid task ID format",
                "{tool}({arguments})"
            );
        }
    }
    assert_eq!(fx.ok(ALICE, "get_stats", json!({})).await["total"], 1);
    // The store reports the same as an `InvalidRequest`.
    let err = fx
        .store
        .get("nope", &RequestContext::new(ALICE))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidRequest(message) if message == "Invalid task ID format"),
        "{err:?}"
    );
    let err = fx
        .store
        .get(MISSING_ID, &RequestContext::new(ALICE))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
}

async fn storage_failures_are_errors(fx: &Fixture) {
    let task = fx.create(ALICE, json!({"title": "before"})).await;
    fx.break_database().await;
    let ctx = ToolContext {
        request: RequestContext::new(ALICE),
        call_id: "call_broken".to_owned(),
    };
    for (tool, arguments) in [
        ("create_task", json!({"title": "after"})),
        ("list_tasks", json!({})),
        ("get_task", json!({"task_id": id_of(&task)})),
        (
            "update_task",
            json!({"task_id": id_of(&task), "title": "x"}),
        ),
        ("delete_task", json!({"task_id": id_of(&task)})),
        ("toggle_complete", json!({"task_id": id_of(&task)})),
        ("get_stats", json!({})),
    ] {
        let result = fx.tools.get(tool).unwrap().call(arguments, &ctx).await;
        match result {
            Err(err) => {
                assert_eq!(err.code(), "storage_error", "{tool}: {err}");
                // The database's own error is kept as the cause, for logs
                // and for hosts that inspect it.
                let cause = std::error::Error::source(&err)
                    .unwrap_or_else(|| panic!("{tool}: {err} lost its cause"));
                assert!(
                    cause.downcast_ref::<sqlx::Error>().is_some(),
                    "{tool}: {cause}"
                );
            }
            Ok(output) => panic!("{tool} answered {}", output.content),
        }
    }
    // Validation still answers without the database.
    let output = fx
        .tools
        .get("create_task")
        .unwrap()
        .call(json!({"title": ""}), &ctx)
        .await
        .unwrap();
    assert!(output.is_error);
}
