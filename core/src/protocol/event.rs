//! Stream events (`ThreadStreamEvent`) and item updates (`ThreadItemUpdate`).

use super::{Annotation, AssistantMessageContent, GeneratedImage, Task, Thread, ThreadItem};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One event of a streaming response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ThreadStreamEvent {
    /// A new thread; always the first event of `threads.create`.
    #[serde(rename = "thread.created")]
    ThreadCreated {
        /// The thread, with an empty item page.
        thread: Thread,
    },
    /// The thread's metadata changed.
    #[serde(rename = "thread.updated")]
    ThreadUpdated {
        /// The thread, with an empty item page.
        thread: Thread,
    },
    /// An item starts streaming (not persisted).
    #[serde(rename = "thread.item.added")]
    ItemAdded {
        /// The item's initial state.
        item: ThreadItem,
    },
    /// An incremental change to a streaming item (not persisted).
    #[serde(rename = "thread.item.updated")]
    ItemUpdated {
        /// The item changed.
        item_id: String,
        /// The change.
        update: ThreadItemUpdate,
    },
    /// An item is final; the engine persists it.
    #[serde(rename = "thread.item.done")]
    ItemDone {
        /// The complete item.
        item: ThreadItem,
    },
    /// An item was removed; the engine deletes it.
    #[serde(rename = "thread.item.removed")]
    ItemRemoved {
        /// The removed item.
        item_id: String,
    },
    /// A stored item was replaced; the engine upserts it.
    #[serde(rename = "thread.item.replaced")]
    ItemReplaced {
        /// The new item.
        item: ThreadItem,
    },
    /// Options of this response (the stop button).
    #[serde(rename = "stream_options")]
    StreamOptions {
        /// The options.
        stream_options: StreamOptions,
    },
    /// A transient status line.
    #[serde(rename = "progress_update")]
    ProgressUpdate {
        /// Icon name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        icon: Option<String>,
        /// The status text.
        text: String,
    },
    /// A fire-and-forget client side effect.
    #[serde(rename = "client_effect")]
    ClientEffect {
        /// Effect name.
        name: String,
        /// Effect data.
        #[serde(default)]
        data: Map<String, Value>,
    },
    /// The response failed.
    #[serde(rename = "error")]
    Error {
        /// `stream.error` (client-worded) or `custom` (message shown).
        #[serde(default = "custom_code")]
        code: String,
        /// User-facing text for `custom` errors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Whether the client offers a retry.
        #[serde(default)]
        allow_retry: bool,
        /// chatkit-engine's extension: the engine's stable code for this
        /// failure, for clients and logs to match on (see
        /// [`ThreadStreamEvent::thread_busy_error`]). The ChatKit client and
        /// `openai-chatkit`'s types ignore it; absent on every other error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A user-facing notice.
    #[serde(rename = "notice")]
    Notice {
        /// `info`, `warning` or `danger`.
        level: NoticeLevel,
        /// Markdown text.
        message: String,
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
}

fn custom_code() -> String {
    ERROR_CODE_CUSTOM.to_owned()
}

/// The `code` of an error event whose message is shown to the user.
pub const ERROR_CODE_CUSTOM: &str = "custom";
/// The `code` of an error event the client words itself.
pub const ERROR_CODE_STREAM: &str = "stream.error";
/// The `reason` of the error event that refuses a second turn on a busy
/// thread: the same string as the core's
/// [`Error::ThreadBusy`](crate::Error::ThreadBusy) code, which the Python
/// (`ThreadBusyError.code`) and Node (`ChatKitError.code`) bindings carry.
pub const ERROR_REASON_THREAD_BUSY: &str = "thread_busy";
/// The text of the busy-thread error event.
pub const THREAD_BUSY_MESSAGE: &str = "This conversation is still answering a previous message. Wait for it to finish, then try again.";

impl ThreadStreamEvent {
    /// The event's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            ThreadStreamEvent::ThreadCreated { .. } => "thread.created",
            ThreadStreamEvent::ThreadUpdated { .. } => "thread.updated",
            ThreadStreamEvent::ItemAdded { .. } => "thread.item.added",
            ThreadStreamEvent::ItemUpdated { .. } => "thread.item.updated",
            ThreadStreamEvent::ItemDone { .. } => "thread.item.done",
            ThreadStreamEvent::ItemRemoved { .. } => "thread.item.removed",
            ThreadStreamEvent::ItemReplaced { .. } => "thread.item.replaced",
            ThreadStreamEvent::StreamOptions { .. } => "stream_options",
            ThreadStreamEvent::ProgressUpdate { .. } => "progress_update",
            ThreadStreamEvent::ClientEffect { .. } => "client_effect",
            ThreadStreamEvent::Error { .. } => "error",
            ThreadStreamEvent::Notice { .. } => "notice",
        }
    }

    /// An error event the client words itself (`stream.error`).
    pub fn stream_error(allow_retry: bool) -> Self {
        ThreadStreamEvent::Error {
            code: ERROR_CODE_STREAM.to_owned(),
            message: None,
            allow_retry,
            reason: None,
        }
    }

    /// An error event with a message shown to the user (`custom`).
    pub fn custom_error(message: impl Into<String>, allow_retry: bool) -> Self {
        ThreadStreamEvent::Error {
            code: ERROR_CODE_CUSTOM.to_owned(),
            message: Some(message.into()),
            allow_retry,
            reason: None,
        }
    }

    /// The error event that refuses a second turn on a thread that is still
    /// answering: a retryable `custom` error whose text the client shows,
    /// with the documented extension `"reason": "thread_busy"` to match on.
    ///
    /// ChatKit's `ErrorEvent.code` is `ErrorCode | "custom"` and
    /// `openai-chatkit` 1.6.5's only `ErrorCode` is `stream.error` (shown as
    /// a generic line, without the message), so the code stays `custom` and
    /// the engine's code travels in `reason`, which pydantic's default
    /// `extra="ignore"` accepts and drops. Outside a stream the same failure
    /// is `{"error":{"code":"thread_busy"}}`, and the bindings raise it with
    /// that code.
    ///
    /// ```
    /// use chatkit_engine::protocol::ThreadStreamEvent;
    ///
    /// let json = serde_json::to_string(&ThreadStreamEvent::thread_busy_error()).unwrap();
    /// assert!(json.starts_with(r#"{"type":"error","code":"custom","message":"#));
    /// assert!(json.ends_with(r#","allow_retry":true,"reason":"thread_busy"}"#));
    /// ```
    pub fn thread_busy_error() -> Self {
        ThreadStreamEvent::Error {
            code: ERROR_CODE_CUSTOM.to_owned(),
            message: Some(THREAD_BUSY_MESSAGE.to_owned()),
            allow_retry: true,
            reason: Some(ERROR_REASON_THREAD_BUSY.to_owned()),
        }
    }
}

