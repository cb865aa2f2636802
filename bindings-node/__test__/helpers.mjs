// Shared helpers of the node:test suites: request bodies, SSE parsing, HS256
// tokens, a scripted OpenAI-compatible provider, and database URLs.
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

export { ActionResult, ChatEngine, ChatKitError, ChatKitResult, ToolResult } from "../dist/index.js";

/** A fresh SQLite file URL in a temp directory. */
export function sqliteUrl() {
  const dir = mkdtempSync(join(tmpdir(), "chatkit-node-"));
  return `sqlite://${join(dir, "chatkit.db")}`;
}

/** The PostgreSQL server the suite uses (scripts/test sets DATABASE_URL). */
export function postgresUrl() {
  return process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
}

/** A user id no other test run shares. */
export function newUser() {
  return `node-${randomUUID()}`;
}

/** A `threads.create` body with one text part. */
export function create(text) {
  return JSON.stringify({
    type: "threads.create",
    params: { input: { content: [{ type: "input_text", text }], attachments: [], inference_options: {} } },
  });
}

/** A `threads.add_user_message` body. */
export function addMessage(threadId, text) {
  return JSON.stringify({
    type: "threads.add_user_message",
    params: {
      thread_id: threadId,
      input: { content: [{ type: "input_text", text }], attachments: [], inference_options: {} },
    },
  });
}

/** An `items.list` body (oldest first). */
export function listItems(threadId) {
  return JSON.stringify({ type: "items.list", params: { thread_id: threadId, order: "asc", limit: 100 } });
}

/** The events of SSE bytes (`data: <json>\n\n` frames). */
export function parseSse(text) {
  return text
    .split("\n\n")
    .filter((frame) => frame.startsWith("data: "))
    .map((frame) => JSON.parse(frame.slice("data: ".length)));
}

/** Reads a whole streamed result into its events. */
export async function collect(result) {
  const chunks = [];
  for await (const chunk of result) {
    chunks.push(chunk);
  }
  return parseSse(Buffer.concat(chunks).toString("utf8"));
}

/** The text of the assistant messages among `events` (done items). */
export function assistantTexts(events) {
  return events
    .filter((e) => e.type === "thread.item.done" && e.item.type === "assistant_message")
    .map((e) => e.item.content.map((part) => part.text).join(""));
}

/** The visible items of a thread, as JSON. */
export async function items(engine, ctx, threadId) {
  const result = await engine.process(listItems(threadId), ctx);
  return JSON.parse(result.json.toString("utf8")).data;
}

/** Waits until the engine has no running turn (cancelled turns save their text). */
export async function settle(engine) {
  for (let i = 0; i < 500 && engine.runningTurns > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const b64 = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** An HS256 JWT signed with `secret` (node:crypto only). */
export function signHs256(claims, secret) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iat: now, exp: now + 600, ...claims })}`;
  const signature = createHmac("sha256", secret).update(input).digest("base64url");
  return `${input}.${signature}`;
}

/**
 * A local OpenAI-compatible server that streams `parts` as one answer and
 * then keeps the connection open (a provider that is still "typing").
 */
export async function hangingProvider(parts) {
  const sockets = new Set();
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const chunk = (delta) =>
        `data: ${JSON.stringify({
          id: "chatcmpl-node",
          object: "chat.completion.chunk",
          created: 1764100000,
          model: "test-model",
          choices: [{ index: 0, delta, logprobs: null, finish_reason: null }],
        })}\n\n`;
      res.write(chunk({ role: "assistant", content: "" }));
      for (const part of parts) {
        res.write(chunk({ content: part }));
      }
      // ...and never finish.
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A local OpenAI-compatible server whose answer is `count` tokens
 * (`gated0 `, `gated1 `, ...), each written only after the test called
 * `release()` once more; after the last one the answer finishes.
 */
export async function gatedProvider(count) {
  let released = 0;
  let waiting = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", async () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const chunk = (delta, finish = null) =>
        `data: ${JSON.stringify({
          id: "chatcmpl-node",
          object: "chat.completion.chunk",
          created: 1764100000,
          model: "test-model",
          choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        })}\n\n`;
      res.write(chunk({ role: "assistant", content: "" }));
      for (let i = 0; i < count; i++) {
        while (released <= i) {
          await new Promise((resolve) => waiting.push(resolve));
        }
        res.write(chunk({ content: `gated${i} ` }));
      }
      res.write(chunk({}, "stop"));
      res.end("data: [DONE]\n\n");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    release() {
      released += 1;
      const wake = waiting;
      waiting = [];
      for (const resolve of wake) resolve();
    },
    reset() {
      released = 0;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
