//! The tolerant stream accumulator: SSE lines → chunks → one response.
//!
//! Pure and synchronous, so every provider quirk is unit-tested here without
//! a network. Two pieces:
//!
//! - [`SseDecoder`](crate::models::accumulate::SseDecoder) splits the raw bytes of a `text/event-stream` body into
//!   events (`data:` payloads), ignoring `:` comment/keep-alive lines.
//! - [`ChunkAccumulator`](crate::models::accumulate::ChunkAccumulator) turns Chat Completions chunks into text/reasoning
//!   deltas as they arrive and, at the end, one [`ModelResponse`].
//!
//! Rules (reference §4.4/§4.5):
//!
//! - Tool-call slots are keyed by the fragment's `index`. A fragment opens a
//!   new slot when its `index` is unknown, when it carries a *different
//!   non-empty id* than the slot of its index (Ollama/Gemini adapters send
//!   index 0 for every call), or when it re-sends a name for a slot whose
//!   arguments are already a complete JSON value (index-0 calls without ids).
//!   A fragment without `index` that starts a call (id or name) opens a new
//!   slot; one that only carries arguments continues the last slot.
//! - id and name are set when present and the slot has none yet; arguments
//!   are appended; arguments sent as a JSON object are serialised; empty
//!   arguments become `{}`.
//! - Missing ids are synthesised as `call_<response-id>_<slot>`; all ids are
//!   sanitised to `[A-Za-z0-9_-]` and made unique within the response.
//! - `finish_reason` is not trusted: with tool calls, `stop` (or no reason)
//!   becomes [`FinishReason::ToolCalls`]; other reasons are kept, unknown ones
//!   as [`FinishReason::Other`].
//! - Usage is taken from any chunk that carries a `usage` object (the
//!   `choices: []` chunk or the finish chunk), with cached tokens from
//!   `prompt_tokens_details.cached_tokens` (or DeepSeek's
//!   `prompt_cache_hit_tokens`) and reasoning tokens from
//!   `completion_tokens_details.reasoning_tokens`; `requests` is 1.
//! - Reasoning is read from the dialect's field names; the first non-empty
//!   one of a delta wins.
//! - `{"error": {...}}` frames (or an `event: error` SSE event) become
//!   [`Error::Model`](crate::Error::Model), retryable when the error looks like a rate limit,
//!   overload or server error.
//! - **End of stream.** `[DONE]` ends the response. EOF without `[DONE]` is
//!   accepted when a `finish_reason` was seen (several providers skip
//!   `[DONE]`); otherwise the response is truncated and [`finish`] fails with
//!   a retryable [`Error::Model`](crate::Error::Model) (the client retries it only if nothing was
//!   streamed to the caller yet).
//!
//! [`finish`]: crate::models::accumulate::ChunkAccumulator::finish

