//! Test helper: serves the 7 task tools over MCP Streamable HTTP on
//! `127.0.0.1:<port>` (path `/mcp`) and prints `PORT=<port>` on stdout.
//!
//! ```text
//! JWT_SECRET=... DATABASE_URL=sqlite::memory: \
//!     cargo run -p chatkit-engine --example mcp_http_server -- [port]
//! ```
//!
//! The engine comes from the environment (`EngineConfig::from_env`); Bearer
//! tokens are checked by its verifier. Port 0 (the default) picks a free
//! port. The real host mounts `McpHttpService` in its own router (the
//! `serve` example does, at `/mcp`); this binary exists for the MCP tests.

use chatkit_engine::EngineConfig;
use chatkit_engine::todo::App;
use chatkit_engine::tools::mcp::McpHttpService;
use std::io::Write;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(port) => port.parse()?,
        None => 0,
    };
    let todo = App::from_config(EngineConfig::from_env()?).await?;
    let mcp = McpHttpService::new(todo.assistant.tools().clone(), todo.engine);
    let app = axum::Router::new().route_service("/mcp", mcp);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    println!("PORT={port}");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
