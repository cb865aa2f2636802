//! The default engine, assembled from an [`EngineConfig`].

use super::{AgentResponder, ChatEngine};
use crate::agents::{RunConfig, Runner};
use crate::assistant::TaskAssistant;
use crate::auth::JwtVerifier;
use crate::config::EngineConfig;
use crate::error::Result;
use crate::models::{Dialect, Model, OpenAiCompatible, Paced, ScriptedModel};
use crate::store;
use crate::tools::ToolSet;
use crate::tools::tasks::task_tools;
use std::sync::Arc;
use std::time::Duration;

/// The model the configuration names: an OpenAI-compatible provider when an
/// API key is set, else the offline [`ScriptedModel`]; paced when
/// `dev_token_delay_ms` is set.
pub fn model_from_config(config: &EngineConfig) -> Result<Arc<dyn Model>> {
    let model = provider_model(config)?;
    if config.dev_token_delay_ms == 0 {
        return Ok(model);
    }
    Ok(Arc::new(Paced::new(
        model,
        Duration::from_millis(config.dev_token_delay_ms),
    )))
}

fn provider_model(config: &EngineConfig) -> Result<Arc<dyn Model>> {
    let Some(api_key) = &config.openai_api_key else {
        return Ok(Arc::new(ScriptedModel));
    };
    let base_url = config
        .openai_base_url
        .clone()
        .unwrap_or_else(|| "https://api.openai.com/v1".to_owned());
    let mut builder = OpenAiCompatible::builder(
        config
            .chat_model
            .clone()
            .unwrap_or_else(|| "gpt-4o-mini".to_owned()),
    )
    .base_url(base_url.clone())
    .api_key(api_key.clone())
    .dialect(Dialect::for_base_url(&base_url))
    .http2_prior_knowledge(config.openai_http2_prior_knowledge);
    for (name, value) in &config.model_headers {
        builder = builder.header(name.clone(), value.clone());
    }
    Ok(Arc::new(builder.build()?))
}

impl ChatEngine {
    /// The task assistant on the configured database, model and token
    /// verifier: what the `serve` example and the bindings run.
    ///
    /// ```
    /// # async fn demo() -> chatkit_engine::Result<()> {
    /// use chatkit_engine::{ChatEngine, EngineConfig};
    /// let config = EngineConfig { database_url: "sqlite::memory:".into(), ..EngineConfig::default() };
    /// let engine = ChatEngine::from_config(config).await?;
    /// assert_eq!(engine.model_name(), "scripted-offline");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn from_config(config: EngineConfig) -> Result<ChatEngine> {
        Self::from_config_with_tools(config, ToolSet::new()).await
    }

    /// [`ChatEngine::from_config`] with extra tools given to both agents next
    /// to the 7 task tools: the seam through which the bindings register
    /// host-language functions (Python callables, JS async functions) as
    /// tools. An extra tool with a task tool's name replaces that task tool.
    pub async fn from_config_with_tools(
        config: EngineConfig,
        extra: ToolSet,
    ) -> Result<ChatEngine> {
        config.validate()?;
        let stores = store::open_stores(&config.database_url).await?;
        let model = model_from_config(&config)?;
        let mut run = RunConfig::new(model);
        run.max_turns = config.max_turns;
        run.tool_timeout = Duration::from_secs(config.tool_timeout_secs);
        let mut tools = task_tools(Arc::clone(&stores.tasks));
        tools.extend(&extra);
        let assistant = TaskAssistant::new(tools);
        let responder = AgentResponder::task_assistant(Runner::new(run), assistant)
            .history_items(config.history_items);
        let verifier = JwtVerifier::from_config(&config).await?;
        let mut builder = ChatEngine::builder()
            .shared_store(stores.chat)
            .task_store(stores.tasks)
            .responder(responder)
            .config(config);
        if let Some(verifier) = verifier {
            builder = builder.verifier(verifier);
        }
        builder.build()
    }
}

impl ChatEngine {
    /// Runs one of the 7 task tools directly for `ctx`'s user, outside any
    /// chat turn: what a host's task REST routes call so that the UI and the
    /// assistant share one table and one set of validation rules. Returns the
    /// tool's `{"success": ..., "data" | "error": ...}` result.
    pub async fn run_task_tool(
        &self,
        name: &str,
        arguments: serde_json::Value,
        ctx: &crate::context::RequestContext,
    ) -> Result<serde_json::Value> {
        let store = self
            .task_store()
            .cloned()
            .ok_or_else(|| crate::Error::NotSupported("this engine has no task store".into()))?;
        let tools = task_tools(store);
        let tool = tools
            .get(name)
            .ok_or_else(|| crate::Error::not_found("tool", name))?;
        let tool_ctx = crate::tools::ToolContext {
            request: ctx.clone(),
            call_id: "host".to_owned(),
        };
        let output = tool.call(arguments, &tool_ctx).await?;
        Ok(output
            .structured
            .unwrap_or(serde_json::Value::String(output.content)))
    }
}
