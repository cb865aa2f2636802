//! Command-line flags and environment variables of `serve`, and the checks
//! that turn them into a [`ServeConfig`] or a clear start-up error.

use chatkit_engine::EngineConfig;
use chatkit_engine::config::redact_url;
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The issuer of the tokens `serve` signs in development identity mode.
pub const DEV_ISSUER: &str = "chatkit-engine-dev";

/// `serve`: the ChatKit backend over HTTP, with a demo page.
///
/// Every option can also be given as the environment variable named in
/// brackets; a flag wins over the variable. With nothing set, `serve`
/// listens on 127.0.0.1:8000, keeps threads and tasks in the SQLite file
/// `chatkit.db` in the working directory, answers with the offline scripted
/// model, and runs in development identity mode (the demo page signs users
/// in with tokens the server issues itself). Development identity mode is
/// only possible without any JWT configuration and on a loopback address.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "serve",
    version,
    max_term_width = 100,
    after_long_help = "More engine settings come only from the environment: JWKS (an inline JWKS \
                       document), JWT_LEEWAY_SECS, JWKS_REFRESH_SECS, MAX_TURNS, HISTORY_ITEMS, \
                       TOOL_TIMEOUT_SECS; for replicas on one PostgreSQL: DATABASE_URL_DIRECT, \
                       DATABASE_POOLER, TURN_LEASE_SECS. Logs: RUST_LOG (default info)."
)]
pub struct Args {
    /// Address to listen on. Anything other than a loopback address needs
    /// JWT configuration (JWKS_URL, JWKS or JWT_SECRET).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Where threads and tasks live: `sqlite://file.db` or
    /// `postgres://user:pw@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://chatkit.db")]
    pub database_url: String,

    /// API key of an OpenAI-compatible provider. Without it the offline
    /// scripted model answers (development only).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,

    /// Base URL of the model provider, e.g. https://api.xiaomimimo.com/v1
    /// (default: OpenAI's).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// Model name, e.g. gpt-4o-mini or mimo-v2-flash.
    #[arg(long, env = "CHAT_MODEL")]
    pub chat_model: Option<String>,

    /// Speak HTTP/2 to the provider without negotiation, so all answers
    /// share one connection (the provider's concurrent-stream limit then
    /// caps how many run at once). Default: HTTP/1.1, a connection per
    /// open answer.
    #[arg(
        long,
        env = "OPENAI_HTTP2_PRIOR_KNOWLEDGE",
        value_parser = clap::builder::BoolishValueParser::new(),
        default_value = "false"
    )]
    pub openai_http2_prior_knowledge: bool,

    /// URL of the JWKS that verifies Bearer tokens, e.g. Better Auth's
    /// https://app.example.com/api/auth/jwks.
    #[arg(long, env = "JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Base URL of the Better Auth app, e.g. https://app.example.com: alone it
    /// sets the JWKS URL ({url}/api/auth/jwks), issuer and audience ({url}).
    /// JWKS_URL, JWT_ISSUER and JWT_AUDIENCE win when set.
    #[arg(long, env = "BETTER_AUTH_URL")]
    pub better_auth_url: Option<String>,

    /// The path ChatKit is answered at besides /chatkit (the app's Next.js
    /// route forwards to /api/chatkit).
    #[arg(long, env = "CHATKIT_PATH", default_value = "/api/chatkit")]
    pub chatkit_path: String,

    /// Shared HS256 secret that verifies Bearer tokens.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Required `iss` claim of Bearer tokens.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Accepted `aud` values of Bearer tokens (comma-separated).
    #[arg(long, env = "JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,

    /// Origins allowed to call the API from a browser (comma-separated, or
    /// `*` for any). Default: none, only the demo page's own origin.
    #[arg(long = "cors-origin", env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// The whole body of a `/chatkit` or `/mcp` request must arrive within
    /// this many seconds of the request head, or the answer is 408 and the
    /// connection is closed.
    #[arg(long, env = "REQUEST_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub request_body_timeout_secs: u64,

    /// While a request body is read, no more than this many seconds may pass
    /// without a byte, or the answer is 408 and the connection is closed.
    #[arg(long, env = "REQUEST_BODY_IDLE_SECS", default_value_t = 10)]
    pub request_body_idle_secs: u64,

    /// How many MCP sessions one user may hold open on `/mcp` at once; one
    /// more `initialize` is answered 429.
    #[arg(long, env = "MCP_MAX_SESSIONS_PER_USER", default_value_t = 16)]
    pub mcp_max_sessions_per_user: usize,

    /// Serve `/mcp` without sessions: every request stands alone and any
    /// replica can answer it (needed behind a load balancer without sticky
    /// sessions). Answers are plain JSON where the tool allows it, and the
    /// per-user session cap does not apply (there are no sessions).
    #[arg(
        long,
        env = "MCP_STATELESS",
        value_parser = clap::builder::BoolishValueParser::new(),
        default_value = "false"
    )]
    pub mcp_stateless: bool,

    /// On SIGTERM/SIGINT, how long running responses may go on before the
    /// server stops anyway, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Hosted mode (optional): the ChatKit workflow id for which
    /// `POST /chatkit/session` creates OpenAI ChatKit sessions. Needs
    /// OPENAI_API_KEY.
    #[arg(long, env = "CHATKIT_WORKFLOW_ID")]
    pub chatkit_workflow_id: Option<String>,

    /// Hosted mode: base URL of OpenAI's ChatKit sessions API.
    #[arg(
        long,
        env = "CHATKIT_API_BASE",
        default_value = "https://api.openai.com/v1"
    )]
    pub chatkit_api_base: String,

    /// Development identity mode only: pause this many milliseconds before
    /// each model event, to watch streaming (and stop a long answer) at human
    /// speed with the instant offline model.
    #[arg(long, env = "CHATKIT_DEV_STREAM_DELAY_MS", default_value_t = 0)]
    pub dev_stream_delay_ms: u64,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve `GET /metrics` (Prometheus text) on this address only, e.g.
    /// 127.0.0.1:9464, off the public port.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// Require `Authorization: Bearer <token>` on `GET /metrics`.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

