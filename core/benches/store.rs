//! Store operations on SQLite and PostgreSQL: add an item, load a page of 50
//! items, load a thread (the store call and the whole `threads.get_by_id`
//! request).
//!
//! Each backend gets a fresh database like the tests' `TestDb` (a temp
//! SQLite file; a `chatkit_test_<hex>` database on the server `DATABASE_URL`
//! names, default `postgres://postgres@127.0.0.1:5432/postgres`), dropped at
//! the end. Without a reachable PostgreSQL server the Postgres group is
//! skipped with a message.
//!
//! Run with `cargo bench -p chatkit-engine --bench store` (add
//! `-- --measurement-time 3 --warm-up-time 1` for a quicker run).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/db.rs"]
mod db;

use chatkit_engine::engine::{ChatEngine, EchoResponder, Response};
use chatkit_engine::protocol::{
    IdKind, ItemKind, Order, ThreadItem, ThreadMetadata, Timestamp, new_id,
};
use chatkit_engine::{RequestContext, store::SharedStore};
use criterion::{Criterion, criterion_group, criterion_main};
use db::{Backend, TestDb};
use serde_json::json;
use sqlx::Connection;
use std::hint::black_box;
use std::time::Duration;
use tokio::runtime::Runtime;

/// Items in the thread the read benchmarks load from.
const THREAD_ITEMS: usize = 500;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A user or assistant message of about 300 bytes of text.
fn message(thread_id: &str, n: usize) -> ThreadItem {
    let text = format!("message {n}: ").repeat(25);
    let value = if n.is_multiple_of(2) {
        json!({"id": new_id(IdKind::Message), "thread_id": thread_id, "created_at": Timestamp::now(),
               "type": "user_message", "content": [{"type": "input_text", "text": text}],
               "attachments": [], "inference_options": {}})
    } else {
        json!({"id": new_id(IdKind::Message), "thread_id": thread_id, "created_at": Timestamp::now(),
               "type": "assistant_message",
               "content": [{"annotations": [], "text": text, "type": "output_text"}]})
    };
    serde_json::from_value(value).unwrap()
}

async fn new_thread(store: &SharedStore, ctx: &RequestContext, title: &str) -> String {
    let mut thread = ThreadMetadata::new(new_id(IdKind::Thread), Timestamp::now());
    thread.title = Some(title.to_owned());
    store.save_thread(&thread, ctx).await.unwrap();
    thread.id
}

async fn postgres_reachable() -> Result<(), String> {
    let url = db::admin_url();
    match tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::postgres::PgConnection::connect(&url),
    )
    .await
    {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("connection timed out".into()),
    }
}

fn bench_backend(c: &mut Criterion, backend: Backend) {
    let rt = runtime();
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    if backend == Backend::Postgres
        && let Err(err) = rt.block_on(postgres_reachable())
    {
        eprintln!("skipping the postgres store benchmarks: PostgreSQL is not reachable ({err})");
        return;
    }
    let db = rt.block_on(TestDb::new(backend));
    let store = rt.block_on(db.open());
    let ctx = RequestContext::new("bench-user");

    // The thread the read benchmarks load: THREAD_ITEMS messages.
    let read_thread = rt.block_on(async {
        let id = new_thread(&store, &ctx, "read").await;
        for n in 0..THREAD_ITEMS {
            store
                .add_thread_item(&id, &message(&id, n), &ctx)
                .await
                .unwrap();
        }
        id
    });
    let middle = rt.block_on(async {
        let page = store
            .load_thread_items(&read_thread, None, THREAD_ITEMS / 2, Order::Asc, &ctx)
            .await
            .unwrap();
        page.data.last().unwrap().id.clone()
    });
    let write_thread = rt.block_on(new_thread(&store, &ctx, "write"));
    let engine = ChatEngine::builder()
        .shared_store(store.clone())
        .responder(EchoResponder)
        .build()
        .unwrap();
    let get_by_id =
        json!({"type": "threads.get_by_id", "params": {"thread_id": read_thread}}).to_string();

    let mut group = c.benchmark_group(format!("store_{name}"));
    let (store, ctx, read_thread, write_thread) = (&store, &ctx, &read_thread, &write_thread);

    group.bench_function("add_item", |b| {
        b.to_async(&rt).iter_batched(
            || message(write_thread, 1),
            |item| async move {
                store
                    .add_thread_item(write_thread, &item, ctx)
                    .await
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("load_page_50_newest", |b| {
        b.to_async(&rt).iter(|| async move {
            let page = store
                .load_thread_items(read_thread, None, 50, Order::Desc, ctx)
                .await
                .unwrap();
            assert_eq!(page.data.len(), 50);
            black_box(page)
        })
    });
    group.bench_function("load_page_50_after_cursor", |b| {
        let middle = &middle;
        b.to_async(&rt).iter(|| async move {
            let page = store
                .load_thread_items(read_thread, Some(middle), 50, Order::Asc, ctx)
                .await
                .unwrap();
            assert_eq!(page.data.len(), 50);
            black_box(page)
        })
    });
    group.bench_function("load_thread", |b| {
        b.to_async(&rt).iter(|| async move {
            let thread = store.load_thread(read_thread, ctx).await.unwrap();
            black_box(thread)
        })
    });
    group.bench_function("threads.get_by_id_request", |b| {
        let (engine, body) = (&engine, get_by_id.as_bytes());
        b.to_async(&rt).iter(|| async move {
            match engine.process(body, ctx.clone()).await.unwrap() {
                Response::Json(bytes) => black_box(bytes),
                Response::Stream(_) => panic!("threads.get_by_id streamed"),
            }
        })
    });
    group.finish();

    // Everything the write benchmark added is really there.
    let added = rt.block_on(async {
        store
            .load_thread_items(write_thread, None, 1, Order::Desc, ctx)
            .await
            .unwrap()
    });
    assert!(matches!(
        added.data.first().map(|item| &item.kind),
        Some(ItemKind::UserMessage(_) | ItemKind::AssistantMessage(_))
    ));
    drop(engine);
    drop(db);
}

fn sqlite(c: &mut Criterion) {
    bench_backend(c, Backend::Sqlite);
}

fn postgres(c: &mut Criterion) {
    bench_backend(c, Backend::Postgres);
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
