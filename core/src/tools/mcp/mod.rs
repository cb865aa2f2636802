//! MCP (Model Context Protocol) on both sides, with the official Rust SDK
//! (`rmcp`).
//!
//! - [`server`]: serves any [`ToolSet`](super::ToolSet) (by default the 7
//!   task tools) to MCP clients. Over stdio the caller is fixed when the
//!   process starts (the `mcp-stdio` example checks a `--token` JWT); over
//!   Streamable HTTP ([`http`], feature `mcp-http`) every request carries
//!   `Authorization: Bearer <JWT>` and runs as that token's user.
//! - [`client`]: turns an external MCP server (a stdio command or a
//!   Streamable HTTP URL) into [`Tool`](super::Tool)s an agent can call,
//!   over one long-lived, reconnecting connection.
//!
//! Tool results keep their meaning across the boundary: the tool's JSON is
//! sent both as text content and as structured content, and a failed tool is
//! an MCP tool error (`isError: true`), never a protocol failure.
//!
//! At the boundary, every string of a call's arguments follows
//! [`validate::text`](crate::validate::text) (a control character other than
//! tab and line breaks is an `invalid_request` tool error before any tool
//! runs), and over HTTP a session belongs to the user who opened it.

pub mod client;
#[cfg(feature = "mcp-http")]
pub mod http;
pub mod server;
#[cfg(feature = "mcp-http")]
mod sessions;

pub use client::{
    Credentials, CredentialsHook, McpClientConfig, McpToolSource, McpTransportConfig,
};
#[cfg(feature = "mcp-http")]
pub use http::{Authenticator, DEFAULT_MAX_SESSIONS_PER_USER, McpHttpService};
pub use server::{McpServer, serve_stdio};
