"""The binding on its own: turns, results, errors, tools, cancellation,
the event loop and fork."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
import time
from typing import Any, Dict, List

import pytest

import chatkit_engine as ce
from conftest import GATE, GATED_TOKENS, add_message, assistant_text, create_thread, get_thread, make_token, parse_sse, JWT_SECRET


async def collect(result: ce.ProcessResult) -> bytes:
    return b"".join([chunk async for chunk in result])


async def test_a_full_turn_streams_sse_frames_and_is_persisted(sqlite_url: str) -> None:
    engine = ce.ChatEngine({"database_url": sqlite_url})
    ctx = ce.RequestContext("alice", email="alice@example.com")
    result = await engine.process(create_thread("add task buy milk"), ctx)
    assert result.streaming and result.json is None and result.media_type == "text/event-stream"
    frames: List[bytes] = [chunk async for chunk in result]
    assert all(isinstance(f, bytes) and f.startswith(b"data: ") and f.endswith(b"\n\n") for f in frames)
    events = parse_sse(b"".join(frames))
    types = [e["type"] for e in events]
    assert types[0] == "thread.created" and "thread.item.done" in types
    assert engine.model_name == "scripted-offline"
    thread_id = events[0]["thread"]["id"]

    doc = await engine.process(get_thread(thread_id), ctx)
    assert not doc.streaming and doc.media_type == "application/json"
    assert isinstance(doc.json, bytes)
    thread = json.loads(doc.json)
    assert "buy milk" in " ".join(assistant_text(thread)).lower()
    # iterating a JSON result yields the document once
    assert await collect(doc) == doc.json
    assert await collect(doc) == b""

    tasks = await engine.run_task_tool("list_tasks", {}, ctx)
    assert tasks["success"] is True
    assert [t["title"].lower() for t in tasks["data"]] == ["buy milk"]
    # another user sees nothing
    assert (await engine.run_task_tool("list_tasks", {}, ce.RequestContext("bob")))["data"] == []


async def test_run_tool_still_works_but_warns_that_it_is_now_run_task_tool(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url)
    ctx = ce.RequestContext("alice")
    created = await engine.run_task_tool("create_task", {"title": "buy milk"}, ctx)
    assert created["success"] is True
    with pytest.warns(DeprecationWarning, match=r"run_task_tool\(\)") as record:
        listed = await engine.run_tool("list_tasks", {}, ctx)
    assert [t["title"] for t in listed["data"]] == ["buy milk"]
    assert record[0].filename == __file__, "the warning points at the caller"
    with pytest.warns(DeprecationWarning), pytest.raises(ce.NotFoundError):
        await engine.run_tool("no_such_tool", {}, ctx)


async def test_config_from_dict_kwargs_and_clear_errors(sqlite_url: str) -> None:
    engine = ce.ChatEngine({"database_url": "sqlite::memory:", "max_turns": 3}, database_url=sqlite_url)
    await engine.start()
    assert engine.model_name == "scripted-offline"
    async with ce.ChatEngine(database_url="sqlite::memory:") as other:
        assert other.model_name == "scripted-offline"

    with pytest.raises(ce.ConfigError) as info:
        ce.ChatEngine(databse_url="sqlite::memory:")
    assert info.value.code == "invalid_config" and info.value.http_status == 500
    assert "databse_url" in str(info.value) and "database_url" in str(info.value)
    with pytest.raises(ce.ConfigError, match="database_url"):
        ce.ChatEngine(database_url="mysql://nope")
    with pytest.raises(ce.ConfigError, match="max_turns"):
        ce.ChatEngine(max_turns=0)
    with pytest.raises(ce.ConfigError):
        ce.ChatEngine(max_turns="many")
    with pytest.raises(ce.ConfigError):
        ce.ChatEngine(database_url=object())
    assert isinstance(info.value, ValueError)


async def test_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MAX_TURNS", "4")
    engine = ce.ChatEngine.from_env(history_items=5)
    await engine.start()
    monkeypatch.setenv("MAX_TURNS", "lots")
    with pytest.raises(ce.ConfigError, match="MAX_TURNS"):
        ce.ChatEngine.from_env()


async def test_errors_map_to_exception_classes_with_code_and_status(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, max_body_bytes=2000)
    ctx = ce.RequestContext("alice")

    cases = [
        (b"not json", ce.InvalidRequestError, "invalid_request", 400),
        (b'{"type":"threads.nope","params":{}}', ce.InvalidRequestError, "invalid_request", 400),
        (get_thread("thr_doesnotexist"), ce.NotFoundError, "not_found", 404),
        (create_thread("x" * 5000), ce.PayloadTooLargeError, "payload_too_large", 413),
    ]
    for body, cls, code, status in cases:
        with pytest.raises(cls) as info:
            await engine.process(body, ctx)
        err = info.value
        assert isinstance(err, ce.ChatKitError)
        assert (err.code, err.http_status) == (code, status)
        assert json.loads(err.body)["error"]["code"] == code

    with pytest.raises(ce.UnauthorizedError) as info:
        await engine.authenticate(None)
    assert isinstance(info.value, ce.AuthError)
    assert (info.value.code, info.value.http_status) == ("unauthorized", 401)
    with pytest.raises(ce.UnauthorizedError):
        await engine.authenticate("Basic abc")
    with pytest.raises(ce.UnauthorizedError):
        await engine.process(create_thread("hi"), ce.RequestContext("  "))
    with pytest.raises(ce.NotFoundError):
        await engine.run_task_tool("no_such_tool", {}, ctx)

    # codes the core may add later still get a sensible class
    assert ce.error_class("token_expired", 401) is ce.AuthError
    assert ce.error_class("forbidden", 403) is ce.ForbiddenError
    assert ce.error_class("something_new", 418) is ce.ChatKitError
    late = ce.errors._from_core("jwks_unavailable", 503, "jwks down", b"{}")
    assert isinstance(late, ce.AuthError) and late.http_status == 503 and late.code == "jwks_unavailable"


async def test_authenticate_verifies_hs256_tokens(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, jwt_secret=JWT_SECRET)
    ctx = await engine.authenticate("Bearer " + make_token("alice", email="a@example.com", name="Alice"))
    assert ctx == ce.RequestContext("alice", email="a@example.com", name="Alice")
    assert ctx.user_id == "alice" and ctx.email == "a@example.com" and ctx.name == "Alice"
    with pytest.raises(ce.AuthError) as info:
        await engine.authenticate("Bearer " + make_token("alice")[:-4] + "AAAA")
    assert info.value.http_status == 401
    expired = make_token("alice", exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    with pytest.raises(ce.AuthError):
        await engine.authenticate("Bearer " + expired)


async def test_a_python_tool_is_called_by_the_agent_on_the_callers_loop(
    sqlite_url: str, fake_provider: Dict[str, Any]
) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, **fake_provider)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    calls: List[Dict[str, Any]] = []
    loop = asyncio.get_running_loop()

    @engine.tool(
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    async def lookup_weather(ctx: ce.ToolContext, args: Dict[str, Any]) -> Dict[str, Any]:
        """The weather in a city."""
        assert asyncio.get_running_loop() is loop
        await asyncio.sleep(0.01)
        calls.append({"ctx": ctx, "args": args, "request_id": request_id.get()})
        return {"city": args["city"], "forecast": "sunny", "for": ctx["user_id"]}

    request_id.set("req-42")
    ctx = ce.RequestContext("alice", email="alice@example.com")
    result = await engine.process(create_thread("what is the weather?"), ctx)
    events = parse_sse(await collect(result))
    assert engine.model_name == "fake-model"
    assert len(calls) == 1
    call = calls[0]
    assert call["args"] == {"city": "Lahore"}
    assert call["ctx"]["user_id"] == "alice" and call["ctx"]["email"] == "alice@example.com"
    assert call["ctx"]["call_id"] == "call_weather_1"
    assert call["request_id"] == "req-42", "the tool sees the request's contextvars"
    done = [e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"]
    text = done[-1]["content"][0]["text"]
    assert "sunny" in text and "alice" in text

    with pytest.raises(RuntimeError, match="before"):
        engine.add_tool(lookup_weather, name="late")


async def test_tool_errors_go_back_to_the_model_and_sync_functions_are_refused(
    sqlite_url: str, fake_provider: Dict[str, Any]
) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, **fake_provider)

    async def lookup_weather(ctx: ce.ToolContext, args: Dict[str, Any]) -> str:
        raise LookupError("no station in " + args["city"])

    engine.add_tool(lookup_weather, description="weather")
    with pytest.raises(TypeError):
        engine.add_tool(lambda ctx, args: "sync", name="sync_tool")  # type: ignore[arg-type]
    result = await engine.process(create_thread("weather please"), ce.RequestContext("alice"))
    events = parse_sse(await collect(result))
    done = [e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"]
    assert "LookupError: no station in Lahore" in done[-1]["content"][0]["text"]


async def test_a_python_tool_can_replace_a_task_tool_with_the_offline_model(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url)
    seen: List[str] = []

    @engine.tool(name="get_stats", description="Task statistics")
    async def stats(ctx: ce.ToolContext, args: Dict[str, Any]) -> Dict[str, Any]:
        seen.append(ctx["user_id"] or "")
        return {"success": True, "data": {"total": 41, "pending": 40, "completed": 1}}

    result = await engine.process(create_thread("how many tasks do I have?"), ce.RequestContext("carol"))
    text = (await collect(result)).decode()
    assert seen == ["carol"]
    assert "41" in text


def _listed(title: str) -> Dict[str, Any]:
    """A `list_tasks` envelope with one task, as the offline model reads it."""
    task = {"id": "t-1", "title": title, "completed": False, "priority": "medium"}
    return {"success": True, "data": [task]}


async def test_two_concurrent_requests_of_one_user_each_run_their_tool_with_their_own_contextvars(
    sqlite_url: str,
) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")
    seen: Dict[str, str] = {}  # the status a turn asked for -> the request id its tool call saw
    both_in_tool = asyncio.Event()

    @engine.tool(name="list_tasks", description="The user's tasks")
    async def list_tasks(ctx: ce.ToolContext, args: Dict[str, Any]) -> Dict[str, Any]:
        # The offline model passes {"status": ...} from the message, so the
        # arguments tell which request this call serves.
        seen[args["status"]] = request_id.get()
        if len(seen) == 2:
            both_in_tool.set()
        # Neither call returns before the other one started: the two turns overlap.
        await asyncio.wait_for(both_in_tool.wait(), timeout=20)
        return _listed(f"seen by {request_id.get()}")

    async def turn(rid: str, message: str) -> str:
        request_id.set(rid)
        result = await engine.process(create_thread(message), ce.RequestContext("alice"))
        return (await collect(result)).decode()

    pending, completed = await asyncio.gather(
        turn("req-pending", "show my pending tasks"),
        turn("req-completed", "show my completed tasks"),
    )
    assert seen == {"pending": "req-pending", "completed": "req-completed"}
    assert "seen by req-pending" in pending and "seen by req-completed" not in pending
    assert "seen by req-completed" in completed and "seen by req-pending" not in completed


def test_two_concurrent_requests_of_one_user_on_two_event_loops_each_run_their_tool_on_their_own_loop(
    sqlite_url: str,
) -> None:
    import threading

    engine = ce.ChatEngine(database_url=sqlite_url)
    loops: Dict[str, asyncio.AbstractEventLoop] = {}
    ran_on: Dict[str, asyncio.AbstractEventLoop] = {}
    outputs: Dict[str, str] = {}
    lock = threading.Lock()
    both_in_tool = threading.Event()
    both_sending = threading.Barrier(2, timeout=20)

    @engine.tool(name="list_tasks", description="The user's tasks")
    async def list_tasks(ctx: ce.ToolContext, args: Dict[str, Any]) -> Dict[str, Any]:
        with lock:
            ran_on[args["status"]] = asyncio.get_running_loop()
            if len(ran_on) == 2:
                both_in_tool.set()
        deadline = time.monotonic() + 20
        while not both_in_tool.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return _listed(f"listed for {args['status']}")

    def serve(status: str) -> None:
        async def turn() -> str:
            loops[status] = asyncio.get_running_loop()
            both_sending.wait()
            result = await engine.process(create_thread(f"show my {status} tasks"), ce.RequestContext("alice"))
            return (await collect(result)).decode()

        outputs[status] = asyncio.run(asyncio.wait_for(turn(), timeout=60))

    threads = [threading.Thread(target=serve, args=(status,)) for status in ("pending", "completed")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    owner = {id(loop): status for status, loop in loops.items()}
    # which request's loop each turn's tool call ran on
    assert {status: owner.get(id(loop)) for status, loop in ran_on.items()} == {
        "pending": "pending",
        "completed": "completed",
    }
    assert "listed for pending" in outputs["pending"] and "listed for completed" in outputs["completed"]


async def test_aclose_cancels_the_turn_and_keeps_the_partial_text(
    sqlite_url: str, fake_provider: Dict[str, Any]
) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, **fake_provider)
    ctx = ce.RequestContext("alice")
    result = await engine.process(create_thread("tell me something slow"), ctx)
    received = b""
    async for chunk in result:
        received += chunk
        if received.count(b"assistant_message.content_part.text_delta") >= 5:
            break
    thread_id = parse_sse(received)[0]["thread"]["id"]
    await result.aclose()
    await result.aclose()  # idempotent
    assert await collect(result) == b""

    texts: List[str] = []
    for _ in range(100):
        thread = json.loads((await engine.process(get_thread(thread_id), ctx)).json)
        texts = [t for t in assistant_text(thread) if t]
        if texts:
            break
        await asyncio.sleep(0.05)
    assert texts, "the partial answer was persisted"
    assert texts[-1].startswith("word0 word1") and "word59" not in texts[-1]
    # the thread is free again: a new turn runs
    follow_up = await engine.process(add_message(thread_id, "hello"), ctx)
    assert b"Hello from the fake model." in await collect(follow_up)


async def test_cancelling_a_pending_anext_cancels_the_turn(
    sqlite_url: str, fake_provider: Dict[str, Any]
) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, **fake_provider)
    ctx = ce.RequestContext("alice")
    result = await engine.process(create_thread("slow please"), ctx)
    first = await result.__anext__()
    thread_id = parse_sse(first)[0]["thread"]["id"]
    # a consumer that stops waiting, as a server does when the client is gone
    with pytest.raises(asyncio.TimeoutError):
        while True:
            await asyncio.wait_for(result.__anext__(), timeout=0.01)
    assert await collect(result) == b""
    for _ in range(100):
        thread = json.loads((await engine.process(get_thread(thread_id), ctx)).json)
        if [t for t in assistant_text(thread) if t]:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the partial answer was not persisted")


async def test_a_paced_models_tokens_reach_the_iterator_one_by_one_before_the_turn_ends(
    sqlite_url: str, fake_provider: Dict[str, Any]
) -> None:
    # Each token leaves the provider only after the previous one came out of
    # the iterator: an iterator that waited for more frames to batch (or for
    # the end of the turn) would never see the next token, and this test
    # would fail at its deadline instead.
    engine = ce.ChatEngine(database_url=sqlite_url, **fake_provider)
    ctx = ce.RequestContext("alice")
    GATE.reset()
    result = await engine.process(create_thread("a gated answer please"), ctx)
    received = b""
    for i in range(GATED_TOKENS):
        GATE.release()
        while f"gated{i} ".encode() not in received:
            received += await asyncio.wait_for(result.__anext__(), timeout=60)
        assert f"gated{i + 1}".encode() not in received
        done = [e for e in parse_sse(received) if e["type"] == "thread.item.done"]
        assert not [e for e in done if e["item"]["type"] == "assistant_message"], "the answer is not finished yet"
    rest = await collect(result)
    events = parse_sse(received + rest)
    deltas = [
        e["update"]["delta"]
        for e in events
        if e["type"] == "thread.item.updated" and e["update"]["type"] == "assistant_message.content_part.text_delta"
    ]
    assert "".join(deltas) == "".join(f"gated{i} " for i in range(GATED_TOKENS))
    assert [e for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"]


async def test_engine_work_does_not_block_the_event_loop(sqlite_url: str) -> None:
    # A paced offline model keeps every turn waiting inside the engine for at
    # least 8 x 50 ms; a loop blocked by engine work would not tick at all
    # meanwhile, a free one ticks every few milliseconds.
    engine = ce.ChatEngine(database_url=sqlite_url, dev_token_delay_ms=50)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    await engine.start()  # opens the database and runs migrations on the engine runtime
    task = asyncio.create_task(ticker())
    ctx = ce.RequestContext("alice")
    results = await asyncio.gather(*(engine.process(create_thread(f"add task t{i}"), ctx) for i in range(10)))
    await asyncio.gather(*(collect(r) for r in results))
    stop.set()
    await task
    assert ticks >= 5, f"the event loop ticked only {ticks} times during 10 turns"


async def test_other_threads_keep_running_while_the_engine_works(sqlite_url: str) -> None:
    import threading

    # Paced, so the turn lasts long enough for the other thread to run.
    engine = ce.ChatEngine(database_url=sqlite_url, dev_token_delay_ms=20)
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        before = counter[0]
        result = await engine.process(create_thread("add task spin"), ce.RequestContext("alice"))
        await collect(result)
        assert counter[0] > before
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_an_engine_used_before_fork_works_in_the_child(tmp_path: Any) -> None:
    engine = ce.ChatEngine(database_url=f"sqlite://{tmp_path / 'fork.db'}")

    async def one_turn(user: str) -> bytes:
        result = await engine.process(create_thread(f"add task from {user}"), ce.RequestContext(user))
        return await collect(result)

    assert b"thread.created" in asyncio.run(one_turn("parent"))
    pid = os.fork()
    if pid == 0:  # child: must not hang on the parent's runtime or pools
        code = 1
        try:
            out = asyncio.run(asyncio.wait_for(one_turn("child"), timeout=20))
            code = 0 if b"thread.created" in out else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"
    # the parent still works
    assert b"thread.created" in asyncio.run(one_turn("parent-again"))
