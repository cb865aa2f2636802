//! Threads, their status, and cursor pages.

use super::{ThreadItem, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A thread as the store keeps it: everything but its items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadMetadata {
    /// The title, absent until set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The thread id (`thr_...`).
    pub id: String,
    /// When the thread was created.
    pub created_at: Timestamp,
    /// Whether the composer is usable.
    #[serde(default)]
    pub status: ThreadStatus,
    /// Hosts the client may load images from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_image_domains: Option<Vec<String>>,
    /// Server-private data; never sent to the client.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl ThreadMetadata {
    /// A new active, untitled thread.
    pub fn new(id: impl Into<String>, created_at: Timestamp) -> Self {
        Self {
            title: None,
            id: id.into(),
            created_at,
            status: ThreadStatus::Active,
            allowed_image_domains: None,
            metadata: Map::new(),
        }
    }
}

/// Whether a thread accepts input (the client enforces it, the server does not).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThreadStatus {
    /// The normal state.
    #[default]
    Active,
    /// The composer is disabled and shows the reason.
    Locked {
        /// Why the thread is locked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The composer is replaced by a banner.
    Closed {
        /// Why the thread is closed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// A thread as sent on the wire: metadata plus a page of items.
///
/// Its `metadata` is always `{}` on the wire (the Python SDK never sends the
/// server-private metadata), which [`Thread::from_metadata`] guarantees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// The title, absent until set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The thread id.
    pub id: String,
    /// When the thread was created.
    pub created_at: Timestamp,
    /// Whether the composer is usable.
    #[serde(default)]
    pub status: ThreadStatus,
    /// Hosts the client may load images from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_image_domains: Option<Vec<String>>,
    /// Always empty on the wire.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// A page of the thread's visible items (empty except in `threads.get_by_id`).
    #[serde(default)]
    pub items: Page<ThreadItem>,
}

impl Thread {
    /// The wire form of `thread` with the given items and empty metadata.
    pub fn from_metadata(thread: &ThreadMetadata, items: Page<ThreadItem>) -> Self {
        Self {
            title: thread.title.clone(),
            id: thread.id.clone(),
            created_at: thread.created_at,
            status: thread.status.clone(),
            allowed_image_domains: thread.allowed_image_domains.clone(),
            metadata: Map::new(),
            items,
        }
    }
}

/// One page of a cursor-paginated list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The elements of this page.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// Whether more elements follow in the same order.
    #[serde(default)]
    pub has_more: bool,
    /// The cursor for the next page (the id of the last element), set only
    /// when `has_more` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            data: Vec::new(),
            has_more: false,
            after: None,
        }
    }
}

impl<T> Page<T> {
    /// An empty page.
    pub fn empty() -> Self {
        Self::default()
    }
}

/// Sort order of a paginated list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (ChatKit's default).
    #[default]
    Desc,
}

impl Order {
    /// `"asc"` or `"desc"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}
