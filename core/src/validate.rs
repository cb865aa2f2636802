//! One rule for identities and text that come from outside the process,
//! checked before any store is touched, the same on every path (HTTP, MCP,
//! the bindings) and for both stores.
//!
//! | kind | function | applies to | refused | length |
//! | --- | --- | --- | --- | --- |
//! | user id | [`user_id`] | a token's `sub`, the caller of an MCP tool call | blank; every [unsafe character](is_unsafe) | [`MAX_USER_ID_CHARS`] characters |
//! | request id | [`request_id`] | the `x-request-id` header | empty; anything but visible ASCII (`!` to `~`) | [`MAX_REQUEST_ID_CHARS`] characters |
//! | identifier | [`identifier`] | thread, item and attachment ids, cursors | every unsafe character | the caller's limit (`MAX_ID_CHARS`) |
//! | line | [`line()`] | titles, names, a token's `name` and `email` | every control character, `U+2028`, `U+2029` | the caller's limit |
//! | text | [`text`], [`json_strings`] | message text, quoted text, descriptions, MCP tool arguments | control characters other than tab, line feed and carriage return | the caller's limit |
//!
//! A *control character* is Unicode's `Cc`: C0 (`U+0000` to `U+001F`), DEL
//! (`U+007F`) and C1 (`U+0080` to `U+009F`). NUL cannot be stored in a
//! PostgreSQL `TEXT` column (SQLite keeps it, so the two stores would
//! disagree), and line breaks and escape sequences forge or garble log lines
//! and terminals. An *unsafe character* ([`is_unsafe`]) is a control
//! character, a line or paragraph separator (`U+2028`, `U+2029`) or a
//! bidirectional control (`U+202A` to `U+202E`, `U+2066` to `U+2069`), which
//! make one id display as another.
//!
//! Every refusal is an [`Error::InvalidRequest`] (`invalid_request`, HTTP
//! 400) that names the field and never repeats the value.
//!
//! ```
//! use chatkit_engine::validate;
//!
//! assert!(validate::user_id("user_2f9a@example.com").is_ok());
//! let err = validate::user_id("alice\nINFO admin signed in").unwrap_err();
//! assert_eq!((err.code(), err.http_status()), ("invalid_request", 400));
//! assert!(validate::user_id(&"a".repeat(validate::MAX_USER_ID_CHARS + 1)).is_err());
//!
//! assert!(validate::request_id("0f8e-4c2a").is_ok());
//! assert!(validate::request_id("has space").is_err());
//!
//! assert!(validate::text("description", "line one\nline two\ttabbed").is_ok());
//! assert!(validate::text("description", "nul\0byte").is_err());
//! assert!(validate::line("title", "two\nlines").is_err());
//! assert!(validate::line("title", "اردو ٹاسک").is_ok());
//!
//! let args = serde_json::json!({"title": "Buy milk", "tags": ["a\u{1b}[31m"]});
//! assert!(validate::json_strings("arguments", &args).is_err());
//! ```

use crate::error::{Error, Result};
use serde_json::Value;

/// Longest accepted user id (a token's `sub`), in characters. Real issuers
/// use far shorter ids (Better Auth: 32).
pub const MAX_USER_ID_CHARS: usize = 256;

/// Longest accepted request id (`x-request-id`), in characters (some
/// proxies send up to 200).
pub const MAX_REQUEST_ID_CHARS: usize = 200;

/// Whether `c` is a control character (Unicode `Cc`), a line or paragraph
/// separator or a bidirectional control: characters that break a log line or
/// make one identifier look like another.
///
/// ```
/// use chatkit_engine::validate::is_unsafe;
/// assert!(is_unsafe('\n') && is_unsafe('\u{85}') && is_unsafe('\u{202e}'));
/// assert!(!is_unsafe('a') && !is_unsafe('ٹ') && !is_unsafe(' '));
/// ```
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Checks a user id (a token's `sub`): not blank, at most
/// [`MAX_USER_ID_CHARS`] characters, no unsafe character.
pub fn user_id(id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(Error::invalid("the user id is empty"));
    }
    if id.contains(is_unsafe) {
        return Err(Error::invalid(
            "the user id contains control or invisible formatting characters",
        ));
    }
    if longer_than(id, MAX_USER_ID_CHARS) {
        return Err(Error::invalid(format!(
            "the user id is longer than {MAX_USER_ID_CHARS} characters"
        )));
    }
    Ok(())
}

/// Checks a request id (`x-request-id`): 1 to [`MAX_REQUEST_ID_CHARS`]
/// characters of visible ASCII (no spaces).
pub fn request_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID_CHARS {
        return Err(Error::invalid(format!(
            "x-request-id must be 1 to {MAX_REQUEST_ID_CHARS} characters"
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "x-request-id may only contain visible ASCII characters",
        ));
    }
    Ok(())
}

