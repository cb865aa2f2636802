//! The seam between the engine and whatever produces answers.

use super::Turn;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{
    Action, AssistantMessage, AssistantMessageContent, IdKind, ItemKind, StreamOptions, ThreadItem,
    ThreadItemUpdate, ThreadMetadata, ThreadStreamEvent, Timestamp,
};
use async_trait::async_trait;

/// Produces the assistant's side of a turn.
///
/// The engine has already parsed the request, checked ownership, persisted the
/// user message and sent `stream_options` when [`Responder::respond`] runs. A
/// responder streams events through [`Turn::emit`]; the engine persists them,
/// maps an `Err` to an `error` event, and runs the cancellation path if the
/// client goes away. The agent runtime implements this trait; so can any
/// host that wants full control.
#[async_trait]
pub trait Responder: Send + Sync + 'static {
    /// Answers a user message (`input` is the `user_message` item), or
    /// continues after a client tool output or structured input (`input` is
    /// `None`).
    async fn respond(&self, turn: &mut Turn, input: Option<&ThreadItem>) -> Result<()>;

    /// Handles a widget action (`threads.custom_action`), streaming like
    /// `respond`. `sender` is the widget item that sent it, if any.
    async fn action(
        &self,
        turn: &mut Turn,
        action: &Action,
        sender: Option<&ThreadItem>,
    ) -> Result<()> {
        let _ = (turn, sender);
        Err(Error::NotSupported(format!(
            "widget action `{}`",
            action.kind
        )))
    }

    /// Handles a widget action without streaming
    /// (`threads.sync_custom_action`). A returned item replaces the stored one.
    async fn sync_action(
        &self,
        thread: &ThreadMetadata,
        action: &Action,
        sender: Option<&ThreadItem>,
        ctx: &RequestContext,
    ) -> Result<Option<ThreadItem>> {
        let _ = (thread, sender, ctx);
        Err(Error::NotSupported(format!(
            "widget action `{}`",
            action.kind
        )))
    }

    /// Turns dictated audio into text (`input.transcribe`). `media_type` is the
    /// MIME type without parameters (`audio/webm`).
    async fn transcribe(
        &self,
        audio: &[u8],
        media_type: &str,
        ctx: &RequestContext,
    ) -> Result<String> {
        let _ = (audio, ctx);
        Err(Error::NotSupported(format!(
            "transcription of {media_type}"
        )))
    }

    /// The model behind this responder, for logs and banners.
    fn model_name(&self) -> &str {
        "none"
    }

    /// The options sent at the start of each respond phase.
    fn stream_options(&self, thread: &ThreadMetadata, ctx: &RequestContext) -> StreamOptions {
        let _ = (thread, ctx);
        StreamOptions::default()
    }
}

/// A responder that streams the user's own words back, word by word.
///
/// It exists to exercise the engine without a model (tests, protocol demos):
/// it shows the streaming, persistence and title behaviour any real responder
/// gets. It titles an untitled thread after the first message.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoResponder;

#[async_trait]
impl Responder for EchoResponder {
    async fn respond(&self, turn: &mut Turn, input: Option<&ThreadItem>) -> Result<()> {
        let said = match input.map(|item| &item.kind) {
            Some(ItemKind::UserMessage(message)) => message.text(),
            _ => String::new(),
        };
        let reply = if said.trim().is_empty() {
            "(nothing to echo)".to_owned()
        } else {
            said.clone()
        };
        stream_text(turn, &reply).await?;
        if turn.thread().title.is_none() && !said.trim().is_empty() {
            turn.thread_mut().title = Some(said.chars().take(40).collect());
        }
        Ok(())
    }
}

/// Streams `text` as one assistant message: `added`, `content_part.added`,
/// one `text_delta` per word, `content_part.done`, `done`.
pub async fn stream_text(turn: &mut Turn, text: &str) -> Result<()> {
    let item = turn.new_item(
        IdKind::Message,
        ItemKind::AssistantMessage(AssistantMessage {
            content: Vec::new(),
        }),
    );
    let item_id = item.id.clone();
    turn.emit(ThreadStreamEvent::ItemAdded { item: item.clone() })
        .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: item_id.clone(),
        update: ThreadItemUpdate::ContentPartAdded {
            content_index: 0,
            content: AssistantMessageContent::text(""),
        },
    })
    .await?;
    for delta in text.split_inclusive(' ') {
        turn.emit(ThreadStreamEvent::ItemUpdated {
            item_id: item_id.clone(),
            update: ThreadItemUpdate::TextDelta {
                content_index: 0,
                delta: delta.to_owned(),
            },
        })
        .await?;
    }
    complete_message(turn, item, text).await
}

/// Closes a streamed assistant message: `content_part.done` with the whole
/// text, then `thread.item.done` (which persists it) stamped now.
pub(crate) async fn complete_message(turn: &mut Turn, item: ThreadItem, text: &str) -> Result<()> {
    let content = AssistantMessageContent::text(text);
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: item.id.clone(),
        update: ThreadItemUpdate::ContentPartDone {
            content_index: 0,
            content: content.clone(),
        },
    })
    .await?;
    let done = ThreadItem {
        created_at: Timestamp::now(),
        kind: ItemKind::AssistantMessage(AssistantMessage {
            content: vec![content],
        }),
        ..item
    };
    turn.emit(ThreadStreamEvent::ItemDone { item: done }).await
}
