//! One behaviour suite for every [`Store`] implementation.
//!
//! Each test is written once, as a generic async function over `&dyn Store`
//! (or over a [`db::TestDb`] when it needs the raw database), and the
//! `suite!` macro runs it against both backends: `sqlite::<name>` on a fresh
//! temp file and `postgres::<name>` on a fresh database of the server named by
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/db.rs"]
mod db;

use chatkit_engine::protocol::{
    self, Attachment, FeedbackKind, IdKind, Order, Page, ThreadItem, ThreadMetadata, ThreadStatus,
    Timestamp, new_id,
};
use chatkit_engine::store::{
    self, ApprovalDecision, MAX_PAGE_SIZE, PendingApproval, SqliteStore, Store,
};
use chatkit_engine::{Error, RequestContext};
use db::{Backend, TestDb};
use serde::Serialize;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// The runner: every listed test runs once per backend.

macro_rules! suite {
    (
        store: [$($store_test:ident),* $(,)?],
        db: [$($db_test:ident),* $(,)?],
        postgres_store: [$($pg_store_test:ident),* $(,)?],
        postgres_db: [$($pg_db_test:ident),* $(,)?] $(,)?
    ) => {
        suite!(@backend sqlite, Sqlite; [$($store_test),*]; [$($db_test),*]);
        suite!(@backend postgres, Postgres;
            [$($store_test,)* $($pg_store_test),*]; [$($db_test,)* $($pg_db_test),*]);
    };
    (@backend $module:ident, $backend:ident; [$($store_test:ident),*]; [$($db_test:ident),*]) => {
        mod $module {
            use super::db::{Backend, TestDb};
            $(
                #[tokio::test]
                async fn $store_test() {
                    let db = TestDb::new(Backend::$backend).await;
                    let store = db.open().await;
                    super::$store_test(&*store).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $db_test() {
                    let db = TestDb::new(Backend::$backend).await;
                    super::$db_test(&db).await;
                }
            )*
        }
    };
}

suite! {
    store: [
        ping_answers,
        thread_round_trips_exactly,
        save_thread_upserts_and_keeps_created_at,
        threads_of_other_users_are_not_found,
        threads_paginate_in_both_orders,
        page_limits_are_clamped,
        unknown_cursors_are_invalid,
        items_paginate_in_both_orders,
        items_keep_insertion_order_not_timestamp_order,
        history_items_are_the_newest_model_input_oldest_first_without_widgets,
        item_upserts_keep_their_position,
        item_ids_may_collide_across_threads_and_users,
        item_calls_on_foreign_or_missing_threads_are_not_found,
        delete_thread_removes_items_and_feedback,
        delete_thread_item_removes_one_and_ignores_unknown_ids,
        attachments_round_trip_with_private_metadata,
        attachments_are_isolated_per_user,
        feedback_latest_rating_wins,
        feedback_is_isolated_per_user,
        payloads_round_trip_byte_for_byte,
        concurrent_writes_all_land,
        approvals_are_answered_once_by_their_user_only,
        concurrent_answers_to_one_approval_decide_it_once,
        token_usage_adds_up_by_turn_thread_day_and_user,
    ],
    db: [
        migrations_apply_twice,
        open_accepts_the_backend_url,
        tasks_table_exists_after_connect,
        existing_tasks_table_is_kept,
    ],
    // Turn leases exist where several processes share one database; a
    // SQLite store keeps the engine's in-process lock (and says so).
    postgres_store: [
        a_turn_lease_is_exclusive_until_its_owner_releases_it,
        an_expired_turn_lease_is_taken_over_by_the_next_owner,
        racing_owners_get_exactly_one_turn_lease,
    ],
    postgres_db: [
        replicas_migrating_at_once_apply_each_migration_exactly_once,
        a_transaction_pooler_without_a_direct_url_refuses_pending_migrations,
    ],
}

#[tokio::test]
async fn a_sqlite_store_leaves_turns_to_the_in_process_lock() {
    let store = SqliteStore::in_memory().await.unwrap();
    assert!(!store.shares_turn_leases());
}

// ---------------------------------------------------------------------------
// Helpers.

fn alice() -> RequestContext {
    RequestContext::new("alice")
}

fn bob() -> RequestContext {
    RequestContext::new("bob")
}

/// Compact wire JSON, as the protocol writes it.
fn wire<T: Serialize + ?Sized>(value: &T) -> String {
    protocol::json::to_string(value).unwrap()
}

/// A fixed instant with a non-zero microsecond part, plus `offset` µs.
fn at(offset: i64) -> Timestamp {
    Timestamp::from_micros(1_764_108_159_394_192 + offset).unwrap()
}

fn new_thread(created_at: Timestamp) -> ThreadMetadata {
    ThreadMetadata::new(new_id(IdKind::Thread), created_at)
}

/// Saves a new thread for `ctx` and returns it.
async fn thread_of(store: &dyn Store, ctx: &RequestContext) -> ThreadMetadata {
    let thread = new_thread(at(0));
    store.save_thread(&thread, ctx).await.unwrap();
    thread
}

/// Parses an item from JSON with `THREAD` standing for the thread id.
fn item_from_json(thread_id: &str, template: &str) -> ThreadItem {
    serde_json::from_str(&template.replace("THREAD", thread_id)).unwrap()
}

fn user_message(thread_id: &str, id: &str, text: &str, created_at: Timestamp) -> ThreadItem {
    let mut item = item_from_json(
        thread_id,
        r#"{"id":"","thread_id":"THREAD","created_at":"2025-01-01T00:00:00Z","type":"user_message","content":[{"type":"input_text","text":""}],"attachments":[],"inference_options":{}}"#,
    );
    item.id = id.to_owned();
    item.created_at = created_at;
    if let protocol::ItemKind::UserMessage(message) = &mut item.kind {
        message.content = vec![protocol::UserMessageContent::InputText {
            text: text.to_owned(),
        }];
    }
    item
}

fn assistant_message(thread_id: &str, id: &str, text: &str, created_at: Timestamp) -> ThreadItem {
    ThreadItem {
        id: id.to_owned(),
        thread_id: thread_id.to_owned(),
        created_at,
        kind: protocol::ItemKind::AssistantMessage(protocol::AssistantMessage {
            content: vec![protocol::AssistantMessageContent::text(text)],
        }),
    }
}

/// Adds `count` user messages `m0..` with increasing timestamps; returns their ids.
async fn add_messages(
    store: &dyn Store,
    thread_id: &str,
    count: usize,
    ctx: &RequestContext,
) -> Vec<String> {
    let mut ids = Vec::new();
    for index in 0..count {
        let id = format!("m{index}");
        let item = user_message(
            thread_id,
            &id,
            &format!("message {index}"),
            at(index as i64),
        );
        store.add_thread_item(thread_id, &item, ctx).await.unwrap();
        ids.push(id);
    }
    ids
}

/// Every item id of a thread, oldest first (one big page).
async fn item_ids(store: &dyn Store, thread_id: &str, ctx: &RequestContext) -> Vec<String> {
    let page = store
        .load_thread_items(thread_id, None, MAX_PAGE_SIZE, Order::Asc, ctx)
        .await
        .unwrap();
    assert!(!page.has_more);
    page.data.into_iter().map(|item| item.id).collect()
}

/// Checks the page invariants and returns the page's ids.
fn check_page<T>(page: &Page<T>, limit: usize, id_of: impl Fn(&T) -> &str) -> Vec<String> {
    assert!(page.data.len() <= limit, "page longer than its limit");
    if page.has_more {
        assert_eq!(page.data.len(), limit, "a page with more after it is full");
        assert_eq!(page.after.as_deref(), page.data.last().map(&id_of));
    } else {
        assert_eq!(page.after, None, "`after` is set only when has_more");
    }
    page.data
        .iter()
        .map(|element| id_of(element).to_owned())
        .collect()
}

/// Walks all items page by page; returns the pages' ids.
async fn walk_items(
    store: &dyn Store,
    thread_id: &str,
    limit: usize,
    order: Order,
    ctx: &RequestContext,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .load_thread_items(thread_id, after.as_deref(), limit, order, ctx)
            .await
            .unwrap();
        pages.push(check_page(&page, limit, |item| &item.id));
        if !page.has_more {
            return pages;
        }
        assert!(pages.len() < 100, "pagination does not terminate");
        after = page.after;
    }
}

