//! One respond phase: the event sink a [`Responder`](super::Responder) writes
//! to, which persists items and tracks thread changes as events pass.

use super::stream::EventSender;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{
    AssistantMessageContent, IdKind, ItemKind, SdkHiddenContext, Thread, ThreadItem,
    ThreadItemUpdate, ThreadMetadata, ThreadStreamEvent, Timestamp, new_id,
};
use crate::store::{SharedStore, UsageTotals};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// The text of the hidden item written when the user stops a response; the
/// model sees it next turn.
pub const CANCELLED_MARKER_TEXT: &str =
    "The user cancelled the stream. Stop responding to the prior request.";

/// The live state of one respond phase.
///
/// A responder streams its answer through [`Turn::emit`]. The turn applies
/// ChatKit's persistence rules to every event before forwarding it:
/// `thread.item.done` is stored, `replaced` upserted, `removed` deleted; items
/// only `added` are remembered (with their updates applied) so a cancelled
/// turn can keep its partial text. Changes a responder makes through
/// [`Turn::thread_mut`] are saved and announced with `thread.updated` after the
/// next event (or at the end of the turn).
pub struct Turn {
    thread: ThreadMetadata,
    saved_thread: ThreadMetadata,
    ctx: RequestContext,
    store: SharedStore,
    tx: EventSender,
    pending: Vec<ThreadItem>,
    /// The item write in progress, if any (see [`Turn::write`]).
    in_flight: Option<JoinHandle<Result<()>>>,
    /// When the turn began, until its first responder event (then `None`).
    awaiting_first_event: Option<Instant>,
    /// Tokens the responder reported for this turn.
    tokens: UsageTotals,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("thread_id", &self.thread.id)
            .field("user_id", &self.ctx.user_id)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Turn {
    pub(crate) fn new(
        thread: ThreadMetadata,
        ctx: RequestContext,
        store: SharedStore,
        tx: EventSender,
        started: Instant,
    ) -> Self {
        Self {
            saved_thread: thread.clone(),
            thread,
            ctx,
            store,
            tx,
            pending: Vec::new(),
            in_flight: None,
            awaiting_first_event: Some(started),
            tokens: UsageTotals::default(),
        }
    }

    /// Counts one model call's tokens against this turn (and so against the
    /// user's day). The engine stores the turn's total when it ends, however
    /// it ends; `estimated` flags counts the provider did not report.
    pub fn record_model_call(&mut self, input_tokens: u64, output_tokens: u64, estimated: bool) {
        self.tokens.input_tokens = self.tokens.input_tokens.saturating_add(input_tokens);
        self.tokens.output_tokens = self.tokens.output_tokens.saturating_add(output_tokens);
        self.tokens.model_calls += 1;
        self.tokens.estimated |= estimated;
    }

    /// The tokens recorded so far in this turn.
    pub fn token_usage(&self) -> UsageTotals {
        self.tokens
    }

    /// The thread being answered.
    pub fn thread(&self) -> &ThreadMetadata {
        &self.thread
    }

    /// Mutable access to the thread (title, status, metadata). Changes are
    /// persisted and streamed as `thread.updated` after the next event.
    pub fn thread_mut(&mut self) -> &mut ThreadMetadata {
        &mut self.thread
    }

    /// The caller's identity.
    pub fn context(&self) -> &RequestContext {
        &self.ctx
    }

    /// The store, for responders that read history.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// A new item of `kind` for this thread, stamped now.
    pub fn new_item(&self, id_kind: IdKind, kind: ItemKind) -> ThreadItem {
        ThreadItem {
            id: new_id(id_kind),
            thread_id: self.thread.id.clone(),
            created_at: Timestamp::now(),
            kind,
        }
    }

    /// Processes and forwards one event.
    ///
    /// Returns [`Error::Cancelled`] once the client is gone; a responder should
    /// stop then (the engine runs the cancellation path).
    pub fn emit(
        &mut self,
        event: ThreadStreamEvent,
    ) -> impl Future<Output = Result<()>> + Send + '_ {
        // Boxed before the first await: an event is a few hundred bytes, and
        // every future that awaits `emit` (the responder's, the turn task's)
        // would otherwise reserve room for it for as long as the stream is
        // open.
        let event = Box::new(event);
        if let Some(started) = self.awaiting_first_event.take() {
            crate::telemetry::turn_first_event(started.elapsed());
        }
        async move {
            if let Some(event) = self.apply(event).await? {
                self.send_boxed(event).await?;
            }
            self.sync_thread().await
        }
    }

