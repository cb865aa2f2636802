//! Engine configuration shared by Rust hosts and the language bindings.
//!
//! One flat, serde-friendly struct: a Rust host fills it in code, the Python
//! binding from a dict, the Node binding from an object, and every field can
//! also come from an environment variable ([`EngineConfig::from_env`]).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Everything a [`ChatEngine`](crate::engine::ChatEngine) can be configured
/// with. Every field has a default; secrets never appear in `Debug` output.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Where threads and tasks live: `sqlite://file.db` or `postgres://...`
    /// (env `DATABASE_URL`; default `sqlite://chatkit.db`).
    pub database_url: String,
    /// PostgreSQL schema of the engine's own tables, created by the
    /// migration (env `DATABASE_SCHEMA`; default `chatkit`). SQLite ignores it.
    pub database_schema: String,
    /// The app's task table on PostgreSQL, `schema.table` (env `TASKS_TABLE`;
    /// default `public.tasks`). SQLite ignores it.
    pub tasks_table: String,
    /// A direct PostgreSQL URL for migrations when `database_url` goes
    /// through a pooler (env `DATABASE_URL_DIRECT`; Neon: the endpoint
    /// without `-pooler`). Unset: migrations use `database_url`.
    pub database_url_direct: Option<String>,
    /// Whether `database_url` goes through a transaction-mode pooler (env
    /// `DATABASE_POOLER`: `auto`, `transaction` or `none`; default `auto`,
    /// see [`PoolerMode`](crate::store::PoolerMode)).
    pub database_pooler: crate::store::PoolerMode,
    /// Seconds a turn lease lives without renewal (env `TURN_LEASE_SECS`;
    /// default 30): how long a thread stays busy after the replica running
    /// its turn died. A running turn renews it every third of that time.
    pub turn_lease_secs: u64,

    /// API key of an OpenAI-compatible provider (env `OPENAI_API_KEY`).
    /// Without one the engine uses the offline scripted model.
    pub openai_api_key: Option<String>,
    /// The provider's base URL (env `OPENAI_BASE_URL`; default OpenAI's).
    pub openai_base_url: Option<String>,
    /// The model name (env `CHAT_MODEL`; default `gpt-4o-mini`).
    pub chat_model: Option<String>,
    /// Extra HTTP headers sent to the provider.
    pub model_headers: BTreeMap<String, String>,
    /// Speak HTTP/2 to the provider without negotiation (env
    /// `OPENAI_HTTP2_PRIOR_KNOWLEDGE`, `true`/`false`), so that every open
    /// answer shares one connection; see
    /// [`OpenAiCompatibleBuilder::http2_prior_knowledge`](crate::models::OpenAiCompatibleBuilder::http2_prior_knowledge)
    /// for the peer's concurrent-stream cap.
    pub openai_http2_prior_knowledge: bool,

    /// URL of the JWKS to verify Bearer tokens with (env `JWKS_URL`), e.g.
    /// Better Auth's `https://app.example.com/api/auth/jwks`.
    pub jwks_url: Option<String>,
    /// The Better Auth app's base URL (env `BETTER_AUTH_URL`), e.g.
    /// `https://app.example.com`. Alone it sets what Better Auth's JWT plugin
    /// issues: JWKS at `{url}/api/auth/jwks`, issuer and audience `{url}`;
    /// `jwks_url`, `jwt_issuer` and `jwt_audience` win when set
    /// (see [`EngineConfig::apply_better_auth`]).
    pub better_auth_url: Option<String>,
    /// An inline JWKS document (env `JWKS`).
    pub jwks: Option<String>,
    /// A shared HS256 secret (env `JWT_SECRET`).
    pub jwt_secret: Option<String>,
    /// Required `iss` (env `JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// Accepted `aud` values (env `JWT_AUDIENCE`, comma-separated).
    pub jwt_audience: Vec<String>,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds (env `JWT_LEEWAY_SECS`).
    pub jwt_leeway_secs: u64,
    /// Minimum seconds between JWKS refetches on an unknown `kid`
    /// (env `JWKS_REFRESH_SECS`).
    pub jwks_refresh_secs: u64,

    /// Development and demos only: pause this many milliseconds before each
    /// model event, so streaming can be watched with the instant offline
    /// model (0 = off).
    pub dev_token_delay_ms: u64,

    /// Model calls allowed per turn (env `MAX_TURNS`).
    pub max_turns: usize,
    /// Recent thread items the model sees (env `HISTORY_ITEMS`).
    pub history_items: usize,
    /// Seconds one tool call may take (env `TOOL_TIMEOUT_SECS`).
    pub tool_timeout_secs: u64,
    /// Seconds a confirmation before a tool call (a paused run) can be
    /// answered (env `APPROVAL_TTL_SECS`; default 900).
    pub approval_ttl_secs: u64,

    /// Largest accepted request body, in bytes (env `MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Longest text of one user message, in characters.
    pub max_text_chars: usize,
    /// Most content parts in one user message.
    pub max_content_parts: usize,
    /// Most attachments on one user message.
    pub max_attachments: usize,
    /// Page size used when a list request gives no `limit` (ChatKit: 20).
    pub default_page_size: usize,
    /// Largest page a list request may ask for; larger limits are clamped.
    pub max_page_size: usize,
    /// Longest thread title, in characters.
    pub max_title_chars: usize,
    /// How many events may wait for a slow client before the turn pauses.
    pub stream_buffer: usize,

    /// Record Prometheus metrics (env `CHATKIT_METRICS`, `true`/`false`;
    /// default on). Building an engine then installs the process's
    /// recorder once; see [`crate::telemetry`].
    pub metrics: bool,
    /// Tokens one user may spend per UTC day (env `DAILY_TOKEN_BUDGET`;
    /// default none). A turn that starts at or over it ends with a
    /// `token_budget_exceeded` error event before the model is called.
    pub daily_token_budget: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://chatkit.db".to_owned(),
            database_schema: crate::store::DEFAULT_SCHEMA.to_owned(),
            tasks_table: crate::todo::DEFAULT_TASKS_TABLE.to_owned(),
            database_url_direct: None,
            database_pooler: crate::store::PoolerMode::Auto,
            turn_lease_secs: 30,
            openai_api_key: None,
            openai_base_url: None,
            chat_model: None,
            model_headers: BTreeMap::new(),
            openai_http2_prior_knowledge: false,
            jwks_url: None,
            better_auth_url: None,
            jwks: None,
            jwt_secret: None,
            jwt_issuer: None,
            jwt_audience: Vec::new(),
            jwt_leeway_secs: 30,
            jwks_refresh_secs: 60,
            dev_token_delay_ms: 0,
            max_turns: 10,
            history_items: 30,
            tool_timeout_secs: 30,
            approval_ttl_secs: 900,
            max_body_bytes: 1024 * 1024,
            max_text_chars: 16_000,
            max_content_parts: 32,
            max_attachments: 10,
            default_page_size: 20,
            max_page_size: crate::store::MAX_PAGE_SIZE,
            max_title_chars: 255,
            stream_buffer: 64,
            metrics: true,
            daily_token_budget: None,
        }
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("EngineConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_schema", &self.database_schema)
            .field("tasks_table", &self.tasks_table)
            .field(
                "database_url_direct",
                &self.database_url_direct.as_deref().map(redact_url),
            )
            .field("database_pooler", &self.database_pooler)
            .field("turn_lease_secs", &self.turn_lease_secs)
            .field("openai_api_key", &secret(&self.openai_api_key))
            .field("openai_base_url", &self.openai_base_url)
            .field("chat_model", &self.chat_model)
            .field(
                "model_headers",
                &self.model_headers.keys().collect::<Vec<_>>(),
            )
            .field("jwks_url", &self.jwks_url)
            .field("better_auth_url", &self.better_auth_url)
            .field("jwks", &self.jwks.as_ref().map(|_| "<inline>"))
            .field("jwt_secret", &secret(&self.jwt_secret))
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("max_turns", &self.max_turns)
            .field("history_items", &self.history_items)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("metrics", &self.metrics)
            .field("daily_token_budget", &self.daily_token_budget)
            .finish_non_exhaustive()
    }
}

