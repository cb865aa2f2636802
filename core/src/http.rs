//! HTTP helpers: the outgoing client setup shared by the model client, the
//! JWKS fetcher and the MCP client (rustls with ring and the web PKI roots),
//! and, with feature `mcp-http`, [`read_body`]: reading an incoming request
//! body within a size limit and two deadlines, for the MCP HTTP service and
//! any host server.
//!
//! | limit of [`BodyLimits`] | default | broken by | [`BodyError`] | status, code |
//! | --- | --- | --- | --- | --- |
//! | `max_bytes` | (the host's) | a larger `Content-Length` or more bytes | `TooLarge` | 413 `payload_too_large` |
//! | `deadline` | 30 s | the whole body not read by then | `Deadline` | 408 `request_timeout` |
//! | `idle` | 10 s | no byte for that long while reading | `Idle` | 408 `request_timeout` |
//! | | | the connection failed mid-body | `Read` | 400 `invalid_request` |
//!
//! The deadline starts when reading starts (after the request head, which
//! the server's own head timeout covers). A server answering a `BodyError`
//! should close an HTTP/1.1 connection (`Connection: close`): the rest of
//! the body was never read.
//!
//! ```
//! # #[cfg(feature = "mcp-http")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use chatkit_engine::http::{BodyLimits, read_body};
//! use http_body_util::Full;
//!
//! let limits = BodyLimits::new(16);
//! let body = read_body(Full::new(bytes::Bytes::from("{}")), None, limits).await.unwrap();
//! assert_eq!(&body[..], b"{}");
//! let err = read_body(Full::new(bytes::Bytes::from("x".repeat(17))), None, limits)
//!     .await
//!     .unwrap_err();
//! assert_eq!((err.http_status(), err.code()), (413, "payload_too_large"));
//! # });
//! ```

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

#[cfg(feature = "mcp-http")]
pub use body::{BodyError, BodyLimits, read_body};

/// Reading request bodies within limits.
///
/// Why not tower-http: its `RequestBodyTimeoutLayer` only bounds the gap
/// between two frames (a body trickled one byte per second never trips it)
/// and its `TimeoutLayer` also bounds the work after the body arrived; one
/// reader here enforces both deadlines and answers with a clear 408.
#[cfg(feature = "mcp-http")]
mod body {
    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use http_body::Body;
    use std::fmt::Display;
    use std::time::Duration;
    use tokio::time::Instant;

