//! Item and thread ids: `<prefix>_` followed by 128 bits of randomness.

/// The kinds of objects that get generated ids, with ChatKit's prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// A thread (`thr_`).
    Thread,
    /// A user or assistant message, widget or generated image (`msg_`).
    Message,
    /// A client tool call (`tc_`).
    ToolCall,
    /// A workflow (`wf_`).
    Workflow,
    /// A standalone task item (`tsk_`).
    Task,
    /// An attachment (`atc_`).
    Attachment,
    /// The hidden context marker written on cancellation (`shcx_`).
    SdkHiddenContext,
}

impl IdKind {
    /// The prefix ChatKit uses for this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Thread => "thr",
            IdKind::Message => "msg",
            IdKind::ToolCall => "tc",
            IdKind::Workflow => "wf",
            IdKind::Task => "tsk",
            IdKind::Attachment => "atc",
            IdKind::SdkHiddenContext => "shcx",
        }
    }
}

/// A fresh id such as `thr_1f0c3c9e5d6b4a7f9e2d8c1b0a9f8e7d`.
///
/// The suffix is a random (version 4) UUID in hex: 122 random bits, where the
/// Python SDK uses 32.
pub fn new_id(kind: IdKind) -> String {
    format!("{}_{}", kind.prefix(), uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_prefix_and_32_hex_digits() {
        let id = new_id(IdKind::Thread);
        let (prefix, suffix) = id.split_once('_').unwrap();
        assert_eq!(prefix, "thr");
        assert_eq!(suffix.len(), 32);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_id(IdKind::Thread), id);
    }
}
