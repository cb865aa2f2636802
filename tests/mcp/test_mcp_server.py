"""Our MCP server, as the official MCP Python SDK client sees it.

Over stdio (the `mcp-stdio` binary, user from `--token`) and over
Streamable HTTP (user from `Authorization: Bearer`), the client lists the 7
task tools with their schemas and calls `create_task` / `list_tasks`; two
tokens prove that each user sees only their own tasks.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from conftest import token
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

TASK_TOOLS = {
    "create_task",
    "list_tasks",
    "get_task",
    "update_task",
    "delete_task",
    "toggle_complete",
    "get_stats",
}


@asynccontextmanager
async def stdio_session(binary: str, env: dict[str, str], *args: str):
    params = StdioServerParameters(command=binary, args=list(args), env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(url: str, bearer: str):
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
    async with client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def payload(result) -> dict:
    """The tool's JSON: the text block and the structured content must agree."""
    assert len(result.content) == 1 and result.content[0].type == "text"
    data = json.loads(result.content[0].text)
    assert result.structured_content == data
    return data


async def check_tools(session: ClientSession) -> None:
    listed = await session.list_tools()
    by_name = {tool.name: tool for tool in listed.tools}
    assert set(by_name) == TASK_TOOLS
    create = by_name["create_task"]
    assert create.description
    assert create.input_schema["type"] == "object"
    assert "title" in create.input_schema["properties"]
    assert "title" in create.input_schema.get("required", [])
    assert "user_id" not in create.input_schema["properties"]


async def create(session: ClientSession, title: str) -> dict:
    result = await session.call_tool("create_task", {"title": title, "priority": "high"})
    assert result.is_error is False
    data = payload(result)
    assert data["success"] is True
    assert data["data"]["title"] == title
    return data["data"]


async def titles(session: ClientSession) -> list[str]:
    result = await session.call_tool("list_tasks", {})
    assert result.is_error is False
    data = payload(result)
    assert data["success"] is True
    return sorted(task["title"] for task in data["data"])


async def check_tool_error(session: ClientSession) -> None:
    """A failing tool is an MCP tool error, not a protocol failure."""
    result = await session.call_tool("create_task", {"title": ""})
    assert result.is_error is True
    data = payload(result)
    assert data["success"] is False and data["error"]
    result = await session.call_tool("get_task", {"task_id": "00000000-0000-0000-0000-000000000000"})
    assert result.is_error is True
    assert payload(result)["success"] is False


def test_stdio_lists_and_calls_tools_per_token(stdio_bin, engine_env):
    async def main():
        async with stdio_session(stdio_bin, engine_env, "--token", token("alice")) as alice:
            await check_tools(alice)
            await create(alice, "Buy milk")
            await create(alice, "Call mom")
            assert await titles(alice) == ["Buy milk", "Call mom"]
            await check_tool_error(alice)
        # Same database, another token: another user.
        async with stdio_session(stdio_bin, engine_env, "--token", token("bob")) as bob:
            assert await titles(bob) == []
            await create(bob, "Bob's task")
            assert await titles(bob) == ["Bob's task"]
        async with stdio_session(stdio_bin, engine_env, "--token", token("alice")) as alice:
            assert await titles(alice) == ["Buy milk", "Call mom"]

    anyio.run(main)


def test_stdio_refuses_a_bad_token(stdio_bin, engine_env):
    import subprocess

    for args in (["--token", token("alice", secret="another-secret-0123456789abcdefghij")], []):
        proc = subprocess.run([stdio_bin, *args], env=engine_env, input="", capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert "unauthorized" in proc.stderr.lower() or "token" in proc.stderr.lower()
        assert proc.stdout == ""


def test_stdio_development_user_flag(stdio_bin, engine_env):
    async def main():
        async with stdio_session(stdio_bin, engine_env, "--user", "dev-user") as dev:
            await create(dev, "dev task")
            assert await titles(dev) == ["dev task"]

    anyio.run(main)


def test_http_lists_and_calls_tools_per_token(http_server):
    async def main():
        async with http_session(http_server, token("alice")) as alice, http_session(http_server, token("bob")) as bob:
            await check_tools(alice)
            await check_tools(bob)
            await create(alice, "Alice 1")
            await create(bob, "Bob 1")
            await create(alice, "Alice 2")
            assert await titles(alice) == ["Alice 1", "Alice 2"]
            assert await titles(bob) == ["Bob 1"]
            await check_tool_error(bob)

    anyio.run(main)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic YWxpY2U6cHc="},
    ],
)
def test_http_requires_a_bearer_token(http_server, headers):
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {**headers, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    response = httpx2.post(http_server, json=body, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"]