/// Walks all of the caller's threads page by page; returns the pages' ids.
async fn walk_threads(
    store: &dyn Store,
    limit: usize,
    order: Order,
    ctx: &RequestContext,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .load_threads(limit, after.as_deref(), order, ctx)
            .await
            .unwrap();
        pages.push(check_page(&page, limit, |thread| &thread.id));
        if !page.has_more {
            return pages;
        }
        assert!(pages.len() < 100, "pagination does not terminate");
        after = page.after;
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(err) => assert_eq!(err.code(), "not_found", "expected not_found, got {err:?}"),
        Ok(value) => panic!("expected not_found, got {value:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(err) => {
            assert_eq!(err.code(), "invalid_request", "got {err:?}");
            assert!(err.to_string().contains("unknown cursor"), "got {err}");
        }
        Ok(value) => panic!("expected invalid_request, got {value:?}"),
    }
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn file_attachment(id: &str) -> Attachment {
    serde_json::from_value(json!({
        "id": id,
        "name": "report ٹاسک.pdf",
        "mime_type": "application/pdf",
        "type": "file",
    }))
    .unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

// ---------------------------------------------------------------------------
// Threads.

async fn ping_answers(store: &dyn Store) {
    store.ping().await.unwrap();
}

async fn thread_round_trips_exactly(store: &dyn Store) {
    let mut thread = new_thread(at(0));
    thread.title = Some("'; DROP TABLE chat_sessions; -- ٹاسک بنائیں 📝".to_owned());
    thread.status = ThreadStatus::Locked {
        reason: Some("quota".to_owned()),
    };
    thread.allowed_image_domains = Some(vec!["img.example.com".to_owned()]);
    thread.metadata = object(
        serde_json::from_str(r#"{"z":1,"a":null,"nested":{"y":[1,2.5,null],"b":"ب"}}"#).unwrap(),
    );
    store.save_thread(&thread, &alice()).await.unwrap();

    let loaded = store.load_thread(&thread.id, &alice()).await.unwrap();
    assert_eq!(wire(&loaded), wire(&thread));
    assert_eq!(loaded, thread);
    assert_eq!(loaded.created_at.as_micros(), at(0).as_micros());

    // The list returns the same bytes.
    let page = store
        .load_threads(10, None, Order::Desc, &alice())
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(wire(&page.data[0]), wire(&thread));
}

async fn save_thread_upserts_and_keeps_created_at(store: &dyn Store) {
    let thread = new_thread(at(0));
    store.save_thread(&thread, &alice()).await.unwrap();
    let other = thread_of(store, &alice()).await;

    let mut changed = thread.clone();
    changed.created_at = at(99_000_000);
    changed.title = Some("Renamed".to_owned());
    changed.status = ThreadStatus::Closed { reason: None };
    changed.allowed_image_domains = Some(vec!["a.example".to_owned(), "b.example".to_owned()]);
    changed.metadata = object(json!({"previous_response_id": "resp_1"}));
    store.save_thread(&changed, &alice()).await.unwrap();

    let loaded = store.load_thread(&thread.id, &alice()).await.unwrap();
    let mut expected = changed.clone();
    expected.created_at = thread.created_at;
    assert_eq!(loaded, expected);
    assert_eq!(wire(&loaded), wire(&expected));

    // Still one row per thread, in the original position.
    let page = store
        .load_threads(10, None, Order::Asc, &alice())
        .await
        .unwrap();
    let ids: Vec<_> = page.data.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, vec![thread.id.clone(), other.id.clone()]);

    // Clearing the title works too.
    let mut untitled = expected.clone();
    untitled.title = None;
    store.save_thread(&untitled, &alice()).await.unwrap();
    assert_eq!(
        store.load_thread(&thread.id, &alice()).await.unwrap().title,
        None
    );
}

async fn threads_of_other_users_are_not_found(store: &dyn Store) {
    let mut thread = new_thread(at(0));
    thread.title = Some("alice's".to_owned());
    store.save_thread(&thread, &alice()).await.unwrap();

    assert_not_found(store.load_thread(&thread.id, &bob()).await);
    assert_not_found(store.load_thread("thr_missing", &alice()).await);
    let bobs = store
        .load_threads(10, None, Order::Desc, &bob())
        .await
        .unwrap();
    assert!(bobs.data.is_empty() && !bobs.has_more);

    // Bob deleting Alice's thread changes nothing.
    store.delete_thread(&thread.id, &bob()).await.unwrap();
    // Bob saving a thread with the same id creates his own, leaving Alice's alone.
    let mut bobs_version = thread.clone();
    bobs_version.title = Some("bob's".to_owned());
    store.save_thread(&bobs_version, &bob()).await.unwrap();

    let loaded = store.load_thread(&thread.id, &alice()).await.unwrap();
    assert_eq!(loaded.title.as_deref(), Some("alice's"));
    let loaded = store.load_thread(&thread.id, &bob()).await.unwrap();
    assert_eq!(loaded.title.as_deref(), Some("bob's"));

    // Deleting Bob's copy leaves Alice's.
    store.delete_thread(&thread.id, &bob()).await.unwrap();
    assert_not_found(store.load_thread(&thread.id, &bob()).await);
    assert!(store.load_thread(&thread.id, &alice()).await.is_ok());
    // Deleting an unknown thread is a no-op.
    store.delete_thread("thr_missing", &alice()).await.unwrap();
}

async fn threads_paginate_in_both_orders(store: &dyn Store) {
    let mut ids = Vec::new();
    for index in 0..7 {
        let thread = new_thread(at(index));
        store.save_thread(&thread, &alice()).await.unwrap();
        ids.push(thread.id);
    }
    // Bob's threads never show up in Alice's pages.
    thread_of(store, &bob()).await;

    let asc = walk_threads(store, 3, Order::Asc, &alice()).await;
    assert_eq!(
        asc,
        vec![ids[0..3].to_vec(), ids[3..6].to_vec(), ids[6..7].to_vec()]
    );
    let desc = walk_threads(store, 3, Order::Desc, &alice()).await;
    let reversed: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(
        desc,
        vec![
            reversed[0..3].to_vec(),
            reversed[3..6].to_vec(),
            reversed[6..7].to_vec()
        ]
    );

    // has_more is exact: a limit equal to the count has nothing more.
    let page = store
        .load_threads(7, None, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(
        (page.data.len(), page.has_more, page.after),
        (7, false, None)
    );
    let page = store
        .load_threads(6, None, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(page.data.len(), 6);
    assert!(page.has_more);
    assert_eq!(page.after.as_deref(), Some(ids[5].as_str()));
    // A cursor on the last element gives an empty page.
    let page = store
        .load_threads(3, Some(&ids[6]), Order::Asc, &alice())
        .await
        .unwrap();
    assert!(page.data.is_empty() && !page.has_more && page.after.is_none());
    let page = store
        .load_threads(3, Some(&ids[0]), Order::Desc, &alice())
        .await
        .unwrap();
    assert!(page.data.is_empty() && !page.has_more && page.after.is_none());
}

async fn page_limits_are_clamped(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 3, &alice()).await;
    let second = thread_of(store, &alice()).await;

    // limit 0 means 1.
    let page = store
        .load_thread_items(&thread.id, None, 0, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(check_page(&page, 1, |item| &item.id), strings(&["m0"]));
    assert!(page.has_more);
    let page = store
        .load_threads(0, None, Order::Desc, &alice())
        .await
        .unwrap();
    assert_eq!(check_page(&page, 1, |t| &t.id), vec![second.id.clone()]);

    // A huge limit is cut to MAX_PAGE_SIZE.
    let page = store
        .load_thread_items(&thread.id, None, usize::MAX, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(page.data.len(), 3);
    assert!(!page.has_more);
    let many = thread_of(store, &alice()).await;
    for index in 0..MAX_PAGE_SIZE + 1 {
        let item = assistant_message(&many.id, &format!("a{index}"), "x", at(0));
        store
            .add_thread_item(&many.id, &item, &alice())
            .await
            .unwrap();
    }
    let page = store
        .load_thread_items(&many.id, None, usize::MAX, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(page.data.len(), MAX_PAGE_SIZE);
    assert!(page.has_more);
    let rest = store
        .load_thread_items(&many.id, page.after.as_deref(), 1000, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(
        check_page(&rest, MAX_PAGE_SIZE, |item| &item.id),
        vec![format!("a{MAX_PAGE_SIZE}")]
    );
}

async fn unknown_cursors_are_invalid(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    let other = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 2, &alice()).await;
    add_messages(store, &other.id, 1, &alice()).await;
    let bobs = thread_of(store, &bob()).await;
    add_messages(store, &bobs.id, 1, &bob()).await;

    for order in [Order::Asc, Order::Desc] {
        // Items: a missing id, an id that only exists in another thread, and
        // an id that only exists for another user.
        assert_invalid(
            store
                .load_thread_items(&thread.id, Some("nope"), 3, order, &alice())
                .await,
        );
        let lonely = user_message(&other.id, "only_there", "x", at(0));
        store
            .add_thread_item(&other.id, &lonely, &alice())
            .await
            .unwrap();
        assert_invalid(
            store
                .load_thread_items(&thread.id, Some("only_there"), 3, order, &alice())
                .await,
        );
        let bobs_item = user_message(&bobs.id, "bobs_item", "x", at(0));
        store
            .add_thread_item(&bobs.id, &bobs_item, &bob())
            .await
            .unwrap();
        assert_invalid(
            store
                .load_thread_items(&thread.id, Some("bobs_item"), 3, order, &alice())
                .await,
        );
        // Threads: a missing id and another user's id.
        assert_invalid(
            store
                .load_threads(3, Some("thr_nope"), order, &alice())
                .await,
        );
        assert_invalid(store.load_threads(3, Some(&bobs.id), order, &alice()).await);
        assert_invalid(store.load_threads(3, Some(&thread.id), order, &bob()).await);
    }
}

// ---------------------------------------------------------------------------
// Items.

async fn items_paginate_in_both_orders(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    let ids = add_messages(store, &thread.id, 7, &alice()).await;

    let asc = walk_items(store, &thread.id, 3, Order::Asc, &alice()).await;
    assert_eq!(
        asc,
        vec![
            strings(&["m0", "m1", "m2"]),
            strings(&["m3", "m4", "m5"]),
            strings(&["m6"])
        ]
    );
    let desc = walk_items(store, &thread.id, 3, Order::Desc, &alice()).await;
    assert_eq!(
        desc,
        vec![
            strings(&["m6", "m5", "m4"]),
            strings(&["m3", "m2", "m1"]),
            strings(&["m0"])
        ]
    );
    // Everything exactly once.
    let mut seen: Vec<String> = desc.concat();
    seen.sort();
    assert_eq!(seen, ids);

    // Cursor in the middle, both directions.
    let page = store
        .load_thread_items(&thread.id, Some("m3"), 2, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(
        check_page(&page, 2, |item| &item.id),
        strings(&["m4", "m5"])
    );
    assert!(page.has_more);
    let page = store
        .load_thread_items(&thread.id, Some("m3"), 3, Order::Desc, &alice())
        .await
        .unwrap();
    assert_eq!(
        check_page(&page, 3, |item| &item.id),
        strings(&["m2", "m1", "m0"])
    );
    assert!(!page.has_more);

    // Exact fit: 6 items, limit 3 -> the second page has nothing more.
    let six = thread_of(store, &alice()).await;
    add_messages(store, &six.id, 6, &alice()).await;
    let pages = walk_items(store, &six.id, 3, Order::Asc, &alice()).await;
    assert_eq!(pages.len(), 2);

    // An empty thread gives an empty page.
    let empty = thread_of(store, &alice()).await;
    let page = store
        .load_thread_items(&empty.id, None, 3, Order::Desc, &alice())
        .await
        .unwrap();
    assert!(page.data.is_empty() && !page.has_more && page.after.is_none());
}

async fn history_items_are_the_newest_model_input_oldest_first_without_widgets(store: &dyn Store) {
    let alice = alice();
    let thread = thread_of(store, &alice).await;
    for index in 0..6 {
        let message = user_message(&thread.id, &format!("m{index}"), "hi", at(index * 2));
        store
            .add_thread_item(&thread.id, &message, &alice)
            .await
            .unwrap();
        let widget = item_from_json(
            &thread.id,
            r#"{"id":"","thread_id":"THREAD","created_at":"2025-01-01T00:00:00Z","type":"widget","widget":{"type":"Card","children":[]}}"#,
        );
        let widget = ThreadItem {
            id: format!("w{index}"),
            created_at: at(index * 2 + 1),
            ..widget
        };
        store
            .add_thread_item(&thread.id, &widget, &alice)
            .await
            .unwrap();
    }
    let ids = |items: Vec<ThreadItem>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .load_history_items(&thread.id, 4, &alice)
            .await
            .unwrap()),
        ["m2", "m3", "m4", "m5"],
        "the newest four messages, oldest first; widgets neither count nor load"
    );
    assert_eq!(
        ids(store
            .load_history_items(&thread.id, 100, &alice)
            .await
            .unwrap())
        .len(),
        6
    );
    let err = store
        .load_history_items(&thread.id, 4, &RequestContext::new("bob"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    let err = store
        .load_history_items("thr_missing", 4, &alice)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
}

async fn items_keep_insertion_order_not_timestamp_order(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    let same = at(5_000_000);
    for id in ["b", "a", "c"] {
        let item = user_message(&thread.id, id, id, same);
        store
            .add_thread_item(&thread.id, &item, &alice())
            .await
            .unwrap();
    }
    // Older timestamp, inserted later: still comes later.
    let older = assistant_message(&thread.id, "older", "late", at(-1_000_000));
    store
        .add_thread_item(&thread.id, &older, &alice())
        .await
        .unwrap();

    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["b", "a", "c", "older"])
    );
    let desc = walk_items(store, &thread.id, 2, Order::Desc, &alice()).await;
    assert_eq!(desc, vec![strings(&["older", "c"]), strings(&["a", "b"])]);
}

async fn item_upserts_keep_their_position(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 3, &alice()).await;

    // add_thread_item again with the same id replaces in place.
    let replaced = assistant_message(&thread.id, "m1", "replaced", at(50));
    store
        .add_thread_item(&thread.id, &replaced, &alice())
        .await
        .unwrap();
    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["m0", "m1", "m2"])
    );
    let loaded = store.load_item(&thread.id, "m1", &alice()).await.unwrap();
    assert_eq!(wire(&loaded), wire(&replaced));

    // save_item likewise.
    let saved = user_message(&thread.id, "m0", "edited", at(60));
    store.save_item(&thread.id, &saved, &alice()).await.unwrap();
    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["m0", "m1", "m2"])
    );
    assert_eq!(
        store.load_item(&thread.id, "m0", &alice()).await.unwrap(),
        saved
    );

    // save_item of a new id appends.
    let fresh = user_message(&thread.id, "m3", "new", at(0));
    store.save_item(&thread.id, &fresh, &alice()).await.unwrap();
    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["m0", "m1", "m2", "m3"])
    );
}

