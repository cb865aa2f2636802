//! The ChatKit wire format: serde types only, no I/O.
//!
//! Everything here serializes exactly as `openai-chatkit` 1.6.5 does: compact
//! JSON, the Python SDK's key order, null model fields omitted, nulls and key
//! order kept inside free-form JSON. Use [`json::to_vec`] (not plain
//! `serde_json::to_vec`) so floats are written like Python writes them, and
//! [`sse::frame`] for one SSE chunk per event.
//!
//! ```
//! use chatkit_engine::protocol::{sse, ThreadStreamEvent, StreamOptions};
//! let event = ThreadStreamEvent::StreamOptions { stream_options: StreamOptions::default() };
//! let frame = sse::frame(&event).unwrap();
//! assert_eq!(&frame[..], &b"data: {\"type\":\"stream_options\",\"stream_options\":{\"allow_cancel\":true}}\n\n"[..]);
//! ```

mod annotation;
mod attachment;
mod event;
pub mod ids;
mod item;
pub mod json;
mod request;
pub mod sse;
mod thread;
mod time;
pub mod widget;
mod workflow;

pub use annotation::{Annotation, AnnotationTag, Source, SourceKind};
pub use attachment::{Attachment, AttachmentKind, UploadDescriptor, UploadMethod};
pub use event::{
    ERROR_CODE_CUSTOM, ERROR_CODE_STREAM, ERROR_REASON_THREAD_BUSY, NoticeLevel, StreamOptions,
    THREAD_BUSY_MESSAGE, ThreadItemUpdate, ThreadStreamEvent,
};
pub use ids::{IdKind, new_id};
pub use item::{
    AssistantMessage, AssistantMessageContent, ChoiceOption, ClientToolCall, ClientToolCallStatus,
    GeneratedImage, GeneratedImageItem, HiddenContext, InferenceOptions, ItemKind, OutputTextTag,
    SdkHiddenContext, StructuredInput, StructuredInputAnswer, StructuredInputItem,
    StructuredInputKind, StructuredInputStatus, TaskItem, ThreadItem, ToolChoice, UserMessage,
    UserMessageContent, WidgetItem, WorkflowItem,
};
pub use request::{
    Action, AttachmentsCreateParams, AttachmentsDeleteParams, CustomActionParams, FeedbackKind,
    InputTranscribeParams, ItemsFeedbackParams, ItemsListParams, JsonRequest, ListParams,
    REQUEST_TYPES, Request, StreamingRequest, StructuredInputSubmission, ThreadItemParams,
    ThreadParams, ThreadsAddClientToolOutputParams, ThreadsAddStructuredInputParams,
    ThreadsAddUserMessageParams, ThreadsCreateParams, ThreadsUpdateParams, UserMessageInput,
};
pub use thread::{Order, Page, Thread, ThreadMetadata, ThreadStatus};
pub use time::Timestamp;
pub use workflow::{StatusIndicator, Task, TaskKind, Workflow, WorkflowKind, WorkflowSummary};
