//! JWT verification: every algorithm, every rejection with its code, the
//! captured Better Auth token, JWKS fetching/caching/refresh against a local
//! HTTP endpoint, `ChatEngine::authenticate`, and (ignored unless the
//! `20-better-auth` stage runs them) interop with a real Better Auth issuer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/jwt.rs"]
mod jwt;

use chatkit_engine::auth::{AuthError, Claims, JwtVerifier, JwtVerifierBuilder};
use chatkit_engine::engine::{ChatEngine, EchoResponder};
use chatkit_engine::store::SqliteStore;
use chatkit_engine::{EngineConfig, Error};
use jwt::{Answer, ISSUER, JwksServer, SECRET, TestKey, b64, claims, jwks, now};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The real token captured from Better Auth 1.7.25 (reference A6): EdDSA,
/// iat 1795644207, exp 1795645107, iss = aud = http://localhost:3000.
const BA_TOKEN: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6InJJOVJkRWx0VFVMVkt0eUdLeTFuU2R6T05MWDBZQ0tYIn0.eyJpYXQiOjE3OTU2NDQyMDcsIm5hbWUiOiJBbGljZSIsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS5jb20iLCJlbWFpbFZlcmlmaWVkIjpmYWxzZSwiY3JlYXRlZEF0IjoiMjAyNi0xMS0yNVQyMjowMzoyNi45MTlaIiwidXBkYXRlZEF0IjoiMjAyNi0xMS0yNVQyMjowMzoyNi45MTlaIiwiaWQiOiJDRXZjYVdPSVFVV3l4YUZpTGVTZlJqQWlPM1d4dUhJQiIsInN1YiI6IkNFdmNhV09JUVVXeXhhRmlMZVNmUmpBaU8zV3h1SElCIiwiZXhwIjoxNzk1NjQ1MTA3LCJpc3MiOiJodHRwOi8vbG9jYWxob3N0OjMwMDAiLCJhdWQiOiJodHRwOi8vbG9jYWxob3N0OjMwMDAifQ.Pk-EgtaequZFtPLmB7Lid6S1_EdAqUH3_qsiWaEL2U0QI09v2IHK60EpFBy9TwVbTCH2j6cPO998My61e8rjBg";
const BA_JWKS: &str = r#"{"keys":[{"alg":"EdDSA","crv":"Ed25519","x":"aFriZzxSXJl7MUt5dkNJOw4RVkV-kqxx4agZgjrckcU","kty":"OKP","kid":"rI9RdEltTULVKtyGKy1nSdzONLX0YCKX"}]}"#;
const BA_SUB: &str = "CEvcaWOIQUWyxaFiLeSfRjAiO3WxuHIB";

/// A verifier for `keys` with issuer/audience [`ISSUER`] and no leeway.
fn verifier_for(keys: &[&TestKey]) -> JwtVerifier {
    JwtVerifier::builder()
        .jwks_json(jwks(keys))
        .issuer(ISSUER)
        .audience(ISSUER)
        .leeway(Duration::ZERO)
        .build()
        .unwrap()
}

/// The code of the error `verify` returns (panics when it verifies).
async fn reject(verifier: &JwtVerifier, token: &str) -> &'static str {
    match verifier.verify(token).await {
        Ok(claims) => panic!("token was accepted: {claims:?}"),
        Err(err) => {
            assert_eq!(
                err.http_status(),
                if err.code() == "jwks_unavailable" {
                    503
                } else {
                    401
                }
            );
            assert!(err.user_message().is_some());
            err.code()
        }
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

// ---------------------------------------------------------------------------------------------
// algorithms

#[tokio::test]
async fn every_algorithm_verifies_and_carries_sub_email_and_name() {
    let keys = [
        TestKey::ed25519("ed"),
        TestKey::es256("ec"),
        TestKey::rsa("rsa-a", "RS256", "rs"),
        TestKey::rsa("rsa-b", "PS256", "ps"),
    ];
    let verifier = verifier_for(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        let claims = verifier.verify(&key.sign(&claims("user-1"))).await;
        assert_eq!(
            claims.unwrap_or_else(|e| panic!("{} failed: {e}", key.alg)),
            Claims {
                sub: "user-1".into(),
                email: Some("user-1@example.com".into()),
                name: Some("Alice".into()),
            },
            "{}",
            key.alg
        );
    }

    let hs = TestKey::hs256(SECRET.as_bytes());
    let verifier = JwtVerifier::builder()
        .hs256_secret(SECRET.as_bytes())
        .issuer(ISSUER)
        .build()
        .unwrap();
    let context = verifier
        .verify(&hs.sign(&without(claims("bob"), "email")))
        .await
        .unwrap()
        .into_context();
    assert_eq!(context.user_id, "bob");
    assert_eq!(context.email, None);
    assert_eq!(context.name.as_deref(), Some("Alice"));
}

#[tokio::test]
async fn the_whole_payload_is_available() {
    let key = TestKey::ed25519("ed");
    let verifier = verifier_for(&[&key]);
    let token = key.sign(&with(claims("u"), "emailVerified", json!(true)));
    let payload = verifier.verify_payload(&token).await.unwrap();
    assert_eq!(payload["emailVerified"], json!(true));
    assert_eq!(payload["sub"], json!("u"));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let key = TestKey::ed25519("ed");
    let verifier = verifier_for(&[&key]);
    let payload = b64(claims("u").to_string().as_bytes());
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "none", "kid": "ed"}),
        json!({"alg": "None", "kid": "ed"}),
    ] {
        let unsigned = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        assert_eq!(reject(&verifier, &unsigned).await, "algorithm_not_allowed");
        // Even with some signature bytes attached.
        let padded = format!("{unsigned}{}", b64(b"sig"));
        assert_eq!(reject(&verifier, &padded).await, "algorithm_not_allowed");
    }
}

