//! CPU hot paths of a turn, without I/O: request parsing, event
//! serialisation and SSE framing, provider chunk accumulation, and thread
//! history to model input.
//!
//! Run with `cargo bench -p chatkit-engine --bench hot_paths` (add
//! `-- --measurement-time 3 --warm-up-time 1` for a quicker run). The
//! numbers measured on the development machine are in the README
//! (`## Benchmarks`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use chatkit_engine::engine::agent::history::to_messages;
use chatkit_engine::models::accumulate::{ChunkAccumulator, SseDecoder};
use chatkit_engine::models::{Dialect, ModelEvent};
use chatkit_engine::protocol::{Request, ThreadItem, ThreadStreamEvent, json, sse};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;

const TS: &str = "2026-01-15T10:20:30.123456Z";
const THREAD: &str = "thr_0123456789abcdef0123456789abcdef";

/// About `n` bytes of English-looking text.
fn prose(n: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "task",
        "list",
        "is",
        "due",
        "tomorrow",
        "and",
        "your",
        "groceries",
        "meeting",
        "priority",
        "high",
        "done",
        "reminder",
        "شکریہ",
        "کام",
    ];
    let mut out = String::with_capacity(n + 16);
    let mut i = 0;
    while out.len() < n {
        out.push_str(WORDS[i % WORDS.len()]);
        out.push(' ');
        i += 7;
    }
    out
}

// ---------------------------------------------------------------------------
// Request parsing

fn request_parsing(c: &mut Criterion) {
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "threads.create",
            json!({"type":"threads.create","params":{"input":{"content":[
                {"type":"input_text","text":"add a task to buy milk tomorrow"}],
                "attachments":[],"inference_options":{}}}})
            .to_string()
            .into_bytes(),
        ),
        (
            "add_user_message_4k",
            json!({"type":"threads.add_user_message","params":{"thread_id":THREAD,"input":{
                "content":[{"type":"input_text","text":prose(4096)},
                           {"type":"input_tag","id":"task_1","text":"groceries","data":{"k":"v"},"interactive":true}],
                "attachments":[],"quoted_text":"earlier answer","inference_options":{"model":"gpt-4.1"}}}})
            .to_string()
            .into_bytes(),
        ),
        (
            "items.list",
            json!({"type":"items.list","params":{"thread_id":THREAD,"limit":50,"order":"desc",
                   "after":"msg_0123456789abcdef0123456789abcdef"}})
            .to_string()
            .into_bytes(),
        ),
        (
            "add_client_tool_output_2k",
            json!({"type":"threads.add_client_tool_output","params":{"thread_id":THREAD,
                   "result":{"rows":(0..40).map(|i| json!({"id":i,"title":format!("row {i}"),"done":i%2==0})).collect::<Vec<_>>()}}})
            .to_string()
            .into_bytes(),
        ),
    ];
    let mut group = c.benchmark_group("request_parse");
    for (name, body) in &bodies {
        Request::parse(body).expect("a valid request");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| Request::parse(black_box(body)).unwrap())
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// Event serialisation and SSE framing

fn event(value: Value) -> ThreadStreamEvent {
    serde_json::from_value(value).expect("a valid event")
}

