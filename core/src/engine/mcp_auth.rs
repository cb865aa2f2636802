//! A [`ChatEngine`] checks the Bearer tokens of MCP HTTP requests with its
//! token verifier, so a host mounts `McpHttpService::new(tools, engine)`.

use super::ChatEngine;
use crate::context::RequestContext;
use crate::error::Result;
use crate::tools::mcp::Authenticator;
use async_trait::async_trait;

#[async_trait]
impl Authenticator for ChatEngine {
    async fn authenticate(&self, authorization: Option<&str>) -> Result<RequestContext> {
        ChatEngine::authenticate(self, authorization).await
    }
}
