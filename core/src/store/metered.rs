//! A [`Store`] wrapper that times every call into
//! `chatkit_store_query_duration_seconds` (see [`crate::telemetry`]).

use super::{ApprovalDecision, PendingApproval, Store, TurnUsage, UsageScope, UsageTotals};
use crate::context::RequestContext;
use crate::error::Result;
use crate::protocol::{Attachment, FeedbackKind, Order, Page, ThreadItem, ThreadMetadata};
use async_trait::async_trait;
use metrics::Histogram;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Times each call of the store it wraps; the engine wraps its store in one.
///
/// It forwards every method, those with a default body too: a default left
/// in place here would silently replace the wrapped store's own (a
/// PostgreSQL store's turn leases, say).
pub(crate) struct Metered {
    inner: Arc<dyn Store>,
    backend: &'static str,
    /// The histogram of each operation, registered on its first call: the
    /// `histogram!` macro would build and hash its key and look it up in the
    /// recorder's registry on every call (measured: metrics cost +3.9 % CPU
    /// per turn with the lookups, see docs/performance.md "Metrics cost").
    histograms: HashMap<&'static str, OnceLock<Histogram>>,
}

/// Every operation a [`Metered`] store times.
const OPERATIONS: [&str; 23] = [
    "ping",
    "load_thread",
    "save_thread",
    "load_threads",
    "delete_thread",
    "load_thread_items",
    "load_history_items",
    "add_thread_item",
    "save_item",
    "load_item",
    "delete_thread_item",
    "save_attachment",
    "load_attachment",
    "delete_attachment",
    "add_feedback",
    "load_feedback",
    "try_lease_turn",
    "renew_turn_lease",
    "release_turn_lease",
    "save_approval",
    "decide_approval",
    "record_turn_usage",
    "token_usage",
];

impl Metered {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        let backend = inner.backend();
        let histograms = OPERATIONS.iter().map(|op| (*op, OnceLock::new())).collect();
        Self {
            inner,
            backend,
            histograms,
        }
    }

    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        match self.histograms.get(op) {
            Some(cell) => cell
                .get_or_init(|| crate::telemetry::store_query_histogram(self.backend, op))
                .record(elapsed),
            None => crate::telemetry::store_query_histogram(self.backend, op).record(elapsed),
        }
        result
    }
}

#[async_trait]
impl Store for Metered {
    async fn load_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<ThreadMetadata> {
        self.timed("load_thread", self.inner.load_thread(thread_id, ctx))
            .await
    }

    async fn save_thread(&self, thread: &ThreadMetadata, ctx: &RequestContext) -> Result<()> {
        self.timed("save_thread", self.inner.save_thread(thread, ctx))
            .await
    }

    async fn load_threads(
        &self,
        limit: usize,
        after: Option<&str>,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadMetadata>> {
        self.timed(
            "load_threads",
            self.inner.load_threads(limit, after, order, ctx),
        )
        .await
    }

    async fn delete_thread(&self, thread_id: &str, ctx: &RequestContext) -> Result<()> {
        self.timed("delete_thread", self.inner.delete_thread(thread_id, ctx))
            .await
    }

    async fn load_thread_items(
        &self,
        thread_id: &str,
        after: Option<&str>,
        limit: usize,
        order: Order,
        ctx: &RequestContext,
    ) -> Result<Page<ThreadItem>> {
        self.timed(
            "load_thread_items",
            self.inner
                .load_thread_items(thread_id, after, limit, order, ctx),
        )
        .await
    }

    async fn load_history_items(
        &self,
        thread_id: &str,
        limit: usize,
        ctx: &RequestContext,
    ) -> Result<Vec<ThreadItem>> {
        self.timed(
            "load_history_items",
            self.inner.load_history_items(thread_id, limit, ctx),
        )
        .await
    }

    async fn add_thread_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.timed(
            "add_thread_item",
            self.inner.add_thread_item(thread_id, item, ctx),
        )
        .await
    }

