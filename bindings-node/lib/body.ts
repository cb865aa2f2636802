/**
 * Reading a request body for {@link ChatEngine.handle} and
 * {@link ChatEngine.handleNode}: never more than the engine's
 * `max_body_bytes`, so a request that is refused (too large, or not signed
 * in) costs no more memory than an accepted one. (The engine then answers an
 * unsigned request `unauthorized` whatever its size, as `serve` does.)
 *
 * | body | result |
 * | --- | --- |
 * | `Content-Length` over the limit | `payload_too_large` (413) before reading |
 * | more bytes than the limit | `payload_too_large` (413); the rest is discarded, not kept |
 * | already parsed by the host (Express, Next.js `bodyParser`) | its bytes: `Buffer`/`Uint8Array` as is, a string as UTF-8, any other value as JSON |
 */
import type { IncomingMessage } from "node:http";
import { ChatKitError } from "./errors.js";

/** The refusal of a body over `limit` bytes (the wording `serve` uses). */
export function tooLarge(limit: number): ChatKitError {
  return new ChatKitError("payload_too_large", 413, `the request body exceeds the limit of ${limit} bytes`);
}

function declaredOver(contentLength: string | null | undefined, limit: number): boolean {
  if (contentLength == null) return false;
  const declared = Number(contentLength);
  return Number.isFinite(declared) && declared > limit;
}

function checked(bytes: Buffer, limit: number): Buffer {
  if (bytes.length > limit) throw tooLarge(limit);
  return bytes;
}

/** The body of a web `Request`, at most `limit` bytes. */
export async function readRequestBody(request: Request, limit: number): Promise<Buffer> {
  if (declaredOver(request.headers.get("content-length"), limit)) throw tooLarge(limit);
  if (request.body == null) return Buffer.alloc(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? Buffer.from(chunks[0].buffer, chunks[0].byteOffset, size) : Buffer.concat(chunks, size);
}

/** The body of a Node `IncomingMessage` (or what a body parser made of it), at most `limit` bytes. */
export function readIncomingBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const parsed = (request as IncomingMessage & { body?: unknown }).body;
  if (parsed !== undefined) {
    try {
      if (Buffer.isBuffer(parsed)) return Promise.resolve(checked(parsed, limit));
      if (parsed instanceof Uint8Array) {
        return Promise.resolve(checked(Buffer.from(parsed.buffer, parsed.byteOffset, parsed.byteLength), limit));
      }
      const text = typeof parsed === "string" ? parsed : JSON.stringify(parsed);
      return Promise.resolve(checked(Buffer.from(text ?? "", "utf8"), limit));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  if (request.readableEnded) {
    return Promise.reject(
      new ChatKitError("invalid_request", 400, "the request body was already read and not kept by a body parser"),
    );
  }
  if (declaredOver(request.headers["content-length"], limit)) {
    request.resume(); // discard the body so the connection can answer
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      request.off("data", onData);
      request.off("end", onEnd);
      request.off("error", onError);
      request.off("close", onClose);
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
      size += bytes.length;
      if (size > limit) {
        cleanup();
        request.resume(); // the rest is read and dropped, never kept
        reject(tooLarge(limit));
        return;
      }
      chunks.push(bytes);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      // Closed before its end: the client went away mid-body.
      cleanup();
      reject(new ChatKitError("invalid_request", 400, "the request body ended early"));
    };
    request.on("data", onData);
    request.on("end", onEnd);
    request.on("error", onError);
    request.on("close", onClose);
  });
}
