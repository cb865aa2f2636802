//! Core errors as Python exceptions.
//!
//! The exception classes live in `chatkit_engine/errors.py`, one per core
//! error code under `ChatKitError`. This side only hands over the code, the
//! HTTP status, the message and the JSON body; `errors._from_core` picks the
//! class, so a code the core adds later still maps to a sensible class.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

static FROM_CORE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The Python exception for a core error.
pub fn to_py_err(err: chatkit_engine::Error) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let from_core = FROM_CORE.get_or_try_init(py, || {
                Ok::<_, PyErr>(
                    py.import("chatkit_engine.errors")?
                        .getattr("_from_core")?
                        .unbind(),
                )
            })?;
            let body = PyBytes::new(py, &err.to_json_body());
            let exc =
                from_core
                    .bind(py)
                    .call1((err.code(), err.http_status(), err.to_string(), body))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|import_failure| import_failure)
    })
}

/// A configuration error raised before the core saw the config.
pub fn config_error(message: impl Into<String>) -> PyErr {
    to_py_err(chatkit_engine::Error::Config(message.into()))
}
