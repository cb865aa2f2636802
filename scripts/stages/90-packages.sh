# scripts/stages/90-packages.sh: the packages a user installs from a registry
# (sourced by scripts/test with ROOT, CARGO_TARGET_DIR, CARGO_LOCKED set).
#
# 0. Versions: the crate, the Python package and the npm packages (main and
#    per-platform) carry the same version.
# 1. Crate: `cargo package -p chatkit-engine` (which builds the packaged crate
#    on its own), and `cargo doc` of the crate with broken links refused.
# 2. Python: `maturin build` (CHATKIT_PKG_PROFILE) makes the abi3 wheel; `auditwheel show`
#    must find a manylinux tag; `maturin sdist` makes the sdist and a wheel is
#    built from it. The wheel goes into a fresh venv with only
#    `pip install <wheel> fastapi uvicorn`, and examples/fastapi (uvicorn on a
#    free loopback port, SQLite, HS256 secret) serves a whole turn.
#    `mypy --strict` checks the example against the installed package and
#    `python -m mypy.stubtest chatkit_engine` its stubs against the runtime.
# 3. Node: the per-platform package (napi's `npm/<platform>/` layout, addon
#    placed by `napi artifacts`) and the main package are packed with
#    `npm pack`; a fresh Next.js app (package.json + one route handler, in a
#    temp dir) installs both tarballs and next/react from npm, `tsc --strict`
#    checks it, `next build` builds it and `next start` serves a turn.
#
#   CHATKIT_PKG_CACHE    tools venv and npm cache, default /var/tmp/chatkit-engine-packages
#   CHATKIT_PKG_PROFILE  `dev` (default) or `release`: the profile of the wheel
#                        and the addon. dev reuses the debug build of the
#                        other stages; release builds what ships (the same
#                        packaging, optimised; CONTRIBUTING.md)

PKG_CACHE="${CHATKIT_PKG_CACHE:-/var/tmp/chatkit-engine-packages}"
PKG_PROFILE="${CHATKIT_PKG_PROFILE:-dev}"
PKG_TMP="$(mktemp -d /tmp/chatkit-packages.XXXXXX)"
PKG_PIDS=()
pkg_cleanup() {
  local pid
  for pid in ${PKG_PIDS[@]+"${PKG_PIDS[@]}"}; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$PKG_TMP"
}
trap pkg_cleanup EXIT
mkdir -p "$PKG_CACHE"
cd "$ROOT"

pkg_fail() {
  echo "90-packages: $*" >&2
  exit 1
}

# The HS256 secret both example servers verify tokens with.
secret="packages-stage-secret-0123456789-abcdefghijklmnop"

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# An HS256 JWT for user <sub>, signed with <secret> (stdlib only).
mint_token() { # mint_token <secret> <sub>
  python3 - "$1" "$2" <<'PY'
import base64, hmac, json, sys, time
secret, sub = sys.argv[1].encode(), sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": sub, "iat": now, "exp": now + 600, "name": "Pkg Test"}).encode())
sig = b64(hmac.new(secret, f"{head}.{body}".encode(), "sha256").digest())
print(f"{head}.{body}.{sig}")
PY
}

# Waits until <url> answers (any HTTP status) while <pid> lives.
wait_http() { # wait_http <url> <pid> <log>
  local _
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "$1"; then
      return 0
    fi
    if ! kill -0 "$2" 2>/dev/null; then
      cat "$3" >&2
      pkg_fail "the server exited before it answered at $1"
    fi
    sleep 0.2
  done
  cat "$3" >&2
  pkg_fail "nothing answered at $1 within 60 s"
}

# One whole turn through POST <url>: a new thread with a task request; the
# SSE answer must hold the thread, the user message and a finished assistant
# message.
serve_turn() { # serve_turn <url> <token> <label>
  local out="$PKG_TMP/turn-$3.sse"
  curl -sS --max-time 60 -N -X POST "$1" \
    -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    --data '{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"add a task: buy milk"}],"attachments":[],"inference_options":{}}}}' \
    -o "$out" -w '%{http_code} %{content_type}\n' | tee "$PKG_TMP/turn-$3.status"
  grep -q '^200 text/event-stream' "$PKG_TMP/turn-$3.status" || { cat "$out" >&2; pkg_fail "$3: not a 200 event stream"; }
  local event
  for event in '"type":"thread.created"' '"type":"user_message"' '"type":"assistant_message"' '"type":"thread.item.done"'; do
    grep -q "$event" "$out" || { cat "$out" >&2; pkg_fail "$3: no $event in the stream"; }
  done
  if grep -q '"type":"error"' "$out"; then
    cat "$out" >&2
    pkg_fail "$3: the stream holds an error event"
  fi
  echo "$3: served a turn ($(grep -c '^data: ' "$out") events)"
}

