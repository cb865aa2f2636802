// Full turns through the binding, on SQLite and on PostgreSQL.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ChatEngine,
  addMessage,
  assistantTexts,
  collect,
  create,
  items,
  newUser,
  postgresUrl,
  sqliteUrl,
} from "./helpers.mjs";

for (const [store, url] of [
  ["sqlite", sqliteUrl],
  ["postgres", postgresUrl],
]) {
  describe(`a conversation on ${store}`, () => {
    test("creates a task, lists it, and the thread is persisted", async () => {
      const engine = await ChatEngine.create({ databaseUrl: url() });
      assert.equal(engine.modelName, "scripted-offline");
      const alice = { userId: newUser(), email: "alice@example.com", name: "Alice" };

      const first = await engine.process(create("add a task to buy milk"), alice);
      assert.equal(first.isStream, true);
      assert.equal(first.json, null);
      const events = await collect(first);
      assert.equal(events[0].type, "thread.created");
      const threadId = events[0].thread.id;
      assert.match(threadId, /^thr_/);
      assert.ok(events.some((e) => e.type === "thread.item.updated"), "text streams as deltas");
      assert.deepEqual(assistantTexts(events), ['Added "buy milk" to your tasks (medium priority).']);

      const second = await engine.process(Buffer.from(addMessage(threadId, "show my tasks")), alice);
      const texts = assistantTexts(await collect(second));
      assert.equal(texts.length, 1);
      assert.match(texts[0], /You have 1 task\(s\):\n1\. buy milk — pending/);

      const stored = await items(engine, alice, threadId);
      const kinds = stored.map((item) => item.type);
      assert.equal(kinds.filter((k) => k === "user_message").length, 2);
      assert.equal(kinds.filter((k) => k === "assistant_message").length, 2);

      // JSON requests: the thread list of this user only.
      const list = await engine.process('{"type":"threads.list","params":{}}', alice);
      assert.equal(list.isStream, false);
      const page = JSON.parse(list.json.toString("utf8"));
      assert.deepEqual(
        page.data.map((t) => t.id),
        [threadId],
      );
      // Iterating a JSON result yields the document once.
      const chunks = [];
      for await (const chunk of list) chunks.push(chunk);
      assert.equal(chunks.length, 1);

      const bob = { userId: newUser() };
      const others = await engine.process('{"type":"threads.list","params":{}}', bob);
      assert.deepEqual(JSON.parse(others.json.toString("utf8")).data, []);
    });

    test("answers in Urdu through the specialist", async () => {
      const engine = await ChatEngine.create({ database_url: url() });
      const user = { userId: newUser() };
      const events = await collect(await engine.process(create("دودھ خریدنے کا ٹاسک بنائیں"), user));
      const [text] = assistantTexts(events);
      assert.match(text, /ٹاسک/);
    });
  });
}

test("the stream works as a web ReadableStream and Response", async () => {
  const engine = await ChatEngine.create({ databaseUrl: sqliteUrl() });
  const user = { userId: newUser() };
  const response = (await engine.process(create("how many tasks do I have?"), user)).toResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const text = await response.text();
  assert.match(text, /^data: \{"type":"thread.created"/);
  assert.match(text, /You have 0 tasks: 0 pending and 0 completed\./);

  const json = (await engine.process('{"type":"threads.list","params":{}}', user)).toResponse();
  assert.equal(json.headers.get("content-type"), "application/json");
  assert.equal((await json.json()).data.length, 1);
});
