//! The engine class.

use crate::actions::{JsActionHandler, NativeAction};
use crate::response::NativeResponse;
use crate::tools::{JsTool, NativeTool};
use crate::{RequestContext, to_js_error};
use chatkit_engine::engine::ActionHandlers;
use chatkit_engine::todo::App;
use chatkit_engine::tools::ToolSet;
use chatkit_engine::{EngineConfig, Error};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

/// One to-do app (`chatkit_engine::todo::App`: the engine answering with the
/// task assistant on the configured store, model and token verifier).
/// Create it with [`create_engine`].
#[napi]
pub struct NativeEngine {
    inner: App,
}

/// Builds an engine from `configJson` (a JSON object with the core's
/// snake_case `EngineConfig` fields; unknown keys are an `invalid_config`
/// error), extra JS `tools` given to both agents and JS widget `actions`
/// handlers.
#[napi]
pub async fn create_engine(
    config_json: String,
    tools: Vec<NativeTool>,
    actions: Option<Vec<NativeAction>>,
) -> napi::Result<NativeEngine> {
    let config: EngineConfig = serde_json::from_str(&config_json)
        .map_err(|err| to_js_error(Error::Config(err.to_string())))?;
    let mut extra = ToolSet::new();
    for tool in tools {
        extra.push(std::sync::Arc::new(JsTool::new(tool).map_err(to_js_error)?));
    }
    let mut handlers = ActionHandlers::new();
    for action in actions.unwrap_or_default() {
        let (kind, handler) = JsActionHandler::new(action).map_err(to_js_error)?;
        handlers.push(kind, std::sync::Arc::new(handler));
    }
    let inner = App::from_config_with_extensions(config, extra, handlers)
        .await
        .map_err(to_js_error)?;
    Ok(NativeEngine { inner })
}

#[napi]
impl NativeEngine {
    /// The name of the model answering (`scripted-offline` without an API
    /// key).
    #[napi(getter)]
    pub fn model_name(&self) -> String {
        self.inner.engine.model_name().to_owned()
    }

    /// Whether Bearer tokens can be verified (a JWKS or secret is set).
    #[napi(getter)]
    pub fn has_verifier(&self) -> bool {
        self.inner.engine.has_verifier()
    }

    /// The largest request body the engine accepts (`max_body_bytes`); a
    /// host stops reading a body past it.
    #[napi(getter)]
    pub fn max_body_bytes(&self) -> f64 {
        // A JS number holds any realistic limit exactly (below 2^53).
        self.inner.engine.config().max_body_bytes as f64
    }

    /// How many turns are running right now (a cancelled turn runs until
    /// its partial text is saved).
    #[napi(getter)]
    pub fn running_turns(&self) -> u32 {
        u32::try_from(self.inner.engine.running_turns()).unwrap_or(u32::MAX)
    }

    /// The caller of an `Authorization` header value (`Bearer <JWT>`);
    /// rejects with `unauthorized` when it is missing or does not verify.
    #[napi]
    pub async fn authenticate(
        &self,
        authorization: Option<String>,
    ) -> napi::Result<RequestContext> {
        let engine = self.inner.engine.clone();
        engine
            .authenticate(authorization.as_deref())
            .await
            .map(RequestContext::from)
            .map_err(to_js_error)
    }

    /// Runs one of the 7 task tools for `context` outside any chat turn (for
    /// a host's task REST routes) and returns its JSON result text
    /// (`{"success": ..., "data" | "error": ...}`).
    #[napi]
    pub async fn run_task_tool(
        &self,
        name: String,
        arguments_json: String,
        context: RequestContext,
    ) -> napi::Result<String> {
        let arguments: serde_json::Value = serde_json::from_str(&arguments_json)
            .map_err(|err| to_js_error(Error::invalid(err)))?;
        let assistant = self.inner.assistant.clone();
        assistant
            .run_task_tool(&name, arguments, &context.into())
            .await
            .map(|result| result.to_string())
            .map_err(to_js_error)
    }

    /// This process's metrics in the Prometheus text format (every engine
    /// of the process shares one recorder); throws `invalid_config` when
    /// metrics are off.
    #[napi]
    pub fn metrics(&self) -> napi::Result<String> {
        self.inner.engine.metrics_text().map_err(to_js_error)
    }

    /// The caller's token usage (today, overall, and for `threadId`) as
    /// JSON text.
    #[napi]
    pub async fn token_usage(
        &self,
        context: RequestContext,
        thread_id: Option<String>,
    ) -> napi::Result<String> {
        let engine = self.inner.engine.clone();
        let report = engine
            .token_usage(&context.into(), thread_id.as_deref())
            .await
            .map_err(to_js_error)?;
        serde_json::to_string(&report).map_err(|err| to_js_error(Error::Internal(err.to_string())))
    }

    /// Authenticates and processes in one crossing: the caller is
    /// `context` when the host gives one, else the verified `authorization`
    /// header value (`Bearer <JWT>`). Rejections are the same as
    /// `authenticate`'s and `process`'s.
    #[napi]
    pub async fn handle(
        &self,
        authorization: Option<String>,
        body: Buffer,
        context: Option<RequestContext>,
    ) -> napi::Result<NativeResponse> {
        let engine = self.inner.engine.clone();
        let body = body.to_vec();
        let context = match context {
            Some(context) => context.into(),
            None => engine
                .authenticate(authorization.as_deref())
                .await
                .map_err(to_js_error)?,
        };
        let response = engine.process(&body, context).await.map_err(to_js_error)?;
        Ok(NativeResponse::new(response))
    }

    /// Handles one ChatKit request body for `context`. Rejections happened
    /// before any byte was streamed (map them to HTTP with the error's
    /// status); later failures are `error` events inside the stream.
    #[napi]
    pub async fn process(
        &self,
        body: Buffer,
        context: RequestContext,
    ) -> napi::Result<NativeResponse> {
        let engine = self.inner.engine.clone();
        let body = body.to_vec();
        let response = engine
            .process(&body, context.into())
            .await
            .map_err(to_js_error)?;
        Ok(NativeResponse::new(response))
    }
}
