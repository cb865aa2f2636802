//! The one error type of the crate, with stable machine-readable codes.
//!
//! Every failure a host application can see is an [`Error`]. Its [`Error::code`]
//! is a stable string that the HTTP layers, the Python exceptions and the JS
//! error objects all carry unchanged, and [`Error::http_status`] is the status
//! a server should answer with when the failure happens before a stream began.

use std::fmt;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed cause kept inside an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request body is not a valid ChatKit request (bad JSON, unknown type,
    /// missing or mistyped field, out-of-range value).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// A thread, item, attachment or task does not exist for this user.
    /// Another user's row is reported exactly like a missing one.
    #[error("{kind} not found: {id}")]
    NotFound {
        /// What was looked up (`thread`, `item`, `attachment`, `task`, ...).
        kind: &'static str,
        /// The id the caller asked for.
        id: String,
    },

    /// The caller is not authenticated.
    #[error("unauthorized: {0}")]
    Unauthorized(String),

    /// A Bearer token was rejected; the [`AuthError`] says why and gives the
    /// code ([`Error::code`] returns the specific one, e.g. `token_expired`).
    #[error("unauthorized: {0}")]
    Auth(AuthError),

    /// The request exceeds a configured size limit.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),

    /// Another turn is already running on this thread.
    #[error("thread {0} is busy with another response")]
    ThreadBusy(String),

    /// The request is valid but this engine was not configured to serve it
    /// (for example `attachments.create` without an attachment store).
    #[error("not supported: {0}")]
    NotSupported(String),

    /// A failure meant to be shown to the end user as is (ChatKit's
    /// `custom` error event).
    #[error("{message}")]
    Custom {
        /// User-facing text.
        message: String,
        /// Whether the client should offer a retry button.
        allow_retry: bool,
    },

    /// The turn was cancelled (client gone or cancellation requested).
    #[error("cancelled")]
    Cancelled,

    /// The model provider failed (HTTP error, broken or garbled stream).
    /// The cause (the `reqwest::Error` of a broken connection, the JSON
    /// error of a garbled chunk) is kept as the
    /// [`source`](std::error::Error::source) when there is one.
    #[error("model error: {message}")]
    Model {
        /// What happened, including the cause's own text.
        message: String,
        /// Whether trying again may succeed (rate limits, 5xx, dropped
        /// connections).
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// Something took longer than its configured limit.
    #[error("timed out: {0}")]
    Timeout(String),

    /// The agent used up its turn budget without a final answer.
    #[error("the agent did not finish within {0} turns")]
    MaxTurnsExceeded(usize),

    /// The user has spent their daily token budget
    /// ([`EngineConfig::daily_token_budget`](crate::EngineConfig::daily_token_budget));
    /// the turn ended before the model was called.
    #[error(
        "You have used your daily budget of {budget} tokens ({used} used today). It renews at 00:00 UTC."
    )]
    TokenBudgetExceeded {
        /// Tokens the user spent today.
        used: u64,
        /// The daily budget.
        budget: u64,
    },

    /// The database failed or could not be reached. The message is for
    /// logs (it is never sent to clients); the cause, when there is one, is
    /// kept as the [`source`](std::error::Error::source) (a `sqlx::Error`,
    /// say), so a host can tell a constraint violation from a lost
    /// connection.
    #[error("storage error: {message}")]
    Storage {
        /// What failed, including the cause's own text.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// Invalid engine configuration.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A bug or an unexpected condition inside the engine.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error, e.g. `"not_found"`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::NotFound { .. } => "not_found",
            Error::Unauthorized(_) => "unauthorized",
            Error::Auth(reason) => reason.code(),
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::ThreadBusy(_) => "thread_busy",
            Error::NotSupported(_) => "not_supported",
            Error::Custom { .. } => "custom",
            Error::Cancelled => "cancelled",
            Error::Model { .. } => "model_error",
            Error::Timeout(_) => "timeout",
            Error::MaxTurnsExceeded(_) => "max_turns_exceeded",
            Error::TokenBudgetExceeded { .. } => "token_budget_exceeded",
            Error::Storage { .. } => "storage_error",
            Error::Config(_) => "invalid_config",
            Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status a server should answer with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidRequest(_) => 400,
            Error::NotFound { .. } => 404,
            Error::Unauthorized(_) => 401,
            Error::Auth(reason) => reason.http_status(),
            Error::PayloadTooLarge(_) => 413,
            Error::ThreadBusy(_) => 409,
            Error::NotSupported(_) => 501,
            Error::Custom { .. } => 400,
            Error::Cancelled => 499,
            Error::Model { .. } => 502,
            Error::Timeout(_) => 504,
            Error::MaxTurnsExceeded(_) => 500,
            Error::TokenBudgetExceeded { .. } => 429,
            Error::Storage { .. } => 503,
            Error::Config(_) | Error::Internal(_) => 500,
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// A storage failure with no underlying error (corrupt data, say).
    pub fn storage(message: impl Into<String>) -> Self {
        Error::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// A storage failure caused by `source`; the message ends with the
    /// cause's text.
    pub fn storage_caused_by(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            message: format!("{context}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    /// Shorthand for [`Error::InvalidRequest`].
    pub fn invalid(message: impl fmt::Display) -> Self {
        Error::InvalidRequest(message.to_string())
    }

    /// A message that is safe to show to the end user, if this error has one.
    ///
    /// Storage and internal failures return `None`: their details stay in the
    /// server logs.
    pub fn user_message(&self) -> Option<String> {
        match self {
            Error::Storage { .. }
            | Error::Internal(_)
            | Error::Config(_)
            | Error::Cancelled
            | Error::Model { .. }
            | Error::Timeout(_) => None,
            Error::Custom { message, .. } => Some(message.clone()),
            Error::Auth(reason) => Some(reason.user_message().to_owned()),
            other => Some(other.to_string()),
        }
    }

    /// The JSON error body `{"error":{"code":..,"message":..}}` that HTTP
    /// layers send for failures outside a stream.
    pub fn to_json_body(&self) -> Vec<u8> {
        let message = self
            .user_message()
            .unwrap_or_else(|| "the server failed to handle the request".to_owned());
        let body = serde_json::json!({ "error": { "code": self.code(), "message": message } });
        body.to_string().into_bytes()
    }
}

/// Why a Bearer token was rejected. Each reason has its own stable
/// [`code`](AuthError::code); none of them carries token contents or key
/// material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not a compact JWS (`header.payload.signature` in base64url JSON),
    /// too large, or a registered claim with the wrong type (also a token
    /// without `exp`). Code `malformed_token`.
    #[error("the token is malformed")]
    MalformedToken,
    /// `alg: none`, an algorithm this verifier does not support, or an
    /// algorithm other than the one the key is pinned to (HS/RS key
    /// confusion). Code `algorithm_not_allowed`.
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The token names a `kid` that no configured or fetched key has.
    /// Code `unknown_key`.
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not match (wrong key, tampered header or payload).
    /// Code `invalid_signature`.
    #[error("the token signature is invalid")]
    InvalidSignature,
    /// `exp` (plus leeway) has passed. Code `token_expired`.
    #[error("the token has expired")]
    TokenExpired,
    /// `nbf` (minus leeway) is still in the future. Code `token_not_yet_valid`.
    #[error("the token is not valid yet")]
    TokenNotYetValid,
    /// `iss` is missing or not the configured issuer. Code `invalid_issuer`.
    #[error("the token issuer is not accepted")]
    InvalidIssuer,
    /// `aud` is missing or names none of the configured audiences.
    /// Code `invalid_audience`.
    #[error("the token audience is not accepted")]
    InvalidAudience,
    /// `sub` is missing, empty or not a string. Code `missing_subject`.
    #[error("the token has no subject")]
    MissingSubject,
    /// The JWKS could not be fetched and no earlier keys are cached, so the
    /// token could not be checked at all. Code `jwks_unavailable` (HTTP 503:
    /// a server-side failure, not a verdict on the token).
    #[error("the signing keys are unavailable")]
    JwksUnavailable,
}

impl AuthError {
    /// The stable code, e.g. `"token_expired"`.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::MalformedToken => "malformed_token",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::UnknownKey => "unknown_key",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::TokenExpired => "token_expired",
            AuthError::TokenNotYetValid => "token_not_yet_valid",
            AuthError::InvalidIssuer => "invalid_issuer",
            AuthError::InvalidAudience => "invalid_audience",
            AuthError::MissingSubject => "missing_subject",
            AuthError::JwksUnavailable => "jwks_unavailable",
        }
    }

    /// 401 for every rejected token; 503 for [`AuthError::JwksUnavailable`].
    pub fn http_status(self) -> u16 {
        match self {
            AuthError::JwksUnavailable => 503,
            _ => 401,
        }
    }

    /// A short text that is safe to show to the caller.
    pub fn user_message(self) -> &'static str {
        match self {
            AuthError::MalformedToken => "The access token is malformed.",
            AuthError::AlgorithmNotAllowed => {
                "The access token uses an algorithm that is not allowed."
            }
            AuthError::UnknownKey => "The access token was signed with an unknown key.",
            AuthError::InvalidSignature => "The access token signature is invalid.",
            AuthError::TokenExpired => "The access token has expired.",
            AuthError::TokenNotYetValid => "The access token is not valid yet.",
            AuthError::InvalidIssuer => {
                "The access token was issued by an issuer that is not accepted."
            }
            AuthError::InvalidAudience => "The access token is not meant for this service.",
            AuthError::MissingSubject => "The access token does not name a user.",
            AuthError::JwksUnavailable => "The signing keys could not be loaded; try again later.",
        }
    }
}

impl From<AuthError> for Error {
    fn from(reason: AuthError) -> Self {
        Error::Auth(reason)
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Storage {
            message: err.to_string(),
            source: Some(Box::new(err)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Error::storage_caused_by("migration failed", err)
    }
}
