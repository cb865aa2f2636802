//! Two-phase attachment uploads: where the bytes go is the host's business.

use crate::context::RequestContext;
use crate::error::Result;
use crate::protocol::{
    Attachment, AttachmentKind, AttachmentsCreateParams, IdKind, UploadDescriptor, UploadMethod,
    new_id,
};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Allocates attachments and deletes their bytes. The engine stores the
/// attachment metadata itself (through the [`Store`](crate::store::Store)).
#[async_trait]
pub trait AttachmentStore: Send + Sync + 'static {
    /// Phase one of a two-phase upload: a new attachment with the
    /// descriptor the client will upload its bytes to.
    async fn create_attachment(
        &self,
        params: &AttachmentsCreateParams,
        ctx: &RequestContext,
    ) -> Result<Attachment>;

    /// Deletes the attachment's bytes (the engine deletes the metadata).
    async fn delete_attachment(&self, attachment_id: &str, ctx: &RequestContext) -> Result<()>;
}

/// Hands out upload and preview URLs under one base URL, for hosts that serve
/// `POST {base}/{id}/upload` and `GET {base}/{id}/preview` themselves.
#[derive(Clone, Debug)]
pub struct UploadUrls {
    base_url: String,
}

impl UploadUrls {
    /// Uses `base_url` (e.g. `https://app.example.com/attachments`).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
        }
    }
}

#[async_trait]
impl AttachmentStore for UploadUrls {
    async fn create_attachment(
        &self,
        params: &AttachmentsCreateParams,
        _ctx: &RequestContext,
    ) -> Result<Attachment> {
        let id = new_id(IdKind::Attachment);
        let kind = if params.mime_type.starts_with("image/") {
            AttachmentKind::Image {
                preview_url: format!("{}/{id}/preview", self.base_url),
            }
        } else {
            AttachmentKind::File {}
        };
        Ok(Attachment {
            upload_descriptor: Some(UploadDescriptor {
                url: format!("{}/{id}/upload", self.base_url),
                method: UploadMethod::Post,
                headers: BTreeMap::new(),
            }),
            id,
            name: params.name.clone(),
            mime_type: params.mime_type.clone(),
            thread_id: None,
            metadata: None,
            kind,
        })
    }

    async fn delete_attachment(&self, _attachment_id: &str, _ctx: &RequestContext) -> Result<()> {
        Ok(())
    }
}
