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

test("a JS tool can show a widget and send client effects", async () => {
  const { ToolResult } = await import("./helpers.mjs");
  const widget = {
    type: "Card",
    children: [
      { type: "Text", value: "42 notes" },
      { type: "Button", label: "Refresh", onClickAction: { type: "notes.refresh", handler: "server", loadingBehavior: "auto", streaming: true } },
    ],
  };
  const engine = await ChatEngine.create(
    { databaseUrl: sqliteUrl() },
    {
      tools: [
        {
          name: "get_stats",
          handler: () =>
            new ToolResult({ success: true, data: { total: 42, pending: 40, completed: 2 } }, widget, [
              { name: "notes_changed", data: { ids: ["n1"] } },
            ]),
        },
      ],
    },
  );
  const events = await collect(await engine.process(create("how many tasks do I have?"), { userId: newUser() }));
  // The model still got the output.
  assert.deepEqual(assistantTexts(events), ["You have 42 tasks: 40 pending and 2 completed."]);
  const shown = events.find((e) => e.type === "thread.item.done" && e.item.type === "widget");
  assert.deepEqual(shown.item.widget, widget);
  const effect = events.find((e) => e.type === "client_effect");
  assert.deepEqual(effect, { type: "client_effect", name: "notes_changed", data: { ids: ["n1"] } });
});

test("a JS tool that is not a widget root is refused with a clear message", async () => {
  const { ToolResult } = await import("./helpers.mjs");
  const engine = await ChatEngine.create(
    { databaseUrl: sqliteUrl() },
    { tools: [{ name: "get_stats", handler: () => new ToolResult("x", { type: "Text", value: "no root" }) }] },
  );
  const events = await collect(await engine.process(create("how many tasks do I have?"), { userId: newUser() }));
  assert.ok(!events.some((e) => e.type === "thread.item.done" && e.item.type === "widget"));
  assert.match(assistantTexts(events)[0], /widget was refused/);
});

test("a JS tool that requires approval runs only after Confirm", async () => {
  let calls = 0;
  const engine = await ChatEngine.create(
    { databaseUrl: sqliteUrl() },
    {
      tools: [
        {
          name: "get_stats",
          requiresApproval: true,
          handler: () => {
            calls += 1;
            return { success: true, data: { total: 7, pending: 7, completed: 0 } };
          },
        },
      ],
    },
  );
  const user = { userId: newUser() };
  const asked = await collect(await engine.process(create("how many tasks do I have?"), user));
  assert.equal(calls, 0, "not before Confirm");
  assert.deepEqual(assistantTexts(asked), []);
  const card = asked.find((e) => e.type === "thread.item.done" && e.item.type === "widget").item;
  assert.equal(card.widget.children[0].value, "Run get_stats?");
  const threadId = asked[0].thread.id;
  const confirm = {
    type: "threads.custom_action",
    params: { thread_id: threadId, item_id: card.id, action: card.widget.confirm.action },
  };
  const resumed = await collect(await engine.process(JSON.stringify(confirm), user));
  assert.equal(calls, 1);
  assert.deepEqual(assistantTexts(resumed), ["You have 7 tasks: 7 pending and 0 completed."]);
  // A second click runs nothing.
  const again = await collect(await engine.process(JSON.stringify(confirm), user));
  assert.ok(again.some((e) => e.type === "error"));
  assert.equal(calls, 1);
});
