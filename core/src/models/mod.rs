//! Talking to LLMs: a provider-neutral [`Model`] trait and its
//! implementations.
//!
//! A model receives a [`ModelRequest`] (Chat Completions messages, tool
//! specs, settings) and streams [`ModelEvent`]s: text and reasoning deltas as
//! they arrive, then exactly one [`ModelEvent::Completed`] with the whole
//! response (text, reasoning, tool calls, usage).
//!
//! The contract of [`Model::stream`] (the models here keep it, and the run
//! loop relies on it):
//!
//! - Errors before the first event are returned by `stream()`; later
//!   failures are `Err` items, after which the stream ends.
//! - The stream is pulled: it does its work (reading the provider's reply)
//!   when polled, in the caller's task, without a task or channel of its own,
//!   so nothing is read while the caller is busy elsewhere.
//! - Cancelling is dropping: dropping the stream ends the call (an HTTP
//!   model closes its request).

use crate::config::EngineConfig;
use crate::error::Result;
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// One message of a Chat Completions conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    /// Instructions.
    System {
        /// The instructions.
        content: String,
    },
    /// What the user said.
    User {
        /// The text.
        content: String,
    },
    /// What the assistant said or called.
    Assistant {
        /// The text, `None` for a pure tool-call turn.
        content: Option<String>,
        /// The tool calls of this turn, in call order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// The reasoning text the provider streamed with this turn (echoed
        /// back to providers whose dialect requires it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning: Option<String>,
    },
    /// A tool's output.
    Tool {
        /// The call this answers.
        tool_call_id: String,
        /// The output text.
        content: String,
    },
}

impl ChatMessage {
    /// Bytes of text this message carries (content, tool calls, reasoning).
    fn text_len(&self) -> usize {
        match self {
            ChatMessage::System { content }
            | ChatMessage::User { content }
            | ChatMessage::Tool { content, .. } => content.len(),
            ChatMessage::Assistant {
                content,
                tool_calls,
                reasoning,
            } => {
                content.as_ref().map_or(0, String::len)
                    + reasoning.as_ref().map_or(0, String::len)
                    + tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len())
                        .sum::<usize>()
            }
        }
    }
}

/// A tool call requested by the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id (synthesised when the provider sent none).
    pub id: String,
    /// The tool name.
    pub name: String,
    /// The arguments as JSON text (`{}` when the provider sent none).
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The tool name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: Value,
    /// Whether the schema is strict (OpenAI structured outputs).
    #[serde(default)]
    pub strict: bool,
}

/// How the model may use tools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tools.
    None,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Named(String),
}

/// Sampling and tool settings of a model call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSettings {
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Cap on generated tokens.
    pub max_tokens: Option<u32>,
    /// Tool choice (omitted when `None`).
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tools may be called at once (sent only with tools).
    pub parallel_tool_calls: Option<bool>,
}

/// Everything one model call needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelRequest {
    /// The conversation, system message first.
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call (shared: an agent builds its specs once).
    pub tools: Arc<[ToolSpec]>,
    /// Settings.
    pub settings: ModelSettings,
}

/// Token counts of one model call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from cache.
    pub cached_tokens: u64,
    /// Tokens spent reasoning.
    pub reasoning_tokens: u64,
    /// Model calls counted.
    pub requests: u64,
    /// Whether the counts are estimates (the provider reported none; see
    /// [`Usage::estimate`]).
    #[serde(default)]
    pub estimated: bool,
}

impl Usage {
    /// Adds another call's usage to this total.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.requests += other.requests;
        self.estimated |= other.estimated;
    }

    /// An estimate for a call that reported no usage: about four bytes a
    /// token (what providers count for English), flagged as an estimate.
    pub fn estimate(messages: &[ChatMessage], response: &ModelResponse) -> Usage {
        let input: usize = messages.iter().map(ChatMessage::text_len).sum();
        let output = response.text.len()
            + response.reasoning.as_ref().map_or(0, String::len)
            + response
                .tool_calls
                .iter()
                .map(|c| c.name.len() + c.arguments.len())
                .sum::<usize>();
        Usage {
            input_tokens: input.div_ceil(4) as u64,
            output_tokens: output.div_ceil(4) as u64,
            cached_tokens: 0,
            reasoning_tokens: 0,
            requests: 1,
            estimated: true,
        }
    }
}

