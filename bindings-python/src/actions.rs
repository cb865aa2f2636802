//! Python coroutine functions as widget action handlers.
//!
//! A [`PyActionHandler`] is a core [`ActionHandler`]: the engine has already
//! checked that the sender widget offers the action (see
//! `chatkit_engine::engine::actions`), then this schedules the registered
//! `async def handler(ctx, action, widget)` on the asyncio loop of the
//! request that sent it (the [`PyRequestLocals`] `process()` attaches, as
//! for tools) and reads back the envelope the Python package builds from
//! its `ActionResult` (`ActionOutcome::from_envelope`). An exception that is
//! not a `ChatKitError` is an `internal` error: logged, never shown.

use crate::convert;
use crate::tools::{PyRequestLocals, describe};
use async_trait::async_trait;
use chatkit_engine::engine::{ActionHandler, ActionOutcome};
use chatkit_engine::protocol::Action;
use chatkit_engine::{Error, RequestContext};
use pyo3::prelude::*;
use serde_json::{Value, json};

/// A registered Python action handler.
pub struct PyActionHandler {
    /// The action type it handles.
    pub kind: String,
    /// `async def f(ctx: dict, action: dict, widget: dict) -> dict | None`
    /// (the package's envelope wrapper around the user's function).
    pub func: Py<PyAny>,
}

impl PyActionHandler {
    fn start(
        &self,
        action: &Action,
        widget: &Value,
        ctx: &RequestContext,
        locals: &pyo3_async_runtimes::TaskLocals,
    ) -> PyResult<impl Future<Output = PyResult<Py<PyAny>>> + Send + use<>> {
        Python::attach(|py| {
            let context = convert::caller(py, ctx)?;
            let action = json!({ "type": action.kind, "payload": action.payload });
            let coroutine = self.func.bind(py).call1((
                context,
                convert::to_python(py, &action)?,
                convert::to_python(py, widget)?,
            ))?;
            pyo3_async_runtimes::into_future_with_locals(locals, coroutine)
        })
    }

    fn failed(&self, err: &PyErr) -> Error {
        Error::Internal(format!(
            "Python action handler `{}` failed: {}",
            self.kind,
            describe(err)
        ))
    }
}

#[async_trait]
impl ActionHandler for PyActionHandler {
    async fn handle(
        &self,
        action: Action,
        widget: Value,
        ctx: RequestContext,
    ) -> chatkit_engine::Result<ActionOutcome> {
        let Some(locals) = PyRequestLocals::of(&ctx) else {
            return Err(Error::NotSupported(format!(
                "Python action handler `{}` needs the asyncio event loop of the request that \
                 sends the action, and this request carries none (run it through \
                 ChatEngine.process())",
                self.kind
            )));
        };
        let pending = self
            .start(&action, &widget, &ctx, locals)
            .map_err(|err| self.failed(&err))?;
        let result = pending.await.map_err(|err| self.failed(&err))?;
        let envelope = Python::attach(|py| convert::from_python(result.bind(py)))
            .map_err(|err| self.failed(&err))?;
        ActionOutcome::from_envelope(envelope)
    }
}
