//! The run loop: a state machine (`Run`) that [`RunStream`] polls.

use super::Agent;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::models::{
    ChatMessage, Model, ModelEvent, ModelRequest, ModelResponse, ModelStream, ToolCall, Usage,
};
use crate::tools::{ToolContext, ToolOutput};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tracing::{Instrument, Span};

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
        /// The call's tokens: the provider's count, or an estimate
        /// ([`Usage::estimate`], flagged) when it reported none.
        usage: Usage,
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
    /// A tool that needs the user's confirmation was called: the run ends
    /// here, paused; [`Runner::resume`] with `paused` continues it.
    ApprovalRequired {
        /// The call waiting for the user.
        call: ToolCall,
        /// What the confirmation asks ([`crate::tools::Tool::approval_prompt`]).
        prompt: String,
        /// Everything needed to resume the run.
        paused: PausedRun,
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

/// A run paused on a tool call that waits for the user's confirmation:
/// serializable, so it can be stored and resumed by another process.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PausedRun {
    /// The agent whose call waits.
    pub agent: String,
    /// The conversation so far: it ends with the model's response that made
    /// the call, and the outputs of that response's other calls.
    pub items: Vec<ChatMessage>,
    /// The call waiting for the user.
    pub call: ToolCall,
    /// Model calls made so far (they count against the turn budget).
    pub turn: usize,
    /// Tokens used so far.
    pub usage: Usage,
}

/// The output the model sees for a call the user declined.
pub const DECLINED_OUTPUT: &str =
    "The user declined this action, so it was not carried out. Tell the user it was not done.";

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
    /// The run has no task of its own: it advances while the returned stream
    /// is polled (its model calls and tools included), and dropping the
    /// stream drops them.
    pub fn run_streamed(
        &self,
        agent: Arc<Agent>,
        input: Vec<ChatMessage>,
        ctx: RequestContext,
    ) -> RunStream {
        let run = Run {
            config: self.config.clone(),
            agent,
            items: input,
            ctx,
            usage: Usage::default(),
            model_call: None,
            used_tools: false,
            turn: 0,
            step: Step::AgentStarted,
        };
        let span = tracing::info_span!("agent.run");
        RunStream {
            state: Mutex::new(State::Running(Box::new(run), span)),
            after_turn: AtomicBool::new(false),
        }
    }

    /// Continues a paused run of `agent` (the agent named in `paused`)
    /// after the user answered: `approved` runs the waiting call, otherwise
    /// the model is told the user declined ([`DECLINED_OUTPUT`]). The run
    /// then goes on as if it had never paused.
    pub fn resume(
        &self,
        agent: Arc<Agent>,
        paused: PausedRun,
        approved: bool,
        ctx: RequestContext,
    ) -> RunStream {
        let mut run = Run {
            config: self.config.clone(),
            agent,
            items: paused.items,
            ctx,
            usage: paused.usage,
            model_call: None,
            used_tools: true,
            turn: paused.turn,
            step: Step::Done,
        };
        let decision = Decision {
            call_id: paused.call.id.clone(),
            approved,
        };
        run.step = Step::Tools(Box::new(run.tools(vec![paused.call], Some(decision))));
        let span = tracing::info_span!("agent.run", resumed = true, approved);
        RunStream {
            state: Mutex::new(State::Running(Box::new(run), span)),
            after_turn: AtomicBool::new(false),
        }
    }
}

/// The user's answer to a paused call.
struct Decision {
    call_id: String,
    approved: bool,
}

/// The events of a run, which advances only while this stream is polled.
/// Dropping it cancels the run immediately.
pub struct RunStream {
    /// `poll_next` reaches the run through `Mutex::get_mut`, without
    /// locking; the mutex is there so that `cancel(&self)` can drop the run
    /// at once (it never waits for a poll: none can be in progress while
    /// `&self` is borrowed).
    state: Mutex<State>,
    after_turn: AtomicBool,
}

enum State {
    /// The run and its `agent.run` span, entered while the run is polled.
    Running(Box<Run>, Span),
    /// Cancelled: the next poll reports [`Error::Cancelled`].
    Cancelled,
    /// Over: polls return `None`.
    Ended,
}

// Like the channel-backed stream it replaced, a run stream can be moved
// between tasks and shared by reference.
const _: fn() = || {
    fn assert_traits<T: Send + Sync + Unpin>() {}
    assert_traits::<RunStream>();
};

impl std::fmt::Debug for RunStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStream").finish_non_exhaustive()
    }
}

