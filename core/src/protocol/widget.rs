//! A builder for ChatKit widget JSON (the `widget` of a `widget` item).
//!
//! Rules the builder keeps, so that the JSON validates against and
//! serializes like `openai-chatkit` 1.6.5's widget models:
//!
//! | rule | how |
//! | --- | --- |
//! | keys `key`, `id`, `type` come first | [`Component::key`] / [`Component::id`] are placed before `type` whenever they are set |
//! | ... except in the flex boxes `Box`, `Row`, `Col`, `Form` | their box props come first, then `key`, `id`, `type`, then the type's own `onSubmitAction` / `direction` (the Python models inherit the box props first) |
//! | props follow in the order given | give them in the Python model's declaration order for identical bytes |
//! | `children` is a list | [`Component::child`] / [`Component::children`] append to it |
//! | actions are complete `ActionConfig`s | [`ActionConfig`] always writes `type`, `payload` (when set), `handler`, `loadingBehavior`, `streaming` |
//! | a root is `Card`, `ListView` or `Basic` | [`Component::into_root`] refuses anything else |
//!
//! Component types the conformance suite checks prop by prop against the
//! strict models: `Card`, `ListView`, `ListViewItem`, `Row`, `Col`, `Box`,
//! `Text`, `Title`, `Caption`, `Badge`, `Button`, `Icon`, `Divider`,
//! `Spacer`, `Checkbox`, `Markdown`, `Form`, `Input`, `Select`, `Label`.
//!
//! ```
//! use chatkit_engine::protocol::widget::{ActionConfig, Component};
//! let card = Component::card()
//!     .child(Component::text("Ship it?"))
//!     .child(
//!         Component::button("Yes")
//!             .prop("onClickAction", ActionConfig::new("ship.confirm").payload(serde_json::json!({"id": 7}))),
//!     )
//!     .into_root()
//!     .unwrap();
//! assert_eq!(
//!     card.to_string(),
//!     r#"{"type":"Card","children":[{"type":"Text","value":"Ship it?"},{"type":"Button","label":"Yes","onClickAction":{"type":"ship.confirm","payload":{"id":7},"handler":"server","loadingBehavior":"auto","streaming":true}}]}"#
//! );
//! ```

use serde_json::{Map, Value};

/// The root types ChatKit accepts as a widget item's `widget`.
pub const ROOT_TYPES: [&str; 3] = ["Card", "ListView", "Basic"];

/// Flex boxes: serialized props first, then `key`, `id`, `type`.
const BOX_TYPES: [&str; 4] = ["Box", "Row", "Col", "Form"];

/// Fields a box type declares itself, serialized after `type`.
const BOX_OWN_PROPS: [&str; 2] = ["onSubmitAction", "direction"];

/// One widget component under construction.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    key: Option<String>,
    id: Option<String>,
    kind: String,
    props: Map<String, Value>,
}

