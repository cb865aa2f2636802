//! Python binding of `chatkit-engine`.
//!
//! Not built yet: this crate only links the core so the workspace layout is in
//! place. The pyo3 module arrives with the Python binding issue.

/// The version of the core this binding wraps.
pub fn core_version() -> &'static str {
    chatkit_engine::VERSION
}
