//! Workflows (grouped task rows such as tool activity and reasoning) and tasks.

use super::Source;
use serde::{Deserialize, Serialize};

/// A collapsible group of tasks shown in the transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// `custom` or `reasoning`.
    #[serde(rename = "type")]
    pub kind: WorkflowKind,
    /// The rows.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Shown when collapsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<WorkflowSummary>,
    /// Whether it starts expanded.
    #[serde(default)]
    pub expanded: bool,
}

/// The kind of a [`Workflow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    /// Application-defined steps (tool activity).
    Custom,
    /// Model reasoning.
    Reasoning,
}

/// The collapsed label of a workflow: a title, or a duration in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkflowSummary {
    /// A title with an optional icon.
    Custom {
        /// The title.
        title: String,
        /// Icon name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        icon: Option<String>,
    },
    /// "Worked for N seconds".
    Duration {
        /// Whole seconds.
        duration: i64,
    },
}

/// One row of a workflow, or a standalone task item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Spinner, check mark or nothing.
    #[serde(default)]
    pub status_indicator: StatusIndicator,
    /// The kind-specific fields.
    #[serde(flatten)]
    pub kind: TaskKind,
}

/// The indicator shown next to a task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusIndicator {
    /// No indicator.
    #[default]
    None,
    /// A spinner.
    Loading,
    /// A check mark.
    Complete,
}

/// The kind-specific part of a [`Task`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskKind {
    /// A free-form step.
    Custom {
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Icon name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        icon: Option<String>,
        /// Body text (markdown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    /// A web search.
    WebSearch {
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// The query to show in the title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title_query: Option<String>,
        /// The queries run.
        #[serde(default)]
        queries: Vec<String>,
        /// Pages found.
        #[serde(default)]
        sources: Vec<Source>,
    },
    /// A reasoning step.
    Thought {
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// The thought.
        content: String,
    },
    /// Files used.
    File {
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// The files.
        #[serde(default)]
        sources: Vec<Source>,
    },
    /// An image step.
    Image {
        /// Title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
}

impl Task {
    /// A `custom` task with a title and optional content.
    pub fn custom(
        status: StatusIndicator,
        title: impl Into<String>,
        content: Option<String>,
    ) -> Self {
        Self {
            status_indicator: status,
            kind: TaskKind::Custom {
                title: Some(title.into()),
                icon: None,
                content,
            },
        }
    }
}
