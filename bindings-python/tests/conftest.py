"""Shared fixtures: databases, tokens, a fake OpenAI-compatible provider, a
real uvicorn server on loopback, and SSE helpers. No test uses the network
beyond 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional
from urllib.parse import urlsplit, urlunsplit

import jwt
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "fastapi"))

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
ADMIN_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


# --------------------------------------------------------------------------- tokens


def make_token(user_id: str, **claims: Any) -> str:
    """An HS256 JWT for `user_id`, valid for an hour."""
    now = int(time.time())
    payload = {"sub": user_id, "iat": now, "exp": now + 3600, **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def bearer(user_id: str, **claims: Any) -> Dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id, **claims)}"}


# --------------------------------------------------------------------------- databases


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'chatkit.db'}"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the DATABASE_URL server, dropped after."""
    import psycopg

    name = f"chatkit_py_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        for attempt in range(5):
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.errors.ObjectInUse:
                # concurrent CREATE DATABASE on the template; retry
                time.sleep(0.2 * (attempt + 1))
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)


# --------------------------------------------------------------------------- requests and SSE


def create_thread(text: str) -> bytes:
    return json.dumps(
        {
            "type": "threads.create",
            "params": {"input": {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}},
        }
    ).encode()


def add_message(thread_id: str, text: str) -> bytes:
    return json.dumps(
        {
            "type": "threads.add_user_message",
            "params": {
                "thread_id": thread_id,
                "input": {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}},
            },
        }
    ).encode()


def get_thread(thread_id: str) -> bytes:
    return json.dumps({"type": "threads.get_by_id", "params": {"thread_id": thread_id}}).encode()


def parse_sse(data: bytes) -> List[Dict[str, Any]]:
    """The events of an SSE body (or of concatenated frames)."""
    events = []
    for frame in data.split(b"\n\n"):
        frame = frame.strip()
        if frame.startswith(b"data: "):
            events.append(json.loads(frame[len(b"data: ") :]))
    return events


def assistant_text(thread: Dict[str, Any]) -> List[str]:
    """The texts of the assistant messages of a `threads.get_by_id` document."""
    texts = []
    for item in thread["items"]["data"]:
        if item["type"] == "assistant_message":
            texts.append("".join(part.get("text", "") for part in item["content"]))
    return texts


# --------------------------------------------------------------------------- servers


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread (one worker,
    one event loop)."""

    def __init__(self, app: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Gate:
    """Lets a test release a gated answer's tokens one at a time (the
    provider runs on uvicorn's thread, the test on its own loop)."""

    def __init__(self) -> None:
        self._released = 0
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            self._released += 1

    def released(self) -> int:
        with self._lock:
            return self._released

    def reset(self) -> None:
        with self._lock:
            self._released = 0


GATE = Gate()
GATED_TOKENS = 3


class FakeProvider:
    """A scripted OpenAI-compatible provider:

    - a user message containing "weather" (with the `lookup_weather` tool
      offered) gets a call of that tool; its result comes back as the answer
      "Tool said: <result>";
    - "slow" gets 60 words, one every 50 ms (for cancellation tests);
    - "gated" gets ``GATED_TOKENS`` words, each sent only once the test
      released it with ``GATE.release()`` (one gated turn at a time);
    - anything else gets "Hello from the fake model."

    When the request asks for it (`stream_options.include_usage`), the last
    chunk reports 11 prompt and 7 completion tokens, as OpenAI does.
    """

    PROMPT_TOKENS = 11
    COMPLETION_TOKENS = 7

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request) -> StreamingResponse:
        body = await request.json()
        self.requests.append(body)
        messages = body.get("messages", [])
        last = messages[-1] if messages else {}
        tools = [t["function"]["name"] for t in body.get("tools", [])]
        user_text = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(user_text, list):
            user_text = " ".join(p.get("text", "") for p in user_text)

        async def stream() -> AsyncIterator[bytes]:
            if last.get("role") == "tool":
                yield _chunk({"role": "assistant", "content": f"Tool said: {last.get('content')}"})
                yield _chunk({}, "stop")
            elif "weather" in user_text and "lookup_weather" in tools:
                call = {
                    "index": 0,
                    "id": "call_weather_1",
                    "type": "function",
                    "function": {"name": "lookup_weather", "arguments": json.dumps({"city": "Lahore"})},
                }
                yield _chunk({"role": "assistant", "tool_calls": [call]})
                yield _chunk({}, "tool_calls")
            elif "gated" in user_text:
                deadline = time.monotonic() + 60
                for i in range(GATED_TOKENS):
                    while GATE.released() <= i and time.monotonic() < deadline:
                        await asyncio.sleep(0.01)
                    yield _chunk({"content": f"gated{i} "})
                yield _chunk({}, "stop")
            elif "slow" in user_text:
                for i in range(60):
                    yield _chunk({"content": f"word{i} "})
                    await asyncio.sleep(0.05)
                yield _chunk({}, "stop")
            else:
                yield _chunk({"role": "assistant", "content": "Hello from the fake model."})
                yield _chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake-model",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": self.PROMPT_TOKENS,
                        "completion_tokens": self.COMPLETION_TOKENS,
                        "total_tokens": self.PROMPT_TOKENS + self.COMPLETION_TOKENS,
                    },
                }
                yield b"data: " + json.dumps(usage).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[Dict[str, Any]]:
    """Config keys that point the engine at the fake provider."""
    provider = FakeProvider()
    with ServerThread(provider.app) as server:
        yield {
            "openai_api_key": "test-key",
            "openai_base_url": f"{server.url}/v1",
            "chat_model": "fake-model",
        }
