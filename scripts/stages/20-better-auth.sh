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

require_node
if npm_stale "$fixture"; then
  npm_install "$fixture"
else
  echo "$fixture/node_modules is up to date"
fi
echo "better-auth $(node -p "require('$fixture/node_modules/better-auth/package.json').version")"

cargo nextest run ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} -p chatkit-engine --test auth \
  --run-ignored only -E 'test(/^better_auth::/)'
