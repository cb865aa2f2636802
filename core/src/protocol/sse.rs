//! Server-sent events framing: one `data: <json>\n\n` chunk per event.

use super::{ThreadStreamEvent, json};
use bytes::Bytes;

/// Frames one event as `data: <compact json>\n\n`, exactly as the Python SDK
/// streams it (no `event:`/`id:` fields, no comments, no sentinel).
pub fn frame(event: &ThreadStreamEvent) -> serde_json::Result<Bytes> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    json::write(&mut out, event)?;
    out.extend_from_slice(b"\n\n");
    Ok(Bytes::from(out))
}
