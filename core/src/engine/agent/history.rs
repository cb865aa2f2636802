//! Thread history as model input (Chat Completions messages).
//!
//! Adapted from the Python SDK's `ThreadItemConverter`: user and assistant
//! messages map directly (an `input_tag` is `@text` followed by a line
//! `[@text is id <id>]`); completed client tool calls become a call and its
//! output; tool activity shown as workflow tasks and hidden context become
//! short user-role notes; everything else is left out.

use crate::models::{ChatMessage, ToolCall};
use crate::protocol::{
    ClientToolCallStatus, ItemKind, StructuredInputItem, Task, TaskKind, ThreadItem,
    UserMessageContent, WorkflowKind,
};

/// Converts items (oldest first) into messages.
pub fn to_messages(items: &[ThreadItem]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        match &item.kind {
            ItemKind::UserMessage(message) => {
                let mut text = message.text();
                if let Some(quoted) = message.quoted_text.as_deref().filter(|q| !q.is_empty()) {
                    text = format!("{text}\n\n(The user is replying to: \"{quoted}\")");
                }
                // An @-mention reaches the model by id, so tools get the id
                // rather than a title to search for.
                for part in &message.content {
                    if let UserMessageContent::InputTag {
                        id, text: shown, ..
                    } = part
                    {
                        text.push_str(&format!("\n[@{shown} is id {id}]"));
                    }
                }
                for attachment in &message.attachments {
                    text.push_str(&format!(
                        "\n[attached file: {} ({})]",
                        attachment.name, attachment.mime_type
                    ));
                }
                messages.push(ChatMessage::User { content: text });
            }
            ItemKind::AssistantMessage(message) => {
                let text = message.text();
                if !text.is_empty() {
                    messages.push(ChatMessage::Assistant {
                        content: Some(text),
                        tool_calls: Vec::new(),
                        reasoning: None,
                    });
                }
            }
            ItemKind::ClientToolCall(call) if call.status == ClientToolCallStatus::Completed => {
                messages.push(ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: call.call_id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.to_string(),
                    }],
                    reasoning: None,
                });
                let output = call
                    .output
                    .as_ref()
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "null".into());
                messages.push(ChatMessage::Tool {
                    tool_call_id: call.call_id.clone(),
                    content: output,
                });
            }
            ItemKind::Workflow(workflow) if workflow.workflow.kind == WorkflowKind::Custom => {
                let notes: Vec<String> = workflow
                    .workflow
                    .tasks
                    .iter()
                    .filter_map(task_note)
                    .collect();
                if !notes.is_empty() {
                    messages.push(ChatMessage::User {
                        content: format!(
                            "These tasks were shown to the user earlier in this conversation:\n{}",
                            notes.join("\n")
                        ),
                    });
                }
            }
            ItemKind::Task(task) => {
                if let Some(note) = task_note(&task.task) {
                    messages.push(ChatMessage::User {
                        content: format!("A task was shown to the user:\n{note}"),
                    });
                }
            }
            ItemKind::StructuredInput(form) => messages.push(ChatMessage::User {
                content: structured_note(form),
            }),
            ItemKind::HiddenContextItem(hidden) => {
                let text = match &hidden.content {
                    Some(serde_json::Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                    None => continue,
                };
                messages.push(hidden_note(&text));
            }
            ItemKind::SdkHiddenContext(hidden) => messages.push(hidden_note(&hidden.content)),
            _ => {}
        }
    }
    messages
}

fn task_note(task: &Task) -> Option<String> {
    match &task.kind {
        TaskKind::Custom { title, content, .. } => match (title, content) {
            (Some(title), Some(content)) => Some(format!("<Task>\n{title}: {content}\n</Task>")),
            (Some(text), None) | (None, Some(text)) => Some(format!("<Task>\n{text}\n</Task>")),
            (None, None) => None,
        },
        _ => None,
    }
}

fn structured_note(form: &StructuredInputItem) -> String {
    let lines: Vec<String> = form
        .inputs
        .iter()
        .map(|input| {
            let answer = match &input.answer {
                Some(answer) if answer.skipped => "skipped".to_owned(),
                Some(answer) => answer.values.join(", "),
                None => "unanswered".to_owned(),
            };
            format!("- {}: {answer}", input.question)
        })
        .collect();
    format!(
        "<StructuredInput status=\"{:?}\">\n{}\n</StructuredInput>",
        form.status,
        lines.join("\n")
    )
}

fn hidden_note(text: &str) -> ChatMessage {
    ChatMessage::User {
        content: format!(
            "Hidden context for you, not shown to the user:\n<HiddenContext>\n{text}\n</HiddenContext>"
        ),
    }
}
