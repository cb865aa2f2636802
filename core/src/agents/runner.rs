//! The run loop.

use super::Agent;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::models::{ChatMessage, Model, ModelEvent, ModelRequest, ModelResponse, ToolCall, Usage};
use crate::tools::{ToolContext, ToolOutput};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

/// Limits and defaults of a run.
#[derive(Clone)]
pub struct RunConfig {
    /// The model for agents without their own.
    pub model: Arc<dyn Model>,
    /// Model calls allowed in one run (the Agents SDK's default is 10).
    pub max_turns: usize,
    /// How many tool calls of one response run at once.
    pub tool_concurrency: usize,
    /// How long one tool call may take before the model is told it timed out.
    pub tool_timeout: Duration,
    /// Clear a forced `tool_choice` once the agent has used a tool, so it
    /// cannot loop forever.
    pub reset_tool_choice: bool,
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("model", &self.model.name())
            .field("max_turns", &self.max_turns)
            .field("tool_concurrency", &self.tool_concurrency)
            .field("tool_timeout", &self.tool_timeout)
            .finish()
    }
}

impl RunConfig {
    /// Defaults around `model`: 10 turns, 8 concurrent tools, 30 s per tool.
    pub fn new(model: Arc<dyn Model>) -> Self {
        Self {
            model,
            max_turns: 10,
            tool_concurrency: 8,
            tool_timeout: Duration::from_secs(30),
            reset_tool_choice: true,
        }
    }
}

/// What happens during a run, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    /// An agent takes over (at the start and after each handoff).
    AgentStarted {
        /// Its name.
        agent: String,
    },
    /// A fragment of the answer.
    TextDelta(String),
    /// A fragment of the provider's reasoning.
    ReasoningDelta(String),
    /// One model response finished; `text` is its whole visible text (may be
    /// empty when it only called tools).
    ResponseCompleted {
        /// The text.
        text: String,
        /// Whether the response asked for tools (so its text is not final).
        has_tool_calls: bool,
    },
    /// A tool is about to run (reported in call order).
    ToolStarted {
        /// The call.
        call: ToolCall,
    },
    /// A tool finished (reported in call order).
    ToolFinished {
        /// The call.
        call: ToolCall,
        /// What the model will see.
        output: ToolOutput,
        /// How long it ran.
        duration: Duration,
    },
    /// The conversation moved to another agent.
    Handoff {
        /// The agent handing off.
        from: String,
        /// The agent taking over.
        to: String,
    },
    /// The run finished with a final answer.
    Completed {
        /// The final text.
        output: String,
        /// The agent that produced it.
        last_agent: String,
        /// Tokens used by every model call of the run.
        usage: Usage,
    },
}

/// Runs agents.
#[derive(Clone, Debug)]
pub struct Runner {
    config: RunConfig,
}

impl Runner {
    /// A runner with this configuration.
    pub fn new(config: RunConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Starts a run of `agent` on `input` (the conversation so far, without
    /// a system message) for the caller in `ctx`.
    ///
    /// The run proceeds in its own task; dropping the returned stream
    /// cancels it.
    pub fn run_streamed(
        &self,
        agent: Arc<Agent>,
        input: Vec<ChatMessage>,
        ctx: RequestContext,
    ) -> RunStream {
        let (tx, rx) = mpsc::channel(64);
        let token = CancellationToken::new();
        let after_turn = Arc::new(AtomicBool::new(false));
        let run = Run {
            config: self.config.clone(),
            agent,
            items: input,
            ctx,
            tx,
            after_turn: Arc::clone(&after_turn),
            token: token.clone(),
        };
        let span = tracing::info_span!("agent.run");
        let task_token = token.clone();
        tokio::spawn(
            async move {
                let tx = run.tx.clone();
                let outcome = tokio::select! {
                    outcome = run.execute() => outcome,
                    () = task_token.cancelled() => Err(Error::Cancelled),
                };
                if let Err(err) = outcome {
                    let _ = tx.send(Box::new(Err(err))).await;
                }
            }
            .instrument(span),
        );
        RunStream {
            rx,
            token: token.clone(),
            after_turn,
            _guard: token.drop_guard(),
        }
    }
}

/// The events of a run. Dropping it cancels the run immediately.
pub struct RunStream {
    rx: mpsc::Receiver<Box<Result<RunEvent>>>,
    token: CancellationToken,
    after_turn: Arc<AtomicBool>,
    _guard: DropGuard,
}

impl std::fmt::Debug for RunStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStream").finish_non_exhaustive()
    }
}

