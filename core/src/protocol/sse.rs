//! Server-sent events framing: one `data: <json>\n\n` chunk per event.

use super::{ThreadStreamEvent, json};
use bytes::Bytes;

/// Frames one event as `data: <compact json>\n\n`, exactly as the Python SDK
/// streams it (no `event:`/`id:` fields, no comments, no sentinel).
pub fn frame(event: &ThreadStreamEvent) -> serde_json::Result<Bytes> {
    let mut out = Vec::with_capacity(256);
    write_frame(&mut out, event)?;
    Ok(Bytes::from(out))
}

/// Appends the frame of `event` (as [`frame`] makes it) to `out`. On error
/// `out` may hold part of the frame: truncate it to its old length.
pub fn write_frame(out: &mut Vec<u8>, event: &ThreadStreamEvent) -> serde_json::Result<()> {
    out.extend_from_slice(b"data: ");
    json::write(out, event)?;
    out.extend_from_slice(b"\n\n");
    Ok(())
}