/// Why the model stopped, normalised; unknown provider reasons are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end.
    #[default]
    Stop,
    /// Token limit.
    Length,
    /// The model wants tools.
    ToolCalls,
    /// Filtered.
    ContentFilter,
    /// Any other reason the provider sent.
    Other(String),
}

/// The whole response of one model call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelResponse {
    /// The visible text.
    pub text: String,
    /// The reasoning text, if the provider streamed any.
    pub reasoning: Option<String>,
    /// Tool calls in call order. Non-empty means the model wants tools,
    /// whatever `finish_reason` says.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Token usage, when the provider reported it.
    pub usage: Option<Usage>,
}

/// One event of a streaming model call.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    /// A fragment of visible text.
    TextDelta(String),
    /// A fragment of reasoning.
    ReasoningDelta(String),
    /// The response is complete (always the last event).
    Completed(ModelResponse),
}

/// A stream of model events.
pub type ModelStream = BoxStream<'static, Result<ModelEvent>>;

/// An LLM that streams responses.
#[async_trait]
pub trait Model: Send + Sync + 'static {
    /// A name for logs and spans (e.g. the model id).
    fn name(&self) -> &str;

    /// The provider, for metrics labels (`openai`, `deepseek`, `scripted`;
    /// `custom` unless a model says otherwise).
    fn provider(&self) -> &str {
        "custom"
    }

    /// Starts one model call. Errors before the first event are returned
    /// here; later failures arrive as `Err` items of the stream.
    async fn stream(&self, request: ModelRequest) -> Result<ModelStream>;
}

pub mod paced;
pub mod scripted;
pub use paced::Paced;
pub use scripted::ScriptedModel;

/// The tolerant SSE/chunk accumulator behind [`OpenAiCompatible`]. Public
/// only so that `core/benches` can measure it: hidden from the docs and not a
/// stable API.
#[doc(hidden)]
pub mod accumulate;
mod chunk_view;
pub mod dialect;
pub mod openai;
mod request_body;
pub use dialect::{AuthHeader, Dialect, ReasoningEcho};
pub use openai::{OpenAiCompatible, OpenAiCompatibleBuilder, RetryPolicy, Timeouts};

/// The model the configuration names: an OpenAI-compatible provider when an
/// API key is set (`OPENAI_BASE_URL`, `CHAT_MODEL`, the provider's dialect and
/// headers), else `offline()`; paced when `dev_token_delay_ms` is set.
pub fn from_config(
    config: &EngineConfig,
    offline: impl FnOnce() -> Arc<dyn Model>,
) -> Result<Arc<dyn Model>> {
    let model = match provider_model(config)? {
        Some(provider) => provider,
        None => offline(),
    };
    if config.dev_token_delay_ms == 0 {
        return Ok(model);
    }
    Ok(Arc::new(Paced::new(
        model,
        Duration::from_millis(config.dev_token_delay_ms),
    )))
}

/// The OpenAI-compatible provider, when an API key is configured.
fn provider_model(config: &EngineConfig) -> Result<Option<Arc<dyn Model>>> {
    let Some(api_key) = &config.openai_api_key else {
        return Ok(None);
    };
    let base_url = config
        .openai_base_url
        .clone()
        .unwrap_or_else(|| "https://api.openai.com/v1".to_owned());
    let mut builder = OpenAiCompatible::builder(
        config
            .chat_model
            .clone()
            .unwrap_or_else(|| "gpt-4o-mini".to_owned()),
    )
    .base_url(base_url.clone())
    .api_key(api_key.clone())
    .dialect(Dialect::for_base_url(&base_url))
    .http2_prior_knowledge(config.openai_http2_prior_knowledge);
    for (name, value) in &config.model_headers {
        builder = builder.header(name.clone(), value.clone());
    }
    Ok(Some(Arc::new(builder.build()?)))
}
