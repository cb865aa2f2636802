//! Who is calling: verification of Better Auth (and other) JWTs.
//!
//! A [`JwtVerifier`] checks compact JWS tokens against keys from
//!
//! - a **JWKS URL** (Better Auth: `{baseURL}/api/auth/jwks`), fetched with a
//!   timeout, cached, refetched when a token names an unknown `kid` (at most
//!   once per refresh interval), with the last good keys kept when a refetch
//!   fails;
//! - a **static JWKS** document (inline JSON);
//! - an **HS256 shared secret** (at least 32 bytes).
//!
//! Supported algorithms: EdDSA (Ed25519, Better Auth's default), ES256,
//! ES384, RS256/384/512, PS256/384/512 and HS256/384/512. Every key is pinned
//! to one algorithm when it is loaded (from its JWK `alg`, else from its
//! type and curve; RSA without `alg` means RS256); the token's `alg` header
//! must agree and never chooses the algorithm, so `alg: none` and HS/RS key
//! confusion are refused.
//!
//! Claims checked: `iss` (when configured), `aud` (string or array, when
//! configured), `exp` (required), `nbf`, `iat` (a number when present) and
//! `sub` (required), in that order, with a leeway on the times. Each
//! rejection has its own [`AuthError`] code.
//!
//! # What `jsonwebtoken` does and what stays ours
//!
//! Signatures are checked by the [`jsonwebtoken`] crate (its RustCrypto
//! provider): [`jsonwebtoken::decode`] with a [`jsonwebtoken::Validation`]
//! that allows exactly the key's pinned algorithm, and it also checks the
//! header's `crit`, `iss` and `aud`. Fetching, caching and rotating the JWKS
//! are ours, and so are these checks, each because `jsonwebtoken` cannot
//! make it the way this module promises:
//!
//! - **a first look at the token** (`token::parse`): the `kid` picks the key
//!   (and an unknown one triggers a JWKS refresh) before anything can be
//!   verified; `alg: none` or an algorithm we do not implement must be
//!   `algorithm_not_allowed`, which `jsonwebtoken` reports as a malformed
//!   header like any other; and a payload or signature that is not base64url
//!   must be `malformed_token`, where `jsonwebtoken` would check the
//!   signature first and report `invalid_signature`.
//! - **JWK parsing** (`jwk`): `jsonwebtoken`'s `JwkSet` fails as a whole on
//!   one key it cannot read (an ES512 or Ed448 key next to usable ones), does
//!   not pin a key without `alg` to one algorithm, and does not refuse RSA
//!   keys under 2048 bits when they are loaded. Our parser reads the key
//!   material into [`jsonwebtoken::DecodingKey`]s.
//! - **`exp`, `nbf`, `iat`** (`token::check_claims`): `jsonwebtoken` reads
//!   the system clock only, and the verifier's time comes from a clock the
//!   application (or a test) may set ([`JwtVerifierBuilder::clock`]); it
//!   also does not check that `iat` is a number.
//! - **`sub`**: `jsonwebtoken` can only compare `sub` with one expected
//!   value; here it must be present and not blank.
//!
//! [`JwtVerifier::verify`] then holds the identity to the rules of
//! [`crate::validate`], so that a validly signed token cannot carry a user
//! id the stores or the logs cannot take:
//!
//! | claim | rule | refused with |
//! | --- | --- | --- |
//! | `sub` | [`validate::user_id`](crate::validate::user_id): not blank, at most 256 characters, no control or invisible formatting character | `invalid_request` (400) |
//! | `name`, `email` (when present) | [`validate::line`](crate::validate::line): no control character or line break | `invalid_request` (400) |
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::auth::JwtVerifier;
//! use std::time::Duration;
//!
//! let verifier = JwtVerifier::builder()
//!     .jwks_url("https://app.example.com/api/auth/jwks")
//!     .issuer("https://app.example.com")
//!     .audience("https://app.example.com")
//!     .leeway(Duration::from_secs(30))
//!     .build()?;
//! // let claims = verifier.verify(token).await?;   // claims.sub = the user id
//! # let _ = verifier; Ok(()) }
//! ```
//!
//! Tokens and secrets are never logged; rejections are logged at `debug`
//! with their code and the token's `kid`.

