//! The run loop's semantics (Agents SDK), with a replayed model standing in
//! for the LLM provider.

use async_trait::async_trait;
use chatkit_engine::agents::{Agent, RunConfig, RunEvent, Runner};
use chatkit_engine::models::{
    ChatMessage, FinishReason, Model, ModelEvent, ModelRequest, ModelResponse, ModelStream,
    ToolCall, ToolChoice, Usage,
};
use chatkit_engine::tools::{Tool, ToolContext, ToolOutput, ToolSet};
use chatkit_engine::{Error, RequestContext, Result};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Replays one response per call and records every request.
#[derive(Default)]
struct Replay {
    responses: Mutex<Vec<ModelResponse>>,
    requests: Mutex<Vec<ModelRequest>>,
}

impl Replay {
    fn new(responses: Vec<ModelResponse>) -> Arc<Self> {
        Arc::new(Self {
            responses: Mutex::new(responses.into_iter().rev().collect()),
            requests: Mutex::default(),
        })
    }

    fn requests(&self) -> Vec<ModelRequest> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait]
impl Model for Replay {
    fn name(&self) -> &str {
        "replay"
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream> {
        self.requests.lock().unwrap().push(request);
        let response = self
            .responses
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| text("(out of script)"));
        let mut events: Vec<Result<ModelEvent>> = response
            .text
            .split_inclusive(' ')
            .map(|w| Ok(ModelEvent::TextDelta(w.to_owned())))
            .collect();
        events.push(Ok(ModelEvent::Completed(response)));
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

fn text(text: &str) -> ModelResponse {
    ModelResponse {
        text: text.into(),
        usage: Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            requests: 1,
            ..Usage::default()
        }),
        ..ModelResponse::default()
    }
}

fn calls(calls: &[(&str, &str, &str)]) -> ModelResponse {
    ModelResponse {
        tool_calls: calls
            .iter()
            .map(|(id, name, args)| ToolCall {
                id: (*id).into(),
                name: (*name).into(),
                arguments: (*args).into(),
            })
            .collect(),
        finish_reason: FinishReason::ToolCalls,
        ..ModelResponse::default()
    }
}

/// Sleeps for `ms` from its arguments, then echoes them with the caller.
struct Sleepy;

#[async_trait]
impl Tool for Sleepy {
    fn name(&self) -> &str {
        "sleepy"
    }
    fn description(&self) -> &str {
        "Sleeps, then echoes."
    }
    fn parameters(&self) -> Value {
        json!({"type":"object","properties":{"ms":{"type":"integer"}}})
    }
    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<ToolOutput> {
        let ms = arguments["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if arguments["fail"] == json!(true) {
            return Err(Error::Internal("boom".into()));
        }
        Ok(ToolOutput::text(format!(
            "slept {ms} for {}",
            ctx.user_id()
        )))
    }
}

fn runner(model: Arc<Replay>) -> Runner {
    Runner::new(RunConfig::new(model))
}

async fn events(runner: &Runner, agent: Agent) -> (Vec<RunEvent>, Option<Error>) {
    let mut stream = runner.run_streamed(
        Arc::new(agent),
        vec![ChatMessage::User {
            content: "hi".into(),
        }],
        RequestContext::new("alice"),
    );
    let mut out = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => out.push(event),
            Err(err) => return (out, Some(err)),
        }
    }
    (out, None)
}

