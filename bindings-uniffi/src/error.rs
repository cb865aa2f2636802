//! Core errors as one uniffi error enum.
//!
//! Every failure of a call is a [`ChatKitError`]: Kotlin gets a sealed
//! `ChatKitException` with one subclass per variant, Swift an `enum
//! ChatKitError: Error`, Python `ChatKitError.<Variant>` exceptions. Every
//! variant carries the same four fields:
//!
//! | field | what it is |
//! | --- | --- |
//! | `code` | the core's stable code (`invalid_request`, `not_found`, `token_expired`, ...), unchanged from Rust, Python and Node |
//! | `http_status` | the status a server answers with when the failure happens before a stream began |
//! | `reason` | the human-readable message (`Display` of the core error) |
//! | `json_body` | the JSON error document a server sends as the body (`{"error":{"code",...}}`) |
//!
//! The same four are methods too (`error_code()`, `error_http_status()`,
//! `error_reason()`, `error_json_body()`), so a host can answer any
//! `ChatKitError` without matching its variant first.
//!
//! The variant is the category (`Unauthorized` covers `unauthorized` and
//! every token code such as `token_expired`); `code` is the precise answer.
//! A code the core adds later arrives as `Other` with its own `code`.

/// A failure of an engine call.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[allow(missing_docs)] // every variant has the fields documented on the enum
pub enum ChatKitError {
    /// `invalid_request` (400): the body is not a valid ChatKit request.
    #[error("{reason}")]
    InvalidRequest {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `not_found` (404): no such thread, item or task for this user.
    #[error("{reason}")]
    NotFound {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `unauthorized` and the token codes (`token_expired`, ...) (401).
    #[error("{reason}")]
    Unauthorized {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `payload_too_large` (413).
    #[error("{reason}")]
    PayloadTooLarge {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `thread_busy` (409): another turn runs on this thread.
    #[error("{reason}")]
    ThreadBusy {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `not_supported` (501).
    #[error("{reason}")]
    NotSupported {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `cancelled` (499).
    #[error("{reason}")]
    Cancelled {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `model_error` (502) and `timeout` (504): the model provider failed.
    #[error("{reason}")]
    Model {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `storage_error` (503): the database failed or is unreachable.
    #[error("{reason}")]
    Storage {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `invalid_config` (500): the engine configuration is invalid.
    #[error("{reason}")]
    InvalidConfig {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
    /// `internal`, `custom`, `max_turns_exceeded` and any code added later.
    #[error("{reason}")]
    Other {
        code: String,
        http_status: u16,
        reason: String,
        json_body: String,
    },
}

impl From<chatkit_engine::Error> for ChatKitError {
    fn from(err: chatkit_engine::Error) -> Self {
        let code = err.code().to_owned();
        let http_status = err.http_status();
        let reason = err.to_string();
        let json_body = String::from_utf8_lossy(&err.to_json_body()).into_owned();
        use chatkit_engine::Error as E;
        macro_rules! variant {
            ($name:ident) => {
                ChatKitError::$name {
                    code,
                    http_status,
                    reason,
                    json_body,
                }
            };
        }
        match err {
            E::InvalidRequest(_) => variant!(InvalidRequest),
            E::NotFound { .. } => variant!(NotFound),
            E::Unauthorized(_) | E::Auth(_) => variant!(Unauthorized),
            E::PayloadTooLarge(_) => variant!(PayloadTooLarge),
            E::ThreadBusy(_) => variant!(ThreadBusy),
            E::NotSupported(_) => variant!(NotSupported),
            E::Cancelled => variant!(Cancelled),
            E::Model { .. } | E::Timeout(_) => variant!(Model),
            E::Storage { .. } => variant!(Storage),
            E::Config(_) => variant!(InvalidConfig),
            _ => variant!(Other),
        }
    }
}

/// The fields every variant carries.
struct Parts<'a> {
    code: &'a str,
    http_status: u16,
    reason: &'a str,
    json_body: &'a str,
}

impl ChatKitError {
    fn parts(&self) -> Parts<'_> {
        match self {
            Self::InvalidRequest {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::NotFound {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::Unauthorized {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::PayloadTooLarge {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::ThreadBusy {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::NotSupported {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::Cancelled {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::Model {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::Storage {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::InvalidConfig {
                code,
                http_status,
                reason,
                json_body,
            }
            | Self::Other {
                code,
                http_status,
                reason,
                json_body,
            } => Parts {
                code,
                http_status: *http_status,
                reason,
                json_body,
            },
        }
    }

    /// The stable code (the same on every variant).
    pub fn code(&self) -> &str {
        self.parts().code
    }
}

#[uniffi::export]
impl ChatKitError {
    /// The core's stable code, whatever the variant.
    pub fn error_code(&self) -> String {
        self.parts().code.to_owned()
    }

    /// The HTTP status to answer with, whatever the variant.
    pub fn error_http_status(&self) -> u16 {
        self.parts().http_status
    }

    /// The human-readable message, whatever the variant.
    pub fn error_reason(&self) -> String {
        self.parts().reason.to_owned()
    }

    /// The JSON error document to send as the response body, whatever the
    /// variant.
    pub fn error_json_body(&self) -> String {
        self.parts().json_body.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatkit_engine::Error;

    #[test]
    fn every_error_keeps_the_core_code_status_and_json_body() {
        let err = ChatKitError::from(Error::ThreadBusy("thr_1".into()));
        let ChatKitError::ThreadBusy {
            code,
            http_status,
            reason,
            json_body,
        } = err
        else {
            panic!("wrong variant: {err:?}");
        };
        assert_eq!((code.as_str(), http_status), ("thread_busy", 409));
        assert!(reason.contains("thr_1"), "{reason}");
        assert!(json_body.contains("\"thread_busy\""), "{json_body}");
    }

    #[test]
    fn a_category_without_its_own_variant_is_other_with_its_precise_code() {
        let err = ChatKitError::from(Error::MaxTurnsExceeded(10));
        assert!(matches!(
            err,
            ChatKitError::Other {
                http_status: 500,
                ..
            }
        ));
        assert_eq!(err.code(), "max_turns_exceeded");
    }
}
