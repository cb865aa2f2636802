//! Token usage per turn, thread and user, and the daily token budget, on
//! both stores, with a clock the test moves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/db.rs"]
mod db;
#[path = "support/engine.rs"]
mod support;

use async_trait::async_trait;
use chatkit_engine::agents::{Agent, RunConfig, Runner};
use chatkit_engine::clock::{Clock, ManualClock};
use chatkit_engine::engine::{AgentResponder, ChatEngine};
use chatkit_engine::models::{Model, ModelEvent, ModelRequest, ModelResponse, ModelStream, Usage};
use chatkit_engine::protocol::ThreadStreamEvent;
use chatkit_engine::{EngineConfig, RequestContext, Result};
use db::{Backend, TestDb};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Answers "ok" and reports 60 tokens in, 40 out (when `reports`), counting
/// its calls.
struct Counting {
    calls: AtomicUsize,
    reports: bool,
}

#[async_trait]
impl Model for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    async fn stream(&self, _request: ModelRequest) -> Result<ModelStream> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let usage = self.reports.then(|| Usage {
            input_tokens: 60,
            output_tokens: 40,
            requests: 1,
            ..Usage::default()
        });
        let response = ModelResponse {
            text: "ok".into(),
            usage,
            ..ModelResponse::default()
        };
        let events: Vec<Result<ModelEvent>> = vec![
            Ok(ModelEvent::TextDelta("ok".into())),
            Ok(ModelEvent::Completed(response)),
        ];
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

async fn engine(
    db: &TestDb,
    budget: Option<u64>,
    reports: bool,
    clock: Arc<ManualClock>,
) -> (ChatEngine, Arc<Counting>) {
    let model = Arc::new(Counting {
        calls: AtomicUsize::new(0),
        reports,
    });
    let runner = Runner::new(RunConfig::new(model.clone()));
    let responder = AgentResponder::new(runner, Arc::new(Agent::new("Helper")));
    let engine = ChatEngine::builder()
        .shared_store(db.open().await)
        .responder(responder)
        .clock(clock)
        .config(EngineConfig {
            daily_token_budget: budget,
            metrics: false,
            ..EngineConfig::default()
        })
        .build()
        .unwrap();
    (engine, model)
}

fn message(text: &str) -> serde_json::Value {
    json!({"type": "threads.create", "params": {"input": {"content": [{"type": "input_text", "text": text}]}}})
}

fn thread_id(events: &[ThreadStreamEvent]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            ThreadStreamEvent::ThreadCreated { thread } => Some(thread.id.clone()),
            _ => None,
        })
        .expect("thread.created")
}

fn error_of(events: &[ThreadStreamEvent]) -> Option<(String, Option<String>)> {
    events.iter().find_map(|e| match e {
        ThreadStreamEvent::Error { code, message, .. } => Some((code.clone(), message.clone())),
        _ => None,
    })
}

async fn the_budget_ends_a_turn_at_the_limit_and_lets_it_through_the_next_day(backend: Backend) {
    let db = TestDb::new(backend).await;
    let clock = Arc::new(ManualClock::at("2026-03-01T22:00:00Z").unwrap());
    let (engine, model) = engine(&db, Some(150), true, clock.clone()).await;
    let alice = RequestContext::new("alice");

    // 100 tokens, then 200: under the budget when each turn starts.
    for expected_calls in 1..=2 {
        let events = support::call_stream(&engine, "alice", message("hello")).await;
        assert_eq!(error_of(&events), None, "{:?}", support::types(&events));
        assert_eq!(model.calls.load(Ordering::SeqCst), expected_calls);
    }
    let report = engine.token_usage(&alice, None).await.unwrap();
    assert_eq!(report.day, "2026-03-01");
    assert_eq!(report.today.total_tokens(), 200);
    assert_eq!(report.remaining_today, Some(0));

    // At the limit: an error event, and the model is not called.
    let events = support::call_stream(&engine, "alice", message("once more")).await;
    let (code, text) = error_of(&events).expect("an error event");
    assert_eq!(code, "custom");
    let text = text.unwrap();
    assert!(text.contains("daily budget of 150 tokens"), "{text}");
    assert_eq!(model.calls.load(Ordering::SeqCst), 2);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ThreadStreamEvent::ItemAdded { .. })),
        "no assistant output after the budget error"
    );
    // Bob has a budget of his own.
    let events = support::call_stream(&engine, "bob", message("hi")).await;
    assert_eq!(error_of(&events), None);
    assert_eq!(model.calls.load(Ordering::SeqCst), 3);

    // The next UTC day the turn goes through.
    clock.advance(Duration::from_secs(3 * 3600));
    assert_eq!(clock.today(), "2026-03-02");
    let events = support::call_stream(&engine, "alice", message("new day")).await;
    assert_eq!(error_of(&events), None);
    assert_eq!(model.calls.load(Ordering::SeqCst), 4);
    let report = engine.token_usage(&alice, None).await.unwrap();
    assert_eq!(report.today.total_tokens(), 100);
    assert_eq!(report.total.total_tokens(), 300);
    assert_eq!(report.total.turns, 3);
    assert!(!report.total.estimated);
}

async fn usage_is_stored_per_turn_and_thread_and_flagged_when_estimated(backend: Backend) {
    let db = TestDb::new(backend).await;
    let clock = Arc::new(ManualClock::at("2026-03-01T10:00:00Z").unwrap());
    let (engine, _) = engine(&db, None, false, clock).await;
    let alice = RequestContext::new("alice");
    let first = support::call_stream(&engine, "alice", message("count me")).await;
    let thread = thread_id(&first);
    let more = json!({"type": "threads.add_user_message", "params": {"thread_id": thread, "input": {"content": [{"type": "input_text", "text": "and me"}]}}});
    support::call_stream(&engine, "alice", more).await;
    support::call_stream(&engine, "alice", message("another chat")).await;

    let report = engine.token_usage(&alice, Some(&thread)).await.unwrap();
    let in_thread = report.thread.unwrap();
    assert_eq!(in_thread.turns, 2);
    assert_eq!(in_thread.model_calls, 2);
    assert!(in_thread.estimated, "the model reported no usage");
    assert!(in_thread.input_tokens > 0 && in_thread.output_tokens > 0);
    assert_eq!(report.total.turns, 3);
    assert!(report.total.total_tokens() > in_thread.total_tokens());
    assert_eq!(report.daily_budget, None);
    // Another user's thread is not found, like everywhere else.
    let err = engine
        .token_usage(&RequestContext::new("bob"), Some(&thread))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    let bob = engine
        .token_usage(&RequestContext::new("bob"), None)
        .await
        .unwrap();
    assert_eq!(bob.total.turns, 0);
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

both_stores!(
    the_budget_ends_a_turn_at_the_limit_and_lets_it_through_the_next_day,
    usage_is_stored_per_turn_and_thread_and_flagged_when_estimated,
);
