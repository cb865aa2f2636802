# MCP interop (sourced by scripts/test with ROOT, VENV, CARGO_TARGET_DIR, CARGO_LOCKED set).
#
# 1. The official MCP Python SDK client drives our server: the `mcp-stdio`
#    binary and the Streamable HTTP service (core example `mcp_http_server`),
#    with two JWTs proving per-user isolation (tests/mcp, pytest).
# 2. An agent uses tools of an external MCP server written with the same SDK
#    (tests/mcp/external_server.py), over HTTP and stdio, across server
#    restarts: the `#[ignore]`d Rust tests of core/tests/mcp_client.rs, run
#    here and only here because they need Python.
cd "$ROOT"
"$VENV/bin/pip" install -q -r tests/mcp/requirements.txt

cargo build "${CARGO_LOCKED[@]}" -q -p chatkit-engine-examples --bin mcp-stdio
cargo build "${CARGO_LOCKED[@]}" -q -p chatkit-engine --example mcp_http_server

CHATKIT_MCP_STDIO_BIN="$CARGO_TARGET_DIR/debug/mcp-stdio" \
CHATKIT_MCP_HTTP_BIN="$CARGO_TARGET_DIR/debug/examples/mcp_http_server" \
  "$VENV/bin/python" -m pytest -q tests/mcp

CHATKIT_TEST_PYTHON="$VENV/bin/python" \
  cargo nextest run "${CARGO_LOCKED[@]}" -p chatkit-engine --test mcp_client --run-ignored only
