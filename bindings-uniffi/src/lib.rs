//! uniffi binding of `chatkit-engine`: the engine for Kotlin, Swift, Python
//! and every other uniffi language, from one proc-macro interface (no UDL).
//!
//! This crate only converts types, maps errors and bridges async code; the
//! ChatKit backend is the core crate. `uniffi-bindgen` (the `cli` feature)
//! turns the built library into Kotlin, Swift and Python sources
//! (`scripts/generate.sh`).
//!
//! | item | kind | what it is |
//! | --- | --- | --- |
//! | [`ChatEngine`] | object | the to-do app's engine: `start`, `authenticate`, `process`, `run_task_tool`, `running_turns` |
//! | [`EngineConfig`] | record | the core's config keys (database URL, model, JWT), unset = core default |
//! | [`RequestContext`] | record | the verified caller |
//! | [`ProcessResult`] | enum | `Json { body }` or `Stream { stream }` |
//! | [`ResponseStream`] | object | async `next()` (null at the end) and `cancel()` |
//! | [`HostTool`] | foreign trait | a host function as an agent tool ([`ToolCall`] in, [`ToolResult`] or [`ToolError`] out) |
//! | [`ChatKitError`] | error enum | every failure, with the core's stable `code`, `http_status`, `reason` and `json_body` |
//! | [`core_version`] | function | the version of the core |
//!
//! Async: every exported `async fn` runs its work on one tokio runtime of
//! the process (`runtime.rs`) and only awaits it from the foreign executor,
//! so no engine work runs on, or blocks, the caller's thread.

mod config;
mod engine;
mod error;
mod response;
mod runtime;
mod tools;

pub use config::EngineConfig;
pub use engine::{ChatEngine, RequestContext};
pub use error::ChatKitError;
pub use response::{ProcessResult, ResponseStream};
pub use tools::{HostTool, ToolCall, ToolError, ToolResult};

uniffi::setup_scaffolding!();

/// The version of the core this binding wraps.
#[uniffi::export]
pub fn core_version() -> String {
    chatkit_engine::VERSION.to_owned()
}
