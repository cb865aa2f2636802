//! Agents and the run loop, with the semantics of the OpenAI Agents SDK.
//!
//! An [`Agent`] has instructions, tools and handoffs. The [`Runner`] calls
//! the model, runs the tools a response asks for (concurrently, reporting in
//! call order), follows the first handoff of a response, and stops when a
//! response has text and no tool calls, or when the turn budget is spent. It
//! streams [`RunEvent`]s and knows nothing about ChatKit: the engine maps
//! them to ChatKit events.

mod agent;
mod runner;

pub use agent::{Agent, Instructions, InstructionsFn};
pub use runner::{RunConfig, RunEvent, RunStream, Runner};
