//! Verification keys: JWK / JWKS parsing into `jsonwebtoken` decoding keys,
//! each pinned to one algorithm.
//!
//! The JWK parsing stays ours (see the module docs of [`super`] for why);
//! the keys it produces are [`jsonwebtoken::DecodingKey`]s.

use super::algorithm::Algorithm;
use crate::error::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use std::fmt;

/// Shortest accepted HMAC secret, in bytes (RFC 7518 §3.2: at least the
/// hash output size for HS256).
pub const MIN_SECRET_BYTES: usize = 32;

/// Length of an Ed25519 public key, in bytes.
const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// One public (or shared) key, pinned to one algorithm.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    /// The key id, when the key has one.
    pub(crate) kid: Option<String>,
    /// The only algorithm this key verifies.
    pub(crate) alg: Algorithm,
    /// The key material, for `jsonwebtoken::decode`.
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// An HMAC key for `alg` (one of the HS algorithms) from a shared secret.
    pub(crate) fn hmac(kid: Option<String>, alg: Algorithm, secret: &[u8]) -> Result<Self> {
        if !alg.is_symmetric() {
            return Err(Error::Config(format!(
                "a shared secret cannot be used with {alg}"
            )));
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Error::Config(format!(
                "the JWT secret must be at least {MIN_SECRET_BYTES} bytes long"
            )));
        }
        let key = DecodingKey::from_secret(secret)
            .map_err(|_| Error::Config("the JWT secret is not usable".into()))?;
        Ok(Self { kid, alg, key })
    }

    /// Parses one JWK. `Ok(None)` for keys that are not meant for
    /// signatures (`use: enc`).
    pub(crate) fn from_jwk(jwk: &Map<String, Value>) -> Result<Option<Self>, String> {
        let text = |name: &str| -> Result<Option<&str>, String> {
            match jwk.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(format!("`{name}` is not a string")),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let value = text(name)?.ok_or_else(|| format!("`{name}` is missing"))?;
            URL_SAFE_NO_PAD
                .decode(value.trim_end_matches('='))
                .map_err(|_| format!("`{name}` is not base64url"))
        };
        if text("use")?.is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        if let Some(Value::Array(ops)) = jwk.get("key_ops")
            && !ops.iter().any(|op| op.as_str() == Some("verify"))
        {
            return Ok(None);
        }
        let kid = text("kid")?.map(str::to_owned);
        let kty = text("kty")?.ok_or("`kty` is missing")?;
        let declared = match text("alg")? {
            Some(name) => Some(
                Algorithm::from_name(name)
                    .ok_or_else(|| format!("algorithm `{name}` is not supported"))?,
            ),
            None => None,
        };
        let crv = text("crv")?;
        let (alg, key) = match kty {
            "OKP" => {
                if crv != Some("Ed25519") {
                    return Err(format!(
                        "OKP curve `{}` is not supported (only Ed25519)",
                        crv.unwrap_or("")
                    ));
                }
                let x = bytes("x")?;
                if x.len() != ED25519_PUBLIC_KEY_LEN {
                    return Err("an Ed25519 `x` must be 32 bytes".into());
                }
                (Algorithm::EdDsa, DecodingKey::from_ed_der(&x))
            }
            "EC" => {
                let (alg, len) = match crv {
                    Some("P-256") => (Algorithm::Es256, 32),
                    Some("P-384") => (Algorithm::Es384, 48),
                    other => {
                        return Err(format!(
                            "EC curve `{}` is not supported (P-256, P-384)",
                            other.unwrap_or("")
                        ));
                    }
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != len || y.len() != len {
                    return Err(format!("EC coordinates must be {len} bytes"));
                }
                // The uncompressed SEC1 point `04 || x || y`.
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (alg, DecodingKey::from_ec_der(&point))
            }
            "RSA" => {
                let strip = |mut v: Vec<u8>| {
                    let zeros = v.iter().take_while(|b| **b == 0).count();
                    v.drain(..zeros);
                    v
                };
                let (n, e) = (strip(bytes("n")?), strip(bytes("e")?));
                if n.len() < 256 {
                    return Err("RSA keys must have at least 2048 bits".into());
                }
                if e.is_empty() {
                    return Err("RSA exponent is empty".into());
                }
                // An RSA key without `alg` is pinned to RS256.
                let alg = declared.unwrap_or(Algorithm::Rs256);
                (alg, DecodingKey::from_rsa_raw_components(&n, &e))
            }
            "oct" => {
                let secret = bytes("k")?;
                let alg = declared.unwrap_or(Algorithm::Hs256);
                return VerifyKey::hmac(kid, alg, &secret)
                    .map(Some)
                    .map_err(|e| e.to_string());
            }
            other => return Err(format!("key type `{other}` is not supported")),
        };
        let family_ok = match (kty, declared) {
            (_, None) => true,
            ("RSA", Some(a)) => matches!(
                a,
                Algorithm::Rs256
                    | Algorithm::Rs384
                    | Algorithm::Rs512
                    | Algorithm::Ps256
                    | Algorithm::Ps384
                    | Algorithm::Ps512
            ),
            (_, Some(a)) => a == alg,
        };
        if !family_ok {
            return Err(format!(
                "`alg` {} does not match a {kty} key",
                declared.map(Algorithm::name).unwrap_or("")
            ));
        }
        Ok(Some(Self { kid, alg, key }))
    }
}

/// The usable keys of one JWKS document, plus the `kid`s of keys that were
/// skipped because this verifier cannot use them (e.g. ES512).
#[derive(Clone, Debug, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<VerifyKey>,
    pub(crate) unsupported: Vec<String>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`) or a single JWK.
    pub(crate) fn parse(json: &[u8]) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|e| format!("not a JSON document: {e}"))?;
        let jwks: Vec<&Map<String, Value>> = match &doc {
            Value::Object(obj) => match obj.get("keys") {
                Some(Value::Array(keys)) => keys
                    .iter()
                    .map(|k| k.as_object().ok_or("a `keys` entry is not an object"))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("`keys` is not an array".into()),
                None if obj.contains_key("kty") => vec![obj],
                None => return Err("the document has no `keys`".into()),
            },
            _ => return Err("the document is not a JSON object".into()),
        };
        let mut set = KeySet::default();
        for jwk in jwks {
            match VerifyKey::from_jwk(jwk) {
                Ok(Some(key)) => set.keys.push(key),
                Ok(None) => {}
                Err(reason) => {
                    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::debug!(kid, %reason, "skipping a JWK this verifier cannot use");
                    set.unsupported.push(kid.to_owned());
                }
            }
        }
        if set.keys.is_empty() {
            return Err("the JWKS holds no usable signing key".into());
        }
        Ok(set)
    }
}
