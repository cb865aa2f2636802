//! The 16 ChatKit request types and their parsing.
//!
//! A request is `{"type": ..., "params": {...}, "metadata": {...}}`. Unknown
//! fields are ignored like the Python SDK does; everything else that is wrong
//! is an [`Error::InvalidRequest`] naming the offending field.

use crate::error::{Error, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::item::InferenceOptions;
use super::{Order, StructuredInputAnswer, StructuredInputStatus, UserMessageContent};

/// A parsed ChatKit request: one that streams its answer, or one answered
/// with a JSON document. The kind is decided by the `type` alone.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Answered with an SSE stream of events.
    Stream(StreamingRequest),
    /// Answered with one JSON document.
    Json(JsonRequest),
}

/// The six requests answered with a stream of events.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamingRequest {
    /// `threads.create`.
    ThreadsCreate(ThreadsCreateParams),
    /// `threads.add_user_message`.
    ThreadsAddUserMessage(ThreadsAddUserMessageParams),
    /// `threads.add_client_tool_output`.
    ThreadsAddClientToolOutput(ThreadsAddClientToolOutputParams),
    /// `threads.add_structured_input`.
    ThreadsAddStructuredInput(ThreadsAddStructuredInputParams),
    /// `threads.retry_after_item`.
    ThreadsRetryAfterItem(ThreadItemParams),
    /// `threads.custom_action`.
    ThreadsCustomAction(CustomActionParams),
}

/// The ten requests answered with one JSON document.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonRequest {
    /// `threads.get_by_id`.
    ThreadsGetById(ThreadParams),
    /// `threads.list`.
    ThreadsList(ListParams),
    /// `threads.update`.
    ThreadsUpdate(ThreadsUpdateParams),
    /// `threads.delete`.
    ThreadsDelete(ThreadParams),
    /// `items.list`.
    ItemsList(ItemsListParams),
    /// `items.feedback`.
    ItemsFeedback(ItemsFeedbackParams),
    /// `attachments.create`.
    AttachmentsCreate(AttachmentsCreateParams),
    /// `attachments.delete`.
    AttachmentsDelete(AttachmentsDeleteParams),
    /// `input.transcribe`.
    InputTranscribe(InputTranscribeParams),
    /// `threads.sync_custom_action`.
    ThreadsSyncCustomAction(CustomActionParams),
}

/// Every request type string, streaming ones first.
pub const REQUEST_TYPES: [&str; 16] = [
    "threads.create",
    "threads.add_user_message",
    "threads.add_client_tool_output",
    "threads.add_structured_input",
    "threads.retry_after_item",
    "threads.custom_action",
    "threads.get_by_id",
    "threads.list",
    "threads.update",
    "threads.delete",
    "items.list",
    "items.feedback",
    "attachments.create",
    "attachments.delete",
    "input.transcribe",
    "threads.sync_custom_action",
];

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