impl RunStream {
    /// Stops the run now: the model stream and running tools are dropped
    /// here, the next poll reports [`Error::Cancelled`] and the stream then
    /// ends.
    pub fn cancel(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(&*state, State::Running(run, _) if !matches!(run.step, Step::Done)) {
            let run = std::mem::replace(&mut *state, State::Cancelled);
            drop(state);
            // The model stream and the tools are dropped outside the lock.
            drop(run);
        }
    }

    /// Lets the current model call and its tools finish, then stops before
    /// the next turn (the stream then ends with [`Error::Cancelled`]).
    pub fn cancel_after_turn(&self) {
        self.after_turn.store(true, Ordering::SeqCst);
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Option<Result<RunEvent>> {
        self.next().await
    }
}

impl Stream for RunStream {
    type Item = Result<RunEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let state = this.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let polled = match state {
            State::Running(run, span) => {
                let _entered = span.enter();
                run.poll_event(cx, &this.after_turn)
            }
            State::Cancelled => {
                *state = State::Ended;
                return Poll::Ready(Some(Err(Error::Cancelled)));
            }
            State::Ended => return Poll::Ready(None),
        };
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            // Frees the run now rather than when the stream is dropped.
            *state = State::Ended;
        }
        polled
    }
}

// Why not async-stream: the same loop as its generator measured 1,888 bytes
// (`size_of_val`), held for the life of an open answer, against 312 for `Run`.
/// The run loop, as a state machine its stream polls.
///
/// Rules: `AgentStarted` first and after each handoff; at most
/// `max_turns` model calls; the text and reasoning deltas of a call, then
/// its `ResponseCompleted`; a response without tool calls ends the run with
/// `Completed`; otherwise a `ToolStarted` per function call, the calls run
/// concurrently (`tool_concurrency`) and report `ToolFinished` in call
/// order, the first handoff of the response is taken, and the next model
/// call sees every output. A stop asked with `cancel_after_turn` takes
/// effect before the next model call.
struct Run {
    config: RunConfig,
    agent: Arc<Agent>,
    items: Vec<ChatMessage>,
    ctx: RequestContext,
    /// Tokens used by the model calls so far.
    usage: Usage,
    /// The model call in progress, for its metrics.
    model_call: Option<ModelCallMetric>,
    /// Whether the current agent used a tool (its forced `tool_choice` is
    /// then cleared).
    used_tools: bool,
    /// Model calls made.
    turn: usize,
    step: Step,
}

/// Where a run is between two events.
enum Step {
    /// Report that `Run::agent` takes over, then call the model.
    AgentStarted,
    /// Call the model, unless the turn budget is spent or a stop was asked.
    CallModel,
    /// The model call is starting; with its `agent.turn` span.
    Connecting(BoxFuture<'static, Result<ModelStream>>, Span),
    /// The model's deltas, up to its response; with its `agent.turn` span.
    Streaming(ModelStream, Span),
    /// Report the final answer.
    Complete(String),
    /// The tool calls of the last response.
    Tools(Box<Tools>),
    /// Report the handoff to this agent, which then takes over.
    Handoff(Arc<Agent>),
    /// Over: completed or failed.
    Done,
}

/// Handoff calls are answered with this when a response holds several.
const EXTRA_HANDOFF_OUTPUT: &str = "Multiple handoffs detected, ignoring this one.";

impl Run {
    /// The next event, `None` at the end of the run.
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        after_turn: &AtomicBool,
    ) -> Poll<Option<Result<RunEvent>>> {
        loop {
            let event = match &mut self.step {
                Step::Done => return Poll::Ready(None),
                Step::AgentStarted => {
                    self.step = Step::CallModel;
                    RunEvent::AgentStarted {
                        agent: self.agent.name().to_owned(),
                    }
                }
                Step::CallModel => {
                    match self.call_model(after_turn) {
                        Ok(step) => self.step = step,
                        Err(err) => return self.fail(err),
                    }
                    continue;
                }
                Step::Connecting(call, span) => {
                    match ready!(span.in_scope(|| call.as_mut().poll(cx))) {
                        Ok(stream) => {
                            let span = std::mem::replace(span, Span::none());
                            self.step = Step::Streaming(stream, span);
                        }
                        Err(err) => return self.fail(err),
                    }
                    continue;
                }
                Step::Streaming(stream, span) => {
                    match ready!(span.in_scope(|| stream.poll_next_unpin(cx))) {
                        Some(Ok(ModelEvent::TextDelta(delta))) => RunEvent::TextDelta(delta),
                        Some(Ok(ModelEvent::ReasoningDelta(delta))) => {
                            RunEvent::ReasoningDelta(delta)
                        }
                        Some(Ok(ModelEvent::Completed(response))) => self.respond(response),
                        Some(Err(err)) => return self.fail(err),
                        None => {
                            let message = format!(
                                "{} ended its stream without a response",
                                self.model().name()
                            );
                            return self.fail(Error::Model {
                                message,
                                retryable: true,
                                source: None,
                            });
                        }
                    }
                }
                Step::Complete(output) => {
                    let output = std::mem::take(output);
                    self.step = Step::Done;
                    RunEvent::Completed {
                        output,
                        last_agent: self.agent.name().to_owned(),
                        usage: self.usage,
                    }
                }
                Step::Tools(tools) => match ready!(tools.poll_event(cx)) {
                    Some(event) => event,
                    None => {
                        if let Step::Tools(tools) =
                            std::mem::replace(&mut self.step, Step::CallModel)
                            && let Some(event) = self.record_outputs(*tools)
                        {
                            // Paused: the run ends here.
                            self.step = Step::Done;
                            return Poll::Ready(Some(Ok(event)));
                        }
                        continue;
                    }
                },
                Step::Handoff(next) => {
                    let next = Arc::clone(next);
                    let from = std::mem::replace(&mut self.agent, next);
                    self.used_tools = false;
                    self.step = Step::AgentStarted;
                    RunEvent::Handoff {
                        from: from.name().to_owned(),
                        to: self.agent.name().to_owned(),
                    }
                }
            };
            return Poll::Ready(Some(Ok(event)));
        }
    }

