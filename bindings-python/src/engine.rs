//! `ChatEngine`, `RequestContext` and `ProcessResult` as Python classes.

use crate::actions::PyActionHandler;
use crate::errors::{config_error, to_py_err};
use crate::runtime::{caller_locals, future_into_py, future_into_py_with_locals};
use crate::tools::{PyRequestLocals, PyTool};
use bytes::Bytes;
use chatkit_engine::EngineConfig;
use chatkit_engine::engine::{ActionHandlers, Response, SseStream};
use chatkit_engine::todo::App as CoreEngine;
use chatkit_engine::tools::ToolSet;
use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use tokio::sync::{Mutex as AsyncMutex, OnceCell, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

/// The caller's identity: what `authenticate()` returns and `process()`
/// takes. Hosts that authenticate requests themselves build one directly.
#[pyclass(frozen, eq, module = "chatkit_engine._native", name = "RequestContext")]
#[derive(Clone, Debug, PartialEq)]
pub struct RequestContext {
    /// The user id every store query and tool call is scoped to.
    #[pyo3(get)]
    user_id: String,
    /// The user's e-mail address, when known.
    #[pyo3(get)]
    email: Option<String>,
    /// The user's display name, when known.
    #[pyo3(get)]
    name: Option<String>,
    /// The client's locale, when the host passes it on.
    #[pyo3(get)]
    locale: Option<String>,
}

#[pymethods]
impl RequestContext {
    #[new]
    #[pyo3(signature = (user_id, *, email=None, name=None, locale=None))]
    fn new(
        user_id: String,
        email: Option<String>,
        name: Option<String>,
        locale: Option<String>,
    ) -> Self {
        Self {
            user_id,
            email,
            name,
            locale,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "RequestContext(user_id={:?}, email={:?}, name={:?}, locale={:?})",
            self.user_id, self.email, self.name, self.locale
        )
    }
}

impl From<chatkit_engine::RequestContext> for RequestContext {
    fn from(ctx: chatkit_engine::RequestContext) -> Self {
        Self {
            user_id: ctx.user_id,
            email: ctx.email,
            name: ctx.name,
            locale: ctx.locale,
        }
    }
}

impl RequestContext {
    fn to_core(&self) -> chatkit_engine::RequestContext {
        let mut ctx = chatkit_engine::RequestContext::new(self.user_id.clone());
        ctx.email = self.email.clone();
        ctx.name = self.name.clone();
        ctx.locale = self.locale.clone();
        ctx
    }
}

/// The core engine of one process (rebuilt in a forked child).
struct Slot {
    pid: u32,
    cell: Arc<OnceCell<CoreEngine>>,
}

/// The native engine behind `chatkit_engine.ChatEngine`.
///
/// The core engine (database pools, token verifier) is built on first use,
/// on the engine runtime, so the constructor never blocks the event loop.
#[pyclass(frozen, module = "chatkit_engine._native", name = "Engine")]
pub struct Engine {
    config: EngineConfig,
    tools: Mutex<ToolSet>,
    actions: Mutex<ActionHandlers>,
    started: AtomicBool,
    slot: Mutex<Option<Slot>>,
}

impl Engine {
    fn cell(&self) -> Arc<OnceCell<CoreEngine>> {
        let pid = std::process::id();
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = slot.as_ref()
            && current.pid == pid
        {
            return Arc::clone(&current.cell);
        }
        if let Some(stale) = slot.take() {
            // Built by the parent before fork(): its pools belong to the
            // parent's runtime. Leak it; the child opens its own.
            std::mem::forget(stale);
        }
        let cell = Arc::new(OnceCell::new());
        *slot = Some(Slot {
            pid,
            cell: Arc::clone(&cell),
        });
        cell
    }

    /// The core engine, built on first use.
    fn core(&self) -> impl Future<Output = PyResult<CoreEngine>> + Send + use<> {
        self.started.store(true, Ordering::SeqCst);
        let cell = self.cell();
        let config = self.config.clone();
        let tools = self
            .tools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let actions = self
            .actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        async move {
            cell.get_or_try_init(|| CoreEngine::from_config_with_extensions(config, tools, actions))
                .await
                .cloned()
                .map_err(to_py_err)
        }
    }
}

#[pymethods]
impl Engine {
    /// `config_json`: a JSON object with `EngineConfig` fields.
    #[new]
    fn new(config_json: &str) -> PyResult<Self> {
        let config: EngineConfig =
            serde_json::from_str(config_json).map_err(|err| config_error(err.to_string()))?;
        config.validate().map_err(to_py_err)?;
        Ok(Self {
            config,
            tools: Mutex::new(ToolSet::new()),
            actions: Mutex::new(ActionHandlers::new()),
            started: AtomicBool::new(false),
            slot: Mutex::new(None),
        })
    }

    /// The defaults overridden by the environment (`DATABASE_URL`,
    /// `OPENAI_API_KEY`, `JWT_SECRET`, ...), as a JSON object.
    #[staticmethod]
    fn env_config_json() -> PyResult<String> {
        let config = EngineConfig::from_env().map_err(to_py_err)?;
        serde_json::to_string(&config).map_err(|err| config_error(err.to_string()))
    }

    /// Registers `func` (an `async def f(ctx, args)`) as a tool of both
    /// agents; `requires_approval` makes a call wait for the user's
    /// confirmation. Only before the first request.
    #[pyo3(signature = (func, name, description, parameters_json, requires_approval = false))]
    fn add_tool(
        &self,
        func: Bound<'_, PyAny>,
        name: String,
        description: String,
        parameters_json: &str,
        requires_approval: bool,
    ) -> PyResult<()> {
        if self.started.load(Ordering::SeqCst) {
            return Err(PyRuntimeError::new_err(
                "tools must be registered before the engine handles its first request",
            ));
        }
        let parameters = serde_json::from_str(parameters_json)
            .map_err(|err| config_error(format!("parameters of tool {name}: {err}")))?;
        chatkit_engine::tools::check_definition(&name, &parameters).map_err(to_py_err)?;
        let tool = PyTool {
            name,
            description,
            parameters,
            func: func.unbind(),
            requires_approval,
        };
        self.tools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(tool));
        Ok(())
    }

    /// Registers `func` (an `async def f(ctx, action, widget)` returning
    /// the action envelope, built by the package from an `ActionResult`) as
    /// the handler of widget actions of type `kind`. Only before the first
    /// request.
    fn add_action(&self, kind: String, func: Bound<'_, PyAny>) -> PyResult<()> {
        if self.started.load(Ordering::SeqCst) {
            return Err(PyRuntimeError::new_err(
                "action handlers must be registered before the engine handles its first request",
            ));
        }
        if kind.trim().is_empty() {
            return Err(config_error("an action handler needs an action type"));
        }
        let handler = PyActionHandler {
            kind: kind.clone(),
            func: func.unbind(),
        };
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(kind, Arc::new(handler));
        Ok(())
    }

    /// Opens the database and the token verifier now (otherwise the first
    /// request does).
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core();
        future_into_py(py, async move {
            core.await?;
            Ok(())
        })
    }

    /// The model answering, once started (`scripted-offline` without an
    /// API key).
    #[getter]
    fn model_name(&self) -> Option<String> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|slot| slot.pid == std::process::id())
            .and_then(|slot| slot.cell.get())
            .map(|app| app.engine.model_name().to_owned())
    }

    /// Verifies an `Authorization` header value.
    #[pyo3(signature = (authorization))]
    fn authenticate<'py>(
        &self,
        py: Python<'py>,
        authorization: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core();
        future_into_py(py, async move {
            let app = core.await?;
            let ctx = app
                .engine
                .authenticate(authorization.as_deref())
                .await
                .map_err(to_py_err)?;
            Ok(RequestContext::from(ctx))
        })
    }

    /// Runs one of the 7 built-in task tools (`create_task`, `list_tasks`,
    /// `get_task`, `update_task`, `delete_task`, `toggle_complete`,
    /// `get_stats`) for `ctx` on the engine's task store, as the agents do,
    /// and returns its JSON envelope (`{"success": true, "data": ...}` or
    /// `{"success": false, "error": ...}`) as Python objects. Lets a host's
    /// REST routes share the chat's `tasks` table and validation. Like
    /// `process()`, it attaches the caller's loop and `contextvars` to the
    /// request, so any Python tool it reaches runs there.
    fn run_task_tool<'py>(
        &self,
        py: Python<'py>,
        name: String,
        arguments_json: &str,
        ctx: PyRef<'py, RequestContext>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let arguments: serde_json::Value = serde_json::from_str(arguments_json)
            .map_err(|err| to_py_err(chatkit_engine::Error::invalid(err)))?;
        let locals = caller_locals(py)?;
        let ctx = PyRequestLocals::attach(ctx.to_core(), locals.clone());
        let core = self.core();
        future_into_py_with_locals(py, locals, async move {
            let app = core.await?;
            let result = app
                .assistant
                .run_task_tool(&name, arguments, &ctx)
                .await
                .map_err(to_py_err)?;
            Ok(JsonText(result.to_string()))
        })
    }

    /// This process's metrics in the Prometheus text format (installs the
    /// recorder first when metrics are on, so it works before any request).
    fn metrics(&self) -> PyResult<String> {
        if self.config.metrics {
            chatkit_engine::telemetry::install();
        }
        chatkit_engine::telemetry::render().map_err(to_py_err)
    }

    /// The caller's token usage (today, overall, and for `thread_id`) as
    /// Python objects.
    #[pyo3(signature = (ctx, thread_id=None))]
    fn token_usage<'py>(
        &self,
        py: Python<'py>,
        ctx: PyRef<'py, RequestContext>,
        thread_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ctx = ctx.to_core();
        let core = self.core();
        future_into_py(py, async move {
            let app = core.await?;
            let report = app
                .engine
                .token_usage(&ctx, thread_id.as_deref())
                .await
                .map_err(to_py_err)?;
            let text = serde_json::to_string(&report)
                .map_err(|err| to_py_err(chatkit_engine::Error::Internal(err.to_string())))?;
            Ok(JsonText(text))
        })
    }

    /// Authenticates and processes in one future (one crossing instead of
    /// two): the caller is `ctx` when the host gives one, else the verified
    /// `authorization` header value. Raises what `authenticate` and
    /// `process` raise.
    #[pyo3(signature = (body, authorization, ctx=None))]
    fn handle<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        authorization: Option<String>,
        ctx: Option<PyRef<'py, RequestContext>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = Bytes::copy_from_slice(body);
        let locals = caller_locals(py)?;
        let given = ctx.map(|ctx| ctx.to_core());
        let core = self.core();
        let task_locals = locals.clone();
        future_into_py_with_locals(py, locals, async move {
            let app = core.await?;
            let caller = match given {
                Some(caller) => caller,
                None => app
                    .engine
                    .authenticate(authorization.as_deref())
                    .await
                    .map_err(to_py_err)?,
            };
            let ctx = PyRequestLocals::attach(caller, task_locals);
            let response = app.engine.process(&body, ctx).await.map_err(to_py_err)?;
            Ok(ProcessResult::from_response(response))
        })
    }

    /// The largest request body the engine accepts (`max_body_bytes`); a
    /// host stops reading a body past it.
    #[getter]
    fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// Handles one ChatKit request body for `ctx`. The Python tools of the
    /// turn run on the caller's event loop with a copy of its `contextvars`
    /// (attached to this request only, see `tools.rs`).
    fn process<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        ctx: PyRef<'py, RequestContext>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = Bytes::copy_from_slice(body);
        let locals = caller_locals(py)?;
        let ctx = PyRequestLocals::attach(ctx.to_core(), locals.clone());
        let core = self.core();
        future_into_py_with_locals(py, locals, async move {
            let app = core.await?;
            let response = app.engine.process(&body, ctx).await.map_err(to_py_err)?;
            Ok(ProcessResult::from_response(response))
        })
    }
}

