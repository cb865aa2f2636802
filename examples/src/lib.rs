//! Library part of the examples: the `serve` HTTP server, shared by the
//! `serve` binary and its tests.

pub mod serve;
