//! # chatkit-engine
//!
//! A ChatKit backend as an embeddable Rust core: it takes the body of a
//! ChatKit request and the caller's identity, and returns either a JSON
//! document or a stream of ChatKit events that is byte-compatible with the
//! official Python SDK (`openai-chatkit` 1.6.5).
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::engine::{ChatEngine, EchoResponder, Response};
//! use chatkit_engine::store::SqliteStore;
//! use chatkit_engine::RequestContext;
//!
//! let engine = ChatEngine::builder()
//!     .store(SqliteStore::in_memory().await?)
//!     .responder(EchoResponder)
//!     .build()?;
//! let alice = RequestContext::new("alice");
//!
//! // A streaming request: one SSE frame per event.
//! let body = br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"hi"}]}}}"#;
//! if let Response::Stream(stream) = engine.process(body, alice.clone()).await? {
//!     let mut frames = stream.sse();
//!     while let Some(frame) = frames.next_frame().await {
//!         assert!(frame.starts_with(b"data: {") && frame.ends_with(b"}\n\n"));
//!     }
//! }
//!
//! // A plain request: one JSON document.
//! let body = br#"{"type":"threads.list","params":{}}"#;
//! let Response::Json(json) = engine.process(body, alice).await? else { unreachable!() };
//! assert!(json.starts_with(br#"{"data":[{"title":"hi","id":"thr_"#));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Two layers. The generic ChatKit engine, in the order a request meets it:
//! [`protocol`] (wire types), [`engine`] (dispatch and the turn pipeline;
//! [`engine::agent`] is the one bridge to agent runs), [`store`]
//! (persistence), [`agents`] (the run loop), [`models`] (LLM providers and
//! the offline scripted model), [`tools`] (tools and MCP), [`auth`] (who is
//! calling). On top of it, [`todo`](mod@todo): the to-do assistant (task table, the 7
//! tools, the English and Urdu agents, the offline task rules), which the
//! generic modules never import.

// Library code never panics on input; tests may.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod agents;
pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod engine;
pub mod error;
pub mod http;
pub mod models;
pub mod protocol;
pub mod store;
pub mod telemetry;
pub mod todo;
pub mod tools;
pub mod validate;

pub use config::EngineConfig;
pub use context::RequestContext;
pub use engine::{ChatEngine, Response};
pub use error::{Error, Result};

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The crate README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeExamples;

/// The repository README's Rust examples, compiled as doctests too. Only in
/// the repository: the published crate does not contain that README
/// (`cfg(chatkit_repository)` comes from `build.rs`).
#[cfg(all(doctest, chatkit_repository))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
