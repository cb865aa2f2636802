//! Size limits and string hygiene for parsed requests.
//!
//! [`check_request`] runs in [`ChatEngine::process`](super::ChatEngine::process)
//! right after parsing and before any handler touches the store, so a
//! request that breaks a limit leaves nothing behind. The limits come from
//! [`EngineConfig`]:
//!
//! | what | config field | error |
//! | --- | --- | --- |
//! | request body bytes (checked before parsing) | `max_body_bytes` | `payload_too_large` (413) |
//! | characters of one user message's text (all parts + quoted text) | `max_text_chars` | `payload_too_large` (413) |
//! | content parts of one user message | `max_content_parts` | `payload_too_large` (413) |
//! | attachments of one user message | `max_attachments` | `payload_too_large` (413) |
//! | item ids of one `items.feedback` | `max_page_size` | `payload_too_large` (413) |
//! | thread title characters (`threads.update`) | `max_title_chars` | `invalid_request` (400) |
//! | characters of an id or cursor | [`MAX_ID_CHARS`] | `invalid_request` (400) |
//! | a control or invisible formatting character in an id or cursor | [`validate::identifier`] | `invalid_request` (400) |
//! | a control character or line break in a title or attachment name | [`validate::line`] | `invalid_request` (400) |
//! | a control character other than tab and line breaks in user text | [`validate::text`] | `invalid_request` (400) |
//!
//! The character rules are [`crate::validate`]'s, the same for every path:
//! NUL, for one, cannot be stored in a PostgreSQL `TEXT` column and would
//! otherwise surface later as a storage failure instead of a clear 400.
//! List `limit`s are clamped to `max_page_size` by the handlers, not refused.

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::protocol::{
    JsonRequest, Request, StreamingRequest, UserMessageContent, UserMessageInput,
};
use crate::validate;

/// Longest id (thread, item, attachment) or pagination cursor accepted, in
/// characters. The engine's own ids are far shorter; anything longer cannot
/// name a row and is refused before it reaches the database.
pub const MAX_ID_CHARS: usize = 256;

/// Checks a parsed request against the configured limits.
pub(super) fn check_request(request: &Request, config: &EngineConfig) -> Result<()> {
    match request {
        Request::Stream(StreamingRequest::ThreadsCreate(params)) => {
            check_user_message(&params.input, config)
        }
        Request::Stream(StreamingRequest::ThreadsAddUserMessage(params)) => {
            check_id("thread_id", &params.thread_id)?;
            check_user_message(&params.input, config)
        }
        Request::Stream(StreamingRequest::ThreadsAddClientToolOutput(params)) => {
            check_id("thread_id", &params.thread_id)
        }
        Request::Stream(StreamingRequest::ThreadsAddStructuredInput(params)) => {
            check_id("thread_id", &params.thread_id)?;
            check_id("item_id", &params.item_id)
        }
        Request::Stream(StreamingRequest::ThreadsRetryAfterItem(params)) => {
            check_id("thread_id", &params.thread_id)?;
            check_id("item_id", &params.item_id)
        }
        Request::Stream(StreamingRequest::ThreadsCustomAction(params))
        | Request::Json(JsonRequest::ThreadsSyncCustomAction(params)) => {
            check_id("thread_id", &params.thread_id)?;
            match &params.item_id {
                Some(item_id) => check_id("item_id", item_id),
                None => Ok(()),
            }
        }
        Request::Json(JsonRequest::ThreadsGetById(params))
        | Request::Json(JsonRequest::ThreadsDelete(params)) => {
            check_id("thread_id", &params.thread_id)
        }
        Request::Json(JsonRequest::ThreadsList(params)) => check_cursor(params.after.as_deref()),
        Request::Json(JsonRequest::ThreadsUpdate(params)) => {
            check_id("thread_id", &params.thread_id)?;
            check_title(&params.title, config)
        }
        Request::Json(JsonRequest::ItemsList(params)) => {
            check_id("thread_id", &params.thread_id)?;
            check_cursor(params.after.as_deref())
        }
        Request::Json(JsonRequest::ItemsFeedback(params)) => {
            check_id("thread_id", &params.thread_id)?;
            let max = config.max_page_size;
            if params.item_ids.len() > max {
                return Err(Error::PayloadTooLarge(format!(
                    "params.item_ids: {} items exceed the limit of {max}",
                    params.item_ids.len()
                )));
            }
            params
                .item_ids
                .iter()
                .try_for_each(|id| check_id("item_ids", id))
        }
        Request::Json(JsonRequest::AttachmentsDelete(params)) => {
            check_id("attachment_id", &params.attachment_id)
        }
        Request::Json(JsonRequest::AttachmentsCreate(params)) => {
            check_title_like("name", &params.name, config.max_title_chars)
        }
        Request::Json(JsonRequest::InputTranscribe(_)) => Ok(()),
    }
}

