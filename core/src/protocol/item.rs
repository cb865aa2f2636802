//! Thread items: every variant of `ThreadItem` and the content they carry.

use super::{Annotation, Attachment, Task, Timestamp, Workflow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of a thread's transcript.
///
/// Serialized with the common prefix `id`, `thread_id`, `created_at`, then
/// `type` and the variant's fields, in the Python SDK's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadItem {
    /// The item id.
    pub id: String,
    /// The thread it belongs to.
    pub thread_id: String,
    /// When it was created (or finished, for streamed items).
    pub created_at: Timestamp,
    /// The variant.
    #[serde(flatten)]
    pub kind: ItemKind,
}

impl ThreadItem {
    /// The item's `type` string, e.g. `"user_message"`.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// Whether the item is server-only context that is never sent to the client.
    pub fn is_hidden(&self) -> bool {
        matches!(
            self.kind,
            ItemKind::HiddenContextItem(_) | ItemKind::SdkHiddenContext(_)
        )
    }
}

/// The variants of [`ThreadItem`], tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemKind {
    /// What the user sent.
    UserMessage(UserMessage),
    /// What the assistant answered.
    AssistantMessage(AssistantMessage),
    /// A tool the client must run.
    ClientToolCall(ClientToolCall),
    /// A rendered widget.
    Widget(WidgetItem),
    /// An image made by the model.
    GeneratedImage(GeneratedImageItem),
    /// A question form for the user.
    StructuredInput(StructuredInputItem),
    /// A group of tasks (tool activity, reasoning).
    Workflow(WorkflowItem),
    /// A standalone task row.
    Task(TaskItem),
    /// Context for the model that the client never sees.
    HiddenContextItem(HiddenContext),
    /// Engine-written context (the cancellation marker); never sent.
    SdkHiddenContext(SdkHiddenContext),
    /// Marks the end of an assistant turn.
    EndOfTurn,
}

impl ItemKind {
    /// The `type` string of this variant.
    pub fn type_name(&self) -> &'static str {
        match self {
            ItemKind::UserMessage(_) => "user_message",
            ItemKind::AssistantMessage(_) => "assistant_message",
            ItemKind::ClientToolCall(_) => "client_tool_call",
            ItemKind::Widget(_) => "widget",
            ItemKind::GeneratedImage(_) => "generated_image",
            ItemKind::StructuredInput(_) => "structured_input",
            ItemKind::Workflow(_) => "workflow",
            ItemKind::Task(_) => "task",
            ItemKind::HiddenContextItem(_) => "hidden_context_item",
            ItemKind::SdkHiddenContext(_) => "sdk_hidden_context",
            ItemKind::EndOfTurn => "end_of_turn",
        }
    }
}

/// A user message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    /// Text and tags, in order.
    pub content: Vec<UserMessageContent>,
    /// Full attachment objects (with `thread_id` set).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The text the user replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_text: Option<String>,
    /// The composer's selected tool and model.
    #[serde(default)]
    pub inference_options: InferenceOptions,
}

impl UserMessage {
    /// All text of the message, tags rendered as `@<text>`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            match part {
                UserMessageContent::InputText { text } => out.push_str(text),
                UserMessageContent::InputTag { text, .. } => {
                    out.push('@');
                    out.push_str(text);
                }
            }
        }
        out
    }
}

/// One part of a user message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserMessageContent {
    /// Plain text.
    InputText {
        /// The text.
        text: String,
    },
    /// An @-mention of an entity.
    InputTag {
        /// Entity id.
        id: String,
        /// Display text.
        text: String,
        /// Free-form entity data.
        #[serde(default)]
        data: Map<String, Value>,
        /// Group label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// Whether the tag is interactive.
        #[serde(default)]
        interactive: bool,
    },
}

/// The composer's inference choices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferenceOptions {
    /// The tool the user picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The model the user picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A tool picked in the composer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolChoice {
    /// The tool id.
    pub id: String,
}

/// An assistant message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// The text parts.
    pub content: Vec<AssistantMessageContent>,
}

impl AssistantMessage {
    /// All text parts concatenated.
    pub fn text(&self) -> String {
        self.content.iter().map(|part| part.text.as_str()).collect()
    }
}

/// One text part of an assistant message (`annotations`, `text`, `type`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessageContent {
    /// Citations.
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    /// The text.
    pub text: String,
    /// Always `"output_text"`.
    #[serde(rename = "type", default)]
    pub kind: OutputTextTag,
}

impl AssistantMessageContent {
    /// A text part without annotations.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            annotations: Vec::new(),
            text: text.into(),
            kind: OutputTextTag::OutputText,
        }
    }
}

/// The constant `type` of [`AssistantMessageContent`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputTextTag {
    /// `"output_text"`.
    #[default]
    #[serde(rename = "output_text")]
    OutputText,
}

/// A tool call the client runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientToolCall {
    /// `pending` until the client posts the output.
    #[serde(default)]
    pub status: ClientToolCallStatus,
    /// The model's call id.
    pub call_id: String,
    /// The tool name.
    pub name: String,
    /// The arguments object.
    #[serde(default)]
    pub arguments: Value,
    /// What the client returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// State of a [`ClientToolCall`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientToolCallStatus {
    /// Waiting for the client.
    #[default]
    Pending,
    /// The client posted the output.
    Completed,
}

/// A widget item; the widget tree is kept as opaque JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WidgetItem {
    /// The widget root (`Card`, `ListView`, `Basic`, ...), kept byte for byte.
    pub widget: Value,
    /// Text copied by the copy button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_text: Option<String>,
}

/// An image generated by the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratedImageItem {
    /// The image, once available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<GeneratedImage>,
}

/// A generated image's id and URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedImage {
    /// Image id.
    pub id: String,
    /// Image URL (may be a data: URL).
    pub url: String,
}

/// A form of questions for the user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StructuredInputItem {
    /// Pending until answered or skipped.
    #[serde(default)]
    pub status: StructuredInputStatus,
    /// The questions.
    pub inputs: Vec<StructuredInput>,
}

/// State of a [`StructuredInputItem`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredInputStatus {
    /// Waiting for the user.
    #[default]
    Pending,
    /// Answered.
    Answered,
    /// Skipped.
    Skipped,
}

/// One question of a structured input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StructuredInput {
    /// Question id.
    pub id: String,
    /// The question.
    pub question: String,
    /// The answer, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StructuredInputAnswer>,
    /// Multiple choice or free-form.
    #[serde(flatten)]
    pub kind: StructuredInputKind,
}

/// An answer to a [`StructuredInput`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructuredInputAnswer {
    /// The chosen or typed values.
    #[serde(default)]
    pub values: Vec<String>,
    /// Whether the question was skipped.
    #[serde(default)]
    pub skipped: bool,
}

/// The kind of a [`StructuredInput`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StructuredInputKind {
    /// Pick from options.
    MultipleChoice {
        /// The options.
        options: Vec<ChoiceOption>,
        /// Whether several may be picked.
        #[serde(default)]
        multiple: bool,
    },
    /// Free text.
    Freeform {
        /// Help text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// One option of a multiple-choice question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    /// The option's value.
    pub value: String,
}

/// A workflow item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowItem {
    /// The workflow.
    pub workflow: Workflow,
}

/// A standalone task item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskItem {
    /// The task.
    pub task: Task,
}

/// Hidden context for the model (any JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HiddenContext {
    /// The content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

/// Engine-written hidden context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdkHiddenContext {
    /// The text fed to the model.
    pub content: String,
}