use super::chunk_view::{self, ChunkView, DeltaView, FirstChoice, Text};
use super::{FinishReason, ModelEvent, ModelResponse, ToolCall, Usage};
use crate::error::{Error, Result};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` payload (several data lines joined with `\n`).
    pub data: String,
}

/// Splits a `text/event-stream` byte stream into events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    data: Option<String>,
    event: Option<String>,
}

impl SseDecoder {
    /// Feeds received bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.buf.is_empty() {
            // The usual case: the read starts at a line boundary, so its
            // complete lines are read in place and only a tail is kept.
            let used = self.lines(bytes, &mut events);
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(bytes);
            let used = self.lines(&buf, &mut events);
            buf.drain(..used);
            self.buf = buf;
        }
        events
    }

    /// Reads the complete lines of `bytes`; returns how many bytes they took.
    fn lines(&mut self, bytes: &[u8], events: &mut Vec<SseEvent>) -> usize {
        let mut start = 0;
        while let Some(pos) = bytes[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let line = &bytes[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.line(&String::from_utf8_lossy(line), events);
            start = end + 1;
        }
        start
    }

    /// Ends the stream: a last line without newline and a pending event
    /// without its blank line are still delivered.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest)
                .trim_end_matches('\r')
                .to_owned();
            self.line(&line, &mut events);
        }
        self.dispatch(&mut events);
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if let Some(data) = self.data.take() {
            events.push(SseEvent { event, data });
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    id: String,
    name: String,
    arguments: String,
}

/// Accumulates the chunks of one streamed Chat Completions response.
#[derive(Debug)]
pub struct ChunkAccumulator {
    reasoning_fields: Vec<String>,
    fallback_id: String,
    response_id: Option<String>,
    text: String,
    reasoning: String,
    saw_reasoning: bool,
    slots: Vec<Slot>,
    by_index: HashMap<i64, usize>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    chunks: usize,
    done: bool,
    /// Whether chunks are read through [`ChunkView`] first.
    typed: bool,
}

impl ChunkAccumulator {
    /// A new accumulator reading reasoning from `reasoning_fields`.
    /// `fallback_id` stands in for the response id in synthesised call ids
    /// when the provider sends none.
    pub fn new(reasoning_fields: &[String], fallback_id: impl Into<String>) -> Self {
        Self {
            reasoning_fields: reasoning_fields.to_vec(),
            fallback_id: fallback_id.into(),
            response_id: None,
            text: String::new(),
            reasoning: String::new(),
            saw_reasoning: false,
            slots: Vec::new(),
            by_index: HashMap::new(),
            finish_reason: None,
            usage: None,
            chunks: 0,
            done: false,
            typed: chunk_view::supports(reasoning_fields),
        }
    }

    /// Whether `[DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Marks the response complete (a non-streamed reply has no `[DONE]`).
    pub fn mark_done(&mut self) {
        self.done = true;
    }

    /// Feeds one SSE event. `[DONE]` marks the end; an `error` event or an
    /// `{"error":..}` payload is returned as an error.
    pub fn push_event(&mut self, event: &SseEvent) -> Result<Vec<ModelEvent>> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        if self.typed
            && event.event.as_deref() != Some("error")
            && let Some((view, choices)) = ChunkView::parse(data, &self.reasoning_fields)
        {
            return Ok(self.push_view(view, choices));
        }
        let values = match serde_json::from_str::<Value>(data) {
            Ok(value) => vec![value],
            // Some servers omit the blank line between events, so two
            // `data:` lines arrive joined; parse them one by one.
            Err(err) => {
                let mut values = Vec::new();
                for line in data.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    if line == "[DONE]" {
                        self.done = true;
                        continue;
                    }
                    match serde_json::from_str::<Value>(line) {
                        Ok(value) => values.push(value),
                        Err(_) => {
                            return Err(Error::Model {
                                message: format!("the provider sent an invalid chunk: {err}"),
                                retryable: true,
                                source: Some(Box::new(err)),
                            });
                        }
                    }
                }
                values
            }
        };
        let mut events = Vec::new();
        for value in values {
            if event.event.as_deref() == Some("error") && value.get("error").is_none() {
                return Err(error_from_body(&value, None));
            }
            events.extend(self.push(&value)?);
        }
        Ok(events)
    }

    /// Feeds one chunk (or, for a non-streamed reply, a whole
    /// `chat.completion` whose choices carry `message` instead of `delta`).
    /// Returns the text and reasoning deltas it carried.
    pub fn push(&mut self, chunk: &Value) -> Result<Vec<ModelEvent>> {
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(error_from_body(chunk, None));
        }
        self.chunks += 1;
        if self.response_id.is_none()
            && let Some(id) = chunk.get("id").and_then(Value::as_str)
            && !id.is_empty()
        {
            self.response_id = Some(id.to_owned());
        }
        if let Some(usage) = chunk.get("usage") {
            self.take_usage(usage);
        }
        let mut events = Vec::new();
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Ok(events);
        };
        for choice in choices {
            if choice.get("index").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue; // only the first choice (n = 1)
            }
            if let Some(usage) = choice.get("usage") {
                self.take_usage(usage);
            }
            let delta = choice
                .get("delta")
                .filter(|d| d.is_object())
                .or_else(|| choice.get("message").filter(|m| m.is_object()));
            if let Some(delta) = delta {
                self.push_delta(delta, &mut events);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str)
                && !reason.is_empty()
            {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        Ok(events)
    }

    /// A chunk read by [`ChunkView`]: the same steps as [`Self::push`].
    fn push_view(&mut self, view: ChunkView<'_>, choices: Vec<FirstChoice<'_>>) -> Vec<ModelEvent> {
        self.chunks += 1;
        if self.response_id.is_none()
            && let Some(Text(id)) = &view.id
            && !id.is_empty()
        {
            self.response_id = Some(id.as_ref().to_owned());
        }
        if let Some(usage) = view.usage {
            self.take_raw_usage(usage);
        }
        let mut events = Vec::new();
        for choice in choices {
            if let Some(usage) = choice.usage {
                self.take_raw_usage(usage);
            }
            if let Some(delta) = choice.delta {
                self.push_delta_view(delta, &mut events);
            }
            if let Some(Text(reason)) = choice.finish_reason
                && !reason.is_empty()
            {
                self.finish_reason = Some(reason.into_owned());
            }
        }
        events
    }

    fn push_delta(&mut self, delta: &Value, events: &mut Vec<ModelEvent>) {
        let reasoning = self
            .reasoning_fields
            .iter()
            .filter_map(|field| delta.get(field))
            .map(reasoning_text)
            .find(|text| !text.is_empty());
        self.push_reasoning(reasoning, events);
        for field in ["content", "refusal"] {
            if let Some(text) = delta.get(field).and_then(Value::as_str) {
                self.push_text(text, events);
            }
        }
        if let Some(calls) = delta.get("tool_calls") {
            self.push_tool_calls(calls);
        }
        if let Some(call) = delta.get("function_call") {
            self.push_function_call(call);
        }
    }

    fn push_delta_view(&mut self, delta: DeltaView<'_>, events: &mut Vec<ModelEvent>) {
        let reasoning = delta
            .reasoning
            .iter()
            .flatten()
            .map(|raw| raw_reasoning_text(raw))
            .find(|text| !text.is_empty());
        self.push_reasoning(reasoning, events);
        for Text(text) in [delta.content, delta.refusal].into_iter().flatten() {
            self.push_text(&text, events);
        }
        if let Some(calls) = delta.tool_calls.and_then(parse_raw) {
            self.push_tool_calls(&calls);
        }
        if let Some(call) = delta.function_call.and_then(parse_raw) {
            self.push_function_call(&call);
        }
    }

    fn push_reasoning(&mut self, reasoning: Option<String>, events: &mut Vec<ModelEvent>) {
        if let Some(reasoning) = reasoning {
            self.saw_reasoning = true;
            self.reasoning.push_str(&reasoning);
            events.push(ModelEvent::ReasoningDelta(reasoning));
        }
    }

    fn push_text(&mut self, text: &str, events: &mut Vec<ModelEvent>) {
        if !text.is_empty() {
            self.text.push_str(text);
            events.push(ModelEvent::TextDelta(text.to_owned()));
        }
    }

    fn push_tool_calls(&mut self, calls: &Value) {
        if let Some(calls) = calls.as_array() {
            for call in calls {
                self.push_tool_fragment(call);
            }
        }
    }

    fn push_function_call(&mut self, call: &Value) {
        if !call.is_object() {
            return;
        }
        // Legacy single function call: treat as the call at index 0.
        let mut fragment = call.clone();
        if let Some(obj) = fragment.as_object_mut() {
            let function = Value::Object(obj.clone());
            obj.clear();
            obj.insert("index".into(), Value::from(0));
            obj.insert("function".into(), function);
        }
        self.push_tool_fragment(&fragment);
    }

    fn push_tool_fragment(&mut self, fragment: &Value) {
        let index = fragment.get("index").and_then(|i| {
            i.as_i64()
                .or_else(|| i.as_str().and_then(|s| s.trim().parse().ok()))
        });
        let id = fragment
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let function = fragment.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let arguments = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };

        let existing = match index {
            Some(index) => self.by_index.get(&index).copied(),
            // No index: a fragment that starts a call opens a slot, one that
            // only continues arguments belongs to the last slot.
            None if id.is_none() && name.is_none() => self.slots.len().checked_sub(1),
            None => None,
        };
        let slot = match existing {
            Some(slot) if !self.starts_new_call(slot, id, name) => slot,
            _ => {
                self.slots.push(Slot::default());
                let slot = self.slots.len() - 1;
                if let Some(index) = index {
                    self.by_index.insert(index, slot);
                }
                slot
            }
        };
        let Some(slot) = self.slots.get_mut(slot) else {
            return;
        };
        if let Some(id) = id
            && slot.id.is_empty()
        {
            slot.id = id.to_owned();
        }
        if let Some(name) = name
            && slot.name.is_empty()
        {
            slot.name = name.to_owned();
        }
        slot.arguments.push_str(&arguments);
    }

    /// Whether a fragment addressed to `slot` is really the start of another
    /// call that reuses its index.
    fn starts_new_call(&self, slot: usize, id: Option<&str>, name: Option<&str>) -> bool {
        let Some(slot) = self.slots.get(slot) else {
            return true;
        };
        if let Some(id) = id
            && !slot.id.is_empty()
        {
            return id != slot.id;
        }
        name.is_some()
            && !slot.name.is_empty()
            && id.is_none_or(|_| slot.id.is_empty())
            && is_complete_json(&slot.arguments)
    }

    fn take_raw_usage(&mut self, usage: &RawValue) {
        if let Some(usage) = parse_raw(usage) {
            self.take_usage(&usage);
        }
    }

    fn take_usage(&mut self, usage: &Value) {
        if !usage.is_object() {
            return;
        }
        let num = |path: &[&str]| -> Option<u64> {
            let mut value = usage;
            for key in path {
                value = value.get(key)?;
            }
            value.as_u64().or_else(|| value.as_f64().map(|f| f as u64))
        };
        let input = num(&["prompt_tokens"]).or_else(|| num(&["input_tokens"]));
        let output = num(&["completion_tokens"]).or_else(|| num(&["output_tokens"]));
        let cached = num(&["prompt_tokens_details", "cached_tokens"])
            .or_else(|| num(&["prompt_cache_hit_tokens"]))
            .or_else(|| num(&["input_tokens_details", "cached_tokens"]));
        let reasoning = num(&["completion_tokens_details", "reasoning_tokens"])
            .or_else(|| num(&["output_tokens_details", "reasoning_tokens"]));
        if input.is_none() && output.is_none() {
            return;
        }
        self.usage = Some(Usage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cached_tokens: cached.unwrap_or(0),
            reasoning_tokens: reasoning.unwrap_or(0),
            requests: 1,
            estimated: false,
        });
    }

    /// Ends the response. Fails when the stream stopped early (see the
    /// module docs).
    pub fn finish(self) -> Result<ModelResponse> {
        if !self.done && self.finish_reason.is_none() {
            let message = if self.chunks == 0 {
                "the provider closed the stream before sending anything"
            } else {
                "the response was truncated: the stream ended without a finish reason or [DONE]"
            };
            return Err(Error::Model {
                message: message.to_owned(),
                retryable: true,
                source: None,
            });
        }
        let response_id = self.response_id.as_deref().unwrap_or(&self.fallback_id);
        let response_id = sanitize_id(response_id);
        let mut tool_calls: Vec<ToolCall> = Vec::new();
        for (n, slot) in self.slots.into_iter().enumerate() {
            if slot.name.is_empty() && slot.arguments.trim().is_empty() {
                continue; // an empty fragment, not a call
            }
            let mut id = sanitize_id(&slot.id);
            if id.is_empty() {
                id = format!("call_{response_id}_{n}");
            }
            if tool_calls.iter().any(|c| c.id == id) {
                id = format!("{id}_{n}");
            }
            let arguments = if slot.arguments.trim().is_empty() {
                "{}".to_owned()
            } else {
                slot.arguments
            };
            tool_calls.push(ToolCall {
                id,
                name: slot.name,
                arguments,
            });
        }
        let mut finish_reason = match self.finish_reason.as_deref() {
            None | Some("stop") => FinishReason::Stop,
            Some("length") => FinishReason::Length,
            Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
            Some("content_filter") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_owned()),
        };
        if !tool_calls.is_empty() && finish_reason == FinishReason::Stop {
            finish_reason = FinishReason::ToolCalls;
        }
        Ok(ModelResponse {
            text: self.text,
            reasoning: self.saw_reasoning.then_some(self.reasoning),
            tool_calls,
            finish_reason,
            usage: self.usage,
        })
    }
}

