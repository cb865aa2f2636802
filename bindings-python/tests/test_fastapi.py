"""The FastAPI example (examples/fastapi/app.py) end to end: over httpx's
ASGI transport and through a real uvicorn worker on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Dict, List

import httpx
import pytest

import chatkit_engine as ce
from app import create_app
from conftest import (
    JWT_SECRET,
    ServerThread,
    add_message,
    assistant_text,
    bearer,
    create_thread,
    get_thread,
    parse_sse,
)


def asgi_client(engine: ce.ChatEngine) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)), base_url="http://app")


async def test_full_turns_through_fastapi_share_the_tasks_table(database_url: str) -> None:
    engine = ce.ChatEngine(database_url=database_url, jwt_secret=JWT_SECRET)
    alice = bearer("alice", email="alice@example.com")
    async with asgi_client(engine) as client:
        # chat creates a task
        reply = await client.post("/chatkit", content=create_thread("add task buy milk"), headers=alice)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(reply.content)
        assert events[0]["type"] == "thread.created"
        thread_id = events[0]["thread"]["id"]

        # the REST routes see it
        listed = await client.get("/api/alice/tasks", headers=alice)
        assert listed.status_code == 200
        [task] = listed.json()
        assert task["title"].lower() == "buy milk" and task["userId"] == "alice"

        # a task made through REST is visible to the chat
        made = await client.post("/api/alice/tasks", json={"title": "Call mom", "priority": "high"}, headers=alice)
        assert made.status_code == 201 and made.json()["priority"] == "high"
        reply = await client.post("/chatkit", content=add_message(thread_id, "show my tasks"), headers=alice)
        assert "Call mom" in reply.text

        # the rest of the REST surface
        task_id = made.json()["id"]
        assert (await client.get(f"/api/alice/tasks/{task_id}", headers=alice)).json()["title"] == "Call mom"
        updated = await client.put(f"/api/alice/tasks/{task_id}", json={"title": "Call mum"}, headers=alice)
        assert updated.json()["title"] == "Call mum"
        toggled = await client.patch(f"/api/alice/tasks/{task_id}/complete", headers=alice)
        assert toggled.json()["completed"] is True
        stats = await client.get("/api/alice/stats", headers=alice)
        assert stats.json() == {"total": 2, "pending": 1, "completed": 1}
        filtered = await client.get("/api/alice/tasks", params={"status": "completed"}, headers=alice)
        assert [t["title"] for t in filtered.json()] == ["Call mum"]
        assert (await client.delete(f"/api/alice/tasks/{task_id}", headers=alice)).status_code == 204
        assert (await client.get(f"/api/alice/tasks/{task_id}", headers=alice)).status_code == 404

        # JSON requests come back as JSON
        doc = await client.post("/chatkit", content=get_thread(thread_id), headers=alice)
        assert doc.headers["content-type"] == "application/json"
        assert len(assistant_text(doc.json())) == 2
        # the app's path answers the same
        same = await client.post("/api/chatkit", content=get_thread(thread_id), headers=alice)
        assert same.json() == doc.json()


async def test_errors_become_json_with_the_right_status(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, jwt_secret=JWT_SECRET, max_body_bytes=4096)
    alice = bearer("alice")
    async with asgi_client(engine) as client:
        cases = [
            (None, create_thread("hi"), 401, "unauthorized"),
            ({"Authorization": "Bearer not-a-jwt"}, create_thread("hi"), 401, None),
            (alice, b"{", 400, "invalid_request"),
            (alice, get_thread("thr_missing"), 404, "not_found"),
            (alice, create_thread("x" * 10_000), 413, "payload_too_large"),
        ]
        for headers, body, status, code in cases:
            reply = await client.post("/chatkit", content=body, headers=headers or {})
            assert reply.status_code == status, reply.text
            assert reply.headers["content-type"] == "application/json"
            if code:
                assert reply.json()["error"]["code"] == code
        assert (await client.get("/api/bob/tasks", headers=alice)).status_code == 403
        assert (await client.get("/api/alice/tasks")).status_code == 401
        bad = await client.post("/api/alice/tasks", json={"title": ""}, headers=alice)
        assert bad.status_code == 400
        assert (await client.get("/api/alice/tasks/not-a-uuid", headers=alice)).status_code in (400, 404)


async def _read_some_then_disconnect(url: str, headers: Dict[str, str], body: bytes, deltas: int) -> str:
    """POSTs over a raw socket, reads until `deltas` text deltas arrived,
    then closes the connection. Returns the thread id."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = [
        "POST /chatkit HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
        "",
        "",
    ]
    writer.write("\r\n".join(head).encode() + body)
    await writer.drain()
    received = b""
    while received.count(b"content_part.text_delta") < deltas:
        chunk = await asyncio.wait_for(reader.read(65536), timeout=10)
        assert chunk, "the server closed the stream early"
        received += chunk
    writer.transport.abort()  # the client goes away mid-stream
    start = received.index(b"data: ")
    return json.loads(received[start + 6 : received.index(b"\n", start)])["thread"]["id"]


async def test_a_client_that_disconnects_mid_stream_cancels_the_turn(
    sqlite_url: str, fake_provider: Dict[str, Any]
) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, jwt_secret=JWT_SECRET, **fake_provider)
    alice = bearer("alice")
    with ServerThread(create_app(engine)) as server:
        thread_id = await _read_some_then_disconnect(server.url, alice, create_thread("a slow story"), 5)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            texts: List[str] = []
            for _ in range(100):
                doc = await client.post("/chatkit", content=get_thread(thread_id), headers=alice)
                texts = [t for t in assistant_text(doc.json()) if t]
                if texts:
                    break
                await asyncio.sleep(0.05)
            assert texts, "the partial answer was persisted"
            assert texts[-1].startswith("word0") and "word59" not in texts[-1], texts[-1]
            # the turn is over (no "thread busy"): a new message gets a full answer
            reply = await client.post("/chatkit", content=add_message(thread_id, "hi"), headers=alice)
            assert "Hello from the fake model." in reply.text


async def test_fifty_concurrent_streams_through_one_uvicorn_worker(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url, jwt_secret=JWT_SECRET)
    with ServerThread(create_app(engine)) as server:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:

            async def one(i: int) -> List[Dict[str, Any]]:
                headers = bearer(f"user{i % 5}")
                async with client.stream("POST", "/chatkit", content=create_thread(f"add task job {i}"), headers=headers) as reply:
                    assert reply.status_code == 200
                    body = b"".join([chunk async for chunk in reply.aiter_bytes()])
                return parse_sse(body)

            results = await asyncio.gather(*(one(i) for i in range(50)))
            for events in results:
                types = [e["type"] for e in events]
                assert types[0] == "thread.created"
                assert "error" not in types
                assert any(
                    e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message" for e in events
                )
            total = 0
            for u in range(5):
                listed = await client.get(f"/api/user{u}/tasks", headers=bearer(f"user{u}"))
                total += len(listed.json())
            assert total == 50
