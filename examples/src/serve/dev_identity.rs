//! Development identity mode: `serve` signs short-lived HS256 tokens for any
//! user name the demo page asks for, with a random per-process key that the
//! engine's own [`JwtVerifier`](chatkit_engine::auth::JwtVerifier) is
//! configured with. Requests therefore take the same verification path as in
//! production; only the issuer of the tokens differs.
//!
//! The mode is chosen in [`ServeConfig::from_args`](super::config::ServeConfig::from_args)
//! and only when no JWT configuration is given and the server is bound to a
//! loopback address.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// How long a development token is valid, in seconds.
pub const DEV_TOKEN_TTL_SECS: u64 = 12 * 60 * 60;

/// Signs development tokens.
#[derive(Clone)]
pub struct DevIdentity {
    secret: Vec<u8>,
    issuer: String,
}

impl std::fmt::Debug for DevIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdentity")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A signed development token.
#[derive(Clone, Debug)]
pub struct DevToken {
    /// The compact JWT.
    pub token: String,
    /// The user id (`sub`) it names.
    pub user_id: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl DevIdentity {
    /// A signer for `secret` that stamps `issuer` on its tokens.
    pub fn new(secret: impl Into<Vec<u8>>, issuer: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            issuer: issuer.into(),
        }
    }

    /// Checks a user name typed on the demo page: 1 to 64 characters of
    /// letters, digits, `-`, `_`, `.` or `@`.
    pub fn check_user(name: &str) -> Result<String, String> {
        let name = name.trim();
        let valid_char = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
        if name.is_empty() || name.chars().count() > 64 || !name.chars().all(valid_char) {
            return Err(
                "user must be 1 to 64 letters, digits or any of - _ . @ (for example `alice`)"
                    .into(),
            );
        }
        Ok(name.to_owned())
    }

    /// A token for `user` valid from `now` (seconds since the epoch) for
    /// [`DEV_TOKEN_TTL_SECS`].
    pub fn issue(&self, user: &str, now: u64) -> Result<DevToken, String> {
        let user_id = Self::check_user(user)?;
        let expires_at = now + DEV_TOKEN_TTL_SECS;
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let claims = json!({
            "sub": user_id,
            "name": user_id,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .map_err(|e| format!("bad development signing key: {e}"))?;
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Ok(DevToken {
            token: format!("{signing_input}.{signature}"),
            user_id,
            expires_at,
        })
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_three_base64url_parts_with_the_user_as_subject() {
        let dev = DevIdentity::new(b"k".repeat(32), "iss");
        let token = dev.issue("alice", 1_000).unwrap();
        let parts: Vec<_> = token.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["iss"], "iss");
        assert_eq!(claims["exp"], 1_000 + DEV_TOKEN_TTL_SECS);
        assert!(dev.issue("bad name", 0).is_err());
        assert!(dev.issue("", 0).is_err());
        assert!(dev.issue(&"a".repeat(65), 0).is_err());
    }
}
