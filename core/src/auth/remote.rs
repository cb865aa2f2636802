//! A JWKS fetched over HTTP: cached, refreshed on an unknown `kid` at most
//! once per interval, last good keys kept when a refresh fails.

use super::jwk::KeySet;
use crate::error::{AuthError, Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

/// Largest accepted JWKS document, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Timing of a [`RemoteJwks`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RemoteTiming {
    /// Limit for one fetch (connect + response + body).
    pub(crate) fetch_timeout: Duration,
    /// Minimum time between two fetches caused by unknown `kid`s.
    pub(crate) min_refresh: Duration,
    /// Age after which cached keys are refetched on the next use
    /// (still rate-limited by `min_refresh`).
    pub(crate) max_age: Duration,
}

#[derive(Default)]
struct Cache {
    /// The last good key set and when it was fetched.
    keys: Option<(Arc<KeySet>, Instant)>,
    /// When the last fetch (successful or not) started.
    last_attempt: Option<Instant>,
    /// Bumped after every fetch attempt; lets waiting callers see that a
    /// fetch happened while they queued.
    generation: u64,
}

/// A remote JWKS.
pub(crate) struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    timing: RemoteTiming,
    cache: RwLock<Cache>,
    /// Held while fetching: one fetch at a time.
    fetching: Mutex<()>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

/// Why a refresh was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Any keys: fetch only when none are cached (or they are too old).
    Any,
    /// A `kid` the cached keys do not have: fetch unless rate-limited.
    UnknownKid,
}

impl RemoteJwks {
    /// A remote JWKS at `url` (http or https).
    pub(crate) fn new(url: &str, timing: RemoteTiming) -> Result<Self> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Error::Config(format!("JWKS_URL `{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "JWKS_URL must be an http:// or https:// URL (got `{url}`)"
            )));
        }
        let host = parsed.host_str().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if parsed.scheme() == "http" && !loopback {
            tracing::warn!(
                url,
                "JWKS_URL uses plain http: keys can be tampered with in transit"
            );
        }
        Ok(Self {
            url: url.to_owned(),
            client: http_client(timing.fetch_timeout)?,
            timing,
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
        })
    }

    /// The cached keys, fetching them first when `want` calls for it.
    ///
    /// Errors only when no keys were ever fetched
    /// ([`AuthError::JwksUnavailable`]); a failed refresh with keys cached
    /// returns the cached keys.
    pub(crate) async fn keys(&self, want: Want) -> Result<Arc<KeySet>, AuthError> {
        let (cached, generation) = {
            let cache = self.cache.read().await;
            (cache.keys.clone(), cache.generation)
        };
        let needed = match &cached {
            None => true,
            Some((_, fetched_at)) => {
                let stale = fetched_at.elapsed() >= self.timing.max_age;
                (want == Want::UnknownKid || stale) && self.refresh_allowed().await
            }
        };
        if !needed {
            if let Some((keys, _)) = cached {
                return Ok(keys);
            }
        } else {
            self.refresh(generation).await;
        }
        let cache = self.cache.read().await;
        cache
            .keys
            .as_ref()
            .map(|(keys, _)| keys.clone())
            .ok_or(AuthError::JwksUnavailable)
    }

    /// Whether the rate limit allows a fetch now.
    async fn refresh_allowed(&self) -> bool {
        let cache = self.cache.read().await;
        cache
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.timing.min_refresh)
    }

    /// Fetches once, unless another caller fetched since `seen_generation`
    /// while this one waited for the lock.
    async fn refresh(&self, seen_generation: u64) {
        let _guard = self.fetching.lock().await;
        if self.cache.read().await.generation != seen_generation {
            return;
        }
        let started = Instant::now();
        let result = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.last_attempt = Some(started);
        cache.generation += 1;
        match result {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.keys.len(), "fetched JWKS");
                cache.keys = Some((Arc::new(keys), Instant::now()));
            }
            Err(reason) => {
                let kept = cache.keys.is_some();
                tracing::warn!(url = %self.url, %reason, kept_last_good_keys = kept, "JWKS fetch failed");
            }
        }
    }

    /// Forces a fetch now (ignoring the rate limit).
    pub(crate) async fn force_refresh(&self) -> Result<(), String> {
        let _guard = self.fetching.lock().await;
        let started = Instant::now();
        let result = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.last_attempt = Some(started);
        cache.generation += 1;
        let keys = result?;
        cache.keys = Some((Arc::new(keys), Instant::now()));
        Ok(())
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let work = async {
            let response = self
                .client
                .get(&self.url)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            if response
                .content_length()
                .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
            {
                return Err("the JWKS document is too large".into());
            }
            let mut body = Vec::new();
            let mut response = response;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| format!("reading the body failed: {e}"))?
            {
                if body.len() + chunk.len() > MAX_JWKS_BYTES {
                    return Err("the JWKS document is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            KeySet::parse(&body)
        };
        match tokio::time::timeout(self.timing.fetch_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "timed out after {} ms",
                self.timing.fetch_timeout.as_millis()
            )),
        }
    }
}

/// An HTTP client with rustls (ring) and the web PKI roots.
fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    crate::http::client(|builder| builder.connect_timeout(timeout).timeout(timeout))
}
