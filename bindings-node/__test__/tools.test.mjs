// JS async functions registered as tools are called by the agent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChatEngine, assistantTexts, collect, create, newUser, sqliteUrl } from "./helpers.mjs";

test("the agent calls a JS tool with the verified caller and uses its result", async () => {
  const calls = [];
  // The offline scripted model asks for `get_stats` on "how many tasks";
  // a JS tool of that name replaces the built-in one.
  const engine = await ChatEngine.create(
    { databaseUrl: sqliteUrl() },
    {
      tools: [
        {
          name: "get_stats",
          description: "Task statistics from the host application.",
          parameters: { type: "object", properties: {} },
          handler: async (args, context) => {
            calls.push({ args, context });
            await new Promise((resolve) => setTimeout(resolve, 20));
            return { success: true, data: { total: 42, pending: 40, completed: 2 } };
          },
        },
      ],
    },
  );
  const user = { userId: newUser(), email: "tool@example.com", name: "Tool User" };
  const events = await collect(await engine.process(create("how many tasks do I have?"), user));
  assert.deepEqual(assistantTexts(events), ["You have 42 tasks: 40 pending and 2 completed."]);
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].args, {});
  assert.equal(calls[0].context.userId, user.userId);
  assert.equal(calls[0].context.email, "tool@example.com");
  assert.equal(calls[0].context.name, "Tool User");
  assert.match(calls[0].context.callId, /\S/);
  // The call shows as a workflow task.
  assert.ok(events.some((e) => e.type === "thread.item.done" && e.item.type === "workflow"));
});

test("a JS tool that throws is reported to the model as a failed call", async () => {
  const engine = await ChatEngine.create(
    { databaseUrl: sqliteUrl() },
    {
      tools: [
        {
          name: "get_stats",
          handler: () => {
            throw new Error("the stats service is down");
          },
        },
      ],
    },
  );
  const events = await collect(await engine.process(create("how many tasks do I have?"), { userId: newUser() }));
  const [text] = assistantTexts(events);
  assert.match(text, /the stats service is down/);
});

test("a JS tool may return plain text", async () => {
  const engine = await ChatEngine.create(
    { databaseUrl: sqliteUrl() },
    { tools: [{ name: "get_stats", handler: () => "not json" }] },
  );
  const events = await collect(await engine.process(create("how many tasks do I have?"), { userId: newUser() }));
  // The scripted model cannot read plain text as a task result and says so.
  assert.equal(assistantTexts(events).length, 1);
});

test("a host runs the task tools directly on the table the chat uses", async () => {
  const engine = await ChatEngine.create({ databaseUrl: sqliteUrl() });
  const user = { userId: newUser() };
  const created = await engine.runTaskTool("create_task", { title: "file taxes", priority: "high" }, user);
  assert.equal(created.success, true);
  assert.equal(created.data.title, "file taxes");
  const events = await collect(await engine.process(create("show my tasks"), user));
  assert.match(assistantTexts(events).join(" "), /file taxes/);
  const other = await engine.runTaskTool("list_tasks", {}, { userId: newUser() });
  assert.deepEqual(other.data, []);
  await assert.rejects(engine.runTaskTool("format_disk", {}, user), (err) => err.code === "not_found");
});