impl RunStream {
    /// Stops the run now: the model stream and running tools are dropped.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Lets the current model call and its tools finish, then stops before
    /// the next turn (the stream then ends with [`Error::Cancelled`]).
    pub fn cancel_after_turn(&self) {
        self.after_turn.store(true, Ordering::SeqCst);
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Option<Result<RunEvent>> {
        self.rx.recv().await.map(|event| *event)
    }
}

impl Stream for RunStream {
    type Item = Result<RunEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|event| event.map(|event| *event))
    }
}

struct Run {
    config: RunConfig,
    agent: Arc<Agent>,
    items: Vec<ChatMessage>,
    ctx: RequestContext,
    /// Boxed so that the channel's up-front room for 32 events stays small
    /// while a run is open.
    tx: mpsc::Sender<Box<Result<RunEvent>>>,
    after_turn: Arc<AtomicBool>,
    token: CancellationToken,
}

/// Handoff calls are answered with this when a response holds several.
const EXTRA_HANDOFF_OUTPUT: &str = "Multiple handoffs detected, ignoring this one.";

impl Run {
    async fn emit(&self, event: RunEvent) -> Result<()> {
        self.tx
            .send(Box::new(Ok(event)))
            .await
            .map_err(|_| Error::Cancelled)
    }

    async fn execute(mut self) -> Result<()> {
        let mut usage = Usage::default();
        let mut used_tools = false;
        self.emit(RunEvent::AgentStarted {
            agent: self.agent.name().to_owned(),
        })
        .await?;
        let mut turn = 0;
        loop {
            turn += 1;
            if turn > self.config.max_turns {
                return Err(Error::MaxTurnsExceeded(self.config.max_turns));
            }
            if turn > 1 && self.after_turn.load(Ordering::SeqCst) {
                return Err(Error::Cancelled);
            }
            let agent = Arc::clone(&self.agent);
            let span = tracing::info_span!("agent.turn", turn, agent = agent.name());
            let response = self.call_model(&agent, used_tools).instrument(span).await?;
            if let Some(call_usage) = &response.usage {
                usage.add(call_usage);
            } else {
                usage.requests += 1;
            }
            let has_tool_calls = !response.tool_calls.is_empty();
            self.items.push(ChatMessage::Assistant {
                content: (!response.text.is_empty()).then(|| response.text.clone()),
                tool_calls: response.tool_calls.clone(),
                reasoning: response.reasoning.clone(),
            });
            self.emit(RunEvent::ResponseCompleted {
                text: response.text.clone(),
                has_tool_calls,
            })
            .await?;
            if !has_tool_calls {
                return self
                    .emit(RunEvent::Completed {
                        output: response.text,
                        last_agent: agent.name().to_owned(),
                        usage,
                    })
                    .await;
            }
            used_tools = true;
            let next_agent = self.run_calls(&agent, response.tool_calls).await?;
            if let Some(next) = next_agent {
                self.emit(RunEvent::Handoff {
                    from: agent.name().to_owned(),
                    to: next.name().to_owned(),
                })
                .await?;
                self.agent = next;
                used_tools = false;
                self.emit(RunEvent::AgentStarted {
                    agent: self.agent.name().to_owned(),
                })
                .await?;
            }
        }
    }

    async fn call_model(&self, agent: &Agent, used_tools: bool) -> Result<ModelResponse> {
        let mut messages = Vec::with_capacity(self.items.len() + 1);
        let system = agent.system_prompt(&self.ctx);
        if !system.is_empty() {
            messages.push(ChatMessage::System { content: system });
        }
        messages.extend(self.items.iter().cloned());
        let mut settings = agent.model_settings().clone();
        if self.config.reset_tool_choice && used_tools {
            settings.tool_choice = None;
        }
        let request = ModelRequest {
            messages,
            tools: agent.all_specs(),
            settings,
        };
        let model = agent.own_model().unwrap_or(&self.config.model);
        let mut stream = model.stream(request).await?;
        while let Some(event) = stream.next().await {
            match event? {
                ModelEvent::TextDelta(delta) => self.emit(RunEvent::TextDelta(delta)).await?,
                ModelEvent::ReasoningDelta(delta) => {
                    self.emit(RunEvent::ReasoningDelta(delta)).await?
                }
                ModelEvent::Completed(response) => return Ok(response),
            }
        }
        Err(Error::Model {
            message: format!("{} ended its stream without a response", model.name()),
            retryable: true,
        })
    }

