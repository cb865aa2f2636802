//! The to-do assistant's agents: "Task Orchestrator" (English) with a handoff
//! to "Urdu Specialist" (answers only in Urdu); both have the task tools.

use super::language::{self, Language};
use crate::agents::Agent;
use crate::tools::ToolSet;
use std::sync::Arc;

/// The orchestrator's name.
pub const ORCHESTRATOR: &str = "Task Orchestrator";
/// The Urdu specialist's name.
pub const URDU_SPECIALIST: &str = "Urdu Specialist";

const ORCHESTRATOR_PROMPT: &str = "You are the Task Orchestrator, a helpful assistant that manages the user's to-do tasks. \
Use the tools to create, list, get, update, complete (toggle_complete) and delete tasks and to show statistics. \
When the user names a task instead of giving its id, call list_tasks with a search first, then act on the match. \
Always confirm what you did in one or two short sentences. If a tool reports an error, explain it plainly. \
If the user writes in Urdu (Arabic script or Roman Urdu), hand off to the Urdu Specialist.";

const URDU_PROMPT: &str = "You are the Urdu Specialist. Answer only in Urdu (Arabic script), whatever language the tools return. \
Manage the user's to-do tasks with the tools right away: create, list, get, update, complete (toggle_complete), delete, and statistics. \
When the user names a task instead of giving its id, call list_tasks with a search first. Confirm briefly what you did.";

/// The two agents of the to-do assistant.
#[derive(Clone, Debug)]
pub struct TaskAgents {
    /// The entry agent.
    pub orchestrator: Arc<Agent>,
    /// The Urdu-only agent.
    pub urdu_specialist: Arc<Agent>,
}

impl TaskAgents {
    /// Builds both agents around `tools` (normally the 7 task tools).
    pub fn new(tools: ToolSet) -> Self {
        let urdu_specialist = Arc::new(
            Agent::new(URDU_SPECIALIST)
                .instructions(URDU_PROMPT)
                .handoff_description(
                    "Handles every conversation in Urdu or Roman Urdu and answers only in Urdu.",
                )
                .tools(tools.clone()),
        );
        let orchestrator = Arc::new(
            Agent::new(ORCHESTRATOR)
                .instructions(ORCHESTRATOR_PROMPT)
                .tools(tools)
                .handoff(Arc::clone(&urdu_specialist)),
        );
        Self {
            orchestrator,
            urdu_specialist,
        }
    }

    /// The agent that should answer `text`: Urdu (either script) goes to the
    /// specialist without a model round trip; everything else starts at the
    /// orchestrator.
    pub fn route(&self, text: &str) -> Arc<Agent> {
        match language::detect(text) {
            Language::Urdu | Language::RomanUrdu => Arc::clone(&self.urdu_specialist),
            Language::English => Arc::clone(&self.orchestrator),
        }
    }
}
