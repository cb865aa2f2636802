//! The result of one request: JSON bytes, or a stream of SSE frames.
//!
//! | call | contract |
//! | --- | --- |
//! | `next()` | the next SSE frame (`data: <json>` and a blank line), or `null`/`nil`/`None` at the end, once cancelled, and ever after |
//! | `cancel()` | cancels the turn: the engine keeps the partial assistant text and adds its hidden "cancelled" marker; a pending `next()` returns `null` at once; idempotent |
//! | a cancelled `next()` call (coroutine or task cancelled while waiting) | closes the stream, which cancels the turn, exactly like `cancel()`: a server whose client went away cancels the handler |
//! | the object released (`close()`/`destroy()` in Kotlin, last reference in Swift, garbage collection) | drops the core stream, which cancels a turn still running |
//! | concurrent `next()` calls | served one after the other (a lock), each frame once |

use crate::error::ChatKitError;
use crate::runtime;
use chatkit_engine::Response;
use chatkit_engine::engine::SseStream;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

/// What `ChatEngine.process` returns.
#[derive(uniffi::Enum)]
pub enum ProcessResult {
    /// A JSON document (`application/json`).
    Json {
        /// The document.
        body: Vec<u8>,
    },
    /// A stream of SSE frames (`text/event-stream`).
    Stream {
        /// Read it with `next()` until it returns null.
        stream: Arc<ResponseStream>,
    },
}

impl From<Response> for ProcessResult {
    fn from(response: Response) -> Self {
        match response {
            Response::Json(bytes) => Self::Json {
                body: bytes.to_vec(),
            },
            Response::Stream(events) => Self::Stream {
                stream: Arc::new(ResponseStream::new(events.sse())),
            },
        }
    }
}

/// The SSE frames of a running turn (see the module docs for the contract).
#[derive(uniffi::Object)]
pub struct ResponseStream {
    /// `None` once finished, closed or cancelled; dropping the core stream
    /// cancels the turn.
    frames: Arc<Mutex<Option<SseStream>>>,
    cancelled: CancellationToken,
}

impl ResponseStream {
    fn new(frames: SseStream) -> Self {
        Self {
            frames: Arc::new(Mutex::new(Some(frames))),
            cancelled: CancellationToken::new(),
        }
    }
}

/// Closes the stream when dropped armed: a `next()` that reaches the end,
/// or that is cancelled while it waits, leaves the stream closed.
struct CloseUnlessDisarmed {
    guard: OwnedMutexGuard<Option<SseStream>>,
    armed: bool,
}

impl Drop for CloseUnlessDisarmed {
    fn drop(&mut self) {
        if self.armed {
            *self.guard = None;
        }
    }
}

#[uniffi::export]
impl ResponseStream {
    /// The next SSE frame, or null at the end of the stream (or once it was
    /// cancelled).
    pub async fn next(&self) -> Result<Option<Vec<u8>>, ChatKitError> {
        let frames = Arc::clone(&self.frames);
        let cancelled = self.cancelled.clone();
        runtime::run(async move {
            let guard = tokio::select! {
                biased;
                () = cancelled.cancelled() => return Ok(None),
                guard = frames.lock_owned() => guard,
            };
            let mut slot = CloseUnlessDisarmed { guard, armed: true };
            let Some(stream) = slot.guard.as_mut() else {
                return Ok(None);
            };
            let frame = tokio::select! {
                biased;
                () = cancelled.cancelled() => None,
                frame = stream.next_frame() => frame,
            };
            Ok(frame.map(|frame| {
                slot.armed = false;
                frame.to_vec()
            }))
        })
        .await
    }

    /// Cancels the turn (the engine keeps the partial answer); a pending
    /// or later `next()` returns null. Safe to call more than once.
    pub fn cancel(&self) {
        self.cancelled.cancel();
        // Without a read in flight the stream goes now; otherwise the read
        // in flight drops it when it sees the token.
        if let Ok(mut frames) = self.frames.try_lock() {
            *frames = None;
        }
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.is_cancelled()
    }
}
