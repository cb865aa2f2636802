//! Fuzzes the Bearer token parser: `JwtVerifier::verify` on arbitrary
//! strings, with an HS256 secret and with an inline JWKS (Ed25519, P-256).
//!
//! Oracles, besides "no panic, no hang": a failed verification is a
//! 401-class error (never an internal one) or, for a signed token whose
//! identity breaks `chatkit_engine::validate`'s rules, `invalid_request`;
//! a token that verifies has a valid, non-empty subject.

#![no_main]

use chatkit_engine::EngineConfig;
use chatkit_engine::auth::JwtVerifier;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The HS256 secret the `seeds/token_parser` tokens are signed with.
const SECRET: &str = "chatkit-engine-fuzz-secret-0123456789abcdef";

/// Public keys of the `seeds/token_parser` EdDSA and ES256 tokens (their
/// private keys were thrown away after signing the seeds).
const JWKS: &str = r#"{"keys":[
 {"kty":"OKP","crv":"Ed25519","kid":"fuzz-ed","alg":"EdDSA","use":"sig","x":"ET2PecPlqX1-HK9kl9fTY_yDCRWh8ifHmKEOT0laeHc"},
 {"kty":"EC","crv":"P-256","kid":"fuzz-ec","alg":"ES256","use":"sig","x":"ertdLY83DOcSjgV2xkpyrtP70g1-OgN_qrNq1anV3GQ","y":"OBIHEbfSZPhL0jyqfAzsR68iUwl0znm59KxujI6gDEs"}
]}"#;

struct Verifiers {
    runtime: tokio::runtime::Runtime,
    all: Vec<JwtVerifier>,
}

fn verifiers() -> &'static Verifiers {
    static VERIFIERS: OnceLock<Verifiers> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let configs = [
            EngineConfig {
                jwt_secret: Some(SECRET.into()),
                ..EngineConfig::default()
            },
            EngineConfig {
                jwks: Some(JWKS.into()),
                ..EngineConfig::default()
            },
        ];
        let all = runtime.block_on(async {
            let mut all = Vec::new();
            for config in &configs {
                // A verifier the auth module cannot build yet is skipped;
                // `scripts/fuzz` reports how many were built.
                if let Ok(Some(verifier)) = JwtVerifier::from_config(config).await {
                    all.push(verifier);
                }
            }
            all
        });
        eprintln!("token_parser: fuzzing {} verifier(s)", all.len());
        Verifiers { runtime, all }
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let verifiers = verifiers();
    verifiers.runtime.block_on(async {
        for verifier in &verifiers.all {
            match verifier.verify(&token).await {
                Ok(claims) => {
                    assert!(!claims.sub.is_empty(), "verified an empty subject");
                    assert!(chatkit_engine::validate::user_id(&claims.sub).is_ok());
                }
                // A signed token whose identity breaks the rules of
                // `validate` is an `invalid_request`.
                Err(err) if err.code() == "invalid_request" => assert_eq!(err.http_status(), 400),
                // Every other rejection is a 401 with its own code
                // (`malformed_token`, `invalid_signature`, ...).
                Err(err) => assert_eq!(err.http_status(), 401, "{} {err}", err.code()),
            }
        }
    });
});