pub use crate::logging::LogFormat;

/// Who may call the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityMode {
    /// Bearer JWTs verified with the configured JWKS or secret.
    Jwt,
    /// Development identity mode: the server signs tokens for any user name
    /// the demo page asks for. Never on a non-loopback address, never when
    /// JWT configuration is present.
    Dev,
}

/// Hosted-mode settings: `POST /chatkit/session` creates OpenAI ChatKit
/// sessions for the verified user.
#[derive(Clone)]
pub struct HostedSessions {
    /// OpenAI API key used for the sessions API.
    pub api_key: String,
    /// The ChatKit workflow id.
    pub workflow_id: String,
    /// Base URL of the API, without a trailing slash.
    pub api_base: String,
}

impl std::fmt::Debug for HostedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedSessions")
            .field("workflow_id", &self.workflow_id)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// Validated configuration of one `serve` process.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Where ChatKit is answered besides `/chatkit` (default `/api/chatkit`).
    pub chatkit_path: String,
    /// The engine's configuration. In development identity mode its
    /// `jwt_secret` and `jwt_issuer` are the per-process dev signing key.
    pub engine: EngineConfig,
    /// JWT or development identity mode.
    pub identity: IdentityMode,
    /// Allowed CORS origins (`*` = any); empty = no CORS headers.
    pub cors_origins: Vec<String>,
    /// How long running responses may go on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The whole-body deadline of `/chatkit` and `/mcp` requests.
    pub body_deadline: Duration,
    /// The idle-read deadline of every request body.
    pub body_idle: Duration,
    /// The cap on one user's open MCP sessions.
    pub mcp_max_sessions_per_user: usize,
    /// `/mcp` without sessions (any replica answers any request).
    pub mcp_stateless: bool,
    /// Pause before each streamed event (development identity mode only).
    pub dev_stream_delay: Duration,
    /// Hosted-mode session settings, when configured.
    pub hosted: Option<HostedSessions>,
    /// Log format.
    pub log_format: LogFormat,
    /// Where `GET /metrics` is answered.
    pub metrics: MetricsExposure,
}

/// Where `serve` answers `GET /metrics`.
///
/// | settings | `/metrics` |
/// | --- | --- |
/// | `CHATKIT_METRICS=false` | nowhere (nothing recorded) |
/// | `METRICS_ADDR` | only on that address (plus the token check when `METRICS_TOKEN` is set) |
/// | `METRICS_TOKEN` alone | on the main port, for `Authorization: Bearer <token>` only |
/// | neither, loopback `HOST` | on the main port |
/// | neither, other `HOST` | nowhere (the banner says how to turn it on) |
#[derive(Clone, PartialEq, Eq)]
pub enum MetricsExposure {
    /// Not served.
    Off,
    /// On the main port.
    Main {
        /// The bearer token required, if any.
        token: Option<String>,
    },
    /// On a listener of its own.
    Separate {
        /// Its address.
        addr: SocketAddr,
        /// The bearer token required, if any.
        token: Option<String>,
    },
}