    /// Runs the function calls of one response concurrently and records
    /// every output in call order; returns the agent to hand off to, if any.
    async fn run_calls(
        &mut self,
        agent: &Agent,
        calls: Vec<ToolCall>,
    ) -> Result<Option<Arc<Agent>>> {
        let mut handoff: Option<Arc<Agent>> = None;
        let mut outputs: Vec<Option<String>> = vec![None; calls.len()];
        let mut function_calls = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            if let Some(target) = agent.handoffs().iter().find(|a| a.tool_name() == call.name) {
                if handoff.is_none() {
                    handoff = Some(Arc::clone(target));
                    outputs[index] =
                        Some(serde_json::json!({ "assistant": target.name() }).to_string());
                } else {
                    outputs[index] = Some(EXTRA_HANDOFF_OUTPUT.to_owned());
                }
            } else {
                function_calls.push((index, call.clone()));
            }
        }
        for (_, call) in &function_calls {
            self.emit(RunEvent::ToolStarted { call: call.clone() })
                .await?;
        }
        let concurrency = self.config.tool_concurrency.max(1);
        let mut finished =
            futures::stream::iter(function_calls.into_iter().map(|(index, call)| {
                let tool = agent.tool_set().get(&call.name).cloned();
                let ctx = ToolContext {
                    request: self.ctx.clone(),
                    call_id: call.id.clone(),
                };
                let timeout = self.config.tool_timeout;
                let token = self.token.clone();
                async move {
                    let started = Instant::now();
                    let output = run_tool(tool, &call, &ctx, timeout, &token).await;
                    (index, call, output, started.elapsed())
                }
            }))
            .buffered(concurrency);
        while let Some((index, call, output, duration)) = finished.next().await {
            outputs[index] = Some(output.content.clone());
            self.emit(RunEvent::ToolFinished {
                call,
                output,
                duration,
            })
            .await?;
        }
        drop(finished);
        for (call, output) in calls.iter().zip(outputs) {
            self.items.push(ChatMessage::Tool {
                tool_call_id: call.id.clone(),
                content: output.unwrap_or_default(),
            });
        }
        Ok(handoff)
    }
}

/// Runs one call; every failure becomes text for the model.
async fn run_tool(
    tool: Option<Arc<dyn crate::tools::Tool>>,
    call: &ToolCall,
    ctx: &ToolContext,
    timeout: Duration,
    token: &CancellationToken,
) -> ToolOutput {
    let span = tracing::info_span!("tool.call", tool = %call.name, call_id = %call.id);
    async {
        let Some(tool) = tool else {
            return ToolOutput::error(format!("Tool {} not found. Use one of the tools you were given.", call.name));
        };
        let text = if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() };
        let arguments: serde_json::Value = match serde_json::from_str(text) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            Ok(_) => return ToolOutput::error("Tool arguments must be a JSON object."),
            Err(err) => return ToolOutput::error(format!("Tool arguments are not valid JSON: {err}")),
        };
        tokio::select! {
            result = tokio::time::timeout(timeout, tool.call(arguments, ctx)) => match result {
                Ok(Ok(output)) => output,
                Ok(Err(err)) => {
                    tracing::warn!(code = err.code(), error = %err, "tool failed");
                    ToolOutput::error(format!("An error occurred while running the tool. Please try again. Error: {}", err.user_message().unwrap_or_else(|| err.code().to_owned())))
                }
                Err(_) => ToolOutput::error(format!("The tool {} timed out after {} ms.", call.name, timeout.as_millis())),
            },
            () = token.cancelled() => ToolOutput::error("The run was cancelled."),
        }
    }
    .instrument(span)
    .await
}