async fn item_ids_may_collide_across_threads_and_users(store: &dyn Store) {
    let first = thread_of(store, &alice()).await;
    let second = thread_of(store, &alice()).await;
    let bobs = thread_of(store, &bob()).await;
    let in_first = user_message(&first.id, "msg_same", "first", at(1));
    let in_second = user_message(&second.id, "msg_same", "second", at(2));
    let in_bobs = user_message(&bobs.id, "msg_same", "bob", at(3));
    store
        .add_thread_item(&first.id, &in_first, &alice())
        .await
        .unwrap();
    store
        .add_thread_item(&second.id, &in_second, &alice())
        .await
        .unwrap();
    store
        .add_thread_item(&bobs.id, &in_bobs, &bob())
        .await
        .unwrap();

    assert_eq!(
        store
            .load_item(&first.id, "msg_same", &alice())
            .await
            .unwrap(),
        in_first
    );
    assert_eq!(
        store
            .load_item(&second.id, "msg_same", &alice())
            .await
            .unwrap(),
        in_second
    );
    assert_eq!(
        store.load_item(&bobs.id, "msg_same", &bob()).await.unwrap(),
        in_bobs
    );

    // Deleting one leaves the others.
    store
        .delete_thread_item(&first.id, "msg_same", &alice())
        .await
        .unwrap();
    assert_not_found(store.load_item(&first.id, "msg_same", &alice()).await);
    assert_eq!(
        store
            .load_item(&second.id, "msg_same", &alice())
            .await
            .unwrap(),
        in_second
    );
    assert_eq!(
        store.load_item(&bobs.id, "msg_same", &bob()).await.unwrap(),
        in_bobs
    );
}

