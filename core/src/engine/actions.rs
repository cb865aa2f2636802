//! Widget actions: handlers a host registers by action type, and the rules
//! every action obeys before a handler sees it.
//!
//! | rule | why |
//! | --- | --- |
//! | an action must come from a widget item of the caller's thread | the sender is loaded for the caller only; another user's item is "not found" |
//! | the widget must offer exactly that action (same `type`, same `payload`) | a forged payload (another task id, a made-up type) is refused with `invalid_request` and changes nothing |
//! | the handler runs for the verified caller ([`RequestContext`]) | it scopes every read and write to that user |
//! | a returned widget replaces the sender in place and is stored | `thread.item.updated` (`widget.root.updated`) for `threads.custom_action`, `updated_item` for `threads.sync_custom_action`; a reload shows it |
//! | effects become `client_effect` events | the host page refreshes what changed |
//!
//! No model is called.
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::engine::{ActionHandlers, ActionOutcome};
//! use chatkit_engine::protocol::widget::{ActionConfig, Component};
//! use chatkit_engine::protocol::Action;
//! use chatkit_engine::RequestContext;
//! use serde_json::json;
//!
//! let handlers = ActionHandlers::new().on("counter.add", |action: Action, widget: serde_json::Value, _ctx: RequestContext| async move {
//!     let n = action.payload.as_ref().and_then(|p| p["n"].as_i64()).unwrap_or(0);
//!     let _ = widget;
//!     Ok(ActionOutcome::replace(Component::card().child(Component::text(format!("{}", n + 1))).into_root()?))
//! });
//! let widget = Component::card()
//!     .child(Component::button("+1").prop("onClickAction", ActionConfig::new("counter.add").payload(json!({"n": 1}))))
//!     .into_root()?;
//! let ok = Action { kind: "counter.add".into(), payload: Some(json!({"n": 1})) };
//! let outcome = handlers.handle(&ok, &widget, &RequestContext::new("alice")).await?;
//! assert_eq!(outcome.widget.unwrap()["children"][0]["value"], "2");
//! let forged = Action { kind: "counter.add".into(), payload: Some(json!({"n": 99})) };
//! assert_eq!(handlers.handle(&forged, &widget, &RequestContext::new("alice")).await.unwrap_err().code(), "invalid_request");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::Action;
use crate::tools::ClientEffect;
use async_trait::async_trait;
use futures::future::BoxFuture;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// What a handled action changes on the page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionOutcome {
    /// The widget root that replaces the sender (`None`: it stays).
    pub widget: Option<Value>,
    /// `client_effect` events for the host page.
    pub effects: Vec<ClientEffect>,
}

impl ActionOutcome {
    /// Replaces the sender with `widget`.
    pub fn replace(widget: Value) -> Self {
        Self {
            widget: Some(widget),
            effects: Vec::new(),
        }
    }

    /// Adds a `client_effect`.
    pub fn with_effect(mut self, effect: ClientEffect) -> Self {
        self.effects.push(effect);
        self
    }

    /// The outcome a host-language handler (Python, JS) described as a JSON
    /// envelope, the format both bindings share:
    ///
    /// | envelope | meaning |
    /// | --- | --- |
    /// | `null` or `{"ok": true}` | nothing changes on the page |
    /// | `{"ok": true, "widget": {..}}` | the widget root that replaces the sender |
    /// | `{"ok": true, "effects": [{"name": .., "data": {..}}]}` | `client_effect` events |
    /// | `{"ok": false, "code": .., "error": ..}` | the handler refused: `invalid_request` and `not_supported` keep their code, any other code is a `custom` error showing `error` to the user |
    ///
    /// A widget that is not a root or an effect without a name is an
    /// `internal` error (a bug in the host's handler, logged, never shown).
    ///
    /// ```
    /// use chatkit_engine::engine::ActionOutcome;
    /// use serde_json::json;
    ///
    /// let outcome = ActionOutcome::from_envelope(json!({
    ///     "ok": true,
    ///     "widget": {"type": "Card", "children": []},
    ///     "effects": [{"name": "cart_changed", "data": {"count": 2}}],
    /// })).unwrap();
    /// assert_eq!(outcome.effects[0].name, "cart_changed");
    /// let refused = ActionOutcome::from_envelope(json!({"ok": false, "code": "invalid_request", "error": "Title cannot be empty"}));
    /// assert_eq!(refused.unwrap_err().code(), "invalid_request");
    /// ```
    pub fn from_envelope(envelope: Value) -> Result<Self> {
        let mut map = match envelope {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            _ => {
                return Err(Error::Internal(
                    "an action handler answered with something other than an object".into(),
                ));
            }
        };
        if map.get("ok") == Some(&Value::Bool(false)) {
            let message = map
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("the action failed")
                .to_owned();
            return Err(match map.get("code").and_then(Value::as_str) {
                Some("invalid_request") => Error::InvalidRequest(message),
                Some("not_supported") => Error::NotSupported(message),
                _ => Error::Custom {
                    message,
                    allow_retry: false,
                },
            });
        }
        let mut outcome = Self::default();
        if let Some(widget) = map.remove("widget").filter(|w| !w.is_null()) {
            crate::protocol::widget::check_root(&widget).map_err(|err| {
                Error::Internal(format!("an action handler's widget was refused: {err}"))
            })?;
            outcome.widget = Some(widget);
        }
        outcome.effects = ClientEffect::from_envelope(map.remove("effects"))
            .map_err(|message| Error::Internal(format!("an action handler's {message}")))?;
        Ok(outcome)
    }
}

