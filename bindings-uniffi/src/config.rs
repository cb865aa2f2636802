//! The configuration record: the core's `EngineConfig` keys, typed.
//!
//! | rule | detail |
//! | --- | --- |
//! | same keys as Python and Node | each field is the snake_case `EngineConfig` key of the same name (Kotlin and Swift see them camelCased) |
//! | unset means the core default | every field but `database_url` is optional; `None` leaves the core default |
//! | any other key | `extra_json`: a JSON object of further `EngineConfig` keys (`max_body_bytes`, `stream_buffer`, ...) |
//! | one validation | the record becomes JSON and goes through the core's own deserializer and `validate()`: unknown keys, a key set twice and bad values are `invalid_config` |

use crate::error::ChatKitError;
use chatkit_engine::Error;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// How to build a [`ChatEngine`](crate::ChatEngine). Without an API key the
/// engine answers with the offline scripted model.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct EngineConfig {
    /// `sqlite://<path>` (on a device: a file in the app's data directory)
    /// or `postgres://...`.
    pub database_url: String,
    /// API key of an OpenAI-compatible provider; unset = the offline model.
    #[uniffi(default)]
    pub openai_api_key: Option<String>,
    /// The provider's base URL (default OpenAI's).
    #[uniffi(default)]
    pub openai_base_url: Option<String>,
    /// The model name (default `gpt-4o-mini`).
    #[uniffi(default)]
    pub chat_model: Option<String>,
    /// Extra HTTP headers sent to the provider.
    #[uniffi(default)]
    pub model_headers: HashMap<String, String>,
    /// URL of the JWKS that verifies Bearer tokens.
    #[uniffi(default)]
    pub jwks_url: Option<String>,
    /// An inline JWKS document.
    #[uniffi(default)]
    pub jwks: Option<String>,
    /// A shared HS256 secret.
    #[uniffi(default)]
    pub jwt_secret: Option<String>,
    /// Required `iss`.
    #[uniffi(default)]
    pub jwt_issuer: Option<String>,
    /// Accepted `aud` values.
    #[uniffi(default)]
    pub jwt_audience: Vec<String>,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds (core default 30).
    #[uniffi(default)]
    pub jwt_leeway_secs: Option<u64>,
    /// Model calls allowed per turn (core default 10).
    #[uniffi(default)]
    pub max_turns: Option<u32>,
    /// Seconds one tool call may take (core default 30).
    #[uniffi(default)]
    pub tool_timeout_secs: Option<u64>,
    /// Development and demos: pause this many milliseconds before each
    /// model event, so streaming can be watched with the offline model.
    #[uniffi(default)]
    pub dev_token_delay_ms: Option<u64>,
    /// Any other `EngineConfig` keys, as a JSON object.
    #[uniffi(default)]
    pub extra_json: Option<String>,
}

impl EngineConfig {
    /// The core configuration, validated.
    pub(crate) fn into_core(self) -> Result<chatkit_engine::EngineConfig, ChatKitError> {
        let mut map = match self.extra_json.as_deref() {
            None => Map::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(config_error("extra_json must be a JSON object")),
                Err(err) => return Err(config_error(format!("extra_json: {err}"))),
            },
        };
        let mut set = |key: &str, value: Value| -> Result<(), ChatKitError> {
            if map.insert(key.to_owned(), value).is_some() {
                return Err(config_error(format!(
                    "`{key}` is set both as a field and in extra_json"
                )));
            }
            Ok(())
        };
        set("database_url", self.database_url.into())?;
        let texts = [
            ("openai_api_key", self.openai_api_key),
            ("openai_base_url", self.openai_base_url),
            ("chat_model", self.chat_model),
            ("jwks_url", self.jwks_url),
            ("jwks", self.jwks),
            ("jwt_secret", self.jwt_secret),
            ("jwt_issuer", self.jwt_issuer),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                set(key, value.into())?;
            }
        }
        if !self.model_headers.is_empty() {
            let headers = self.model_headers.into_iter().map(|(k, v)| (k, v.into()));
            set("model_headers", Value::Object(headers.collect()))?;
        }
        if !self.jwt_audience.is_empty() {
            set("jwt_audience", self.jwt_audience.into())?;
        }
        let numbers = [
            ("jwt_leeway_secs", self.jwt_leeway_secs),
            ("max_turns", self.max_turns.map(u64::from)),
            ("tool_timeout_secs", self.tool_timeout_secs),
            ("dev_token_delay_ms", self.dev_token_delay_ms),
        ];
        for (key, value) in numbers {
            if let Some(value) = value {
                set(key, value.into())?;
            }
        }
        from_json_value(Value::Object(map))
    }
}

/// The core configuration from a JSON object of `EngineConfig` keys,
/// validated.
pub(crate) fn from_json_value(value: Value) -> Result<chatkit_engine::EngineConfig, ChatKitError> {
    let config: chatkit_engine::EngineConfig =
        serde_json::from_value(value).map_err(|err| config_error(err.to_string()))?;
    config.validate()?;
    Ok(config)
}

fn config_error(message: impl Into<String>) -> ChatKitError {
    Error::Config(message.into()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite() -> EngineConfig {
        EngineConfig {
            database_url: "sqlite://test.db".into(),
            ..EngineConfig::default()
        }
    }

    #[test]
    fn unset_fields_keep_the_core_defaults() {
        let core = sqlite().into_core().map_err(|e| e.to_string());
        let defaults = chatkit_engine::EngineConfig {
            database_url: "sqlite://test.db".into(),
            ..chatkit_engine::EngineConfig::default()
        };
        assert_eq!(core, Ok(defaults));
    }

    #[test]
    fn fields_and_extra_json_set_the_core_keys_of_the_same_name() {
        let config = EngineConfig {
            jwt_secret: Some("s3cret".into()),
            dev_token_delay_ms: Some(25),
            jwt_audience: vec!["app".into()],
            extra_json: Some(r#"{"stream_buffer": 8}"#.into()),
            ..sqlite()
        };
        let core = config.into_core().map_err(|e| e.to_string());
        let core = core.as_ref().map(|c| {
            (
                c.jwt_secret.as_deref(),
                c.dev_token_delay_ms,
                c.jwt_audience.clone(),
                c.stream_buffer,
            )
        });
        assert_eq!(core, Ok((Some("s3cret"), 25, vec!["app".to_owned()], 8)));
    }

    #[test]
    fn a_key_set_twice_or_unknown_or_invalid_is_invalid_config() {
        let twice = EngineConfig {
            max_turns: Some(3),
            extra_json: Some(r#"{"max_turns": 4}"#.into()),
            ..sqlite()
        };
        let unknown = EngineConfig {
            extra_json: Some(r#"{"no_such_key": 1}"#.into()),
            ..sqlite()
        };
        let invalid = EngineConfig {
            database_url: "mysql://x".into(),
            ..EngineConfig::default()
        };
        for config in [twice, unknown, invalid] {
            let err = config.into_core().err().map(|e| e.code().to_owned());
            assert_eq!(err.as_deref(), Some("invalid_config"));
        }
    }
}
