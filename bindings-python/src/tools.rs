//! Python coroutine functions as engine tools.
//!
//! A [`PyTool`] is a core [`Tool`] whose `call` schedules the registered
//! `async def tool(ctx, args)` on the caller's asyncio event loop (with the
//! caller's `contextvars`) and awaits the result from the engine runtime.
//! "The caller" is the `process()` call that started the turn: while its
//! stream is open, [`LoopRegistry`] maps the user id to that call's loop.

use crate::convert;
use async_trait::async_trait;
use chatkit_engine::tools::{Tool, ToolContext, ToolOutput};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_async_runtimes::TaskLocals;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Which event loop runs the Python tools of a user's turn.
#[derive(Default)]
pub struct LoopRegistry {
    loops: Mutex<Loops>,
}

#[derive(Default)]
struct Loops {
    /// The loop of each user's open requests, with how many are open.
    by_user: HashMap<String, (TaskLocals, usize)>,
    /// The loop of the most recent request: used when a user has no open
    /// request (for example a tool called after its stream was dropped).
    last: Option<TaskLocals>,
}

impl LoopRegistry {
    /// Records `locals` as the loop of `user_id` until the guard drops.
    pub fn enter(self: &Arc<Self>, user_id: &str, locals: TaskLocals) -> LoopGuard {
        let mut loops = self.loops.lock().unwrap_or_else(PoisonError::into_inner);
        loops.last = Some(locals.clone());
        let entry = loops
            .by_user
            .entry(user_id.to_owned())
            .or_insert_with(|| (locals.clone(), 0));
        entry.0 = locals;
        entry.1 += 1;
        LoopGuard {
            registry: Arc::clone(self),
            user_id: user_id.to_owned(),
        }
    }

    fn get(&self, user_id: &str) -> Option<TaskLocals> {
        let loops = self.loops.lock().unwrap_or_else(PoisonError::into_inner);
        loops
            .by_user
            .get(user_id)
            .map(|(locals, _)| locals.clone())
            .or_else(|| loops.last.clone())
    }
}

/// Keeps a user's loop registered; see [`LoopRegistry::enter`].
pub struct LoopGuard {
    registry: Arc<LoopRegistry>,
    user_id: String,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        let mut loops = self
            .registry
            .loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = loops.by_user.get_mut(&self.user_id) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                loops.by_user.remove(&self.user_id);
            }
        }
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
    /// `async def f(ctx: dict, args: dict) -> str | dict | list | None`.
    pub func: Py<PyAny>,
    /// Where to run it.
    pub loops: Arc<LoopRegistry>,
}

impl PyTool {
    fn start(
        &self,
        arguments: &Value,
        ctx: &ToolContext,
        locals: &TaskLocals,
    ) -> PyResult<impl Future<Output = PyResult<Py<PyAny>>> + Send + use<>> {
        Python::attach(|py| {
            let context = PyDict::new(py);
            context.set_item("user_id", &ctx.request.user_id)?;
            context.set_item("email", &ctx.request.email)?;
            context.set_item("name", &ctx.request.name)?;
            context.set_item("locale", &ctx.request.locale)?;
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

fn describe(err: &PyErr) -> String {
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

    async fn call(
        &self,
        arguments: Value,
        ctx: &ToolContext,
    ) -> chatkit_engine::Result<ToolOutput> {
        let Some(locals) = self.loops.get(ctx.user_id()) else {
            return Ok(ToolOutput::error(format!(
                "tool {} cannot run: no Python event loop is serving this user",
                self.name
            )));
        };
        let pending = match self.start(&arguments, ctx, &locals) {
            Ok(pending) => pending,
            Err(err) => return Ok(ToolOutput::error(describe(&err))),
        };
        match pending.await.and_then(output_of) {
            Ok(output) => Ok(output),
            Err(err) => Ok(ToolOutput::error(describe(&err))),
        }
    }
}
