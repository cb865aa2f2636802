"""ChatKitEndpoint (chatkit_engine.asgi) and ChatEngine.handle(): the ChatKit
route as a plain ASGI app. The FastAPI example routes it (test_fastapi.py
drives it through a real uvicorn worker, disconnects included); these tests
call it directly."""

from __future__ import annotations

import json
from typing import AsyncIterator

import httpx
import pytest

import chatkit_engine as ce
from chatkit_engine.asgi import ChatKitEndpoint
from conftest import JWT_SECRET, bearer, create_thread, get_thread, parse_sse


def client_of(app: ChatKitEndpoint) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


@pytest.fixture
def engine(sqlite_url: str) -> ce.ChatEngine:
    return ce.ChatEngine(database_url=sqlite_url, jwt_secret=JWT_SECRET, max_body_bytes=4096)


async def test_a_signed_turn_streams_and_a_read_answers_json(engine: ce.ChatEngine) -> None:
    async with client_of(ChatKitEndpoint(engine)) as client:
        turn = await client.post("/", content=create_thread("add a task to call mum"), headers=bearer("alice"))
        assert turn.status_code == 200
        assert turn.headers["content-type"] == "text/event-stream"
        assert turn.headers["cache-control"] == "no-cache, no-transform"
        events = parse_sse(turn.content)
        assert events[0]["type"] == "thread.created"
        assert any(e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message" for e in events)

        thread_id = events[0]["thread"]["id"]
        read = await client.post("/", content=get_thread(thread_id), headers=bearer("alice"))
        assert read.status_code == 200
        assert read.headers["content-type"] == "application/json"
        assert read.json()["id"] == thread_id
        # Another user does not see it.
        foreign = await client.post("/", content=get_thread(thread_id), headers=bearer("mallory"))
        assert foreign.status_code == 404
        assert foreign.json()["error"]["code"] == "not_found"


async def test_refusals_are_json_errors_with_their_status(engine: ce.ChatEngine) -> None:
    async with client_of(ChatKitEndpoint(engine)) as client:
        unsigned = await client.post("/", content=create_thread("hi"))
        assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (401, "unauthorized")
        bad = await client.post("/", content=b"{", headers=bearer("alice"))
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_request")
        get = await client.get("/")
        assert (get.status_code, get.headers["allow"]) == (405, "POST")
        two = [("authorization", bearer("alice")["Authorization"]), ("authorization", bearer("bob")["Authorization"])]
        doubled = await client.post("/", content=create_thread("hi"), headers=two)
        assert doubled.status_code == 400
        assert doubled.json()["error"] == {
            "code": "invalid_request",
            "message": "invalid request: send exactly one Authorization header",
        }


async def test_a_body_over_the_limit_is_refused_without_reading_it_all(engine: ce.ChatEngine) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    async with client_of(ChatKitEndpoint(engine)) as client:
        declared = await client.post("/", content=b"y" * 5000, headers=bearer("alice"))
        assert (declared.status_code, declared.json()["error"]["code"]) == (413, "payload_too_large")
        # The same body, byte for byte, as serve and the Node binding answer.
        assert declared.content == (
            b'{"error":{"code":"payload_too_large","message":"the request body exceeds the limit of 4096 bytes"}}'
        )
        # Chunked, no Content-Length: refused once the limit is passed.
        streamed = await client.post("/", content=chunks(), headers=bearer("alice"))
        assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "payload_too_large")
        # Not signed in: unauthorized whatever the size, as serve answers.
        unsigned = await client.post("/", content=chunks())
        assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_hosts_own_caller_replaces_the_token(engine: ce.ChatEngine, kind: str) -> None:
    def from_header(scope: dict) -> ce.RequestContext:
        user = dict(scope["headers"])[b"x-user"].decode()
        return ce.RequestContext(user)

    async def from_header_async(scope: dict) -> ce.RequestContext:
        return from_header(scope)

    endpoint = ChatKitEndpoint(engine, context=from_header if kind == "sync" else from_header_async)
    async with client_of(endpoint) as client:
        turn = await client.post("/", content=create_thread("hello"), headers={"x-user": f"host-{kind}"})
        assert turn.status_code == 200
        thread_id = parse_sse(turn.content)[0]["thread"]["id"]
    owned = await engine.process(get_thread(thread_id), ce.RequestContext(f"host-{kind}"))
    assert json.loads(owned.json)["id"] == thread_id


async def test_handle_authenticates_and_processes_in_one_await(engine: ce.ChatEngine) -> None:
    result = await engine.handle(create_thread("hi"), "Bearer " + bearer("alice")["Authorization"].split()[1])
    assert result.streaming
    frames = b"".join([chunk async for chunk in result])
    thread_id = parse_sse(frames)[0]["thread"]["id"]
    given = await engine.handle(get_thread(thread_id), None, ce.RequestContext("alice"))
    assert json.loads(given.json)["id"] == thread_id
    with pytest.raises(ce.UnauthorizedError):
        await engine.handle(get_thread(thread_id), None)
    with pytest.raises(ce.NotFoundError):
        await engine.handle(get_thread(thread_id), None, ce.RequestContext("bob"))
    assert engine.max_body_bytes == 4096