async fn item_calls_on_foreign_or_missing_threads_are_not_found(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 2, &alice()).await;
    let original = store.load_item(&thread.id, "m0", &alice()).await.unwrap();
    let intruder = assistant_message(&thread.id, "m0", "overwritten by bob", at(9));
    let newcomer = assistant_message(&thread.id, "bobs_new", "added by bob", at(9));

    for thread_id in [thread.id.as_str(), "thr_missing"] {
        let ctx = if thread_id == thread.id {
            bob()
        } else {
            alice()
        };
        assert_not_found(
            store
                .load_thread_items(thread_id, None, 10, Order::Asc, &ctx)
                .await,
        );
        assert_not_found(store.load_item(thread_id, "m0", &ctx).await);
        assert_not_found(store.add_thread_item(thread_id, &intruder, &ctx).await);
        assert_not_found(store.add_thread_item(thread_id, &newcomer, &ctx).await);
        assert_not_found(store.save_item(thread_id, &intruder, &ctx).await);
        assert_not_found(
            store
                .add_feedback(thread_id, &strings(&["m0"]), FeedbackKind::Negative, &ctx)
                .await,
        );
        // Deleting is a no-op.
        store
            .delete_thread_item(thread_id, "m0", &ctx)
            .await
            .unwrap();
    }
    // Alice's thread is untouched.
    assert_not_found(store.load_item(&thread.id, "missing", &alice()).await);
    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["m0", "m1"])
    );
    assert_eq!(
        wire(&store.load_item(&thread.id, "m0", &alice()).await.unwrap()),
        wire(&original)
    );
    assert_eq!(
        store
            .load_feedback(&thread.id, "m0", &alice())
            .await
            .unwrap(),
        None
    );
    // Nothing was written for a missing thread either.
    assert_not_found(store.load_thread("thr_missing", &alice()).await);
}

async fn delete_thread_removes_items_and_feedback(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    let keep = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 3, &alice()).await;
    add_messages(store, &keep.id, 2, &alice()).await;
    store
        .add_feedback(
            &thread.id,
            &strings(&["m0"]),
            FeedbackKind::Positive,
            &alice(),
        )
        .await
        .unwrap();
    store
        .add_feedback(
            &keep.id,
            &strings(&["m0"]),
            FeedbackKind::Negative,
            &alice(),
        )
        .await
        .unwrap();

    store.delete_thread(&thread.id, &alice()).await.unwrap();
    assert_not_found(store.load_thread(&thread.id, &alice()).await);
    assert_not_found(store.load_item(&thread.id, "m0", &alice()).await);
    assert_eq!(
        store
            .load_feedback(&thread.id, "m0", &alice())
            .await
            .unwrap(),
        None
    );

    // A new thread with the same id starts empty.
    store.save_thread(&thread, &alice()).await.unwrap();
    assert!(item_ids(store, &thread.id, &alice()).await.is_empty());
    assert_eq!(
        store
            .load_feedback(&thread.id, "m0", &alice())
            .await
            .unwrap(),
        None
    );

    // The other thread is untouched; deleting twice or an unknown id is fine.
    assert_eq!(
        item_ids(store, &keep.id, &alice()).await,
        strings(&["m0", "m1"])
    );
    assert_eq!(
        store.load_feedback(&keep.id, "m0", &alice()).await.unwrap(),
        Some(FeedbackKind::Negative)
    );
    store.delete_thread(&thread.id, &alice()).await.unwrap();
    store.delete_thread(&thread.id, &alice()).await.unwrap();
    store.delete_thread("thr_unknown", &alice()).await.unwrap();
    let page = store
        .load_threads(10, None, Order::Asc, &alice())
        .await
        .unwrap();
    assert_eq!(check_page(&page, 10, |t| &t.id), vec![keep.id.clone()]);
}