mod algorithm;
mod jwk;
mod remote;
mod token;

pub use crate::error::AuthError;
pub use algorithm::Algorithm;
pub use jwk::MIN_SECRET_BYTES;
pub use token::MAX_TOKEN_BYTES;

use crate::config::EngineConfig;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use jwk::{KeySet, VerifyKey};
use remote::{RemoteJwks, RemoteTiming, Want};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        let mut ctx = RequestContext::new(self.sub);
        ctx.email = self.email;
        ctx.name = self.name;
        ctx
    }

    /// The identity rules of [`crate::validate`]: `sub` is a valid user id,
    /// `name` and `email` are one line of text.
    fn check(&self) -> Result<()> {
        crate::validate::user_id(&self.sub)?;
        if let Some(name) = &self.name {
            crate::validate::line("the token's name", name)?;
        }
        if let Some(email) = &self.email {
            crate::validate::line("the token's email", email)?;
        }
        Ok(())
    }

    fn from_payload(payload: &Map<String, Value>) -> Option<Self> {
        let text = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            sub: text("sub")?,
            email: text("email"),
            name: text("name"),
        })
    }
}

/// The current time in seconds since the Unix epoch, as a verifier sees it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Verifies JWTs against configured keys. Cheap to clone (clones share the
/// JWKS cache).
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Keys from inline JWKS documents and the shared secret.
    fixed: KeySet,
    /// Keys from a JWKS URL (shared by clones and [`JwtVerifier::with_clock`]).
    remote: Option<Arc<RemoteJwks>>,
    rules: token::Rules,
    clock: Clock,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("JwtVerifier")
            .field("fixed_keys", &inner.fixed.keys)
            .field("remote", &inner.remote)
            .field("issuer", &inner.rules.issuer)
            .field("audiences", &inner.rules.audiences)
            .field("leeway_secs", &inner.rules.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A builder with no keys, no issuer/audience requirement, a 30 s
    /// leeway, a 60 s refresh interval, a 5 s fetch timeout and a 300 s
    /// JWKS cache age.
    pub fn builder() -> JwtVerifierBuilder {
        JwtVerifierBuilder::default()
    }

    /// The verifier the configuration asks for, or `None` when it names no
    /// JWKS URL, inline JWKS or HS256 secret.
    ///
    /// Uses `jwks_url`, `jwks`, `jwt_secret` (all that are set; unset JWT
    /// settings come from `better_auth_url`, see
    /// [`EngineConfig::apply_better_auth`]),
    /// `jwt_issuer`, `jwt_audience`, `jwt_leeway_secs` and
    /// `jwks_refresh_secs`. The JWKS URL is fetched lazily, on the first
    /// verification (or [`JwtVerifier::refresh`]).
    pub async fn from_config(config: &EngineConfig) -> Result<Option<Self>> {
        let mut config = config.clone();
        config.apply_better_auth();
        let config = &config;
        if config.jwks_url.is_none() && config.jwks.is_none() && config.jwt_secret.is_none() {
            return Ok(None);
        }
        let mut builder = Self::builder()
            .leeway(Duration::from_secs(config.jwt_leeway_secs))
            .refresh_interval(Duration::from_secs(config.jwks_refresh_secs))
            .audiences(config.jwt_audience.iter().cloned());
        if let Some(url) = &config.jwks_url {
            builder = builder.jwks_url(url.clone());
        }
        if let Some(json) = &config.jwks {
            builder = builder.jwks_json(json.clone());
        }
        if let Some(secret) = &config.jwt_secret {
            builder = builder.hs256_secret(secret.as_bytes());
        }
        if let Some(issuer) = &config.jwt_issuer {
            builder = builder.issuer(issuer.clone());
        }
        builder.build().map(Some)
    }

    /// A verifier for the keys of a JWKS document (or one JWK), with the
    /// builder's defaults otherwise.
    pub fn from_jwks_json(json: &str) -> Result<Self> {
        Self::builder().jwks_json(json).build()
    }

    /// A verifier for HS256 tokens signed with `secret` (at least
    /// [`MIN_SECRET_BYTES`] bytes), with the builder's defaults otherwise.
    pub fn from_secret(secret: impl AsRef<[u8]>) -> Result<Self> {
        Self::builder().hs256_secret(secret.as_ref()).build()
    }

    /// A verifier for the keys published at a JWKS URL, with the builder's
    /// defaults otherwise.
    pub fn from_jwks_url(url: impl Into<String>) -> Result<Self> {
        Self::builder().jwks_url(url).build()
    }

    /// The same verifier (sharing its JWKS cache) reading the time from
    /// `clock` (seconds since the Unix epoch) instead of the system clock.
    /// Meant for tests.
    pub fn with_clock(&self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                fixed: inner.fixed.clone(),
                remote: inner.remote.clone(),
                rules: inner.rules.clone(),
                clock: Arc::new(clock),
            }),
        }
    }

    /// Verifies a compact JWT and checks its identity claims with the rules
    /// of [`crate::validate`] (see the module docs).
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let payload = self.verify_payload(token).await?;
        let claims =
            Claims::from_payload(&payload).ok_or(Error::Auth(AuthError::MissingSubject))?;
        claims.check().inspect_err(|err| {
            tracing::debug!(
                code = err.code(),
                "refused the identity of a verified token"
            );
        })?;
        Ok(claims)
    }

    /// Verifies a compact JWT and returns its whole payload (all claims,
    /// e.g. Better Auth's `emailVerified`, `image`, custom fields).
    pub async fn verify_payload(&self, token: &str) -> Result<Map<String, Value>> {
        let mut kid_for_log = None;
        let result = self.check(token, &mut kid_for_log).await;
        if let Err(reason) = &result {
            tracing::debug!(
                code = reason.code(),
                kid = kid_for_log.as_deref().unwrap_or(""),
                "rejected a bearer token"
            );
        }
        result.map_err(Error::Auth)
    }

    /// Fetches the JWKS now, ignoring the refresh interval (e.g. to warm the
    /// cache at startup). Does nothing without a JWKS URL. Fails with
    /// [`AuthError::JwksUnavailable`] when the fetch fails; earlier keys stay
    /// cached.
    pub async fn refresh(&self) -> Result<()> {
        if let Some(remote) = &self.inner.remote {
            remote.force_refresh().await.map_err(|reason| {
                tracing::warn!(%reason, "JWKS refresh failed");
                Error::Auth(AuthError::JwksUnavailable)
            })?;
        }
        Ok(())
    }

    async fn check(
        &self,
        token: &str,
        kid_for_log: &mut Option<String>,
    ) -> Result<Map<String, Value>, AuthError> {
        let inner = &self.inner;
        let token = token.trim();
        let parsed = token::parse(token)?;
        kid_for_log.clone_from(&parsed.kid);
        let remote_keys = match &inner.remote {
            Some(remote) => Some(self.remote_keys_for(remote, &parsed).await?),
            None => None,
        };
        let sets = std::iter::once(&inner.fixed).chain(remote_keys.as_deref());
        let candidates: Vec<&VerifyKey> = match &parsed.kid {
            Some(kid) => {
                let found: Vec<&VerifyKey> = sets
                    .clone()
                    .flat_map(|set| set.keys.iter())
                    .filter(|key| key.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if found.is_empty() {
                    // A kid-less shared secret still verifies HS tokens that
                    // carry some kid of their own.
                    let unkeyed: Vec<&VerifyKey> = sets
                        .clone()
                        .flat_map(|set| set.keys.iter())
                        .filter(|key| key.kid.is_none() && key.alg.is_symmetric())
                        .collect();
                    if unkeyed.is_empty() || !parsed.alg.is_symmetric() {
                        let unsupported = sets
                            .clone()
                            .any(|set| set.unsupported.iter().any(|k| k == kid));
                        return Err(if unsupported {
                            AuthError::AlgorithmNotAllowed
                        } else {
                            AuthError::UnknownKey
                        });
                    }
                    unkeyed
                } else {
                    found
                }
            }
            None => sets.flat_map(|set| set.keys.iter()).collect(),
        };
        // The key decides the algorithm; the header only has to agree.
        let pinned: Vec<&VerifyKey> = candidates
            .into_iter()
            .filter(|key| key.alg == parsed.alg)
            .collect();
        if pinned.is_empty() {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let mut validation = inner.rules.validation.clone();
        validation.algorithms = vec![parsed.alg.to_jsonwebtoken()];
        for key in pinned {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    token::check_claims(&data.claims, &inner.rules, (inner.clock)())?;
                    return Ok(data.claims);
                }
                // Not this key's signature: try the next candidate.
                Err(e) if signature_failed(e.kind()) => {}
                Err(e) => return Err(auth_error(e.kind())),
            }
        }
        Err(AuthError::InvalidSignature)
    }

    /// The remote keys to look in for this token, refetched when its `kid`
    /// is unknown (rate-limited).
    async fn remote_keys_for(
        &self,
        remote: &RemoteJwks,
        parsed: &token::Parsed,
    ) -> Result<Arc<KeySet>, AuthError> {
        let fixed_has_kid = |kid: &str| {
            self.inner
                .fixed
                .keys
                .iter()
                .any(|k| k.kid.as_deref() == Some(kid))
        };
        let keys = match remote.keys(Want::Any).await {
            Ok(keys) => keys,
            // Without remote keys a token for a fixed key still verifies.
            Err(e) => {
                let fixed_can = match &parsed.kid {
                    Some(kid) => fixed_has_kid(kid),
                    None => self.inner.fixed.keys.iter().any(|k| k.alg == parsed.alg),
                };
                return if fixed_can {
                    Ok(Arc::default())
                } else {
                    Err(e)
                };
            }
        };
        match &parsed.kid {
            Some(kid)
                if !fixed_has_kid(kid)
                    && !keys.keys.iter().any(|k| k.kid.as_deref() == Some(kid)) =>
            {
                remote.keys(Want::UnknownKid).await
            }
            _ => Ok(keys),
        }
    }
}