/// Checks an identifier (thread, item or attachment id, a cursor): no unsafe
/// character, at most `max_chars` characters.
pub fn identifier(field: &str, id: &str, max_chars: usize) -> Result<()> {
    if id.contains(is_unsafe) {
        return Err(Error::invalid(format!(
            "{field}: control or invisible formatting characters are not allowed in ids"
        )));
    }
    if longer_than(id, max_chars) {
        return Err(Error::invalid(format!(
            "{field}: ids are at most {max_chars} characters"
        )));
    }
    Ok(())
}

/// Checks one-line text (a title, a name): no control character and no line
/// or paragraph separator.
pub fn line(field: &str, text: &str) -> Result<()> {
    if text.contains(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Err(Error::invalid(format!(
            "{field}: control characters and line breaks are not allowed"
        )));
    }
    Ok(())
}

/// Checks free text (a message, a description): no control character other
/// than tab, line feed and carriage return.
pub fn text(field: &str, text: &str) -> Result<()> {
    if text.contains(is_refused_in_text) {
        return Err(Error::invalid(format!(
            "{field}: control characters other than tab and line breaks are not allowed"
        )));
    }
    Ok(())
}

/// Checks every string of a JSON value, object keys included, with the
/// [`text`] rule (tool arguments, whose meaning the boundary does not know).
/// Walks the value without recursion, so any depth is safe.
pub fn json_strings(field: &str, value: &Value) -> Result<()> {
    let refused = || {
        Err(Error::invalid(format!(
            "{field}: control characters other than tab and line breaks are not allowed in strings"
        )))
    };
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(s) if s.contains(is_refused_in_text) => return refused(),
            Value::Array(values) => pending.extend(values),
            Value::Object(map) => {
                for (key, value) in map {
                    if key.contains(is_refused_in_text) {
                        return refused();
                    }
                    pending.push(value);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn is_refused_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Whether `s` has more than `max` characters; counting stops early, so a
/// huge value costs no more than a short one.
fn longer_than(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().nth(max).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_control_character_is_refused_in_ids_and_only_line_breaks_and_tabs_pass_in_text() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let value = format!("a{c}b");
            assert!(user_id(&value).is_err(), "{c:?} in a user id");
            assert!(identifier("id", &value, 256).is_err(), "{c:?} in an id");
            assert!(line("title", &value).is_err(), "{c:?} in a line");
            let in_text = text("text", &value);
            assert_eq!(in_text.is_ok(), matches!(c, '\t' | '\n' | '\r'), "{c:?}");
            assert!(request_id(&value).is_err(), "{c:?} in a request id");
        }
        for c in ['\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}'] {
            assert!(user_id(&format!("a{c}")).is_err(), "{c:?}");
            assert!(identifier("id", &format!("a{c}"), 256).is_err(), "{c:?}");
        }
        assert!(line("title", "a\u{2028}b").is_err());
        // Right-to-left text and its marks stay free text.
        assert!(text("text", "اردو \u{200f}\u{202b}ok\u{202c}").is_ok());
    }

    #[test]
    fn user_ids_are_non_blank_and_length_capped() {
        assert!(user_id("alice").is_ok());
        assert!(user_id("auth0|5f7c8ec7c33c6c004bbafe82").is_ok());
        assert!(user_id("ٹاسک-صارف").is_ok());
        assert!(user_id("").is_err());
        assert!(user_id("   ").is_err());
        assert!(user_id(&"é".repeat(MAX_USER_ID_CHARS)).is_ok());
        assert!(user_id(&"é".repeat(MAX_USER_ID_CHARS + 1)).is_err());
        assert!(user_id(&"a".repeat(5_000)).is_err());
    }

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(request_id("7c9e6679-7425-40de-944b-e07fc1f90ae7").is_ok());
        assert!(request_id(&"r".repeat(MAX_REQUEST_ID_CHARS)).is_ok());
        assert!(request_id(&"r".repeat(MAX_REQUEST_ID_CHARS + 1)).is_err());
        assert!(request_id(&"r".repeat(100_000)).is_err());
        for bad in ["", "a b", "é", "a\"b\u{7f}"] {
            assert!(request_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_strings_checks_nested_values_and_keys_without_echoing_them() {
        assert!(json_strings("arguments", &json!({"a": ["x\ny", {"b": 1}], "c": null})).is_ok());
        let err = json_strings("arguments", &json!({"a": [{"b": "x\u{0}"}]})).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(!err.to_string().contains('\0'));
        assert!(json_strings("arguments", &json!({"k\u{1b}": 1})).is_err());
        let mut deep = json!("\u{7}");
        for _ in 0..10_000 {
            deep = Value::Array(vec![deep]);
        }
        assert!(json_strings("arguments", &deep).is_err());
        // Dropping a deep value recurses in serde_json; forget it instead.
        std::mem::forget(deep);
    }
}