/// JSON text that becomes Python objects (`json.loads`) when the awaitable
/// resolves.
struct JsonText(String);

impl<'py> IntoPyObject<'py> for JsonText {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        crate::convert::loads(py, &self.0)
    }
}

enum State {
    /// A JSON response, yielded once by iteration.
    Once(Option<Bytes>),
    /// SSE frames of a running turn. Dropping them cancels the turn.
    Stream { frames: SseStream },
    /// Finished, closed or cancelled.
    Closed,
}

/// What `process()` returns: JSON bytes, or an async iterator of SSE
/// frames. Each step of the iteration yields every frame that is ready at
/// that moment as one `bytes` (one frame or several, whole frames only).
#[pyclass(frozen, module = "chatkit_engine._native", name = "ProcessResult")]
pub struct ProcessResult {
    streaming: bool,
    json: Option<Bytes>,
    state: Arc<AsyncMutex<State>>,
    cancel: CancellationToken,
}

impl ProcessResult {
    /// The result of a processed request: its JSON, or its SSE frames.
    fn from_response(response: Response) -> Self {
        match response {
            Response::Json(bytes) => Self::new(false, State::Once(Some(bytes))),
            Response::Stream(events) => Self::new(
                true,
                State::Stream {
                    frames: events.sse(),
                },
            ),
        }
    }