/// Checks one user message: text length, content parts, attachments, NULs.
pub(super) fn check_user_message(input: &UserMessageInput, config: &EngineConfig) -> Result<()> {
    let parts = input.content.len();
    if parts > config.max_content_parts {
        return Err(Error::PayloadTooLarge(format!(
            "params.input.content: {parts} content parts exceed the limit of {}",
            config.max_content_parts
        )));
    }
    let attachments = input.attachments.len();
    if attachments > config.max_attachments {
        return Err(Error::PayloadTooLarge(format!(
            "params.input.attachments: {attachments} attachments exceed the limit of {}",
            config.max_attachments
        )));
    }
    for id in &input.attachments {
        check_id("input.attachments", id)?;
    }
    let mut chars = 0usize;
    for part in &input.content {
        let text = match part {
            UserMessageContent::InputText { text } => text.as_str(),
            UserMessageContent::InputTag { text, .. } => text.as_str(),
        };
        validate::text("params.input.content", text)?;
        chars = chars.saturating_add(text.chars().count());
    }
    if let Some(quoted) = &input.quoted_text {
        validate::text("params.input.quoted_text", quoted)?;
        chars = chars.saturating_add(quoted.chars().count());
    }
    if chars > config.max_text_chars {
        return Err(Error::PayloadTooLarge(format!(
            "params.input: the message text has {chars} characters, more than the limit of {}",
            config.max_text_chars
        )));
    }
    Ok(())
}

/// Checks a thread title (after trimming, as `threads.update` stores it).
pub(super) fn check_title(title: &str, config: &EngineConfig) -> Result<()> {
    check_title_like("title", title, config.max_title_chars)
}

fn check_title_like(field: &str, value: &str, max: usize) -> Result<()> {
    validate::line(&format!("params.{field}"), value)?;
    let chars = value.trim().chars().count();
    if chars > max {
        return Err(Error::invalid(format!(
            "params.{field}: {chars} characters are longer than the limit of {max}"
        )));
    }
    Ok(())
}

fn check_cursor(after: Option<&str>) -> Result<()> {
    match after {
        Some(after) => check_id("after", after),
        None => Ok(()),
    }
}

