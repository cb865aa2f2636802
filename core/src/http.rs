//! The outgoing HTTP client setup shared by the model client, the JWKS
//! fetcher and the MCP client: rustls with ring and the web PKI roots.

use crate::error::{Error, Result};
use std::sync::Arc;

/// A `reqwest` builder with the engine's TLS setup and user agent; callers
/// add their own timeouts.
///
/// ```
/// let client = chatkit_engine::http::client_builder()?.build().unwrap();
/// # let _ = client;
/// # Ok::<(), chatkit_engine::Error>(())
/// ```
pub fn client_builder() -> Result<reqwest::ClientBuilder> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // ring, as sqlx uses in this workspace (no aws-lc C build). rustls
    // 0.23.48 deprecates it only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("chatkit-engine/", env!("CARGO_PKG_VERSION"))))
}

/// Builds a client from [`client_builder`] after `configure`.
pub fn client(
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client> {
    configure(client_builder()?)
        .build()
        .map_err(|e| Error::Config(format!("HTTP client setup failed: {e}")))
}
