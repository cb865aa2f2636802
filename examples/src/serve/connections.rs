//! The accept loop: each TCP connection is served by hyper as HTTP/1.1, or
//! as HTTP/2 when it opens with the HTTP/2 preface (h2c with prior
//! knowledge, as a proxy speaking HTTP/2 to its upstream does).
//!
//! `axum::serve` tells the two apart by *reading* the first 24 bytes and
//! handing them back to hyper; hyper then finds a partial request head in
//! its read buffer and grows the buffer from 8 to 16 KiB for the life of the
//! connection: 8 KiB more for every open stream. Here the first bytes are
//! peeked, not read, so hyper reads the request into its buffer whole.

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What an HTTP/2 client sends first (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A client must send its request head (HTTP/1.1) or preface (HTTP/2)
/// within this time, or the connection is closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait before peeking again when only part of the HTTP/2
/// preface has arrived (rare: clients send it in one write).
const PARTIAL_PREFACE_RETRY: Duration = Duration::from_millis(5);

/// How long to pause accepting after an error such as too many open files,
/// so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// The protocol a connection speaks, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Serves `router` on every connection `listener` accepts until `shutdown`
/// completes; then stops accepting, asks open connections to finish their
/// requests (HTTP/1.1 closes after the current response, HTTP/2 sends
/// GOAWAY) and returns once all of them have closed.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    // Connections still waiting for their first bytes are not watched by
    // `graceful` (there is no request to finish); this closes them.
    let closing = CancellationToken::new();
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(err) => {
                    if !is_connection_error(&err) {
                        tracing::warn!(error = %err, "accepting a connection failed; pausing");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Each SSE frame is a small write; without TCP_NODELAY, Nagle's
        // algorithm and delayed ACKs hold frames back for ~40 ms.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let http1 = http1.clone();
        let http2 = http2.clone();
        let watcher = graceful.watcher();
        let closing = closing.clone();
        tokio::spawn(async move {
            let first_bytes = tokio::select! {
                sniffed = tokio::time::timeout(HEAD_TIMEOUT, sniff(&tcp)) => sniffed,
                () = closing.cancelled() => return,
            };
            let protocol = match first_bytes {
                Ok(Ok(protocol)) => protocol,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "connection failed before its first request");
                    return;
                }
                Err(_) => {
                    tracing::debug!("connection sent nothing in time; closing it");
                    return;
                }
            };
            let io = TokioIo::new(tcp);
            let result = match protocol {
                Protocol::Http1 => watcher.watch(http1.serve_connection(io, service)).await,
                Protocol::Http2 => watcher.watch(http2.serve_connection(io, service)).await,
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.cancel();
    graceful.shutdown().await;
}

/// Peeks at the first bytes of a connection, without consuming them, until
/// they are either the HTTP/2 preface or something else.
async fn sniff(tcp: &TcpStream) -> io::Result<Protocol> {
    let mut first = [0u8; HTTP2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut first).await?;
        match protocol_of(&first[..n]) {
            Some(protocol) => return Ok(protocol),
            // `peek` returns at once while bytes are waiting, so wait a
            // little for the rest rather than spin.
            None => tokio::time::sleep(PARTIAL_PREFACE_RETRY).await,
        }
    }
}

/// The protocol the first bytes of a connection announce; `None` while
/// they are a proper prefix of the HTTP/2 preface. An empty read (the
/// client closed) is left to the HTTP/1.1 side, which just closes.
fn protocol_of(first: &[u8]) -> Option<Protocol> {
    if first.is_empty() || !HTTP2_PREFACE.starts_with(first) {
        Some(Protocol::Http1)
    } else if first.len() == HTTP2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Errors of one failed connection (the client gave up before it was
/// accepted), as opposed to the listener's (file descriptors run out).
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http1_request_line_is_http1_from_its_first_differing_byte() {
        assert_eq!(
            protocol_of(b"POST /chatkit HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(protocol_of(b"PO"), Some(Protocol::Http1));
        assert_eq!(
            protocol_of(b"GET / HTTP/1.1\r\n\r\n"),
            Some(Protocol::Http1)
        );
    }

    #[test]
    fn the_whole_preface_is_http2_and_a_part_of_it_is_undecided() {
        assert_eq!(protocol_of(HTTP2_PREFACE), Some(Protocol::Http2));
        assert_eq!(protocol_of(b"P"), None);
        assert_eq!(protocol_of(b"PRI * HTTP/2.0\r\n"), None);
    }

    #[test]
    fn a_closed_connection_is_left_to_http1() {
        assert_eq!(protocol_of(b""), Some(Protocol::Http1));
    }
}
