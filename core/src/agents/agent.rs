//! Agents: instructions, tools, handoffs and model settings.

use crate::context::RequestContext;
use crate::models::{Model, ModelSettings, ToolSpec};
use crate::tools::ToolSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A function computing an agent's instructions from the caller.
pub type InstructionsFn = Arc<dyn Fn(&RequestContext) -> String + Send + Sync>;

/// An agent's system prompt: fixed, or computed per request.
#[derive(Clone)]
pub enum Instructions {
    /// The same text for everyone.
    Static(String),
    /// Computed from the caller (name, locale, ...) on every turn.
    Dynamic(InstructionsFn),
}

impl fmt::Debug for Instructions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instructions::Static(text) => f.debug_tuple("Static").field(text).finish(),
            Instructions::Dynamic(_) => f.write_str("Dynamic(..)"),
        }
    }
}

/// An LLM persona with tools and the agents it may hand the conversation to.
///
/// ```
/// use chatkit_engine::agents::Agent;
/// let urdu = Agent::new("Urdu Specialist").instructions("Answer only in Urdu.");
/// let orchestrator = Agent::new("Task Orchestrator")
///     .instructions("Manage the user's tasks.")
///     .handoff(urdu.handoff_description("Handles Urdu conversations."));
/// assert_eq!(orchestrator.handoffs()[0].tool_name(), "transfer_to_urdu_specialist");
/// ```
#[derive(Clone)]
pub struct Agent {
    name: String,
    instructions: Instructions,
    handoff_description: Option<String>,
    tools: ToolSet,
    handoffs: Vec<Arc<Agent>>,
    model: Option<Arc<dyn Model>>,
    settings: ModelSettings,
    /// `all_specs`, built on first use: the tools are fixed once the agent
    /// is built, and every model call sends them.
    specs: OnceLock<Arc<[ToolSpec]>>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("tools", &self.tools)
            .field(
                "handoffs",
                &self
                    .handoffs
                    .iter()
                    .map(|agent| agent.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Agent {
    /// An agent with no instructions, tools or handoffs.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            instructions: Instructions::Static(String::new()),
            handoff_description: None,
            tools: ToolSet::new(),
            handoffs: Vec::new(),
            model: None,
            settings: ModelSettings::default(),
            specs: OnceLock::new(),
        }
    }

    /// Fixed instructions.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions = Instructions::Static(text.into());
        self
    }

    /// Instructions computed from the caller on every turn.
    pub fn dynamic_instructions(
        mut self,
        compute: impl Fn(&RequestContext) -> String + Send + Sync + 'static,
    ) -> Self {
        self.instructions = Instructions::Dynamic(Arc::new(compute));
        self
    }

    /// What other agents are told about this one when it is a handoff target.
    pub fn handoff_description(mut self, text: impl Into<String>) -> Self {
        self.handoff_description = Some(text.into());
        self
    }

    /// The agent's tools.
    pub fn tools(mut self, tools: ToolSet) -> Self {
        self.tools = tools;
        self.specs = OnceLock::new();
        self
    }

    /// Adds an agent this one may hand the conversation to.
    pub fn handoff(mut self, agent: impl Into<Arc<Agent>>) -> Self {
        self.handoffs.push(agent.into());
        self.specs = OnceLock::new();
        self
    }

    /// A model for this agent only (otherwise the runner's default).
    pub fn model(mut self, model: Arc<dyn Model>) -> Self {
        self.model = Some(model);
        self
    }

    /// Sampling and tool settings.
    pub fn settings(mut self, settings: ModelSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The system prompt for this caller.
    pub fn system_prompt(&self, ctx: &RequestContext) -> String {
        match &self.instructions {
            Instructions::Static(text) => text.clone(),
            Instructions::Dynamic(compute) => compute(ctx),
        }
    }

    /// The agent's own tools.
    pub fn tool_set(&self) -> &ToolSet {
        &self.tools
    }

    /// The agents it may hand off to.
    pub fn handoffs(&self) -> &[Arc<Agent>] {
        &self.handoffs
    }

    /// Its own model, if any.
    pub fn own_model(&self) -> Option<&Arc<dyn Model>> {
        self.model.as_ref()
    }

    /// Its model settings.
    pub fn model_settings(&self) -> &ModelSettings {
        &self.settings
    }

    /// The name of the tool that transfers to this agent:
    /// `transfer_to_` + the name in snake case.
    pub fn tool_name(&self) -> String {
        let mut snake = String::from("transfer_to_");
        for c in self.name.trim().chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                snake.push(c.to_ascii_lowercase());
            } else {
                snake.push('_');
            }
        }
        snake
    }

    /// The tool spec that represents a handoff to this agent.
    pub fn handoff_spec(&self) -> ToolSpec {
        let mut description = format!("Handoff to the {} agent to handle the request.", self.name);
        if let Some(extra) = &self.handoff_description {
            description.push(' ');
            description.push_str(extra);
        }
        ToolSpec {
            name: self.tool_name(),
            description,
            parameters: serde_json::json!({"type": "object", "properties": {}, "additionalProperties": false, "required": []}),
            strict: true,
        }
    }

    /// Every spec the model sees: own tools, then handoffs. Built once per
    /// agent and shared by every model call.
    pub fn all_specs(&self) -> Arc<[ToolSpec]> {
        let specs = self.specs.get_or_init(|| {
            let mut specs = self.tools.specs();
            specs.extend(self.handoffs.iter().map(|agent| agent.handoff_spec()));
            specs.into()
        });
        Arc::clone(specs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::tools::{Tool, ToolContext, ToolOutput};
    use async_trait::async_trait;
    use serde_json::{Value, json};

    struct Named(&'static str);

    #[async_trait]
    impl Tool for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn description(&self) -> &str {
            "test tool"
        }
        fn parameters(&self) -> Value {
            json!({"type": "object"})
        }
        async fn call(&self, _: Value, _: &ToolContext) -> crate::Result<ToolOutput> {
            Ok(ToolOutput::text("done"))
        }
    }

    fn names(specs: &[ToolSpec]) -> Vec<&str> {
        specs.iter().map(|spec| spec.name.as_str()).collect()
    }

    #[test]
    fn specs_are_built_once_and_follow_later_builder_calls() {
        let agent = Agent::new("Main").tools(ToolSet::new().with(Named("a")));
        let first = agent.all_specs();
        assert!(
            Arc::ptr_eq(&first, &agent.all_specs()),
            "shared, not rebuilt"
        );
        assert_eq!(names(&first), ["a"]);

        let agent = agent
            .tools(ToolSet::new().with(Named("b")))
            .handoff(Agent::new("Urdu Specialist"));
        assert_eq!(
            names(&agent.all_specs()),
            ["b", "transfer_to_urdu_specialist"]
        );
    }
}
