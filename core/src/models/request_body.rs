//! The Chat Completions request body, serialised straight from the
//! [`ModelRequest`].
//!
//! A model call sends the whole recent history and every tool schema; going
//! through a `serde_json::Value` tree would deep-copy all of it on each call.
//! [`RequestBody`] borrows instead, and writes the same JSON a `Value` built
//! key by key would: the same keys in the same order, with a dialect's
//! `extra_body` replacing a standard key in place and adding the others at
//! the end.

use super::{ChatMessage, ModelRequest, ToolCall, ToolChoice, ToolSpec};
use super::{Dialect, ReasoningEcho};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// The body for `request` on `model`, in `dialect`.
pub(crate) struct RequestBody<'a> {
    pub(crate) model: &'a str,
    pub(crate) dialect: &'a Dialect,
    pub(crate) request: &'a ModelRequest,
}

impl Serialize for RequestBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.request;
        let settings = &request.settings;
        let dialect = self.dialect;
        let mut body = Body {
            map: serializer.serialize_map(None)?,
            extra: &dialect.extra_body,
            written: Vec::new(),
        };
        body.entry("model", self.model)?;
        body.entry(
            "messages",
            &Seq(&request.messages, |message| Message { message, dialect }),
        )?;
        if !request.tools.is_empty() {
            body.entry("tools", &Seq(&request.tools, Tool))?;
        }
        if let Some(choice) = &settings.tool_choice {
            body.entry("tool_choice", &Choice(choice))?;
        }
        if let Some(parallel) = settings.parallel_tool_calls
            && !request.tools.is_empty()
        {
            body.entry("parallel_tool_calls", &parallel)?;
        }
        if let Some(temperature) = settings.temperature {
            body.entry("temperature", &decimal(temperature))?;
        }
        if let Some(top_p) = settings.top_p {
            body.entry("top_p", &decimal(top_p))?;
        }
        if let Some(max_tokens) = settings.max_tokens {
            body.entry(&dialect.max_tokens_field, &max_tokens)?;
        }
        if let Some(thinking) = dialect.thinking {
            let kind = if thinking { "enabled" } else { "disabled" };
            body.entry("thinking", &Pairs(&[("type", kind)]))?;
        }
        body.entry("stream", &true)?;
        if dialect.include_usage {
            body.entry("stream_options", &Pairs(&[("include_usage", true)]))?;
        }
        body.finish()
    }
}

/// The top-level object: writes each standard key once, or the dialect's
/// value for it, then the dialect's remaining keys.
struct Body<'a, M> {
    map: M,
    extra: &'a Map<String, Value>,
    written: Vec<&'a str>,
}

impl<'a, M: SerializeMap> Body<'a, M> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: &'a str, value: &T) -> Result<(), M::Error> {
        self.written.push(key);
        match self.extra.get(key) {
            Some(replacement) => self.map.serialize_entry(key, replacement),
            None => self.map.serialize_entry(key, value),
        }
    }

    fn finish(mut self) -> Result<M::Ok, M::Error> {
        for (key, value) in self.extra {
            if !self.written.contains(&key.as_str()) {
                self.map.serialize_entry(key, value)?;
            }
        }
        self.map.end()
    }
}

/// `f32` settings as the decimal they read as (`0.2`, not `0.20000000298`);
/// a value that is not finite becomes `null`.
fn decimal(value: f32) -> Option<f64> {
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
}

/// A JSON array of `items`, each written through `wrap`.
struct Seq<'a, T, F>(&'a [T], F);

impl<'a, T, W: Serialize, F: Fn(&'a T) -> W> Serialize for Seq<'a, T, F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(&self.1))
    }
}

/// A small object of fixed keys.
struct Pairs<'a, V>(&'a [(&'a str, V)]);

impl<V: Serialize> Serialize for Pairs<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

struct Message<'a> {
    message: &'a ChatMessage,
    dialect: &'a Dialect,
}

impl Serialize for Message<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.message {
            ChatMessage::System { content } => {
                map.serialize_entry("role", "system")?;
                map.serialize_entry("content", content)?;
            }
            ChatMessage::User { content } => {
                map.serialize_entry("role", "user")?;
                map.serialize_entry("content", content)?;
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => {
                map.serialize_entry("role", "tool")?;
                map.serialize_entry("tool_call_id", tool_call_id)?;
                map.serialize_entry("content", content)?;
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
                reasoning,
            } => {
                map.serialize_entry("role", "assistant")?;
                // Providers reject an empty string next to tool calls but
                // need one on a turn with neither text nor calls.
                let content = match content {
                    Some(text) if !text.is_empty() || tool_calls.is_empty() => Some(text.as_str()),
                    Some(_) => None,
                    None if tool_calls.is_empty() => Some(""),
                    None => None,
                };
                map.serialize_entry("content", &content)?;
                if !tool_calls.is_empty() {
                    let reasoning = reasoning.as_deref().unwrap_or_default();
                    let echo = match self.dialect.echo_reasoning {
                        ReasoningEcho::Never => false,
                        ReasoningEcho::WhenPresent => !reasoning.is_empty(),
                        ReasoningEcho::Always => true,
                    };
                    if echo {
                        map.serialize_entry(&self.dialect.echo_field, reasoning)?;
                    }
                    map.serialize_entry("tool_calls", &Seq(tool_calls, Call))?;
                }
            }
        }
        map.end()
    }
}