async fn delete_thread_item_removes_one_and_ignores_unknown_ids(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 3, &alice()).await;
    store
        .add_feedback(
            &thread.id,
            &strings(&["m1"]),
            FeedbackKind::Positive,
            &alice(),
        )
        .await
        .unwrap();

    store
        .delete_thread_item(&thread.id, "m1", &alice())
        .await
        .unwrap();
    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["m0", "m2"])
    );
    assert_not_found(store.load_item(&thread.id, "m1", &alice()).await);
    assert_eq!(
        store
            .load_feedback(&thread.id, "m1", &alice())
            .await
            .unwrap(),
        None
    );

    store
        .delete_thread_item(&thread.id, "m1", &alice())
        .await
        .unwrap();
    store
        .delete_thread_item(&thread.id, "never", &alice())
        .await
        .unwrap();
    store
        .delete_thread_item("thr_unknown", "m0", &alice())
        .await
        .unwrap();
    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["m0", "m2"])
    );

    // Deleted ids are not valid cursors any more.
    assert_invalid(
        store
            .load_thread_items(&thread.id, Some("m1"), 3, Order::Asc, &alice())
            .await,
    );
    // Re-adding a deleted id appends it at the end.
    let back = user_message(&thread.id, "m1", "back", at(1));
    store
        .add_thread_item(&thread.id, &back, &alice())
        .await
        .unwrap();
    assert_eq!(
        item_ids(store, &thread.id, &alice()).await,
        strings(&["m0", "m2", "m1"])
    );
}

// ---------------------------------------------------------------------------
// Attachments.

async fn attachments_round_trip_with_private_metadata(store: &dyn Store) {
    let mut attachment = file_attachment("atc_1");
    attachment.metadata = Some(object(
        serde_json::from_str(r#"{"z":1,"a":null,"path":"s3://bucket/ٹاسک"}"#).unwrap(),
    ));
    store.save_attachment(&attachment, &alice()).await.unwrap();
    let loaded = store.load_attachment("atc_1", &alice()).await.unwrap();
    assert_eq!(loaded, attachment);
    assert_eq!(wire(&loaded), wire(&attachment));
    assert_eq!(
        serde_json::to_string(&loaded.metadata).unwrap(),
        r#"{"z":1,"a":null,"path":"s3://bucket/ٹاسک"}"#
    );

    // Upsert: the second save links it to a thread.
    let thread = thread_of(store, &alice()).await;
    let mut linked = attachment.clone();
    linked.thread_id = Some(thread.id.clone());
    store.save_attachment(&linked, &alice()).await.unwrap();
    assert_eq!(
        store.load_attachment("atc_1", &alice()).await.unwrap(),
        linked
    );

    // No metadata round-trips as None; images keep their preview.
    let image: Attachment = serde_json::from_value(json!({
        "id": "atc_img",
        "name": "pic.png",
        "mime_type": "image/png",
        "upload_descriptor": {"url": "https://up.example/x", "method": "PUT", "headers": {"x-b": "2", "x-a": "1"}},
        "type": "image",
        "preview_url": "https://cdn.example/pic.png?a=1&b='2'",
    }))
    .unwrap();
    store.save_attachment(&image, &alice()).await.unwrap();
    let loaded = store.load_attachment("atc_img", &alice()).await.unwrap();
    assert_eq!(loaded, image);
    assert_eq!(loaded.metadata, None);
    assert_eq!(wire(&loaded), wire(&image));

    // Delete; then not found; deleting again is fine.
    store.delete_attachment("atc_1", &alice()).await.unwrap();
    assert_not_found(store.load_attachment("atc_1", &alice()).await);
    store.delete_attachment("atc_1", &alice()).await.unwrap();
    assert_not_found(store.load_attachment("atc_never", &alice()).await);
    assert!(store.load_attachment("atc_img", &alice()).await.is_ok());
}

async fn attachments_are_isolated_per_user(store: &dyn Store) {
    let mut attachment = file_attachment("atc_shared_id");
    attachment.metadata = Some(object(json!({"owner": "alice"})));
    store.save_attachment(&attachment, &alice()).await.unwrap();

    assert_not_found(store.load_attachment("atc_shared_id", &bob()).await);
    store
        .delete_attachment("atc_shared_id", &bob())
        .await
        .unwrap();
    let mut bobs = file_attachment("atc_shared_id");
    bobs.name = "bob.txt".to_owned();
    bobs.metadata = Some(object(json!({"owner": "bob"})));
    store.save_attachment(&bobs, &bob()).await.unwrap();

    assert_eq!(
        store
            .load_attachment("atc_shared_id", &alice())
            .await
            .unwrap(),
        attachment
    );
    assert_eq!(
        store
            .load_attachment("atc_shared_id", &bob())
            .await
            .unwrap(),
        bobs
    );
    store
        .delete_attachment("atc_shared_id", &bob())
        .await
        .unwrap();
    assert_eq!(
        store
            .load_attachment("atc_shared_id", &alice())
            .await
            .unwrap(),
        attachment
    );
}

// ---------------------------------------------------------------------------
// Feedback.

async fn feedback_latest_rating_wins(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 3, &alice()).await;

    store
        .add_feedback(
            &thread.id,
            &strings(&["m0", "m1"]),
            FeedbackKind::Positive,
            &alice(),
        )
        .await
        .unwrap();
    store
        .add_feedback(
            &thread.id,
            &strings(&["m1"]),
            FeedbackKind::Negative,
            &alice(),
        )
        .await
        .unwrap();
    // The same id twice in one call is fine.
    store
        .add_feedback(
            &thread.id,
            &strings(&["m2", "m2"]),
            FeedbackKind::Negative,
            &alice(),
        )
        .await
        .unwrap();
    let ctx = alice();
    let load = |id: &'static str| store.load_feedback(&thread.id, id, &ctx);
    assert_eq!(load("m0").await.unwrap(), Some(FeedbackKind::Positive));
    assert_eq!(load("m1").await.unwrap(), Some(FeedbackKind::Negative));
    assert_eq!(load("m2").await.unwrap(), Some(FeedbackKind::Negative));
    assert_eq!(load("unrated").await.unwrap(), None);

    store
        .add_feedback(
            &thread.id,
            &strings(&["m1"]),
            FeedbackKind::Positive,
            &alice(),
        )
        .await
        .unwrap();
    assert_eq!(load("m1").await.unwrap(), Some(FeedbackKind::Positive));

    // No ids: only the ownership check.
    store
        .add_feedback(&thread.id, &[], FeedbackKind::Positive, &alice())
        .await
        .unwrap();
    assert_not_found(
        store
            .add_feedback("thr_missing", &[], FeedbackKind::Positive, &alice())
            .await,
    );
}

async fn feedback_is_isolated_per_user(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    add_messages(store, &thread.id, 1, &alice()).await;
    store
        .add_feedback(
            &thread.id,
            &strings(&["m0"]),
            FeedbackKind::Positive,
            &alice(),
        )
        .await
        .unwrap();

    assert_not_found(
        store
            .add_feedback(
                &thread.id,
                &strings(&["m0"]),
                FeedbackKind::Negative,
                &bob(),
            )
            .await,
    );
    assert_not_found(
        store
            .add_feedback(&thread.id, &[], FeedbackKind::Negative, &bob())
            .await,
    );
    assert_eq!(
        store.load_feedback(&thread.id, "m0", &bob()).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .load_feedback(&thread.id, "m0", &alice())
            .await
            .unwrap(),
        Some(FeedbackKind::Positive)
    );
}

// ---------------------------------------------------------------------------
// Payload fidelity and robustness.

