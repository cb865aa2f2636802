//! Per-provider quirks of the Chat Completions API.
//!
//! Every provider that claims to be "OpenAI-compatible" differs a little: the
//! field its reasoning streams in, whether that reasoning must be sent back on
//! later assistant turns, whether `stream_options.include_usage` is accepted,
//! vendor switches such as MiMo's `thinking`, and how the API key is sent. A
//! [`Dialect`] collects these flags so that [`OpenAiCompatible`] stays one
//! code path.
//!
//! | constructor | reasoning read from | echo on tool-call turns | usage | max tokens field |
//! | --- | --- | --- | --- | --- |
//! | [`Dialect::openai`] | `reasoning_content`, `reasoning` | never | yes | `max_completion_tokens` |
//! | [`Dialect::generic`] | `reasoning_content`, `reasoning` | never | yes | `max_tokens` |
//! | [`Dialect::mimo`] | `reasoning_content` | always (`""` when none) | yes | `max_completion_tokens` |
//! | [`Dialect::deepseek`] | `reasoning_content` | when present | yes | `max_tokens` |
//! | [`Dialect::ollama`] | `reasoning`, `reasoning_content` | never | yes | `max_tokens` |
//! | [`Dialect::vllm`] | `reasoning_content`, `reasoning` | never | yes | `max_tokens` |
//!
//! [`OpenAiCompatible`]: super::OpenAiCompatible

use serde_json::{Map, Value};

/// Whether and how the reasoning of an earlier assistant turn is sent back.
///
/// Only assistant messages that carry tool calls are affected: thinking APIs
/// (MiMo, DeepSeek, Kimi) want the reasoning that led to a tool call when the
/// conversation continues with the tool results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReasoningEcho {
    /// Never send reasoning back (OpenAI and most providers).
    #[default]
    Never,
    /// Send `reasoning_content` on tool-call turns that have reasoning.
    WhenPresent,
    /// Send `reasoning_content` on every tool-call turn, `""` when the turn
    /// had none (MiMo answers HTTP 400 otherwise in thinking mode).
    Always,
}

/// How the API key is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuthHeader {
    /// `Authorization: Bearer <key>` (every provider accepts this).
    #[default]
    Bearer,
    /// The raw key in the named header, e.g. `api-key: <key>` (MiMo, Azure).
    Header(String),
}

/// The quirks of one Chat Completions provider.
///
/// Start from a constructor and adjust with the `with_*` methods:
///
/// ```
/// use chatkit_engine::models::Dialect;
///
/// let mimo = Dialect::mimo().with_thinking(true);
/// assert_eq!(mimo.name, "mimo");
/// assert_eq!(Dialect::for_base_url("https://api.xiaomimimo.com/v1").name, "mimo");
/// assert_eq!(Dialect::for_base_url("http://localhost:11434/v1").name, "ollama");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Dialect {
    /// A short name for logs (`openai`, `mimo`, `deepseek`, ...).
    pub name: String,
    /// Delta fields that carry reasoning text, in order of preference. The
    /// first non-empty one of a chunk is used (vLLM sends both `reasoning`
    /// and `reasoning_content` with the same text).
    pub reasoning_fields: Vec<String>,
    /// Whether reasoning is sent back on assistant tool-call turns.
    pub echo_reasoning: ReasoningEcho,
    /// The message field reasoning is echoed in (`reasoning_content`).
    pub echo_field: String,
    /// Whether to ask for a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// MiMo's `thinking: {"type": "enabled" | "disabled"}` switch; `None`
    /// leaves the provider's default (off for `mimo-v2-flash`).
    pub thinking: Option<bool>,
    /// How the API key is sent.
    pub auth_header: AuthHeader,
    /// The request field that caps generated tokens (`max_tokens` or
    /// `max_completion_tokens`).
    pub max_tokens_field: String,
    /// Extra top-level request fields merged into every request body last
    /// (they win over the fields the client sets).
    pub extra_body: Map<String, Value>,
}

impl Default for Dialect {
    fn default() -> Self {
        Self::generic()
    }
}