impl Component {
    /// A component of type `kind` with no props.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            key: None,
            id: None,
            kind: kind.into(),
            props: Map::new(),
        }
    }

    /// A `Card` root (children are added with [`Component::child`]).
    pub fn card() -> Self {
        Self::new("Card").prop("children", Value::Array(Vec::new()))
    }

    /// A `ListView` root of `ListViewItem`s.
    pub fn list_view() -> Self {
        Self::new("ListView").prop("children", Value::Array(Vec::new()))
    }

    /// One row of a `ListView`.
    pub fn list_view_item() -> Self {
        Self::new("ListViewItem").prop("children", Value::Array(Vec::new()))
    }

    /// A horizontal box.
    pub fn row() -> Self {
        Self::new("Row").prop("children", Value::Array(Vec::new()))
    }

    /// A vertical box.
    pub fn col() -> Self {
        Self::new("Col").prop("children", Value::Array(Vec::new()))
    }

    /// Plain text.
    pub fn text(value: impl Into<String>) -> Self {
        Self::new("Text").prop("value", value.into())
    }

    /// A headline.
    pub fn title(value: impl Into<String>) -> Self {
        Self::new("Title").prop("value", value.into())
    }

    /// Supporting small text.
    pub fn caption(value: impl Into<String>) -> Self {
        Self::new("Caption").prop("value", value.into())
    }

    /// A small label (`color`: `secondary`, `success`, `danger`, `warning`,
    /// `info`, `discovery`).
    pub fn badge(label: impl Into<String>) -> Self {
        Self::new("Badge").prop("label", label.into())
    }

    /// A button; wire it with `.prop("onClickAction", ActionConfig::new(..))`
    /// after its label (the models' order: `label`, `onClickAction`,
    /// `iconStart`, `style`, `color`, `variant`, `size`, ...).
    pub fn button(label: impl Into<String>) -> Self {
        Self::new("Button").prop("label", label.into())
    }

    /// A button that submits its `Form` (the form's `onSubmitAction` is sent).
    pub fn submit_button(label: impl Into<String>) -> Self {
        Self::new("Button")
            .prop("submit", true)
            .prop("label", label.into())
    }

    /// A built-in icon by name (`check`, `calendar`, ...).
    pub fn icon(name: impl Into<String>) -> Self {
        Self::new("Icon").prop("name", name.into())
    }

    /// A divider line.
    pub fn divider() -> Self {
        Self::new("Divider")
    }

    /// Flexible space.
    pub fn spacer() -> Self {
        Self::new("Spacer")
    }

    /// A `Form`: a box whose `onSubmitAction` is sent with the values of the
    /// named controls inside it merged into its payload (see
    /// [`crate::engine::actions::offers`] for what the engine accepts).
    pub fn form(on_submit: ActionConfig) -> Self {
        Self::new("Form").prop("onSubmitAction", on_submit)
    }

    /// A text `Input` submitting its value as `name` (then, in the model's
    /// order: `inputType`, `defaultValue`, `required`, `pattern`,
    /// `placeholder`, ...).
    pub fn input(name: impl Into<String>) -> Self {
        Self::new("Input").prop("name", name.into())
    }

    /// A `Select` submitting the chosen option's value as `name`; `options`
    /// are `(value, label)` pairs (then `placeholder`, `defaultValue`, ...).
    pub fn select<'a>(
        name: impl Into<String>,
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let options: Vec<Value> = options
            .into_iter()
            .map(|(value, label)| serde_json::json!({ "value": value, "label": label }))
            .collect();
        Self::new("Select")
            .prop("name", name.into())
            .prop("options", options)
    }

    /// A `Label` for the control named `field_name`.
    pub fn label(value: impl Into<String>, field_name: impl Into<String>) -> Self {
        Self::new("Label")
            .prop("value", value.into())
            .prop("fieldName", field_name.into())
    }

    /// Sets `key` (written before `type`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets `id` (written before `type`): the target of
    /// `widget.component.updated`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets a prop; a `null` value removes it (ChatKit drops nulls), except
    /// for `children`.
    pub fn prop(mut self, name: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        if value.is_null() && name != "children" {
            self.props.shift_remove(name);
        } else {
            self.props.insert(name.to_owned(), value);
        }
        self
    }

    /// Appends a child to `children` (created if missing).
    pub fn child(mut self, child: Component) -> Self {
        let children = self
            .props
            .entry("children")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !children.is_array() {
            *children = Value::Array(Vec::new());
        }
        if let Value::Array(list) = children {
            list.push(child.into_value());
        }
        self
    }

    /// Appends every child.
    pub fn children(self, children: impl IntoIterator<Item = Component>) -> Self {
        children.into_iter().fold(self, Self::child)
    }

    /// The component type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The component as JSON.
    pub fn into_value(self) -> Value {
        let mut map = Map::with_capacity(self.props.len() + 3);
        let props_first = BOX_TYPES.contains(&self.kind.as_str());
        let props = if props_first {
            // The box props come first; a box type's own fields (`Form`'s
            // `onSubmitAction`, `direction`) follow `type`.
            let (own, shared): (Map<String, Value>, Map<String, Value>) = self
                .props
                .into_iter()
                .partition(|(name, _)| BOX_OWN_PROPS.contains(&name.as_str()));
            map.extend(shared);
            own
        } else {
            self.props
        };
        if let Some(key) = self.key {
            map.insert("key".into(), Value::String(key));
        }
        if let Some(id) = self.id {
            map.insert("id".into(), Value::String(id));
        }
        map.insert("type".into(), Value::String(self.kind));
        map.extend(props);
        Value::Object(map)
    }

    /// The component as a widget root, or a `Config` error when its type is
    /// not one of [`ROOT_TYPES`].
    pub fn into_root(self) -> crate::Result<Value> {
        if !ROOT_TYPES.contains(&self.kind.as_str()) {
            return Err(crate::Error::Config(format!(
                "a widget root must be one of {ROOT_TYPES:?}, not `{}`",
                self.kind
            )));
        }
        Ok(self.into_value())
    }
}

