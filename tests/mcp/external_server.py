"""A small external MCP server (official Python SDK) for the client tests.

    python external_server.py stdio [--pidfile FILE]
    python external_server.py http --port PORT [--pidfile FILE]

Tools: `add`, `whoami` (echoes the `x-tenant` header and the `tenant` _meta
field it was called with), `slow` (sleeps), `fail` (a tool error), `pid`
(which process answered) and `grow` (adds the tool `late` and announces
`notifications/tools/list_changed`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer(name="external-test-server")


@server.tool()
def add(a: int, b: int) -> dict:
    """Adds two integers."""
    return {"sum": a + b}


@server.tool()
def whoami(ctx: Context) -> dict:
    """Reports the tenant credentials this call carried."""
    headers = ctx.headers or {}
    meta = ctx.request_context.meta
    meta_tenant = None
    if meta is not None:
        dumped = meta if isinstance(meta, dict) else meta.model_dump()
        meta_tenant = dumped.get("tenant")
    return {"header_tenant": headers.get("x-tenant"), "meta_tenant": meta_tenant}


@server.tool()
async def slow(seconds: float) -> dict:
    """Sleeps, then answers."""
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@server.tool()
def fail() -> dict:
    """Always fails."""
    raise ValueError("this tool always fails")


@server.tool()
def pid() -> dict:
    """The process id of the server."""
    return {"pid": os.getpid()}


def late() -> dict:
    """A tool that exists only after `grow`."""
    return {"late": True}


@server.tool()
async def grow(ctx: Context) -> dict:
    """Adds the tool `late` and tells the client the list changed."""
    server.add_tool(late)
    # Sessions of protocol versions before 2026-07-28 get the plain
    # notification; `subscriptions/listen` subscribers get the bus event.
    await ctx.session.send_tool_list_changed()
    await ctx.notify_tools_changed()
    return {"grown": True}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pidfile")
    args = parser.parse_args()
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))
    if args.transport == "stdio":
        server.run("stdio")
    else:
        print(f"listening on {args.port}", file=sys.stderr, flush=True)
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