/// Handles widget actions of one type.
#[async_trait]
pub trait ActionHandler: Send + Sync + 'static {
    /// Handles `action`, sent by `widget` (the sender's widget root, already
    /// checked to offer this action) for the caller in `ctx`.
    async fn handle(
        &self,
        action: Action,
        widget: Value,
        ctx: RequestContext,
    ) -> Result<ActionOutcome>;
}

type HandlerFn = Arc<
    dyn Fn(Action, Value, RequestContext) -> BoxFuture<'static, Result<ActionOutcome>>
        + Send
        + Sync,
>;

struct FnHandler(HandlerFn);

#[async_trait]
impl ActionHandler for FnHandler {
    async fn handle(
        &self,
        action: Action,
        widget: Value,
        ctx: RequestContext,
    ) -> Result<ActionOutcome> {
        (self.0)(action, widget, ctx).await
    }
}

/// Action handlers by action type. Cheap to clone.
#[derive(Clone, Default)]
pub struct ActionHandlers {
    handlers: Vec<(String, Arc<dyn ActionHandler>)>,
}

impl std::fmt::Debug for ActionHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.handlers.iter().map(|(kind, _)| kind))
            .finish()
    }
}

impl ActionHandlers {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles actions of type `kind` with `handler` (replacing an earlier
    /// one).
    pub fn register(mut self, kind: impl Into<String>, handler: Arc<dyn ActionHandler>) -> Self {
        self.push(kind, handler);
        self
    }

    /// Adds a handler in place (replacing an earlier one of that type).
    pub fn push(&mut self, kind: impl Into<String>, handler: Arc<dyn ActionHandler>) {
        let kind = kind.into();
        self.handlers.retain(|(existing, _)| *existing != kind);
        self.handlers.push((kind, handler));
    }

    /// Handles actions of type `kind` with an async function.
    pub fn on<F, Fut>(self, kind: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Action, Value, RequestContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActionOutcome>> + Send + 'static,
    {
        let handler: HandlerFn =
            Arc::new(move |action, widget, ctx| Box::pin(handler(action, widget, ctx)));
        self.register(kind, Arc::new(FnHandler(handler)))
    }

    /// Adds every handler of `other`.
    pub fn extend(&mut self, other: &ActionHandlers) {
        for (kind, handler) in &other.handlers {
            self.push(kind.clone(), Arc::clone(handler));
        }
    }

    /// Whether a handler for `kind` is registered.
    pub fn handles(&self, kind: &str) -> bool {
        self.handlers.iter().any(|(existing, _)| existing == kind)
    }

    /// Checks that `widget` offers `action`, then runs its handler for `ctx`.
    /// An unknown type is `not_supported`; an action the widget does not
    /// offer is `invalid_request`.
    pub async fn handle(
        &self,
        action: &Action,
        widget: &Value,
        ctx: &RequestContext,
    ) -> Result<ActionOutcome> {
        let handler = self
            .handlers
            .iter()
            .find(|(kind, _)| *kind == action.kind)
            .map(|(_, handler)| Arc::clone(handler))
            .ok_or_else(|| Error::NotSupported(format!("widget action `{}`", action.kind)))?;
        if !offers(widget, action) {
            tracing::warn!(action = %action.kind, "refusing an action its widget does not offer");
            return Err(Error::invalid(format!(
                "the widget does not offer this `{}` action",
                action.kind
            )));
        }
        let outcome = handler
            .handle(action.clone(), widget.clone(), ctx.clone())
            .await?;
        if let Some(widget) = &outcome.widget {
            crate::protocol::widget::check_root(widget)?;
        }
        Ok(outcome)
    }
}

/// Whether some action config inside `widget` (any `on...Action` prop, or a
/// card's `confirm` / `cancel`) has `action`'s type and payload.
///
/// A submitted form adds its fields to the payload (ChatKit merges the
/// values of named controls into it; a dotted name such as `task.title`
/// becomes a nested object). So the action of a `Form`'s `onSubmitAction`,
/// or of a `Card` with `asForm`, may carry extra top-level keys, but only
/// the names (first segments) of controls inside that form; every key the
/// config itself sets must come back unchanged.
pub fn offers(widget: &Value, action: &Action) -> bool {
    let payload = action.payload.clone().unwrap_or(Value::Null);
    let exact = |config: &Value| {
        config.get("type").and_then(Value::as_str) == Some(action.kind.as_str())
            && config.get("payload").cloned().unwrap_or(Value::Null) == payload
    };
    let with_fields = |config: &Value, form: &Value| {
        if config.get("type").and_then(Value::as_str) != Some(action.kind.as_str()) {
            return false;
        }
        let none = serde_json::Map::new();
        let configured = match config.get("payload") {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => &none,
            Some(_) => return false,
        };
        let Value::Object(sent) = &payload else {
            return false;
        };
        let fields = field_names(form);
        configured
            .iter()
            .all(|(key, value)| sent.get(key) == Some(value))
            && sent
                .keys()
                .filter(|key| !configured.contains_key(*key))
                .all(|key| fields.iter().any(|field| field == key))
    };
    let mut stack = vec![widget];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                let is_form = map.get("type").and_then(Value::as_str) == Some("Form")
                    || map.get("asForm") == Some(&Value::Bool(true));
                for (key, child) in map {
                    let is_action =
                        (key.starts_with("on") && key.ends_with("Action")) || key == "action";
                    let submits =
                        is_form && (key == "onSubmitAction" || key == "confirm" || key == "cancel");
                    if is_action && exact(child) {
                        return true;
                    }
                    if submits {
                        let config = child.get("action").unwrap_or(child);
                        if exact(config) || with_fields(config, value) {
                            return true;
                        }
                    }
                    stack.push(child);
                }
            }
            Value::Array(list) => stack.extend(list),
            _ => {}
        }
    }
    false
}