pub(super) fn check_id(field: &str, id: &str) -> Result<()> {
    validate::identifier(&format!("params.{field}"), id, MAX_ID_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Request {
        Request::parse(body.as_bytes()).unwrap()
    }

    fn message(content: &str, attachments: &str) -> Request {
        parse(&format!(
            r#"{{"type":"threads.create","params":{{"input":{{"content":{content},"attachments":{attachments}}}}}}}"#
        ))
    }

    #[test]
    fn messages_within_the_limits_pass_and_each_limit_has_its_own_error() {
        let config = EngineConfig {
            max_text_chars: 5,
            max_content_parts: 2,
            max_attachments: 1,
            ..EngineConfig::default()
        };
        let ok = message(r#"[{"type":"input_text","text":"héllo"}]"#, r#"["atc_1"]"#);
        check_request(&ok, &config).unwrap();

        let long = message(r#"[{"type":"input_text","text":"hello!"}]"#, "[]");
        let err = check_request(&long, &config).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("payload_too_large", 413));
        assert!(err.to_string().contains("6 characters"), "{err}");

        let split = message(
            r#"[{"type":"input_text","text":"abc"},{"type":"input_tag","id":"t","text":"def"}]"#,
            "[]",
        );
        assert!(check_request(&split, &config).is_err(), "parts add up");

        let parts = message(
            r#"[{"type":"input_text","text":""},{"type":"input_text","text":""},{"type":"input_text","text":""}]"#,
            "[]",
        );
        let err = check_request(&parts, &config).unwrap_err();
        assert!(err.to_string().contains("3 content parts"), "{err}");

        let attachments = message("[]", r#"["atc_1","atc_2"]"#);
        let err = check_request(&attachments, &config).unwrap_err();
        assert!(err.to_string().contains("2 attachments"), "{err}");

        let nul = message(r#"[{"type":"input_text","text":"a\u0000b"}]"#, "[]");
        assert_eq!(
            check_request(&nul, &config).unwrap_err().code(),
            "invalid_request"
        );
    }

    #[test]
    fn ids_titles_and_cursors_are_checked() {
        let config = EngineConfig {
            max_title_chars: 3,
            ..EngineConfig::default()
        };
        let update = |title: &str| {
            parse(&format!(
                r#"{{"type":"threads.update","params":{{"thread_id":"thr_1","title":{}}}}}"#,
                serde_json::Value::from(title)
            ))
        };
        check_request(&update("  abc  "), &config).unwrap();
        check_request(&update("اردو"), &config).unwrap_err();
        check_request(&update("a\0"), &config).unwrap_err();

        let long_id = "x".repeat(MAX_ID_CHARS + 1);
        let get = parse(&format!(
            r#"{{"type":"threads.get_by_id","params":{{"thread_id":"{long_id}"}}}}"#
        ));
        assert_eq!(
            check_request(&get, &config).unwrap_err().code(),
            "invalid_request"
        );
        let list = parse(r#"{"type":"items.list","params":{"thread_id":"t","after":"a\u0000"}}"#);
        assert!(check_request(&list, &config).is_err());
        let ids: Vec<String> = (0..=config.max_page_size).map(|i| i.to_string()).collect();
        let feedback = parse(
            &serde_json::json!({"type":"items.feedback","params":{"thread_id":"t","item_ids":ids,"kind":"positive"}})
                .to_string(),
        );
        assert_eq!(
            check_request(&feedback, &config).unwrap_err().code(),
            "payload_too_large"
        );
    }

    #[test]
    fn control_characters_follow_the_validate_rules_in_every_field() {
        let config = EngineConfig::default();
        let text = |t: &str| {
            message(
                &serde_json::json!([{"type": "input_text", "text": t}]).to_string(),
                "[]",
            )
        };
        check_request(&text("two\nlines\tand a tab\r\n"), &config).unwrap();
        for bad in ["\u{1b}[2J", "bell\u{7}", "del\u{7f}", "c1\u{85}"] {
            let err = check_request(&text(bad), &config).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{bad:?}");
        }
        let update = |title: &str| {
            parse(
                &serde_json::json!({"type":"threads.update","params":{"thread_id":"thr_1","title":title}})
                    .to_string(),
            )
        };
        assert!(check_request(&update("a\nFAKE LOG LINE"), &config).is_err());
        let get = |id: &str| {
            parse(
                &serde_json::json!({"type":"threads.get_by_id","params":{"thread_id":id}})
                    .to_string(),
            )
        };
        for bad in ["thr_1\n", "thr_\u{202e}1", "thr\u{2028}"] {
            assert_eq!(
                check_request(&get(bad), &config).unwrap_err().code(),
                "invalid_request",
                "{bad:?}"
            );
        }
    }
}
