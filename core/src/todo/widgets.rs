//! The task widgets and their actions.
//!
//! | tool result | widget | actions it offers |
//! | --- | --- | --- |
//! | `list_tasks` | `ListView`, one `ListViewItem` per task (key = task id): done icon, title (struck through when done), priority and category badges, due date | `tasks.toggle`, `tasks.edit`, `tasks.delete` |
//! | `create_task`, `get_task`, `update_task`, `toggle_complete` | a `Card` of the task (key = task id) | `tasks.toggle`, `tasks.edit`, `tasks.delete` |
//! | `get_stats` | a compact `Card`: total, pending, done | none |
//!
//! Every task tool that changed tasks adds a `tasks_changed` client effect
//! (`{"task_ids": [...]}`) for the host page's `onEffect`.
//!
//! Actions (payload `{"task_id": ...}`), answered without the model for the
//! calling user only (see [`crate::engine::actions`] for the rules that
//! refuse forged payloads):
//!
//! | action | effect on the widget |
//! | --- | --- |
//! | `tasks.toggle` | toggles the task, redraws its row or card |
//! | `tasks.edit` | the row or card becomes a `Form`: title, priority, category, due date (`YYYY-MM-DD`, empty clears it), Save and Cancel |
//! | `tasks.edit_save` | the submitted form (payload `task_id` plus the fields `title`, `priority`, `category`, `due_date`) updates the task with the same validation as `update_task`; the task is redrawn. Bad values are an `invalid_request` error and change nothing (the form stays) |
//! | `tasks.edit_cancel` | redraws the task unchanged |
//! | `tasks.delete` | asks in place: the row becomes "Delete ...?" with `tasks.delete_confirm` / `tasks.delete_cancel` |
//! | `tasks.delete_confirm` | deletes the task, removes its row (a card says it was deleted) |
//! | `tasks.delete_cancel` | redraws the task unchanged |

use super::SharedTaskStore;
use super::task::{Category, Priority, TaskPatch, TaskRecord, TaskStats, parse_due_date};
use crate::context::RequestContext;
use crate::engine::{ActionHandlers, ActionOutcome};
use crate::error::{Error, Result};
use crate::protocol::Action;
use crate::protocol::Timestamp;
use crate::protocol::widget::{ActionConfig, Component};
use crate::tools::{ClientEffect, Tool, ToolContext, ToolOutput};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The `client_effect` sent after tasks changed.
pub const TASKS_CHANGED: &str = "tasks_changed";

/// Action types of the task widgets.
pub const TOGGLE: &str = "tasks.toggle";
/// Opens the edit form of a task (answered in place).
pub const EDIT: &str = "tasks.edit";
/// Saves the submitted edit form.
pub const EDIT_SAVE: &str = "tasks.edit_save";
/// Closes the edit form without a change.
pub const EDIT_CANCEL: &str = "tasks.edit_cancel";
/// Asks to delete a task (answered in place).
pub const DELETE: &str = "tasks.delete";
/// Deletes a task after the in-place question.
pub const DELETE_CONFIRM: &str = "tasks.delete_confirm";
/// Keeps a task after the in-place question.
pub const DELETE_CANCEL: &str = "tasks.delete_cancel";

/// A `tasks_changed` effect naming these tasks.
pub fn tasks_changed(task_ids: &[&str]) -> ClientEffect {
    ClientEffect::new(TASKS_CHANGED, json!({ "task_ids": task_ids }))
}

fn action(kind: &str, task: &TaskRecord) -> ActionConfig {
    ActionConfig::new(kind).payload(json!({ "task_id": task.id }))
}

fn priority_color(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "danger",
        Priority::Medium => "warning",
        Priority::Low => "secondary",
    }
}

fn badges(task: &TaskRecord) -> Component {
    let mut row = Component::row()
        .child(
            Component::badge(task.priority.as_str()).prop("color", priority_color(task.priority)),
        )
        .child(Component::badge(task.category.as_str()).prop("color", "info"));
    if let Some(due) = &task.due_date {
        row = row.child(Component::caption(format!("Due {}", day(due))));
    }
    row.prop("gap", 1)
}

fn title(task: &TaskRecord) -> Component {
    let text = Component::text(task.title.clone());
    if task.completed {
        text.prop("lineThrough", true).prop("color", "secondary")
    } else {
        text.prop("weight", "medium")
    }
}