/// The payload keys the named controls inside `form` submit: each control's
/// `name` up to its first `.`.
fn field_names(form: &Value) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![form];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(name) = map.get("name").and_then(Value::as_str)
                    && map
                        .get("type")
                        .and_then(Value::as_str)
                        .is_some_and(is_control)
                {
                    let first = name.split('.').next().unwrap_or(name);
                    names.push(first.to_owned());
                }
                stack.extend(map.values());
            }
            Value::Array(list) => stack.extend(list),
            _ => {}
        }
    }
    names
}

/// Whether a component type is a form control with a submitted value.
fn is_control(kind: &str) -> bool {
    matches!(
        kind,
        "Input" | "Textarea" | "Select" | "DatePicker" | "Checkbox" | "RadioGroup"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::widget::{ActionConfig, Component};
    use serde_json::json;

    fn sent(kind: &str, payload: Value) -> Action {
        Action {
            kind: kind.into(),
            payload: Some(payload),
        }
    }

    fn form_widget() -> Value {
        Component::card()
            .child(
                Component::form(ActionConfig::new("note.save").payload(json!({"id": 7})))
                    .child(Component::input("title"))
                    .child(Component::input("meta.color")),
            )
            .child(Component::button("Pin").prop(
                "onClickAction",
                ActionConfig::new("note.pin").payload(json!({"id": 7})),
            ))
            .into_value()
    }

    #[test]
    fn a_submitted_form_may_add_the_values_of_its_own_controls() {
        let widget = form_widget();
        assert!(offers(&widget, &sent("note.save", json!({"id": 7}))));
        assert!(offers(
            &widget,
            &sent(
                "note.save",
                json!({"id": 7, "title": "x", "meta": {"color": "red"}})
            )
        ));
    }

    #[test]
    fn a_submitted_form_cannot_change_its_payload_or_add_other_keys() {
        let widget = form_widget();
        assert!(!offers(
            &widget,
            &sent("note.save", json!({"id": 8, "title": "x"}))
        ));
        assert!(!offers(&widget, &sent("note.save", json!({"title": "x"}))));
        assert!(!offers(
            &widget,
            &sent("note.save", json!({"id": 7, "owner": "bob"}))
        ));
        assert!(!offers(&widget, &sent("note.save", json!(["id", 7]))));
    }

    #[test]
    fn a_button_outside_a_form_takes_no_extra_keys() {
        let widget = form_widget();
        assert!(offers(&widget, &sent("note.pin", json!({"id": 7}))));
        assert!(!offers(
            &widget,
            &sent("note.pin", json!({"id": 7, "title": "x"}))
        ));
    }

    #[test]
    fn a_host_envelope_becomes_an_outcome_or_a_coded_error() {
        assert_eq!(
            ActionOutcome::from_envelope(Value::Null).unwrap(),
            ActionOutcome::default()
        );
        let err =
            ActionOutcome::from_envelope(json!({"ok": false, "error": "Sold out"})).unwrap_err();
        assert_eq!(
            (err.code(), err.to_string()),
            ("custom", "Sold out".to_owned())
        );
        let err = ActionOutcome::from_envelope(json!({"ok": true, "widget": {"type": "Text"}}))
            .unwrap_err();
        assert_eq!(err.code(), "internal");
        let err = ActionOutcome::from_envelope(json!({"ok": true, "effects": [{"data": {}}]}))
            .unwrap_err();
        assert_eq!(err.code(), "internal");
        assert_eq!(
            ActionOutcome::from_envelope(json!(3)).unwrap_err().code(),
            "internal"
        );
    }
}
