//! Engine configuration shared by Rust hosts and the language bindings.

use serde::{Deserialize, Serialize};

/// Tunables of a [`ChatEngine`](crate::engine::ChatEngine).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Page size used when a list request gives no `limit` (ChatKit: 20).
    pub default_page_size: usize,
    /// Largest page a list request may ask for; larger limits are clamped.
    pub max_page_size: usize,
    /// Longest thread title, in characters.
    pub max_title_chars: usize,
    /// How many events may wait for a slow client before the turn pauses.
    pub stream_buffer: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            default_page_size: 20,
            max_page_size: crate::store::MAX_PAGE_SIZE,
            max_title_chars: 255,
            stream_buffer: 64,
        }
    }
}