/// Items of many kinds, with free-form JSON whose key order and nulls matter.
const ITEM_TEMPLATES: &[&str] = &[
    r#"{"id":"msg_user","thread_id":"THREAD","created_at":"2025-11-25T22:02:39.394192Z","type":"user_message","content":[{"type":"input_text","text":"ٹاسک بنائیں 📝 \"quoted\" \\ back\nslash"},{"type":"input_tag","id":"tag_1","text":"کام","data":{"z":1,"a":null,"nested":{"y":[1,2.5,null,1e16],"b":"x"}},"group":"g","interactive":true}],"attachments":[{"id":"atc_1","name":"a.png","mime_type":"image/png","thread_id":"THREAD","type":"image","preview_url":"https://cdn.example/a.png"}],"quoted_text":"'; DROP TABLE chat_messages; --","inference_options":{"tool_choice":{"id":"create_task"},"model":"mimo-v2-flash"}}"#,
    r#"{"id":"msg_asst","thread_id":"THREAD","created_at":"2025-11-25T22:02:40Z","type":"assistant_message","content":[{"annotations":[],"text":"آپ کا ٹاسک بن گیا ✅","type":"output_text"}]}"#,
    r#"{"id":"tc_call","thread_id":"THREAD","created_at":"2025-11-25T22:02:41.000001Z","type":"client_tool_call","status":"completed","call_id":"call_1","name":"get_location","arguments":{"z":1,"a":null},"output":{"zeta":[],"alpha":{"k":null},"n":100.0}}"#,
    r#"{"id":"msg_widget","thread_id":"THREAD","created_at":"2025-11-25T22:02:42Z","type":"widget","widget":{"type":"Card","size":"md","children":[{"type":"Text","value":"'; --","weight":null}],"id":null},"copy_text":"copy"}"#,
    r#"{"id":"hc_1","thread_id":"THREAD","created_at":"2025-11-25T22:02:43Z","type":"hidden_context_item","content":{"b":null,"a":[3,2,1]}}"#,
    r#"{"id":"shcx_1","thread_id":"THREAD","created_at":"2025-11-25T22:02:44Z","type":"sdk_hidden_context","content":"The user cancelled the stream."}"#,
    r#"{"id":"wf_1","thread_id":"THREAD","created_at":"2025-11-25T22:02:45Z","type":"workflow","workflow":{"type":"reasoning","tasks":[],"summary":{"duration":3},"expanded":false}}"#,
    r#"{"id":"img_1","thread_id":"THREAD","created_at":"2025-11-25T22:02:46Z","type":"generated_image","image":{"id":"gi_1","url":"data:image/png;base64,AAAA"}}"#,
    r#"{"id":"eot_1","thread_id":"THREAD","created_at":"2025-11-25T22:02:47Z","type":"end_of_turn"}"#,
];

