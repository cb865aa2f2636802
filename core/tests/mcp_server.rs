//! Our MCP server seen by rmcp's own client (in-process), and the HTTP
//! service's authentication. The official Python SDK client drives the same
//! server over stdio and HTTP in tests/mcp.

use async_trait::async_trait;
use chatkit_engine::store::SqliteStore;
use chatkit_engine::todo::{App, task_tools};
use chatkit_engine::tools::mcp::{Authenticator, McpHttpService, McpServer};
use chatkit_engine::{EngineConfig, Error, RequestContext, Result};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::sync::Arc;
use tower_service::Service;

fn args(value: Value) -> CallToolRequestParams {
    let Value::Object(map) = value else {
        panic!("object")
    };
    let mut params = CallToolRequestParams::new("create_task");
    params.arguments = Some(map);
    params
}

#[tokio::test]
async fn rmcp_client_lists_and_calls_the_task_tools() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let server = McpServer::new(task_tools(store), RequestContext::new("alice"));
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let running = server.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "create_task",
            "list_tasks",
            "get_task",
            "update_task",
            "delete_task",
            "toggle_complete",
            "get_stats"
        ]
    );
    assert!(tools[0].input_schema.contains_key("properties"));

    let result = client
        .call_tool(args(json!({"title": "Buy milk"})))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false));
    let text = result.content[0].as_text().unwrap().text.clone();
    let data: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(result.structured_content, Some(data.clone()));
    assert_eq!(data["data"]["title"], "Buy milk");

    // A validation failure is a tool error, not a protocol error.
    let result = client.call_tool(args(json!({"title": ""}))).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert_eq!(result.structured_content.unwrap()["success"], false);

    // An unknown tool is a protocol error.
    let err = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"), "{err}");
    client.cancel().await.unwrap();
}

/// Accepts `Bearer <user>` (test only: the real one is the JWT verifier).
struct NameIsToken;

#[async_trait]
impl Authenticator for NameIsToken {
    async fn authenticate(&self, authorization: Option<&str>) -> Result<RequestContext> {
        authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(RequestContext::new)
            .ok_or_else(|| Error::Unauthorized("no token".into()))
    }
}

fn initialize(auth: Option<&str>) -> http::Request<String> {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}
    });
    let mut request = http::Request::post("/mcp")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.body(body.to_string()).unwrap()
}

#[tokio::test]
async fn http_service_requires_a_bearer_token() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let mut service = McpHttpService::new(task_tools(store), NameIsToken);
    let response = service.call(initialize(None)).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = service
        .call(initialize(Some("Bearer alice")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn engine_service_refuses_bad_tokens() {
    let config = EngineConfig {
        database_url: "sqlite::memory:".into(),
        jwt_secret: Some("a-test-secret-that-is-long-enough-0123".into()),
        ..EngineConfig::default()
    };
    let app = App::from_config(config).await.unwrap();
    let mut service = McpHttpService::new(app.assistant.tools().clone(), app.engine.clone());
    for auth in [None, Some("Bearer not-a-jwt"), Some("Basic abc")] {
        let response = service.call(initialize(auth)).await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused_whichever_comes_first() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let mut service = McpHttpService::new(task_tools(store), NameIsToken);
    for (first, second) in [
        ("Bearer alice", "Bearer bob"),
        ("Bearer bob", "Bearer alice"),
    ] {
        let mut request = initialize(Some(first));
        request
            .headers_mut()
            .append("authorization", http::HeaderValue::from_static(second));
        let response = service.call(request).await.unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(
            service.open_sessions("alice") + service.open_sessions("bob"),
            0
        );
    }
}