# ---- 0. versions in lockstep --------------------------------------------------
crate_version="$(cargo metadata --format-version 1 --no-deps ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} |
  python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "chatkit-engine"))')"
for manifest in bindings-node/package.json bindings-node/npm/*/package.json; do
  v="$(node -p "require('./$manifest').version")"
  [[ "$v" == "$crate_version" ]] || pkg_fail "$manifest has version $v, the crate $crate_version (see CONTRIBUTING.md)"
done
echo "version $crate_version everywhere"

# ---- 1. crate -----------------------------------------------------------------
cargo package ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} -p chatkit-engine --allow-dirty
crate_file="$CARGO_TARGET_DIR/package/chatkit-engine-$crate_version.crate"
# (Lists go through files: `grep -q` would end a pipe early under pipefail.)
tar -tzf "$crate_file" >"$PKG_TMP/crate.txt"
grep -q "^chatkit-engine-$crate_version/migrations/postgres/0001_init.sql$" "$PKG_TMP/crate.txt" ||
  pkg_fail "the packaged crate has no migrations"
RUSTDOCFLAGS="-D rustdoc::broken_intra_doc_links" \
  cargo doc ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} -q -p chatkit-engine --no-deps

# ---- 2. Python ----------------------------------------------------------------
tools="$PKG_CACHE/tools"
if ! "$tools/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$tools"
  python3 -m venv "$tools"
fi
"$tools/bin/python" -m pip install -q -r "$ROOT/scripts/stages/packages-requirements.txt"

dist="$PKG_TMP/python"
profile_args=(--release)
[[ "$PKG_PROFILE" == "dev" ]] && profile_args=(--profile dev)
"$tools/bin/maturin" build ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} "${profile_args[@]}" --strip \
  --manifest-path bindings-python/Cargo.toml --out "$dist"
wheel="$(ls "$dist"/chatkit_engine-"$crate_version"-*.whl)"
echo "wheel: $(basename "$wheel")"
[[ "$(basename "$wheel")" == *-abi3-manylinux*.whl ]] || pkg_fail "the wheel is not an abi3 manylinux wheel"
"$tools/bin/auditwheel" show "$wheel" | tee "$PKG_TMP/auditwheel.txt"
audit="$(tr -s '\n ' '  ' <"$PKG_TMP/auditwheel.txt")"
[[ "$audit" == *'is consistent with the following platform tag: "manylinux'* ]] ||
  pkg_fail "auditwheel finds no manylinux tag for the wheel"
unzip -l "$wheel" >"$PKG_TMP/wheel.txt"
grep -q 'chatkit_engine/py.typed' "$PKG_TMP/wheel.txt" || pkg_fail "the wheel has no py.typed"
grep -q 'chatkit_engine/_native.pyi' "$PKG_TMP/wheel.txt" || pkg_fail "the wheel has no _native.pyi"

"$tools/bin/maturin" sdist --manifest-path bindings-python/Cargo.toml --out "$dist/sdist"
sdist="$(ls "$dist"/sdist/chatkit_engine-"$crate_version".tar.gz)"
echo "sdist: $(basename "$sdist")"
# A wheel from the sdist (dev profile: this checks that it builds).
PATH="$tools/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev" \
  "$tools/bin/python" -m pip wheel -q --no-deps --no-build-isolation "$sdist" -w "$dist/from-sdist"
ls "$dist"/from-sdist/chatkit_engine-"$crate_version"-*.whl >/dev/null || pkg_fail "no wheel from the sdist"

# The fresh venv of a user.
user_venv="$PKG_TMP/venv"
python3 -m venv "$user_venv"
"$user_venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" fastapi uvicorn
port="$(free_port)"
(
  cd "$ROOT/examples/fastapi"
  exec env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u CHAT_MODEL -u JWKS_URL -u JWKS \
    -u JWT_ISSUER -u JWT_AUDIENCE DATABASE_URL="sqlite://$PKG_TMP/fastapi.db" JWT_SECRET="$secret" \
    "$user_venv/bin/python" -m uvicorn app:app --host 127.0.0.1 --port "$port"
) >"$PKG_TMP/uvicorn.log" 2>&1 &
PKG_PIDS+=($!)
wait_http "http://127.0.0.1:$port/docs" "${PKG_PIDS[-1]}" "$PKG_TMP/uvicorn.log"
serve_turn "http://127.0.0.1:$port/chatkit" "$(mint_token "$secret" pkg-user)" fastapi
kill -TERM "${PKG_PIDS[-1]}" && wait "${PKG_PIDS[-1]}" 2>/dev/null || true

# Types: the example with mypy --strict against the installed package, and the
# stubs against the runtime module.
"$tools/bin/mypy" --strict --no-incremental --python-executable "$user_venv/bin/python" examples/fastapi/app.py
"$tools/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
(cd "$PKG_TMP" && "$tools/bin/python" -m mypy.stubtest chatkit_engine)

# ---- 3. Node ------------------------------------------------------------------
require_node
export NEXT_TELEMETRY_DISABLED=1
node_dir="$ROOT/bindings-node"
if npm_stale "$node_dir"; then
  npm_install "$node_dir"
fi
main_stage="$PKG_TMP/main"
mkdir -p "$main_stage/native"
node_profile=(--release)
[[ "$PKG_PROFILE" == "dev" ]] && node_profile=()
# The addon of this platform, built as a release pipeline would, outside the
# source tree.
(cd "$node_dir" &&
  npx napi build --platform ${node_profile[@]+"${node_profile[@]}"} --strip --no-const-enum \
    --output-dir "$main_stage/artifacts" --no-js --dts index.d.ts \
    -- ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} &&
  npx tsc -p tsconfig.json)
# What `npm publish` would see, in a staging copy of the package: its files,
# the platform packages of npm/ with the addon put in by `napi artifacts`,
# and the platform packages as optionalDependencies, which `napi pre-publish`
# adds (they are not in the committed package.json: `npm ci` would look them
# up in the registry).
cp "$node_dir/package.json" "$node_dir/README.md" "$ROOT/LICENSE" "$main_stage/"
cp -R "$node_dir/dist" "$main_stage/dist"
cp "$node_dir/native/index.js" "$node_dir/native/index.d.ts" "$main_stage/native/"
cp -R "$node_dir/npm" "$main_stage/npm"
npm_dir="$main_stage/npm"
# (pre-publish reads the last commit message: the staging copy gets a
# throwaway repository whose one commit is the release's.)
(cd "$main_stage" &&
  "$node_dir/node_modules/.bin/napi" artifacts --output-dir artifacts --npm-dir npm &&
  git init -q . && git -c user.name=release -c user.email=release@localhost \
    commit -q --allow-empty -m "$crate_version" &&
  "$node_dir/node_modules/.bin/napi" pre-publish --skip-optional-publish -t npm)
node -e '
  const p = require(process.argv[1]);
  const deps = Object.keys(p.optionalDependencies || {});
  if (!deps.includes("chatkit-engine-linux-x64-gnu")) { console.error("no platform package in optionalDependencies:", deps); process.exit(1); }
' "$main_stage/package.json"
tarballs="$PKG_TMP/tarballs"
mkdir -p "$tarballs"
for platform_dir in "$npm_dir"/*/; do
  ls "$platform_dir"*.node >/dev/null || pkg_fail "no addon in $platform_dir"
  (cd "$platform_dir" && npm pack --silent --pack-destination "$tarballs" >/dev/null)
