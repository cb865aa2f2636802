"""The generated Python module (uniffi) against the real engine: a full turn on
SQLite with the offline model, a cancel mid-stream that keeps the partial
answer, a host tool, JWT authentication and error codes.

A plain script (no pytest): every `test_*` coroutine runs on a fresh event
loop and the run ends with `N passed, N failed` (exit 1 on any failure).
Needs `chatkit_engine_uniffi.py` and its library on `sys.path` (the stage
copies both into one directory)."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import chatkit_engine_uniffi as ck

JWT_SECRET = "uniffi-test-secret-that-is-long-enough"
# The offline model's whole answer to "hello".
HELP_TEXT = 'I can add, list, update, complete and delete your tasks, and show your stats. Try "add a task to buy milk".'


# --------------------------------------------------------------------------- helpers


def sqlite_url() -> str:
    return f"sqlite://{Path(tempfile.mkdtemp(prefix='chatkit-uniffi-py-')) / 'chatkit.db'}"


def create_thread(text: str) -> bytes:
    content = [{"type": "input_text", "text": text}]
    body = {"type": "threads.create", "params": {"input": {"content": content, "attachments": [], "inference_options": {}}}}
    return json.dumps(body).encode()


def list_items(thread_id: str) -> bytes:
    return json.dumps({"type": "items.list", "params": {"thread_id": thread_id, "order": "asc", "limit": 100}}).encode()


def parse_sse(data: bytes) -> List[Dict[str, Any]]:
    frames = data.decode().split("\n\n")
    return [json.loads(f[len("data: "):]) for f in frames if f.startswith("data: ")]


def text_deltas(events: List[Dict[str, Any]]) -> str:
    return "".join(
        e["update"]["delta"]
        for e in events
        if e["type"] == "thread.item.updated" and e["update"]["type"] == "assistant_message.content_part.text_delta"
    )


def hs256(claims: Dict[str, Any]) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


async def read_until_words(stream: ck.ResponseStream, words: int) -> Tuple[str, bytes]:
    """Reads frames until the answer has `words` words; the thread id and the bytes."""
    received = b""
    while text_deltas(parse_sse(received)).count(" ") < words:
        frame = await stream.next()
        assert frame is not None, "the stream ended too early"
        received += frame
    return parse_sse(received)[0]["thread"]["id"], received


async def settled(engine: ck.ChatEngine) -> None:
    """Waits (up to 20 s) until no turn runs: a cancelled turn saves its partial text first."""
    deadline = time.monotonic() + 20
    while engine.running_turns() > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert engine.running_turns() == 0, "the cancelled turn stopped"


async def read_all(stream: ck.ResponseStream) -> bytes:
    out = b""
    while (frame := await stream.next()) is not None:
        out += frame
    return out


async def stream_of(result: ck.ProcessResult) -> ck.ResponseStream:
    assert result.is_stream(), f"expected a stream, got {result}"
    return result.stream


async def json_of(engine: ck.ChatEngine, body: bytes, ctx: ck.RequestContext) -> Any:
    result = await engine.process(body, ctx)
    assert result.is_json(), f"expected JSON, got {result}"
    return json.loads(result.body)


def assistant_texts(items: Dict[str, Any]) -> List[str]:
    return [
        "".join(part.get("text", "") for part in item["content"])
        for item in items["data"]
        if item["type"] == "assistant_message"
    ]


async def expect_error(awaitable: Any, variant: type, code: str, status: int) -> Any:
    try:
        await awaitable
    except ck.ChatKitError as err:
        assert isinstance(err, variant), f"{type(err).__name__} is not {variant.__name__}: {err}"
        assert (err.code, err.http_status) == (code, status), (err.code, err.http_status)
        assert (err.error_code(), err.error_http_status(), err.error_json_body()) == (code, status, err.json_body)
        assert err.error_reason() == err.reason and err.reason
        assert json.loads(err.json_body)["error"]["code"] == code
        return err
    raise AssertionError(f"expected {variant.__name__} ({code})")


class ListTasks(ck.HostTool):
    """A host tool that replaces the built-in `list_tasks`."""

    def __init__(self) -> None:
        self.calls: List[ck.ToolCall] = []

    def name(self) -> str:
        return "list_tasks"

    def description(self) -> str:
        return "The user's tasks"

    def parameters_json(self) -> str:
        return json.dumps({"type": "object", "properties": {"status": {"type": "string"}}})

    async def call(self, call: ck.ToolCall) -> ck.ToolResult:
        self.calls.append(call)
        await asyncio.sleep(0.01)  # a real coroutine on the host's loop
        task = {"id": "t-1", "title": "water the host plants", "completed": False, "priority": "medium"}
        return ck.ToolResult.JSON(json=json.dumps({"success": True, "data": [task]}))


# --------------------------------------------------------------------------- tests


async def test_a_full_turn_streams_sse_frames_and_is_persisted() -> None:
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url()))
    ctx = ck.RequestContext(user_id="alice", email="alice@example.com")
    stream = await stream_of(await engine.process(create_thread("add task buy milk"), ctx))
    frames: List[bytes] = []
    while (frame := await stream.next()) is not None:
        frames.append(frame)
    assert all(f.startswith(b"data: ") and f.endswith(b"\n\n") for f in frames)
    events = parse_sse(b"".join(frames))
    assert events[0]["type"] == "thread.created"
    assert "buy milk" in text_deltas(events).lower()
    assert await stream.next() is None  # and ever after
    assert engine.model_name() == "scripted-offline"

    thread_id = events[0]["thread"]["id"]
    items = await json_of(engine, list_items(thread_id), ctx)
    assert [i["type"] for i in items["data"]][:1] == ["user_message"]
    assert "buy milk" in " ".join(assistant_texts(items)).lower()

    tasks = json.loads(await engine.run_task_tool("list_tasks", "{}", ctx))
    assert tasks["success"] is True and [t["title"].lower() for t in tasks["data"]] == ["buy milk"]
    other = json.loads(await engine.run_task_tool("list_tasks", "{}", ck.RequestContext(user_id="bob")))
    assert other["data"] == []


async def test_cancel_mid_stream_stops_the_turn_and_keeps_the_partial_answer() -> None:
    # The paced offline model streams its 20-word help text one word per 100 ms.
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url(), dev_token_delay_ms=100))
    ctx = ck.RequestContext(user_id="alice")
    stream = await stream_of(await engine.process(create_thread("hello"), ctx))
    thread_id, _ = await read_until_words(stream, 3)
    pending = asyncio.ensure_future(stream.next())
    await asyncio.sleep(0.01)
    stream.cancel()
    stream.cancel()  # idempotent
    assert await asyncio.wait_for(pending, 5) is None, "a pending next() returns null on cancel"
    assert await stream.next() is None and stream.is_cancelled()
    await settled(engine)
    texts = assistant_texts(await json_of(engine, list_items(thread_id), ctx))
    assert len(texts) == 1, texts
    assert texts[0].startswith("I can add") and texts[0] != HELP_TEXT and "buy milk" not in texts[0], texts[0]


async def test_cancelling_a_pending_next_call_cancels_the_turn() -> None:
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url(), dev_token_delay_ms=100))
    ctx = ck.RequestContext(user_id="alice")
    stream = await stream_of(await engine.process(create_thread("hello"), ctx))
    thread_id, _ = await read_until_words(stream, 2)
    # A consumer that stops waiting, as a server does when its client is gone.
    try:
        while True:
            await asyncio.wait_for(stream.next(), timeout=0.02)
    except asyncio.TimeoutError:
        pass
    assert await stream.next() is None
    await settled(engine)
    texts = assistant_texts(await json_of(engine, list_items(thread_id), ctx))
    assert len(texts) == 1 and texts[0].startswith("I can") and texts[0] != HELP_TEXT, texts


async def test_releasing_the_stream_object_cancels_the_turn() -> None:
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url(), dev_token_delay_ms=100))
    ctx = ck.RequestContext(user_id="alice")
    result = await engine.process(create_thread("hello"), ctx)
    thread_id, _ = await read_until_words(await stream_of(result), 2)
    del result  # the last reference: the Rust object and the core stream go
    gc.collect()
    await settled(engine)
    texts = assistant_texts(await json_of(engine, list_items(thread_id), ctx))
    assert len(texts) == 1 and texts[0].startswith("I can") and texts[0] != HELP_TEXT, texts


async def test_engine_work_does_not_block_the_event_loop() -> None:
    # Paced turns keep the engine busy for at least 8 x 50 ms; a loop blocked
    # by engine work would not tick meanwhile, a free one ticks every few ms.
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url(), dev_token_delay_ms=50))
    await engine.start()
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    ctx = ck.RequestContext(user_id="alice")
    results = await asyncio.gather(*(engine.process(create_thread(f"add task t{i}"), ctx) for i in range(5)))
    assert all(r.is_stream() for r in results)
    outputs = await asyncio.gather(*(read_all(r.stream) for r in results))
    stop.set()
    await task
    assert all(b"thread.created" in out for out in outputs)
    assert ticks >= 5, f"the event loop ticked only {ticks} times during 5 turns"


async def test_a_host_tool_replaces_a_task_tool_and_gets_the_verified_user() -> None:
    ck.uniffi_set_default_event_loop(asyncio.get_running_loop())
    tool = ListTasks()
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url()), [tool])
    stream = await stream_of(await engine.process(create_thread("show my tasks"), ck.RequestContext(user_id="carol")))
    text = text_deltas(parse_sse(await read_all(stream)))
    assert [c.user_id for c in tool.calls] == ["carol"], tool.calls
    assert json.loads(tool.calls[0].arguments_json) is not None
    assert "water the host plants" in text, text


class BrokenStats(ck.HostTool):
    """A host tool that always fails."""

    def name(self) -> str:
        return "get_stats"

    def description(self) -> str:
        return "Task statistics"

    def parameters_json(self) -> str:
        return '{"type": "object", "properties": {}}'

    async def call(self, call: ck.ToolCall) -> ck.ToolResult:
        raise ck.ToolError.Failed(reason="the stats service is down")


async def test_a_failing_host_tool_is_reported_to_the_model_and_the_turn_completes() -> None:
    ck.uniffi_set_default_event_loop(asyncio.get_running_loop())
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url()), [BrokenStats()])
    stream = await stream_of(await engine.process(create_thread("how many tasks do I have?"), ck.RequestContext(user_id="fay")))
    events = parse_sse(await read_all(stream))
    assert "Sorry, I couldn't do that" in text_deltas(events), text_deltas(events)
    assert not [e for e in events if e["type"] == "error"], "a tool failure is not a stream error"


async def test_authenticate_verifies_bearer_tokens_with_the_configured_secret() -> None:
    engine = ck.ChatEngine.from_json(json.dumps({"database_url": sqlite_url(), "jwt_secret": JWT_SECRET}))
    now = int(time.time())
    token = hs256({"sub": "dave", "email": "dave@example.com", "iat": now, "exp": now + 3600})
    ctx = await engine.authenticate(f"Bearer {token}")
    assert (ctx.user_id, ctx.email) == ("dave", "dave@example.com")
    expired = hs256({"sub": "dave", "iat": now - 7200, "exp": now - 3600})
    await expect_error(engine.authenticate(f"Bearer {expired}"), ck.ChatKitError.Unauthorized, "token_expired", 401)
    await expect_error(engine.authenticate(None), ck.ChatKitError.Unauthorized, "unauthorized", 401)


async def test_errors_carry_the_stable_code_and_http_status() -> None:
    engine = ck.ChatEngine(ck.EngineConfig(database_url=sqlite_url()))
    ctx = ck.RequestContext(user_id="erin")
    await expect_error(engine.process(b"{not json", ctx), ck.ChatKitError.InvalidRequest, "invalid_request", 400)
    await expect_error(engine.process(list_items("thr_missing"), ctx), ck.ChatKitError.NotFound, "not_found", 404)
    await expect_error(engine.run_task_tool("list_tasks", "[", ctx), ck.ChatKitError.InvalidRequest, "invalid_request", 400)
    for build in (
        lambda: ck.ChatEngine(ck.EngineConfig(database_url="mysql://nope")),
        lambda: ck.ChatEngine.from_json('{"database_url": "sqlite://x.db", "no_such_key": 1}'),
        lambda: ck.ChatEngine(ck.EngineConfig(database_url="sqlite://x.db", extra_json='{"max_turns": 0}')),
    ):
        try:
            build()
        except ck.ChatKitError.InvalidConfig as err:
            assert (err.code, err.http_status) == ("invalid_config", 500)
        else:
            raise AssertionError("expected InvalidConfig")


# --------------------------------------------------------------------------- runner


def main() -> int:
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    passed, failed = 0, 0
    for name, fn in tests:
        started = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(fn(), timeout=60))
        except BaseException:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - started:.2f}s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