impl Request {
    /// Parses a request body.
    ///
    /// ```
    /// use chatkit_engine::protocol::Request;
    /// let req = Request::parse(br#"{"type":"threads.list","params":{"limit":5}}"#).unwrap();
    /// assert_eq!(req.type_name(), "threads.list");
    /// assert!(!req.is_streaming());
    /// let err = Request::parse(br#"{"type":"threads.nope","params":{}}"#).unwrap_err();
    /// assert_eq!(err.code(), "invalid_request");
    /// ```
    pub fn parse(body: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(body)
            .map_err(|err| Error::invalid(format!("body is not UTF-8: {err}")))?;
        let envelope: Envelope<'_> = serde_json::from_str(text)
            .map_err(|err| Error::invalid(format!("body is not a JSON request object: {err}")))?;
        let kind = envelope
            .kind
            .ok_or_else(|| Error::invalid("missing field `type`"))?;
        let params = envelope
            .params
            .ok_or_else(|| Error::invalid(format!("missing field `params` for `{kind}`")))?;
        let request = match kind.as_str() {
            "threads.create" => {
                Request::Stream(StreamingRequest::ThreadsCreate(params_of(params)?))
            }
            "threads.add_user_message" => {
                Request::Stream(StreamingRequest::ThreadsAddUserMessage(params_of(params)?))
            }
            "threads.add_client_tool_output" => Request::Stream(
                StreamingRequest::ThreadsAddClientToolOutput(params_of(params)?),
            ),
            "threads.add_structured_input" => Request::Stream(
                StreamingRequest::ThreadsAddStructuredInput(params_of(params)?),
            ),
            "threads.retry_after_item" => {
                Request::Stream(StreamingRequest::ThreadsRetryAfterItem(params_of(params)?))
            }
            "threads.custom_action" => {
                Request::Stream(StreamingRequest::ThreadsCustomAction(params_of(params)?))
            }
            "threads.get_by_id" => Request::Json(JsonRequest::ThreadsGetById(params_of(params)?)),
            "threads.list" => Request::Json(JsonRequest::ThreadsList(params_of(params)?)),
            "threads.update" => Request::Json(JsonRequest::ThreadsUpdate(params_of(params)?)),
            "threads.delete" => Request::Json(JsonRequest::ThreadsDelete(params_of(params)?)),
            "items.list" => Request::Json(JsonRequest::ItemsList(params_of(params)?)),
            "items.feedback" => Request::Json(JsonRequest::ItemsFeedback(params_of(params)?)),
            "attachments.create" => {
                Request::Json(JsonRequest::AttachmentsCreate(params_of(params)?))
            }
            "attachments.delete" => {
                Request::Json(JsonRequest::AttachmentsDelete(params_of(params)?))
            }
            "input.transcribe" => Request::Json(JsonRequest::InputTranscribe(params_of(params)?)),
            "threads.sync_custom_action" => {
                Request::Json(JsonRequest::ThreadsSyncCustomAction(params_of(params)?))
            }
            other => {
                let shown: String = other.chars().take(64).collect();
                return Err(Error::invalid(format!("unknown request type `{shown}`")));
            }
        };
        Ok(request)
    }

    /// The request's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::Stream(request) => request.type_name(),
            Request::Json(request) => request.type_name(),
        }
    }

    /// Whether the response is an SSE stream (decided by type alone).
    pub fn is_streaming(&self) -> bool {
        matches!(self, Request::Stream(_))
    }
}

impl StreamingRequest {
    /// The request's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            StreamingRequest::ThreadsCreate(_) => "threads.create",
            StreamingRequest::ThreadsAddUserMessage(_) => "threads.add_user_message",
            StreamingRequest::ThreadsAddClientToolOutput(_) => "threads.add_client_tool_output",
            StreamingRequest::ThreadsAddStructuredInput(_) => "threads.add_structured_input",
            StreamingRequest::ThreadsRetryAfterItem(_) => "threads.retry_after_item",
            StreamingRequest::ThreadsCustomAction(_) => "threads.custom_action",
        }
    }

    /// The thread the request continues (`None` for `threads.create`).
    pub fn thread_id(&self) -> Option<&str> {
        match self {
            StreamingRequest::ThreadsCreate(_) => None,
            StreamingRequest::ThreadsAddUserMessage(params) => Some(&params.thread_id),
            StreamingRequest::ThreadsAddClientToolOutput(params) => Some(&params.thread_id),
            StreamingRequest::ThreadsAddStructuredInput(params) => Some(&params.thread_id),
            StreamingRequest::ThreadsRetryAfterItem(params) => Some(&params.thread_id),
            StreamingRequest::ThreadsCustomAction(params) => Some(&params.thread_id),
        }
    }
}

impl JsonRequest {
    /// The request's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            JsonRequest::ThreadsGetById(_) => "threads.get_by_id",
            JsonRequest::ThreadsList(_) => "threads.list",
            JsonRequest::ThreadsUpdate(_) => "threads.update",
            JsonRequest::ThreadsDelete(_) => "threads.delete",
            JsonRequest::ItemsList(_) => "items.list",
            JsonRequest::ItemsFeedback(_) => "items.feedback",
            JsonRequest::AttachmentsCreate(_) => "attachments.create",
            JsonRequest::AttachmentsDelete(_) => "attachments.delete",
            JsonRequest::InputTranscribe(_) => "input.transcribe",
            JsonRequest::ThreadsSyncCustomAction(_) => "threads.sync_custom_action",
        }
    }
}

