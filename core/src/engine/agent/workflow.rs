//! Run events mapped to ChatKit events: the assistant message, the
//! tool-activity workflow (a `custom` task per call: loading, then complete
//! or failed, closed with a duration summary), the reasoning workflow
//! (`thought` tasks) and handoffs.

use super::ToolLabels;
use crate::agents::RunEvent;
use crate::engine::Turn;
use crate::engine::responder::complete_message;
use crate::error::Result;
use crate::protocol::{
    AssistantMessage, AssistantMessageContent, IdKind, ItemKind, StatusIndicator, Task, TaskKind,
    ThreadItem, ThreadItemUpdate, ThreadStreamEvent, Timestamp, WidgetItem, Workflow, WorkflowItem,
    WorkflowKind, WorkflowSummary,
};
use std::time::Instant;

/// A workflow being streamed.
struct OpenWorkflow {
    id: String,
    created_at: Timestamp,
    kind: WorkflowKind,
    tasks: Vec<Task>,
    started: Instant,
}

impl OpenWorkflow {
    /// Starts a workflow and announces it with `thread.item.added`.
    async fn open(turn: &mut Turn, kind: WorkflowKind, tasks: Vec<Task>) -> Result<Self> {
        let item = turn.new_item(
            IdKind::Workflow,
            ItemKind::Workflow(WorkflowItem {
                workflow: Workflow {
                    kind,
                    tasks: tasks.clone(),
                    summary: None,
                    expanded: false,
                },
            }),
        );
        let open = Self {
            id: item.id.clone(),
            created_at: item.created_at,
            kind,
            tasks,
            started: Instant::now(),
        };
        turn.emit(ThreadStreamEvent::ItemAdded { item }).await?;
        Ok(open)
    }

    /// Ends it with a duration summary (`thread.item.done`, persisted).
    async fn close(self, turn: &mut Turn) -> Result<()> {
        let seconds = i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX);
        let item = ThreadItem {
            id: self.id,
            thread_id: turn.thread().id.clone(),
            created_at: self.created_at,
            kind: ItemKind::Workflow(WorkflowItem {
                workflow: Workflow {
                    kind: self.kind,
                    tasks: self.tasks,
                    summary: Some(WorkflowSummary::Duration { duration: seconds }),
                    expanded: false,
                },
            }),
        };
        turn.emit(ThreadStreamEvent::ItemDone { item }).await
    }
}

/// The mapping state of one turn.
pub(super) struct Mapper {
    labels: ToolLabels,
    message: Option<(ThreadItem, String)>,
    tools: Option<OpenWorkflow>,
    /// Task index of each running call id in the tools workflow.
    calls: Vec<(String, usize)>,
    reasoning: Option<(OpenWorkflow, String)>,
    /// The widget of the last tool that returned one, shown once their
    /// workflow closes (a lookup before an update shows only the update).
    widget: Option<serde_json::Value>,
}

impl Mapper {
    pub(super) fn new(labels: ToolLabels) -> Self {
        Self {
            labels,
            message: None,
            tools: None,
            calls: Vec::new(),
            reasoning: None,
            widget: None,
        }
    }