#[tokio::test]
async fn hs_rs_key_confusion_is_refused() {
    let rsa = TestKey::rsa("rsa-a", "RS256", "rs");
    let verifier = verifier_for(&[&rsa]);
    // The classic attack: HMAC keyed with the public key, header naming the
    // RSA key's kid (or none).
    for public in [
        rsa.jwk.to_string(),
        rsa.jwk["n"].as_str().unwrap().to_owned(),
    ] {
        let forger = TestKey::hs256(public.as_bytes());
        let with_kid = forger.sign_with_header(&json!({"alg": "HS256", "kid": "rs"}), &claims("u"));
        assert_eq!(reject(&verifier, &with_kid).await, "algorithm_not_allowed");
        let without_kid = forger.sign(&claims("u"));
        assert_eq!(
            reject(&verifier, &without_kid).await,
            "algorithm_not_allowed"
        );
    }

    // A PS256-pinned key does not accept an RS256 signature of the same key.
    let rs_as_ps = TestKey::rsa("rsa-b", "RS256", "ps");
    let ps = TestKey::rsa("rsa-b", "PS256", "ps");
    let verifier = verifier_for(&[&ps]);
    assert_eq!(
        reject(&verifier, &rs_as_ps.sign(&claims("u"))).await,
        "algorithm_not_allowed"
    );
    assert!(verifier.verify(&ps.sign(&claims("u"))).await.is_ok());

    // A secret-only verifier refuses asymmetric tokens.
    let secret_only = JwtVerifier::from_secret(SECRET).unwrap();
    let ed = TestKey::ed25519("ed");
    assert_eq!(
        reject(&secret_only, &ed.sign(&claims("u"))).await,
        "unknown_key"
    );
    let ed_no_kid = ed.sign_with_header(&json!({"alg": "EdDSA"}), &claims("u"));
    assert_eq!(
        reject(&secret_only, &ed_no_kid).await,
        "algorithm_not_allowed"
    );
}

