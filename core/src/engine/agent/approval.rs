//! Confirmation before a tool runs: the widget a paused run shows, and the
//! actions that answer it.
//!
//! | step | what happens |
//! | --- | --- |
//! | the model calls a tool that needs approval | the run pauses; a [`PendingApproval`](crate::store::PendingApproval) (the paused run, the prompt) is stored for the caller with an expiry; a `Card` asks the prompt with Confirm and Cancel |
//! | Confirm ([`CONFIRM`]) | the approval is marked approved (once, in one statement), the card says so, the same run resumes: the tool runs and the model goes on |
//! | Cancel ([`CANCEL`]) | marked declined, the card says so, the run resumes and the model is told the user declined |
//! | a second click, or a click after expiry | nothing runs: the stored card no longer offers the action, or the approval is no longer pending, or it has expired (the card then says so) |

use crate::protocol::widget::{ActionConfig, Component};
use serde_json::{Value, json};

/// The action type of the Confirm button.
pub const CONFIRM: &str = "chatkit.approval.confirm";
/// The action type of the Cancel button.
pub const CANCEL: &str = "chatkit.approval.cancel";

/// The card asking `prompt`, answered with Confirm / Cancel.
pub(super) fn ask(prompt: &str, approval_id: &str) -> Value {
    let payload = json!({ "approval_id": approval_id });
    Component::card()
        .key(approval_id)
        .child(Component::text(prompt).prop("weight", "semibold"))
        .child(Component::caption("The assistant waits for your answer."))
        .prop("size", "sm")
        .prop(
            "confirm",
            json!({"label": "Confirm", "action": Value::from(ActionConfig::new(CONFIRM).payload(payload.clone()))}),
        )
        .prop(
            "cancel",
            json!({"label": "Cancel", "action": Value::from(ActionConfig::new(CANCEL).payload(payload))}),
        )
        .into_value()
}

/// The card once answered (`Confirmed`, `Cancelled`, `Expired`): no actions.
pub(super) fn answered(prompt: &str, approval_id: &str, outcome: &str) -> Value {
    let (icon, color) = match outcome {
        "Confirmed" => ("check-circle-filled", "success"),
        _ => ("empty-circle", "secondary"),
    };
    Component::card()
        .key(approval_id)
        .child(Component::text(prompt).prop("weight", "semibold"))
        .child(
            Component::row()
                .child(Component::icon(icon).prop("color", color))
                .child(Component::caption(outcome))
                .prop("align", "center")
                .prop("gap", 1),
        )
        .prop("size", "sm")
        .into_value()
}
