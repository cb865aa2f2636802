/**
 * The engine configuration: the core's `EngineConfig`
 * (`core/src/config.rs`), written in camelCase or in the core's snake_case.
 *
 * The only conversion is of top-level keys, camelCase to snake_case
 * (`databaseUrl` -> `database_url`); values pass through unchanged (so
 * `modelHeaders` keeps its header names). Unknown keys are an
 * `invalid_config` error from the core, and every key is optional.
 */
export interface EngineConfig {
  /** `sqlite://file.db`, `sqlite::memory:` or `postgres://...` (default `sqlite://chatkit.db`). */
  databaseUrl?: string;
  /** PostgreSQL schema of the engine's own tables, created by the migration (default `chatkit`). */
  databaseSchema?: string;
  /** The app's task table on PostgreSQL, `schema.table` (default `public.tasks`). */
  tasksTable?: string;
  /** A direct PostgreSQL URL for migrations when `databaseUrl` goes through a pooler (Neon: the endpoint without `-pooler`). */
  databaseUrlDirect?: string | null;
  /** Whether `databaseUrl` goes through a transaction-mode pooler: `auto` (default: Neon `-pooler` hosts), `transaction` or `none`. */
  databasePooler?: "auto" | "transaction" | "none";
  /** Seconds a turn lease lives without renewal (default 30): how long a thread stays busy after its replica died. */
  turnLeaseSecs?: number;
  /** API key of an OpenAI-compatible provider; without one the offline scripted model answers. */
  openaiApiKey?: string | null;
  /** The provider's base URL (default OpenAI's). */
  openaiBaseUrl?: string | null;
  /** The model name (default `gpt-4o-mini`). */
  chatModel?: string | null;
  /** Extra HTTP headers sent to the provider. */
  modelHeaders?: Record<string, string>;
  /**
   * Speak HTTP/2 to the provider without negotiation, so every open answer
   * shares one connection (the provider's concurrent-stream limit then caps
   * how many run at once). Default `false`: HTTP/1.1.
   */
  openaiHttp2PriorKnowledge?: boolean;
  /** URL of the JWKS to verify Bearer tokens with (e.g. Better Auth's `/api/auth/jwks`). */
  jwksUrl?: string | null;
  /**
   * The Better Auth app's base URL: alone it sets the JWKS URL
   * (`{url}/api/auth/jwks`), issuer and audience (`{url}`); explicit settings win.
   */
  betterAuthUrl?: string | null;
  /** An inline JWKS document (JSON text). */
  jwks?: string | null;
  /** A shared HS256 secret. */
  jwtSecret?: string | null;
  /** Required `iss`. */
  jwtIssuer?: string | null;
  /** Accepted `aud` values. */
  jwtAudience?: string[];
  /** Clock skew tolerated on `exp`/`nbf`, in seconds. */
  jwtLeewaySecs?: number;
  /** Minimum seconds between JWKS refetches on an unknown `kid`. */
  jwksRefreshSecs?: number;
  /** Model calls allowed per turn. */
  maxTurns?: number;
  /** Recent thread items the model sees. */
  historyItems?: number;
  /** Seconds one tool call may take. */
  toolTimeoutSecs?: number;
  /** Largest accepted request body, in bytes. */
  maxBodyBytes?: number;
  /** Longest text of one user message, in characters. */
  maxTextChars?: number;
  /** Most content parts in one user message. */
  maxContentParts?: number;
  /** Most attachments on one user message. */
  maxAttachments?: number;
  /** Page size used when a list request gives no `limit`. */
  defaultPageSize?: number;
  /** Largest page a list request may ask for. */
  maxPageSize?: number;
  /** Longest thread title, in characters. */
  maxTitleChars?: number;
  /** How many events may wait for a slow client before the turn pauses. */
  streamBuffer?: number;
  /** Record Prometheus metrics (default true); see `ChatEngine.metrics()`. */
  metrics?: boolean;
  /** Tokens one user may spend per UTC day (default: no budget). */
  dailyTokenBudget?: number;
}

/** The same configuration with the core's snake_case keys (`database_url`, ...). */
export type SnakeCaseEngineConfig = Record<string, unknown>;

/** `databaseUrl` -> `database_url`; snake_case keys stay as they are. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The JSON text the core deserializes `EngineConfig` from. */
export function configJson(config: EngineConfig | SnakeCaseEngineConfig): string {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config ?? {})) {
    if (value !== undefined) {
      out[snakeCase(key)] = value;
    }
  }
  return JSON.stringify(out);
}