/// A database URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl EngineConfig {
    /// How to open the database these settings name.
    pub fn database_options(&self) -> crate::store::DatabaseOptions {
        crate::store::DatabaseOptions {
            url: self.database_url.clone(),
            direct_url: self.database_url_direct.clone(),
            schema: self.database_schema.clone(),
            pooler: self.database_pooler,
        }
    }

    /// How long a turn lease lives without renewal.
    pub fn turn_lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.turn_lease_secs)
    }

    /// The defaults, overridden by whatever environment variables are set.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::default();
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Overrides fields from variables looked up with `var` (the environment
    /// in [`Self::from_env`]; a map in tests). Empty values are ignored.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = v;
        }
        let text = |name: &str, slot: &mut Option<String>| {
            if let Some(v) = get(name) {
                *slot = Some(v);
            }
        };
        if let Some(v) = get("DATABASE_SCHEMA") {
            self.database_schema = v;
        }
        if let Some(v) = get("TASKS_TABLE") {
            self.tasks_table = v;
        }
        if let Some(v) = get("DATABASE_URL_DIRECT") {
            self.database_url_direct = Some(v);
        }
        if let Some(v) = get("DATABASE_POOLER") {
            self.database_pooler = v.parse()?;
        }
        text("OPENAI_API_KEY", &mut self.openai_api_key);
        text("OPENAI_BASE_URL", &mut self.openai_base_url);
        text("CHAT_MODEL", &mut self.chat_model);
        text("JWKS_URL", &mut self.jwks_url);
        text("BETTER_AUTH_URL", &mut self.better_auth_url);
        text("JWKS", &mut self.jwks);
        text("JWT_SECRET", &mut self.jwt_secret);
        text("JWT_ISSUER", &mut self.jwt_issuer);
        if let Some(v) = get("JWT_AUDIENCE") {
            self.jwt_audience = v
                .split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect();
        }
        let number = |name: &str| -> Result<Option<u64>> {
            get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        Error::Config(format!("{name} must be a whole number, got `{v}`"))
                    })
                })
                .transpose()
        };
        let flag = |name: &str| -> Result<Option<bool>> {
            get(name)
                .map(|v| match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(Error::Config(format!(
                        "{name} must be true or false, got `{v}`"
                    ))),
                })
                .transpose()
        };
        if let Some(v) = flag("OPENAI_HTTP2_PRIOR_KNOWLEDGE")? {
            self.openai_http2_prior_knowledge = v;
        }
        if let Some(v) = flag("CHATKIT_METRICS")? {
            self.metrics = v;
        }
        if let Some(v) = number("DAILY_TOKEN_BUDGET")? {
            self.daily_token_budget = Some(v);
        }
        if let Some(v) = number("JWT_LEEWAY_SECS")? {
            self.jwt_leeway_secs = v;
        }
        if let Some(v) = number("JWKS_REFRESH_SECS")? {
            self.jwks_refresh_secs = v;
        }
        if let Some(v) = number("MAX_TURNS")? {
            self.max_turns = v as usize;
        }
        if let Some(v) = number("HISTORY_ITEMS")? {
            self.history_items = v as usize;
        }
        if let Some(v) = number("TOOL_TIMEOUT_SECS")? {
            self.tool_timeout_secs = v;
        }
        if let Some(v) = number("TURN_LEASE_SECS")? {
            self.turn_lease_secs = v;
        }
        if let Some(v) = number("APPROVAL_TTL_SECS")? {
            self.approval_ttl_secs = v;
        }
        if let Some(v) = number("MAX_BODY_BYTES")? {
            self.max_body_bytes = v as usize;
        }
        self.apply_better_auth();
        Ok(())
    }

    /// Fills the JWT settings left unset from [`EngineConfig::better_auth_url`],
    /// the way Better Auth's JWT plugin issues tokens:
    ///
    /// | Setting | From `BETTER_AUTH_URL=https://app.example.com` |
    /// |---|---|
    /// | `jwks_url` | `https://app.example.com/api/auth/jwks` |
    /// | `jwt_issuer` | `https://app.example.com` |
    /// | `jwt_audience` | `["https://app.example.com"]` |
    ///
    /// Settings already given win; calling it twice changes nothing.
    ///
    /// ```
    /// use chatkit_engine::EngineConfig;
    /// let mut config = EngineConfig {
    ///     better_auth_url: Some("https://app.example.com/".into()),
    ///     jwt_issuer: Some("https://auth.example.com".into()),
    ///     ..EngineConfig::default()
    /// };
    /// config.apply_better_auth();
    /// assert_eq!(config.jwks_url.as_deref(), Some("https://app.example.com/api/auth/jwks"));
    /// assert_eq!(config.jwt_issuer.as_deref(), Some("https://auth.example.com"));
    /// assert_eq!(config.jwt_audience, ["https://app.example.com"]);
    /// ```
    pub fn apply_better_auth(&mut self) {
        let Some(base) = self
            .better_auth_url
            .as_deref()
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
        else {
            return;
        };
        if self.jwks_url.is_none() && self.jwks.is_none() {
            self.jwks_url = Some(format!("{base}/api/auth/jwks"));
        }
        if self.jwt_issuer.is_none() {
            self.jwt_issuer = Some(base.clone());
        }
        if self.jwt_audience.is_empty() {
            self.jwt_audience = vec![base];
        }
    }

    /// Checks values that would make the engine misbehave.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max_turns", self.max_turns),
            ("history_items", self.history_items),
            ("max_body_bytes", self.max_body_bytes),
            ("max_text_chars", self.max_text_chars),
            ("max_content_parts", self.max_content_parts),
            ("default_page_size", self.default_page_size),
            ("max_page_size", self.max_page_size),
            ("max_title_chars", self.max_title_chars),
            ("stream_buffer", self.stream_buffer),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if self.turn_lease_secs == 0 {
            return Err(Error::Config("turn_lease_secs must be at least 1".into()));
        }
        if let Some(direct) = &self.database_url_direct
            && !crate::store::is_postgres_url(direct)
        {
            return Err(Error::Config(format!(
                "database_url_direct must be a postgres:// or postgresql:// URL (got `{}`)",
                redact_url(direct)
            )));
        }
        if self.tool_timeout_secs == 0 {
            return Err(Error::Config("tool_timeout_secs must be at least 1".into()));
        }
        crate::store::pg_schema::validate_schema(&self.database_schema)?;
        crate::todo::TableName::parse(&self.tasks_table)?;
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(Error::Config(format!(
                "database_url must start with sqlite:, postgres:// or postgresql:// (got `{}`)",
                redact_url(&self.database_url)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults_and_bad_numbers_are_clear_errors() {
        let mut config = EngineConfig::default();
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://u:pw@db/x".to_owned()),
            "JWT_AUDIENCE" => Some("a, b".to_owned()),
            "MAX_TURNS" => Some("4".to_owned()),
            "CHAT_MODEL" => Some("  ".to_owned()),
            "OPENAI_HTTP2_PRIOR_KNOWLEDGE" => Some("True".to_owned()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert!(config.openai_http2_prior_knowledge);
        assert_eq!(config.database_url, "postgres://u:pw@db/x");
        assert_eq!(config.jwt_audience, ["a", "b"]);
        assert_eq!(config.max_turns, 4);
        assert_eq!(config.chat_model, None, "blank values are ignored");
        assert!(!format!("{config:?}").contains("pw"));

        let err = EngineConfig::default()
            .apply_env(|n| (n == "MAX_TURNS").then(|| "many".to_owned()))
            .unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        assert!(err.to_string().contains("MAX_TURNS"));

        let err = EngineConfig::default()
            .apply_env(|n| (n == "OPENAI_HTTP2_PRIOR_KNOWLEDGE").then(|| "maybe".to_owned()))
            .unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        assert!(err.to_string().contains("OPENAI_HTTP2_PRIOR_KNOWLEDGE"));
    }

    #[test]
    fn configs_deserialize_from_partial_objects_and_reject_unknown_keys() {
        let config: EngineConfig =
            serde_json::from_str(r#"{"database_url":"sqlite::memory:","max_turns":3}"#).unwrap();
        assert_eq!((config.max_turns, config.history_items), (3, 30));
        assert!(serde_json::from_str::<EngineConfig>(r#"{"databse_url":"x"}"#).is_err());
        let bad = EngineConfig {
            database_url: "mysql://x".into(),
            ..EngineConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().code(), "invalid_config");
    }

    #[test]
    fn database_schema_task_table_and_better_auth_url_come_from_the_environment() {
        let mut config = EngineConfig::default();
        assert_eq!(
            (config.database_schema.as_str(), config.tasks_table.as_str()),
            ("chatkit", "public.tasks")
        );
        config
            .apply_env(|name| match name {
                "DATABASE_SCHEMA" => Some("chat_engine".into()),
                "TASKS_TABLE" => Some("app.todo".into()),
                "BETTER_AUTH_URL" => Some("https://app.example.com/".into()),
                "JWT_AUDIENCE" => Some("backend".into()),
                _ => None,
            })
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(config.database_schema, "chat_engine");
        assert_eq!(config.tasks_table, "app.todo");
        assert_eq!(
            config.jwks_url.as_deref(),
            Some("https://app.example.com/api/auth/jwks")
        );
        assert_eq!(
            config.jwt_issuer.as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(config.jwt_audience, ["backend"], "explicit settings win");
        assert!(config.validate().is_ok());
        for (schema, table) in [
            ("pg_catalog", "public.tasks"),
            ("chatkit", "a.b.c"),
            ("", "tasks"),
        ] {
            let bad = EngineConfig {
                database_schema: schema.into(),
                tasks_table: table.into(),
                ..EngineConfig::default()
            };
            assert_eq!(
                bad.validate().map_err(|e| e.code()).err(),
                Some("invalid_config"),
                "{schema} {table}"
            );
        }
    }
}