impl std::fmt::Debug for MetricsExposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = |t: &Option<String>| if t.is_some() { "<redacted>" } else { "none" };
        match self {
            MetricsExposure::Off => f.write_str("Off"),
            MetricsExposure::Main { token: t } => write!(f, "Main {{ token: {} }}", token(t)),
            MetricsExposure::Separate { addr, token: t } => {
                write!(f, "Separate {{ addr: {addr}, token: {} }}", token(t))
            }
        }
    }
}

impl ServeConfig {
    /// Checks `args` and builds the configuration. `env` looks up the
    /// remaining engine variables (`JWKS`, `MAX_TURNS`, ...): pass
    /// `|name| std::env::var(name).ok()` in a real process.
    ///
    /// Every error is a sentence that tells the operator what to change.
    pub fn from_args(args: Args, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let ip: IpAddr = args.host.trim().parse().or_else(|_| {
            if args.host.trim().eq_ignore_ascii_case("localhost") {
                Ok(IpAddr::from([127, 0, 0, 1]))
            } else {
                Err(format!(
                    "HOST must be an IP address such as 127.0.0.1 or 0.0.0.0 (got `{}`)",
                    args.host
                ))
            }
        })?;
        let addr = SocketAddr::new(ip, args.port);

        let mut engine = EngineConfig::default();
        engine
            .apply_env(env)
            .map_err(|e| format!("invalid configuration: {e}"))?;
        engine.database_url = args.database_url.trim().to_owned();
        let set = |flag: Option<String>, slot: &mut Option<String>| {
            if let Some(v) = flag.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                *slot = Some(v);
            }
        };
        set(args.openai_api_key, &mut engine.openai_api_key);
        set(args.openai_base_url, &mut engine.openai_base_url);
        set(args.chat_model, &mut engine.chat_model);
        engine.openai_http2_prior_knowledge = args.openai_http2_prior_knowledge;
        set(args.jwks_url, &mut engine.jwks_url);
        set(args.jwt_secret, &mut engine.jwt_secret);
        set(args.jwt_issuer, &mut engine.jwt_issuer);
        let audience: Vec<String> = args
            .jwt_audience
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if !audience.is_empty() {
            engine.jwt_audience = audience;
        }
        set(args.better_auth_url, &mut engine.better_auth_url);
        engine.apply_better_auth();
        let chatkit_path = args.chatkit_path.trim().to_owned();
        if !chatkit_path.starts_with('/')
            || chatkit_path.len() < 2
            || chatkit_path.contains(['{', '}', '*', '?', '#'])
        {
            return Err(format!(
                "CHATKIT_PATH must be a plain absolute path such as /api/chatkit (got `{chatkit_path}`)"
            ));
        }
        if args.max_body_bytes == 0 {
            return Err("MAX_BODY_BYTES must be at least 1".into());
        }
        engine.max_body_bytes = args.max_body_bytes;
        if !(1..=3600).contains(&args.request_body_timeout_secs) {
            return Err("REQUEST_BODY_TIMEOUT_SECS must be between 1 and 3600".into());
        }
        if !(1..=args.request_body_timeout_secs).contains(&args.request_body_idle_secs) {
            return Err(
                "REQUEST_BODY_IDLE_SECS must be at least 1 and at most REQUEST_BODY_TIMEOUT_SECS"
                    .into(),
            );
        }
        if args.mcp_max_sessions_per_user == 0 {
            return Err("MCP_MAX_SESSIONS_PER_USER must be at least 1".into());
        }

        if let Some(url) = &engine.openai_base_url {
            check_http_url("OPENAI_BASE_URL", url)?;
        }
        if let Some(url) = &engine.jwks_url {
            check_http_url("JWKS_URL", url)?;
        }
        if engine
            .jwt_secret
            .as_ref()
            .is_some_and(|secret| secret.len() < 32)
        {
            return Err("JWT_SECRET must be at least 32 characters long".into());
        }

