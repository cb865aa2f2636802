//! External MCP servers as agent tool sources, against a real peer: a small
//! server written with the official MCP Python SDK (tests/mcp/external_server.py).
//!
//! These tests need Python with the `mcp` package, so they are `#[ignore]`d
//! for plain `cargo nextest run`; scripts/stages/30-mcp.sh installs the
//! package and runs them (`--run-ignored only`) with `CHATKIT_TEST_PYTHON`
//! naming the interpreter. Without that variable they fail loudly.

use async_trait::async_trait;
use chatkit_engine::agents::{Agent, RunConfig, RunEvent, Runner};
use chatkit_engine::models::{
    ChatMessage, FinishReason, Model, ModelEvent, ModelRequest, ModelResponse, ModelStream,
    ToolCall,
};
use chatkit_engine::tools::ToolOutput;
use chatkit_engine::tools::mcp::{Credentials, McpClientConfig, McpToolSource, McpTransportConfig};
use chatkit_engine::{RequestContext, Result};
use futures::StreamExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn python() -> String {
    std::env::var("CHATKIT_TEST_PYTHON")
        .expect("CHATKIT_TEST_PYTHON must name a Python with the `mcp` package (see scripts/stages/30-mcp.sh)")
}

fn server_script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mcp/external_server.py")
        .to_string_lossy()
        .into_owned()
}

/// The external server over Streamable HTTP on a fixed port, so that it can
/// be restarted at the same address.
struct HttpServer {
    child: tokio::process::Child,
    port: u16,
}

