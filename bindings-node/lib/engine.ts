/** The engine: `ChatEngine.create(config)`, `authenticate`, `process`, `handle`. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createEngine, type NativeEngine, type RequestContext } from "../native/index.js";
import { type EngineConfig, type SnakeCaseEngineConfig, configJson } from "./config.js";
import { ChatKitError, fromNative, native } from "./errors.js";
import { readIncomingBody, readRequestBody } from "./body.js";
import { ChatKitResult, SSE_HEADERS } from "./result.js";
import { type ActionDefinition, type ToolDefinition, toNativeAction, toNativeTool } from "./tools.js";

export type { RequestContext };

/** Token totals of some turns (`chatkit_engine::store::UsageTotals`). */
export interface UsageTotals {
  input_tokens: number;
  output_tokens: number;
  turns: number;
  model_calls: number;
  /** True when a provider reported no usage and the engine estimated. */
  estimated: boolean;
}

/** A caller's token usage (`chatkit_engine::engine::UsageReport`). */
export interface UsageReport {
  /** Today's UTC date, `YYYY-MM-DD`. */
  day: string;
  today: UsageTotals;
  total: UsageTotals;
  thread: UsageTotals | null;
  daily_budget: number | null;
  remaining_today: number | null;
}

/** Options of {@link ChatEngine.create}. */
export interface CreateOptions {
  /** JS functions the agents may call, next to the 7 task tools. */
  tools?: ToolDefinition<any>[];
  /** Handlers of widget actions, next to the task widgets' own. */
  actions?: ActionDefinition[];
}

/** Options of {@link ChatEngine.process}. */
export interface ProcessOptions {
  /** Aborting it cancels a streamed response (the partial text is kept). */
  signal?: AbortSignal;
}

/** Options of {@link ChatEngine.handle}. */
export interface HandleOptions {
  /**
   * The caller, for hosts that authenticate requests themselves (e.g. with a
   * session cookie). Without it the `Authorization: Bearer <JWT>` header is
   * verified with the configured JWKS or secret.
   */
  context?: RequestContext | ((request: Request) => RequestContext | Promise<RequestContext>);
}

/** Options of {@link ChatEngine.handleNode}. */
export interface NodeHandleOptions {
  /**
   * The caller, for hosts that authenticate requests themselves. Without it
   * the `Authorization: Bearer <JWT>` header is verified.
   */
  context?: RequestContext | ((request: IncomingMessage) => RequestContext | Promise<RequestContext>);
}

/** A request body: the raw bytes or text of a ChatKit request. */
export type Body = string | Uint8Array | ArrayBuffer;

/**
 * The ChatKit backend: the task assistant over the configured database,
 * model and token verifier. Create one per process and share it.
 *
 * ```ts
 * const engine = await ChatEngine.create({ databaseUrl: "sqlite://chatkit.db", jwtSecret });
 * export async function POST(request: Request) { return engine.handle(request); }
 * ```
 */
export class ChatEngine {
  readonly #native: NativeEngine;
  readonly #maxBodyBytes: number;

  private constructor(nativeEngine: NativeEngine) {
    this.#native = nativeEngine;
    // Fixed by the configuration: read once, not through napi per request.
    this.#maxBodyBytes = nativeEngine.maxBodyBytes;
  }

  /**
   * Builds an engine: opens (and migrates) the database, picks the model
   * (the offline scripted model without `openaiApiKey`) and the token
   * verifier. Rejects with `invalid_config` or `storage_error`.
   */
  static async create(
    config: EngineConfig | SnakeCaseEngineConfig = {},
    options: CreateOptions = {},
  ): Promise<ChatEngine> {
    let tools;
    let actions;
    try {
      tools = (options.tools ?? []).map(toNativeTool);
      actions = (options.actions ?? []).map(toNativeAction);
    } catch (err) {
      throw new ChatKitError("invalid_config", 500, `invalid configuration: ${(err as Error).message}`);
    }
    return new ChatEngine(await native(createEngine(configJson(config), tools, actions)));
  }

  /** The name of the model answering (`scripted-offline` without an API key). */
  get modelName(): string {
    return this.#native.modelName;
  }

  /** Whether Bearer tokens can be verified (a JWKS URL, JWKS or secret is configured). */
  get hasVerifier(): boolean {
    return this.#native.hasVerifier;
  }

  /** How many turns are running (a cancelled turn runs until its partial text is saved). */
  get runningTurns(): number {
    return this.#native.runningTurns;
  }

