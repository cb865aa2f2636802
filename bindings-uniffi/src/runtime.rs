//! The one tokio runtime every engine call of this binding runs on.
//!
//! uniffi drives an exported `async fn` from the foreign side: Kotlin's
//! coroutine dispatcher, Swift's executor or Python's event loop polls the
//! Rust future on its own thread. So every exported `async fn` only awaits a
//! task spawned here ([`run`]); the work (database, model, tools) happens on
//! this runtime's worker threads and never on the caller's.
//!
//! | rule | why |
//! | --- | --- |
//! | one multi-thread runtime per process, built on first use | database pools and turns outlive a call and must share one runtime |
//! | a foreign call that is cancelled (coroutine cancelled, Swift task cancelled, asyncio task cancelled) aborts its task | uniffi drops the future; [`AbortOnDrop`] turns that into `JoinHandle::abort` |
//! | a runtime that cannot start is an `internal` error, not a panic | the OS may refuse threads |

use crate::error::ChatKitError;
use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime of this process, built on first use.
pub(crate) fn runtime() -> Result<&'static Runtime, ChatKitError> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .enable_all()
                .thread_name("chatkit-engine")
                .build()
                .map_err(|err| format!("cannot start the tokio runtime: {err}"))
        })
        .as_ref()
        .map_err(|message| ChatKitError::from(chatkit_engine::Error::Internal(message.clone())))
}

/// Aborts the task when the awaiting future is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the engine runtime and waits for it without blocking the
/// polling thread. Dropping the returned future aborts the task.
pub(crate) async fn run<F, T>(fut: F) -> Result<T, ChatKitError>
where
    F: Future<Output = Result<T, ChatKitError>> + Send + 'static,
    T: Send + 'static,
{
    let mut task = AbortOnDrop(runtime()?.spawn(fut));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(err) => {
            Err(chatkit_engine::Error::Internal(format!("engine task failed: {err}")).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_call_runs_on_an_engine_worker_thread_not_on_the_polling_thread() {
        let caller = std::thread::current().id();
        let ran_on = block_on(run(async { Ok(std::thread::current().id()) }));
        assert!(matches!(ran_on, Ok(id) if id != caller));
    }

    #[test]
    fn dropping_a_pending_call_aborts_its_task() {
        struct Notify(std::sync::mpsc::Sender<&'static str>);
        impl Drop for Notify {
            fn drop(&mut self) {
                let _ = self.0.send("dropped");
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let pending = run(async move {
            let notify = Notify(tx);
            let _ = notify.0.send("started");
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        let mut pending = Box::pin(pending);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("started"));
        drop(pending);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("dropped"));
    }

    /// Polls `fut` on this thread until it is ready (a foreign executor in
    /// miniature).
    fn block_on<F: Future>(fut: F) -> F::Output {
        let thread = std::thread::current();
        let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread)));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
}
