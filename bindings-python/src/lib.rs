//! Python binding of `chatkit-engine`: the extension module
//! `chatkit_engine._native`.
//!
//! It only converts types, maps errors and bridges async: every engine
//! future runs on one tokio runtime per process (see [`runtime`]), and
//! Python gets `asyncio` awaitables, so engine work never blocks the event
//! loop or holds the GIL. The public API is the pure-Python package
//! `chatkit_engine` (`python/chatkit_engine`), which wraps these classes.

mod actions;
mod convert;
mod engine;
mod errors;
mod runtime;
mod tools;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::engine::{Engine, ProcessResult, RequestContext};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", chatkit_engine::VERSION)?;
        Ok(())
    }
}