    async fn save_item(
        &self,
        thread_id: &str,
        item: &ThreadItem,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.timed("save_item", self.inner.save_item(thread_id, item, ctx))
            .await
    }

    async fn load_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<ThreadItem> {
        self.timed("load_item", self.inner.load_item(thread_id, item_id, ctx))
            .await
    }

    async fn delete_thread_item(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.timed(
            "delete_thread_item",
            self.inner.delete_thread_item(thread_id, item_id, ctx),
        )
        .await
    }

    async fn save_attachment(&self, attachment: &Attachment, ctx: &RequestContext) -> Result<()> {
        self.timed(
            "save_attachment",
            self.inner.save_attachment(attachment, ctx),
        )
        .await
    }

    async fn load_attachment(
        &self,
        attachment_id: &str,
        ctx: &RequestContext,
    ) -> Result<Attachment> {
        self.timed(
            "load_attachment",
            self.inner.load_attachment(attachment_id, ctx),
        )
        .await
    }

    async fn delete_attachment(&self, attachment_id: &str, ctx: &RequestContext) -> Result<()> {
        self.timed(
            "delete_attachment",
            self.inner.delete_attachment(attachment_id, ctx),
        )
        .await
    }

    async fn add_feedback(
        &self,
        thread_id: &str,
        item_ids: &[String],
        kind: FeedbackKind,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.timed(
            "add_feedback",
            self.inner.add_feedback(thread_id, item_ids, kind, ctx),
        )
        .await
    }

    async fn load_feedback(
        &self,
        thread_id: &str,
        item_id: &str,
        ctx: &RequestContext,
    ) -> Result<Option<FeedbackKind>> {
        self.timed(
            "load_feedback",
            self.inner.load_feedback(thread_id, item_id, ctx),
        )
        .await
    }

    async fn save_approval(&self, approval: &PendingApproval, ctx: &RequestContext) -> Result<()> {
        self.timed("save_approval", self.inner.save_approval(approval, ctx))
            .await
    }

    async fn decide_approval(
        &self,
        approval_id: &str,
        decision: ApprovalDecision,
        ctx: &RequestContext,
    ) -> Result<Option<PendingApproval>> {
        self.timed(
            "decide_approval",
            self.inner.decide_approval(approval_id, decision, ctx),
        )
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.inner.ping()).await
    }

    fn shares_turn_leases(&self) -> bool {
        self.inner.shares_turn_leases()
    }

    async fn try_lease_turn(
        &self,
        thread_id: &str,
        owner: &str,
        ttl: Duration,
        ctx: &RequestContext,
    ) -> Result<bool> {
        self.timed(
            "try_lease_turn",
            self.inner.try_lease_turn(thread_id, owner, ttl, ctx),
        )
        .await
    }

    async fn renew_turn_lease(
        &self,
        thread_id: &str,
        owner: &str,
        ttl: Duration,
        ctx: &RequestContext,
    ) -> Result<bool> {
        self.timed(
            "renew_turn_lease",
            self.inner.renew_turn_lease(thread_id, owner, ttl, ctx),
        )
        .await
    }

    async fn release_turn_lease(
        &self,
        thread_id: &str,
        owner: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.timed(
            "release_turn_lease",
            self.inner.release_turn_lease(thread_id, owner, ctx),
        )
        .await
    }

    async fn record_turn_usage(&self, usage: &TurnUsage, ctx: &RequestContext) -> Result<()> {
        self.timed(
            "record_turn_usage",
            self.inner.record_turn_usage(usage, ctx),
        )
        .await
    }

    async fn token_usage(&self, scope: &UsageScope, ctx: &RequestContext) -> Result<UsageTotals> {
        self.timed("token_usage", self.inner.token_usage(scope, ctx))
            .await
    }

    fn backend(&self) -> &'static str {
        self.backend
    }
}
