//! The streaming half of a response.

use crate::protocol::{ThreadStreamEvent, sse};
use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The events of a streaming response, in order.
///
/// The turn that produces them runs in its own task. Dropping the stream (the
/// client went away) cancels the turn: the engine then persists the partial
/// assistant text and a hidden "cancelled" marker itself.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Box<ThreadStreamEvent>>,
    _open: OpenStream,
}

/// Counts the stream in `chatkit_open_streams` while it lives.
#[derive(Debug)]
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        crate::telemetry::open_streams(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        crate::telemetry::open_streams(-1.0);
    }
}

/// The sending half of an [`EventStream`]. Events travel boxed: the channel
/// allocates room for 32 values up front, and an open stream should not hold
/// 32 inline events (each the size of the largest variant).
pub(crate) type EventSender = mpsc::Sender<Box<ThreadStreamEvent>>;

impl EventStream {
    /// A stream and its sender, buffering up to `buffer` events.
    pub(crate) fn channel(buffer: usize) -> (EventSender, Self) {
        let (tx, rx) = mpsc::channel(buffer);
        (
            tx,
            Self {
                rx,
                _open: OpenStream::new(),
            },
        )
    }

    /// The next event, or `None` when the response is complete.
    pub async fn next_event(&mut self) -> Option<ThreadStreamEvent> {
        self.rx.recv().await.map(|event| *event)
    }

    /// Collects every remaining event (mostly useful in tests).
    pub async fn collect_events(mut self) -> Vec<ThreadStreamEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.rx.recv().await {
            events.push(*event);
        }
        events
    }

    /// The events as SSE frames (`data: <json>\n\n`), ready to write to an
    /// HTTP body.
    pub fn sse(self) -> SseStream {
        SseStream { events: self }
    }
}

impl Stream for EventStream {
    type Item = ThreadStreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|event| event.map(|event| *event))
    }
}

/// An [`EventStream`] framed as SSE byte chunks, one per event.
#[derive(Debug)]
pub struct SseStream {
    events: EventStream,
}

impl SseStream {
    /// The next frame, or `None` at the end of the response.
    pub async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            let event = self.events.next_event().await?;
            if let Some(frame) = frame_or_log(&event) {
                return Some(frame);
            }
        }
    }
}

impl Stream for SseStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.events).poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    if let Some(frame) = frame_or_log(&event) {
                        return Poll::Ready(Some(frame));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn frame_or_log(event: &ThreadStreamEvent) -> Option<Bytes> {
    match sse::frame(event) {
        Ok(frame) => Some(frame),
        Err(err) => {
            // Our event types always serialize; this guards against a custom
            // responder putting something unserializable in free-form JSON.
            tracing::error!(error = %err, event = event.type_name(), "dropping an event that failed to serialize");
            None
        }
    }
}
