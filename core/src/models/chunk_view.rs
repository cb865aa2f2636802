//! A borrowed, typed view of one streamed Chat Completions chunk.
//!
//! Almost every chunk of an answer is `{"choices":[{"delta":{"content":"…"}}]}`
//! plus metadata the engine ignores. Building a `serde_json::Value` tree for
//! it (an ordered map per object, every string copied) was most of the cost
//! of a streamed token, so [`ChunkView::parse`] reads the fields the
//! accumulator uses straight from the text, borrowing strings without
//! escapes, and skips the rest.
//!
//! The view is a fast path, not a second set of rules: it declines (returns
//! `None`) for anything unusual (a field of an unexpected type, a repeated
//! key, an `error`, a non-streamed `message`, a delta that is not an object)
//! and the accumulator then reads the chunk as a `Value`, as before. Fields
//! it hands over as raw JSON (`usage`, tool-call fragments, reasoning that
//! is not a plain string) are rare and read as `Value` by the accumulator.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Delta keys the view reads itself; a reasoning field with one of these
/// names would be read twice by the `Value` path, so the view declines it.
const DELTA_KEYS: [&str; 4] = ["content", "refusal", "tool_calls", "function_call"];

/// Whether the view can serve an accumulator reading reasoning from
/// `reasoning_fields`.
pub(crate) fn supports(reasoning_fields: &[String]) -> bool {
    !reasoning_fields
        .iter()
        .any(|field| DELTA_KEYS.contains(&field.as_str()))
}

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// The parts of a chunk the accumulator reads. `null` reads as absent, as
/// the `Value` path treats it.
#[derive(Debug, Deserialize)]
pub(crate) struct ChunkView<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Text<'a>>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
}

#[derive(Debug, Deserialize)]
struct ChoiceView<'a> {
    #[serde(default)]
    index: Option<i64>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<Text<'a>>,
}

/// The first choice (index 0) of a chunk, its delta read.
#[derive(Debug)]
pub(crate) struct FirstChoice<'a> {
    pub(crate) usage: Option<&'a RawValue>,
    pub(crate) delta: Option<DeltaView<'a>>,
    pub(crate) finish_reason: Option<Text<'a>>,
}

/// A delta's fields; `reasoning` holds the dialect's reasoning fields in
/// the dialect's order, or is empty when the delta has none of them.
#[derive(Debug, Default)]
pub(crate) struct DeltaView<'a> {
    pub(crate) reasoning: Vec<Option<&'a RawValue>>,
    pub(crate) content: Option<Text<'a>>,
    pub(crate) refusal: Option<Text<'a>>,
    pub(crate) tool_calls: Option<&'a RawValue>,
    pub(crate) function_call: Option<&'a RawValue>,
}

impl<'a> ChunkView<'a> {
    /// Reads `data`; `None` when the `Value` path must read it instead.
    /// The choices returned are those with index 0, in order.
    pub(crate) fn parse(
        data: &'a str,
        reasoning_fields: &[String],
    ) -> Option<(Self, Vec<FirstChoice<'a>>)> {
        let mut view: ChunkView<'a> = serde_json::from_str(data).ok()?;
        if view.error.is_some() {
            return None;
        }
        let mut first = Vec::new();
        for choice in view.choices.take().into_iter().flatten() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if choice.message.is_some() {
                return None;
            }
            let delta = match choice.delta {
                Some(raw) => Some(DeltaView::parse(raw.get(), reasoning_fields)?),
                None => None,
            };
            first.push(FirstChoice {
                usage: choice.usage,
                delta,
                finish_reason: choice.finish_reason,
            });
        }
        Some((view, first))
    }
}

impl<'a> DeltaView<'a> {
    fn parse(raw: &'a str, reasoning_fields: &[String]) -> Option<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(raw);
        let delta = DeltaSeed { reasoning_fields }
            .deserialize(&mut deserializer)
            .ok()?;
        deserializer.end().ok()?;
        Some(delta)
    }
}

