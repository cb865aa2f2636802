//! The turn pipeline of the six streaming requests, in the order it runs:
//!
//! 1. [`start`]: [`plan`] validates the request, loads and checks what it
//!    names, takes the thread's lease (a busy thread answers with one
//!    `error` event) and persists what the request brings (the thread, the
//!    user message, a tool output, a structured input's answers); every
//!    failure up to here is a typed error, before any byte is streamed.
//! 2. One spawned task runs [`run_turn`]: the prelude events, then
//!    `stream_options`, then the responder's events through [`Turn`] (which
//!    persists each item), then the thread's changes.
//! 3. The end: success; a client that left (the cancellation path keeps the
//!    partial answer, then stores the hidden marker); or a failure, streamed
//!    as an `error` event. The lease is released last; while the turn runs
//!    it is renewed beside it (see [`super::locks`]).

use super::json::load_widget;
use super::locks::TurnLease;
use super::stream::EventSender;
use super::{ChatEngine, EventStream, Turn};
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{
    Action, Attachment, ClientToolCallStatus, IdKind, ItemKind, Order, StreamingRequest,
    StructuredInputAnswer, StructuredInputItem, StructuredInputKind, StructuredInputStatus,
    StructuredInputSubmission, Thread, ThreadItem, ThreadMetadata, ThreadStreamEvent, Timestamp,
    UserMessage, UserMessageInput, new_id,
};
use crate::store::{TurnUsage, UsageScope};
use std::time::Instant;
use tracing::Instrument;

/// How many of the newest items are searched for stale pending client tool
/// calls, as in the Python SDK.
const PENDING_CALL_SCAN: usize = 20;

/// What the respond phase of a turn does.
enum Phase {
    /// `Responder::respond` with the user message (or `None`).
    Respond(Option<ThreadItem>),
    /// `Responder::action` with the widget that sent it.
    Action(Action, Option<ThreadItem>),
}

/// Everything a turn needs once validation is over.
struct TurnPlan {
    thread: ThreadMetadata,
    /// Events sent before `stream_options` (already persisted).
    prelude: Vec<ThreadStreamEvent>,
    /// Events processed right after `stream_options` (persisted then).
    opening: Vec<ThreadStreamEvent>,
    phase: Phase,
    /// When the request arrived (turn duration and time to first event).
    started: Instant,
}

/// Plans the turn and starts it in its own task; the stream carries its
/// events.
pub(super) async fn start(
    engine: &ChatEngine,
    request: StreamingRequest,
    ctx: RequestContext,
) -> Result<EventStream> {
    // The lease lives outside the plan so that a request failing after it
    // was taken frees the thread before its error is answered: the next
    // request must not find the thread busy.
    let started = Instant::now();
    let mut leased = None;
    let planned = plan(engine, request, &ctx, &mut leased, started).await;
    let (plan, lease) = match (planned, leased) {
        (Ok(plan), Some(lease)) => (plan, lease),
        (Ok(_), None) => {
            return Err(Error::Internal(
                "a turn was planned without its lease".into(),
            ));
        }
        (Err(err), lease) => {
            if let Some(lease) = lease {
                lease.release().await;
            }
            return match err {
                Error::ThreadBusy(thread_id) => {
                    tracing::info!(
                        thread_id,
                        "refusing a second concurrent turn on a busy thread"
                    );
                    Ok(error_stream(ThreadStreamEvent::thread_busy_error()))
                }
                err => Err(err),
            };
        }
    };
    let (tx, stream) = EventStream::channel(engine.config().stream_buffer);
    let engine = engine.clone();
    let span = tracing::info_span!("chatkit.turn", thread_id = %plan.thread.id);
    // Boxed: the plan is moved out at once, but a future keeps the room of
    // its arguments for its whole life.
    let plan = Box::new(plan);
    tokio::spawn(async move { run_turn(engine, plan, lease, ctx, tx).await }.instrument(span));
    Ok(stream)
}

/// A stream that carries one error event: used when the thread is busy,
/// where ChatKit expects an error event rather than an HTTP failure.
fn error_stream(event: ThreadStreamEvent) -> EventStream {
    let (tx, stream) = EventStream::channel(1);
    // A fresh channel with capacity one always has room.
    let _ = tx.try_send(Box::new(event));
    stream
}

/// Marks the thread busy for this turn (in this process and, on a store
/// that shares leases, on every replica) and keeps the lease in `slot`, or
/// fails with `ThreadBusy`.
async fn lease(
    engine: &ChatEngine,
    thread_id: &str,
    ctx: &RequestContext,
    slot: &mut Option<TurnLease>,
) -> Result<()> {
    let lease = TurnLease::acquire(
        &engine.inner.locks,
        &engine.inner.store,
        &engine.inner.replica,
        engine.config().turn_lease(),
        thread_id,
        ctx,
    )
    .await?;
    *slot = Some(lease);
    Ok(())
}

