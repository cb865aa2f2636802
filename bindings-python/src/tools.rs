//! Python coroutine functions as engine tools.
//!
//! A [`PyTool`] is a core [`Tool`] whose `call` schedules the registered
//! `async def tool(ctx, args)` on the asyncio event loop (with the
//! `contextvars`) of the Python call that started the request, and awaits
//! the result from the engine runtime. That call (`process()` or
//! `run_task_tool()`) attaches its loop and a copy of its context to the
//! request as [`PyRequestLocals`], a typed extension of the core
//! `RequestContext`; the tool reads it from `ToolContext::request`. So two
//! concurrent requests of one user each run their tools in their own loop and
//! with their own `contextvars`.
//!
//! A request context without [`PyRequestLocals`] (one a Rust host built some
//! other way) has no loop to run Python on: the call fails with
//! [`chatkit_engine::Error::NotSupported`], which the agent reports to the
//! model and a direct caller gets as `NotSupportedError`. The binding never
//! borrows the loop of another request.

use crate::convert;
use async_trait::async_trait;
use chatkit_engine::tools::{Tool, ToolContext, ToolOutput};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_async_runtimes::TaskLocals;
use serde_json::Value;

/// The asyncio event loop and the `contextvars` (a `copy_context()`) of the
/// Python coroutine that made a request, as pyo3-async-runtimes captures
/// them: the request-scoped host data Python tools run with.
#[derive(Clone, Debug)]
pub struct PyRequestLocals(pub TaskLocals);

impl PyRequestLocals {
    /// `ctx` with `locals` attached, replacing any it had.
    pub fn attach(
        ctx: chatkit_engine::RequestContext,
        locals: TaskLocals,
    ) -> chatkit_engine::RequestContext {
        ctx.with_extension(Self(locals))
    }

    /// The locals attached to `ctx`, if any.
    pub fn of(ctx: &chatkit_engine::RequestContext) -> Option<&TaskLocals> {
        ctx.extensions().get::<Self>().map(|locals| &locals.0)
    }
}

/// A registered Python coroutine function.
pub struct PyTool {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of its arguments.
    pub parameters: Value,
    /// `async def f(ctx: dict, args: dict) -> str | dict | list | ToolResult | None`.
    pub func: Py<PyAny>,
    /// Whether a call waits for the user's confirmation.
    pub requires_approval: bool,
}

impl PyTool {
    fn start(
        &self,
        arguments: &Value,
        ctx: &ToolContext,
        locals: &TaskLocals,
    ) -> PyResult<impl Future<Output = PyResult<Py<PyAny>>> + Send + use<>> {
        Python::attach(|py| {
            let context = convert::caller(py, &ctx.request)?;
            context.set_item("call_id", &ctx.call_id)?;
            let args = if arguments.is_object() {
                convert::to_python(py, arguments)?
            } else {
                PyDict::new(py).into_any()
            };
            // Calling a coroutine function only creates the coroutine: the
            // body runs on the caller's loop.
            let coroutine = self.func.bind(py).call1((context, args))?;
            pyo3_async_runtimes::into_future_with_locals(locals, coroutine)
        })
    }
}

/// `Kind: message` of a Python exception, for logs and error texts.
pub(crate) fn describe(err: &PyErr) -> String {
    Python::attach(|py| {
        let kind = err
            .get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".to_owned());
        format!("{kind}: {}", err.value(py))
    })
}

fn output_of(result: Py<PyAny>) -> PyResult<ToolOutput> {
    Python::attach(|py| {
        let value = result.bind(py);
        if value.is_none() {
            return Ok(ToolOutput::text(""));
        }
        if let Ok(text) = value.extract::<String>() {
            return Ok(ToolOutput::text(text));
        }
        // `chatkit_engine.ToolResult`: output, widget and effects in the
        // envelope both bindings share.
        if let Ok(envelope) = value.call_method0("_chatkit_envelope") {
            return Ok(ToolOutput::from_envelope(convert::from_python(&envelope)?));
        }
        Ok(ToolOutput::json(convert::from_python(value)?, false))
    })
}

#[async_trait]
impl Tool for PyTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn requires_approval(&self) -> bool {
        self.requires_approval
    }

    async fn call(
        &self,
        arguments: Value,
        ctx: &ToolContext,
    ) -> chatkit_engine::Result<ToolOutput> {
        let Some(locals) = PyRequestLocals::of(&ctx.request) else {
            return Err(chatkit_engine::Error::NotSupported(format!(
                "Python tool `{}` needs the asyncio event loop of the request that calls it, \
                 and this request carries none (run it through ChatEngine.process())",
                self.name
            )));
        };
        let pending = match self.start(&arguments, ctx, locals) {
            Ok(pending) => pending,
            Err(err) => return Ok(ToolOutput::error(describe(&err))),
        };
        match pending.await.and_then(output_of) {
            Ok(output) => Ok(output),
            Err(err) => Ok(ToolOutput::error(describe(&err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatkit_engine::RequestContext;
    use serde_json::json;

    fn tool() -> PyTool {
        Python::initialize();
        PyTool {
            name: "list_tasks".to_owned(),
            description: "The user's tasks".to_owned(),
            parameters: json!({"type": "object", "properties": {}}),
            // Never called: the tool stops before it touches Python.
            func: Python::attach(|py| py.None()),
            requires_approval: false,
        }
    }

    #[test]
    fn a_request_without_python_locals_is_refused_as_not_supported() {
        let ctx = ToolContext {
            request: RequestContext::new("alice"),
            call_id: "call_1".to_owned(),
        };
        let err = crate::runtime::runtime()
            .block_on(tool().call(json!({}), &ctx))
            .expect_err("no loop to run on");
        assert_eq!(err.code(), "not_supported");
        assert!(err.to_string().contains("`list_tasks`"), "{err}");
    }
}
