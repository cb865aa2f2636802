//! The load tool's parts, shared by the `loadtest` binary and the fault
//! tests (`examples/tests/faults.rs`): the built-in fake model provider, the
//! ChatKit client that times turns, and the `serve` child process.

pub mod client;
pub mod provider;
pub mod server;