/// Validates the request and persists what it brings; see the module docs.
async fn plan(
    engine: &ChatEngine,
    request: StreamingRequest,
    ctx: &RequestContext,
    leased: &mut Option<TurnLease>,
    started: Instant,
) -> Result<TurnPlan> {
    let store = engine.store();
    match request {
        StreamingRequest::ThreadsCreate(params) => {
            // Attachments are checked before anything is written, so a bad
            // id leaves no empty thread behind.
            let attachments = load_attachments(engine, &params.input, ctx).await?;
            let thread = ThreadMetadata::new(new_id(IdKind::Thread), Timestamp::now());
            lease(engine, &thread.id, ctx, leased).await?;
            store.save_thread(&thread, ctx).await?;
            let created = ThreadStreamEvent::ThreadCreated {
                thread: Thread::from_metadata(&thread, Default::default()),
            };
            let message =
                save_user_message(engine, &thread, params.input, attachments, ctx).await?;
            Ok(TurnPlan {
                thread,
                prelude: vec![
                    created,
                    ThreadStreamEvent::ItemDone {
                        item: message.clone(),
                    },
                ],
                opening: Vec::new(),
                phase: Phase::Respond(Some(message)),
                started,
            })
        }
        StreamingRequest::ThreadsAddUserMessage(params) => {
            let thread = store.load_thread(&params.thread_id, ctx).await?;
            lease(engine, &thread.id, ctx, leased).await?;
            let attachments = load_attachments(engine, &params.input, ctx).await?;
            let message =
                save_user_message(engine, &thread, params.input, attachments, ctx).await?;
            Ok(TurnPlan {
                thread,
                prelude: vec![ThreadStreamEvent::ItemDone {
                    item: message.clone(),
                }],
                opening: Vec::new(),
                phase: Phase::Respond(Some(message)),
                started,
            })
        }
        StreamingRequest::ThreadsAddClientToolOutput(params) => {
            let thread = store.load_thread(&params.thread_id, ctx).await?;
            lease(engine, &thread.id, ctx, leased).await?;
            let newest = store
                .load_thread_items(&thread.id, None, PENDING_CALL_SCAN, Order::Desc, ctx)
                .await?;
            let Some(mut call) = newest.data.first().cloned() else {
                return Err(Error::invalid("the thread has no pending client tool call"));
            };
            match &mut call.kind {
                ItemKind::ClientToolCall(tool_call)
                    if tool_call.status == ClientToolCallStatus::Pending =>
                {
                    tool_call.output = Some(params.result);
                    tool_call.status = ClientToolCallStatus::Completed;
                }
                _ => return Err(Error::invalid("the thread has no pending client tool call")),
            }
            store.save_item(&thread.id, &call, ctx).await?;
            // Older calls that never got an output would confuse the model.
            for stale in newest.data.iter().skip(1) {
                if let ItemKind::ClientToolCall(tool_call) = &stale.kind
                    && tool_call.status == ClientToolCallStatus::Pending
                {
                    store.delete_thread_item(&thread.id, &stale.id, ctx).await?;
                }
            }
            Ok(TurnPlan {
                thread,
                prelude: Vec::new(),
                opening: Vec::new(),
                phase: Phase::Respond(None),
                started,
            })
        }
        StreamingRequest::ThreadsAddStructuredInput(params) => {
            let thread = store.load_thread(&params.thread_id, ctx).await?;
            lease(engine, &thread.id, ctx, leased).await?;
            let mut item = store.load_item(&thread.id, &params.item_id, ctx).await?;
            let ItemKind::StructuredInput(form) = &mut item.kind else {
                return Err(Error::invalid(format!(
                    "item {} is a {}, not a structured input",
                    params.item_id,
                    item.type_name()
                )));
            };
            if form.status != StructuredInputStatus::Pending {
                return Err(Error::invalid(format!(
                    "structured input {} was already submitted",
                    params.item_id
                )));
            }
            apply_submission(form, &params.input);
            Ok(TurnPlan {
                thread,
                prelude: Vec::new(),
                opening: vec![ThreadStreamEvent::ItemReplaced { item }],
                phase: Phase::Respond(None),
                started,
            })
        }
        StreamingRequest::ThreadsRetryAfterItem(params) => {
            let thread = store.load_thread(&params.thread_id, ctx).await?;
            lease(engine, &thread.id, ctx, leased).await?;
            let (message, newer) =
                find_with_newer(engine, &thread.id, &params.item_id, ctx).await?;
            if !matches!(message.kind, ItemKind::UserMessage(_)) {
                return Err(Error::invalid(format!(
                    "item {} is a {}, only a user message can be retried",
                    params.item_id,
                    message.type_name()
                )));
            }
            for item_id in newer {
                store.delete_thread_item(&thread.id, &item_id, ctx).await?;
            }
            Ok(TurnPlan {
                thread,
                prelude: Vec::new(),
                opening: Vec::new(),
                phase: Phase::Respond(Some(message)),
                started,
            })
        }
        StreamingRequest::ThreadsCustomAction(params) => {
            let thread = store.load_thread(&params.thread_id, ctx).await?;
            lease(engine, &thread.id, ctx, leased).await?;
            let sender = match &params.item_id {
                Some(item_id) => Some(load_widget(engine, &thread.id, item_id, ctx).await?),
                None => None,
            };
            Ok(TurnPlan {
                thread,
                prelude: Vec::new(),
                opening: Vec::new(),
                phase: Phase::Action(params.action, sender),
                started,
            })
        }
    }
}