impl HttpServer {
    async fn start(port: u16) -> Self {
        let child = tokio::process::Command::new(python())
            .arg(server_script())
            .args(["http", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the external MCP server");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self { child, port };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the external MCP server did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("kill the server");
        let _ = self.child.wait().await;
    }
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Replays responses: one list per run, each run calls tools then answers.
struct Replay {
    responses: Mutex<Vec<ModelResponse>>,
}

impl Replay {
    fn new(responses: Vec<ModelResponse>) -> Arc<Self> {
        Arc::new(Self {
            responses: Mutex::new(responses.into_iter().rev().collect()),
        })
    }
}

#[async_trait]
impl Model for Replay {
    fn name(&self) -> &str {
        "replay"
    }

    async fn stream(&self, _request: ModelRequest) -> Result<ModelStream> {
        let response = self
            .responses
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| ModelResponse {
                text: "(out of script)".into(),
                ..ModelResponse::default()
            });
        Ok(Box::pin(futures::stream::iter(vec![Ok(
            ModelEvent::Completed(response),
        )])))
    }
}

fn call(name: &str, args: Value) -> ModelResponse {
    ModelResponse {
        tool_calls: vec![ToolCall {
            id: format!("call_{name}"),
            name: name.into(),
            arguments: args.to_string(),
        }],
        finish_reason: FinishReason::ToolCalls,
        ..ModelResponse::default()
    }
}

fn answer() -> ModelResponse {
    ModelResponse {
        text: "done".into(),
        ..ModelResponse::default()
    }
}

/// Runs `agent` once (the model calls `tool` with `args`, then answers) and
/// returns the tool's output.
async fn run_once(agent: Agent, tool: &str, args: Value, user: &str) -> ToolOutput {
    let runner = Runner::new(RunConfig::new(Replay::new(vec![
        call(tool, args),
        answer(),
    ])));
    let mut stream = runner.run_streamed(
        Arc::new(agent),
        vec![ChatMessage::User {
            content: "go".into(),
        }],
        RequestContext::new(user),
    );
    let mut output = None;
    let mut completed = false;
    while let Some(event) = stream.next().await {
        match event.expect("run event") {
            RunEvent::ToolFinished { output: out, .. } => output = Some(out),
            RunEvent::Completed { output, .. } => {
                assert_eq!(output, "done");
                completed = true;
            }
            _ => {}
        }
    }
    assert!(completed, "the run did not complete");
    output.expect("the tool ran")
}

fn json_of(output: &ToolOutput) -> Value {
    serde_json::from_str(&output.content).unwrap_or_else(|_| panic!("JSON: {}", output.content))
}

fn tenant_hook(caller: &RequestContext) -> Credentials {
    let mut credentials = Credentials::default();
    credentials
        .headers
        .insert("x-tenant".into(), format!("tenant-of-{}", caller.user_id));
    credentials.meta.insert(
        "tenant".into(),
        json!(format!("meta-of-{}", caller.user_id)),
    );
    credentials
}

fn config(transport: McpTransportConfig) -> McpClientConfig {
    McpClientConfig::new("external", transport)
        .tool_prefix("ext_")
        .allow_tools(["add", "whoami", "slow", "fail", "pid", "grow", "late"])
        .call_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(20))
        .credentials(tenant_hook)
}

fn names(source: &McpToolSource) -> Vec<String> {
    let mut names: Vec<String> = source.tools().iter().map(|t| t.name().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python with the mcp package; run by scripts/stages/30-mcp.sh"]
async fn agent_uses_http_mcp_tools_across_a_server_restart() {
    let port = free_port().await;
    let server = HttpServer::start(port).await;
    let source = McpToolSource::connect(config(McpTransportConfig::http(server.url())))
        .await
        .expect("connect");
    assert_eq!(
        names(&source),
        [
            "ext_add",
            "ext_fail",
            "ext_grow",
            "ext_pid",
            "ext_slow",
            "ext_whoami"
        ]
    );
    let add = source.tools();
    let add = add.get("ext_add").expect("ext_add");
    assert_eq!(add.parameters()["type"], "object");
    assert!(add.parameters()["properties"]["a"].is_object());

    // Turn 1.
    let agent = || Agent::new("Assistant").tools(source.tools());
    let out = run_once(agent(), "ext_add", json!({"a": 2, "b": 40}), "alice").await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(json_of(&out)["sum"], 42);
    let first_pid = json_of(&run_once(agent(), "ext_pid", json!({}), "alice").await)["pid"].clone();

    // Per-request tenant credentials: a header and a _meta field.
    let who = run_once(agent(), "ext_whoami", json!({}), "alice").await;
    assert_eq!(json_of(&who)["header_tenant"], "tenant-of-alice");
    assert_eq!(json_of(&who)["meta_tenant"], "meta-of-alice");
    let who = run_once(agent(), "ext_whoami", json!({}), "bob").await;
    assert_eq!(json_of(&who)["header_tenant"], "tenant-of-bob");
    assert_eq!(json_of(&who)["meta_tenant"], "meta-of-bob");

    // The server dies and comes back between turns: same agent tools.
    let kept = agent();
    server.kill().await;
    let server = HttpServer::start(port).await;
    let out = run_once(kept, "ext_add", json!({"a": 1, "b": 1}), "alice").await;
    assert!(!out.is_error, "after restart: {out:?}");
    assert_eq!(json_of(&out)["sum"], 2);
    let second_pid =
        json_of(&run_once(agent(), "ext_pid", json!({}), "alice").await)["pid"].clone();
    assert_ne!(first_pid, second_pid, "a new server process answered");

    // While the server is down, calls are tool errors, and the run goes on.
    server.kill().await;
    let out = run_once(agent(), "ext_add", json!({"a": 1, "b": 1}), "alice").await;
    assert!(out.is_error);
    assert!(out.content.contains("unavailable"), "{}", out.content);
    let server = HttpServer::start(port).await;
    let mut recovered = None;
    for _ in 0..40 {
        let out = run_once(agent(), "ext_add", json!({"a": 3, "b": 4}), "alice").await;
        if !out.is_error {
            recovered = Some(out);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        json_of(&recovered.expect("recovered after backoff"))["sum"],
        7
    );
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python with the mcp package; run by scripts/stages/30-mcp.sh"]
async fn agent_uses_stdio_mcp_tools_across_a_server_restart() {
    let dir = std::env::temp_dir().join(format!("chatkit-mcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("server.pid");
    let transport = McpTransportConfig::stdio(
        python(),
        [
            server_script(),
            "stdio".into(),
            "--pidfile".into(),
            pidfile.to_string_lossy().into_owned(),
        ],
    );
    let source = McpToolSource::connect(config(transport))
        .await
        .expect("connect");
    let agent = || Agent::new("Assistant").tools(source.tools());
    let out = run_once(agent(), "ext_add", json!({"a": 20, "b": 22}), "alice").await;
    assert_eq!(json_of(&out)["sum"], 42);
    let who = run_once(agent(), "ext_whoami", json!({}), "alice").await;
    assert_eq!(json_of(&who)["meta_tenant"], "meta-of-alice");
    assert_eq!(
        json_of(&who)["header_tenant"],
        Value::Null,
        "no headers over stdio"
    );

    // Kill the child process; the next turn starts a new one.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = run_once(agent(), "ext_add", json!({"a": 1, "b": 2}), "alice").await;
    assert!(!out.is_error, "after restart: {out:?}");
    assert_eq!(json_of(&out)["sum"], 3);
    let new_pid = json_of(&run_once(agent(), "ext_pid", json!({}), "alice").await)["pid"].clone();
    assert_ne!(new_pid.to_string(), pid.trim());
    source.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python with the mcp package; run by scripts/stages/30-mcp.sh"]
async fn timeouts_errors_and_list_changed() {
    let port = free_port().await;
    let server = HttpServer::start(port).await;
    let source = McpToolSource::connect(config(McpTransportConfig::http(server.url())))
        .await
        .expect("connect");
    let agent = || Agent::new("Assistant").tools(source.tools());

    // The allow-list and the prefix; a lazy source connects on refresh.
    let only_add = McpToolSource::lazy(
        McpClientConfig::new("only-add", McpTransportConfig::http(server.url()))
            .tool_prefix("x_")
            .allow_tools(["add"]),
    )
    .unwrap();
    assert!(only_add.tools().is_empty());
    let set = only_add.refresh().await.expect("refresh");
    assert_eq!(
        set.iter().map(|t| t.name().to_owned()).collect::<Vec<_>>(),
        ["x_add"]
    );
    only_add.close().await;

    // A call longer than the timeout is a tool error for the model.
    let out = run_once(agent(), "ext_slow", json!({"seconds": 10}), "alice").await;
    assert!(out.is_error);
    assert!(out.content.contains("timed out"), "{}", out.content);
    // The connection is still good.
    let out = run_once(agent(), "ext_add", json!({"a": 1, "b": 2}), "alice").await;
    assert_eq!(json_of(&out)["sum"], 3);

    // A failing remote tool is a tool error too.
    let out = run_once(agent(), "ext_fail", json!({}), "alice").await;
    assert!(out.is_error, "{out:?}");

    // `grow` adds a tool and sends list_changed: the cache picks it up.
    assert!(source.tools().get("ext_late").is_none());
    let out = run_once(agent(), "ext_grow", json!({}), "alice").await;
    assert!(!out.is_error, "{out:?}");
    let mut seen = false;
    for _ in 0..100 {
        if source.tools().get("ext_late").is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen,
        "list_changed refreshed the cache: {:?}",
        names(&source)
    );
    let out = run_once(agent(), "ext_late", json!({}), "alice").await;
    assert_eq!(json_of(&out)["late"], true);
    server.kill().await;
}
