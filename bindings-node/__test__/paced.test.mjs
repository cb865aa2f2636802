// A slow model's tokens leave the engine one by one: a read never waits for
// a second frame to batch. Each token is released by the provider only after
// the previous one came out of the stream, so a stream that held frames back
// (to batch them, or until the turn ends) would never see the next token and
// the test would fail at node:test's deadline.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ChatEngine, create, gatedProvider, newUser, parseSse, sqliteUrl } from "./helpers.mjs";

const TOKENS = 3;

describe("a paced model", { timeout: 120_000 }, () => {
  let provider;
  let engine;
  before(async () => {
    provider = await gatedProvider(TOKENS);
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

  /** Reads with `read()` until token `i` is in, checking the answer is not done. */
  async function readTokens(read) {
    let received = "";
    for (let i = 0; i < TOKENS; i++) {
      provider.release();
      while (!received.includes(`gated${i} `)) {
        const chunk = await read();
        assert.notEqual(chunk, null, `the stream ended before token ${i}`);
        received += Buffer.from(chunk).toString("utf8");
      }
      assert.ok(!received.includes(`gated${i + 1}`));
      const finished = parseSse(received).filter(
        (event) => event.type === "thread.item.done" && event.item.type === "assistant_message",
      );
      assert.deepEqual(finished, [], "the answer is not finished yet");
    }
    for (;;) {
      const chunk = await read();
      if (chunk == null) break;
      received += Buffer.from(chunk).toString("utf8");
    }
    const events = parseSse(received);
    const deltas = events
      .filter((e) => e.type === "thread.item.updated" && e.update.type === "assistant_message.content_part.text_delta")
      .map((e) => e.update.delta);
    assert.equal(deltas.join(""), "gated0 gated1 gated2 ");
    assert.ok(events.some((e) => e.type === "thread.item.done" && e.item.type === "assistant_message"));
  }

  test("has each token read from the iterator before the turn ends", async () => {
    provider.reset();
    const result = await engine.process(create("a gated answer please"), { userId: newUser() });
    await readTokens(async () => {
      const { done, value } = await result.next();
      return done ? null : value;
    });
  });

  test("has each token read from toResponse()'s body before the turn ends", async () => {
    provider.reset();
    const result = await engine.process(create("a gated answer please"), { userId: newUser() });
    const reader = result.toResponse().body.getReader();
    await readTokens(async () => {
      const { done, value } = await reader.read();
      return done ? null : value;
    });
  });
});