        let has_jwt_keys =
            engine.jwks_url.is_some() || engine.jwks.is_some() || engine.jwt_secret.is_some();
        let has_jwt_claims = engine.jwt_issuer.is_some() || !engine.jwt_audience.is_empty();
        let identity = if has_jwt_keys {
            IdentityMode::Jwt
        } else if has_jwt_claims {
            return Err(
                "JWT_ISSUER/JWT_AUDIENCE are set but no key to verify tokens with: set JWKS_URL, JWKS or JWT_SECRET too"
                    .into(),
            );
        } else if !ip.is_loopback() {
            return Err(format!(
                "refusing to start on {ip} without JWT configuration: development identity mode \
                 (anyone can sign in as anyone) only runs on a loopback address such as 127.0.0.1. \
                 Set JWKS_URL (or JWKS, or JWT_SECRET) to verify real users, or bind to 127.0.0.1"
            ));
        } else {
            engine.jwt_secret = Some(random_secret()?);
            engine.jwt_issuer = Some(DEV_ISSUER.to_owned());
            engine.jwt_audience = Vec::new();
            IdentityMode::Dev
        };

        if args.dev_stream_delay_ms > 0 && identity != IdentityMode::Dev {
            return Err(
                "CHATKIT_DEV_STREAM_DELAY_MS only works in development identity mode; unset it"
                    .into(),
            );
        }
        if args.dev_stream_delay_ms > 5_000 {
            return Err("CHATKIT_DEV_STREAM_DELAY_MS must be at most 5000".into());
        }
        engine.dev_token_delay_ms = args.dev_stream_delay_ms;

        let mut cors_origins = Vec::new();
        for origin in args.cors_origins.iter().map(|o| o.trim()) {
            if origin.is_empty() {
                continue;
            }
            if origin != "*" {
                check_http_url("CORS_ORIGINS", origin)?;
                if origin.ends_with('/') {
                    return Err(format!(
                        "CORS_ORIGINS entries are origins without a path or trailing slash (got `{origin}`)"
                    ));
                }
            }
            cors_origins.push(origin.to_owned());
        }
        if cors_origins.len() > 1 && cors_origins.iter().any(|o| o == "*") {
            return Err("CORS_ORIGINS: `*` cannot be combined with other origins".into());
        }

        let workflow = args
            .chatkit_workflow_id
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty());
        let hosted = match (workflow, &engine.openai_api_key) {
            (Some(workflow_id), Some(api_key)) => {
                check_http_url("CHATKIT_API_BASE", &args.chatkit_api_base)?;
                Some(HostedSessions {
                    api_key: api_key.clone(),
                    workflow_id,
                    api_base: args
                        .chatkit_api_base
                        .trim()
                        .trim_end_matches('/')
                        .to_owned(),
                })
            }
            (Some(_), None) => {
                return Err(
                    "CHATKIT_WORKFLOW_ID needs OPENAI_API_KEY to create ChatKit sessions".into(),
                );
            }
            (None, _) => None,
        };

        let metrics_token = args
            .metrics_token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("METRICS_TOKEN must be at least 16 characters long".into());
        }
        let metrics_addr = args
            .metrics_addr
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        let metrics = match (engine.metrics, metrics_addr) {
            (false, _) => MetricsExposure::Off,
            (true, Some(text)) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    format!("METRICS_ADDR must be an address such as 127.0.0.1:9464 (got `{text}`)")
                })?;
                if addr.port() != 0 && addr == SocketAddr::new(ip, args.port) {
                    return Err("METRICS_ADDR must differ from HOST:PORT".into());
                }
                MetricsExposure::Separate {
                    addr,
                    token: metrics_token,
                }
            }
            (true, None) if metrics_token.is_some() || ip.is_loopback() => MetricsExposure::Main {
                token: metrics_token,
            },
            (true, None) => MetricsExposure::Off,
        };

        engine.validate().map_err(|e| {
            format!(
                "{e} (DATABASE_URL is `{}`)",
                redact_url(&engine.database_url)
            )
        })?;

        Ok(Self {
            addr,
            engine,
            identity,
            cors_origins,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            body_deadline: Duration::from_secs(args.request_body_timeout_secs),
            body_idle: Duration::from_secs(args.request_body_idle_secs),
            mcp_max_sessions_per_user: args.mcp_max_sessions_per_user,
            mcp_stateless: args.mcp_stateless,
            dev_stream_delay: Duration::from_millis(args.dev_stream_delay_ms),
            hosted,
            log_format: args.log_format,
            chatkit_path,
            metrics,
        })
    }
}

