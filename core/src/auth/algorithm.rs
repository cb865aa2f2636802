//! The JWS algorithms the verifier understands.

use std::fmt;

/// A JWS signature algorithm (RFC 7518) this verifier can check.
///
/// A key is pinned to exactly one algorithm when it is loaded; a token's
/// `alg` header only has to agree with it, it never chooses how the
/// signature is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (`EdDSA` with `crv: Ed25519`), Better Auth's default.
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// HMAC with SHA-256 (a shared secret).
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl Algorithm {
    /// The `alg` name, e.g. `"EdDSA"`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    /// The algorithm called `name`, or `None` for `none` and anything this
    /// verifier does not implement (e.g. `ES512`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "EdDSA" | "Ed25519" => Algorithm::EdDsa,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "HS256" => Algorithm::Hs256,
            "HS384" => Algorithm::Hs384,
            "HS512" => Algorithm::Hs512,
            _ => return None,
        })
    }

    /// The same algorithm as `jsonwebtoken` names it.
    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Algorithm::EdDsa => J::EdDSA,
            Algorithm::Es256 => J::ES256,
            Algorithm::Es384 => J::ES384,
            Algorithm::Rs256 => J::RS256,
            Algorithm::Rs384 => J::RS384,
            Algorithm::Rs512 => J::RS512,
            Algorithm::Ps256 => J::PS256,
            Algorithm::Ps384 => J::PS384,
            Algorithm::Ps512 => J::PS512,
            Algorithm::Hs256 => J::HS256,
            Algorithm::Hs384 => J::HS384,
            Algorithm::Hs512 => J::HS512,
        }
    }

    /// Whether this is an HMAC (shared secret) algorithm.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
