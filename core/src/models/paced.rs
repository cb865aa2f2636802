//! A model wrapper that slows another model down, for demos and tests.

use super::{Model, ModelRequest, ModelStream};
use crate::error::Result;
use async_trait::async_trait;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Waits `delay` before each event of the wrapped model.
///
/// With the instant offline [`ScriptedModel`](super::ScriptedModel) this makes
/// streaming (and a user stopping a long answer) watchable at human speed.
/// It is a development aid: production models pace themselves.
#[derive(Clone)]
pub struct Paced {
    inner: Arc<dyn Model>,
    delay: Duration,
}

impl std::fmt::Debug for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced")
            .field("model", &self.inner.name())
            .field("delay", &self.delay)
            .finish()
    }
}

impl Paced {
    /// Wraps `inner`, pausing `delay` before each of its events.
    pub fn new(inner: Arc<dyn Model>, delay: Duration) -> Self {
        Self { inner, delay }
    }
}

#[async_trait]
impl Model for Paced {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn provider(&self) -> &str {
        self.inner.provider()
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream> {
        let delay = self.delay;
        let events = self.inner.stream(request).await?;
        Ok(Box::pin(events.then(move |event| async move {
            tokio::time::sleep(delay).await;
            event
        })))
    }
}