    /// Persists what `event` asks for and returns what should go on the wire.
    async fn apply(
        &mut self,
        mut event: Box<ThreadStreamEvent>,
    ) -> Result<Option<Box<ThreadStreamEvent>>> {
        let thread_id = self.thread.id.clone();
        match &mut *event {
            ThreadStreamEvent::ItemAdded { item } => {
                // Items always belong to the thread being answered.
                item.thread_id.clone_from(&thread_id);
                self.pending.retain(|pending| pending.id != item.id);
                self.pending.push(item.clone());
            }
            ThreadStreamEvent::ItemDone { item } => {
                item.thread_id.clone_from(&thread_id);
                self.persist(item, Persist::Add).await?;
                self.pending.retain(|pending| pending.id != item.id);
                if item.is_hidden() {
                    return Ok(None);
                }
            }
            ThreadStreamEvent::ItemReplaced { item } => {
                item.thread_id.clone_from(&thread_id);
                self.persist(item, Persist::Replace).await?;
                self.pending.retain(|pending| pending.id != item.id);
                if item.is_hidden() {
                    return Ok(None);
                }
            }
            ThreadStreamEvent::ItemRemoved { item_id } => {
                let (store, ctx, removed) = (self.store.clone(), self.ctx.clone(), item_id.clone());
                self.write(
                    async move { store.delete_thread_item(&thread_id, &removed, &ctx).await },
                )
                .await?;
                self.pending.retain(|pending| &pending.id != item_id);
            }
            ThreadStreamEvent::ItemUpdated { item_id, update } => {
                if let Some(pending) = self.pending.iter_mut().find(|p| &p.id == item_id) {
                    apply_update(pending, update);
                }
            }
            ThreadStreamEvent::ThreadCreated { .. } | ThreadStreamEvent::ThreadUpdated { .. } => {
                // Thread events are the engine's to send; it derives them
                // from the thread's state.
                return Ok(None);
            }
            _ => {}
        }
        Ok(Some(event))
    }

    /// Stores `item` (in a task of its own, see [`Turn::write`]) and puts it
    /// back in place for the wire.
    ///
    /// The task needs the item for `'static`; it gets it behind an `Arc` and
    /// hands it back when done, instead of a deep copy: a widget item is tens
    /// of KiB of JSON tree (a copy per item was 7 % of a turn's CPU in a
    /// profile of `serve` under `loadtest`).
    async fn persist(&mut self, item: &mut ThreadItem, how: Persist) -> Result<()> {
        let shared = Arc::new(std::mem::replace(item, placeholder_item()));
        let (store, ctx, stored) = (self.store.clone(), self.ctx.clone(), Arc::clone(&shared));
        let written = self
            .write(async move {
                match how {
                    Persist::Add => {
                        store
                            .add_thread_item(&stored.thread_id, &stored, &ctx)
                            .await
                    }
                    Persist::Replace => store.save_item(&stored.thread_id, &stored, &ctx).await,
                }
            })
            .await;
        // The finished task has dropped its handle, so this takes the item
        // back without copying; the copy is only a fallback.
        *item = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
        written
    }