fn params_of<T: DeserializeOwned>(raw: &RawValue) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." || path.is_empty() {
            Error::invalid(format!("params: {inner}"))
        } else {
            Error::invalid(format!("params.{path}: {inner}"))
        }
    })
}

/// What the user typed: content, attachment ids and composer options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct UserMessageInput {
    /// Text and tags.
    pub content: Vec<UserMessageContent>,
    /// Ids of previously created attachments.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// The text the user replied to.
    #[serde(default)]
    pub quoted_text: Option<String>,
    /// Composer choices.
    #[serde(default)]
    pub inference_options: InferenceOptions,
}

/// Params of `threads.create`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ThreadsCreateParams {
    /// The first message.
    pub input: UserMessageInput,
}

/// Params of `threads.add_user_message`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ThreadsAddUserMessageParams {
    /// The thread.
    pub thread_id: String,
    /// The message.
    pub input: UserMessageInput,
}

/// Params of `threads.add_client_tool_output`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ThreadsAddClientToolOutputParams {
    /// The thread.
    pub thread_id: String,
    /// Whatever the client's tool handler returned (required, may be `null`).
    #[serde(deserialize_with = "required_any")]
    pub result: Value,
}

fn required_any<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    Value::deserialize(deserializer)
}

/// Params of `threads.add_structured_input`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ThreadsAddStructuredInputParams {
    /// The thread.
    pub thread_id: String,
    /// The `structured_input` item.
    pub item_id: String,
    /// The answers.
    pub input: StructuredInputSubmission,
}

/// The user's answers to a structured input.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StructuredInputSubmission {
    /// `answered` or `skipped`.
    #[serde(default = "answered")]
    pub status: StructuredInputStatus,
    /// Answers by question id.
    #[serde(default)]
    pub answers: Map<String, Value>,
}

fn answered() -> StructuredInputStatus {
    StructuredInputStatus::Answered
}

impl StructuredInputSubmission {
    /// The answer for question `id`, if one was given in a valid shape.
    pub fn answer(&self, id: &str) -> Option<StructuredInputAnswer> {
        self.answers
            .get(id)
            .and_then(|value| serde_json::from_value(value.clone()).ok())
    }
}

/// Params naming a thread and an item.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ThreadItemParams {
    /// The thread.
    pub thread_id: String,
    /// The item.
    pub item_id: String,
}

/// Params of `threads.custom_action` and `threads.sync_custom_action`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CustomActionParams {
    /// The thread.
    pub thread_id: String,
    /// The widget item that sent the action.
    #[serde(default)]
    pub item_id: Option<String>,
    /// The action.
    pub action: Action,
}

/// A widget action.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
pub struct Action {
    /// The action type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// Params naming a thread.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ThreadParams {
    /// The thread.
    pub thread_id: String,
}

/// Params of `threads.list`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ListParams {
    /// Page size; `null` or 0 means the default (20).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Sort order (default `desc`).
    #[serde(default)]
    pub order: Order,
    /// Cursor: the id of the last element of the previous page.
    #[serde(default)]
    pub after: Option<String>,
}

/// Params of `threads.update`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ThreadsUpdateParams {
    /// The thread.
    pub thread_id: String,
    /// The new title.
    pub title: String,
}

/// Params of `items.list`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ItemsListParams {
    /// The thread.
    pub thread_id: String,
    /// Page size; `null` or 0 means the default (20).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Sort order (default `desc`).
    #[serde(default)]
    pub order: Order,
    /// Cursor.
    #[serde(default)]
    pub after: Option<String>,
}

/// Params of `items.feedback`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ItemsFeedbackParams {
    /// The thread.
    pub thread_id: String,
    /// The rated items.
    pub item_ids: Vec<String>,
    /// Thumbs up or down.
    pub kind: FeedbackKind,
}

/// Thumbs up or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackKind {
    /// Thumbs up.
    Positive,
    /// Thumbs down.
    Negative,
}