    /// How large a request body may be and how long reading it may take.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BodyLimits {
        /// Largest accepted body, in bytes.
        pub max_bytes: usize,
        /// The whole body must be read within this time.
        pub deadline: Duration,
        /// No more than this time may pass without a byte.
        pub idle: Duration,
    }

    impl BodyLimits {
        /// The default whole-body deadline.
        pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
        /// The default idle-read deadline.
        pub const DEFAULT_IDLE: Duration = Duration::from_secs(10);

        /// At most `max_bytes`, with the default deadlines.
        pub fn new(max_bytes: usize) -> Self {
            Self {
                max_bytes,
                deadline: Self::DEFAULT_DEADLINE,
                idle: Self::DEFAULT_IDLE,
            }
        }

        /// The same limits with other deadlines.
        pub fn with_deadlines(mut self, deadline: Duration, idle: Duration) -> Self {
            self.deadline = deadline;
            self.idle = idle;
            self
        }
    }

    /// Why a request body was not read (see the module docs for statuses).
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum BodyError {
        /// The body is larger than the limit.
        #[error("the request body exceeds the limit of {limit} bytes")]
        TooLarge {
            /// The limit, in bytes.
            limit: usize,
        },
        /// The whole body did not arrive within the deadline.
        #[error("the request body did not arrive within {} s; send it at once", .0.as_secs_f64())]
        Deadline(Duration),
        /// No byte of the body arrived for the idle deadline.
        #[error("the request body stalled: nothing arrived for {} s", .0.as_secs_f64())]
        Idle(Duration),
        /// The connection failed while the body was read.
        #[error("reading the request body failed: {0}")]
        Read(String),
    }

    impl BodyError {
        /// The HTTP status: 413, 408 or 400.
        pub fn http_status(&self) -> u16 {
            match self {
                BodyError::TooLarge { .. } => 413,
                BodyError::Deadline(_) | BodyError::Idle(_) => 408,
                BodyError::Read(_) => 400,
            }
        }

        /// The stable code: `payload_too_large`, `request_timeout` or
        /// `invalid_request`.
        pub fn code(&self) -> &'static str {
            match self {
                BodyError::TooLarge { .. } => "payload_too_large",
                BodyError::Deadline(_) | BodyError::Idle(_) => "request_timeout",
                BodyError::Read(_) => "invalid_request",
            }
        }

        /// The JSON error body `{"error":{"code","message"}}`.
        pub fn to_json_body(&self) -> Vec<u8> {
            serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}})
                .to_string()
                .into_bytes()
        }
    }

    /// Reads `body` within `limits`. `declared_len` (the `Content-Length`)
    /// refuses a too large body before anything is read.
    pub async fn read_body<B>(
        body: B,
        declared_len: Option<u64>,
        limits: BodyLimits,
    ) -> Result<Bytes, BodyError>
    where
        B: Body,
        B::Error: Display,
    {
        let too_large = BodyError::TooLarge {
            limit: limits.max_bytes,
        };
        if declared_len.is_some_and(|len| len > limits.max_bytes as u64) {
            return Err(too_large);
        }
        let deadline = Instant::now() + limits.deadline;
        let mut body = std::pin::pin!(body);
        let mut buf = BytesMut::new();
        loop {
            let idle_end = Instant::now() + limits.idle;
            let until = idle_end.min(deadline);
            let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
            let frame = match tokio::time::timeout_at(until, frame).await {
                Ok(frame) => frame,
                Err(_) if until == deadline => return Err(BodyError::Deadline(limits.deadline)),
                Err(_) => return Err(BodyError::Idle(limits.idle)),
            };
            match frame {
                None => return Ok(buf.freeze()),
                Some(Err(err)) => return Err(BodyError::Read(err.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if data.remaining() > limits.max_bytes.saturating_sub(buf.len()) {
                            return Err(too_large);
                        }
                        buf.put(data);
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use http_body_util::StreamBody;

        fn trickle(
            every: Duration,
        ) -> StreamBody<
            impl futures::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
        > {
            let bytes = futures::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok(http_body::Frame::data(Bytes::from_static(b"x"))), ()))
            });
            StreamBody::new(bytes)
        }

        #[tokio::test(start_paused = true)]
        async fn a_trickled_body_is_cut_off_at_the_deadline_and_a_stalled_one_when_idle() {
            let limits = BodyLimits::new(1 << 20)
                .with_deadlines(Duration::from_secs(30), Duration::from_secs(10));
            let err = read_body(trickle(Duration::from_secs(1)), None, limits)
                .await
                .unwrap_err();
            assert_eq!(err, BodyError::Deadline(Duration::from_secs(30)));
            assert_eq!((err.http_status(), err.code()), (408, "request_timeout"));
            let err = read_body(trickle(Duration::from_secs(11)), None, limits)
                .await
                .unwrap_err();
            assert_eq!(err, BodyError::Idle(Duration::from_secs(10)));
        }

        #[tokio::test]
        async fn sizes_are_checked_from_the_header_and_while_reading() {
            let limits = BodyLimits::new(4);
            let body = || http_body_util::Full::new(Bytes::from_static(b"12345"));
            assert_eq!(
                read_body(body(), Some(5), limits).await,
                Err(BodyError::TooLarge { limit: 4 })
            );
            assert_eq!(
                read_body(body(), None, limits).await,
                Err(BodyError::TooLarge { limit: 4 })
            );
            let ok = read_body(body(), None, BodyLimits::new(5)).await.unwrap();
            assert_eq!(&ok[..], b"12345");
        }
    }
}