async fn payloads_round_trip_byte_for_byte(store: &dyn Store) {
    let mut thread = new_thread(at(0));
    thread.title = Some("'; DROP TABLE chat_sessions; -- ٹاسک بنائیں 😀".to_owned());
    store.save_thread(&thread, &alice()).await.unwrap();

    let items: Vec<ThreadItem> = ITEM_TEMPLATES
        .iter()
        .map(|template| item_from_json(&thread.id, template))
        .collect();
    for item in &items {
        store
            .add_thread_item(&thread.id, item, &alice())
            .await
            .unwrap();
    }
    // The free-form client tool arguments keep their key order and nulls.
    assert!(wire(&items[2]).contains(r#""arguments":{"z":1,"a":null}"#));

    for item in &items {
        let loaded = store
            .load_item(&thread.id, &item.id, &alice())
            .await
            .unwrap();
        assert_eq!(wire(&loaded), wire(item), "item {}", item.id);
        assert_eq!(loaded.created_at.as_micros(), item.created_at.as_micros());
    }
    let page = store
        .load_thread_items(&thread.id, None, 50, Order::Asc, &alice())
        .await
        .unwrap();
    let loaded: Vec<String> = page.data.iter().map(wire).collect();
    let saved: Vec<String> = items.iter().map(wire).collect();
    assert_eq!(loaded, saved);

    let loaded = store.load_thread(&thread.id, &alice()).await.unwrap();
    assert_eq!(loaded.title, thread.title);
    assert_eq!(wire(&loaded), wire(&thread));
    // The tables survived the metacharacters.
    assert_eq!(
        store
            .load_threads(10, None, Order::Desc, &alice())
            .await
            .unwrap()
            .data
            .len(),
        1
    );
}

async fn token_usage_adds_up_by_turn_thread_day_and_user(store: &dyn Store) {
    use chatkit_engine::store::{TurnUsage, UsageScope};
    let thread = thread_of(store, &alice()).await;
    let other = thread_of(store, &alice()).await;
    let turn = |id: &str, thread_id: &str, day: &str, input: u64, output: u64, estimated: bool| {
        TurnUsage {
            turn_id: id.to_owned(),
            thread_id: thread_id.to_owned(),
            day: day.to_owned(),
            input_tokens: input,
            output_tokens: output,
            model_calls: 1,
            estimated,
        }
    };
    let rows = [
        turn("turn_1", &thread.id, "2026-03-01", 100, 10, false),
        turn("turn_2", &thread.id, "2026-03-02", 200, 20, false),
        turn("turn_3", &other.id, "2026-03-02", 300, 30, true),
    ];
    for row in &rows {
        store.record_turn_usage(row, &alice()).await.unwrap();
    }
    // Recording a turn again replaces its counts (an upsert by turn id).
    store
        .record_turn_usage(
            &turn("turn_1", &thread.id, "2026-03-01", 1, 1, false),
            &alice(),
        )
        .await
        .unwrap();
    let totals =
        |scope: UsageScope| async move { store.token_usage(&scope, &alice()).await.unwrap() };
    let all = totals(UsageScope::All).await;
    assert_eq!(
        (all.input_tokens, all.output_tokens, all.turns),
        (501, 51, 3)
    );
    assert!(all.estimated);
    let day = totals(UsageScope::Day("2026-03-02".into())).await;
    assert_eq!(
        (day.total_tokens(), day.turns, day.model_calls),
        (550, 2, 2)
    );
    let in_thread = totals(UsageScope::Thread(thread.id.clone())).await;
    assert_eq!((in_thread.total_tokens(), in_thread.turns), (222, 2));
    assert!(!in_thread.estimated);
    let one = totals(UsageScope::Turn("turn_3".into())).await;
    assert_eq!(one.total_tokens(), 330);
    let none = totals(UsageScope::Day("2026-02-28".into())).await;
    assert_eq!(none, Default::default());
    // Usage is per user, and outlives a deleted thread.
    let bob = store.token_usage(&UsageScope::All, &bob()).await.unwrap();
    assert_eq!(bob.turns, 0);
    store.delete_thread(&thread.id, &alice()).await.unwrap();
    assert_eq!(totals(UsageScope::All).await.turns, 3);
}

async fn concurrent_writes_all_land(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    let writes = (0..24).map(|index| {
        let thread_id = thread.id.clone();
        async move {
            let item = user_message(&thread_id, &format!("c{index}"), "x", at(index));
            store.add_thread_item(&thread_id, &item, &alice()).await
        }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    let ids = item_ids(store, &thread.id, &alice()).await;
    assert_eq!(ids.len(), 24);
}

// ---------------------------------------------------------------------------
// Schema and opening (need the raw database).

async fn migrations_apply_twice(db: &TestDb) {
    let first = db.open().await;
    let thread = thread_of(&*first, &alice()).await;
    add_messages(&*first, &thread.id, 2, &alice()).await;

    // Opening the same database again re-runs the (already applied) migrations.
    let second = db.open().await;
    assert_eq!(
        item_ids(&*second, &thread.id, &alice()).await,
        strings(&["m0", "m1"])
    );
    // Both handles keep working side by side.
    add_messages(
        &*second,
        &thread_of(&*second, &alice()).await.id,
        1,
        &alice(),
    )
    .await;
    first.ping().await.unwrap();
    drop(first);
    drop(second);

    let third = db.open().await;
    assert_eq!(
        third
            .load_threads(10, None, Order::Asc, &alice())
            .await
            .unwrap()
            .data
            .len(),
        2
    );
    // Each migration recorded once.
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM _sqlx_migrations").await,
        migration_count()
    );
}

// ---------------------------------------------------------------------------
// Turn leases and migrations of several replicas (PostgreSQL).

const LONG: std::time::Duration = std::time::Duration::from_secs(300);

async fn a_turn_lease_is_exclusive_until_its_owner_releases_it(store: &dyn Store) {
    assert!(store.shares_turn_leases());
    let thread = "thr_leased";
    assert!(
        store
            .try_lease_turn(thread, "a", LONG, &alice())
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease_turn(thread, "b", LONG, &alice())
            .await
            .unwrap()
    );
    // The owner itself cannot take it twice either: a second turn is a new owner.
    assert!(
        !store
            .try_lease_turn(thread, "a2", LONG, &alice())
            .await
            .unwrap()
    );
    // Leases are per user: Bob's thread of the same id is another lease.
    assert!(
        store
            .try_lease_turn(thread, "b", LONG, &bob())
            .await
            .unwrap()
    );

    assert!(
        store
            .renew_turn_lease(thread, "a", LONG, &alice())
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_turn_lease(thread, "b", LONG, &alice())
            .await
            .unwrap()
    );
    // Only the owner's release frees the thread.
    store
        .release_turn_lease(thread, "b", &alice())
        .await
        .unwrap();
    assert!(
        !store
            .try_lease_turn(thread, "c", LONG, &alice())
            .await
            .unwrap()
    );
    store
        .release_turn_lease(thread, "a", &alice())
        .await
        .unwrap();
    assert!(
        store
            .try_lease_turn(thread, "c", LONG, &alice())
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_turn_lease(thread, "a", LONG, &alice())
            .await
            .unwrap()
    );
}

async fn an_expired_turn_lease_is_taken_over_by_the_next_owner(store: &dyn Store) {
    let thread = "thr_expiring";
    let short = std::time::Duration::from_secs(1);
    assert!(
        store
            .try_lease_turn(thread, "dead", short, &alice())
            .await
            .unwrap()
    );
    // Whenever the database's clock passes the expiry, the next owner gets it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !store
        .try_lease_turn(thread, "next", LONG, &alice())
        .await
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired lease was never taken over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The dead owner can neither renew nor release the new owner's lease.
    assert!(
        !store
            .renew_turn_lease(thread, "dead", LONG, &alice())
            .await
            .unwrap()
    );
    store
        .release_turn_lease(thread, "dead", &alice())
        .await
        .unwrap();
    assert!(
        !store
            .try_lease_turn(thread, "third", LONG, &alice())
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_turn_lease(thread, "next", LONG, &alice())
            .await
            .unwrap()
    );
}

async fn racing_owners_get_exactly_one_turn_lease(store: &dyn Store) {
    for round in 0..5 {
        let thread = format!("thr_race_{round}");
        let owners: Vec<String> = (0..12).map(|i| format!("owner{i}")).collect();
        let ctx = alice();
        let attempts = owners
            .iter()
            .map(|owner| store.try_lease_turn(&thread, owner, LONG, &ctx));
        let won = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .filter(|won| *won)
            .count();
        assert_eq!(won, 1, "round {round}: {won} owners got the lease");
    }
}

async fn replicas_migrating_at_once_apply_each_migration_exactly_once(db: &TestDb) {
    use chatkit_engine::store::{DEFAULT_SCHEMA, PostgresStore};
    let replicas = (0..4).map(|_| async {
        let pool = PostgresStore::pool_for(&db.url).await.unwrap();
        PostgresStore::migrate(&pool, DEFAULT_SCHEMA).await
    });
    let reports: Vec<_> = futures::future::join_all(replicas)
        .await
        .into_iter()
        .map(|report| report.expect("every replica starts"))
        .collect();
    let mut applied: Vec<i64> = reports
        .iter()
        .flat_map(|report| report.applied.iter().map(|(version, _)| *version))
        .collect();
    applied.sort_unstable();
    assert_eq!(
        applied,
        (1..=migration_count()).collect::<Vec<_>>(),
        "each migration applied by exactly one replica"
    );
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM chatkit._sqlx_migrations WHERE success")
            .await,
        migration_count()
    );
    // Every replica's store works on the result.
    db.open().await.ping().await.unwrap();
}

async fn a_transaction_pooler_without_a_direct_url_refuses_pending_migrations(db: &TestDb) {
    use chatkit_engine::store::{DatabaseOptions, PoolerMode, PostgresStore};
    let through = db.pooled_url().unwrap_or_else(|| db.url.clone());
    let options = DatabaseOptions {
        pooler: PoolerMode::Transaction,
        ..DatabaseOptions::new(through)
    };
    let err = PostgresStore::open(&options).await.unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    assert!(err.to_string().contains("DATABASE_URL_DIRECT"), "{err}");
    // Nothing was created through the pooler.
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM pg_namespace WHERE nspname = 'chatkit'")
            .await,
        0
    );
    // Once migrated (directly), the pooled URL alone is enough.
    drop(db.open().await);
    let store = PostgresStore::open(&options).await.unwrap();
    let thread = thread_of(&store, &alice()).await;
    assert_eq!(
        store.load_thread(&thread.id, &alice()).await.unwrap().id,
        thread.id
    );
}

/// How many migrations the engine ships (the same on both backends).
fn migration_count() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    std::fs::read_dir(dir).unwrap().count() as i64
}

async fn open_accepts_the_backend_url(db: &TestDb) {
    let store = store::open(&db.url).await.unwrap();
    store.ping().await.unwrap();
    let thread = thread_of(&*store, &alice()).await;
    assert_eq!(
        store.load_thread(&thread.id, &alice()).await.unwrap().id,
        thread.id
    );
}

async fn tasks_table_exists_after_connect(db: &TestDb) {
    let _store = db.open().await;
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM tasks").await, 0);
    // The existing app's columns, quoted camelCase included.
    let (id, now) = match db.backend {
        Backend::Postgres => (
            "'6f1c1f3e-8a4b-4b8e-9a5e-0c1d2e3f4a5b'",
            "TIMESTAMP '2026-01-13 10:00:00'",
        ),
        Backend::Sqlite => (
            "'6f1c1f3e-8a4b-4b8e-9a5e-0c1d2e3f4a5b'",
            "'2026-01-13 10:00:00'",
        ),
    };
    db.execute(&format!(
        "INSERT INTO tasks (id, title, description, priority, category, \"dueDate\", \
         \"createdAt\", \"updatedAt\", \"userId\") \
         VALUES ({id}, 'Buy milk', NULL, 'high', 'home', NULL, {now}, {now}, 'alice')"
    ))
    .await;
    assert_eq!(
        db.scalar_text("SELECT status FROM tasks WHERE \"userId\" = 'alice'")
            .await,
        "pending"
    );
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM tasks WHERE completed = false")
            .await,
        1
    );
    let indexes = match db.backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'tasks' AND indexname LIKE 'ix_tasks_%'"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND name LIKE 'ix_tasks_%'"
        }
    };
    assert_eq!(db.scalar_i64(indexes).await, 5);
}

