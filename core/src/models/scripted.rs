//! `ScriptedModel`: a deterministic offline model driven by rules a host
//! gives it.
//!
//! It is **not** a language model. A [`Script`] looks at the conversation
//! (the last user message, the tools offered, the calls made since and their
//! outputs) and returns a [`Reply`]: text, or one tool call. The model streams
//! that text word by word, numbers its calls, and estimates usage (about four
//! characters a token), so a whole app runs with no network and no API key.
//! Whoever uses it should say so where users can see it.
//!
//! | the script replies | the model streams |
//! | --- | --- |
//! | `Reply::Text(t)` | one `TextDelta` per word of `t`, then `Completed` with `finish_reason: stop` |
//! | `Reply::Call { name, arguments }` | `Completed` with one tool call `call_<n>` (n counts the tool outputs so far), `finish_reason: tool_calls` |
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::models::scripted::{Conversation, Reply, Script, ScriptedModel};
//! use chatkit_engine::models::{ChatMessage, Model, ModelEvent, ModelRequest};
//! use futures::StreamExt;
//!
//! struct Shout;
//! impl Script for Shout {
//!     fn reply(&self, conversation: &Conversation<'_>) -> Reply {
//!         Reply::Text(conversation.last_user_text().to_uppercase())
//!     }
//! }
//!
//! let model = ScriptedModel::new(Shout);
//! let request = ModelRequest {
//!     messages: vec![ChatMessage::User { content: "hello there".into() }],
//!     ..ModelRequest::default()
//! };
//! let events: Vec<_> = model.stream(request).await?.collect().await;
//! assert!(matches!(&events[0], Ok(ModelEvent::TextDelta(word)) if word == "HELLO "));
//! assert!(matches!(events.last(), Some(Ok(ModelEvent::Completed(r))) if r.text == "HELLO THERE"));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use super::{
    ChatMessage, FinishReason, Model, ModelEvent, ModelRequest, ModelResponse, ModelStream,
    ToolCall, Usage,
};
use crate::error::Result;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// The name a scripted model reports unless given another.
pub const SCRIPTED_MODEL_NAME: &str = "scripted-offline";

/// The rules of a [`ScriptedModel`]: what to answer in a conversation.
pub trait Script: Send + Sync + 'static {
    /// The reply to the conversation so far.
    fn reply(&self, conversation: &Conversation<'_>) -> Reply;
}

/// What a [`Script`] answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A final text answer.
    Text(String),
    /// One tool call.
    Call {
        /// The tool name.
        name: String,
        /// The arguments object.
        arguments: Value,
    },
}

impl Reply {
    /// A call of `name` with `arguments`.
    pub fn call(name: impl Into<String>, arguments: Value) -> Self {
        Reply::Call {
            name: name.into(),
            arguments,
        }
    }
}

/// A model request, seen the way a script reads it.
#[derive(Clone, Copy, Debug)]
pub struct Conversation<'a> {
    request: &'a ModelRequest,
    /// Index of the last user message, if any.
    last_user: Option<usize>,
}

impl<'a> Conversation<'a> {
    /// A view of `request`.
    pub fn new(request: &'a ModelRequest) -> Self {
        let last_user = request
            .messages
            .iter()
            .rposition(|m| matches!(m, ChatMessage::User { .. }));
        Self { request, last_user }
    }

    /// The whole request.
    pub fn request(&self) -> &'a ModelRequest {
        self.request
    }

    /// The system message, if any.
    pub fn system(&self) -> Option<&'a str> {
        self.request.messages.iter().find_map(|m| match m {
            ChatMessage::System { content } => Some(content.as_str()),
            _ => None,
        })
    }

    /// The text of the last user message (empty when there is none).
    pub fn last_user_text(&self) -> &'a str {
        match self.last_user.and_then(|at| self.request.messages.get(at)) {
            Some(ChatMessage::User { content }) => content,
            _ => "",
        }
    }

    /// Whether the model may call a tool of this name.
    pub fn offers_tool(&self, name: &str) -> bool {
        self.request.tools.iter().any(|tool| tool.name == name)
    }

    /// The tool calls made since the last user message, in order, each with
    /// its output once the tool answered.
    pub fn calls_since_user(&self) -> Vec<(&'a ToolCall, Option<&'a str>)> {
        let since = self
            .request
            .messages
            .get(self.last_user.map_or(0, |at| at + 1)..)
            .unwrap_or_default();
        since
            .iter()
            .filter_map(|m| match m {
                ChatMessage::Assistant { tool_calls, .. } => Some(tool_calls.iter()),
                _ => None,
            })
            .flatten()
            .map(|call| {
                let output = since.iter().find_map(|m| match m {
                    ChatMessage::Tool {
                        tool_call_id,
                        content,
                    } if tool_call_id == &call.id => Some(content.as_str()),
                    _ => None,
                });
                (call, output)
            })
            .collect()
    }
}

/// The offline model. See the module docs.
#[derive(Clone)]
pub struct ScriptedModel {
    script: Arc<dyn Script>,
    name: String,
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ScriptedModel {
    /// A model that follows `script`, named [`SCRIPTED_MODEL_NAME`].
    pub fn new(script: impl Script) -> Self {
        Self {
            script: Arc::new(script),
            name: SCRIPTED_MODEL_NAME.to_owned(),
        }
    }

    /// The same model under another name (for logs and banners).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The response to `request`, without streaming.
    pub fn respond(&self, request: &ModelRequest) -> ModelResponse {
        let usage = Some(estimate_usage(request));
        match self.script.reply(&Conversation::new(request)) {
            Reply::Text(text) => ModelResponse {
                text,
                reasoning: None,
                tool_calls: Vec::new(),
                finish_reason: FinishReason::Stop,
                usage,
            },
            Reply::Call { name, arguments } => {
                let outputs = request
                    .messages
                    .iter()
                    .filter(|m| matches!(m, ChatMessage::Tool { .. }))
                    .count();
                ModelResponse {
                    text: String::new(),
                    reasoning: None,
                    tool_calls: vec![ToolCall {
                        id: format!("call_{}", outputs + 1),
                        name,
                        arguments: arguments.to_string(),
                    }],
                    finish_reason: FinishReason::ToolCalls,
                    usage,
                }
            }
        }
    }
}

#[async_trait]
impl Model for ScriptedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> &str {
        "scripted"
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream> {
        let response = self.respond(&request);
        let mut events: Vec<Result<ModelEvent>> = response
            .text
            .split_inclusive(' ')
            .map(|word| Ok(ModelEvent::TextDelta(word.to_owned())))
            .collect();
        events.push(Ok(ModelEvent::Completed(response)));
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

/// About four characters a token, as providers count English.
fn estimate_usage(request: &ModelRequest) -> Usage {
    let input_chars: usize = request
        .messages
        .iter()
        .map(|m| match m {
            ChatMessage::System { content }
            | ChatMessage::User { content }
            | ChatMessage::Tool { content, .. } => content.len(),
            ChatMessage::Assistant { content, .. } => content.as_ref().map_or(0, String::len),
        })
        .sum();
    Usage {
        input_tokens: (input_chars / 4) as u64,
        output_tokens: 0,
        cached_tokens: 0,
        reasoning_tokens: 0,
        requests: 1,
        estimated: true,
    }
}