    /// Maps one run event. Only a text or reasoning delta of an open item is
    /// awaited in place: every other step (opening or closing an item, tool
    /// and handoff tasks) happens a few times per turn and is boxed, so that
    /// the open stream does not reserve room for their futures.
    pub(super) async fn apply(&mut self, turn: &mut Turn, event: RunEvent) -> Result<()> {
        match event {
            RunEvent::AgentStarted { .. }
            | RunEvent::Completed { .. }
            | RunEvent::ApprovalRequired { .. } => Ok(()),
            RunEvent::ReasoningDelta(delta) => self.reasoning_delta(turn, &delta).await,
            RunEvent::TextDelta(delta) => {
                if self.reasoning.is_some() {
                    Box::pin(self.close_reasoning(turn)).await?;
                }
                if self.message.is_none() {
                    Box::pin(self.open_message(turn)).await?;
                }
                if let Some((item, text)) = &mut self.message {
                    text.push_str(&delta);
                    let item_id = item.id.clone();
                    turn.emit(ThreadStreamEvent::ItemUpdated {
                        item_id,
                        update: ThreadItemUpdate::TextDelta {
                            content_index: 0,
                            delta,
                        },
                    })
                    .await?;
                }
                Ok(())
            }
            RunEvent::ResponseCompleted { text, usage, .. } => {
                turn.record_model_call(usage.input_tokens, usage.output_tokens, usage.estimated);
                Box::pin(self.close_reasoning(turn)).await?;
                if self.message.is_none() && !text.is_empty() {
                    Box::pin(self.open_message(turn)).await?;
                }
                Box::pin(self.finish_message(turn, &text)).await
            }
            RunEvent::ToolStarted { call } => {
                let label = (self.labels)(&call.name);
                let task = Task {
                    status_indicator: StatusIndicator::Loading,
                    kind: TaskKind::Custom {
                        title: Some(label.title),
                        icon: Some(label.icon),
                        content: None,
                    },
                };
                let index = Box::pin(self.add_tool_task(turn, task)).await?;
                self.calls.push((call.id, index));
                Ok(())
            }
            RunEvent::ToolFinished {
                call, mut output, ..
            } => {
                for effect in std::mem::take(&mut output.effects) {
                    turn.emit(ThreadStreamEvent::ClientEffect {
                        name: effect.name,
                        data: effect.data,
                    })
                    .await?;
                }
                if let Some(widget) = output.widget.take() {
                    self.widget = Some(widget);
                }
                let Some(index) = self
                    .calls
                    .iter()
                    .find(|(id, _)| *id == call.id)
                    .map(|(_, i)| *i)
                else {
                    return Ok(());
                };
                let summary: String = output.content.chars().take(400).collect();
                let label = (self.labels)(&call.name);
                let title = label.title;
                let task = if output.content == crate::agents::DECLINED_OUTPUT {
                    Task {
                        status_indicator: StatusIndicator::None,
                        kind: TaskKind::Custom {
                            title: Some(format!("{title}: cancelled")),
                            icon: Some("empty-circle".into()),
                            content: Some("You cancelled it".into()),
                        },
                    }
                } else if output.is_error {
                    Task {
                        status_indicator: StatusIndicator::None,
                        kind: TaskKind::Custom {
                            title: Some(format!("{title} failed")),
                            icon: Some("bug".into()),
                            content: Some(summary),
                        },
                    }
                } else {
                    Task {
                        status_indicator: StatusIndicator::Complete,
                        kind: TaskKind::Custom {
                            title: Some(title),
                            icon: Some(label.icon),
                            content: Some(summary),
                        },
                    }
                };
                Box::pin(self.update_tool_task(turn, index, task)).await
            }
            RunEvent::Handoff { to, .. } => Box::pin(self.handoff(turn, &to)).await,
        }
    }

    /// Forgets the widget waiting to be shown.
    pub(super) fn discard_widget(&mut self) {
        self.widget = None;
    }

    /// Shows the task of call `call_id` as waiting for the user.
    pub(super) async fn waiting(&mut self, turn: &mut Turn, call_id: &str) -> Result<()> {
        let Some(index) = self
            .calls
            .iter()
            .find(|(id, _)| id == call_id)
            .map(|(_, i)| *i)
        else {
            return Ok(());
        };
        let title = self
            .tools
            .as_ref()
            .and_then(|open| open.tasks.get(index))
            .and_then(|task| match &task.kind {
                TaskKind::Custom { title, .. } => title.clone(),
                _ => None,
            })
            .unwrap_or_default();
        let task = Task {
            status_indicator: StatusIndicator::None,
            kind: TaskKind::Custom {
                title: Some(title),
                icon: Some("circle-question".into()),
                content: Some("Waiting for your confirmation".into()),
            },
        };
        Box::pin(self.update_tool_task(turn, index, task)).await
    }

    pub(super) async fn handoff(&mut self, turn: &mut Turn, to: &str) -> Result<()> {
        let task = Task {
            status_indicator: StatusIndicator::Complete,
            kind: TaskKind::Custom {
                title: Some(format!("Handed off to {to}")),
                icon: Some("agent".into()),
                content: None,
            },
        };
        self.add_tool_task(turn, task).await.map(|_| ())
    }

    async fn open_message(&mut self, turn: &mut Turn) -> Result<()> {
        if self.message.is_some() {
            return Ok(());
        }
        // A visible answer closes the tool activity above it.
        self.close_tools(turn).await?;
        let item = turn.new_item(
            IdKind::Message,
            ItemKind::AssistantMessage(AssistantMessage {
                content: Vec::new(),
            }),
        );
        turn.emit(ThreadStreamEvent::ItemAdded { item: item.clone() })
            .await?;
        turn.emit(ThreadStreamEvent::ItemUpdated {
            item_id: item.id.clone(),
            update: ThreadItemUpdate::ContentPartAdded {
                content_index: 0,
                content: AssistantMessageContent::text(""),
            },
        })
        .await?;
        self.message = Some((item, String::new()));
        Ok(())
    }