/// The text of a reasoning field: a string, or an array of parts with
/// `text` (OpenRouter's `reasoning_details`).
fn reasoning_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// [`reasoning_text`] of a field the view kept raw; a plain string (MiMo's
/// and DeepSeek's `reasoning_content`) is read without a `Value`.
fn raw_reasoning_text(raw: &RawValue) -> String {
    match serde_json::from_str::<Text<'_>>(raw.get()) {
        Ok(Text(text)) => text.into_owned(),
        Err(_) => parse_raw(raw).map_or_else(String::new, |value| reasoning_text(&value)),
    }
}

/// A raw JSON value the view kept; it was validated when it was read.
fn parse_raw(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

fn is_complete_json(text: &str) -> bool {
    !text.trim().is_empty() && serde_json::from_str::<Value>(text).is_ok()
}

/// Replaces every character outside `[A-Za-z0-9_-]` with `_`.
pub(crate) fn sanitize_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Turns a provider error body (`{"error": {...}}`, `{"error": "..."}` or a
/// bare error object) into [`Error::Model`]. `status` is the HTTP status when
/// the error came as a response rather than a stream frame.
pub(crate) fn error_from_body(body: &Value, status: Option<u16>) -> Error {
    let error = body.get("error").filter(|e| !e.is_null()).unwrap_or(body);
    let field = |key: &str| -> Option<String> {
        match error.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let message = match error {
        Value::String(s) => s.clone(),
        _ => field("message")
            .or_else(|| field("msg"))
            .or_else(|| field("detail"))
            .unwrap_or_else(|| truncate(&error.to_string(), 300)),
    };
    let kind = [field("type"), field("code"), field("status")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("/");
    let numeric = error
        .get("code")
        .or_else(|| error.get("status"))
        .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
        .and_then(|c| u16::try_from(c).ok());
    // A 429 for an exhausted quota will not pass by waiting.
    let quota = format!("{kind} {message}").contains("insufficient_quota");
    let retryable = !quota
        && match status.or(numeric) {
            Some(code) if code == 408 || code == 409 || code == 429 || code >= 500 => true,
            Some(code) if (400..500).contains(&code) => {
                status.is_none() && looks_transient(&format!("{kind} {message}"))
            }
            _ => looks_transient(&format!("{kind} {message}")),
        };
    let mut text = String::new();
    if let Some(status) = status {
        text.push_str(&format!("HTTP {status}: "));
    }
    text.push_str(&truncate(&message, 500));
    if !kind.is_empty() {
        text.push_str(&format!(" ({kind})"));
    }
    Error::Model {
        message: text,
        retryable,
        source: None,
    }
}

/// Whether an error text describes a transient condition.
fn looks_transient(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "rate limit",
        "rate_limit",
        "ratelimit",
        "too many requests",
        "overload",
        "server_error",
        "server error",
        "internal error",
        "internal_error",
        "unavailable",
        "timeout",
        "timed out",
        "try again",
        "capacity",
        "insufficient_system_resource",
        "bad gateway",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn acc() -> ChunkAccumulator {
        ChunkAccumulator::new(
            &["reasoning_content".to_owned(), "reasoning".to_owned()],
            "fallback",
        )
    }

    fn chunk(delta: Value) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    }

    /// Feeds `frames` (SSE data payloads) and returns every result and the
    /// final response, rendered for comparison.
    fn outcome(mut acc: ChunkAccumulator, frames: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = frames
            .iter()
            .map(|data| {
                let event = SseEvent {
                    event: None,
                    data: (*data).to_owned(),
                };
                format!("{:?}", acc.push_event(&event))
            })
            .collect();
        out.push(format!("{:?}", acc.finish()));
        out
    }

    #[test]
    fn typed_chunks_read_exactly_as_values_do() {
        let streams: &[&[&str]] = &[
            &[
                r#"{"id":"c-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
                r#"{"id":"c-1","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
                r#"{"id":"c-1","choices":[{"index":0,"delta":{"content":"lo \"w\u00e9\"\n"}}]}"#,
                r#"{"id":"c-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
                r#"{"id":"c-1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}"#,
                "[DONE]",
            ],
            &[
                r#"{"id":"","choices":[{"delta":{"reasoning_content":"think "}}]}"#,
                r#"{"choices":[{"delta":{"reasoning_content":"","reasoning":"more"}}]}"#,
                r#"{"choices":[{"delta":{"reasoning_content":null,"reasoning":[{"text":"a"},{"text":"b"}]}}]}"#,
                r#"{"choices":[{"delta":{"refusal":"no","content":"yes"}}],"usage":null}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"x"},"usage":{"input_tokens":2,"output_tokens":1},"finish_reason":"length"}]}"#,
            ],
            &[
                r#"{"id":"r","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"add_task","arguments":""}}]}}]}"#,
                r#"{"id":"r","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"title":"}}]}}]}"#,
                r#"{"id":"r","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":""x"}"}},{"index":1,"id":"call_b","function":{"name":"list_tasks","arguments":{"status":"all"}}}]}}]}"#,
                r#"{"id":"r","choices":[{"index":0,"delta":{"tool_calls":null},"finish_reason":"tool_calls"}]}"#,
                "[DONE]",
            ],
            &[
                r#"{"choices":[{"delta":{"function_call":{"name":"stats","arguments":"{}"}}}]}"#,
                r#"{"choices":[{"delta":{"function_call":"bad","tool_calls":{"not":"an array"}}}]}"#,
                r#"{"choices":[{"index":1,"delta":{"content":"other choice"}},{"index":0,"delta":{"content":"first"}}]}"#,
                r#"{"choices":[{"index":"0","delta":{"content":"string index"}}]}"#,
                r#"{"choices":[{"delta":"not an object","message":{"content":"whole"}}]}"#,
                r#"{"choices":[{"delta":null,"message":{"content":" reply"}}]}"#,
                r#"{"choices":[{"delta":{"content":["parts"]}}]}"#,
                r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
                r#"{"id":5,"choices":{"0":{}}}"#,
                r#"{"choices":null}"#,
                r#"{"choices":[{"finish_reason":7}]}"#,
                r#"{"choices":[{"delta":{"content":"z"}}]} trailing"#,
                concat!(
                    r#"{"choices":[{"delta":{"content":"p"}}]}"#,
                    "\n",
                    r#"{"choices":[{"delta":{"content":"q"}}]}"#
                ),
                r#"{"error":null,"choices":[{"delta":{"content":"after null error"},"finish_reason":""}]}"#,
            ],
            &[
                r#"{"choices":[{"delta":{"content":"partial"}}]}"#,
                r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":429}}"#,
            ],
            &[r#"{"choices":[{"delta":{"content":"cut off"}}]}"#],
            &["{not json"],
        ];
        for frames in streams {
            let typed = outcome(acc(), frames);
            let mut values = acc();
            values.typed = false;
            assert_eq!(typed, outcome(values, frames), "{frames:?}");
        }
    }

    #[test]
    fn plain_text_chunks_take_the_typed_path() {
        let mut acc = acc();
        assert!(acc.typed);
        let data = r#"{"choices":[{"delta":{"content":"hi"}}]}"#;
        let (view, choices) = ChunkView::parse(data, &acc.reasoning_fields).unwrap();
        assert_eq!(
            acc.push_view(view, choices),
            vec![ModelEvent::TextDelta("hi".into())]
        );
        let dialect_reading_content = ChunkAccumulator::new(&["content".to_owned()], "f");
        assert!(!dialect_reading_content.typed);
    }

    fn finish_chunk(reason: &str) -> Value {
        json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    }

    fn run(chunks: &[Value]) -> ModelResponse {
        let mut acc = acc();
        for c in chunks {
            acc.push(c).unwrap();
        }
        acc.push_event(&SseEvent {
            event: None,
            data: "[DONE]".into(),
        })
        .unwrap();
        acc.finish().unwrap()
    }

    fn call(index: Option<i64>, id: Option<&str>, name: Option<&str>, args: Value) -> Value {
        let mut c = json!({"type": "function", "function": {"arguments": args}});
        if let Some(i) = index {
            c["index"] = json!(i);
        }
        if let Some(id) = id {
            c["id"] = json!(id);
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        c
    }

    fn calls(resp: &ModelResponse) -> Vec<(&str, &str, &str)> {
        resp.tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect()
    }

    #[test]
    fn sse_decoder_handles_split_lines_comments_and_crlf() {
        let mut d = SseDecoder::default();
        let mut events = d.feed(b": keep-alive\r\n\r\ndata: {\"a\"");
        assert!(events.is_empty());
        events.extend(d.feed(b":1}\r\n\r\nevent: error\ndata: x\ndata: y\n\n"));
        events.extend(d.feed(b"data: [DONE]"));
        events.extend(d.finish());
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: None,
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: Some("error".into()),
                    data: "x\ny".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn sse_decoder_keeps_utf8_split_across_reads() {
        let mut d = SseDecoder::default();
        let bytes = "data: سلام\n\n".as_bytes();
        let mut events = d.feed(&bytes[..8]);
        events.extend(d.feed(&bytes[8..]));
        assert_eq!(events[0].data, "سلام");
    }

    #[test]
    fn text_and_usage_chunk() {
        let mut acc = acc();
        let ev = acc
            .push(&chunk(json!({"role": "assistant", "content": "Hel"})))
            .unwrap();
        assert_eq!(ev, vec![ModelEvent::TextDelta("Hel".into())]);
        acc.push(&chunk(json!({"content": "lo"}))).unwrap();
        acc.push(&finish_chunk("stop")).unwrap();
        acc.push(&json!({"id": "chatcmpl-1", "choices": [], "usage": {
            "prompt_tokens": 84, "completion_tokens": 38, "total_tokens": 122,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 7}}}))
            .unwrap();
        let resp = acc.finish().unwrap();
        assert_eq!(resp.text, "Hello");
        assert_eq!(resp.finish_reason, FinishReason::Stop);
        assert_eq!(resp.reasoning, None);
        assert_eq!(
            resp.usage,
            Some(Usage {
                input_tokens: 84,
                output_tokens: 38,
                cached_tokens: 64,
                reasoning_tokens: 7,
                requests: 1,
                estimated: false,
            })
        );
    }

    #[test]
    fn usage_on_finish_chunk_and_deepseek_cache_fields() {
        let mut fin = finish_chunk("stop");
        fin["usage"] = json!({"prompt_tokens": 10, "completion_tokens": 2,
                              "prompt_cache_hit_tokens": 8, "prompt_cache_miss_tokens": 2});
        let resp = run(&[chunk(json!({"content": "x"})), fin]);
        let usage = resp.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.cached_tokens), (10, 8));
        // usage: null on ordinary chunks is ignored
        let mut c = chunk(json!({"content": "x"}));
        c["usage"] = Value::Null;
        assert_eq!(run(&[c, finish_chunk("stop")]).usage, None);
    }

    #[test]
    fn openai_parallel_tool_calls() {
        let resp = run(&[
            chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [call(Some(0), Some("call_pa1"), Some("get_weather"), json!(""))]}),
            ),
            chunk(json!({"tool_calls": [call(Some(0), None, None, json!("{\"ci"))]})),
            chunk(json!({"tool_calls": [call(Some(0), None, None, json!("ty\": \"Paris\"}"))]})),
            chunk(
                json!({"tool_calls": [call(Some(1), Some("call_tk2"), Some("get_weather"), json!(""))]}),
            ),
            chunk(
                json!({"tool_calls": [call(Some(1), None, None, json!("{\"city\": \"Tokyo\"}"))]}),
            ),
            finish_chunk("tool_calls"),
        ]);
        assert_eq!(
            calls(&resp),
            vec![
                ("call_pa1", "get_weather", r#"{"city": "Paris"}"#),
                ("call_tk2", "get_weather", r#"{"city": "Tokyo"}"#)
            ]
        );
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    }

    #[test]
    fn reasoning_content_then_tool_call() {
        let mut acc = acc();
        let ev = acc
            .push(&chunk(
                json!({"role": "assistant", "content": null, "reasoning_content": "Let me "}),
            ))
            .unwrap();
        assert_eq!(ev, vec![ModelEvent::ReasoningDelta("Let me ".into())]);
        acc.push(&chunk(json!({"reasoning_content": "think."})))
            .unwrap();
        acc.push(&chunk(
            json!({"tool_calls": [call(Some(0), Some("c1"), Some("list_tasks"), json!("{}"))]}),
        ))
        .unwrap();
        acc.push(&finish_chunk("tool_calls")).unwrap();
        let resp = acc.finish().unwrap();
        assert_eq!(resp.reasoning.as_deref(), Some("Let me think."));
        assert_eq!(calls(&resp), vec![("c1", "list_tasks", "{}")]);
    }

    #[test]
    fn first_non_empty_reasoning_field_wins() {
        // vLLM sends both fields with the same text.
        let resp = run(&[
            chunk(json!({"reasoning": "a", "reasoning_content": "a"})),
            chunk(json!({"reasoning_content": "", "reasoning": "b"})),
            chunk(json!({"reasoning_details": [{"type": "reasoning.text", "text": "ignored"}]})),
            finish_chunk("stop"),
        ]);
        assert_eq!(resp.reasoning.as_deref(), Some("ab"));
        let mut details = ChunkAccumulator::new(&["reasoning_details".to_owned()], "f");
        let ev = details
            .push(&chunk(
                json!({"reasoning_details": [{"type": "reasoning.text", "text": "t"}]}),
            ))
            .unwrap();
        assert_eq!(ev, vec![ModelEvent::ReasoningDelta("t".into())]);
    }

    #[test]
    fn ollama_all_index_zero_with_distinct_ids() {
        let resp = run(&[
            chunk(
                json!({"tool_calls": [call(Some(0), Some("call_a"), Some("create_task"), json!("{\"title\":\"milk\"}"))]}),
            ),
            chunk(
                json!({"tool_calls": [call(Some(0), Some("call_b"), Some("create_task"), json!("{\"title\":\"eggs\"}"))]}),
            ),
            finish_chunk("tool_calls"),
        ]);
        assert_eq!(
            calls(&resp),
            vec![
                ("call_a", "create_task", r#"{"title":"milk"}"#),
                ("call_b", "create_task", r#"{"title":"eggs"}"#)
            ]
        );
    }

    #[test]
    fn index_zero_without_ids_split_by_complete_arguments() {
        let resp = run(&[
            chunk(json!({"tool_calls": [call(Some(0), None, Some("get_stats"), json!("{}"))]})),
            chunk(
                json!({"tool_calls": [call(Some(0), None, Some("list_tasks"), json!("{\"status\":"))]}),
            ),
            chunk(
                json!({"tool_calls": [call(Some(0), None, Some("list_tasks"), json!("\"all\"}"))]}),
            ),
            finish_chunk("tool_calls"),
        ]);
        assert_eq!(
            calls(&resp),
            vec![
                ("call_chatcmpl-1_0", "get_stats", "{}"),
                ("call_chatcmpl-1_1", "list_tasks", r#"{"status":"all"}"#)
            ]
        );
    }

    #[test]
    fn missing_index_opens_new_slots() {
        let resp = run(&[
            chunk(json!({"tool_calls": [call(None, Some("x1"), Some("a"), json!("{\"n\":"))]})),
            chunk(json!({"tool_calls": [call(None, None, None, json!("1}"))]})),
            chunk(json!({"tool_calls": [call(None, Some("x2"), Some("b"), json!("{}"))]})),
            finish_chunk("tool_calls"),
        ]);
        assert_eq!(
            calls(&resp),
            vec![("x1", "a", r#"{"n":1}"#), ("x2", "b", "{}")]
        );
    }

    #[test]
    fn whole_calls_in_one_chunk() {
        let resp = run(&[
            chunk(json!({"tool_calls": [
                call(Some(0), Some("call_1"), Some("get_weather"), json!("{\"city\":\"Paris\"}")),
                call(Some(1), Some("call_2"), Some("get_weather"), json!("{\"city\":\"Tokyo\"}"))]})),
            finish_chunk("tool_calls"),
        ]);
        assert_eq!(resp.tool_calls.len(), 2);
        assert_eq!(resp.tool_calls[1].arguments, r#"{"city":"Tokyo"}"#);
    }

    #[test]
    fn arguments_as_object_empty_and_missing() {
        let resp = run(&[
            chunk(json!({"tool_calls": [
                call(Some(0), Some("a"), Some("create_task"), json!({"title": "milk"})),
                call(Some(1), Some("b"), Some("get_stats"), json!("")),
                {"index": 2, "id": "c", "function": {"name": "list_tasks"}}]})),
            finish_chunk("tool_calls"),
        ]);
        assert_eq!(
            calls(&resp),
            vec![
                ("a", "create_task", r#"{"title":"milk"}"#),
                ("b", "get_stats", "{}"),
                ("c", "list_tasks", "{}")
            ]
        );
    }

    #[test]
    fn ids_synthesised_sanitised_and_unique() {
        let resp = run(&[
            chunk(json!({"tool_calls": [
                call(Some(0), None, Some("a"), json!("{}")),
                call(Some(1), Some("call:1/x"), Some("b"), json!("{}")),
                call(Some(2), Some("dup"), Some("c"), json!("{}")),
                call(Some(3), Some("dup"), Some("d"), json!("{}"))]})),
            finish_chunk("tool_calls"),
        ]);
        let ids: Vec<_> = resp.tool_calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["call_chatcmpl-1_0", "call_1_x", "dup", "dup_3"]);

        // No response id: the fallback id is used, and stays stable.
        let mut acc = acc();
        acc.push(&json!({"choices": [{"delta": {"tool_calls": [call(Some(0), None, Some("a"), json!("{}"))]}, "finish_reason": "tool_calls"}]}))
            .unwrap();
        assert_eq!(acc.finish().unwrap().tool_calls[0].id, "call_fallback_0");
    }

    #[test]
    fn finish_reason_stop_with_tool_calls_means_tools() {
        let resp = run(&[
            chunk(json!({"tool_calls": [call(Some(0), Some("a"), Some("x"), json!("{}"))]})),
            finish_chunk("stop"),
        ]);
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        // No finish reason at all, but [DONE]: still tools.
        let resp = run(&[chunk(
            json!({"tool_calls": [call(Some(0), Some("a"), Some("x"), json!("{}"))]}),
        )]);
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(resp.tool_calls.len(), 1);
    }

    #[test]
    fn unknown_and_standard_finish_reasons() {
        let reason =
            |r: &str| run(&[chunk(json!({"content": "x"})), finish_chunk(r)]).finish_reason;
        assert_eq!(
            reason("insufficient_system_resource"),
            FinishReason::Other("insufficient_system_resource".into())
        );
        assert_eq!(reason("length"), FinishReason::Length);
        assert_eq!(reason("content_filter"), FinishReason::ContentFilter);
        assert_eq!(reason("function_call"), FinishReason::ToolCalls);
    }

    #[test]
    fn legacy_function_call() {
        let resp = run(&[
            chunk(json!({"function_call": {"name": "get_stats", "arguments": ""}})),
            chunk(json!({"function_call": {"arguments": "{}"}})),
            finish_chunk("function_call"),
        ]);
        assert_eq!(calls(&resp), vec![("call_chatcmpl-1_0", "get_stats", "{}")]);
    }

    #[test]
    fn error_frames() {
        let mut acc = acc();
        let err = acc
            .push(&json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Model {
                    retryable: true,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = acc
            .push(&json!({"error": {"message": "Invalid tool schema", "type": "invalid_request_error", "code": 400}}))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Model {
                    retryable: false,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = acc.push(&json!({"error": "Overloaded"})).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Model {
                    retryable: true,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = acc
            .push_event(&SseEvent {
                event: Some("error".into()),
                data: r#"{"message":"boom","code":500}"#.into(),
            })
            .unwrap_err();
        assert!(
            matches!(err, Error::Model { retryable: true, ref message, .. } if message.contains("boom"))
        );
    }

    #[test]
    fn http_error_bodies() {
        let err = error_from_body(&json!({"error": {"message": "bad key"}}), Some(401));
        assert!(
            matches!(err, Error::Model { retryable: false, ref message, .. } if message == "HTTP 401: bad key")
        );
        let err = error_from_body(&json!({"error": {"message": "slow down"}}), Some(429));
        assert!(matches!(
            err,
            Error::Model {
                retryable: true,
                ..
            }
        ));
        let err = error_from_body(
            &json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}}),
            Some(429),
        );
        assert!(matches!(
            err,
            Error::Model {
                retryable: false,
                ..
            }
        ));
        let err = error_from_body(&json!("upstream failed"), Some(503));
        assert!(matches!(
            err,
            Error::Model {
                retryable: true,
                ..
            }
        ));
    }

    #[test]
    fn eof_rules() {
        // Truncated: chunks but no finish reason, no [DONE].
        let mut acc = acc();
        acc.push(&chunk(json!({"content": "Hel"}))).unwrap();
        let err = acc.finish().unwrap_err();
        assert!(
            matches!(err, Error::Model { retryable: true, ref message, .. } if message.contains("truncated"))
        );
        // Nothing at all.
        let err = self::acc().finish().unwrap_err();
        assert!(matches!(
            err,
            Error::Model {
                retryable: true,
                ..
            }
        ));
        // A finish reason without [DONE] is a complete response.
        let mut acc = self::acc();
        acc.push(&chunk(json!({"content": "Hi"}))).unwrap();
        acc.push(&finish_chunk("stop")).unwrap();
        assert!(!acc.is_done());
        assert_eq!(acc.finish().unwrap().text, "Hi");
    }

    #[test]
    fn joined_data_lines_and_bad_json() {
        let mut acc = acc();
        let ev = acc
            .push_event(&SseEvent {
                event: None,
                data: "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n{\"choices\":[{\"delta\":{\"content\":\"b\"}}]}".into(),
            })
            .unwrap();
        assert_eq!(ev.len(), 2);
        let err = acc
            .push_event(&SseEvent {
                event: None,
                data: "{not json".into(),
            })
            .unwrap_err();
        assert!(matches!(err, Error::Model { .. }));
    }

    #[test]
    fn non_streamed_message_and_other_choices() {
        let resp = run(&[
            json!({"id": "chatcmpl-9", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi", "reasoning_content": "r",
              "tool_calls": [{"id": "c", "type": "function", "function": {"name": "x", "arguments": "{}"}}]},
             "finish_reason": "tool_calls"},
            {"index": 1, "message": {"role": "assistant", "content": "ignored"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
        ]);
        assert_eq!(resp.text, "Hi");
        assert_eq!(resp.reasoning.as_deref(), Some("r"));
        assert_eq!(calls(&resp), vec![("c", "x", "{}")]);
        assert_eq!(resp.usage.map(|u| u.output_tokens), Some(4));
    }
}