done
(cd "$main_stage" && npm pack --silent --pack-destination "$tarballs" >/dev/null)
main_tgz="$tarballs/chatkit-engine-$crate_version.tgz"
[[ -f "$main_tgz" ]] || pkg_fail "npm pack made no $main_tgz"
tar -tzf "$main_tgz" >"$PKG_TMP/main-tgz.txt"
if grep -q '\.node$' "$PKG_TMP/main-tgz.txt"; then
  pkg_fail "the main npm tarball contains an addon; it must come from the platform package"
fi
ls -1 "$tarballs"

# A fresh Next.js app: package.json, tsconfig, one route handler.
app="$PKG_TMP/next-app"
mkdir -p "$app/app/api/chatkit"
next_version="$(node -p "require('$ROOT/examples/nextjs/package.json').dependencies.next")"
react_version="$(node -p "require('$ROOT/examples/nextjs/package.json').dependencies.react")"
cat >"$app/package.json" <<JSON
{ "name": "fresh-next-app", "version": "0.0.0", "private": true,
  "scripts": { "build": "next build", "start": "next start" } }
JSON
cat >"$app/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "lib": ["dom", "dom.iterable", "esnext"], "strict": true,
    "module": "esnext", "moduleResolution": "bundler", "jsx": "react-jsx",
    "esModuleInterop": true, "skipLibCheck": true, "noEmit": true, "isolatedModules": true,
    "resolveJsonModule": true, "incremental": false, "allowJs": false,
    "plugins": [{ "name": "next" }]
  },
  "include": ["next-env.d.ts", "**/*.ts", "**/*.tsx"],
  "exclude": ["node_modules"]
}
JSON
cat >"$app/next.config.mjs" <<'JS'
/** The native addon stays a runtime require of the server. */
export default { serverExternalPackages: ["chatkit-engine"] };
JS
cat >"$app/app/layout.tsx" <<'TSX'
import type { ReactNode } from "react";

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
TSX
cat >"$app/app/page.tsx" <<'TSX'
export default function Home() {
  return <main>POST /api/chatkit</main>;
}
TSX
cat >"$app/app/api/chatkit/route.ts" <<'TS'
import { ChatEngine } from "chatkit-engine";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

