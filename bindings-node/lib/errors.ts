/**
 * Typed errors: every failure of the engine is a {@link ChatKitError} with the
 * core's stable `code` (`invalid_request`, `not_found`, `unauthorized`, ...),
 * the HTTP `status` a server should answer with, and the JSON `body`
 * (`{"error":{"code","message"}}`) that is safe to send to the client.
 */

/**
 * The stable error codes of the core (`chatkit_engine::Error::code`); the
 * list is open because a newer core may add codes.
 */
export type ErrorCode =
  | "invalid_request"
  | "not_found"
  | "unauthorized"
  | "payload_too_large"
  | "thread_busy"
  | "not_supported"
  | "custom"
  | "cancelled"
  | "model_error"
  | "timeout"
  | "max_turns_exceeded"
  | "token_budget_exceeded"
  | "storage_error"
  | "invalid_config"
  | "internal"
  // Rejected Bearer tokens (`chatkit_engine::error::AuthError`), 401 (503 for
  // `jwks_unavailable`):
  | "malformed_token"
  | "algorithm_not_allowed"
  | "unknown_key"
  | "invalid_signature"
  | "token_expired"
  | "token_not_yet_valid"
  | "invalid_issuer"
  | "invalid_audience"
  | "missing_subject"
  | "jwks_unavailable"
  // Codes a newer core may add.
  | (string & {});

/** The prefix the native module puts before the JSON of a core error. */
const MARKER = "chatkit_engine_error:";

interface NativePayload {
  code: ErrorCode;
  status: number;
  message: string;
  body: string;
}

/** A failure of the engine, with a stable {@link ChatKitError.code}. */
export class ChatKitError extends Error {
  /** The stable machine-readable code, e.g. `"not_found"`. */
  readonly code: ErrorCode;
  /** The HTTP status to answer with, e.g. 404. */
  readonly status: number;
  /** The JSON error body to send to the client (no internal details). */
  readonly body: string;

  constructor(code: ErrorCode, status: number, message: string, body?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ChatKitError";
    this.code = code;
    this.status = status;
    this.body = body ?? JSON.stringify({ error: { code, message } });
  }

  /** The error as an HTTP response (`application/json`). */
  toResponse(): Response {
    return new Response(this.body, {
      status: this.status,
      headers: { "content-type": "application/json" },
    });
  }
}

/**
 * The {@link ChatKitError} a native rejection carries, or the value itself
 * when it is not a core error.
 */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error) || !err.message.startsWith(MARKER)) {
    return err;
  }
  let payload: NativePayload;
  try {
    payload = JSON.parse(err.message.slice(MARKER.length)) as NativePayload;
  } catch {
    return err;
  }
  return new ChatKitError(payload.code, payload.status, payload.message, payload.body, { cause: err });
}

/** Awaits a native promise, turning core errors into {@link ChatKitError}s. */
export async function native<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw fromNative(err);
  }
}
