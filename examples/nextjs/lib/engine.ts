import { ChatEngine, type RequestContext } from "chatkit-engine";

/**
 * One engine per server process, configured from the environment:
 *
 * - `DATABASE_URL`: `sqlite://chatkit.db` (default) or `postgres://...`
 * - `OPENAI_API_KEY` / `OPENAI_BASE_URL` / `CHAT_MODEL`: the model (without
 *   a key the offline scripted model answers)
 * - `JWKS_URL` (Better Auth: `https://<app>/api/auth/jwks`) or `JWT_SECRET`
 *   (HS256): how Bearer tokens are verified
 * - `CHATKIT_DEMO_USER`: development only: with no JWT configuration, every
 *   request is this user (never set it in production)
 */
let engine: Promise<ChatEngine> | undefined;

export function getEngine(): Promise<ChatEngine> {
  engine ??= ChatEngine.create({
    databaseUrl: process.env.DATABASE_URL || "sqlite://chatkit.db",
    openaiApiKey: process.env.OPENAI_API_KEY || null,
    openaiBaseUrl: process.env.OPENAI_BASE_URL || null,
    chatModel: process.env.CHAT_MODEL || null,
    jwksUrl: process.env.JWKS_URL || null,
    jwtSecret: process.env.JWT_SECRET || null,
  }).catch((err: unknown) => {
    engine = undefined; // retry on the next request
    throw err;
  });
  return engine;
}

/** The fixed development user, when `CHATKIT_DEMO_USER` is set and no JWT config is. */
export function demoUser(): RequestContext | undefined {
  const userId = process.env.CHATKIT_DEMO_USER;
  if (!userId || process.env.JWKS_URL || process.env.JWT_SECRET) {
    return undefined;
  }
  return { userId };
}