    fn new(streaming: bool, state: State) -> Self {
        let json = match &state {
            State::Once(bytes) => bytes.clone(),
            _ => None,
        };
        Self {
            streaming,
            json,
            state: Arc::new(AsyncMutex::new(state)),
            cancel: CancellationToken::new(),
        }
    }
}

impl ProcessResult {
    /// A batch of frames that is queued already, as a future of the running
    /// loop that is done: handed over without a task on the engine runtime
    /// and a wake-up of the loop from its thread (the cost of every await
    /// before). `None` when nothing is queued, the stream is busy (a read in
    /// flight) or it is not a stream; the caller then takes the async path.
    fn ready_now<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.cancel.is_cancelled() {
            return Ok(None);
        }
        let Ok(mut guard) = self.state.try_lock() else {
            return Ok(None);
        };
        let State::Stream { frames } = &mut *guard else {
            return Ok(None);
        };
        // The loop first: a batch taken and then not delivered would be lost.
        let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
        let batch = match frames.try_next_batch() {
            Poll::Ready(Some(batch)) => batch,
            // The end, or nothing yet: the async path answers both.
            Poll::Ready(None) | Poll::Pending => return Ok(None),
        };
        drop(guard);
        let future = event_loop.call_method0("create_future")?;
        future.call_method1("set_result", (PyBytes::new(py, &batch),))?;
        Ok(Some(future))
    }
}