    /// Runs an item write in a task of its own and waits for it.
    ///
    /// When the client leaves, the engine drops the responder's future
    /// wherever it is waiting. A store write dropped mid-way still lands (the
    /// database already has it), but later, and on another connection than
    /// the cancellation path's writes, so the thread could end with the
    /// hidden cancellation marker before the item. As a task the write is
    /// not dropped, and [`Turn::persist_cancelled`] waits for it first.
    async fn write<F>(&mut self, write: F) -> Result<()>
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let handle = self.in_flight.insert(tokio::spawn(write));
        let outcome = handle.await;
        self.in_flight = None;
        outcome.map_err(|err| Error::Internal(format!("a store write did not finish: {err}")))?
    }

    /// Sends an event without processing it.
    pub(crate) fn send(
        &mut self,
        event: ThreadStreamEvent,
    ) -> impl Future<Output = Result<()>> + Send + '_ {
        // Boxed before the first await, as in `emit`.
        self.send_boxed(Box::new(event))
    }

    async fn send_boxed(&mut self, event: Box<ThreadStreamEvent>) -> Result<()> {
        self.tx.send(event).await.map_err(|_| Error::Cancelled)
    }

    /// Saves the thread and sends `thread.updated` if it changed since the
    /// last save.
    pub(crate) async fn sync_thread(&mut self) -> Result<()> {
        if self.thread == self.saved_thread {
            return Ok(());
        }
        self.store.save_thread(&self.thread, &self.ctx).await?;
        self.saved_thread = self.thread.clone();
        let thread = Thread::from_metadata(&self.thread, Default::default());
        self.send(ThreadStreamEvent::ThreadUpdated { thread }).await
    }

    /// The cancellation path: keep the partial assistant text and tell the
    /// model next turn that the user stopped this one.
    pub(crate) async fn persist_cancelled(&mut self) -> Result<()> {
        if let Some(write) = self.in_flight.take()
            && let Ok(Err(err)) = write.await
        {
            tracing::warn!(code = err.code(), error = %err, "an item write of the cancelled turn failed");
        }
        let pending = std::mem::take(&mut self.pending);
        for mut item in pending {
            if let ItemKind::AssistantMessage(message) = &item.kind {
                if message.text().trim().is_empty() {
                    continue;
                }
                item.created_at = Timestamp::now();
                self.store
                    .add_thread_item(&self.thread.id, &item, &self.ctx)
                    .await?;
            }
        }
        let marker = self.new_item(
            IdKind::SdkHiddenContext,
            ItemKind::SdkHiddenContext(SdkHiddenContext {
                content: CANCELLED_MARKER_TEXT.to_owned(),
            }),
        );
        self.store
            .add_thread_item(&self.thread.id, &marker, &self.ctx)
            .await?;
        if self.thread != self.saved_thread {
            self.store.save_thread(&self.thread, &self.ctx).await?;
        }
        Ok(())
    }

    /// A watcher that completes when the client is gone.
    pub(crate) fn disconnect_watcher(&self) -> EventSender {
        self.tx.clone()
    }
}

/// Applies an update to a pending item the way ChatKit clients do, so the
/// cancellation path stores what the user saw.
fn apply_update(item: &mut ThreadItem, update: &ThreadItemUpdate) {
    match (&mut item.kind, update) {
        (
            ItemKind::AssistantMessage(message),
            ThreadItemUpdate::ContentPartAdded {
                content_index,
                content,
            },
        )
        | (
            ItemKind::AssistantMessage(message),
            ThreadItemUpdate::ContentPartDone {
                content_index,
                content,
            },
        ) => {
            pad_content(&mut message.content, *content_index);
            message.content[*content_index] = content.clone();
        }
        (
            ItemKind::AssistantMessage(message),
            ThreadItemUpdate::TextDelta {
                content_index,
                delta,
            },
        ) => {
            pad_content(&mut message.content, *content_index);
            message.content[*content_index].text.push_str(delta);
        }
        (
            ItemKind::AssistantMessage(message),
            ThreadItemUpdate::AnnotationAdded {
                content_index,
                annotation_index,
                annotation,
            },
        ) => {
            pad_content(&mut message.content, *content_index);
            let annotations = &mut message.content[*content_index].annotations;
            let at = (*annotation_index).min(annotations.len());
            annotations.insert(at, annotation.clone());
        }
        (ItemKind::Workflow(workflow), ThreadItemUpdate::WorkflowTaskAdded { task, .. }) => {
            workflow.workflow.tasks.push(task.clone());
        }
        (
            ItemKind::Workflow(workflow),
            ThreadItemUpdate::WorkflowTaskUpdated { task_index, task },
        ) => {
            if let Some(slot) = workflow.workflow.tasks.get_mut(*task_index) {
                *slot = task.clone();
            }
        }
        _ => {}
    }
}

fn pad_content(content: &mut Vec<AssistantMessageContent>, index: usize) {
    while content.len() <= index {
        content.push(AssistantMessageContent::text(""));
    }
}

/// How [`Turn::persist`] writes an item.
#[derive(Clone, Copy)]
enum Persist {
    /// `Store::add_thread_item` (`thread.item.done`).
    Add,
    /// `Store::save_item` (`thread.item.replaced`).
    Replace,
}

/// What stands in an event for an item while its write runs (never sent).
fn placeholder_item() -> ThreadItem {
    ThreadItem {
        id: String::new(),
        thread_id: String::new(),
        created_at: Timestamp::now(),
        kind: ItemKind::EndOfTurn,
    }
}