/// Makes sure `jsonwebtoken` has a process-wide crypto provider. It picks
/// RustCrypto by itself while only its `rust_crypto` feature is on; when an
/// application also turns on `aws_lc_rs` it picks none (and would panic on
/// the first `decode`), so RustCrypto is installed unless the application
/// installed a provider of its own first.
fn ensure_crypto_provider() {
    use jsonwebtoken::crypto::{CryptoProvider, rust_crypto};
    if CryptoProvider::try_get_default().is_none() {
        // Losing a race to another installer is fine: there is one now.
        let _ = rust_crypto::DEFAULT_PROVIDER.install_default();
    }
}

/// Whether `jsonwebtoken` refused the signature for this key (or the key
/// itself, e.g. an EC point off its curve), so that another candidate key
/// may still verify the token.
fn signature_failed(kind: &jsonwebtoken::errors::ErrorKind) -> bool {
    use jsonwebtoken::errors::ErrorKind as K;
    matches!(
        kind,
        K::InvalidSignature
            | K::InvalidAlgorithm
            | K::InvalidEcdsaKey
            | K::InvalidEddsaKey
            | K::InvalidRsaKey(_)
            | K::InvalidKeyFormat
            | K::Provider(_)
    )
}

/// Our code for a `jsonwebtoken` rejection that does not depend on the key:
/// the header (`crit`), the payload, `iss` or `aud`.
fn auth_error(kind: &jsonwebtoken::errors::ErrorKind) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidIssuer => AuthError::InvalidIssuer,
        K::InvalidAudience => AuthError::InvalidAudience,
        K::MissingRequiredClaim(claim) | K::InvalidClaimFormat(claim) => match claim.as_str() {
            "iss" => AuthError::InvalidIssuer,
            "aud" => AuthError::InvalidAudience,
            "sub" => AuthError::MissingSubject,
            _ => AuthError::MalformedToken,
        },
        K::ExpiredSignature => AuthError::TokenExpired,
        K::ImmatureSignature => AuthError::TokenNotYetValid,
        K::UnsupportedAlgorithm | K::MissingAlgorithm | K::InvalidAlgorithmName => {
            AuthError::AlgorithmNotAllowed
        }
        _ => AuthError::MalformedToken,
    }
}