    fn fail(&mut self, err: Error) -> Poll<Option<Result<RunEvent>>> {
        self.step = Step::Done;
        if let Some(call) = self.model_call.take() {
            let outcome = if matches!(err, Error::Cancelled) {
                "cancelled"
            } else {
                "error"
            };
            call.finish(outcome, None);
        }
        Poll::Ready(Some(Err(err)))
    }

    /// The model of the current agent.
    fn model(&self) -> &Arc<dyn Model> {
        self.agent.own_model().unwrap_or(&self.config.model)
    }

    /// Starts the next model call.
    fn call_model(&mut self, after_turn: &AtomicBool) -> Result<Step> {
        self.turn += 1;
        if self.turn > self.config.max_turns {
            return Err(Error::MaxTurnsExceeded(self.config.max_turns));
        }
        if self.turn > 1 && after_turn.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        let agent = &self.agent;
        let span = tracing::info_span!("agent.turn", turn = self.turn, agent = agent.name());
        let request = span.in_scope(|| {
            let mut messages = Vec::with_capacity(self.items.len() + 1);
            let system = agent.system_prompt(&self.ctx);
            if !system.is_empty() {
                messages.push(ChatMessage::System { content: system });
            }
            messages.extend(self.items.iter().cloned());
            let mut settings = agent.model_settings().clone();
            if self.config.reset_tool_choice && self.used_tools {
                settings.tool_choice = None;
            }
            ModelRequest {
                messages,
                tools: agent.all_specs(),
                settings,
            }
        });
        let model = Arc::clone(self.model());
        self.model_call = Some(ModelCallMetric {
            provider: model.provider().to_owned(),
            started: Instant::now(),
            done: false,
        });
        let call = Box::pin(async move { model.stream(request).await });
        Ok(Step::Connecting(call, span))
    }

    /// Records a model response; returns its `ResponseCompleted` and sets
    /// what follows: the final answer, or the response's tool calls.
    fn respond(&mut self, response: ModelResponse) -> RunEvent {
        let call_usage = match response.usage {
            Some(usage) => usage,
            None => Usage::estimate(&self.items, &response),
        };
        self.usage.add(&call_usage);
        if let Some(call) = self.model_call.take() {
            call.finish("ok", Some(&call_usage));
        }
        let has_tool_calls = !response.tool_calls.is_empty();
        self.items.push(ChatMessage::Assistant {
            content: (!response.text.is_empty()).then(|| response.text.clone()),
            tool_calls: response.tool_calls.clone(),
            reasoning: response.reasoning,
        });
        if has_tool_calls {
            self.used_tools = true;
            self.step = Step::Tools(Box::new(self.tools(response.tool_calls, None)));
        } else {
            self.step = Step::Complete(response.text.clone());
        }
        RunEvent::ResponseCompleted {
            text: response.text,
            has_tool_calls,
            usage: call_usage,
        }
    }