struct Call<'a>(&'a ToolCall);

impl Serialize for Call<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.0.id)?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry(
            "function",
            &Pairs(&[("name", &self.0.name), ("arguments", &self.0.arguments)]),
        )?;
        map.end()
    }
}

struct Tool<'a>(&'a ToolSpec);

impl Serialize for Tool<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry("function", &Function(self.0))?;
        map.end()
    }
}

struct Function<'a>(&'a ToolSpec);

impl Serialize for Function<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tool = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &tool.name)?;
        map.serialize_entry("description", &tool.description)?;
        map.serialize_entry("parameters", &Schema(&tool.parameters))?;
        if tool.strict {
            map.serialize_entry("strict", &true)?;
        }
        map.end()
    }
}

/// A parameters schema as providers accept it: an object schema always has
/// `properties` (some reject one without), anything else becomes the empty
/// object schema.
struct Schema<'a>(&'a Value);

impl Serialize for Schema<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let empty = Map::new();
        let (schema, is_object) = match self.0 {
            Value::Object(schema) => (
                schema,
                schema.get("type").and_then(Value::as_str) == Some("object"),
            ),
            _ => (&empty, true),
        };
        let mut map = serializer.serialize_map(None)?;
        if !matches!(self.0, Value::Object(_)) {
            map.serialize_entry("type", "object")?;
        }
        for (key, value) in schema {
            map.serialize_entry(key, value)?;
        }
        if is_object && !schema.contains_key("properties") {
            map.serialize_entry("properties", &empty)?;
        }
        map.end()
    }
}

struct Choice<'a>(&'a ToolChoice);

impl Serialize for Choice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Named(name) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "function")?;
                map.serialize_entry("function", &Pairs(&[("name", name)]))?;
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::models::ModelSettings;
    use serde_json::json;
    use std::sync::Arc;

    fn request() -> ModelRequest {
        ModelRequest {
            messages: vec![
                ChatMessage::System {
                    content: "be brief".into(),
                },
                ChatMessage::User {
                    content: "list \"my\" tasks".into(),
                },
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "list_tasks".into(),
                        arguments: "{}".into(),
                    }],
                    reasoning: Some("look them up".into()),
                },
                ChatMessage::Tool {
                    tool_call_id: "call_1".into(),
                    content: "[]".into(),
                },
            ],
            tools: vec![
                ToolSpec {
                    name: "list_tasks".into(),
                    description: "Lists tasks".into(),
                    parameters: json!({"type": "object", "required": []}),
                    strict: false,
                },
                ToolSpec {
                    name: "odd".into(),
                    description: "No schema".into(),
                    parameters: Value::Null,
                    strict: true,
                },
            ]
            .into(),
            settings: ModelSettings {
                parallel_tool_calls: Some(true),
                top_p: Some(0.9),
                ..ModelSettings::default()
            },
        }
    }

    fn text(dialect: &Dialect, request: &ModelRequest) -> String {
        serde_json::to_string(&RequestBody {
            model: "m",
            dialect,
            request,
        })
        .unwrap()
    }

    #[test]
    fn writes_keys_in_the_documented_order_with_exact_bytes() {
        let dialect = Dialect::generic()
            .with_include_usage(true)
            .with_echo_reasoning(ReasoningEcho::WhenPresent);
        assert_eq!(
            text(&dialect, &request()),
            concat!(
                r#"{"model":"m","messages":["#,
                r#"{"role":"system","content":"be brief"},"#,
                r#"{"role":"user","content":"list \"my\" tasks"},"#,
                r#"{"role":"assistant","content":null,"reasoning_content":"look them up","#,
                r#""tool_calls":[{"id":"call_1","type":"function","#,
                r#""function":{"name":"list_tasks","arguments":"{}"}}]},"#,
                r#"{"role":"tool","tool_call_id":"call_1","content":"[]"}],"#,
                r#""tools":[{"type":"function","function":{"name":"list_tasks","#,
                r#""description":"Lists tasks","#,
                r#""parameters":{"type":"object","required":[],"properties":{}}}},"#,
                r#"{"type":"function","function":{"name":"odd","description":"No schema","#,
                r#""parameters":{"type":"object","properties":{}},"strict":true}}],"#,
                r#""parallel_tool_calls":true,"top_p":0.9,"stream":true,"#,
                r#""stream_options":{"include_usage":true}}"#
            )
        );
    }

    #[test]
    fn extra_body_replaces_a_standard_key_in_place_and_appends_the_rest() {
        let mut dialect = Dialect::generic().with_include_usage(false);
        dialect.extra_body.insert("zeta".into(), json!(1));
        dialect.extra_body.insert("stream".into(), json!(false));
        dialect
            .extra_body
            .insert("tools".into(), json!("kept at the end"));
        let mut request = request();
        request.tools = Arc::from([]);
        request.messages.truncate(1);
        assert_eq!(
            text(&dialect, &request),
            concat!(
                r#"{"model":"m","messages":[{"role":"system","content":"be brief"}],"#,
                r#""top_p":0.9,"stream":false,"zeta":1,"tools":"kept at the end"}"#
            )
        );
    }

    #[test]
    fn settings_that_are_not_finite_are_null() {
        let mut request = request();
        request.settings.temperature = Some(f32::NAN);
        let body: Value = serde_json::from_str(&text(&Dialect::generic(), &request)).unwrap();
        assert_eq!(body["temperature"], Value::Null);
    }
}