fn buttons(task: &TaskRecord) -> [Component; 3] {
    let toggle = if task.completed { "Undo" } else { "Done" };
    [
        Component::button(toggle)
            .prop("onClickAction", action(TOGGLE, task))
            .prop("iconStart", if task.completed { "reload" } else { "check" })
            .prop("variant", "outline")
            .prop("size", "sm"),
        Component::button("Edit")
            .prop("onClickAction", action(EDIT, task))
            .prop("variant", "ghost")
            .prop("size", "sm"),
        Component::button("Delete")
            .prop("onClickAction", action(DELETE, task))
            .prop("color", "danger")
            .prop("variant", "ghost")
            .prop("size", "sm"),
    ]
}

fn done_icon(task: &TaskRecord) -> Component {
    let name = if task.completed {
        "check-circle-filled"
    } else {
        "empty-circle"
    };
    Component::icon(name).prop(
        "color",
        if task.completed {
            "success"
        } else {
            "secondary"
        },
    )
}

/// One row of the task list.
pub fn task_row(task: &TaskRecord) -> Component {
    let [toggle, edit, delete] = buttons(task);
    Component::list_view_item().key(task.id.clone()).child(
        Component::row()
            .child(done_icon(task))
            .child(
                Component::col()
                    .child(title(task))
                    .child(badges(task))
                    .prop("flex", 1)
                    .prop("gap", 1),
            )
            .child(toggle)
            .child(edit)
            .child(delete)
            .prop("align", "center")
            .prop("gap", 2),
    )
}

/// The edit form of a task: what `tasks.edit` shows in place.
fn edit_form(task: &TaskRecord) -> Component {
    let priorities = Priority::ALL.map(|p| (p.as_str(), p.as_str()));
    let categories = Category::ALL.map(|c| (c.as_str(), c.as_str()));
    let mut due = Component::input("due_date");
    if let Some(date) = &task.due_date {
        due = due.prop("defaultValue", day(date));
    }
    let due = due
        .prop("pattern", r"\d{4}-\d{2}-\d{2}")
        .prop("placeholder", "YYYY-MM-DD");
    Component::form(action(EDIT_SAVE, task))
        .child(Component::label("Title", "title"))
        .child(
            Component::input("title")
                .prop("defaultValue", task.title.clone())
                .prop("required", true),
        )
        .child(
            Component::row()
                .child(
                    Component::select("priority", priorities)
                        .prop("defaultValue", task.priority.as_str()),
                )
                .child(
                    Component::select("category", categories)
                        .prop("defaultValue", task.category.as_str()),
                )
                .child(due)
                .prop("gap", 2),
        )
        .child(
            Component::row()
                .child(Component::submit_button("Save").prop("size", "sm"))
                .child(
                    Component::button("Cancel")
                        .prop("onClickAction", action(EDIT_CANCEL, task))
                        .prop("variant", "outline")
                        .prop("size", "sm"),
                )
                .prop("gap", 2),
        )
        .prop("gap", 2)
}

/// `YYYY-MM-DD` of a timestamp.
fn day(at: &Timestamp) -> String {
    at.to_string().chars().take(10).collect()
}

/// The patch a submitted edit form asks for: every field it carries, each
/// checked like `update_task`'s arguments (the title by the task store).
fn edit_patch(payload: &Value) -> Result<TaskPatch> {
    let text = |field: &str| -> Result<Option<String>> {
        match payload.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.trim().to_owned())),
            Some(_) => Err(Error::invalid(format!("`{field}` must be text"))),
        }
    };
    let mut patch = TaskPatch {
        title: text("title")?,
        ..TaskPatch::default()
    };
    if let Some(priority) = text("priority")? {
        patch.priority = Some(priority.parse()?);
    }
    if let Some(category) = text("category")? {
        patch.category = Some(category.parse()?);
    }
    if let Some(due) = text("due_date")? {
        patch.due_date = Some(if due.is_empty() {
            None
        } else {
            Some(parse_due_date(&due)?)
        });
    }
    if patch.is_empty() {
        return Err(Error::invalid("the edit form sent no field to change"));
    }
    Ok(patch)
}

/// The in-place question of a row whose Delete was clicked.
fn confirm_row(task: &TaskRecord) -> Component {
    Component::list_view_item()
        .key(task.id.clone())
        .child(confirm_box(task))
}

fn confirm_box(task: &TaskRecord) -> Component {
    Component::row()
        .child(Component::text(format!("Delete “{}”?", task.title)).prop("weight", "medium"))
        .child(Component::spacer())
        .child(
            Component::button("Delete")
                .prop("onClickAction", action(DELETE_CONFIRM, task))
                .prop("color", "danger")
                .prop("size", "sm"),
        )
        .child(
            Component::button("Keep")
                .prop("onClickAction", action(DELETE_CANCEL, task))
                .prop("variant", "outline")
                .prop("size", "sm"),
        )
        .prop("align", "center")
        .prop("gap", 2)
}