impl Dialect {
    fn base(name: &str, reasoning_fields: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            reasoning_fields: reasoning_fields.iter().map(|f| (*f).to_owned()).collect(),
            echo_reasoning: ReasoningEcho::Never,
            echo_field: "reasoning_content".to_owned(),
            include_usage: true,
            thinking: None,
            auth_header: AuthHeader::Bearer,
            max_tokens_field: "max_tokens".to_owned(),
            extra_body: Map::new(),
        }
    }

    /// The official OpenAI endpoint.
    pub fn openai() -> Self {
        let mut dialect = Self::base("openai", &["reasoning_content", "reasoning"]);
        dialect.max_tokens_field = "max_completion_tokens".to_owned();
        dialect
    }

    /// Any other OpenAI-compatible server (LM Studio, OpenRouter, llama.cpp,
    /// ...): reads both common reasoning fields, sends `max_tokens`.
    pub fn generic() -> Self {
        Self::base("generic", &["reasoning_content", "reasoning"])
    }

    /// Xiaomi MiMo (`https://api.xiaomimimo.com/v1`, e.g. `mimo-v2-flash`):
    /// reasoning in `reasoning_content`, echoed on every tool-call turn.
    pub fn mimo() -> Self {
        let mut dialect = Self::base("mimo", &["reasoning_content"]);
        dialect.echo_reasoning = ReasoningEcho::Always;
        dialect.max_tokens_field = "max_completion_tokens".to_owned();
        dialect
    }

    /// DeepSeek (`https://api.deepseek.com`): reasoning in
    /// `reasoning_content`, echoed on tool-call turns that had some.
    pub fn deepseek() -> Self {
        let mut dialect = Self::base("deepseek", &["reasoning_content"]);
        dialect.echo_reasoning = ReasoningEcho::WhenPresent;
        dialect
    }

    /// Ollama's OpenAI-compatible endpoint (`http://localhost:11434/v1`).
    pub fn ollama() -> Self {
        Self::base("ollama", &["reasoning", "reasoning_content"])
    }

    /// vLLM's OpenAI-compatible server.
    pub fn vllm() -> Self {
        Self::base("vllm", &["reasoning_content", "reasoning"])
    }

    /// Guesses the dialect from a base URL's host: `api.openai.com` →
    /// [`openai`](Self::openai), `*.xiaomimimo.com` → [`mimo`](Self::mimo),
    /// `*.deepseek.com` → [`deepseek`](Self::deepseek), port 11434 or a host
    /// named `ollama` → [`ollama`](Self::ollama), anything else →
    /// [`generic`](Self::generic).
    pub fn for_base_url(url: &str) -> Self {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let authority = authority.to_ascii_lowercase();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                (host, Some(port))
            }
            _ => (authority.as_str(), None),
        };
        let host = host.trim_end_matches('.');
        let is = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if host == "api.openai.com" {
            Self::openai()
        } else if is("xiaomimimo.com") {
            Self::mimo()
        } else if is("deepseek.com") {
            Self::deepseek()
        } else if port == Some("11434") || host == "ollama" || host.starts_with("ollama.") {
            Self::ollama()
        } else {
            Self::generic()
        }
    }

    /// Sets MiMo's `thinking` switch.
    pub fn with_thinking(mut self, enabled: bool) -> Self {
        self.thinking = Some(enabled);
        self
    }

    /// Sets whether the usage chunk is requested.
    pub fn with_include_usage(mut self, include: bool) -> Self {
        self.include_usage = include;
        self
    }

    /// Sets how reasoning is echoed on tool-call turns.
    pub fn with_echo_reasoning(mut self, echo: ReasoningEcho) -> Self {
        self.echo_reasoning = echo;
        self
    }

    /// Sets the delta fields reasoning is read from.
    pub fn with_reasoning_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.reasoning_fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how the API key is sent.
    pub fn with_auth_header(mut self, auth: AuthHeader) -> Self {
        self.auth_header = auth;
        self
    }

    /// Sets the field that caps generated tokens.
    pub fn with_max_tokens_field(mut self, field: impl Into<String>) -> Self {
        self.max_tokens_field = field.into();
        self
    }

    /// Adds a top-level request field sent with every request.
    pub fn with_extra_body(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra_body.insert(key.into(), value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_from_host() {
        let name = |url: &str| Dialect::for_base_url(url).name;
        assert_eq!(name("https://api.openai.com/v1"), "openai");
        assert_eq!(name("https://api.xiaomimimo.com/v1"), "mimo");
        assert_eq!(name("https://token-plan-cn.xiaomimimo.com/v1"), "mimo");
        assert_eq!(name("https://api.deepseek.com"), "deepseek");
        assert_eq!(name("http://localhost:11434/v1"), "ollama");
        assert_eq!(name("http://127.0.0.1:11434"), "ollama");
        assert_eq!(name("http://ollama:8080/v1"), "ollama");
        assert_eq!(name("http://localhost:8000/v1"), "generic");
        assert_eq!(name("https://openrouter.ai/api/v1"), "generic");
        assert_eq!(name("https://evil.com/api.openai.com"), "generic");
        assert_eq!(name("https://notxiaomimimo.com"), "generic");
        assert_eq!(name(""), "generic");
    }

    #[test]
    fn presets() {
        assert_eq!(Dialect::mimo().echo_reasoning, ReasoningEcho::Always);
        assert_eq!(
            Dialect::deepseek().echo_reasoning,
            ReasoningEcho::WhenPresent
        );
        assert_eq!(Dialect::openai().echo_reasoning, ReasoningEcho::Never);
        assert_eq!(Dialect::ollama().reasoning_fields[0], "reasoning");
        assert_eq!(Dialect::mimo().with_thinking(false).thinking, Some(false));
        assert_eq!(Dialect::default(), Dialect::generic());
    }
}
