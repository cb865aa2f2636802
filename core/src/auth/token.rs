//! What `jsonwebtoken` does not do for us: a first look at the compact JWS
//! (to pick the key by `kid` and to tell a refused algorithm from a malformed
//! token) and the time and subject claims (see the module docs of [`super`]).

use super::algorithm::Algorithm;
use crate::error::AuthError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Longest accepted token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What the header of a compact JWS names; nothing is trusted yet.
pub(crate) struct Parsed {
    /// The algorithm the header names (must match the key's pinned one).
    pub(crate) alg: Algorithm,
    /// The header's `kid`, when present.
    pub(crate) kid: Option<String>,
}

fn decode(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::MalformedToken)
}

/// Splits and decodes a compact JWS (all three parts, so that a broken
/// payload or signature is [`AuthError::MalformedToken`] rather than a
/// failed signature) and reads `alg` and `kid` from its header. Rejects
/// `alg: none` and algorithms this verifier does not implement with
/// [`AuthError::AlgorithmNotAllowed`]; `jsonwebtoken` would call both a
/// malformed header.
pub(crate) fn parse(token: &str) -> Result<Parsed, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::MalformedToken);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::MalformedToken);
    };
    let header_json: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| AuthError::MalformedToken)?;
    let Value::Object(header_obj) = header_json else {
        return Err(AuthError::MalformedToken);
    };
    let alg_name = match header_obj.get("alg") {
        Some(Value::String(alg)) => alg,
        _ => return Err(AuthError::MalformedToken),
    };
    // Only the JOSE name: `jsonwebtoken` knows `EdDSA`, not the alias `Ed25519`.
    let alg = Algorithm::from_name(alg_name)
        .filter(|alg| alg.name() == alg_name)
        .ok_or(AuthError::AlgorithmNotAllowed)?;
    let kid = match header_obj.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::MalformedToken),
    };
    // `crit` (RFC 7515 §4.1.11) is checked by `jsonwebtoken`.
    if decode(signature)?.is_empty() {
        return Err(AuthError::MalformedToken);
    }
    decode(payload)?;
    Ok(Parsed { alg, kid })
}

/// What the claims must satisfy.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    pub(crate) issuer: Option<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: i64,
    pub(crate) require_exp: bool,
    /// The `jsonwebtoken` validation of `iss` and `aud` (time claims off:
    /// [`check_claims`] does them); its algorithm is set per key.
    pub(crate) validation: jsonwebtoken::Validation,
}

impl Rules {
    /// The rules, with the `jsonwebtoken` validation they imply.
    pub(crate) fn new(
        issuer: Option<String>,
        audiences: Vec<String>,
        leeway: i64,
        require_exp: bool,
    ) -> Self {
        let mut validation = jsonwebtoken::Validation::default();
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        if let Some(issuer) = &issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        if audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&audiences);
            validation.required_spec_claims.insert("aud".into());
        }
        Self {
            issuer,
            audiences,
            leeway,
            require_exp,
            validation,
        }
    }
}

/// A NumericDate claim: `None` when absent, an error when not a number.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(AuthError::MalformedToken),
        Some(_) => Err(AuthError::MalformedToken),
    }
}

/// Checks `exp`, `nbf`, `iat` and `sub` of a verified payload at `now`
/// (seconds since the Unix epoch), in that order. `iss` and `aud` were
/// checked by `jsonwebtoken`.
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    rules: &Rules,
    now: i64,
) -> Result<(), AuthError> {
    let now = now as f64;
    let leeway = rules.leeway as f64;
    match numeric_date(claims, "exp")? {
        Some(exp) if now >= exp + leeway => return Err(AuthError::TokenExpired),
        Some(_) => {}
        None if rules.require_exp => return Err(AuthError::MalformedToken),
        None => {}
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now + leeway < nbf
    {
        return Err(AuthError::TokenNotYetValid);
    }
    // `iat` must at least be a number when present.
    numeric_date(claims, "iat")?;
    match claims.get("sub") {
        Some(Value::String(sub)) if !sub.trim().is_empty() => Ok(()),
        _ => Err(AuthError::MissingSubject),
    }
}
