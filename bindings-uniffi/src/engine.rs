//! The engine object and the request context record.
//!
//! | call | contract |
//! | --- | --- |
//! | `ChatEngine(config, tools)` | synchronous and cheap: checks the config and the tool definitions (`invalid_config`); opens nothing |
//! | `ChatEngine.fromJson(configJson, tools)` | the same from a JSON object of `EngineConfig` keys (what the Python and Node bindings take) |
//! | `start()` | opens the database (runs migrations) and the token verifier now; otherwise the first call does, once |
//! | `authenticate(authorization)` | the caller of an `Authorization` header value (`Bearer <JWT>`); `unauthorized`/token codes otherwise |
//! | `process(body, context)` | one ChatKit request: `ProcessResult.Json` or `ProcessResult.Stream`; errors before the first byte are thrown, later ones are `error` events in the stream |
//! | `runTaskTool(name, argumentsJson, context)` | one of the 7 task tools outside a chat turn (for a host's REST routes); its JSON envelope as text |
//! | `runningTurns()` | turns running now (a cancelled turn runs until its partial text is saved) |
//! | `modelName()` | the model answering, once started (`scripted-offline` without an API key) |
//!
//! Every `async` call runs on the binding's runtime (see `runtime.rs`);
//! cancelling the foreign call cancels the work. Releasing the engine (a
//! Kotlin `close()`, Swift's last reference, Python's garbage collector, on
//! whatever thread that happens) hands the database pools to the runtime to
//! drop there, never on a thread without one.

use crate::config::{EngineConfig, from_json_value};
use crate::error::ChatKitError;
use crate::response::ProcessResult;
use crate::runtime;
use crate::tools::{ForeignTool, HostTool};
use chatkit_engine::Error;
use chatkit_engine::todo::App;
use chatkit_engine::tools::ToolSet;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The caller of a request: what `authenticate` returns and `process`
/// takes. Hosts that authenticate requests themselves build one directly.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct RequestContext {
    /// The user id every store query and tool call is scoped to.
    pub user_id: String,
    /// The user's e-mail address, when known.
    #[uniffi(default)]
    pub email: Option<String>,
    /// The user's display name, when known.
    #[uniffi(default)]
    pub name: Option<String>,
    /// The client's locale, when the host passes it on.
    #[uniffi(default)]
    pub locale: Option<String>,
}

impl From<chatkit_engine::RequestContext> for RequestContext {
    fn from(ctx: chatkit_engine::RequestContext) -> Self {
        Self {
            user_id: ctx.user_id,
            email: ctx.email,
            name: ctx.name,
            locale: ctx.locale,
        }
    }
}

impl From<RequestContext> for chatkit_engine::RequestContext {
    fn from(ctx: RequestContext) -> Self {
        let mut core = Self::new(ctx.user_id);
        core.email = ctx.email;
        core.name = ctx.name;
        core.locale = ctx.locale;
        core
    }
}

/// The to-do app's ChatKit engine (`chatkit_engine::todo::App`) on the
/// configured database, model and token verifier.
#[derive(uniffi::Object)]
pub struct ChatEngine {
    config: chatkit_engine::EngineConfig,
    tools: ToolSet,
    app: Arc<OnceCell<App>>,
}

impl ChatEngine {
    fn with_core_config(
        config: chatkit_engine::EngineConfig,
        tools: Vec<Arc<dyn HostTool>>,
    ) -> Result<Arc<Self>, ChatKitError> {
        let mut set = ToolSet::new();
        for tool in tools {
            set.push(Arc::new(ForeignTool::new(tool)?));
        }
        Ok(Arc::new(Self {
            config,
            tools: set,
            app: Arc::new(OnceCell::new()),
        }))
    }

