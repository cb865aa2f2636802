//! Fuzzes the identity and text rules (`chatkit_engine::validate`) and their
//! use at token verification.
//!
//! The input (lossy UTF-8) is used as a `sub`, a request id, an id, a line,
//! a text and a JSON string. A token signed with the fuzz secret carries it
//! as `sub`.
//!
//! Oracles, besides "no panic":
//! - `JwtVerifier::verify` accepts the token exactly when the subject is not
//!   blank and `validate::user_id` accepts it; a blank subject is
//!   `missing_subject` (401), a token over `MAX_TOKEN_BYTES`
//!   `malformed_token`, any other refusal `invalid_request` (400);
//! - whatever a rule accepts holds no character that rule refuses, and fits
//!   its length cap; `line` accepts nothing `text` refuses;
//! - `json_strings` on a JSON string (and on an object keyed by it) agrees
//!   with `text`.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatkit_engine::auth::{JwtVerifier, MAX_TOKEN_BYTES};
use chatkit_engine::validate::{self, MAX_REQUEST_ID_CHARS, MAX_USER_ID_CHARS, is_unsafe};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SECRET: &str = "chatkit-engine-fuzz-secret-0123456789abcdef";

struct Verifier {
    runtime: tokio::runtime::Runtime,
    verifier: JwtVerifier,
    key: ring::hmac::Key,
}

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| Verifier {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime"),
        verifier: JwtVerifier::from_secret(SECRET).expect("a verifier"),
        key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes()),
    })
}

fn token(v: &Verifier, sub: &str) -> String {
    let claims = serde_json::json!({"sub": sub, "exp": 4_102_444_800u64});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = ring::hmac::sign(&v.key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let value = value.as_ref();
    let chars = value.chars().count();

    // The rules on their own.
    if validate::user_id(value).is_ok() {
        assert!(!value.contains(is_unsafe) && chars <= MAX_USER_ID_CHARS);
        assert!(!value.trim().is_empty());
    }
    if validate::request_id(value).is_ok() {
        assert!(value.bytes().all(|b| b.is_ascii_graphic()));
        assert!((1..=MAX_REQUEST_ID_CHARS).contains(&value.len()));
    }
    if validate::identifier("id", value, 256).is_ok() {
        assert!(!value.contains(is_unsafe) && chars <= 256);
    }
    let text = validate::text("text", value);
    if let Ok(()) = &text {
        assert!(!value.contains(|c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r')));
    }
    if validate::line("line", value).is_ok() {
        assert!(text.is_ok(), "line accepted what text refuses");
        assert!(!value.contains(char::is_control));
    }
    let mut keyed = serde_json::Map::new();
    keyed.insert(value.to_owned(), serde_json::json!([1, {"k": null}]));
    for json in [
        serde_json::Value::String(value.to_owned()),
        serde_json::Value::Object(keyed),
    ] {
        assert_eq!(
            validate::json_strings("arguments", &json).is_ok(),
            text.is_ok(),
            "{json}"
        );
    }
    for err in [
        validate::user_id(value).err(),
        validate::text("text", value).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!((err.code(), err.http_status()), ("invalid_request", 400));
    }

    // The rule at token verification.
    let v = verifier();
    let token = token(v, value);
    let verified = v.runtime.block_on(v.verifier.verify(&token));
    match verified {
        Err(err) if token.len() > MAX_TOKEN_BYTES => assert_eq!(err.code(), "malformed_token"),
        Ok(claims) => {
            assert_eq!(claims.sub, value);
            assert!(validate::user_id(value).is_ok());
        }
        Err(err) if value.trim().is_empty() => assert_eq!(err.code(), "missing_subject"),
        Err(err) => {
            assert!(validate::user_id(value).is_err(), "refused a valid sub: {err}");
            assert_eq!((err.code(), err.http_status()), ("invalid_request", 400));
        }
    }
});
