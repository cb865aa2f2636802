//! File and image attachments.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// An uploaded (or to-be-uploaded) file or image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The attachment id (`atc_...`).
    pub id: String,
    /// The original file name.
    pub name: String,
    /// Its MIME type.
    pub mime_type: String,
    /// Where the client uploads the bytes (two-phase upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_descriptor: Option<UploadDescriptor>,
    /// The thread it was sent in, once used in a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Server-private data. Stored, never serialized (the Python SDK strips it
    /// from every response).
    #[serde(skip_serializing, default)]
    pub metadata: Option<Map<String, Value>>,
    /// File or image.
    #[serde(flatten)]
    pub kind: AttachmentKind,
}

/// Whether an attachment is a plain file or an image with a preview.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A file.
    File {},
    /// An image.
    Image {
        /// A URL the client can fetch the preview from.
        preview_url: String,
    },
}

/// Where and how the client uploads an attachment's bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadDescriptor {
    /// The upload URL.
    pub url: String,
    /// `POST` or `PUT`.
    pub method: UploadMethod,
    /// Extra headers for the upload request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// HTTP method of an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadMethod {
    /// `POST`.
    #[serde(rename = "POST")]
    Post,
    /// `PUT`.
    #[serde(rename = "PUT")]
    Put,
}