/// The attachments a user message names, checked to be the caller's.
async fn load_attachments(
    engine: &ChatEngine,
    input: &UserMessageInput,
    ctx: &RequestContext,
) -> Result<Vec<Attachment>> {
    let mut attachments = Vec::with_capacity(input.attachments.len());
    for id in &input.attachments {
        attachments.push(engine.store().load_attachment(id, ctx).await?);
    }
    Ok(attachments)
}

/// Links the attachments to the thread and persists the user message
/// before any responder runs.
async fn save_user_message(
    engine: &ChatEngine,
    thread: &ThreadMetadata,
    input: UserMessageInput,
    attachments: Vec<Attachment>,
    ctx: &RequestContext,
) -> Result<ThreadItem> {
    let mut linked = Vec::with_capacity(attachments.len());
    for mut attachment in attachments {
        attachment.thread_id = Some(thread.id.clone());
        engine.store().save_attachment(&attachment, ctx).await?;
        linked.push(attachment);
    }
    let item = ThreadItem {
        id: new_id(IdKind::Message),
        thread_id: thread.id.clone(),
        created_at: Timestamp::now(),
        kind: ItemKind::UserMessage(UserMessage {
            content: input.content,
            attachments: linked,
            quoted_text: input.quoted_text,
            inference_options: input.inference_options,
        }),
    };
    engine
        .store()
        .add_thread_item(&thread.id, &item, ctx)
        .await?;
    Ok(item)
}

/// Finds `item_id` walking newest to oldest, with the ids of every newer
/// item.
async fn find_with_newer(
    engine: &ChatEngine,
    thread_id: &str,
    item_id: &str,
    ctx: &RequestContext,
) -> Result<(ThreadItem, Vec<String>)> {
    let mut newer = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine
            .store()
            .load_thread_items(
                thread_id,
                after.as_deref(),
                engine.config().max_page_size,
                Order::Desc,
                ctx,
            )
            .await?;
        for item in page.data {
            if item.id == item_id {
                return Ok((item, newer));
            }
            newer.push(item.id);
        }
        match page.after {
            Some(next) if page.has_more => after = Some(next),
            _ => return Err(Error::not_found("item", item_id)),
        }
    }
}

