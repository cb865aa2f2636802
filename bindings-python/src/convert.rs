//! JSON values across the boundary, through the interpreter's `json` module
//! (cached), so Python sees plain dicts, lists and strings.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use serde_json::Value;

static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn json_fn<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let f = cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("json")?.getattr(name)?.unbind())
    })?;
    Ok(f.bind(py).clone())
}

/// A JSON value as a Python object.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    loads(py, &value.to_string())
}

/// JSON text as a Python object.
pub fn loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    json_fn(py, &LOADS, "loads")?.call1((text,))
}

/// A Python object as JSON text (`json.dumps`; raises `TypeError` for
/// objects JSON cannot represent).
pub fn dumps(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    json_fn(obj.py(), &DUMPS, "dumps")?
        .call1((obj,))?
        .extract::<String>()
}

/// A Python object as a JSON value.
pub fn from_python(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text = dumps(obj)?;
    serde_json::from_str(&text)
        .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))
}

/// The verified caller as the dict tools and action handlers get first:
/// `user_id`, `email`, `name`, `locale`.
pub fn caller<'py>(
    py: Python<'py>,
    ctx: &chatkit_engine::RequestContext,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let context = pyo3::types::PyDict::new(py);
    context.set_item("user_id", &ctx.user_id)?;
    context.set_item("email", &ctx.email)?;
    context.set_item("name", &ctx.name)?;
    context.set_item("locale", &ctx.locale)?;
    Ok(context)
}