  /**
   * The caller of an `Authorization` header value (`Bearer <JWT>`). Rejects
   * with a `ChatKitError` of code `unauthorized` (status 401).
   */
  async authenticate(authorization?: string | null): Promise<RequestContext> {
    return native(this.#native.authenticate(authorization ?? undefined));
  }

  /**
   * Runs one of the 7 task tools (`create_task`, `list_tasks`, `get_task`,
   * `update_task`, `delete_task`, `toggle_complete`, `get_stats`) for
   * `context` outside any chat turn, so a host's task REST routes share the
   * chat's table and validation. Resolves to the tool's
   * `{success, data | error}` result.
   */
  async runTaskTool(name: string, args: Record<string, unknown>, context: RequestContext): Promise<unknown> {
    const text = await native(this.#native.runTaskTool(name, JSON.stringify(args ?? {}), context));
    return JSON.parse(text);
  }

  /**
   * This process's metrics in the Prometheus text format (turns, model and
   * tool calls, tokens, streams, store and pool, auth failures), for a
   * host's `/metrics` route. Throws `invalid_config` when metrics are off.
   */
  metrics(): string {
    try {
      return this.#native.metrics();
    } catch (err) {
      throw fromNative(err);
    }
  }

  /**
   * The caller's token usage: `{day, today, total, thread, daily_budget,
   * remaining_today}`; each total has `input_tokens`, `output_tokens`,
   * `turns`, `model_calls` and `estimated`. `thread` is `null` unless
   * `threadId` is given.
   */
  async tokenUsage(context: RequestContext, threadId?: string | null): Promise<UsageReport> {
    const text = await native(this.#native.tokenUsage(context, threadId ?? undefined));
    return JSON.parse(text) as UsageReport;
  }

  /**
   * Handles one ChatKit request body for `context`. Rejections (a
   * `ChatKitError`) happened before any byte was streamed; failures during
   * a stream are `error` events inside it.
   */
  async process(body: Body, context: RequestContext, options: ProcessOptions = {}): Promise<ChatKitResult> {
    const bytes =
      typeof body === "string"
        ? Buffer.from(body, "utf8")
        : body instanceof ArrayBuffer
          ? Buffer.from(body)
          : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const response = await native(this.#native.process(bytes, context));
    return new ChatKitResult(response, options.signal);
  }

  /**
   * A whole route handler for the web `Request`/`Response` API (Next.js App
   * Router route handlers, Remix, Hono, Deno, Bun...): reads the body (never
   * past the engine's `max_body_bytes`), authenticates the request (or takes
   * `options.context`) and answers with JSON, an SSE stream, or the error's
   * JSON body and status, as `serve` does (an unsigned request is
   * `unauthorized` whatever its size). The request's `signal` cancels the
   * stream.
   */
  async handle(request: Request, options: HandleOptions = {}): Promise<Response> {
    try {
      const context = typeof options.context === "function" ? await options.context(request) : options.context;
      const authorization = request.headers.get("authorization");
      const body = await this.#read(() => readRequestBody(request, this.#maxBodyBytes), authorization, context);
      const result = await this.#start(authorization, body, context, request.signal);
      return result.toResponse();
    } catch (err) {
      if (err instanceof ChatKitError) {
        return err.toResponse();
      }
      throw err;
    }
  }

  /**
   * A whole route handler for Node's own `http` objects (Next.js Pages
   * Router API routes, Express, Fastify's `raw`, `node:http`): the same
   * contract as {@link handle}, written to `response`. Frames are written as
   * they come, with backpressure; the client closing the connection cancels
   * the turn (its partial text is kept). Without the web `Request` and
   * `Response` objects around it this path costs less per request; see
   * docs/performance.md. A body a host's parser already read (`request.body`)
   * is used as it is.
   *
   * ```ts
   * // pages/api/chatkit.ts
   * export const config = { api: { bodyParser: false } };
   * export default async function handler(req, res) {
   *   await (await getEngine()).handleNode(req, res);
   * }
   * ```
   */
  async handleNode(request: IncomingMessage, response: ServerResponse, options: NodeHandleOptions = {}): Promise<void> {
    let result: ChatKitResult;
    try {
      if ((request.headersDistinct?.authorization?.length ?? 0) > 1) {
        // As serve: which of two credentials counts is not for us to guess.
        throw new ChatKitError("invalid_request", 400, "invalid request: send exactly one Authorization header");
      }
      const context = typeof options.context === "function" ? await options.context(request) : options.context;
      const authorization = request.headers.authorization;
      const body = await this.#read(() => readIncomingBody(request, this.#maxBodyBytes), authorization, context);
      result = await this.#start(authorization, body, context);
    } catch (err) {
      if (err instanceof ChatKitError) {
        const headers: Record<string, string> = { "content-type": "application/json" };
        // The unread rest of a refused body is not worth keeping the connection for.
        if (err.code === "payload_too_large") headers.connection = "close";
        response.writeHead(err.status, headers);
        response.end(err.body);
        return;
      }
      throw err;
    }
    if (!result.isStream) {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(result.json);
      return;
    }
    response.writeHead(200, SSE_HEADERS);
    const onClose = () => result.cancel();
    response.once("close", onClose);
    // A client that left while the turn was starting closed before the listener.
    if (closed(response)) result.cancel();
    try {
      for await (const chunk of result) {
        if (!response.write(chunk)) await drained(response);
      }
    } catch (err) {
      result.cancel();
      response.destroy(err as Error);
      throw err;
    } finally {
      response.off("close", onClose);
    }
    response.end();
  }

  /**
   * Reads a body with `read`. One over the limit is refused as `serve`
   * refuses it: an unsigned request is `unauthorized` whatever its size,
   * a signed one `payload_too_large`.
   */
  async #read(
    read: () => Promise<Buffer>,
    authorization: string | null | undefined,
    context: RequestContext | undefined,
  ): Promise<Buffer> {
    try {
      return await read();
    } catch (err) {
      if (err instanceof ChatKitError && err.code === "payload_too_large" && !context) {
        await this.authenticate(authorization);
      }
      throw err;
    }
  }

  /** One crossing into the engine: authenticate (unless `context` is given) and process. */
  async #start(
    authorization: string | null | undefined,
    body: Buffer,
    context: RequestContext | undefined,
    signal?: AbortSignal,
  ): Promise<ChatKitResult> {
    const response = await native(this.#native.handle(context ? null : (authorization ?? null), body, context ?? null));
    return new ChatKitResult(response, signal);
  }
}

/** Whether the connection of `response` is gone. */
function closed(response: ServerResponse): boolean {
  return response.destroyed || (response.socket?.destroyed ?? false);
}

/** Resolves when `response` can take more bytes, or is closed. */
function drained(response: ServerResponse): Promise<void> {
  if (closed(response)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.once("drain", done);
    response.once("close", done);
  });
}