fn list_status(count: usize) -> Value {
    let text = match count {
        0 => "No tasks".to_owned(),
        1 => "1 task".to_owned(),
        n => format!("{n} tasks"),
    };
    json!({ "text": text, "icon": "check-circle" })
}

/// The widget of a `list_tasks` page.
pub fn task_list(tasks: &[TaskRecord]) -> Value {
    Component::list_view()
        .children(tasks.iter().map(task_row))
        .prop("status", list_status(tasks.len()))
        .into_value()
}

/// The card of one task.
pub fn task_card(task: &TaskRecord) -> Value {
    let [toggle, edit, delete] = buttons(task);
    let mut card = Component::card().key(task.id.clone()).child(
        Component::row()
            .child(done_icon(task))
            .child(title(task))
            .prop("align", "center")
            .prop("gap", 2),
    );
    if let Some(description) = task.description.as_deref().filter(|d| !d.is_empty()) {
        card = card.child(
            Component::text(description)
                .prop("color", "secondary")
                .prop("size", "sm"),
        );
    }
    card.child(badges(task))
        .child(Component::divider())
        .child(
            Component::row()
                .child(toggle)
                .child(edit)
                .child(delete)
                .prop("gap", 2),
        )
        .prop("size", "sm")
        .into_value()
}

fn deleted_card(task_title: &str) -> Value {
    Component::card()
        .child(
            Component::row()
                .child(Component::icon("empty-circle").prop("color", "secondary"))
                .child(
                    Component::text(format!("Deleted “{task_title}”"))
                        .prop("lineThrough", true)
                        .prop("color", "secondary"),
                )
                .prop("align", "center")
                .prop("gap", 2),
        )
        .prop("size", "sm")
        .into_value()
}

/// The compact summary of `get_stats`.
pub fn stats_card(stats: &TaskStats) -> Value {
    let cell = |value: u64, label: &str| {
        Component::col()
            .child(Component::title(value.to_string()).prop("size", "md"))
            .child(Component::caption(label))
            .prop("align", "center")
            .prop("flex", 1)
    };
    Component::card()
        .child(
            Component::row()
                .child(cell(stats.total, "Total"))
                .child(cell(stats.pending, "Pending"))
                .child(cell(stats.completed, "Done")),
        )
        .prop("size", "sm")
        .into_value()
}

/// Adds the widget and the `tasks_changed` effect a task tool's result
/// calls for (nothing for a failed call).
pub fn present(tool: &str, output: &mut ToolOutput) {
    let Some(result) = &output.structured else {
        return;
    };
    if output.is_error || result["success"] != Value::Bool(true) {
        return;
    }
    let data = &result["data"];
    // Read through the reference: a list is tens of KiB of JSON, not worth a
    // clone per call.
    let record = || TaskRecord::deserialize(data).ok();
    match tool {
        "list_tasks" => {
            if let Ok(tasks) = Vec::<TaskRecord>::deserialize(data) {
                output.widget = Some(task_list(&tasks));
            }
        }
        "get_task" => output.widget = record().map(|task| task_card(&task)),
        "create_task" | "update_task" | "toggle_complete" => {
            if let Some(task) = record() {
                output.widget = Some(task_card(&task));
                output.effects.push(tasks_changed(&[task.id.as_str()]));
            }
        }
        "get_stats" => {
            if let Ok(stats) = TaskStats::deserialize(data) {
                output.widget = Some(stats_card(&stats));
            }
        }
        _ => {}
    }
}

/// A task tool whose results carry their widget and effects (see
/// [`present`]). `delete_task` also waits for the user's confirmation.
pub(super) struct Presented {
    inner: Arc<dyn Tool>,
    tasks: SharedTaskStore,
}

impl Presented {
    pub(super) fn new(inner: Arc<dyn Tool>, tasks: SharedTaskStore) -> Self {
        Self { inner, tasks }
    }
}

#[async_trait]
impl Tool for Presented {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn description(&self) -> &str {
        self.inner.description()
    }

    fn parameters(&self) -> Value {
        self.inner.parameters()
    }

    fn requires_approval(&self) -> bool {
        self.inner.name() == "delete_task" || self.inner.requires_approval()
    }

