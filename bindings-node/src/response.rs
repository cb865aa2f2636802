//! The result of one request: JSON, or a cancellable stream of SSE frames.

use chatkit_engine::Response;
use chatkit_engine::engine::SseStream;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// What `NativeEngine.process` resolves to: either a JSON document
/// (`json` is set) or a stream read with `nextChunk()`.
///
/// The stream is owned here: `cancel()` (or the object being garbage
/// collected) drops it, which cancels the turn; the engine then persists the
/// partial assistant text itself.
#[napi]
pub struct NativeResponse {
    json: Option<Vec<u8>>,
    stream: Arc<Mutex<Option<SseStream>>>,
    cancelled: CancellationToken,
}

impl NativeResponse {
    pub(crate) fn new(response: Response) -> Self {
        let (json, stream) = match response {
            Response::Json(bytes) => (Some(bytes.to_vec()), None),
            Response::Stream(events) => (None, Some(events.sse())),
        };
        Self {
            json,
            stream: Arc::new(Mutex::new(stream)),
            cancelled: CancellationToken::new(),
        }
    }
}

#[napi]
impl NativeResponse {
    /// Whether this is a stream (`text/event-stream`) rather than JSON.
    #[napi(getter)]
    pub fn is_stream(&self) -> bool {
        self.json.is_none()
    }

    /// The JSON document (`application/json`), or `null` for a stream.
    #[napi(getter)]
    pub fn json(&self) -> Option<Buffer> {
        self.json.clone().map(Buffer::from)
    }

    /// Every SSE frame ready now (`data: <json>` and a blank line, one or
    /// more whole frames in order, in one buffer), or `null` at the end of
    /// the stream or once it was cancelled. It waits only for the first
    /// frame, never for more (a slow model's tokens come one by one). A
    /// pending call resolves with `null` as soon as `cancel()` is called.
    #[napi]
    pub async fn next_chunk(&self) -> napi::Result<Option<Buffer>> {
        let stream = Arc::clone(&self.stream);
        let cancelled = self.cancelled.clone();
        let mut guard = tokio::select! {
            biased;
            () = cancelled.cancelled() => return Ok(None),
            guard = stream.lock() => guard,
        };
        let Some(frames) = guard.as_mut() else {
            return Ok(None);
        };
        tokio::select! {
            biased;
            () = cancelled.cancelled() => {
                // Dropping the stream cancels the turn.
                *guard = None;
                Ok(None)
            }
            // One crossing into JS per batch of ready frames, not per frame.
            batch = frames.next_batch() => match batch {
                Some(batch) => Ok(Some(Buffer::from(Vec::from(batch)))),
                None => {
                    *guard = None;
                    Ok(None)
                }
            },
        }
    }

    /// Stops the stream: the turn is cancelled (its partial text is kept)
    /// and a pending or later `nextChunk()` resolves with `null`. Safe to
    /// call more than once and after the end.
    #[napi]
    pub fn cancel(&self) {
        self.cancelled.cancel();
        // Without a read in flight the lock is free and the stream goes now;
        // otherwise the read in flight drops it when it sees the token.
        if let Ok(mut guard) = self.stream.try_lock() {
            *guard = None;
        }
    }

    /// Whether `cancel()` was called.
    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.cancelled.is_cancelled()
    }
}