async fn existing_tasks_table_is_kept(db: &TestDb) {
    // The production database already has the table (and rows).
    let schema = match db.backend {
        Backend::Postgres => {
            r#"CREATE TABLE tasks (id UUID PRIMARY KEY, title VARCHAR(255) NOT NULL, description TEXT,
                priority TEXT NOT NULL, category TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
                completed BOOLEAN NOT NULL DEFAULT false, "dueDate" TIMESTAMP, "createdAt" TIMESTAMP NOT NULL,
                "updatedAt" TIMESTAMP NOT NULL, "userId" TEXT NOT NULL);
               CREATE INDEX idx_tasks_user ON tasks ("userId");
               INSERT INTO tasks (id, title, priority, category, status, completed, "createdAt", "updatedAt", "userId")
               VALUES ('0b7a6c2e-1d3f-4e5a-8b9c-0d1e2f3a4b5c', 'ٹاسک', 'medium', 'work', 'completed', true,
                       TIMESTAMP '2026-01-13 10:00:00', TIMESTAMP '2026-01-14 10:00:00', 'alice');"#
        }
        Backend::Sqlite => {
            r#"CREATE TABLE tasks (id TEXT PRIMARY KEY, title VARCHAR(255) NOT NULL, description TEXT,
                priority TEXT NOT NULL, category TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
                completed BOOLEAN NOT NULL DEFAULT 0, "dueDate" TIMESTAMP, "createdAt" TIMESTAMP NOT NULL,
                "updatedAt" TIMESTAMP NOT NULL, "userId" TEXT NOT NULL);
               INSERT INTO tasks (id, title, priority, category, status, completed, "createdAt", "updatedAt", "userId")
               VALUES ('0b7a6c2e-1d3f-4e5a-8b9c-0d1e2f3a4b5c', 'ٹاسک', 'medium', 'work', 'completed', 1,
                       '2026-01-13 10:00:00', '2026-01-14 10:00:00', 'alice');"#
        }
    };
    db.execute(schema).await;

    let store = db.open().await;
    store.ping().await.unwrap();
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM tasks").await, 1);
    assert_eq!(
        db.scalar_text("SELECT title FROM tasks WHERE \"userId\" = 'alice' AND completed = true")
            .await,
        "ٹاسک"
    );
    // The chat tables were created next to it, and a second open is fine.
    thread_of(&*store, &alice()).await;
    drop(store);
    let again = db.open().await;
    assert_eq!(
        again
            .load_threads(5, None, Order::Asc, &alice())
            .await
            .unwrap()
            .data
            .len(),
        1
    );
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM tasks").await, 1);
}

// ---------------------------------------------------------------------------
// Backend-independent checks.

#[tokio::test]
async fn open_creates_a_missing_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("chatkit_open_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chat.db");
    assert!(!path.exists());
    let store = store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert!(path.exists());
    let thread = thread_of(&*store, &alice()).await;
    drop(store);

    // Reopening the file sees the data.
    let store = store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert!(store.load_thread(&thread.id, &alice()).await.is_ok());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn open_rejects_unknown_schemes() {
    for url in ["mysql://root:secret@localhost/db", "chat.db", ""] {
        match store::open(url).await {
            Err(err) => {
                assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
                assert!(!err.to_string().contains("secret"));
            }
            Ok(_) => panic!("{url} was accepted"),
        }
    }
}

#[tokio::test]
async fn in_memory_stores_are_private_and_shared_by_clones() {
    let first = SqliteStore::in_memory().await.unwrap();
    let second = SqliteStore::in_memory().await.unwrap();
    let thread = thread_of(&first, &alice()).await;
    assert_not_found(second.load_thread(&thread.id, &alice()).await);
    let clone = first.clone();
    assert!(clone.load_thread(&thread.id, &alice()).await.is_ok());
    // The in-memory database holds data across many calls and pages.
    add_messages(&first, &thread.id, 7, &alice()).await;
    let pages = walk_items(&clone, &thread.id, 3, Order::Desc, &alice()).await;
    assert_eq!(pages.concat().len(), 7);
    // `sqlite::memory:` through `open` is a private in-memory store too.
    let opened = store::open("sqlite::memory:").await.unwrap();
    assert_not_found(opened.load_thread(&thread.id, &alice()).await);
    let other = thread_of(&*opened, &alice()).await;
    assert!(opened.load_thread(&other.id, &alice()).await.is_ok());
}

#[test]
fn test_database_urls_keep_credentials_and_options() {
    assert_eq!(
        db::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        db::with_database("postgres://u:p@host/db?sslmode=require", "x"),
        "postgres://u:p@host/x?sslmode=require"
    );
    assert_eq!(
        db::with_database("postgres://host", "x"),
        "postgres://host/x"
    );
}

// ---------------------------------------------------------------------------
// Pending approvals.

fn approval(thread_id: &str, id: &str) -> PendingApproval {
    PendingApproval {
        id: id.to_owned(),
        thread_id: thread_id.to_owned(),
        item_id: "msg_card".to_owned(),
        payload: json!({"prompt": "Delete “x”?", "run": {"agent": "A", "n": [1, 2.5, null]}}),
        created_at: at(0),
        expires_at: at(600),
    }
}

async fn approvals_are_answered_once_by_their_user_only(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    let pending = approval(&thread.id, "apr_1");
    // Only the thread's owner can store one.
    assert_not_found(store.save_approval(&pending, &bob()).await);
    store.save_approval(&pending, &alice()).await.unwrap();
    // Bob cannot answer it (nor learn it exists).
    assert_eq!(
        store
            .decide_approval("apr_1", ApprovalDecision::Approved, &bob())
            .await
            .unwrap(),
        None
    );
    let decided = store
        .decide_approval("apr_1", ApprovalDecision::Declined, &alice())
        .await
        .unwrap()
        .expect("the first answer decides it");
    assert_eq!(decided, pending, "the payload round-trips with its times");
    // A second answer, either way, decides nothing.
    for decision in [ApprovalDecision::Approved, ApprovalDecision::Declined] {
        assert_eq!(
            store
                .decide_approval("apr_1", decision, &alice())
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store
            .decide_approval("apr_unknown", ApprovalDecision::Approved, &alice())
            .await
            .unwrap(),
        None
    );
}

async fn concurrent_answers_to_one_approval_decide_it_once(store: &dyn Store) {
    let thread = thread_of(store, &alice()).await;
    store
        .save_approval(&approval(&thread.id, "apr_race"), &alice())
        .await
        .unwrap();
    let ctx = alice();
    let answers = futures::future::join_all((0..8).map(|i| {
        let decision = if i % 2 == 0 {
            ApprovalDecision::Approved
        } else {
            ApprovalDecision::Declined
        };
        store.decide_approval("apr_race", decision, &ctx)
    }))
    .await;
    let won = answers
        .into_iter()
        .map(Result::unwrap)
        .filter(Option::is_some)
        .count();
    assert_eq!(won, 1);
}