impl FeedbackKind {
    /// `"positive"` or `"negative"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Positive => "positive",
            FeedbackKind::Negative => "negative",
        }
    }
}

/// Params of `attachments.create`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AttachmentsCreateParams {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type.
    pub mime_type: String,
}

/// Params of `attachments.delete`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AttachmentsDeleteParams {
    /// The attachment.
    pub attachment_id: String,
}

/// Params of `input.transcribe`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InputTranscribeParams {
    /// Standard base64 audio.
    pub audio_base64: String,
    /// MIME type, e.g. `audio/webm;codecs=opus`.
    pub mime_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_request_type() {
        let bodies = [
            r#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"Hi"}],"quoted_text":"","attachments":[],"inference_options":{}}}}"#,
            r#"{"type":"threads.add_user_message","params":{"thread_id":"thr_1","input":{"content":[],"attachments":[],"inference_options":{}}},"metadata":{"x":1}}"#,
            r#"{"type":"threads.add_client_tool_output","params":{"thread_id":"thr_1","result":null}}"#,
            r#"{"type":"threads.add_structured_input","params":{"thread_id":"thr_1","item_id":"msg_1","input":{"answers":{"a":{"values":["x"]}}}}}"#,
            r#"{"type":"threads.retry_after_item","params":{"thread_id":"thr_1","item_id":"msg_1"}}"#,
            r#"{"type":"threads.custom_action","params":{"thread_id":"thr_1","action":{"type":"x"}}}"#,
            r#"{"type":"threads.get_by_id","params":{"thread_id":"thr_1"}}"#,
            r#"{"type":"threads.list","params":{}}"#,
            r#"{"type":"threads.update","params":{"thread_id":"thr_1","title":"T"}}"#,
            r#"{"type":"threads.delete","params":{"thread_id":"thr_1"}}"#,
            r#"{"type":"items.list","params":{"thread_id":"thr_1","limit":3,"order":"asc"}}"#,
            r#"{"type":"items.feedback","params":{"thread_id":"thr_1","item_ids":["a"],"kind":"negative"}}"#,
            r#"{"type":"attachments.create","params":{"name":"a.png","size":3,"mime_type":"image/png"}}"#,
            r#"{"type":"attachments.delete","params":{"attachment_id":"atc_1"}}"#,
            r#"{"type":"input.transcribe","params":{"audio_base64":"YWJj","mime_type":"audio/webm;codecs=opus"}}"#,
            r#"{"type":"threads.sync_custom_action","params":{"thread_id":"thr_1","item_id":"msg_1","action":{"type":"x","payload":{"a":1}}}}"#,
        ];
        let parsed: Vec<_> = bodies
            .iter()
            .map(|b| Request::parse(b.as_bytes()).unwrap())
            .collect();
        let names: Vec<_> = parsed.iter().map(Request::type_name).collect();
        assert_eq!(names, REQUEST_TYPES);
        assert_eq!(parsed.iter().filter(|r| r.is_streaming()).count(), 6);
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let cases = [
            (&b"not json"[..], "not a JSON request object"),
            (&br#"{"params":{}}"#[..], "missing field `type`"),
            (&br#"{"type":"threads.list"}"#[..], "missing field `params`"),
            (
                &br#"{"type":"threads.nope","params":{}}"#[..],
                "unknown request type `threads.nope`",
            ),
            (
                &br#"{"type":"threads.get_by_id","params":{}}"#[..],
                "thread_id",
            ),
            (
                &br#"{"type":"threads.add_client_tool_output","params":{"thread_id":"t"}}"#[..],
                "result",
            ),
            (
                &br#"{"type":"threads.list","params":{"order":"sideways"}}"#[..],
                "params.order",
            ),
            (
                &br#"{"type":"threads.create","params":{"input":{"content":[{"type":"bogus"}]}}}"#
                    [..],
                "params.input.content[0]",
            ),
            (&b"\xff\xfe"[..], "UTF-8"),
        ];
        for (body, needle) in cases {
            let err = Request::parse(body).unwrap_err();
            assert_eq!(err.code(), "invalid_request");
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
        }
    }
}