    /// Sorts the calls of one response into handoffs (the first one is
    /// taken) and function calls, which run concurrently once polled. A
    /// call that needs approval is not run: the first one pauses the run
    /// (unless `decision` answers it), later ones are told to wait.
    fn tools(&self, calls: Vec<ToolCall>, decision: Option<Decision>) -> Tools {
        let mut handoff: Option<Arc<Agent>> = None;
        let mut outputs: Vec<Option<String>> = vec![None; calls.len()];
        let mut function_calls = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            let target = self
                .agent
                .handoffs()
                .iter()
                .find(|a| a.tool_name() == call.name);
            if let Some(target) = target {
                outputs[index] = Some(if handoff.is_none() {
                    handoff = Some(Arc::clone(target));
                    serde_json::json!({ "assistant": target.name() }).to_string()
                } else {
                    EXTRA_HANDOFF_OUTPUT.to_owned()
                });
            } else {
                function_calls.push((index, call.clone()));
            }
        }
        let to_start: Vec<ToolCall> = function_calls
            .iter()
            .map(|(_, call)| call.clone())
            .collect();
        let agent = Arc::clone(&self.agent);
        let request = self.ctx.clone();
        let timeout = self.config.tool_timeout;
        let mut asked = false;
        let plans: Vec<(usize, ToolCall, Plan)> = function_calls
            .into_iter()
            .map(|(index, call)| {
                let plan = match &decision {
                    Some(d) if d.call_id == call.id && d.approved => Plan::Run,
                    Some(d) if d.call_id == call.id => Plan::Declined,
                    _ if agent.tool_set().needs_approval(&call.name) => {
                        if asked {
                            Plan::Wait
                        } else {
                            asked = true;
                            Plan::Ask
                        }
                    }
                    _ => Plan::Run,
                };
                (index, call, plan)
            })
            .collect();
        let finished = futures::stream::iter(plans)
            .map(move |(index, call, plan)| {
                let tool = agent.tool_set().get(&call.name).cloned();
                let ctx = ToolContext {
                    request: request.clone(),
                    call_id: call.id.clone(),
                };
                async move {
                    let started = Instant::now();
                    let prompt = match (&plan, &tool) {
                        (Plan::Ask, Some(tool)) => {
                            let arguments = serde_json::from_str(&call.arguments)
                                .unwrap_or(serde_json::Value::Null);
                            tool.approval_prompt(&arguments, &ctx).await
                        }
                        _ => None,
                    };
                    // Names the model made up share one label (bounded label
                    // values).
                    let label = if tool.is_some() {
                        call.name.clone()
                    } else {
                        "unknown".to_owned()
                    };
                    let outcome = match (plan, tool) {
                        (Plan::Ask, _) if prompt.is_some() => {
                            Outcome::Ask(prompt.unwrap_or_default())
                        }
                        (Plan::Wait, _) => Outcome::Ran(ToolOutput::error(
                            "Not run: another action is waiting for the user's confirmation. Ask again after it.",
                        )),
                        (Plan::Declined, _) => Outcome::Ran(ToolOutput::text(DECLINED_OUTPUT)),
                        (_, tool) => {
                            let output = run_tool(tool, &call, &ctx, timeout).await;
                            crate::telemetry::tool_call(&label, !output.is_error, started.elapsed());
                            Outcome::Ran(output)
                        }
                    };
                    (index, call, outcome, started.elapsed())
                }
            })
            .buffered(self.config.tool_concurrency.max(1))
            .boxed();
        Tools {
            calls,
            outputs,
            handoff,
            to_start: to_start.into_iter(),
            finished,
            waiting: None,
        }
    }

    /// Adds every output of a response's calls to the conversation, in call
    /// order, and takes its handoff; or, when a call waits for the user,
    /// pauses the run and returns the `ApprovalRequired` event.
    fn record_outputs(&mut self, tools: Tools) -> Option<RunEvent> {
        let waiting_id = tools.waiting.as_ref().map(|(call, _)| call.id.clone());
        for (call, output) in tools.calls.into_iter().zip(tools.outputs) {
            if Some(&call.id) == waiting_id.as_ref() {
                continue;
            }
            self.items.push(ChatMessage::Tool {
                tool_call_id: call.id,
                content: output.unwrap_or_default(),
            });
        }
        if let Some((call, prompt)) = tools.waiting {
            tracing::info!(tool = %call.name, call_id = %call.id, "run paused for the user's confirmation");
            let paused = PausedRun {
                agent: self.agent.name().to_owned(),
                items: std::mem::take(&mut self.items),
                call: call.clone(),
                turn: self.turn,
                usage: self.usage,
            };
            return Some(RunEvent::ApprovalRequired {
                call,
                prompt,
                paused,
            });
        }
        if let Some(next) = tools.handoff {
            self.step = Step::Handoff(next);
        }
        None
    }
}

