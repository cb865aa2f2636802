//! Compact JWS parsing and registered-claim validation.

use super::algorithm::Algorithm;
use crate::error::AuthError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Longest accepted token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A compact JWS split into its parts; nothing is trusted yet.
pub(crate) struct Parsed<'a> {
    /// The algorithm the header names (must match the key's pinned one).
    pub(crate) alg: Algorithm,
    /// The header's `kid`, when present.
    pub(crate) kid: Option<String>,
    /// `base64url(header) "." base64url(payload)`: the signed bytes.
    pub(crate) signing_input: &'a [u8],
    /// The decoded payload bytes (JSON, parsed only after the signature).
    pub(crate) payload: Vec<u8>,
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
}

fn decode(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::MalformedToken)
}

/// Splits and decodes a compact JWS. Rejects `alg: none` and algorithms this
/// verifier does not implement with [`AuthError::AlgorithmNotAllowed`],
/// anything that is not a well-formed JWS with [`AuthError::MalformedToken`].
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, AuthError> {
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
    let alg = Algorithm::from_name(alg_name).ok_or(AuthError::AlgorithmNotAllowed)?;
    let kid = match header_obj.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::MalformedToken),
    };
    // Extensions that must be understood (RFC 7515 §4.1.11): none are.
    if header_obj.contains_key("crit") {
        return Err(AuthError::MalformedToken);
    }
    let signature = decode(signature)?;
    if signature.is_empty() {
        return Err(AuthError::MalformedToken);
    }
    let payload_bytes = decode(payload)?;
    let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
    Ok(Parsed {
        alg,
        kid,
        signing_input,
        payload: payload_bytes,
        signature,
    })
}

/// What the registered claims must satisfy.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    pub(crate) issuer: Option<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: i64,
    pub(crate) require_exp: bool,
}

/// A NumericDate claim: `None` when absent, an error when not a number.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(AuthError::MalformedToken),
        Some(_) => Err(AuthError::MalformedToken),
    }
}

/// Checks `exp`, `nbf`, `iss`, `aud` and `sub` of a verified payload at
/// `now` (seconds since the Unix epoch), in that order.
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
    if let Some(issuer) = &rules.issuer {
        match claims.get("iss") {
            Some(Value::String(iss)) if iss == issuer => {}
            _ => return Err(AuthError::InvalidIssuer),
        }
    }
    if !rules.audiences.is_empty() {
        let accepted = |aud: &str| rules.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
            _ => false,
        };
        if !ok {
            return Err(AuthError::InvalidAudience);
        }
    }
    match claims.get("sub") {
        Some(Value::String(sub)) if !sub.trim().is_empty() => Ok(()),
        _ => Err(AuthError::MissingSubject),
    }
}
