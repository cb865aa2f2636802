//! Streaming responses: one SSE frame (`data: <json>\n\n`) per engine event,
//! handed to hyper as its own body chunk so it is written and flushed as soon
//! as the engine produces it.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use chatkit_engine::engine::EventStream;
use chatkit_engine::protocol::{ThreadStreamEvent, sse};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The open streams: how many there are (so that shutdown can say what it
/// waits for) and a switch that ends them all when the shutdown grace period
/// is over.
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl InFlight {
    /// How many streams are open.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Ends every open stream (and every later one) with an `error` event
    /// that offers a retry. The engine then cancels the turns and keeps
    /// their partial answers.
    pub fn stop_all(&self) {
        self.stop.cancel();
    }

    /// The token [`Self::stop_all`] cancels, for other long-lived
    /// responses (the MCP endpoint's sessions) to end with the streams.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    fn enter(&self) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(&self.count))
    }
}

struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The HTTP response for an event stream: status 200,
/// `text/event-stream; charset=utf-8`, `Cache-Control: no-cache`,
/// `X-Accel-Buffering: no` (so nginx-style proxies do not hold frames back).
pub fn sse_response(events: EventStream, in_flight: &InFlight) -> Response {
    let frames: Pin<Box<dyn Stream<Item = Bytes> + Send>> = Box::pin(events.sse());
    let tracked = Tracked {
        frames,
        stop: Box::pin(in_flight.stop.clone().cancelled_owned()),
        stopped: false,
        sent: 0,
        finished: false,
        span: tracing::Span::current(),
        _guard: in_flight.enter(),
    };
    let mut response = Response::new(Body::from_stream(tracked.map(Ok::<_, Infallible>)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Frames plus bookkeeping: how many were written, and whether the stream
/// ended or the client went away first (logged when the body is dropped).
struct Tracked {
    frames: Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    stopped: bool,
    sent: usize,
    finished: bool,
    span: tracing::Span,
    _guard: InFlightGuard,
}

impl Stream for Tracked {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.stopped {
            return Poll::Ready(None);
        }
        if self.stop.as_mut().poll(cx).is_ready() {
            self.stopped = true;
            tracing::warn!(
                events = self.sent,
                "shutdown grace period over: ending the stream"
            );
            let event = ThreadStreamEvent::custom_error(
                "The server is restarting. Please try again in a moment.",
                true,
            );
            return Poll::Ready(sse::frame(&event).ok());
        }
        let polled = self.frames.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(_)) => self.sent += 1,
            Poll::Ready(None) => self.finished = true,
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _entered = self.span.enter();
        if self.finished {
            tracing::info!(events = self.sent, "stream finished");
        } else {
            tracing::info!(
                events = self.sent,
                "stream closed early (client went away or server stopped); the engine keeps the partial answer"
            );
        }
    }
}
