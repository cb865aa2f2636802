import { ChatEngine, type RequestContext } from "chatkit-engine";

/**
 * One engine per server process, configured from the environment:
 *
 * - `DATABASE_URL`: `sqlite://chatkit.db` (default) or `postgres://...`
 * - `OPENAI_API_KEY` / `OPENAI_BASE_URL` / `CHAT_MODEL`: the model (without
 *   a key the offline scripted model answers)
 * - `JWKS_URL` (Better Auth: `https://<app>/api/auth/jwks`) or `JWT_SECRET`
 *   (HS256): how Bearer tokens are verified; `JWT_ISSUER` / `JWT_AUDIENCE`
 *   (Better Auth: both the app's base URL) are checked when set
 * - `CHATKIT_DEMO_USER`: `next dev` only: with no JWT configuration, every
 *   request is this user (ignored when NODE_ENV is production)
 */
// Next.js bundles this module once per router (pages/ and app/ each get a
// copy), so a module-level variable would give each router its own engine,
// with its own database pool and its own view of which threads are busy. The
// one engine of the process lives on `globalThis` instead.
const ENGINE = Symbol.for("chatkit-engine.example.engine");
type Holder = { [ENGINE]?: Promise<ChatEngine> };
const holder = globalThis as Holder;

export function getEngine(): Promise<ChatEngine> {
  holder[ENGINE] ??= ChatEngine.create({
    databaseUrl: process.env.DATABASE_URL || "sqlite://chatkit.db",
    openaiApiKey: process.env.OPENAI_API_KEY || null,
    openaiBaseUrl: process.env.OPENAI_BASE_URL || null,
    chatModel: process.env.CHAT_MODEL || null,
    jwksUrl: process.env.JWKS_URL || null,
    jwtSecret: process.env.JWT_SECRET || null,
    jwtIssuer: process.env.JWT_ISSUER || null,
    jwtAudience: (process.env.JWT_AUDIENCE || "")
      .split(",")
      .map((aud) => aud.trim())
      .filter(Boolean),
  }).catch((err: unknown) => {
    holder[ENGINE] = undefined; // retry on the next request
    throw err;
  });
  return holder[ENGINE];
}

/**
 * The fixed development user, when `CHATKIT_DEMO_USER` is set, no JWT
 * configuration is, and the app is not running as a production build.
 */
export function demoUser(): RequestContext | undefined {
  const userId = process.env.CHATKIT_DEMO_USER;
  if (
    !userId ||
    process.env.NODE_ENV === "production" ||
    process.env.JWKS_URL ||
    process.env.JWT_SECRET
  ) {
    return undefined;
  }
  return { userId };
}