struct DeltaSeed<'f> {
    reasoning_fields: &'f [String],
}

impl<'de> DeserializeSeed<'de> for DeltaSeed<'_> {
    type Value = DeltaView<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DeltaSeed<'_> {
    type Value = DeltaView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a delta object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut delta = DeltaView::default();
        // A repeated key overwrites, as it does in a `Value` map.
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.0.as_ref() {
                "content" => delta.content = map.next_value()?,
                "refusal" => delta.refusal = map.next_value()?,
                "tool_calls" => delta.tool_calls = map.next_value()?,
                "function_call" => delta.function_call = map.next_value()?,
                other => match self.reasoning_fields.iter().position(|f| f == other) {
                    Some(slot) => {
                        // Sized on the first reasoning field only: most
                        // deltas have none, and this runs for every token.
                        let value = map.next_value()?;
                        if delta.reasoning.is_empty() {
                            delta.reasoning.resize(self.reasoning_fields.len(), None);
                        }
                        delta.reasoning[slot] = value;
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
            }
        }
        Ok(delta)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn fields() -> Vec<String> {
        vec!["reasoning_content".to_owned()]
    }

    #[test]
    fn borrows_plain_text_and_unescapes_escaped_text() {
        let data = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}"#;
        let (view, choices) = ChunkView::parse(data, &fields()).unwrap();
        assert!(matches!(view.id, Some(Text(Cow::Borrowed("c1")))));
        let delta = choices[0].delta.as_ref().unwrap();
        assert!(matches!(delta.content, Some(Text(Cow::Borrowed("hi")))));

        let data = r#"{"choices":[{"delta":{"content":"a\"b\u00e9\n"}}]}"#;
        let (_, choices) = ChunkView::parse(data, &fields()).unwrap();
        let content = &choices[0].delta.as_ref().unwrap().content;
        assert_eq!(content.as_ref().unwrap().0, "a\"b\u{e9}\n");
    }

    #[test]
    fn skips_other_choices_and_keeps_reasoning_raw() {
        let data = r#"{"choices":[{"index":1,"delta":{"content":"no"}},{"index":0,"delta":{"reasoning_content":"think","extra":{"a":[1,2]}}}]}"#;
        let (_, choices) = ChunkView::parse(data, &fields()).unwrap();
        assert_eq!(choices.len(), 1);
        let delta = choices[0].delta.as_ref().unwrap();
        assert_eq!(delta.reasoning[0].unwrap().get(), r#""think""#);
        assert!(delta.content.is_none());
    }

    #[test]
    fn declines_what_the_value_path_must_read() {
        for data in [
            r#"{"error":{"message":"overloaded"}}"#,
            r#"{"choices":[{"message":{"content":"whole"}}]}"#,
            r#"{"choices":[{"delta":"text"}]}"#,
            r#"{"choices":[{"index":"0","delta":{}}]}"#,
            r#"{"choices":[{"delta":{"content":["part"]}}]}"#,
            r#"{"choices":[{"finish_reason":1}]}"#,
            r#"{"choices":{"0":{}}}"#,
            r#"{"id":7,"choices":[]}"#,
            r#"{"id":"a","id":"b"}"#,
            "not json",
        ] {
            assert!(ChunkView::parse(data, &fields()).is_none(), "{data}");
        }
    }

    #[test]
    fn null_reads_as_absent() {
        let data = r#"{"id":null,"error":null,"usage":null,"choices":[{"index":null,"delta":{"content":null,"tool_calls":null},"finish_reason":null}]}"#;
        let (view, choices) = ChunkView::parse(data, &fields()).unwrap();
        assert!(view.id.is_none() && view.usage.is_none());
        let delta = choices[0].delta.as_ref().unwrap();
        assert!(delta.content.is_none() && delta.tool_calls.is_none());
        assert!(choices[0].finish_reason.is_none());
    }

    #[test]
    fn reasoning_fields_named_like_delta_keys_are_not_supported() {
        assert!(supports(&fields()));
        assert!(!supports(&["content".to_owned()]));
    }
}