let engine: Promise<ChatEngine> | undefined;

export async function POST(request: Request): Promise<Response> {
  engine ??= ChatEngine.create({
    databaseUrl: process.env.DATABASE_URL ?? "sqlite://chatkit.db",
    jwtSecret: process.env.JWT_SECRET,
  });
  return (await engine).handle(request);
}
TS
(
  cd "$app"
  npm install --no-audit --no-fund --loglevel=error --cache "$PKG_CACHE/npm-cache" \
    "$tarballs"/*.tgz "next@$next_version" "react@$react_version" "react-dom@$react_version" \
    typescript@5.9.3 @types/node@20.19.43 @types/react@19.3.3 @types/react-dom@19.3.0
  # Installed copies, not links into our sources.
  [[ ! -L node_modules/chatkit-engine && -f node_modules/chatkit-engine/package.json ]] ||
    pkg_fail "chatkit-engine is not an installed copy"
  ls node_modules/chatkit-engine-*/*.node >/dev/null || pkg_fail "the platform package was not installed"
  printf '/// <reference types="next" />\n/// <reference types="next/image-types/global" />\n' >next-env.d.ts
  npx tsc --strict --noEmit -p tsconfig.json
  # The package's own typings, checked too (skipLibCheck skips them above).
  npx tsc --strict --noEmit --skipLibCheck false --target ES2022 --module nodenext --types node \
    node_modules/chatkit-engine/dist/index.d.ts
  npx next build >"$PKG_TMP/next-build.log" 2>&1 || { cat "$PKG_TMP/next-build.log" >&2; pkg_fail "next build failed"; }
)
port="$(free_port)"
(
  cd "$app"
  exec env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u CHAT_MODEL -u JWKS_URL -u JWKS \
    -u JWT_ISSUER -u JWT_AUDIENCE DATABASE_URL="sqlite://$PKG_TMP/next.db" JWT_SECRET="$secret" \
    ./node_modules/.bin/next start -H 127.0.0.1 -p "$port"
) >"$PKG_TMP/next-start.log" 2>&1 &
PKG_PIDS+=($!)
wait_http "http://127.0.0.1:$port/" "${PKG_PIDS[-1]}" "$PKG_TMP/next-start.log"
serve_turn "http://127.0.0.1:$port/api/chatkit" "$(mint_token "$secret" pkg-user)" nextjs