/// Runs one turn to completion, cancellation or failure.
async fn run_turn(
    engine: ChatEngine,
    plan: Box<TurnPlan>,
    lease: TurnLease,
    ctx: RequestContext,
    tx: EventSender,
) {
    let TurnPlan {
        thread,
        prelude,
        opening,
        phase,
        started,
    } = *plan;
    crate::telemetry::turn_started();
    // The day the turn's tokens count against: the day it started.
    let day = engine.inner.clock.today();
    let mut turn = Turn::new(thread, ctx, engine.store().clone(), tx, started);
    let watcher = turn.disconnect_watcher();
    let responder = engine.inner.responder.clone();
    let outcome = tokio::select! {
        outcome = async {
            for event in prelude {
                turn.send(event).await?;
            }
            let options = responder.stream_options(turn.thread(), turn.context());
            turn.send(ThreadStreamEvent::StreamOptions { stream_options: options }).await?;
            // A widget action is not refused: it calls no model, or (an
            // answered approval) finishes a turn that started under the budget.
            if matches!(phase, Phase::Respond(_)) {
                check_budget(&engine, &day, turn.context()).await?;
            }
            for event in opening {
                turn.emit(event).await?;
            }
            match &phase {
                Phase::Respond(input) => responder.respond(&mut turn, input.as_ref()).await?,
                Phase::Action(action, sender) => responder.action(&mut turn, action, sender.as_ref()).await?,
            }
            turn.sync_thread().await
        } => outcome,
        () = watcher.closed() => Err(Error::Cancelled),
        // Never completes: renews the lease while the turn runs.
        () = lease.keep_alive() => Ok(()),
    };
    drop(watcher);
    let label = match &outcome {
        Ok(()) => "completed",
        Err(Error::Cancelled) => "cancelled",
        Err(Error::TokenBudgetExceeded { .. }) => "budget_exceeded",
        Err(_) => "failed",
    };
    match outcome {
        Ok(()) => tracing::debug!("turn complete"),
        Err(Error::Cancelled) => {
            tracing::info!("client disconnected; keeping the partial answer");
            if let Err(err) = Box::pin(turn.persist_cancelled()).await {
                tracing::error!(code = err.code(), error = %err, "failed to persist a cancelled turn");
            }
        }
        Err(err) => {
            tracing::warn!(code = err.code(), error = %err, "turn failed");
            let event = error_event(&err);
            if turn.send(event).await.is_ok()
                && let Err(err) = turn.sync_thread().await
            {
                tracing::warn!(code = err.code(), error = %err, "failed to save the thread after an error");
            }
        }
    }
    record_usage(&engine, &turn, day).await;
    crate::telemetry::turn_finished(label, started.elapsed());
    lease.release().await;
}

/// Refuses to start the model when the caller has spent today's budget
/// ([`EngineConfig::daily_token_budget`](crate::EngineConfig::daily_token_budget)).
/// A turn that starts below the budget runs to its end, so a user can go
/// over by at most one turn; widget actions are never refused.
async fn check_budget(engine: &ChatEngine, day: &str, ctx: &RequestContext) -> Result<()> {
    let Some(budget) = engine.config().daily_token_budget else {
        return Ok(());
    };
    let used = engine
        .store()
        .token_usage(&UsageScope::Day(day.to_owned()), ctx)
        .await?
        .total_tokens();
    if used >= budget {
        tracing::info!(
            used,
            budget,
            "daily token budget spent; the model is not called"
        );
        return Err(Error::TokenBudgetExceeded { used, budget });
    }
    Ok(())
}

/// Stores the tokens of the turn, whatever its outcome (a cancelled turn
/// spent them too). A failure is logged: the answer is already out.
async fn record_usage(engine: &ChatEngine, turn: &Turn, day: String) {
    let tokens = turn.token_usage();
    if tokens.model_calls == 0 {
        return;
    }
    let usage = TurnUsage {
        turn_id: format!("turn_{}", uuid::Uuid::new_v4().simple()),
        thread_id: turn.thread().id.clone(),
        day,
        input_tokens: tokens.input_tokens,
        output_tokens: tokens.output_tokens,
        model_calls: tokens.model_calls,
        estimated: tokens.estimated,
    };
    if let Err(err) = engine
        .store()
        .record_turn_usage(&usage, turn.context())
        .await
    {
        tracing::error!(code = err.code(), error = %err, "failed to store the token usage of a turn");
    }
}

/// The `error` event for a failed respond phase: errors with a safe message
/// are shown as is (`custom`); storage and internal failures are worded by the
/// client (`stream.error`) and may be retried.
fn error_event(err: &Error) -> ThreadStreamEvent {
    match (err, err.user_message()) {
        (Error::Custom { allow_retry, .. }, Some(message)) => {
            ThreadStreamEvent::custom_error(message, *allow_retry)
        }
        (Error::ThreadBusy(_), _) => ThreadStreamEvent::thread_busy_error(),
        (_, Some(message)) => ThreadStreamEvent::custom_error(message, false),
        (_, None) => ThreadStreamEvent::stream_error(true),
    }
}

/// Records the user's answers on a structured input, as the Python SDK does:
/// skipped or empty answers become `skipped`, single-choice answers keep their
/// first value.
fn apply_submission(form: &mut StructuredInputItem, submission: &StructuredInputSubmission) {
    for input in &mut form.inputs {
        let given = submission.answer(&input.id);
        let answer = match given {
            Some(answer)
                if submission.status != StructuredInputStatus::Skipped
                    && !answer.skipped
                    && !answer.values.is_empty() =>
            {
                let mut values = answer.values;
                if let StructuredInputKind::MultipleChoice {
                    multiple: false, ..
                } = input.kind
                {
                    values.truncate(1);
                }
                StructuredInputAnswer {
                    values,
                    skipped: false,
                }
            }
            _ => StructuredInputAnswer {
                values: Vec::new(),
                skipped: true,
            },
        };
        input.answer = Some(answer);
    }
    form.status = submission.status;
}
