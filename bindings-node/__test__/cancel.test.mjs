// Cancelling a stream: method, AbortSignal, `break`, ReadableStream cancel;
// the turn stops and the partial text is kept; the process exits on its own.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ChatEngine, create, hangingProvider, items, newUser, parseSse, settle, sqliteUrl } from "./helpers.mjs";

describe("a stream cancelled mid-answer", () => {
  let provider;
  let engine;
  before(async () => {
    // The provider streams "Partial answer" and then never finishes.
    provider = await hangingProvider(["Partial ", "answer"]);
    engine = await ChatEngine.create({
      databaseUrl: sqliteUrl(),
      openaiApiKey: "test-key",
      openaiBaseUrl: provider.baseUrl,
      chatModel: "test-model",
    });
  });
  after(async () => {
    await provider.close();
  });

  /** Reads frames until the assistant text so far is "Partial answer". */
  async function readUntilPartial(result) {
    let threadId;
    let text = "";
    while (text !== "Partial answer") {
      const { done, value } = await result.next();
      assert.equal(done, false, `the stream ended early after ${JSON.stringify(text)}`);
      for (const event of parseSse(value.toString("utf8"))) {
        if (event.type === "thread.created") threadId = event.thread.id;
        if (event.type === "thread.item.updated" && event.update.type === "assistant_message.content_part.text_delta") {
          text += event.update.delta;
        }
      }
    }
    return threadId;
  }

  async function assertPartialKept(user, threadId) {
    await settle(engine);
    assert.equal(engine.runningTurns, 0, "the cancelled turn stopped");
    const stored = await items(engine, user, threadId);
    assert.deepEqual(
      stored.map((item) => item.type),
      ["user_message", "assistant_message"],
    );
    assert.equal(stored[1].content[0].text, "Partial answer");
  }

  test("by an AbortSignal, which also ends a pending next()", async () => {
    const user = { userId: newUser() };
    const controller = new AbortController();
    const result = await engine.process(create("tell me a story"), user, { signal: controller.signal });
    const threadId = await readUntilPartial(result);
    const pending = result.next();
    controller.abort();
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.equal(result.cancelled, true);
    assert.deepEqual(await result.next(), { done: true, value: undefined });
    await assertPartialKept(user, threadId);
  });

  test("by cancel()", async () => {
    const user = { userId: newUser() };
    const result = await engine.process(create("tell me a story"), user);
    const threadId = await readUntilPartial(result);
    result.cancel();
    result.cancel();
    assert.deepEqual(await result.next(), { done: true, value: undefined });
    await assertPartialKept(user, threadId);
  });

  test("by break in for await", async () => {
    const user = { userId: newUser() };
    const result = await engine.process(create("tell me a story"), user);
    let threadId;
    for await (const chunk of result) {
      // A chunk holds every frame that was ready: one or several.
      const events = parseSse(chunk.toString("utf8"));
      for (const event of events) {
        if (event.type === "thread.created") threadId = event.thread.id;
      }
      if (events.some((event) => event.type === "thread.item.updated" && event.update.delta === "answer")) break;
    }
    assert.equal(result.cancelled, true);
    await assertPartialKept(user, threadId);
  });

  test("by cancelling the Response body", async () => {
    const user = { userId: newUser() };
    const response = (await engine.process(create("tell me a story"), user)).toResponse();
    const reader = response.body.getReader();
    let text = "";
    while (!text.includes('"delta":"answer"')) {
      const { value } = await reader.read();
      text += Buffer.from(value).toString("utf8");
    }
    await reader.cancel();
    const threadId = parseSse(text)[0].thread.id;
    await assertPartialKept(user, threadId);
  });

  test("an already aborted signal cancels at once", async () => {
    const user = { userId: newUser() };
    const result = await engine.process(create("tell me a story"), user, { signal: AbortSignal.abort() });
    assert.equal(result.cancelled, true);
    assert.deepEqual(await result.next(), { done: true, value: undefined });
    await settle(engine);
    assert.equal(engine.runningTurns, 0);
  });
});

/** Runs a fixture script; resolves with its exit code, stdout and duration. */
function runFixture(name, ...args) {
  const script = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const started = Date.now();
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

for (const mode of ["cancel", "abort"]) {
  test(`a process whose stream was cancelled (${mode}) exits on its own`, async () => {
    const { code, signal, stdout, stderr, ms } = await runFixture("cancel-and-exit.mjs", mode);
    assert.equal(signal, null, `killed after ${ms} ms: the process was kept alive\n${stdout}\n${stderr}`);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /cancelled: done=true/);
    assert.ok(ms < 10_000, `took ${ms} ms`);
  });
}
