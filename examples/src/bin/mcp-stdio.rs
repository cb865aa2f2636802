//! The task tools as an MCP server on stdin/stdout, for MCP desktop clients
//! (Claude Desktop, Cursor, ...) and inspectors.
//!
//! ```text
//! JWT_SECRET=... DATABASE_URL=sqlite://chatkit.db \
//!     cargo run -p chatkit-engine-examples --bin mcp-stdio -- --token <JWT>
//! ```
//!
//! The user is the subject of `--token` (or `CHATKIT_MCP_TOKEN`), verified
//! once at start-up by the same verifier as the HTTP endpoints (`JWKS_URL`,
//! `JWKS` or `JWT_SECRET`, see `EngineConfig`). For local development only,
//! `--user <id>` runs as that user without any token; it must be asked for
//! explicitly. Logs go to stderr (stdout carries the protocol; set
//! `RUST_LOG` for more).

use chatkit_engine::todo::App;
use chatkit_engine::tools::mcp::{McpServer, serve_stdio};
use chatkit_engine::{EngineConfig, Error, RequestContext, Result};
use chatkit_engine_examples::logging::{self, LogFormat};
use clap::Parser;

/// MCP stdio server for the chatkit-engine task tools.
#[derive(Parser, Debug)]
#[command(name = "mcp-stdio", version)]
struct Args {
    /// The user's JWT (Better Auth or any token the configured verifier
    /// accepts). Prefer the CHATKIT_MCP_TOKEN variable over the command line.
    #[arg(long, env = "CHATKIT_MCP_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// DEVELOPMENT ONLY: act as this user id without a token.
    #[arg(long, conflicts_with = "token")]
    user: Option<String>,
}

#[tokio::main]
async fn main() {
    // Escaped text lines on stderr (stdout carries the protocol).
    logging::init(LogFormat::Text, "warn");
    if let Err(err) = run(Args::parse()).await {
        eprintln!("mcp-stdio: {err}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let App { engine, assistant } = App::from_config(EngineConfig::from_env()?).await?;
    let user = match (args.token, args.user) {
        (Some(token), _) => {
            engine
                .authenticate(Some(&format!("Bearer {token}")))
                .await?
        }
        (None, Some(user)) => {
            chatkit_engine::validate::user_id(&user)?;
            eprintln!("mcp-stdio: development mode, acting as user `{user}` without a token");
            RequestContext::new(user)
        }
        (None, None) => {
            return Err(Error::Unauthorized(
                "pass --token <JWT> (or set CHATKIT_MCP_TOKEN); --user <id> is for development only"
                    .into(),
            ));
        }
    };
    tracing::info!(user_id = %user.user_id, "serving the task tools over MCP stdio");
    serve_stdio(McpServer::new(assistant.tools().clone(), user)).await
}
