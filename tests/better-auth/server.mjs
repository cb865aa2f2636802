// Test fixture: a real Better Auth issuer for chatkit-engine's JWT interop tests.
//
//   node server.mjs [--alg EdDSA|ES256|RS256|PS256] [--rotation-interval SECONDS]
//
// (or the env vars BA_ALG / BA_ROTATION_INTERVAL). It runs Better Auth in this
// process with the memory adapter, e-mail/password sign-up and the jwt plugin,
// listens on 127.0.0.1 on a free port, and prints one JSON line to stdout:
//
//   {"port": 41234, "baseURL": "http://127.0.0.1:41234", "alg": "EdDSA"}
//
// Everything else is Better Auth's own HTTP surface under /api/auth:
//   POST /api/auth/sign-up/email  {email, password, name}  -> session cookie
//   GET  /api/auth/token          (session cookie)         -> {"token": "<JWT>"}
//   GET  /api/auth/jwks                                    -> {"keys": [...]}
//
// Key rotation uses the jwt plugin's own `jwks.rotationInterval`: once the
// newest key is older than the interval, the next signature mints a new key
// (new `kid`) and the JWKS lists both (the old one stays for `gracePeriod`).
// The process exits when stdin closes, so a crashed test leaves nothing behind.
import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins/jwt";

function option(flag, envName, fallback) {
  const index = process.argv.indexOf(flag);
  if (index !== -1 && index + 1 < process.argv.length) return process.argv[index + 1];
  return process.env[envName] ?? fallback;
}

const ALGS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"];
const alg = option("--alg", "BA_ALG", "EdDSA");
if (!ALGS.includes(alg)) {
  console.error(`unsupported --alg ${alg}; use one of ${ALGS.join(", ")}`);
  process.exit(2);
}
const rotationInterval = Number(option("--rotation-interval", "BA_ROTATION_INTERVAL", "0"));

// The default configuration is `{ alg: "EdDSA", crv: "Ed25519" }`; the others
// take the plugin's defaults (P-256 for ES256, RSA 2048 for RS256/PS256).
const keyPairConfig = alg === "EdDSA" ? { alg, crv: "Ed25519" } : { alg };

const db = { user: [], session: [], account: [], verification: [], jwks: [] };

let handler = (_req, res) => {
  res.statusCode = 503;
  res.end("starting");
};
const server = http.createServer((req, res) => handler(req, res));

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  const baseURL = `http://127.0.0.1:${port}`;
  const auth = betterAuth({
    baseURL,
    // Test-only secret: it only encrypts the private keys inside this process.
    secret: "chatkit-engine-test-secret-not-for-production-0123456789",
    database: memoryAdapter(db),
    emailAndPassword: { enabled: true },
    telemetry: { enabled: false },
    plugins: [
      jwt({
        jwks: {
          keyPairConfig,
          ...(rotationInterval > 0 ? { rotationInterval } : {}),
        },
      }),
    ],
  });
  handler = toNodeHandler(auth);
  process.stdout.write(`${JSON.stringify({ port, baseURL, alg })}\n`);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