/// Builds a [`JwtVerifier`]. Key sources add up: a JWKS URL, any number of
/// inline JWKS documents and a shared secret can be combined.
#[derive(Clone)]
pub struct JwtVerifierBuilder {
    jwks_url: Option<String>,
    jwks_json: Vec<String>,
    secret: Option<Vec<u8>>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: Duration,
    refresh_interval: Duration,
    fetch_timeout: Duration,
    cache_max_age: Duration,
    require_exp: bool,
    clock: Option<Clock>,
}

impl Default for JwtVerifierBuilder {
    fn default() -> Self {
        Self {
            jwks_url: None,
            jwks_json: Vec::new(),
            secret: None,
            issuer: None,
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(5),
            cache_max_age: Duration::from_secs(300),
            require_exp: true,
            clock: None,
        }
    }
}

impl fmt::Debug for JwtVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifierBuilder")
            .field("jwks_url", &self.jwks_url)
            .field("jwks_json", &self.jwks_json.len())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("refresh_interval", &self.refresh_interval)
            .field("fetch_timeout", &self.fetch_timeout)
            .finish_non_exhaustive()
    }
}

impl JwtVerifierBuilder {
    /// Fetch keys from this JWKS URL (http or https).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Trust the keys of this JWKS document (`{"keys": [...]}`) or single
    /// JWK. May be called more than once.
    pub fn jwks_json(mut self, json: impl Into<String>) -> Self {
        self.jwks_json.push(json.into());
        self
    }