/// Options sent at the start of every respond phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Whether the client shows a stop button.
    pub allow_cancel: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self { allow_cancel: true }
    }
}

/// Severity of a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    /// Informational.
    Info,
    /// A warning.
    Warning,
    /// Something went wrong.
    Danger,
}

/// An incremental change to a streaming item.
// Updates are built once and serialized at once; boxing the larger variants
// would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ThreadItemUpdate {
    /// A new content part of an assistant message.
    #[serde(rename = "assistant_message.content_part.added")]
    ContentPartAdded {
        /// Index of the part.
        content_index: usize,
        /// Its initial content.
        content: AssistantMessageContent,
    },
    /// Text appended to a content part.
    #[serde(rename = "assistant_message.content_part.text_delta")]
    TextDelta {
        /// Index of the part.
        content_index: usize,
        /// The appended text.
        delta: String,
    },
    /// An annotation added to a content part.
    #[serde(rename = "assistant_message.content_part.annotation_added")]
    AnnotationAdded {
        /// Index of the part.
        content_index: usize,
        /// Index of the annotation.
        annotation_index: usize,
        /// The annotation.
        annotation: Annotation,
    },
    /// A content part is complete.
    #[serde(rename = "assistant_message.content_part.done")]
    ContentPartDone {
        /// Index of the part.
        content_index: usize,
        /// The final content.
        content: AssistantMessageContent,
    },
    /// Text appended to a widget component's value.
    #[serde(rename = "widget.streaming_text.value_delta")]
    WidgetTextDelta {
        /// The component id.
        component_id: String,
        /// The appended text.
        delta: String,
        /// Whether streaming of this value is finished.
        done: bool,
    },
    /// The whole widget replaced.
    #[serde(rename = "widget.root.updated")]
    WidgetRootUpdated {
        /// The new widget root.
        widget: Value,
    },
    /// One widget component replaced.
    #[serde(rename = "widget.component.updated")]
    WidgetComponentUpdated {
        /// The component id.
        component_id: String,
        /// The new component.
        component: Value,
    },
    /// A task appended to a workflow.
    #[serde(rename = "workflow.task.added")]
    WorkflowTaskAdded {
        /// Index of the task.
        task_index: usize,
        /// The task.
        task: Task,
    },
    /// A workflow task replaced.
    #[serde(rename = "workflow.task.updated")]
    WorkflowTaskUpdated {
        /// Index of the task.
        task_index: usize,
        /// The full task.
        task: Task,
    },
    /// Progress of a generated image.
    #[serde(rename = "generated_image.updated")]
    GeneratedImageUpdated {
        /// The image so far.
        image: GeneratedImage,
        /// Progress from 0 to 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<f64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_reason_is_the_core_error_code_the_bindings_raise() {
        let busy = crate::Error::ThreadBusy("thr_1".into());
        assert_eq!(busy.code(), ERROR_REASON_THREAD_BUSY);
        let ThreadStreamEvent::Error {
            code,
            message,
            allow_retry,
            reason,
        } = ThreadStreamEvent::thread_busy_error()
        else {
            panic!("an error event")
        };
        assert_eq!(code, ERROR_CODE_CUSTOM);
        assert_eq!(message.as_deref(), Some(THREAD_BUSY_MESSAGE));
        assert!(allow_retry);
        assert_eq!(reason.as_deref(), Some("thread_busy"));
    }

    #[test]
    fn other_error_events_carry_no_reason_and_parse_without_one() {
        let json = serde_json::to_string(&ThreadStreamEvent::custom_error("x", false)).unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","code":"custom","message":"x","allow_retry":false}"#
        );
        let parsed: ThreadStreamEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, ThreadStreamEvent::custom_error("x", false));
        let busy = serde_json::to_string(&ThreadStreamEvent::thread_busy_error()).unwrap();
        let parsed: ThreadStreamEvent = serde_json::from_str(&busy).unwrap();
        assert_eq!(parsed, ThreadStreamEvent::thread_busy_error());
    }
}
