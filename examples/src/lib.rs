//! Library part of the examples: the `serve` HTTP server, shared by the
//! `serve` binary and its tests, and the log format of `serve` and
//! `mcp-stdio`.

pub mod logging;
pub mod otel;
pub mod serve;