/// Closes the stream unless disarmed: a `__anext__` that is cancelled (the
/// client went away) or reaches the end leaves the result closed.
struct CloseUnlessDisarmed {
    guard: OwnedMutexGuard<State>,
    armed: bool,
}

impl Drop for CloseUnlessDisarmed {
    fn drop(&mut self) {
        if self.armed {
            *self.guard = State::Closed;
        }
    }
}

#[pymethods]
impl ProcessResult {
    /// Whether this is an SSE stream (`text/event-stream`).
    #[getter]
    fn streaming(&self) -> bool {
        self.streaming
    }

    /// The JSON document, or `None` for a stream.
    #[getter]
    fn json(&self) -> Option<Bytes> {
        self.json.clone()
    }

    /// `text/event-stream` or `application/json`.
    #[getter]
    fn media_type(&self) -> &'static str {
        if self.streaming {
            "text/event-stream"
        } else {
            "application/json"
        }
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(ready) = self.ready_now(py)? {
            return Ok(ready);
        }
        let state = Arc::clone(&self.state);
        let cancel = self.cancel.clone();
        future_into_py(py, async move {
            let guard = tokio::select! {
                guard = state.lock_owned() => guard,
                () = cancel.cancelled() => return Err(PyStopAsyncIteration::new_err(())),
            };
            let mut slot = CloseUnlessDisarmed { guard, armed: true };
            let next = match &mut *slot.guard {
                State::Once(bytes) => bytes.take(),
                // Every frame ready now in one bytes object: one Python
                // future and one ASGI body message per batch, not per event;
                // never waits for a second frame (a paced model's tokens
                // still go out one by one).
                State::Stream { frames } => tokio::select! {
                    batch = frames.next_batch() => batch,
                    () = cancel.cancelled() => None,
                },
                State::Closed => None,
            };
            match next {
                Some(bytes) => {
                    slot.armed = false;
                    Ok(bytes)
                }
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }

    /// Stops iterating and, for a stream, cancels the turn (the engine keeps
    /// the partial answer). Safe to call more than once.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.cancel.cancel();
        let state = Arc::clone(&self.state);
        future_into_py(py, async move {
            *state.lock().await = State::Closed;
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "ProcessResult(streaming={}, media_type={:?})",
            self.streaming,
            self.media_type()
        )
    }
}
