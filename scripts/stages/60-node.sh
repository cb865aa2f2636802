# Stage: the Node binding and the Next.js example (sourced by scripts/test).
#
# 1. bindings-node: `npm ci` when node_modules is missing or older than the
#    lock file; build the addon (`napi build --platform`, debug, stripped)
#    into native/ and fail if the generated native/index.{js,d.ts} differ
#    from the committed ones; compile the TypeScript layer (tsc -> dist/);
#    run the node:test suites in __test__/ (SQLite and PostgreSQL at
#    DATABASE_URL, cancellation, JS tools, error codes).
# 2. examples/nextjs: `npm ci` (it copies the built binding into
#    node_modules: .npmrc has install-links=true) when node_modules is
#    missing, older than the lock file, or holds another build of the addon;
#    the addon just built is copied next to the installed loader (the npm
#    package does not contain it); `next build` (offline, telemetry off);
#    node:test runs `next start` and
#    drives /api/chatkit over HTTP through whole turns.
#
# Environment from scripts/test: ROOT, CARGO_TARGET_DIR, CARGO_LOCKED (array),
# DATABASE_URL.

require_node
export NEXT_TELEMETRY_DISABLED=1

# ---- bindings-node -----------------------------------------------------------
if npm_stale "$ROOT/bindings-node"; then
  npm_install "$ROOT/bindings-node"
fi
cd "$ROOT/bindings-node"

npx napi build --platform --no-const-enum --strip --output-dir native \
  -- ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"}
if git -C "$ROOT" ls-files --error-unmatch bindings-node/native/index.d.ts >/dev/null 2>&1 &&
   ! git -C "$ROOT" diff --quiet -- bindings-node/native/index.d.ts bindings-node/native/index.js; then
  git -C "$ROOT" diff --stat -- bindings-node/native/
  echo "bindings-node/native/index.{js,d.ts} changed: commit the regenerated files" >&2
  exit 1
fi
npx tsc -p tsconfig.json
node --test --test-concurrency=1 __test__/

# ---- examples/nextjs ---------------------------------------------------------
cd "$ROOT/examples/nextjs"
addon="$(ls "$ROOT"/bindings-node/native/*.node)"
installed="node_modules/chatkit-engine/native/$(basename "$addon")"
if npm_stale "$ROOT/examples/nextjs" ||
   ! diff -rq "$ROOT/bindings-node/dist" node_modules/chatkit-engine/dist >/dev/null; then
  # npm ci copies the binding just built into node_modules.
  npm_install "$ROOT/examples/nextjs"
fi
# The package does not contain the addon (from a registry it comes from the
# per-platform package, see 90-packages.sh): put the one just built next to
# the installed loader, where the loader looks first.
cmp -s "$addon" "$installed" || cp "$addon" "$installed"
npx next build
node --test test/
