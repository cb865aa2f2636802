/**
 * The result of one request: a JSON document, or a stream of SSE frames that
 * is an `AsyncIterable<Buffer>` and can be cancelled.
 */
import type { NativeResponse } from "../native/index.js";
import { native } from "./errors.js";

/** Headers of a streamed ChatKit response. */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
});

/**
 * What {@link ChatEngine.process} resolves to.
 *
 * - JSON (`isStream === false`): `json` holds the document; iterating yields
 *   it once.
 * - Stream (`isStream === true`): iterate it (`for await (const chunk of
 *   result)`): each chunk is every SSE frame (`data: <json>` and a blank
 *   line) that was ready when it was read, one or more whole frames in
 *   order. Frames produced together arrive in one chunk (one crossing
 *   from the engine per batch); a chunk never waits for a frame that is
 *   not there yet, so a slow model's tokens arrive one by one.
 *
 * Cancelling (`cancel()`, `return()` / `break` in `for await`, the
 * `AbortSignal` given to `process`, or cancelling the `ReadableStream` of
 * {@link ChatKitResult.toReadableStream}) stops the turn: the engine keeps
 * the partial assistant text, a pending `next()` resolves as done, and no
 * native promise is left to keep the process alive. A stream that is
 * neither read to the end nor cancelled keeps its turn waiting until it is
 * garbage collected: always finish or cancel it.
 */
export class ChatKitResult implements AsyncIterableIterator<Buffer> {
  readonly #native: NativeResponse;
  #jsonSent = false;
  #done = false;
  #detach: (() => void) | undefined;

  /** @internal */
  constructor(nativeResponse: NativeResponse, signal?: AbortSignal) {
    this.#native = nativeResponse;
    if (signal && this.isStream) {
      if (signal.aborted) {
        this.cancel();
      } else {
        const onAbort = () => this.cancel();
        signal.addEventListener("abort", onAbort, { once: true });
        this.#detach = () => signal.removeEventListener("abort", onAbort);
      }
    }
  }

  /** Whether this is a stream (`text/event-stream`) rather than JSON. */
  get isStream(): boolean {
    return this.#native.isStream;
  }

  /** The JSON document, or `null` for a stream. */
  get json(): Buffer | null {
    return this.#native.json ?? null;
  }

  /** Whether the stream was cancelled. */
  get cancelled(): boolean {
    return this.#native.cancelled;
  }

  /** The next chunk: the SSE frames of a stream ready now (or the JSON document once). */
  async next(): Promise<IteratorResult<Buffer, undefined>> {
    if (this.#done) {
      return { done: true, value: undefined };
    }
    if (!this.isStream) {
      const json = this.#jsonSent ? null : this.json;
      this.#jsonSent = true;
      if (json) {
        return { done: false, value: json };
      }
      this.#finish();
      return { done: true, value: undefined };
    }
    const chunk = await native(this.#native.nextChunk());
    // A frame that was already on its way when the stream was cancelled is
    // dropped: after `cancel()` every `next()` is done.
    if (chunk == null || this.#done) {
      this.#finish();
      return { done: true, value: undefined };
    }
    return { done: false, value: chunk };
  }

  /** Cancels the stream (what `break` in `for await` calls). */
  async return(): Promise<IteratorResult<Buffer, undefined>> {
    this.cancel();
    return { done: true, value: undefined };
  }

  /**
   * Stops the stream and cancels its turn; a pending `next()` resolves as
   * done. Safe to call more than once, and a no-op on JSON results.
   */
  cancel(): void {
    if (this.isStream) {
      this.#native.cancel();
    }
    this.#finish();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * The chunks as a web `ReadableStream`; cancelling the readable cancels
   * the turn.
   */
  toReadableStream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const { done, value } = await this.next();
          if (done) {
            controller.close();
          } else {
            controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
          }
        } catch (err) {
          this.cancel();
          controller.error(err);
        }
      },
      cancel: () => {
        this.cancel();
      },
    });
  }

  /**
   * The result as a web `Response` for a route handler: `200
   * application/json`, or `200 text/event-stream` streaming the frames.
   */
  toResponse(init: ResponseInit = {}): Response {
    const headers = new Headers(init.headers);
    if (!this.isStream) {
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      const json = this.json ?? Buffer.alloc(0);
      return new Response(new Uint8Array(json.buffer, json.byteOffset, json.byteLength), { ...init, headers });
    }
    for (const [name, value] of Object.entries(SSE_HEADERS)) {
      if (!headers.has(name)) headers.set(name, value);
    }
    return new Response(this.toReadableStream(), { ...init, headers });
  }

  #finish(): void {
    this.#done = true;
    this.#detach?.();
    this.#detach = undefined;
  }
}