    async fn approval_prompt(&self, arguments: &Value, ctx: &ToolContext) -> Option<String> {
        if self.inner.name() != "delete_task" {
            return self.inner.approval_prompt(arguments, ctx).await;
        }
        // A task the caller does not have needs no confirmation: the call
        // runs and answers "Task not found".
        let id = arguments["task_id"].as_str().unwrap_or_default();
        let task = self.tasks.get(id, &ctx.request).await.ok()?;
        Some(format!("Delete the task “{}”?", task.title))
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        let task_id = arguments["task_id"].as_str().map(str::to_owned);
        let mut output = self.inner.call(arguments, ctx).await?;
        present(self.inner.name(), &mut output);
        if self.inner.name() == "delete_task"
            && !output.is_error
            && let Some(id) = task_id
        {
            output.effects.push(tasks_changed(&[id.as_str()]));
        }
        Ok(output)
    }
}

/// The task id an action names.
fn task_id(action: &Action) -> Result<String> {
    action
        .payload
        .as_ref()
        .and_then(|payload| payload["task_id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(format!("the `{}` action needs a task_id", action.kind)))
}

/// Replaces the node keyed `key` (a row or the card itself) with what
/// `render` makes of it; `None` removes a row. Returns whether it was found.
fn replace_keyed(widget: &mut Value, key: &str, render: &dyn Fn(bool) -> Option<Value>) -> bool {
    if widget["key"] == key {
        if let Some(new) = render(true) {
            *widget = new;
        }
        return true;
    }
    let Some(children) = widget.get_mut("children").and_then(Value::as_array_mut) else {
        return false;
    };
    if let Some(index) = children.iter().position(|child| child["key"] == key) {
        match render(false) {
            Some(new) => children[index] = new,
            None => {
                children.remove(index);
                let count = children.len();
                if widget["type"] == "ListView" {
                    widget["status"] = list_status(count);
                }
            }
        }
        return true;
    }
    children
        .iter_mut()
        .any(|child| replace_keyed(child, key, render))
}

/// The handlers of the task widgets' actions, over `tasks`.
pub fn task_actions(tasks: SharedTaskStore) -> ActionHandlers {
    let mut handlers = ActionHandlers::new();
    for kind in [
        TOGGLE,
        EDIT,
        EDIT_SAVE,
        EDIT_CANCEL,
        DELETE,
        DELETE_CONFIRM,
        DELETE_CANCEL,
    ] {
        let tasks = Arc::clone(&tasks);
        handlers = handlers.on(
            kind,
            move |action: Action, widget: Value, ctx: RequestContext| {
                let tasks = Arc::clone(&tasks);
                async move { handle(&tasks, &action, widget, &ctx).await }
            },
        );
    }
    handlers
}

async fn handle(
    tasks: &SharedTaskStore,
    action: &Action,
    mut widget: Value,
    ctx: &RequestContext,
) -> Result<ActionOutcome> {
    let id = task_id(action)?;
    // Every operation is the caller's: another user's task is "not found".
    let (task, removed, changed) = match action.kind.as_str() {
        TOGGLE => (tasks.toggle_complete(&id, ctx).await?, false, true),
        EDIT_SAVE => {
            let patch = edit_patch(action.payload.as_ref().unwrap_or(&Value::Null))?;
            (tasks.update(&id, &patch, ctx).await?, false, true)
        }
        EDIT | EDIT_CANCEL | DELETE | DELETE_CANCEL => (tasks.get(&id, ctx).await?, false, false),
        DELETE_CONFIRM => {
            let task = tasks.get(&id, ctx).await?;
            tasks.delete(&id, ctx).await?;
            (task, true, true)
        }
        other => return Err(Error::NotSupported(format!("widget action `{other}`"))),
    };
    let asking = action.kind == DELETE;
    let editing = action.kind == EDIT;
    let render = |is_root: bool| -> Option<Value> {
        if editing {
            let form = edit_form(&task);
            return Some(if is_root {
                Component::card()
                    .key(task.id.clone())
                    .child(form)
                    .prop("size", "sm")
                    .into_value()
            } else {
                Component::list_view_item()
                    .key(task.id.clone())
                    .child(form)
                    .into_value()
            });
        }
        match (is_root, removed, asking) {
            (true, true, _) => Some(deleted_card(&task.title)),
            (false, true, _) => None,
            (true, false, true) => Some(
                Component::card()
                    .key(task.id.clone())
                    .child(confirm_box(&task))
                    .prop("size", "sm")
                    .into_value(),
            ),
            (false, false, true) => Some(confirm_row(&task).into_value()),
            (true, false, false) => Some(task_card(&task)),
            (false, false, false) => Some(task_row(&task).into_value()),
        }
    };
    if !replace_keyed(&mut widget, &id, &render) {
        return Err(Error::invalid("the widget does not show this task"));
    }
    let mut outcome = ActionOutcome::replace(widget);
    if changed {
        outcome = outcome.with_effect(tasks_changed(&[id.as_str()]));
    }
    Ok(outcome)
}
