//! JS async functions as widget action handlers.
//!
//! The engine has already checked that the sender widget offers the action
//! (`chatkit_engine::engine::actions`); a [`JsActionHandler`] then calls the
//! JS handler on the JS thread and reads back the envelope the TS layer
//! builds from its `ActionResult` (`ActionOutcome::from_envelope`).

use async_trait::async_trait;
use chatkit_engine::engine::{ActionHandler, ActionOutcome};
use chatkit_engine::protocol::Action;
use chatkit_engine::{Error, RequestContext, Result};
use napi::Status;
use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use serde_json::{Value, json};

/// What a JS action handler receives: the verified caller, the action and
/// the widget that sent it.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct ActionCall {
    /// The verified user id.
    pub user_id: String,
    /// The caller's e-mail, when known.
    pub email: Option<String>,
    /// The caller's display name, when known.
    pub name: Option<String>,
    /// The caller's locale, when known.
    pub locale: Option<String>,
    /// The action `{"type": .., "payload": ..}`, as JSON text.
    pub action: String,
    /// The sender's widget root, as JSON text.
    pub widget: String,
}

/// The handler of a JS action: resolves to the JSON envelope of
/// `ActionOutcome::from_envelope` (`null`, `{"ok":true,"widget":..,
/// "effects":[..]}` or `{"ok":false,"code":..,"error":..}`). Weak: a
/// registered handler never keeps the Node process alive.
pub type ActionFn =
    ThreadsafeFunction<ActionCall, Promise<String>, ActionCall, Status, false, true>;

/// A widget action handler defined in JS.
#[napi(object, object_to_js = false)]
pub struct NativeAction {
    /// The action type it handles.
    #[napi(js_name = "type")]
    pub kind: String,
    /// Handles one action; resolves to the JSON envelope.
    #[napi(ts_type = "(call: ActionCall) => Promise<string>")]
    pub handler: ActionFn,
}

/// A [`NativeAction`] as a core [`ActionHandler`].
pub(crate) struct JsActionHandler {
    kind: String,
    handler: ActionFn,
}

impl JsActionHandler {
    /// Checks the definition: a non-empty action type.
    pub(crate) fn new(action: NativeAction) -> Result<(String, Self)> {
        if action.kind.trim().is_empty() {
            return Err(Error::Config(
                "an action handler needs an action type".into(),
            ));
        }
        Ok((
            action.kind.clone(),
            Self {
                kind: action.kind,
                handler: action.handler,
            },
        ))
    }
}

#[async_trait]
impl ActionHandler for JsActionHandler {
    async fn handle(
        &self,
        action: Action,
        widget: Value,
        ctx: RequestContext,
    ) -> Result<ActionOutcome> {
        let call = ActionCall {
            user_id: ctx.user_id.clone(),
            email: ctx.email.clone(),
            name: ctx.name.clone(),
            locale: ctx.locale.clone(),
            action: json!({ "type": action.kind, "payload": action.payload }).to_string(),
            widget: widget.to_string(),
        };
        let failed = |err: napi::Error| {
            Error::Internal(format!(
                "JS action handler `{}` failed: {}",
                self.kind, err.reason
            ))
        };
        let promise = self.handler.call_async_catch(call).await.map_err(failed)?;
        let envelope = promise.await.map_err(failed)?;
        let envelope: Value = serde_json::from_str(&envelope).map_err(|err| {
            Error::Internal(format!(
                "JS action handler `{}` answered with text that is not JSON: {err}",
                self.kind
            ))
        })?;
        ActionOutcome::from_envelope(envelope)
    }
}