#[tokio::test]
async fn bad_signatures_and_tampered_payloads_are_refused() {
    let key = TestKey::ed25519("k1");
    let impostor = TestKey::ed25519("k1");
    let es = TestKey::es256("k2");
    let rs = TestKey::rsa("rsa-a", "RS256", "k3");
    let verifier = verifier_for(&[&key, &es, &rs]);

    assert_eq!(
        reject(&verifier, &impostor.sign(&claims("u"))).await,
        "invalid_signature"
    );

    for signer in [&key, &es, &rs] {
        let token = signer.sign(&claims("alice"));
        assert!(verifier.verify(&token).await.is_ok());
        let parts: Vec<&str> = token.split('.').collect();

        // Payload changed to another user, signature kept.
        let forged = b64(claims("mallory").to_string().as_bytes());
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(
            reject(&verifier, &tampered).await,
            "invalid_signature",
            "{}",
            signer.alg
        );

        // A flipped signature bit.
        let mut sig = base64_decode(parts[2]);
        sig[5] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(
            reject(&verifier, &flipped).await,
            "invalid_signature",
            "{}",
            signer.alg
        );

        // A truncated signature.
        let short = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..sig.len() - 1]));
        assert_eq!(
            reject(&verifier, &short).await,
            "invalid_signature",
            "{}",
            signer.alg
        );
    }

    let secret = JwtVerifier::from_secret(SECRET).unwrap();
    let other = TestKey::hs256(b"another-test-only-secret-0123456789-abcdef");
    assert_eq!(
        reject(&secret, &other.sign(&claims("u"))).await,
        "invalid_signature"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// claims

#[tokio::test]
async fn expiry_not_before_and_leeway() {
    let key = TestKey::es256("k");
    let strict = verifier_for(&[&key]);
    let lenient = JwtVerifier::builder()
        .jwks_json(jwks(&[&key]))
        .leeway(Duration::from_secs(60))
        .build()
        .unwrap();
    let now = now();

    let expired = key.sign(&with(claims("u"), "exp", json!(now - 30)));
    assert_eq!(reject(&strict, &expired).await, "token_expired");
    assert!(lenient.verify(&expired).await.is_ok(), "within leeway");
    let long_expired = key.sign(&with(claims("u"), "exp", json!(now - 120)));
    assert_eq!(reject(&lenient, &long_expired).await, "token_expired");

    let early = key.sign(&with(claims("u"), "nbf", json!(now + 30)));
    assert_eq!(reject(&strict, &early).await, "token_not_yet_valid");
    assert!(lenient.verify(&early).await.is_ok(), "within leeway");
    let far_early = key.sign(&with(claims("u"), "nbf", json!(now + 120)));
    assert_eq!(reject(&lenient, &far_early).await, "token_not_yet_valid");
    let started = key.sign(&with(claims("u"), "nbf", json!(now - 1)));
    assert!(strict.verify(&started).await.is_ok());

    // Fractional NumericDates are fine.
    let fractional = key.sign(&with(claims("u"), "exp", json!(now as f64 + 100.5)));
    assert!(strict.verify(&fractional).await.is_ok());

    // A fixed clock decides instead of the system clock.
    let frozen = strict.with_clock(move || now + 10_000);
    assert_eq!(
        reject(&frozen, &key.sign(&claims("u"))).await,
        "token_expired"
    );
}

#[tokio::test]
async fn issuer_is_checked_exactly() {
    let key = TestKey::ed25519("k");
    let verifier = verifier_for(&[&key]);
    for iss in [
        json!("http://localhost:3001"),
        json!("http://localhost:3000/"),
        json!(42),
    ] {
        let token = key.sign(&with(claims("u"), "iss", iss));
        assert_eq!(reject(&verifier, &token).await, "invalid_issuer");
    }
    assert_eq!(
        reject(&verifier, &key.sign(&without(claims("u"), "iss"))).await,
        "invalid_issuer"
    );
    // Without a configured issuer any iss is accepted.
    let open = JwtVerifier::from_jwks_json(&jwks(&[&key])).unwrap();
    let token = key.sign(&with(claims("u"), "iss", json!("elsewhere")));
    assert!(open.verify(&token).await.is_ok());
}

#[tokio::test]
async fn audience_string_or_array() {
    let key = TestKey::ed25519("k");
    let verifier = JwtVerifier::builder()
        .jwks_json(jwks(&[&key]))
        .audience("api")
        .audience("web")
        .build()
        .unwrap();
    for aud in [
        json!("api"),
        json!("web"),
        json!(["other", "web"]),
        json!(["api"]),
    ] {
        let token = key.sign(&with(claims("u"), "aud", aud.clone()));
        assert!(verifier.verify(&token).await.is_ok(), "{aud}");
    }
    for aud in [
        json!("other"),
        json!(["x", "y"]),
        json!([]),
        json!(7),
        json!("API"),
    ] {
        let token = key.sign(&with(claims("u"), "aud", aud.clone()));
        assert_eq!(reject(&verifier, &token).await, "invalid_audience", "{aud}");
    }
    assert_eq!(
        reject(&verifier, &key.sign(&without(claims("u"), "aud"))).await,
        "invalid_audience"
    );
    // Without configured audiences aud is not checked.
    let open = JwtVerifier::from_jwks_json(&jwks(&[&key])).unwrap();
    assert!(
        open.verify(&key.sign(&with(claims("u"), "aud", json!("x"))))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn subject_is_required() {
    let key = TestKey::ed25519("k");
    let verifier = verifier_for(&[&key]);
    assert_eq!(
        reject(&verifier, &key.sign(&without(claims("u"), "sub"))).await,
        "missing_subject"
    );
    for sub in [json!(""), json!("  "), json!(12), json!(null)] {
        let token = key.sign(&with(claims("u"), "sub", sub.clone()));
        assert_eq!(reject(&verifier, &token).await, "missing_subject", "{sub}");
    }
}

#[tokio::test]
async fn a_signed_token_still_needs_a_user_id_the_stores_and_logs_can_take() {
    let key = TestKey::ed25519("ed");
    let verifier = verifier_for(&[&key]);
    let refused = |sub: &str| with(claims("x"), "sub", json!(sub));
    for bad in [
        refused("mallory\u{0}"),
        refused("mallory\nINFO admin signed in"),
        refused("\u{1b}[31mred"),
        refused("alice\u{202e}ecila"),
        refused(&"a".repeat(5_000)),
        with(claims("ok"), "name", json!("two\nlines")),
        with(claims("ok"), "email", json!("a@b\r\nBcc: c")),
    ] {
        let err = verifier.verify(&key.sign(&bad)).await.unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("invalid_request", 400),
            "{bad}"
        );
        assert!(
            !err.to_string().contains("mallory"),
            "the value is not echoed: {err}"
        );
    }
    let longest = "a".repeat(chatkit_engine::validate::MAX_USER_ID_CHARS);
    let accepted = verifier.verify(&key.sign(&claims(&longest))).await.unwrap();
    assert_eq!(accepted.sub, longest);
}

#[tokio::test]
async fn malformed_tokens() {
    let key = TestKey::ed25519("k");
    let verifier = verifier_for(&[&key]);
    let good = key.sign(&claims("u"));
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{good}.extra"),
        format!("{}.{}.", parts[0], parts[1]),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[1]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"kid":"k"}"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"alg":5}"#), parts[1], parts[2]),
        "x".repeat(20_000),
    ];
    for token in &cases {
        assert_eq!(
            reject(&verifier, token).await,
            "malformed_token",
            "{token:.60}"
        );
    }
    // Properly signed, but the payload is not a JSON object.
    let header = b64(key.header().to_string().as_bytes());
    for payload in [b"not json".as_slice(), b"[]"] {
        let input = format!("{header}.{}", b64(payload));
        let token = format!("{input}.{}", b64(&key.sign_bytes(input.as_bytes())));
        assert_eq!(reject(&verifier, &token).await, "malformed_token");
    }
    // Registered claims with the wrong type, or no exp at all.
    for bad in [
        with(claims("u"), "exp", json!("soon")),
        with(claims("u"), "nbf", json!("now")),
        with(claims("u"), "iat", json!(true)),
        without(claims("u"), "exp"),
    ] {
        assert_eq!(
            reject(&verifier, &key.sign(&bad)).await,
            "malformed_token",
            "{bad}"
        );
    }
    let crit = key.sign_with_header(
        &json!({"alg": "EdDSA", "kid": "k", "crit": ["b64"]}),
        &claims("u"),
    );
    assert_eq!(reject(&verifier, &crit).await, "malformed_token");
    // exp can be made optional.
    let relaxed = JwtVerifier::builder()
        .jwks_json(jwks(&[&key]))
        .require_exp(false)
        .build()
        .unwrap();
    assert!(
        relaxed
            .verify(&key.sign(&without(claims("u"), "exp")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn unknown_kid_and_unsupported_keys() {
    let key = TestKey::ed25519("known");
    let stranger = TestKey::ed25519("stranger");
    let verifier = verifier_for(&[&key]);
    assert_eq!(
        reject(&verifier, &stranger.sign(&claims("u"))).await,
        "unknown_key"
    );

    // A JWKS with an ES512 (P-521) key next to a usable one: the usable key
    // works, a token for the ES512 key is an algorithm this verifier refuses.
    let es512 = json!({"alg": "ES512", "crv": "P-521", "kty": "EC", "kid": "p521",
        "x": b64(&[1; 66]), "y": b64(&[2; 66])});
    let doc = json!({"keys": [es512, key.jwk]}).to_string();
    let mixed = JwtVerifier::from_jwks_json(&doc).unwrap();
    assert!(mixed.verify(&key.sign(&claims("u"))).await.is_ok());
    let es512_token = key.sign_with_header(&json!({"alg": "ES512", "kid": "p521"}), &claims("u"));
    assert_eq!(reject(&mixed, &es512_token).await, "algorithm_not_allowed");

    // Keys for encryption are ignored.
    let mut enc = TestKey::ed25519("enc").jwk;
    enc["use"] = json!("enc");
    let err = JwtVerifier::from_jwks_json(&json!({"keys": [enc]}).to_string()).unwrap_err();
    assert_eq!(err.code(), "invalid_config");
}

#[tokio::test]
async fn configuration_errors_are_clear() {
    for doc in [
        "",
        "{}",
        r#"{"keys": {}}"#,
        r#"{"keys": []}"#,
        r#"{"keys": [{"kty": "OKP", "crv": "Ed448", "x": "AA"}]}"#,
    ] {
        let err = JwtVerifier::from_jwks_json(doc).unwrap_err();
        assert_eq!(err.code(), "invalid_config", "{doc}");
    }
    // An RSA key under 2048 bits.
    let weak = json!({"kty": "RSA", "n": b64(&[0xC5; 128]), "e": "AQAB", "kid": "w"});
    assert_eq!(
        JwtVerifier::from_jwks_json(&weak.to_string())
            .unwrap_err()
            .code(),
        "invalid_config"
    );
    // A JWK whose alg contradicts its type.
    let mut liar = TestKey::ed25519("l").jwk;
    liar["alg"] = json!("ES256");
    assert_eq!(
        JwtVerifier::from_jwks_json(&liar.to_string())
            .unwrap_err()
            .code(),
        "invalid_config"
    );

    let err = JwtVerifier::from_secret("short").unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    assert!(
        !err.to_string().contains("short"),
        "the secret is not echoed"
    );
    assert_eq!(
        JwtVerifier::from_jwks_url("ftp://x/jwks")
            .unwrap_err()
            .code(),
        "invalid_config"
    );
    assert_eq!(
        JwtVerifier::builder().build().unwrap_err().code(),
        "invalid_config"
    );
    let debug = format!("{:?}", JwtVerifier::from_secret(SECRET).unwrap());
    assert!(!debug.contains(SECRET));
}

#[test]
fn every_rejection_has_its_own_code_status_and_message() {
    let all = [
        (AuthError::MalformedToken, "malformed_token", 401),
        (AuthError::AlgorithmNotAllowed, "algorithm_not_allowed", 401),
        (AuthError::UnknownKey, "unknown_key", 401),
        (AuthError::InvalidSignature, "invalid_signature", 401),
        (AuthError::TokenExpired, "token_expired", 401),
        (AuthError::TokenNotYetValid, "token_not_yet_valid", 401),
        (AuthError::InvalidIssuer, "invalid_issuer", 401),
        (AuthError::InvalidAudience, "invalid_audience", 401),
        (AuthError::MissingSubject, "missing_subject", 401),
        (AuthError::JwksUnavailable, "jwks_unavailable", 503),
    ];
    for (reason, code, status) in all {
        let err = Error::from(reason);
        assert_eq!(err.code(), code);
        assert_eq!(err.http_status(), status);
        let body: Value = serde_json::from_slice(&err.to_json_body()).unwrap();
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["message"], reason.user_message());
    }
}

// ---------------------------------------------------------------------------------------------
// the captured Better Auth token

#[tokio::test]
async fn captured_better_auth_token() {
    let verifier = JwtVerifier::builder()
        .jwks_json(BA_JWKS)
        .issuer("http://localhost:3000")
        .audience("http://localhost:3000")
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    // Issued 2026-11-25 for 15 minutes: long expired now.
    assert_eq!(reject(&verifier, BA_TOKEN).await, "token_expired");

    let during = verifier.with_clock(|| 1_795_644_207 + 60);
    let claims = during.verify(BA_TOKEN).await.unwrap();
    assert_eq!(
        claims,
        Claims {
            sub: BA_SUB.into(),
            email: Some("alice@example.com".into()),
            name: Some("Alice".into()),
        }
    );
    // Just after exp, and just after exp within a leeway.
    assert_eq!(
        reject(&verifier.with_clock(|| 1_795_645_107), BA_TOKEN).await,
        "token_expired"
    );
    let lenient = JwtVerifier::builder()
        .jwks_json(BA_JWKS)
        .leeway(Duration::from_secs(60))
        .clock(|| 1_795_645_107 + 30)
        .build()
        .unwrap();
    assert!(lenient.verify(BA_TOKEN).await.is_ok());
    // A huge leeway also accepts it today.
    let huge = JwtVerifier::builder()
        .jwks_json(BA_JWKS)
        .leeway(Duration::from_secs(100 * 365 * 86_400))
        .build()
        .unwrap();
    assert_eq!(huge.verify(BA_TOKEN).await.unwrap().sub, BA_SUB);

    // Wrong issuer/audience for this token.
    let other = JwtVerifier::builder()
        .jwks_json(BA_JWKS)
        .audience("https://app.example.com")
        .clock(|| 1_795_644_300)
        .build()
        .unwrap();
    assert_eq!(reject(&other, BA_TOKEN).await, "invalid_audience");

    // One changed payload byte breaks the signature.
    let parts: Vec<&str> = BA_TOKEN.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&base64_decode(parts[1])).unwrap();
    payload["sub"] = json!("someone-else");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(reject(&during, &forged).await, "invalid_signature");
}

// ---------------------------------------------------------------------------------------------
// configuration and ChatEngine::authenticate

#[tokio::test]
async fn from_config_and_environment() {
    assert!(
        JwtVerifier::from_config(&EngineConfig::default())
            .await
            .unwrap()
            .is_none()
    );

    let key = TestKey::ed25519("k");
    let doc = jwks(&[&key]);
    let mut config = EngineConfig::default();
    config
        .apply_env(|name| match name {
            "JWKS" => Some(doc.clone()),
            "JWT_SECRET" => Some(SECRET.into()),
            "JWT_ISSUER" => Some(ISSUER.into()),
            "JWT_AUDIENCE" => Some(format!("api, {ISSUER}")),
            "JWT_LEEWAY_SECS" => Some("0".into()),
            _ => None,
        })
        .unwrap();
    let verifier = JwtVerifier::from_config(&config).await.unwrap().unwrap();
    assert!(verifier.verify(&key.sign(&claims("u"))).await.is_ok());
    let hs = TestKey::hs256(SECRET.as_bytes());
    assert!(verifier.verify(&hs.sign(&claims("u"))).await.is_ok());
    let expired = key.sign(&with(claims("u"), "exp", json!(now() - 5)));
    assert_eq!(reject(&verifier, &expired).await, "token_expired");
    let wrong_aud = key.sign(&with(claims("u"), "aud", json!("other")));
    assert_eq!(reject(&verifier, &wrong_aud).await, "invalid_audience");

    config.jwt_secret = Some("too-short".into());
    assert_eq!(
        JwtVerifier::from_config(&config).await.unwrap_err().code(),
        "invalid_config"
    );
}

#[tokio::test]
async fn chat_engine_authenticate() {
    let key = TestKey::ed25519("k");
    let engine = ChatEngine::builder()
        .store(SqliteStore::in_memory().await.unwrap())
        .responder(EchoResponder)
        .verifier(verifier_for(&[&key]))
        .build()
        .unwrap();
    let token = key.sign(&claims("user-42"));
    for header in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("  Bearer   {token} "),
    ] {
        let context = engine.authenticate(Some(&header)).await.unwrap();
        assert_eq!(context.user_id, "user-42");
        assert_eq!(context.email.as_deref(), Some("user-42@example.com"));
        assert_eq!(context.name.as_deref(), Some("Alice"));
    }
    for header in [
        None,
        Some(""),
        Some("Basic dXNlcjpwdw=="),
        Some("Bearer "),
        Some(token.as_str()),
    ] {
        let err = engine.authenticate(header).await.unwrap_err();
        assert_eq!(err.code(), "unauthorized", "{header:?}");
        assert_eq!(err.http_status(), 401);
    }
    let err = engine
        .authenticate(Some("Bearer not.a.jwt"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "malformed_token");
    let expired = key.sign(&with(claims("u"), "exp", json!(now() - 5)));
    let err = engine
        .authenticate(Some(&format!("Bearer {expired}")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "token_expired");

    // From configuration, through the to-do app's `App::from_config`.
    let config = EngineConfig {
        database_url: "sqlite::memory:".into(),
        jwt_secret: Some(SECRET.into()),
        jwt_issuer: Some(ISSUER.into()),
        ..EngineConfig::default()
    };
    let engine = chatkit_engine::todo::App::from_config(config)
        .await
        .unwrap()
        .engine;
    let hs = TestKey::hs256(SECRET.as_bytes());
    let context = engine
        .authenticate(Some(&format!("Bearer {}", hs.sign(&claims("carol")))))
        .await
        .unwrap();
    assert_eq!(context.user_id, "carol");
}

// ---------------------------------------------------------------------------------------------
// JWKS over HTTP

fn remote(server: &JwksServer) -> JwtVerifierBuilder {
    JwtVerifier::builder()
        .jwks_url(server.url())
        .issuer(ISSUER)
        .audience(ISSUER)
        .leeway(Duration::ZERO)
}

#[tokio::test]
async fn jwks_is_fetched_lazily_once_and_cached() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(Answer::ok(jwks(&[&key]))).await;
    let verifier = remote(&server).build().unwrap();
    assert_eq!(
        server.hits(),
        0,
        "nothing is fetched before the first token"
    );

    let token = key.sign(&claims("u"));
    for _ in 0..20 {
        assert_eq!(verifier.verify(&token).await.unwrap().sub, "u");
    }
    let clone = verifier.clone();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let clone = clone.clone();
            let token = token.clone();
            tokio::spawn(async move { clone.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    // Known-kid failures do not refetch either.
    let expired = key.sign(&with(claims("u"), "exp", json!(now() - 5)));
    assert_eq!(reject(&verifier, &expired).await, "token_expired");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn concurrent_first_use_fetches_once() {
    let key = TestKey::es256("k1");
    let mut answer = Answer::ok(jwks(&[&key]));
    answer.delay = Duration::from_millis(200);
    let server = JwksServer::start(answer).await;
    let verifier = remote(&server).build().unwrap();
    let token = key.sign(&claims("u"));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn unknown_kid_refreshes_at_most_once_per_interval() {
    let old = TestKey::ed25519("old");
    let new = TestKey::rsa("rsa-a", "RS256", "new");
    let newer = TestKey::es256("newer");
    let server = JwksServer::start(Answer::ok(jwks(&[&old]))).await;
    let verifier = remote(&server)
        .refresh_interval(Duration::from_millis(600))
        .build()
        .unwrap();
    assert!(verifier.verify(&old.sign(&claims("u"))).await.is_ok());
    assert_eq!(server.hits(), 1);

    // The issuer rotates: both kids are published.
    server.set(Answer::ok(jwks(&[&old, &new])));
    // Within the interval of the first fetch, an unknown kid does not refetch.
    assert_eq!(
        reject(&verifier, &new.sign(&claims("u"))).await,
        "unknown_key"
    );
    assert_eq!(server.hits(), 1);

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(verifier.verify(&new.sign(&claims("u"))).await.is_ok());
    assert!(verifier.verify(&old.sign(&claims("u"))).await.is_ok());
    assert_eq!(server.hits(), 2);

    // A flood of tokens with kids nobody publishes: at most one fetch per interval.
    let stranger = TestKey::ed25519("stranger");
    let started = Instant::now();
    let mut rejected = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            reject(&verifier, &stranger.sign(&claims("u"))).await,
            "unknown_key"
        );
        rejected += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rejected > 20);
    let hits = server.hits();
    assert!(
        (3..=5).contains(&hits),
        "{hits} fetches for {rejected} unknown-kid tokens"
    );

    // The next rotation is picked up after the interval.
    server.set(Answer::ok(jwks(&[&new, &newer])));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(verifier.verify(&newer.sign(&claims("u"))).await.is_ok());
}

#[tokio::test]
async fn last_good_keys_are_kept_when_the_endpoint_fails() {
    let key = TestKey::ed25519("k1");
    let rotated = TestKey::ed25519("k2");
    let server = JwksServer::start(Answer::ok(jwks(&[&key]))).await;
    let verifier = remote(&server)
        .refresh_interval(Duration::ZERO)
        .cache_max_age(Duration::ZERO)
        .build()
        .unwrap();
    assert!(verifier.verify(&key.sign(&claims("u"))).await.is_ok());

    let failures = [
        Answer {
            status: 500,
            body: "oops".into(),
            delay: Duration::ZERO,
        },
        Answer {
            status: 404,
            body: String::new(),
            delay: Duration::ZERO,
        },
        Answer::ok("<html>not json</html>"),
        Answer::ok(r#"{"keys": []}"#),
    ];
    for failure in failures {
        server.set(failure.clone());
        let before = server.hits();
        // Stale cache (max age 0): refetched, fails, old keys still verify.
        assert!(
            verifier.verify(&key.sign(&claims("u"))).await.is_ok(),
            "{failure:?}"
        );
        assert_eq!(
            reject(&verifier, &rotated.sign(&claims("u"))).await,
            "unknown_key"
        );
        assert!(server.hits() > before, "a refetch was attempted");
    }
    assert!(verifier.refresh().await.is_err());
    assert!(verifier.verify(&key.sign(&claims("u"))).await.is_ok());

    // Recovery: the new key is picked up.
    server.set(Answer::ok(jwks(&[&key, &rotated])));
    assert!(verifier.verify(&rotated.sign(&claims("u"))).await.is_ok());
}

#[tokio::test]
async fn unreachable_jwks_is_jwks_unavailable_until_it_recovers() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(Answer {
        status: 503,
        body: String::new(),
        delay: Duration::ZERO,
    })
    .await;
    let verifier = remote(&server).build().unwrap();
    let token = key.sign(&claims("u"));
    assert_eq!(reject(&verifier, &token).await, "jwks_unavailable");
    server.set(Answer::ok(jwks(&[&key])));
    // No keys yet: the next token tries again, whatever the interval.
    assert!(verifier.verify(&token).await.is_ok());

    // Nothing listening at all.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dead = JwtVerifier::from_jwks_url(format!("http://127.0.0.1:{port}/jwks")).unwrap();
    assert_eq!(reject(&dead, &token).await, "jwks_unavailable");
    assert_eq!(dead.refresh().await.unwrap_err().code(), "jwks_unavailable");
}

#[tokio::test]
async fn jwks_fetch_times_out() {
    let key = TestKey::ed25519("k1");
    let mut slow = Answer::ok(jwks(&[&key]));
    slow.delay = Duration::from_secs(5);
    let server = JwksServer::start(slow).await;
    let verifier = remote(&server)
        .fetch_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        reject(&verifier, &key.sign(&claims("u"))).await,
        "jwks_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn static_keys_and_a_jwks_url_combine() {
    let local = TestKey::ed25519("local");
    let published = TestKey::es256("published");
    let server = JwksServer::start(Answer {
        status: 500,
        body: String::new(),
        delay: Duration::ZERO,
    })
    .await;
    let verifier = remote(&server)
        .jwks_json(jwks(&[&local]))
        .hs256_secret(SECRET)
        .build()
        .unwrap();
    // The JWKS is down, but static keys still verify.
    assert!(verifier.verify(&local.sign(&claims("u"))).await.is_ok());
    assert!(
        verifier
            .verify(&TestKey::hs256(SECRET.as_bytes()).sign(&claims("u")))
            .await
            .is_ok()
    );
    assert_eq!(
        reject(&verifier, &published.sign(&claims("u"))).await,
        "jwks_unavailable"
    );
    server.set(Answer::ok(jwks(&[&published])));
    assert!(verifier.verify(&published.sign(&claims("u"))).await.is_ok());
}

// ---------------------------------------------------------------------------------------------
// interop with a real Better Auth issuer (Node; run by scripts/stages/20-better-auth.sh)

mod better_auth {
    use super::*;
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::process::{Child, Command};

    /// A running `tests/better-auth/server.mjs`.
    struct Issuer {
        base_url: String,
        _child: Child,
        http: reqwest::Client,
    }

    impl Issuer {
        async fn start(alg: &str, rotation_interval: u64) -> Self {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/better-auth");
            assert!(
                std::path::Path::new(dir)
                    .join("node_modules/better-auth")
                    .exists(),
                "run `npm ci` in {dir} first (scripts/stages/20-better-auth.sh does)"
            );
            let mut child = Command::new("node")
                .current_dir(dir)
                .args(["server.mjs", "--alg", alg])
                .args(["--rotation-interval", &rotation_interval.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("node runs");
            let stdout = child.stdout.take().unwrap();
            let mut line = String::new();
            tokio::time::timeout(
                Duration::from_secs(30),
                BufReader::new(stdout).read_line(&mut line),
            )
            .await
            .expect("the fixture starts within 30 s")
            .unwrap();
            let started: Value = serde_json::from_str(&line).expect("a JSON start line");
            assert_eq!(started["alg"], alg);
            Self {
                base_url: started["baseURL"].as_str().unwrap().to_owned(),
                _child: child,
                http: http_client(),
            }
        }

        fn jwks_url(&self) -> String {
            format!("{}/api/auth/jwks", self.base_url)
        }

        /// Signs a user up and returns the session cookie.
        async fn sign_up(&self, email: &str, name: &str) -> String {
            let response = self
                .http
                .post(format!("{}/api/auth/sign-up/email", self.base_url))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json!({"email": email, "password": "correct-horse-battery-staple", "name": name}).to_string())
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "sign-up: {}",
                response.status()
            );
            let cookie = response
                .headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with("better-auth.session_token="))
                .expect("a session cookie")
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let body = json_of(response).await;
            assert_eq!(body["user"]["email"], email);
            cookie
        }

        /// A JWT from `/api/auth/token` for the session.
        async fn token(&self, cookie: &str) -> String {
            let response = self
                .http
                .get(format!("{}/api/auth/token", self.base_url))
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "token: {}",
                response.status()
            );
            let body = json_of(response).await;
            body["token"].as_str().unwrap().to_owned()
        }

        async fn jwks(&self) -> Value {
            json_of(self.http.get(self.jwks_url()).send().await.unwrap()).await
        }

        fn verifier(&self) -> JwtVerifier {
            JwtVerifier::builder()
                .jwks_url(self.jwks_url())
                .issuer(self.base_url.clone())
                .audience(self.base_url.clone())
                .leeway(Duration::ZERO)
                .refresh_interval(Duration::ZERO)
                .build()
                .unwrap()
        }
    }

    /// A plain-HTTP client (the fixture listens on loopback without TLS).
    fn http_client() -> reqwest::Client {
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap()
    }

    async fn json_of(response: reqwest::Response) -> Value {
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }

    fn header_of(token: &str) -> Value {
        serde_json::from_slice(&base64_decode(token.split('.').next().unwrap())).unwrap()
    }

    async fn round_trip(alg: &str) {
        let issuer = Issuer::start(alg, 0).await;
        let cookie = issuer.sign_up("alice@example.com", "Alice").await;
        let token = issuer.token(&cookie).await;
        let header = header_of(&token);
        assert_eq!(header["alg"], alg);
        let jwks = issuer.jwks().await;
        assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
        assert_eq!(jwks["keys"][0]["alg"], alg);

        let verifier = issuer.verifier();
        let claims = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
        assert_eq!(claims.name.as_deref(), Some("Alice"));
        let payload = verifier.verify_payload(&token).await.unwrap();
        assert_eq!(payload["id"].as_str(), Some(claims.sub.as_str()));

        // The same keys as an inline JWKS document.
        let inline = JwtVerifier::builder()
            .jwks_json(jwks.to_string())
            .issuer(issuer.base_url.clone())
            .build()
            .unwrap();
        assert_eq!(inline.verify(&token).await.unwrap(), claims);

        // Tampering and the wrong audience are still caught.
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged: Value = serde_json::from_slice(&base64_decode(parts[1])).unwrap();
        forged["sub"] = json!("mallory");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(forged.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(reject(&verifier, &forged).await, "invalid_signature");
        let elsewhere = JwtVerifier::builder()
            .jwks_url(issuer.jwks_url())
            .audience("https://elsewhere.example")
            .build()
            .unwrap();
        assert_eq!(reject(&elsewhere, &token).await, "invalid_audience");

        // Through the engine.
        let engine = ChatEngine::builder()
            .store(SqliteStore::in_memory().await.unwrap())
            .responder(EchoResponder)
            .verifier(verifier)
            .build()
            .unwrap();
        let context = engine
            .authenticate(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
        assert_eq!(context.user_id, claims.sub);
    }

    #[tokio::test]
    #[ignore = "needs Node and tests/better-auth/node_modules; run by scripts/stages/20-better-auth.sh"]
    async fn better_auth_eddsa_default() {
        round_trip("EdDSA").await;
    }

    #[tokio::test]
    #[ignore = "needs Node and tests/better-auth/node_modules; run by scripts/stages/20-better-auth.sh"]
    async fn better_auth_es256() {
        round_trip("ES256").await;
    }

    #[tokio::test]
    #[ignore = "needs Node and tests/better-auth/node_modules; run by scripts/stages/20-better-auth.sh"]
    async fn better_auth_rs256() {
        round_trip("RS256").await;
    }

    #[tokio::test]
    #[ignore = "needs Node and tests/better-auth/node_modules; run by scripts/stages/20-better-auth.sh"]
    async fn better_auth_ps256() {
        round_trip("PS256").await;
    }

    #[tokio::test]
    #[ignore = "needs Node and tests/better-auth/node_modules; run by scripts/stages/20-better-auth.sh"]
    async fn better_auth_key_rotation() {
        // The jwt plugin mints a new key once the newest one is older than
        // the rotation interval; the old one stays published (grace period).
        let issuer = Issuer::start("EdDSA", 2).await;
        let cookie = issuer.sign_up("bob@example.com", "Bob").await;
        let first = issuer.token(&cookie).await;
        let verifier = issuer.verifier();
        let bob = verifier.verify(&first).await.unwrap();
        assert_eq!(bob.name.as_deref(), Some("Bob"));

        tokio::time::sleep(Duration::from_millis(2500)).await;
        let second = issuer.token(&cookie).await;
        let (kid1, kid2) = (
            header_of(&first)["kid"].clone(),
            header_of(&second)["kid"].clone(),
        );
        assert_ne!(kid1, kid2, "a new key after the rotation interval");
        let kids: Vec<Value> = issuer.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect();
        assert!(kids.contains(&kid1) && kids.contains(&kid2), "{kids:?}");

        // The cached JWKS lacks kid2: one refetch, then both verify.
        assert_eq!(verifier.verify(&second).await.unwrap(), bob);
        assert_eq!(verifier.verify(&first).await.unwrap(), bob);
    }
}