fn check_http_url(name: &str, url: &str) -> Result<(), String> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name} must be an http:// or https:// URL (got `{url}`)"
        ))
    }
}

/// 256 random bits, hex-encoded: the per-process development signing key.
fn random_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeConfig, String> {
        let mut argv = vec!["serve", "--database-url", "sqlite::memory:"];
        argv.extend_from_slice(args);
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        ServeConfig::from_args(args, |_| None)
    }

    #[test]
    fn defaults_are_dev_mode_on_loopback() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.identity, IdentityMode::Dev);
        assert!(config.addr.ip().is_loopback());
        assert_eq!(config.engine.jwt_issuer.as_deref(), Some(DEV_ISSUER));
        assert_eq!(config.engine.jwt_secret.as_ref().map(String::len), Some(64));
        assert!(config.hosted.is_none());
    }

    #[test]
    fn invalid_settings_fail_with_a_sentence() {
        let err = parse(&["--host", "0.0.0.0"]).unwrap_err();
        assert!(err.contains("refusing to start"), "{err}");
        let err = parse(&["--jwt-issuer", "x"]).unwrap_err();
        assert!(err.contains("no key"), "{err}");
        let err = parse(&["--host", "example.com"]).unwrap_err();
        assert!(err.contains("IP address"), "{err}");
        let err = parse(&["--jwt-secret", "short"]).unwrap_err();
        assert!(err.contains("32"), "{err}");
        let err = parse(&["--cors-origin", "example.com"]).unwrap_err();
        assert!(err.contains("CORS_ORIGINS"), "{err}");
        let err = parse(&["--request-body-timeout-secs", "0"]).unwrap_err();
        assert!(err.contains("REQUEST_BODY_TIMEOUT_SECS"), "{err}");
        let err = parse(&["--request-body-idle-secs", "31"]).unwrap_err();
        assert!(err.contains("REQUEST_BODY_IDLE_SECS"), "{err}");
        let err = parse(&["--mcp-max-sessions-per-user", "0"]).unwrap_err();
        assert!(err.contains("MCP_MAX_SESSIONS_PER_USER"), "{err}");
        let err = parse(&["--chatkit-workflow-id", "wf_1"]).unwrap_err();
        assert!(err.contains("OPENAI_API_KEY"), "{err}");
        let secret = "s".repeat(40);
        let err = parse(&["--jwt-secret", &secret, "--dev-stream-delay-ms", "10"]).unwrap_err();
        assert!(err.contains("development identity mode"), "{err}");
        let args = Args::try_parse_from(["serve", "--database-url", "mysql://x"]).unwrap();
        let err = ServeConfig::from_args(args, |_| None).unwrap_err();
        assert!(err.contains("database_url"), "{err}");
    }

    #[test]
    fn metrics_leave_a_public_address_only_when_asked() {
        let secret = "s".repeat(40);
        let public = parse(&["--host", "0.0.0.0", "--jwt-secret", &secret]).unwrap();
        assert_eq!(public.metrics, MetricsExposure::Off);
        let token = "t".repeat(20);
        let behind = parse(&[
            "--host",
            "0.0.0.0",
            "--jwt-secret",
            &secret,
            "--metrics-token",
            &token,
        ])
        .unwrap();
        assert_eq!(behind.metrics, MetricsExposure::Main { token: Some(token) });
        let apart = parse(&[
            "--host",
            "0.0.0.0",
            "--jwt-secret",
            &secret,
            "--metrics-addr",
            "127.0.0.1:9464",
        ])
        .unwrap();
        assert!(matches!(
            apart.metrics,
            MetricsExposure::Separate { token: None, .. }
        ));
        assert!(!format!("{:?}", behind.metrics).contains('t'.to_string().repeat(20).as_str()));
        let err = parse(&["--port", "9464", "--metrics-addr", "127.0.0.1:9464"]).unwrap_err();
        assert!(err.contains("METRICS_ADDR"), "{err}");
    }

    #[test]
    fn jwt_config_on_any_address_is_jwt_mode() {
        let secret = "s".repeat(40);
        let config = parse(&["--host", "0.0.0.0", "--jwt-secret", &secret]).unwrap();
        assert_eq!(config.identity, IdentityMode::Jwt);
        assert_eq!(config.engine.jwt_secret.as_deref(), Some(secret.as_str()));
    }
}
