//! Agents and the run loop, with the semantics of the OpenAI Agents SDK.
//!
//! An [`Agent`] has instructions, tools and handoffs. The [`Runner`] calls
//! the model, runs the tools a response asks for (concurrently, reporting in
//! call order), follows the first handoff of a response, and stops when a
//! response has text and no tool calls, or when the turn budget is spent. It
//! streams [`RunEvent`]s and knows nothing about ChatKit: the engine maps
//! them to ChatKit events.
//!
//! A run is a stream its caller pulls. Rules:
//!
//! - It has no task and no channel of its own: the model call and the tools
//!   of a response advance only while [`RunStream`] is polled, in the
//!   caller's task.
//! - Cancelling is dropping. Dropping the stream drops the model stream (and
//!   with it the provider request) and the running tools at once;
//!   [`RunStream::cancel`] does the same, then the stream reports
//!   [`Error::Cancelled`](crate::Error::Cancelled) and ends.
//!   [`RunStream::cancel_after_turn`] lets the current model call and its
//!   tools finish and stops before the next model call.
//! - An `Err` item ends the run: the stream ends after it.

mod agent;
mod runner;

pub use agent::{Agent, Instructions, InstructionsFn};
pub use runner::{DECLINED_OUTPUT, PausedRun, RunConfig, RunEvent, RunStream, Runner};