/// Times one model call; a call dropped before it ended counts as
/// `cancelled`.
struct ModelCallMetric {
    provider: String,
    started: Instant,
    done: bool,
}

impl ModelCallMetric {
    fn finish(mut self, outcome: &'static str, usage: Option<&Usage>) {
        self.done = true;
        crate::telemetry::model_call(
            &self.provider,
            outcome,
            self.started.elapsed(),
            usage.map(|u| (u.input_tokens, u.output_tokens)),
        );
    }
}

impl Drop for ModelCallMetric {
    fn drop(&mut self) {
        if !self.done {
            crate::telemetry::model_call(&self.provider, "cancelled", self.started.elapsed(), None);
        }
    }
}

/// The tool calls of one response: a `ToolStarted` per function call, in
/// call order, before any runs; then their `ToolFinished` in the same order
/// while they run concurrently.
struct Tools {
    /// Every call of the response, handoffs included.
    calls: Vec<ToolCall>,
    /// What the model will see for each call.
    outputs: Vec<Option<String>>,
    /// The first handoff of the response.
    handoff: Option<Arc<Agent>>,
    /// Function calls whose `ToolStarted` is still to be reported.
    to_start: std::vec::IntoIter<ToolCall>,
    /// The function calls (index, call, outcome, duration), in call order.
    finished: BoxStream<'static, (usize, ToolCall, Outcome, Duration)>,
    /// The call that waits for the user, with its prompt.
    waiting: Option<(ToolCall, String)>,
}

/// What to do with one function call.
enum Plan {
    Run,
    Ask,
    Wait,
    Declined,
}

/// What became of one function call.
enum Outcome {
    Ran(ToolOutput),
    Ask(String),
}

impl Tools {
    /// The next `ToolStarted` or `ToolFinished`, `None` when all finished.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<RunEvent>> {
        if let Some(call) = self.to_start.next() {
            return Poll::Ready(Some(RunEvent::ToolStarted { call }));
        }
        loop {
            match ready!(self.finished.poll_next_unpin(cx)) {
                None => return Poll::Ready(None),
                Some((_, call, Outcome::Ask(prompt), _)) => {
                    self.waiting = Some((call, prompt));
                }
                Some((index, call, Outcome::Ran(output), duration)) => {
                    if let Some(slot) = self.outputs.get_mut(index) {
                        *slot = Some(output.content.clone());
                    }
                    return Poll::Ready(Some(RunEvent::ToolFinished {
                        call,
                        output,
                        duration,
                    }));
                }
            }
        }
    }
}

/// Runs one call; every failure becomes text for the model.
async fn run_tool(
    tool: Option<Arc<dyn crate::tools::Tool>>,
    call: &ToolCall,
    ctx: &ToolContext,
    timeout: Duration,
) -> ToolOutput {
    let span = tracing::info_span!("tool.call", tool = %call.name, call_id = %call.id);
    async {
        let Some(tool) = tool else {
            return ToolOutput::error(format!(
                "Tool {} not found. Use one of the tools you were given.",
                call.name
            ));
        };
        let text = if call.arguments.trim().is_empty() {
            "{}"
        } else {
            call.arguments.as_str()
        };
        let arguments: serde_json::Value = match serde_json::from_str(text) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            Ok(_) => return ToolOutput::error("Tool arguments must be a JSON object."),
            Err(err) => {
                return ToolOutput::error(format!("Tool arguments are not valid JSON: {err}"));
            }
        };
        match tokio::time::timeout(timeout, tool.call(arguments, ctx)).await {
            Ok(Ok(output)) => output,
            Ok(Err(err)) => {
                tracing::warn!(code = err.code(), error = %err, "tool failed");
                ToolOutput::error(format!(
                    "An error occurred while running the tool. Please try again. Error: {}",
                    err.user_message().unwrap_or_else(|| err.code().to_owned())
                ))
            }
            Err(_) => ToolOutput::error(format!(
                "The tool {} timed out after {} ms.",
                call.name,
                timeout.as_millis()
            )),
        }
    }
    .instrument(span)
    .await
}