impl From<Component> for Value {
    fn from(component: Component) -> Self {
        component.into_value()
    }
}

/// Checks that `widget` can be a widget item's root: an object whose `type`
/// is one of [`ROOT_TYPES`] (what a host hands in from Python or JS).
pub fn check_root(widget: &Value) -> crate::Result<()> {
    match widget.get("type").and_then(Value::as_str) {
        Some(kind) if ROOT_TYPES.contains(&kind) => Ok(()),
        Some(kind) => Err(crate::Error::invalid(format!(
            "a widget root must be one of {ROOT_TYPES:?}, not `{kind}`"
        ))),
        None => Err(crate::Error::invalid(
            "a widget must be a JSON object with a `type`",
        )),
    }
}

/// Who handles an action: the server (a `threads.custom_action` request) or
/// the page's own `onAction` handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActionHandler {
    /// Sent to the server.
    #[default]
    Server,
    /// Handled in the browser.
    Client,
}

/// The action a widget control dispatches (`onClickAction`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct ActionConfig {
    kind: String,
    payload: Option<Value>,
    handler: ActionHandler,
    loading_behavior: &'static str,
    streaming: bool,
}

impl ActionConfig {
    /// An action of type `kind`, handled by the server with a streamed
    /// answer (`threads.custom_action`).
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            payload: None,
            handler: ActionHandler::Server,
            loading_behavior: "auto",
            streaming: true,
        }
    }

    /// The payload sent back with the action.
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = (!payload.is_null()).then_some(payload);
        self
    }

    /// Who handles it.
    pub fn handler(mut self, handler: ActionHandler) -> Self {
        self.handler = handler;
        self
    }

    /// `false`: the client sends `threads.sync_custom_action` and waits for
    /// the replaced item (works while another answer is streaming).
    pub fn streaming(mut self, streaming: bool) -> Self {
        self.streaming = streaming;
        self
    }

    /// Which part of the widget shows a loading state: `auto`, `none`,
    /// `self` or `container`; anything else keeps `auto`.
    pub fn loading_behavior(mut self, behavior: &str) -> Self {
        self.loading_behavior = match behavior {
            "none" => "none",
            "self" => "self",
            "container" => "container",
            _ => "auto",
        };
        self
    }
}

impl From<ActionConfig> for Value {
    fn from(action: ActionConfig) -> Self {
        let mut map = Map::with_capacity(5);
        map.insert("type".into(), Value::String(action.kind));
        if let Some(payload) = action.payload {
            map.insert("payload".into(), payload);
        }
        let handler = match action.handler {
            ActionHandler::Server => "server",
            ActionHandler::Client => "client",
        };
        map.insert("handler".into(), handler.into());
        map.insert("loadingBehavior".into(), action.loading_behavior.into());
        map.insert("streaming".into(), action.streaming.into());
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_and_id_come_before_type_whenever_they_are_set() {
        let value = Component::text("x").id("t1").key("k").into_value();
        assert_eq!(
            value.to_string(),
            r#"{"key":"k","id":"t1","type":"Text","value":"x"}"#
        );
    }

    #[test]
    fn a_null_prop_is_dropped_but_children_stay() {
        let value = Component::row()
            .prop("gap", 2)
            .prop("gap", Value::Null)
            .into_value();
        assert_eq!(value.to_string(), r#"{"children":[],"type":"Row"}"#);
    }

    #[test]
    fn flex_boxes_write_their_props_before_key_id_and_type() {
        let value = Component::col().prop("gap", 1).key("k").into_value();
        assert_eq!(
            value.to_string(),
            r#"{"children":[],"gap":1,"key":"k","type":"Col"}"#
        );
    }

    #[test]
    fn only_card_list_view_and_basic_can_be_roots() {
        assert!(Component::card().into_root().is_ok());
        assert!(Component::text("x").into_root().is_err());
        assert!(check_root(&json!({"type": "ListView", "children": []})).is_ok());
        assert!(check_root(&json!({"type": "Text"})).is_err());
        assert!(check_root(&json!("Card")).is_err());
    }

    #[test]
    fn an_action_writes_every_field_in_chatkit_order() {
        let value: Value = ActionConfig::new("a.b")
            .streaming(false)
            .loading_behavior("self")
            .into();
        assert_eq!(
            value.to_string(),
            r#"{"type":"a.b","handler":"server","loadingBehavior":"self","streaming":false}"#
        );
    }
}
