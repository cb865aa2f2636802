//! Node binding of `chatkit-engine` (napi-rs 3).
//!
//! This crate only converts types, maps errors and bridges async code; the
//! ChatKit backend itself is the core crate. The native module it builds is a
//! private detail of the npm package `chatkit-engine`: the public API is the
//! thin TypeScript layer in `lib/` (`ChatEngine.create`, `authenticate`,
//! `process`, `handle`, typed errors), which wraps the classes below.
//!
//! * [`NativeEngine`] wraps one [`chatkit_engine::ChatEngine`].
//! * [`NativeResponse`] is the result of a request: JSON bytes or a stream
//!   of SSE frames that can be cancelled (dropping the core stream cancels
//!   the turn; the engine persists the partial text).
//! * [`NativeTool`] registers a JS async function as an agent tool.
//!
//! Errors: napi's async functions can only carry a fixed `Status` as
//! `err.code`, so every core error becomes a JS error whose message is
//! [`ERROR_MARKER`] followed by a JSON object
//! `{"code","status","message","body"}`; the TS layer turns it into a
//! `ChatKitError` with a stable `code` property.

mod actions;
mod engine;
mod response;
mod tools;

pub use engine::{NativeEngine, create_engine};
pub use response::NativeResponse;
pub use tools::{NativeTool, ToolCall};

use napi_derive::napi;

/// The prefix of the message of every JS error that carries a core error.
pub const ERROR_MARKER: &str = "chatkit_engine_error:";

/// The version of the core this binding wraps.
#[napi]
pub fn core_version() -> &'static str {
    chatkit_engine::VERSION
}

/// The verified caller of a request (the core's `RequestContext`).
#[napi(object)]
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The stable id of the user (a JWT's `sub`).
    pub user_id: String,
    /// The user's e-mail address, when known.
    pub email: Option<String>,
    /// The user's display name, when known.
    pub name: Option<String>,
    /// The client's locale (`Accept-Language`), when the host passes it on.
    pub locale: Option<String>,
}

impl From<chatkit_engine::RequestContext> for RequestContext {
    fn from(ctx: chatkit_engine::RequestContext) -> Self {
        Self {
            user_id: ctx.user_id,
            email: ctx.email,
            name: ctx.name,
            locale: ctx.locale,
        }
    }
}

impl From<RequestContext> for chatkit_engine::RequestContext {
    fn from(ctx: RequestContext) -> Self {
        let mut core = Self::new(ctx.user_id);
        core.email = ctx.email;
        core.name = ctx.name;
        core.locale = ctx.locale;
        core
    }
}

/// A core error as a JS error (see the crate docs for the message format).
pub(crate) fn to_js_error(err: chatkit_engine::Error) -> napi::Error {
    let body = String::from_utf8_lossy(&err.to_json_body()).into_owned();
    let payload = serde_json::json!({
        "code": err.code(),
        "status": err.http_status(),
        "message": err.to_string(),
        "body": body,
    });
    napi::Error::from_reason(format!("{ERROR_MARKER}{payload}"))
}
