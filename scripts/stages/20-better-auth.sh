# Stage: interop with a real Better Auth issuer (sourced by scripts/test).
#
# Installs tests/better-auth (better-auth pinned in package-lock.json) with
# `npm ci` when node_modules is missing or older than the lock file, then runs
# the ignored `better_auth_*` tests of core/tests/auth.rs: each starts
# tests/better-auth/server.mjs (Better Auth in-process, memory adapter, jwt
# plugin, 127.0.0.1 on a free port), signs a user up, takes a JWT from
# /api/auth/token and verifies it through /api/auth/jwks: EdDSA, ES256, RS256,
# PS256 and a key rotation. The regular nextest stage does not need Node.
#
# Environment from scripts/test: ROOT, CARGO_TARGET_DIR, CARGO_LOCKED (array).

fixture="$ROOT/tests/better-auth"

command -v node >/dev/null || { echo "node not found: install Node.js 20+" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found" >&2; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "Node.js 20+ is required (found $(node --version))" >&2
  exit 1
fi

# npm ci writes node_modules/.package-lock.json; it is newer than the lock
# file unless the lock file changed since the last install.
stamp="$fixture/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$fixture/package-lock.json" -nt "$stamp" ]]; then
  echo "installing $fixture (npm ci)"
  (cd "$fixture" && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "$fixture/node_modules is up to date"
fi
echo "better-auth $(node -p "require('$fixture/node_modules/better-auth/package.json').version")"

cargo nextest run ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} -p chatkit-engine --test auth \
  --run-ignored only -E 'test(/^better_auth::/)'
