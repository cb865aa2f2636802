//! The ChatKit backend over HTTP, with an MCP endpoint and a demo page.
//!
//! ```text
//! cargo run -p chatkit-engine-examples --bin serve            # then open http://127.0.0.1:8000/
//! cargo run -p chatkit-engine-examples --bin serve -- --help  # every option
//! ```
//!
//! With nothing set it keeps data in `chatkit.db` (SQLite, working
//! directory), answers with the offline scripted model and runs in
//! development identity mode (loopback only; the demo page signs in with
//! tokens the server issues). Set `JWKS_URL` (or `JWT_SECRET`) for real
//! users and `OPENAI_API_KEY` for a real model.

use chatkit_engine_examples::logging;
use chatkit_engine_examples::otel::Otel;
use chatkit_engine_examples::serve::{Args, ServeConfig, Server, shutdown_signal};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Span export only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let otel = match Otel::from_env() {
        Ok(otel) => otel,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::from(2);
        }
    };
    logging::init_with(args.log_format, "info", otel.as_ref());
    let code = run(args).await;
    if let Some(otel) = otel {
        otel.shutdown();
    }
    code
}

async fn run(args: Args) -> ExitCode {
    let config = match ServeConfig::from_args(args, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::from(1);
        }
    };
    println!("{}", server.banner());
    if server.state().is_dev() {
        tracing::warn!(
            "development identity mode is ON: anyone who can reach this address can sign in as any user"
        );
    }
    match server.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("serve: {message}");
            ExitCode::from(1)
        }
    }
}
