"""Fixtures of the MCP interop tests: our `mcp-stdio` binary and our
Streamable HTTP service (core example `mcp_http_server`), driven by the
official MCP Python SDK.

Environment (set by scripts/stages/30-mcp.sh):
    CHATKIT_MCP_STDIO_BIN  path of the built `mcp-stdio` binary
    CHATKIT_MCP_HTTP_BIN   path of the built `mcp_http_server` example
A missing variable is a collection error, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import jwt
import pytest

SECRET = "mcp-interop-test-secret-0123456789abcdef"


def _binary(var: str) -> str:
    path = os.environ.get(var)
    if not path or not Path(path).is_file():
        raise pytest.UsageError(f"{var} must name a built binary (got {path!r}); run scripts/stages/30-mcp.sh")
    return path


@pytest.fixture(scope="session")
def stdio_bin() -> str:
    return _binary("CHATKIT_MCP_STDIO_BIN")


@pytest.fixture(scope="session")
def http_bin() -> str:
    return _binary("CHATKIT_MCP_HTTP_BIN")


def token(sub: str, secret: str = SECRET) -> str:
    """An HS256 token for `sub`, valid for ten minutes."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 600}, secret, algorithm="HS256")


@pytest.fixture()
def database_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'mcp.db'}"


@pytest.fixture()
def engine_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    env.update({"DATABASE_URL": database_url, "JWT_SECRET": SECRET, "RUST_LOG": "warn"})
    return env


@pytest.fixture()
def http_server(http_bin: str, engine_env: dict[str, str]):
    """Our MCP service on 127.0.0.1; yields its URL."""
    proc = subprocess.Popen([http_bin], env=engine_env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("PORT="), f"unexpected first line {line!r} (exit {proc.poll()})"
        yield f"http://127.0.0.1:{line.removeprefix('PORT=')}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
