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
        SseStream {
            events: self,
            last_batch: 0,
        }
    }
}

impl Stream for EventStream {
    type Item = ThreadStreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|event| event.map(|event| *event))
    }
}

/// An [`EventStream`] framed as SSE byte chunks: one per event
/// ([`next_frame`](Self::next_frame), the `Stream` impl), or every frame that
/// is ready at once ([`next_batch`](Self::next_batch)).
#[derive(Debug)]
pub struct SseStream {
    events: EventStream,
    /// Length of the last batch: the capacity the next one starts with, so
    /// a batch is written into one allocation without holding a buffer
    /// between batches (an open stream keeps nothing but this number).
    last_batch: usize,
}

/// A batch stops taking queued events once it is this long; the rest go in
/// the next batch (bounds what one read holds).
const BATCH_LIMIT: usize = 64 * 1024;
/// Smallest capacity a batch starts with (one text delta frame fits).
const BATCH_MIN_CAPACITY: usize = 512;

impl SseStream {
    /// Every frame that is ready now, concatenated in order, or `None` at
    /// the end of the response.
    ///
    /// | queued when called | returns |
    /// | --- | --- |
    /// | nothing | waits for the next event, then as below |
    /// | one or more events | all of them (up to 64 KiB of frames), without waiting for more |
    /// | nothing, and the turn ended | `None` |
    ///
    /// It never waits for a second event: a model that streams slowly still
    /// has each token sent as soon as it arrives, while frames produced
    /// together cross into the host together. The bytes are exactly those of
    /// the frames [`next_frame`](Self::next_frame) would return one by one;
    /// they are written into one buffer (no allocation per frame). Cancel
    /// safe: dropping the future loses no event.
    ///
    /// ```no_run
    /// # async fn demo(stream: chatkit_engine::engine::EventStream) {
    /// let mut frames = stream.sse();
    /// while let Some(batch) = frames.next_batch().await {
    ///     // write `batch` (one or more `data: <json>\n\n` frames) to the client
    ///     # let _ = batch;
    /// }
    /// # }
    /// ```
    pub async fn next_batch(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        loop {
            let first = self.events.rx.recv().await?;
            if let Some(batch) = self.fill(&mut out, &first) {
                return Some(batch);
            }
        }
    }

    /// [`next_batch`](Self::next_batch) without waiting: `Ready(Some(batch))`
    /// when at least one frame is queued, `Ready(None)` at the end of the
    /// response, `Pending` when nothing is queued yet (nothing was taken;
    /// no waker is registered). Lets a host hand over a ready batch without
    /// a trip through its async machinery.
    pub fn try_next_batch(&mut self) -> Poll<Option<Bytes>> {
        let mut out = Vec::new();
        loop {
            match self.events.rx.try_recv() {
                Ok(first) => {
                    if let Some(batch) = self.fill(&mut out, &first) {
                        return Poll::Ready(Some(batch));
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => return Poll::Pending,
                Err(mpsc::error::TryRecvError::Disconnected) => return Poll::Ready(None),
            }
        }
    }

    /// Writes `first` and every event queued behind it (up to
    /// [`BATCH_LIMIT`]) into `out`; the batch, unless every event failed to
    /// serialize.
    fn fill(&mut self, out: &mut Vec<u8>, first: &ThreadStreamEvent) -> Option<Bytes> {
        if out.capacity() == 0 {
            out.reserve(self.last_batch.clamp(BATCH_MIN_CAPACITY, BATCH_LIMIT));
        }
        write_frame_or_log(out, first);
        while out.len() < BATCH_LIMIT {
            match self.events.rx.try_recv() {
                Ok(event) => write_frame_or_log(out, &event),
                // Empty: nothing more is ready. Disconnected: the next call
                // returns `None`.
                Err(_) => break,
            }
        }
        if out.is_empty() {
            return None;
        }
        self.last_batch = out.len();
        Some(Bytes::from(std::mem::take(out)))
    }

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

/// Appends the frame of `event` to `out`; an event that fails to serialize
/// is logged and leaves `out` as it was.
fn write_frame_or_log(out: &mut Vec<u8>, event: &ThreadStreamEvent) {
    let start = out.len();
    if let Err(err) = sse::write_frame(out, event) {
        out.truncate(start);
        tracing::error!(error = %err, event = event.type_name(), "dropping an event that failed to serialize");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> Box<ThreadStreamEvent> {
        Box::new(ThreadStreamEvent::custom_error(format!("event {n}"), false))
    }

    #[tokio::test]
    async fn a_batch_is_every_queued_frame_in_order_with_the_bytes_of_single_frames() {
        let (tx, stream) = EventStream::channel(16);
        for n in 0..5 {
            tx.send(event(n)).await.unwrap();
        }
        let mut frames = stream.sse();
        let batch = frames.next_batch().await.unwrap();
        let mut expected = Vec::new();
        for n in 0..5 {
            expected.extend_from_slice(&sse::frame(&event(n)).unwrap());
        }
        assert_eq!(&batch[..], &expected[..]);
        drop(tx);
        assert_eq!(frames.next_batch().await, None);
    }

    #[tokio::test]
    async fn a_batch_does_not_wait_for_an_event_that_is_not_there_yet() {
        let (tx, stream) = EventStream::channel(16);
        let mut frames = stream.sse();
        tx.send(event(0)).await.unwrap();
        // The sender is still open and sends nothing more: the batch must
        // come back with the one frame instead of waiting for a second.
        let batch = frames.next_batch().await.unwrap();
        assert_eq!(&batch[..], &sse::frame(&event(0)).unwrap()[..]);
        let later = tokio::spawn(async move {
            tx.send(event(1)).await.unwrap();
            tx
        });
        let batch = frames.next_batch().await.unwrap();
        assert_eq!(&batch[..], &sse::frame(&event(1)).unwrap()[..]);
        drop(later.await.unwrap());
        assert_eq!(frames.next_batch().await, None);
    }

    #[tokio::test]
    async fn try_next_batch_takes_what_is_queued_and_never_waits() {
        let (tx, stream) = EventStream::channel(16);
        let mut frames = stream.sse();
        assert_eq!(frames.try_next_batch(), Poll::Pending);
        tx.send(event(0)).await.unwrap();
        tx.send(event(1)).await.unwrap();
        let mut expected = sse::frame(&event(0)).unwrap().to_vec();
        expected.extend_from_slice(&sse::frame(&event(1)).unwrap());
        assert_eq!(
            frames.try_next_batch(),
            Poll::Ready(Some(Bytes::from(expected)))
        );
        assert_eq!(frames.try_next_batch(), Poll::Pending);
        drop(tx);
        assert_eq!(frames.try_next_batch(), Poll::Ready(None));
    }

    #[tokio::test]
    async fn a_long_queue_is_split_into_batches_of_bounded_size() {
        let (tx, stream) = EventStream::channel(4096);
        let big = "x".repeat(1000);
        for _ in 0..200 {
            tx.send(Box::new(ThreadStreamEvent::custom_error(
                big.clone(),
                false,
            )))
            .await
            .unwrap();
        }
        drop(tx);
        let mut frames = stream.sse();
        let mut total = Vec::new();
        let mut batches = 0;
        while let Some(batch) = frames.next_batch().await {
            assert!(batch.len() < BATCH_LIMIT + 2048, "{}", batch.len());
            total.extend_from_slice(&batch);
            batches += 1;
        }
        let one = sse::frame(&ThreadStreamEvent::custom_error(big, false)).unwrap();
        assert_eq!(total.len(), one.len() * 200);
        assert!(batches > 1);
    }
}
