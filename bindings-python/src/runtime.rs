//! The tokio runtime every engine future runs on, safe across `fork()`.
//!
//! pyo3-async-runtimes keeps its own runtime in a process-global `OnceLock`.
//! After `os.fork()` the child inherits that value but not the runtime's
//! worker threads, so the first `await` in the child would hang forever
//! (gunicorn `--preload`, `multiprocessing` with the fork start method,
//! Celery prefork). This module owns the runtime instead and remembers the
//! process id that built it: a call in a forked child notices the new pid,
//! leaks the parent's runtime (its threads do not exist here, so it must
//! never be dropped) and builds a fresh one. The engine handles do the same
//! with their database pools (see `engine.rs`).

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::runtime::{Builder, Runtime};

struct Current {
    pid: u32,
    runtime: Arc<Runtime>,
}

static CURRENT: Mutex<Option<Current>> = Mutex::new(None);

/// The runtime of this process, built on first use (and again in a forked
/// child).
pub fn runtime() -> Arc<Runtime> {
    let pid = std::process::id();
    let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = current.as_ref()
        && existing.pid == pid
    {
        return Arc::clone(&existing.runtime);
    }
    if let Some(stale) = current.take() {
        // Inherited from the parent through fork(): its worker threads are
        // gone, and dropping it would wait for them. Leak it on purpose.
        std::mem::forget(stale);
    }
    let runtime = Arc::new(build());
    *current = Some(Current {
        pid,
        runtime: Arc::clone(&runtime),
    });
    runtime
}

#[allow(clippy::expect_used)] // not input-dependent: only fails when the OS refuses threads
fn build() -> Runtime {
    Builder::new_multi_thread()
        .enable_all()
        .thread_name("chatkit-engine")
        .build()
        .expect("chatkit_engine: cannot start the tokio runtime")
}

/// The pyo3-async-runtimes adapter for [`runtime()`].
pub struct ForkSafeRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for ForkSafeRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        runtime().spawn_blocking(f)
    }
}

impl ContextExt for ForkSafeRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        // A fresh cell is always empty.
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|cell| cell.get().cloned())
            .unwrap_or_default()
    }
}

/// A Python awaitable (an `asyncio.Future` of the running loop) that runs
/// `fut` on the engine runtime. Cancelling the awaitable drops `fut`.
pub fn future_into_py<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    pyo3_async_runtimes::generic::future_into_py::<ForkSafeRuntime, F, T>(py, fut)
}

/// The running event loop of the Python caller and a copy of its
/// `contextvars`, exactly as [`future_into_py`] captures them. Fails (a
/// `RuntimeError`) outside a running loop, as `future_into_py` does.
pub fn caller_locals(py: Python<'_>) -> PyResult<TaskLocals> {
    pyo3_async_runtimes::generic::get_current_locals::<ForkSafeRuntime>(py)
}

/// [`future_into_py`] with locals the caller already captured with
/// [`caller_locals`] (the awaitable belongs to their loop).
pub fn future_into_py_with_locals<F, T>(
    py: Python<'_>,
    locals: TaskLocals,
    fut: F,
) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    pyo3_async_runtimes::generic::future_into_py_with_locals::<ForkSafeRuntime, F, T>(
        py, locals, fut,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_per_process_that_runs_futures() {
        let first = runtime();
        let second = runtime();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.block_on(async { 40 + 2 }), 42);
    }
}