fn text_delta(delta: &str) -> ThreadStreamEvent {
    event(
        json!({"type":"thread.item.updated","item_id":"msg_0123456789abcdef0123456789abcdef",
                 "update":{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":delta}}),
    )
}

fn assistant_done(text: &str) -> ThreadStreamEvent {
    event(json!({"type":"thread.item.done","item":{
        "id":"msg_0123456789abcdef0123456789abcdef","thread_id":THREAD,"created_at":TS,
        "type":"assistant_message","content":[{"annotations":[],"text":text,"type":"output_text"}]}}))
}

fn workflow_done(tasks: usize) -> ThreadStreamEvent {
    let tasks: Vec<Value> = (0..tasks)
        .map(|i| json!({"status_indicator":"complete","type":"custom","title":format!("create_task #{i}"),
                        "content":"{\"success\":true,\"data\":{\"title\":\"buy milk\"}}"}))
        .collect();
    event(json!({"type":"thread.item.done","item":{
        "id":"wf_0123456789abcdef0123456789abcdef","thread_id":THREAD,"created_at":TS,"type":"workflow",
        "workflow":{"type":"custom","tasks":tasks,"summary":{"duration":3},"expanded":false}}}))
}

/// The events of a typical streamed answer of `deltas` fragments.
fn turn_events(deltas: usize) -> Vec<ThreadStreamEvent> {
    let mut events = vec![
        event(
            json!({"type":"thread.created","thread":{"id":THREAD,"created_at":TS,
            "status":{"type":"active"},"metadata":{},"items":{"data":[],"has_more":false}}}),
        ),
        event(
            json!({"type":"thread.item.done","item":{"id":"msg_user0123456789abcdef0123456789",
            "thread_id":THREAD,"created_at":TS,"type":"user_message",
            "content":[{"type":"input_text","text":"what is on my list today?"}],
            "attachments":[],"inference_options":{}}}),
        ),
        event(json!({"type":"stream_options","stream_options":{"allow_cancel":true}})),
        workflow_done(1),
        event(
            json!({"type":"thread.item.added","item":{"id":"msg_0123456789abcdef0123456789abcdef",
            "thread_id":THREAD,"created_at":TS,"type":"assistant_message","content":[]}}),
        ),
    ];
    let mut text = String::new();
    for i in 0..deltas {
        let word = if i.is_multiple_of(5) {
            "groceries "
        } else {
            "the "
        };
        text.push_str(word);
        events.push(text_delta(word));
    }
    events.push(assistant_done(&text));
    events.push(event(json!({"type":"thread.updated","thread":{"id":THREAD,"created_at":TS,
        "title":"Today's list","status":{"type":"active"},"metadata":{},"items":{"data":[],"has_more":false}}})));
    events
}

fn event_serialisation(c: &mut Criterion) {
    let cases = [
        ("text_delta", text_delta("Hello ")),
        ("assistant_done_1k", assistant_done(&prose(1024))),
        ("workflow_done_5_tasks", workflow_done(5)),
    ];
    let mut group = c.benchmark_group("event_json");
    for (name, event) in &cases {
        group.bench_with_input(BenchmarkId::from_parameter(name), event, |b, event| {
            b.iter(|| json::to_vec(black_box(event)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sse_frame");
    for (name, event) in &cases {
        group.bench_with_input(BenchmarkId::from_parameter(name), event, |b, event| {
            b.iter(|| sse::frame(black_box(event)).unwrap())
        });
    }
    let turn = turn_events(200);
    group.throughput(Throughput::Elements(turn.len() as u64));
    group.bench_function("turn_200_deltas", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for event in black_box(&turn) {
                bytes += sse::frame(event).unwrap().len();
            }
            bytes
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// Chunk accumulation (provider SSE bytes -> deltas -> one response)

fn chunk(delta: Value) -> Value {
    json!({"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764100000,
           "model":"bench-model","choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":null}]})
}

fn finish(reason: &str) -> Value {
    let mut c = chunk(json!({}));
    c["choices"][0]["finish_reason"] = json!(reason);
    c
}

fn usage() -> Value {
    json!({"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764100000,"model":"bench-model",
           "choices":[],"usage":{"prompt_tokens":812,"completion_tokens":200,"total_tokens":1012,
           "prompt_tokens_details":{"cached_tokens":512},"completion_tokens_details":{"reasoning_tokens":0}}})
}

/// A raw `text/event-stream` body of these chunks, with `[DONE]`.
fn sse_body(chunks: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for chunk in chunks {
        out.push_str("data: ");
        out.push_str(&chunk.to_string());
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn text_stream(parts: usize, reasoning: usize) -> Vec<u8> {
    let mut chunks = vec![chunk(json!({"role":"assistant","content":""}))];
    for i in 0..reasoning {
        chunks.push(chunk(
            json!({"content":null,"reasoning_content":format!("thinking {i} ")}),
        ));
    }
    for i in 0..parts {
        chunks.push(chunk(
            json!({"content": if i.is_multiple_of(3) { "groceries " } else { "the " }}),
        ));
    }
    chunks.push(finish("stop"));
    chunks.push(usage());
    sse_body(&chunks)
}

fn tool_call_stream(calls: usize, fragments: usize) -> Vec<u8> {
    let mut chunks = Vec::new();
    for call in 0..calls {
        chunks.push(chunk(
            json!({"tool_calls":[{"index":call,"id":format!("call_{call}"),"type":"function",
            "function":{"name":"create_task","arguments":""}}]}),
        ));
        let arguments =
            format!(r#"{{"title":"task number {call}","priority":"high","category":"home"}}"#);
        let step = arguments.len().div_ceil(fragments);
        for piece in arguments.as_bytes().chunks(step) {
            chunks.push(chunk(json!({"tool_calls":[{"index":call,"type":"function",
                "function":{"arguments":std::str::from_utf8(piece).unwrap()}}]})));
        }
    }
    chunks.push(finish("tool_calls"));
    chunks.push(usage());
    sse_body(&chunks)
}

/// Feeds `body` in network-sized reads through the decoder and accumulator,
/// as `OpenAiCompatible` does; returns the deltas seen and the response.
fn accumulate(body: &[u8], reasoning_fields: &[String]) -> (usize, usize) {
    let mut decoder = SseDecoder::default();
    let mut acc = ChunkAccumulator::new(reasoning_fields, "fallback");
    let mut deltas = 0;
    for read in body.chunks(1400) {
        for event in decoder.feed(read) {
            deltas += acc.push_event(&event).unwrap().len();
        }
    }
    for event in decoder.finish() {
        deltas += acc.push_event(&event).unwrap().len();
    }
    let response = acc.finish().unwrap();
    (deltas, response.text.len() + response.tool_calls.len())
}

fn chunk_accumulation(c: &mut Criterion) {
    let openai = Dialect::openai().reasoning_fields;
    let mimo = Dialect::mimo().reasoning_fields;
    let cases = [
        ("text_200_chunks", text_stream(200, 0), &openai),
        ("reasoning_50_text_200", text_stream(200, 50), &mimo),
        (
            "tool_calls_4x10_fragments",
            tool_call_stream(4, 10),
            &openai,
        ),
    ];
    let mut group = c.benchmark_group("accumulate");
    for (name, body, fields) in &cases {
        // Sanity: the stream is complete and yields what it should.
        let mut acc = ChunkAccumulator::new(fields, "x");
        let mut decoder = SseDecoder::default();
        let mut seen = Vec::new();
        for event in decoder.feed(body) {
            seen.extend(acc.push_event(&event).unwrap());
        }
        assert!(acc.is_done());
        assert!(!seen.iter().any(|e| matches!(e, ModelEvent::Completed(_))));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| accumulate(black_box(body), fields))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// History -> model input

/// A thread of `n` items shaped like real task-assistant threads: user
/// message, tool workflow, assistant answer, with a cancellation marker now
/// and then.
fn history_items(n: usize) -> Vec<ThreadItem> {
    let mut items = Vec::with_capacity(n);
    let mut i = 0;
    while items.len() < n {
        let id = format!("msg_{i:032x}");
        let value = match i % 7 {
            0 | 3 => json!({"id":id,"thread_id":THREAD,"created_at":TS,"type":"user_message",
                "content":[{"type":"input_text","text":prose(120)}],"attachments":[],
                "inference_options":{}}),
            1 => json!({"id":id,"thread_id":THREAD,"created_at":TS,"type":"workflow",
                "workflow":{"type":"custom","tasks":[
                    {"status_indicator":"complete","type":"custom","title":"create_task",
                     "content":"{\"success\":true,\"data\":{\"id\":\"5f0c\",\"title\":\"buy milk\"}}"}],
                    "summary":{"duration":1},"expanded":false}}),
            5 => json!({"id":id,"thread_id":THREAD,"created_at":TS,"type":"sdk_hidden_context",
                "content":"The user cancelled the stream. Stop responding to the prior request."}),
            _ => json!({"id":id,"thread_id":THREAD,"created_at":TS,"type":"assistant_message",
                "content":[{"annotations":[],"text":prose(400),"type":"output_text"}]}),
        };
        items.push(serde_json::from_value(value).expect("a valid item"));
        i += 1;
    }
    items
}

fn history(c: &mut Criterion) {
    let mut group = c.benchmark_group("history_to_messages");
    for n in [50, 500] {
        let items = history_items(n);
        assert!(to_messages(&items).len() >= n / 2);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &items, |b, items| {
            b.iter(|| to_messages(black_box(items)))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    request_parsing,
    event_serialisation,
    chunk_accumulation,
    history
);
criterion_main!(benches);
