//! Test helpers for JWT verification: key pairs that sign tokens (ring), JWKS
//! documents, and a local JWKS HTTP endpoint whose answers the test controls.
//!
//! Ed25519 and P-256 keys are generated per test; RSA keys come from
//! `tests/fixtures/keys/` (test-only, ring cannot generate RSA keys).
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid token for `sub`, issued now, valid for 15 minutes.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({"iat": now, "sub": sub, "exp": now + 900, "iss": ISSUER, "aud": ISSUER,
           "email": format!("{sub}@example.com"), "name": "Alice"})
}

/// The issuer (and audience) the tests use, like Better Auth's baseURL.
pub const ISSUER: &str = "http://localhost:3000";

/// A 48-byte test secret.
pub const SECRET: &str = "test-only-secret-0123456789-abcdefghijklmnopqrst";

enum Signer {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Hmac(ring::hmac::Key),
}

/// A signing key with its public JWK.
pub struct TestKey {
    /// `kid` put in the JWK and in token headers (`None`: neither).
    pub kid: Option<String>,
    /// The JWS `alg`.
    pub alg: &'static str,
    /// The public JWK (with `kid` and `alg`).
    pub jwk: Value,
    signer: Signer,
}

fn rsa_fixture(name: &str) -> (RsaKeyPair, Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
    let pem = std::fs::read_to_string(format!("{dir}/{name}.pkcs8.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
    let jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/{name}.public.jwk.json")).unwrap(),
    )
    .unwrap();
    (pair, jwk)
}

impl TestKey {
    /// A fresh Ed25519 key (`EdDSA`), JWK shaped like Better Auth's.
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"alg": "EdDSA", "crv": "Ed25519",
                         "x": b64(pair.public_key().as_ref()), "kty": "OKP", "kid": kid});
        Self {
            kid: Some(kid.into()),
            alg: "EdDSA",
            jwk,
            signer: Signer::Ed25519(pair),
        }
    }

    /// A fresh P-256 key (`ES256`).
    pub fn es256(kid: &str) -> Self {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({"alg": "ES256", "crv": "P-256", "kty": "EC",
                         "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": kid});
        Self {
            kid: Some(kid.into()),
            alg: "ES256",
            jwk,
            signer: Signer::Ecdsa(pair),
        }
    }

    /// An RSA 2048 fixture key (`rsa-a` or `rsa-b`) for `RS256` or `PS256`.
    pub fn rsa(fixture: &str, alg: &'static str, kid: &str) -> Self {
        let (pair, mut jwk) = rsa_fixture(fixture);
        jwk["alg"] = json!(alg);
        jwk["kid"] = json!(kid);
        let encoding: &'static dyn signature::RsaEncoding = match alg {
            "RS256" => &signature::RSA_PKCS1_SHA256,
            "PS256" => &signature::RSA_PSS_SHA256,
            other => panic!("no RSA encoding for {other}"),
        };
        Self {
            kid: Some(kid.into()),
            alg,
            jwk,
            signer: Signer::Rsa(pair, encoding),
        }
    }

    /// An HS256 key for `secret`, without `kid`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            kid: None,
            alg: "HS256",
            jwk: json!({"kty": "oct", "k": b64(secret), "alg": "HS256"}),
            signer: Signer::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret)),
        }
    }

    /// The raw signature of `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::Ecdsa(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Rsa(pair, encoding) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, message, &mut sig).unwrap();
                sig
            }
            Signer::Hmac(key) => ring::hmac::sign(key, message).as_ref().to_vec(),
        }
    }

    /// The standard header `{"alg", "kid"}` of this key.
    pub fn header(&self) -> Value {
        match &self.kid {
            Some(kid) => json!({"alg": self.alg, "kid": kid}),
            None => json!({"alg": self.alg, "typ": "JWT"}),
        }
    }

    /// A token with this key's header and `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    /// A token with any `header`, signed by this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign_bytes(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}

/// A JWKS document of the keys' public JWKs.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// What the JWKS server answers.
#[derive(Clone, Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Pause before answering.
    pub delay: Duration,
}

impl Answer {
    /// 200 with `body`.
    pub fn ok(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

/// A JWKS endpoint on 127.0.0.1 that answers every request with the
/// current [`Answer`] and counts requests.
pub struct JwksServer {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Starts serving `answer`.
    pub async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let answer = answer.clone();
            let hits = hits.clone();
            async move {
                loop {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        return;
                    };
                    let answer = answer.clone();
                    let hits = hits.clone();
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        hits.fetch_add(1, Ordering::SeqCst);
                        let answer = answer.lock().unwrap().clone();
                        tokio::time::sleep(answer.delay).await;
                        let response = format!(
                            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                            answer.status,
                            answer.body.len(),
                            answer.body
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            }
        });
        Self {
            addr,
            answer,
            hits,
            task,
        }
    }

    /// The JWKS URL.
    pub fn url(&self) -> String {
        format!("http://{}/api/auth/jwks", self.addr)
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Changes what the next requests get.
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