    /// Runs `call` with the app (built on first use) on the engine runtime.
    async fn with_app<T, F, Fut>(&self, call: F) -> Result<T, ChatKitError>
    where
        F: FnOnce(App) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ChatKitError>> + Send + 'static,
        T: Send + 'static,
    {
        let cell = Arc::clone(&self.app);
        let config = self.config.clone();
        let tools = self.tools.clone();
        runtime::run(async move {
            let app = cell
                .get_or_try_init(|| App::from_config_with_tools(config, tools))
                .await?
                .clone();
            call(app).await
        })
        .await
    }
}

impl Drop for ChatEngine {
    fn drop(&mut self) {
        let app = std::mem::take(&mut self.app);
        if let Ok(runtime) = runtime::runtime() {
            let (dropped, wait) = std::sync::mpsc::channel::<()>();
            runtime.spawn(async move {
                drop(app);
                let _ = dropped.send(());
            });
            // Wait (bounded) so that `self.tools`, dropped after this, holds
            // the last references to the host tools: their foreign handles
            // are then released on the caller's thread, never on a runtime
            // thread. A Python interpreter that is shutting down kills a
            // foreign thread that calls into it, which aborts the process.
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

#[uniffi::export]
impl ChatEngine {
    /// An engine for `config` with host `tools` given to both agents.
    #[uniffi::constructor(default(tools = []))]
    pub fn new(
        config: EngineConfig,
        tools: Vec<Arc<dyn HostTool>>,
    ) -> Result<Arc<Self>, ChatKitError> {
        Self::with_core_config(config.into_core()?, tools)
    }

    /// An engine from a JSON object of `EngineConfig` keys (as the Python
    /// and Node bindings take it).
    #[uniffi::constructor(default(tools = []))]
    pub fn from_json(
        config_json: String,
        tools: Vec<Arc<dyn HostTool>>,
    ) -> Result<Arc<Self>, ChatKitError> {
        let value = serde_json::from_str(&config_json)
            .map_err(|err| ChatKitError::from(Error::Config(err.to_string())))?;
        Self::with_core_config(from_json_value(value)?, tools)
    }

    /// Opens the database and the token verifier now.
    pub async fn start(&self) -> Result<(), ChatKitError> {
        self.with_app(|_| async { Ok(()) }).await
    }

    /// The model answering, once started.
    pub fn model_name(&self) -> Option<String> {
        self.app.get().map(|app| app.engine.model_name().to_owned())
    }

    /// How many turns are running right now.
    pub fn running_turns(&self) -> u32 {
        self.app.get().map_or(0, |app| {
            u32::try_from(app.engine.running_turns()).unwrap_or(u32::MAX)
        })
    }

    /// The caller of an `Authorization` header value.
    pub async fn authenticate(
        &self,
        authorization: Option<String>,
    ) -> Result<RequestContext, ChatKitError> {
        self.with_app(move |app| async move {
            let ctx = app.engine.authenticate(authorization.as_deref()).await?;
            Ok(ctx.into())
        })
        .await
    }

    /// Handles one ChatKit request body for `context`.
    pub async fn process(
        &self,
        body: Vec<u8>,
        context: RequestContext,
    ) -> Result<ProcessResult, ChatKitError> {
        self.with_app(move |app| async move {
            let response = app.engine.process(&body, context.into()).await?;
            Ok(response.into())
        })
        .await
    }

    /// Runs one of the 7 task tools for `context` and returns its JSON
    /// envelope (`{"success": ..., "data" | "error": ...}`) as text.
    pub async fn run_task_tool(
        &self,
        name: String,
        arguments_json: String,
        context: RequestContext,
    ) -> Result<String, ChatKitError> {
        let arguments: serde_json::Value = serde_json::from_str(&arguments_json)
            .map_err(|err| ChatKitError::from(Error::invalid(err)))?;
        self.with_app(move |app| async move {
            let result = app
                .assistant
                .run_task_tool(&name, arguments, &context.into())
                .await?;
            Ok(result.to_string())
        })
        .await
    }
}
