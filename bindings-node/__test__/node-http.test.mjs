// handleNode(): the engine behind Node's own http objects (a Pages Router API
// route, Express, node:http), over a real HTTP server and client.
import assert from "node:assert/strict";
import { createServer, request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import {
  ChatEngine,
  create,
  gatedProvider,
  hangingProvider,
  items,
  listItems,
  newUser,
  parseSse,
  settle,
  signHs256,
  sqliteUrl,
} from "./helpers.mjs";

const SECRET = "node-http-secret-0123456789abcdef0123";

/** A node:http server answering every request with `handler(req, res)`. */
async function serve(handler) {
  const server = createServer((req, res) => {
    handler(req, res).catch((err) => {
      server.failures.push(err);
      res.destroy(err);
    });
  });
  server.failures = [];
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/api/chatkit`;
  return { server, url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function bearer(user) {
  return `Bearer ${signHs256({ sub: user }, SECRET)}`;
}

describe("handleNode() behind node:http", { timeout: 120_000 }, () => {
  let engine;
  let host;
  before(async () => {
    engine = await ChatEngine.create({ databaseUrl: sqliteUrl(), jwtSecret: SECRET, maxBodyBytes: 4096 });
    host = await serve((req, res) => engine.handleNode(req, res));
  });
  after(async () => {
    await host.close();
  });

  test("streams a whole turn as SSE and answers JSON requests", async () => {
    const user = newUser();
    const turn = await fetch(host.url, {
      method: "POST",
      headers: { authorization: bearer(user), "content-type": "application/json" },
      body: create("add a task to water the plants"),
    });
    assert.equal(turn.status, 200);
    assert.equal(turn.headers.get("content-type"), "text/event-stream");
    assert.equal(turn.headers.get("cache-control"), "no-cache, no-transform");
    const events = parseSse(await turn.text());
    assert.equal(events[0].type, "thread.created");
    assert.ok(events.some((e) => e.type === "thread.item.done" && e.item.type === "assistant_message"));

    const list = await fetch(host.url, {
      method: "POST",
      headers: { authorization: bearer(user) },
      body: listItems(events[0].thread.id),
    });
    assert.equal(list.status, 200);
    assert.equal(list.headers.get("content-type"), "application/json");
    const stored = (await list.json()).data;
    assert.deepEqual(
      stored.filter((item) => item.type !== "widget").map((item) => item.type).slice(0, 1),
      ["user_message"],
    );
    assert.deepEqual(host.server.failures, []);
  });

  test("answers an unsigned or forged request with 401 and its JSON error code", async () => {
    const response = await fetch(host.url, { method: "POST", body: create("hello") });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal((await response.json()).error.code, "unauthorized");

    const forged = await fetch(host.url, {
      method: "POST",
      headers: { authorization: `Bearer ${signHs256({ sub: newUser() }, "another-secret-0123456789abcdef01")}` },
      body: create("hello"),
    });
    assert.equal(forged.status, 401);
    assert.equal((await forged.json()).error.code, "invalid_signature");
  });

  test("refuses a signed body over the limit with 413, declared or streamed, and an unsigned one with 401", async () => {
    const declared = await fetch(host.url, {
      method: "POST",
      headers: { authorization: bearer(newUser()) },
      body: "x".repeat(5000),
    });
    assert.equal(declared.status, 413);
    // The same body, byte for byte, as serve answers.
    assert.equal(
      await declared.text(),
      '{"error":{"code":"payload_too_large","message":"the request body exceeds the limit of 4096 bytes"}}',
    );

    // Chunked, without a Content-Length: refused once the limit is passed.
    const status = await new Promise((resolve, reject) => {
      const req = httpRequest(host.url, { method: "POST", headers: { authorization: bearer(newUser()) } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on("error", reject);
      for (let i = 0; i < 10; i++) req.write("y".repeat(1000));
      req.end();
    });
    assert.equal(status, 413);

    // Unsigned: unauthorized whatever its size, as serve answers (and the
    // body is still not read past the limit).
    const unsigned = await fetch(host.url, { method: "POST", body: "z".repeat(5000) });
    assert.equal(unsigned.status, 401);
    assert.equal((await unsigned.json()).error.code, "unauthorized");

    // The server still answers afterwards.
    const after = await fetch(host.url, { method: "POST", body: create("hello") });
    assert.equal(after.status, 401);
  });

  test("answers a malformed body with 400 invalid_request", async () => {
    const response = await fetch(host.url, { method: "POST", headers: { authorization: bearer(newUser()) }, body: "{nope" });
    assert.equal(response.status, 400);
    assert.equal((await response.json()).error.code, "invalid_request");
  });

  test("refuses two Authorization headers with 400, as serve does", async () => {
    const answer = await new Promise((resolve, reject) => {
      const req = httpRequest(
        host.url,
        { method: "POST", headers: { authorization: [bearer(newUser()), bearer(newUser())] } },
        (res) => {
          let text = "";
          res.on("data", (chunk) => (text += chunk));
          res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
        },
      );
      req.on("error", reject);
      req.end(create("whose turn is it?"));
    });
    assert.equal(answer.status, 400);
    assert.deepEqual(answer.body.error, {
      code: "invalid_request",
      message: "invalid request: send exactly one Authorization header",
    });
  });

  test("takes a body a parser already read, and the host's own caller", async () => {
    const user = newUser();
    const parsing = await serve(async (req, res) => {
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      req.body = JSON.parse(Buffer.concat(chunks).toString("utf8")); // what express.json() leaves
      await engine.handleNode(req, res, { context: (incoming) => ({ userId: incoming.headers["x-user"] }) });
    });
    try {
      const response = await fetch(parsing.url, { method: "POST", headers: { "x-user": user }, body: create("hello") });
      assert.equal(response.status, 200);
      const events = parseSse(await response.text());
      const stored = await items(engine, { userId: user }, events[0].thread.id);
      assert.equal(stored[0].type, "user_message");
      assert.deepEqual(parsing.server.failures, []);
    } finally {
      await parsing.close();
    }
  });
});

describe("handleNode() with a slow model", { timeout: 120_000 }, () => {
  test("writes each token to the connection before the turn ends", async () => {
    const TOKENS = 3;
    const provider = await gatedProvider(TOKENS);
    const engine = await ChatEngine.create({
      databaseUrl: sqliteUrl(),
      openaiApiKey: "test-key",
      openaiBaseUrl: provider.baseUrl,
      chatModel: "test-model",
    });
    const host = await serve((req, res) => engine.handleNode(req, res, { context: { userId: newUser() } }));
    try {
      provider.reset();
      const response = await fetch(host.url, { method: "POST", body: create("a gated answer please") });
      const reader = response.body.getReader();
      let received = "";
      for (let i = 0; i < TOKENS; i++) {
        provider.release();
        // The provider sends token i + 1 only after the test released it, so
        // a host that held frames back would never get here.
        while (!received.includes(`gated${i} `)) {
          const { done, value } = await reader.read();
          assert.equal(done, false, `the response ended before token ${i}`);
          received += Buffer.from(value).toString("utf8");
        }
        assert.ok(!received.includes(`gated${i + 1}`));
      }
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += Buffer.from(value).toString("utf8");
      }
      assert.ok(parseSse(received).some((e) => e.type === "thread.item.done" && e.item.type === "assistant_message"));
    } finally {
      await host.close();
      await provider.close();
    }
  });

  test("cancels the turn when the client goes away, keeping the partial text", async () => {
    const provider = await hangingProvider(["Partial ", "answer"]);
    const engine = await ChatEngine.create({
      databaseUrl: sqliteUrl(),
      openaiApiKey: "test-key",
      openaiBaseUrl: provider.baseUrl,
      chatModel: "test-model",
    });
    const user = { userId: newUser() };
    const host = await serve((req, res) => engine.handleNode(req, res, { context: user }));
    try {
      const threadId = await new Promise((resolve, reject) => {
        const req = httpRequest(host.url, { method: "POST" }, (res) => {
          let text = "";
          let thread;
          let received = "";
          res.on("data", (chunk) => {
            received += chunk.toString("utf8");
            for (const event of parseSse(received)) {
              if (event.type === "thread.created") thread = event.thread.id;
            }
            text = parseSse(received)
              .filter((e) => e.type === "thread.item.updated" && e.update.type === "assistant_message.content_part.text_delta")
              .map((e) => e.update.delta)
              .join("");
            if (text === "Partial answer") {
              req.destroy(); // the user closed the tab
              resolve(thread);
            }
          });
        });
        req.on("error", (err) => {
          if (err.code !== "ECONNRESET") reject(err);
        });
        req.end(create("tell me something long"));
      });
      // Waits (with a generous deadline) for the cancelled turn to save its text.
      for (let i = 0; i < 100 && engine.runningTurns > 0; i++) await settle(engine);
      assert.equal(engine.runningTurns, 0, "the turn stopped when the client went away");
      const stored = await items(engine, user, threadId);
      assert.deepEqual(stored.map((item) => item.type), ["user_message", "assistant_message"]);
      assert.equal(stored[1].content[0].text, "Partial answer");
      assert.deepEqual(host.server.failures, []);
    } finally {
      await host.close();
      await provider.close();
    }
  });
});
