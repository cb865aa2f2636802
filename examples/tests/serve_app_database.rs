//! `serve` on the existing app's PostgreSQL database, in each of its shapes
//! (the fixtures of core/tests/fixtures/app), with no setting beyond
//! `DATABASE_URL` and the JWT settings: it starts, a chat at `/api/chatkit`
//! creates, lists, toggles and deletes tasks in the app's table, and the
//! app's chat tables are unchanged row for row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chatkit_engine_examples::serve::session::http_client;
use chatkit_engine_examples::serve::{Args, ServeConfig, Server};
use clap::Parser;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::sync::oneshot;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
const USERS: &str = include_str!("../../core/tests/fixtures/app/better_auth_user.sql");
const TASKS_SQLMODEL: &str = include_str!("../../core/tests/fixtures/app/tasks_sqlmodel.sql");
const TASKS_SPEC: &str = include_str!("../../core/tests/fixtures/app/tasks_spec.sql");
const CHAT_CURRENT: &str = include_str!("../../core/tests/fixtures/app/chat_sessions_current.sql");
const CHAT_OLDER: &str = include_str!("../../core/tests/fixtures/app/chat_sessions_older.sql");

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database holding the app's tables; dropped by [`drop_db`].
async fn app_db(parts: &[&str]) -> (String, String) {
    let admin = admin_url();
    let name = format!("chatkit_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    for sql in parts {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    (url, name)
}

async fn drop_db(name: &str) {
    let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

async fn text(url: &str, sql: &str) -> String {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let value: String = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    value
}

async fn app_chat_hash(url: &str) -> String {
    let mut out = String::new();
    for table in ["public.chat_sessions", "public.chat_messages"] {
        out += &text(
            url,
            &format!(
                "SELECT COALESCE(md5(string_agg(t::TEXT, '|' ORDER BY t::TEXT)), '') FROM {table} t"
            ),
        )
        .await;
    }
    out
}

fn token_for(sub: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    let now = chatkit_engine_examples::serve::dev_identity::unix_now();
    let claims = json!({"sub": sub, "iat": now, "exp": now + 600});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

async fn serve_on(tasks: &str, chat: &str) {
    let (url, name) = app_db(&[USERS, tasks, chat]).await;
    let before = app_chat_hash(&url).await;
    let mut args = Args::try_parse_from([
        "serve",
        "--port",
        "0",
        "--database-url",
        url.as_str(),
        "--jwt-secret",
        SECRET,
    ])
    .unwrap();
    // Only DATABASE_URL and the JWT settings: nothing from the environment.
    args.openai_api_key = None;
    args.openai_base_url = None;
    args.chat_model = None;
    args.jwks_url = None;
    args.jwt_issuer = None;
    args.jwt_audience.clear();
    args.better_auth_url = None;
    args.chatkit_workflow_id = None;
    args.cors_origins.clear();
    args.dev_stream_delay_ms = 0;
    let server = Server::bind(ServeConfig::from_args(args, |_| None).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    let http = http_client().unwrap();
    let token = token_for("alice");
    let post = |body: Value| {
        http.post(format!("{base}/api/chatkit"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let input = |text: &str| json!({"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}});
    let res = post(
        json!({"type": "threads.create", "params": {"input": input("add a task to buy milk")}}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let thread_id = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|event| event["type"] == "thread.created")
        .and_then(|event| event["thread"]["id"].as_str().map(str::to_owned))
        .expect("a thread.created event");
    let count = |sql: &'static str| text(&url, sql);
    assert_eq!(
        count("SELECT COUNT(*)::TEXT FROM public.tasks WHERE title = 'buy milk' AND \"userId\" = 'alice'").await,
        "1"
    );
    let say = |text: &str| json!({"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": input(text)}});
    let listed = post(say("show my tasks"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("buy milk") && listed.contains("From the app"),
        "{listed}"
    );
    post(say("mark buy milk as done"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        count("SELECT status || ' ' || completed::TEXT FROM public.tasks WHERE title = 'buy milk'")
            .await,
        "completed true"
    );
    // A delete waits on a confirmation card; Confirm deletes.
    let asked = post(say("delete buy milk"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count("SELECT COUNT(*)::TEXT FROM public.tasks").await, "2");
    let card = asked
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|event| {
            event["type"] == "thread.item.done" && event["item"]["widget"]["confirm"].is_object()
        })
        .expect("a confirmation card");
    let confirmed = post(json!({"type": "threads.custom_action", "params": {
        "thread_id": thread_id, "item_id": card["item"]["id"],
        "action": card["item"]["widget"]["confirm"]["action"]}}))
    .await
    .unwrap();
    assert_eq!(confirmed.status(), 200);
    confirmed.text().await.unwrap();
    assert_eq!(count("SELECT COUNT(*)::TEXT FROM public.tasks").await, "1");
    assert_eq!(
        app_chat_hash(&url).await,
        before,
        "the app's chat tables changed"
    );
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
    drop_db(&name).await;
}

#[tokio::test]
async fn serve_starts_on_the_sqlmodel_shape_and_chats_at_api_chatkit() {
    serve_on(TASKS_SQLMODEL, CHAT_CURRENT).await;
}

#[tokio::test]
async fn serve_starts_on_the_spec_shape_and_chats_at_api_chatkit() {
    serve_on(TASKS_SPEC, CHAT_CURRENT).await;
}

#[tokio::test]
async fn serve_starts_beside_the_older_chat_tables() {
    serve_on(TASKS_SQLMODEL, CHAT_OLDER).await;
}
