//! Who is calling: verification of Better Auth (and other) JWTs.
//!
//! INTERFACE ONLY — being implemented (issue 4). Signatures are fixed.

use crate::config::EngineConfig;
use crate::context::RequestContext;
use crate::error::{Error, Result};

/// Verified claims of a token.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// The subject: the user id.
    pub sub: String,
    /// E-mail, when present.
    pub email: Option<String>,
    /// Display name, when present.
    pub name: Option<String>,
}

impl Claims {
    /// The request context of the verified user.
    pub fn into_context(self) -> RequestContext {
        RequestContext {
            user_id: self.sub,
            email: self.email,
            name: self.name,
            locale: None,
        }
    }
}

/// Verifies JWTs against configured keys.
#[derive(Debug)]
pub struct JwtVerifier {}

impl JwtVerifier {
    /// The verifier the configuration asks for, or `None` when it names no
    /// JWKS URL, inline JWKS or HS256 secret.
    pub async fn from_config(config: &EngineConfig) -> Result<Option<Self>> {
        let _ = config;
        Ok(None)
    }

    /// Verifies a compact JWT.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let _ = token;
        Err(Error::Unauthorized(
            "JWT verification is not implemented yet".into(),
        ))
    }
}
