# scripts/stages/40-browser.sh: the demo page of `serve` in a real browser.
#
# Sourced by scripts/test (ROOT, VENV, CARGO_TARGET_DIR, CARGO_LOCKED set).
# Builds serve, installs Debian's chromium when missing, installs
# playwright-core (tests/browser/package-lock.json), starts serve on a free
# loopback port with a temporary SQLite file in development identity mode
# (slowed stream, so the stop button can be pressed mid-answer), runs
# `node --test` in tests/browser (which reads the SQLite file, CHATKIT_DB,
# with python3's sqlite3 to compare the page with the database), and stops
# serve. Screenshots of the page
# are left in $CARGO_TARGET_DIR/browser-screenshots.

cargo build "${CARGO_LOCKED[@]}" -q -p chatkit-engine-examples --bin serve
SERVE_BIN="$CARGO_TARGET_DIR/debug/serve"

if [[ ! -x /usr/bin/chromium ]]; then
  echo "installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version

require_node
if npm_stale "$ROOT/tests/browser"; then
  npm_install "$ROOT/tests/browser"
fi
cd "$ROOT/tests/browser"

BROWSER_TMP="$(mktemp -d)"
SERVE_LOG="$BROWSER_TMP/serve.log"
SERVE_PID=""
stop_serve() {
  if [[ -n "$SERVE_PID" ]] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  rm -rf "$BROWSER_TMP"
}
trap stop_serve EXIT

# Development identity mode needs no JWT configuration: clear any from the
# environment, and the model settings so the offline model answers.
env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u CHAT_MODEL -u JWKS_URL -u JWKS \
    -u JWT_SECRET -u JWT_ISSUER -u JWT_AUDIENCE -u CHATKIT_WORKFLOW_ID -u CORS_ORIGINS \
  HOST=127.0.0.1 PORT=0 DATABASE_URL="sqlite://$BROWSER_TMP/chatkit.db" \
  CHATKIT_DEV_STREAM_DELAY_MS=120 RUST_LOG=warn \
  "$SERVE_BIN" >"$SERVE_LOG" 2>&1 &
SERVE_PID=$!

SERVE_URL=""
for _ in $(seq 1 100); do
  SERVE_URL="$(sed -n 's/^chatkit-engine serve .* listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$SERVE_LOG")"
  [[ -n "$SERVE_URL" ]] && break
  if ! kill -0 "$SERVE_PID" 2>/dev/null; then
    cat "$SERVE_LOG" >&2
    echo "serve exited before it listened" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$SERVE_URL" ]]; then
  cat "$SERVE_LOG" >&2
  echo "serve did not start listening within 10 s" >&2
  exit 1
fi
echo "serve is up at $SERVE_URL"

SERVE_URL="$SERVE_URL" CHATKIT_DB="$BROWSER_TMP/chatkit.db" SCREENSHOT_DIR="$CARGO_TARGET_DIR/browser-screenshots" node --test || {
  echo "--- serve log ---" >&2
  cat "$SERVE_LOG" >&2
  exit 1
}