    async fn finish_message(&mut self, turn: &mut Turn, final_text: &str) -> Result<()> {
        let Some((item, streamed)) = self.message.take() else {
            return Ok(());
        };
        let text = if final_text.is_empty() {
            streamed
        } else {
            final_text.to_owned()
        };
        complete_message(turn, item, &text).await
    }

    async fn add_tool_task(&mut self, turn: &mut Turn, task: Task) -> Result<usize> {
        if let Some(open) = &mut self.tools {
            let index = open.tasks.len();
            open.tasks.push(task.clone());
            let item_id = open.id.clone();
            turn.emit(ThreadStreamEvent::ItemUpdated {
                item_id,
                update: ThreadItemUpdate::WorkflowTaskAdded {
                    task_index: index,
                    task,
                },
            })
            .await?;
            return Ok(index);
        }
        // Text streamed before the tools belongs above them.
        if let Some((_, streamed)) = &self.message {
            let streamed = streamed.clone();
            self.finish_message(turn, &streamed).await?;
        }
        self.tools = Some(OpenWorkflow::open(turn, WorkflowKind::Custom, vec![task]).await?);
        self.calls.clear();
        Ok(0)
    }

    async fn update_tool_task(&mut self, turn: &mut Turn, index: usize, task: Task) -> Result<()> {
        let Some(open) = &mut self.tools else {
            return Ok(());
        };
        if let Some(slot) = open.tasks.get_mut(index) {
            *slot = task.clone();
        }
        let item_id = open.id.clone();
        turn.emit(ThreadStreamEvent::ItemUpdated {
            item_id,
            update: ThreadItemUpdate::WorkflowTaskUpdated {
                task_index: index,
                task,
            },
        })
        .await
    }

    async fn reasoning_delta(&mut self, turn: &mut Turn, delta: &str) -> Result<()> {
        if let Some((open, thought)) = &mut self.reasoning {
            thought.push_str(delta);
            let task = thought_task(thought);
            if let Some(slot) = open.tasks.get_mut(0) {
                *slot = task.clone();
            }
            let item_id = open.id.clone();
            return turn
                .emit(ThreadStreamEvent::ItemUpdated {
                    item_id,
                    update: ThreadItemUpdate::WorkflowTaskUpdated {
                        task_index: 0,
                        task,
                    },
                })
                .await;
        }
        let mut open = Box::pin(OpenWorkflow::open(
            turn,
            WorkflowKind::Reasoning,
            Vec::new(),
        ))
        .await?;
        let task = thought_task(delta);
        turn.emit(ThreadStreamEvent::ItemUpdated {
            item_id: open.id.clone(),
            update: ThreadItemUpdate::WorkflowTaskAdded {
                task_index: 0,
                task: task.clone(),
            },
        })
        .await?;
        open.tasks.push(task);
        self.reasoning = Some((open, delta.to_owned()));
        Ok(())
    }

    async fn close_reasoning(&mut self, turn: &mut Turn) -> Result<()> {
        match self.reasoning.take() {
            Some((open, _)) => open.close(turn).await,
            None => Ok(()),
        }
    }

    async fn close_tools(&mut self, turn: &mut Turn) -> Result<()> {
        self.calls.clear();
        if let Some(open) = self.tools.take() {
            open.close(turn).await?;
        }
        // The tools' widget sits below their activity, above the answer.
        if let Some(widget) = self.widget.take() {
            let item = turn.new_item(
                IdKind::Message,
                ItemKind::Widget(WidgetItem {
                    widget,
                    copy_text: None,
                }),
            );
            turn.emit(ThreadStreamEvent::ItemDone { item }).await?;
        }
        Ok(())
    }

    /// Ends the turn's open workflows (also after a failure, so the tool
    /// activity that did happen stays visible).
    pub(super) async fn close_workflows(&mut self, turn: &mut Turn) -> Result<()> {
        self.close_reasoning(turn).await?;
        self.close_tools(turn).await
    }
}

fn thought_task(text: &str) -> Task {
    Task {
        status_indicator: StatusIndicator::None,
        kind: TaskKind::Thought {
            title: None,
            content: text.to_owned(),
        },
    }
}