    /// Trust HS256 tokens signed with this shared secret (at least
    /// [`MIN_SECRET_BYTES`] bytes). The secret key has no `kid`.
    pub fn hs256_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Require `iss` to be exactly `issuer` (Better Auth: its `baseURL`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Accept tokens whose `aud` (string or array) names `audience`. May be
    /// called more than once; any one match is enough. Without any audience,
    /// `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// [`Self::audience`] for each of `audiences`.
    pub fn audiences(mut self, audiences: impl IntoIterator<Item = String>) -> Self {
        self.audiences.extend(audiences);
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Minimum time between two JWKS fetches caused by unknown `kid`s
    /// (default 60 s).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Limit for one JWKS fetch (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Age after which cached JWKS keys are refetched on next use, so that
    /// removed keys stop verifying (default 300 s; still subject to the
    /// refresh interval, and the old keys stay when the refetch fails).
    pub fn cache_max_age(mut self, max_age: Duration) -> Self {
        self.cache_max_age = max_age;
        self
    }

    /// Whether tokens without `exp` are rejected as malformed (default
    /// `true`).
    pub fn require_exp(mut self, require: bool) -> Self {
        self.require_exp = require;
        self
    }

    /// Read the time from `clock` (seconds since the Unix epoch) instead of
    /// the system clock. Meant for tests.
    pub fn clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The verifier. Fails with [`Error::Config`] when no key source is
    /// given, a JWKS document has no usable key, the secret is too short or
    /// the URL is not http(s).
    pub fn build(self) -> Result<JwtVerifier> {
        ensure_crypto_provider();
        let mut fixed = KeySet::default();
        for json in &self.jwks_json {
            let set = KeySet::parse(json.as_bytes())
                .map_err(|reason| Error::Config(format!("invalid JWKS: {reason}")))?;
            fixed.keys.extend(set.keys);
            fixed.unsupported.extend(set.unsupported);
        }
        if let Some(secret) = &self.secret {
            fixed
                .keys
                .push(VerifyKey::hmac(None, Algorithm::Hs256, secret)?);
        }
        let remote = match &self.jwks_url {
            Some(url) => Some(Arc::new(RemoteJwks::new(
                url,
                RemoteTiming {
                    fetch_timeout: self.fetch_timeout,
                    min_refresh: self.refresh_interval,
                    max_age: self.cache_max_age,
                },
            )?)),
            None => None,
        };
        if fixed.keys.is_empty() && remote.is_none() {
            return Err(Error::Config(
                "a JWT verifier needs a JWKS URL, a JWKS document or a shared secret".into(),
            ));
        }
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX / 4);
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                fixed,
                remote,
                rules: token::Rules::new(
                    self.issuer,
                    self.audiences,
                    leeway.min(i64::MAX / 4),
                    self.require_exp,
                ),
                clock: self.clock.unwrap_or_else(|| Arc::new(system_clock)),
            }),
        })
    }
}