fn tool_messages(request: &ModelRequest) -> Vec<(String, String)> {
    request
        .messages
        .iter()
        .filter_map(|m| match m {
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => Some((tool_call_id.clone(), content.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_text_response_without_tool_calls_is_the_final_output() {
    let model = Replay::new(vec![text("Hello there")]);
    let (events, error) = events(
        &runner(model.clone()),
        Agent::new("Helper").instructions("Be kind."),
    )
    .await;
    assert!(error.is_none());
    assert_eq!(
        events.first(),
        Some(&RunEvent::AgentStarted {
            agent: "Helper".into()
        })
    );
    match events.last() {
        Some(RunEvent::Completed {
            output,
            last_agent,
            usage,
        }) => {
            assert_eq!(
                (output.as_str(), last_agent.as_str()),
                ("Hello there", "Helper")
            );
            assert_eq!(usage.requests, 1);
            assert_eq!(usage.input_tokens, 10);
        }
        other => panic!("{other:?}"),
    }
    let request = &model.requests()[0];
    assert_eq!(
        request.messages[0],
        ChatMessage::System {
            content: "Be kind.".into()
        }
    );
}

#[tokio::test]
async fn tool_calls_of_one_response_run_concurrently_and_report_in_call_order() {
    let model = Replay::new(vec![
        calls(&[
            ("c1", "sleepy", r#"{"ms":150}"#),
            ("c2", "sleepy", r#"{"ms":1}"#),
        ]),
        text("done"),
    ]);
    let agent = Agent::new("A").tools(ToolSet::new().with(Sleepy));
    let (events, error) = events(&runner(model.clone()), agent).await;
    assert!(error.is_none(), "{error:?}");
    let finished: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ToolFinished { call, .. } => Some(call.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        ["c1", "c2"],
        "reported in call order although c2 finished first"
    );
    let second = &model.requests()[1];
    assert_eq!(
        tool_messages(second),
        [
            ("c1".to_owned(), "slept 150 for alice".to_owned()),
            ("c2".to_owned(), "slept 1 for alice".to_owned())
        ]
    );
    // The assistant turn with both calls precedes their outputs.
    assert!(
        matches!(&second.messages[1], ChatMessage::Assistant { tool_calls, .. } if tool_calls.len() == 2)
    );
}

#[tokio::test]
async fn failures_unknown_tools_bad_arguments_and_timeouts_go_back_to_the_model_as_text() {
    let model = Replay::new(vec![
        calls(&[
            ("c1", "nope", "{}"),
            ("c2", "sleepy", "not json"),
            ("c3", "sleepy", r#"{"fail":true}"#),
            ("c4", "sleepy", r#"{"ms":5000}"#),
            ("c5", "sleepy", ""),
        ]),
        text("recovered"),
    ]);
    let agent = Agent::new("A").tools(ToolSet::new().with(Sleepy));
    let mut config = RunConfig::new(model.clone());
    config.tool_timeout = Duration::from_millis(100);
    let (events, error) = events(&Runner::new(config), agent).await;
    assert!(error.is_none(), "{error:?}");
    let outputs = tool_messages(&model.requests()[1]);
    assert!(outputs[0].1.contains("Tool nope not found"), "{outputs:?}");
    assert!(outputs[1].1.contains("not valid JSON"));
    assert!(
        outputs[2]
            .1
            .contains("An error occurred while running the tool")
    );
    assert!(outputs[3].1.contains("timed out"));
    assert_eq!(
        outputs[4].1, "slept 0 for alice",
        "empty arguments mean {{}}"
    );
    let errors = events
        .iter()
        .filter(|e| matches!(e, RunEvent::ToolFinished { output, .. } if output.is_error))
        .count();
    assert_eq!(errors, 4);
}

#[tokio::test]
async fn the_turn_budget_ends_in_a_clear_error_before_the_extra_call() {
    let looping: Vec<ModelResponse> = (0..5)
        .map(|i| calls(&[(&format!("c{i}"), "sleepy", "{}")]))
        .collect();
    let model = Replay::new(looping);
    let mut config = RunConfig::new(model.clone());
    config.max_turns = 2;
    let (_, error) = events(
        &Runner::new(config),
        Agent::new("A").tools(ToolSet::new().with(Sleepy)),
    )
    .await;
    match error {
        Some(err @ Error::MaxTurnsExceeded(2)) => assert_eq!(err.code(), "max_turns_exceeded"),
        other => panic!("{other:?}"),
    }
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test]
async fn only_the_first_handoff_of_a_response_is_taken() {
    let model = Replay::new(vec![
        calls(&[
            ("h1", "transfer_to_urdu_specialist", "{}"),
            ("h2", "transfer_to_billing_agent", "{}"),
        ]),
        text("جی"),
    ]);
    let urdu = Agent::new("Urdu Specialist").instructions("Only Urdu.");
    let billing = Agent::new("Billing Agent");
    let agent = Agent::new("Orchestrator").handoff(urdu).handoff(billing);
    let (events, error) = events(&runner(model.clone()), agent).await;
    assert!(error.is_none());
    assert!(events.contains(&RunEvent::Handoff {
        from: "Orchestrator".into(),
        to: "Urdu Specialist".into()
    }));
    assert!(
        matches!(events.last(), Some(RunEvent::Completed { last_agent, .. }) if last_agent == "Urdu Specialist")
    );
    let second = &model.requests()[1];
    assert_eq!(
        second.messages[0],
        ChatMessage::System {
            content: "Only Urdu.".into()
        }
    );
    let outputs = tool_messages(second);
    assert_eq!(outputs[0].1, r#"{"assistant":"Urdu Specialist"}"#);
    assert_eq!(
        outputs[1].1,
        "Multiple handoffs detected, ignoring this one."
    );
    let first = &model.requests()[0];
    let names: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["transfer_to_urdu_specialist", "transfer_to_billing_agent"]
    );
}

#[tokio::test]
async fn a_forced_tool_choice_is_reset_after_the_agent_used_a_tool() {
    let model = Replay::new(vec![calls(&[("c1", "sleepy", "{}")]), text("ok")]);
    let settings = chatkit_engine::models::ModelSettings {
        tool_choice: Some(ToolChoice::Required),
        ..Default::default()
    };
    let agent = Agent::new("A")
        .tools(ToolSet::new().with(Sleepy))
        .settings(settings);
    events(&runner(model.clone()), agent).await;
    let requests = model.requests();
    assert_eq!(requests[0].settings.tool_choice, Some(ToolChoice::Required));
    assert_eq!(requests[1].settings.tool_choice, None);
}

#[tokio::test]
async fn a_run_can_stop_after_the_current_turn_or_at_once() {
    let model = Replay::new(vec![
        calls(&[("c1", "sleepy", r#"{"ms":50}"#)]),
        text("never"),
    ]);
    let agent = Arc::new(Agent::new("A").tools(ToolSet::new().with(Sleepy)));
    let runner = runner(model.clone());
    let mut stream = runner.run_streamed(
        Arc::clone(&agent),
        vec![ChatMessage::User {
            content: "hi".into(),
        }],
        RequestContext::new("u"),
    );
    stream.cancel_after_turn();
    let mut saw_tool = false;
    let mut last = None;
    while let Some(event) = stream.next().await {
        if matches!(event, Ok(RunEvent::ToolFinished { .. })) {
            saw_tool = true;
        }
        last = Some(event);
    }
    assert!(saw_tool, "the current turn's tools finish");
    assert!(matches!(last, Some(Err(Error::Cancelled))));
    assert_eq!(model.requests().len(), 1);

    let model = Replay::new(vec![calls(&[("c1", "sleepy", r#"{"ms":10000}"#)])]);
    let runner = Runner::new(RunConfig::new(model));
    let mut stream = runner.run_streamed(
        agent,
        vec![ChatMessage::User {
            content: "hi".into(),
        }],
        RequestContext::new("u"),
    );
    while let Some(event) = stream.next().await {
        if matches!(event, Ok(RunEvent::ToolStarted { .. })) {
            stream.cancel();
        }
        if let Err(err) = event {
            assert_eq!(err.code(), "cancelled");
        }
    }
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A tool that never finishes; it flags that it runs and that its call was
/// dropped.
#[derive(Default)]
struct Stuck {
    running: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

#[async_trait]
impl Tool for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn description(&self) -> &str {
        "Never finishes."
    }
    fn parameters(&self) -> Value {
        json!({"type":"object","properties":{}})
    }
    async fn call(&self, _arguments: Value, _ctx: &ToolContext) -> Result<ToolOutput> {
        let _dropped = DropFlag(Arc::clone(&self.dropped));
        self.running.store(true, Ordering::SeqCst);
        std::future::pending().await
    }
}

/// Streams one text delta, then nothing more; flags when its stream is
/// dropped.
#[derive(Default)]
struct Stalling {
    dropped: Arc<AtomicBool>,
}

#[async_trait]
impl Model for Stalling {
    fn name(&self) -> &str {
        "stalling"
    }

    async fn stream(&self, _request: ModelRequest) -> Result<ModelStream> {
        let flag = DropFlag(Arc::clone(&self.dropped));
        let first = futures::stream::iter([Ok(ModelEvent::TextDelta("Hel".into()))]);
        Ok(Box::pin(first.chain(futures::stream::pending()).map(
            move |event| {
                let _alive = &flag;
                event
            },
        )))
    }
}

fn hi() -> Vec<ChatMessage> {
    vec![ChatMessage::User {
        content: "hi".into(),
    }]
}

/// Starts a run whose model calls the `stuck` tool and polls it until the
/// tool runs; returns the stream and the tool's (running, dropped) flags.
async fn run_until_stuck() -> (
    chatkit_engine::agents::RunStream,
    Arc<AtomicBool>,
    Arc<AtomicBool>,
) {
    let tool = Stuck::default();
    let (running, dropped) = (Arc::clone(&tool.running), Arc::clone(&tool.dropped));
    let model = Replay::new(vec![calls(&[("c1", "stuck", "{}")])]);
    let agent = Arc::new(Agent::new("A").tools(ToolSet::new().with(tool)));
    let mut stream = runner(model).run_streamed(agent, hi(), RequestContext::new("u"));
    loop {
        match stream.next().await {
            Some(Ok(RunEvent::ToolStarted { .. })) => break,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    // The tool runs while the stream is polled, and never finishes.
    let next = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
    assert!(next.is_err(), "{next:?}");
    assert!(running.load(Ordering::SeqCst), "the tool runs");
    assert!(!dropped.load(Ordering::SeqCst));
    (stream, running, dropped)
}

#[tokio::test]
async fn dropping_a_run_stream_mid_tool_or_mid_answer_drops_the_tool_and_the_model_stream() {
    let (stream, _, dropped) = run_until_stuck().await;
    drop(stream);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the running tool was dropped"
    );

    // `cancel` drops it at once, before any further poll; the stream then
    // ends with `Cancelled`.
    let (mut stream, _, dropped) = run_until_stuck().await;
    stream.cancel();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the running tool was dropped"
    );
    assert!(matches!(stream.next().await, Some(Err(Error::Cancelled))));
    assert!(stream.next().await.is_none());

    // Mid-answer: the model stream is dropped with the run.
    let model = Arc::new(Stalling::default());
    let model_dropped = Arc::clone(&model.dropped);
    let mut stream = Runner::new(RunConfig::new(model)).run_streamed(
        Arc::new(Agent::new("A")),
        hi(),
        RequestContext::new("u"),
    );
    assert!(matches!(
        stream.next().await,
        Some(Ok(RunEvent::AgentStarted { .. }))
    ));
    assert_eq!(
        stream.next().await.map(|event| event.ok()),
        Some(Some(RunEvent::TextDelta("Hel".into())))
    );
    let next = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
    assert!(next.is_err(), "{next:?}");
    assert!(!model_dropped.load(Ordering::SeqCst));
    drop(stream);
    assert!(
        model_dropped.load(Ordering::SeqCst),
        "the model stream was dropped"
    );
}

#[test]
fn handoff_tools_are_named_in_snake_case() {
    assert_eq!(
        Agent::new("Billing Agent").tool_name(),
        "transfer_to_billing_agent"
    );
    assert_eq!(
        Agent::new("Urdu-Specialist 2").tool_name(),
        "transfer_to_urdu_specialist_2"
    );
}
