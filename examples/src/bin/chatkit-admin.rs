//! Operations on the engine's database beside an existing app.
//!
//! ```text
//! chatkit-admin migrate                           # create/upgrade the engine schema
//! chatkit-admin import-history [--dry-run] [--user ID]
//! ```
//!
//! | Command | What it does |
//! |---|---|
//! | `migrate` | creates the engine schema (`DATABASE_SCHEMA`, default `chatkit`), moves an earlier layout out of `public`, applies the migrations, and prints each step; uses `DATABASE_URL_DIRECT` when set (Neon: the direct endpoint), else `DATABASE_URL` |
//! | `import-history` | copies the app's conversations (`public.chat_sessions`/`chat_messages`, either shape) into engine threads per user; idempotent; `--dry-run` writes nothing; prints counts and a warning per malformed row |
//!
//! Both read `DATABASE_URL` like `serve` and need PostgreSQL.

use chatkit_engine::store::{self, PgConnectionPool, PostgresStore};
use chatkit_engine::todo::history::{ImportOptions, import_history};
use chatkit_engine::{EngineConfig, Error, Result};

const USAGE: &str =
    "usage: chatkit-admin migrate\n       chatkit-admin import-history [--dry-run] [--user ID]";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(err) = run(&args).await {
        eprintln!("chatkit-admin: {err}");
        std::process::exit(match err {
            Error::Config(_) => 2,
            _ => 1,
        });
    }
}

async fn run(args: &[String]) -> Result<()> {
    let config = EngineConfig::from_env()?;
    let command = args.first().map(String::as_str);
    match command {
        Some("migrate") => {
            if args.len() > 1 {
                return Err(Error::Config(format!(
                    "migrate takes no arguments\n{USAGE}"
                )));
            }
            let direct = std::env::var("DATABASE_URL_DIRECT")
                .ok()
                .filter(|url| !url.trim().is_empty());
            let url = postgres_url(direct.as_deref().unwrap_or(&config.database_url))?;
            let pool = reach(url).await?;
            let report = PostgresStore::migrate(&pool, &config.database_schema).await?;
            print!("{report}");
            pool.close().await;
            Ok(())
        }
        Some("import-history") => {
            let mut options = ImportOptions::default();
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--dry-run" => options.dry_run = true,
                    "--user" => {
                        let user = rest
                            .next()
                            .ok_or_else(|| Error::Config(format!("--user needs an id\n{USAGE}")))?;
                        options.user = Some(user.clone());
                    }
                    other => {
                        return Err(Error::Config(format!(
                            "unknown argument `{other}`\n{USAGE}"
                        )));
                    }
                }
            }
            let url = postgres_url(&config.database_url)?;
            let store =
                PostgresStore::with_pool_in(reach(url).await?, &config.database_schema).await?;
            let report = import_history(&store, &options).await?;
            print!("{report}");
            store.pool().close().await;
            Ok(())
        }
        _ => Err(Error::Config(USAGE.to_owned())),
    }
}

/// A pool on the database, or an error that names it (password redacted).
async fn reach(url: &str) -> Result<PgConnectionPool> {
    PostgresStore::pool_for(url).await.map_err(|err| match err {
        Error::Config(_) => err,
        other => Error::Config(format!(
            "cannot reach the database at {}: {other}",
            chatkit_engine::config::redact_url(url)
        )),
    })
}

/// The URL, if it names PostgreSQL (the app's database).
fn postgres_url(url: &str) -> Result<&str> {
    if store::is_postgres_url(url) {
        Ok(url)
    } else {
        Err(Error::Config(format!(
            "DATABASE_URL must name the app's PostgreSQL database (postgres://...), got `{}`",
            chatkit_engine::config::redact_url(url)
        )))
    }
}
