//! The ten requests answered with one JSON document.

use super::ChatEngine;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::protocol::{
    CustomActionParams, ItemKind, ItemsListParams, JsonRequest, ListParams, Order, Page, Thread,
    ThreadItem, json,
};
use bytes::Bytes;
use serde::Serialize;

/// Answers one JSON request for the caller in `ctx`.
pub(super) async fn handle(
    engine: &ChatEngine,
    request: JsonRequest,
    ctx: &RequestContext,
) -> Result<Bytes> {
    let store = engine.store();
    match request {
        JsonRequest::ThreadsGetById(params) => {
            let thread = store.load_thread(&params.thread_id, ctx).await?;
            let page = store
                .load_thread_items(
                    &thread.id,
                    None,
                    engine.config().default_page_size,
                    Order::Asc,
                    ctx,
                )
                .await?;
            to_json(&Thread::from_metadata(&thread, visible(page)))
        }
        JsonRequest::ThreadsList(ListParams {
            limit,
            order,
            after,
        }) => {
            let limit = engine.page_size(limit)?;
            let page = store
                .load_threads(limit, after.as_deref(), order, ctx)
                .await?;
            let threads = Page {
                data: page
                    .data
                    .iter()
                    .map(|thread| Thread::from_metadata(thread, Page::empty()))
                    .collect(),
                has_more: page.has_more,
                after: page.after,
            };
            to_json(&threads)
        }
        JsonRequest::ThreadsUpdate(params) => {
            // Length and NUL checks ran in `limits::check_request`.
            let title = params.title.trim();
            let mut thread = store.load_thread(&params.thread_id, ctx).await?;
            thread.title = Some(title.to_owned());
            store.save_thread(&thread, ctx).await?;
            to_json(&Thread::from_metadata(&thread, Page::empty()))
        }
        JsonRequest::ThreadsDelete(params) => {
            store.load_thread(&params.thread_id, ctx).await?;
            store.delete_thread(&params.thread_id, ctx).await?;
            Ok(empty_object())
        }
        JsonRequest::ItemsList(ItemsListParams {
            thread_id,
            limit,
            order,
            after,
        }) => {
            let limit = engine.page_size(limit)?;
            let page = store
                .load_thread_items(&thread_id, after.as_deref(), limit, order, ctx)
                .await?;
            to_json(&visible(page))
        }
        JsonRequest::ItemsFeedback(params) => {
            store
                .add_feedback(&params.thread_id, &params.item_ids, params.kind, ctx)
                .await?;
            Ok(empty_object())
        }
        JsonRequest::AttachmentsCreate(params) => {
            let attachments = engine.inner.attachments.as_ref().ok_or_else(|| {
                Error::NotSupported("attachments (no attachment store is configured)".into())
            })?;
            if params.name.trim().is_empty() {
                return Err(Error::invalid("params.name: an attachment needs a name"));
            }
            let attachment = attachments.create_attachment(&params, ctx).await?;
            store.save_attachment(&attachment, ctx).await?;
            to_json(&attachment)
        }
        JsonRequest::AttachmentsDelete(params) => {
            store.load_attachment(&params.attachment_id, ctx).await?;
            if let Some(attachments) = &engine.inner.attachments {
                attachments
                    .delete_attachment(&params.attachment_id, ctx)
                    .await?;
            }
            store.delete_attachment(&params.attachment_id, ctx).await?;
            Ok(empty_object())
        }
        JsonRequest::InputTranscribe(params) => {
            let audio = decode_base64(&params.audio_base64)
                .ok_or_else(|| Error::invalid("params.audio_base64: not valid standard base64"))?;
            let media_type = params
                .mime_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let text = engine
                .inner
                .responder
                .transcribe(&audio, &media_type, ctx)
                .await?;
            to_json(&serde_json::json!({ "text": text }))
        }
        JsonRequest::ThreadsSyncCustomAction(CustomActionParams {
            thread_id,
            item_id,
            action,
        }) => {
            let thread = store.load_thread(&thread_id, ctx).await?;
            let sender = match item_id {
                Some(item_id) => Some(load_widget(engine, &thread_id, &item_id, ctx).await?),
                None => None,
            };
            let updated = engine
                .inner
                .responder
                .sync_action(&thread, &action, sender.as_ref(), ctx)
                .await?;
            match updated {
                Some(mut item) => {
                    // Unlike the Python SDK, the engine persists the updated
                    // widget so a reload shows what the user saw.
                    item.thread_id.clone_from(&thread.id);
                    store.save_item(&thread.id, &item, ctx).await?;
                    to_json(&serde_json::json!({ "updated_item": item }))
                }
                None => Ok(empty_object()),
            }
        }
    }
}

/// Loads the widget item that sent an action; other item types are refused.
pub(super) async fn load_widget(
    engine: &ChatEngine,
    thread_id: &str,
    item_id: &str,
    ctx: &RequestContext,
) -> Result<ThreadItem> {
    let item = engine.store().load_item(thread_id, item_id, ctx).await?;
    if !matches!(item.kind, ItemKind::Widget(_)) {
        return Err(Error::invalid(format!(
            "item {item_id} is a {}, not a widget",
            item.type_name()
        )));
    }
    Ok(item)
}

impl ChatEngine {
    /// The page size for a list request: `null`/0 means the default, larger
    /// than the maximum is clamped, negative is refused.
    pub(super) fn page_size(&self, limit: Option<i64>) -> Result<usize> {
        let config = self.config();
        match limit {
            None | Some(0) => Ok(config.default_page_size),
            Some(n) if n < 0 => Err(Error::invalid(format!("params.limit: {n} is negative"))),
            Some(n) => Ok(usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(config.max_page_size)),
        }
    }
}

/// Drops hidden items after pagination, like the Python SDK.
fn visible(mut page: Page<ThreadItem>) -> Page<ThreadItem> {
    page.data.retain(|item| !item.is_hidden());
    page
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes> {
    json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| Error::Internal(format!("failed to serialize a response: {err}")))
}

fn empty_object() -> Bytes {
    Bytes::from_static(b"{}")
}

/// Decodes standard base64, with or without padding.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT_PADDING.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn decodes_standard_base64_with_and_without_padding() {
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert_eq!(decode_base64("YWI").unwrap(), b"ab");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("YW*j").is_none());
        assert!(decode_base64("Y").is_none());
    }
}
