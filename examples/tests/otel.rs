//! Trace export: `serve`'s spans of one turn reach a local OTLP/HTTP
//! receiver (written here: protobuf decoded with `opentelemetry-proto`) as
//! one trace that continues the caller's W3C `traceparent`, with the
//! parent-child structure of the engine's spans.

use axum::body::Bytes;
use axum::routing::post;
use chatkit_engine_examples::logging::{self, LogFormat};
use chatkit_engine_examples::otel::Otel;
use chatkit_engine_examples::serve::{Args, ServeConfig, Server};
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The caller's trace and span, as a `traceparent` carries them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP trace receiver on 127.0.0.1, on a runtime of its own
/// thread (the exporter blocks its caller while it sends). Returns its
/// `/v1/traces` URL.
fn receiver(received: Received) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                post(move |body: Bytes| {
                    let received = received.clone();
                    async move {
                        let request = ExportTraceServiceRequest::decode(body).unwrap();
                        let mut spans = received.lock().unwrap();
                        for resource in request.resource_spans {
                            for scope in resource.scope_spans {
                                spans.extend(scope.spans);
                            }
                        }
                        // An empty ExportTraceServiceResponse.
                        Bytes::new()
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    format!("http://{addr}/v1/traces")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_spans_of_a_turn_reach_an_otlp_receiver_as_one_trace_continuing_the_callers() {
    let received = Received::default();
    let otel = Otel::to_url(&receiver(received.clone())).unwrap();
    let _guard = tracing::subscriber::set_default(logging::subscriber_with(
        LogFormat::Text,
        "info",
        false,
        std::io::sink,
        Some(&otel),
    ));
    let mut args = Args::try_parse_from([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        "sqlite::memory:",
        "--jwt-secret",
        "0123456789abcdef0123456789abcdef-test-secret",
    ])
    .unwrap();
    args.openai_api_key = None;
    args.openai_base_url = None;
    let server = Server::bind(ServeConfig::from_args(args, |_| None).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));

    // A turn that calls a task tool (the offline model's rules).
    let token = {
        use base64::Engine as _;
        use hmac::Mac;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload =
            b64.encode(serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64}).to_string());
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
            b"0123456789abcdef0123456789abcdef-test-secret",
        )
        .unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        format!(
            "{header}.{payload}.{}",
            b64.encode(mac.finalize().into_bytes())
        )
    };
    let body = serde_json::json!({"type": "threads.create", "params": {"input": {"content": [{"type": "input_text", "text": "add a task buy milk"}]}}});
    let res = reqwest::Client::new()
        .post(format!("{base}/chatkit"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("create_task") || text.contains("buy milk"),
        "{text}"
    );
    let _ = stop.send(());
    handle.await.unwrap().unwrap();

    // Spans end when the turn's task is over; wait for all of them.
    let wanted = [
        "http",
        "chatkit.request",
        "chatkit.turn",
        "agent.run",
        "agent.turn",
        "tool.call",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let spans = loop {
        otel.flush().unwrap();
        let spans = received.lock().unwrap().clone();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        if wanted.iter().all(|w| names.contains(w)) {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans received: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    let one = |name: &str| -> &Span {
        let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert!(!found.is_empty(), "no {name} span");
        found[0]
    };
    let parent_name = |span: &Span| -> String {
        by_id
            .get(&span.parent_span_id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("remote {}", hex(&span.parent_span_id)))
    };
    // Every span of the request is in the caller's trace.
    for span in &spans {
        assert_eq!(hex(&span.trace_id), TRACE_ID, "span {}", span.name);
    }
    let http = spans
        .iter()
        .find(|s| s.name == "http" && hex(&s.trace_id) == TRACE_ID)
        .expect("the request's http span");
    assert_eq!(hex(&http.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(
        by_id[&one("chatkit.request").parent_span_id].span_id,
        http.span_id
    );
    assert_eq!(parent_name(one("chatkit.turn")), "chatkit.request");
    assert_eq!(parent_name(one("agent.run")), "chatkit.turn");
    for span in spans
        .iter()
        .filter(|s| s.name == "agent.turn" || s.name == "tool.call")
    {
        assert_eq!(parent_name(span), "agent.run", "{}", span.name);
    }
    assert!(
        spans.iter().filter(|s| s.name == "agent.turn").count() >= 2,
        "a tool call and the answer after it"
    );
    otel.shutdown();
}
