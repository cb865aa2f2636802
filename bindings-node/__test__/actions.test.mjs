// Widget action handlers registered from JS: checked by the engine, run for
// the verified caller, answered without the model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ActionResult, ChatEngine, ChatKitError, ToolResult, collect, create, items, newUser, sqliteUrl } from "./helpers.mjs";

const STATS = { success: true, data: { total: 7, pending: 7, completed: 0 } };

function counter(n) {
  return {
    type: "Card",
    children: [
      { type: "Text", value: `count ${n}` },
      {
        type: "Form",
        onSubmitAction: { type: "note.save", payload: { n } },
        children: [
          { type: "Input", name: "title" },
          { type: "Button", submit: true, label: "Save" },
        ],
      },
      { type: "Button", label: "+1", onClickAction: { type: "counter.add", payload: { n } } },
    ],
  };
}

async function counterEngine(calls) {
  return ChatEngine.create(
    { databaseUrl: sqliteUrl() },
    {
      tools: [{ name: "get_stats", handler: () => new ToolResult(STATS, counter(1)) }],
      actions: [
        {
          type: "counter.add",
          handler: async (action, widget, context) => {
            calls.push({ action, shown: widget.children[0].value, context });
            const n = action.payload.n + 1;
            return new ActionResult(counter(n), [{ name: "counter_changed", data: { n } }]);
          },
        },
        {
          type: "note.save",
          handler: (action, widget, context) => {
            calls.push({ action, context });
            const title = action.payload.title ?? "";
            if (!title.trim()) throw new ChatKitError("invalid_request", 400, "Title cannot be empty");
            if (title === "crash") throw new Error("a bug in the host");
            if (title === "wrong") return { widget: "not an ActionResult" };
            return undefined;
          },
        },
      ],
    },
  );
}

async function shownCounter(engine, user) {
  const events = await collect(await engine.process(create("how many tasks do I have?"), user));
  return events.find((e) => e.type === "thread.item.done" && e.item.type === "widget").item;
}

function act(item, type, payload, sync = false) {
  return JSON.stringify({
    type: sync ? "threads.sync_custom_action" : "threads.custom_action",
    params: { thread_id: item.thread_id, item_id: item.id, action: { type, payload } },
  });
}

async function refusal(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ChatKitError, String(err));
    return err;
  }
  assert.fail("the action was accepted");
}

test("a JS action handler updates the widget in place without the model", async () => {
  const calls = [];
  const engine = await counterEngine(calls);
  const user = { userId: newUser(), email: "a@example.com" };
  const item = await shownCounter(engine, user);
  const events = await collect(await engine.process(act(item, "counter.add", { n: 1 }), user));
  assert.deepEqual(
    events.map((e) => e.type),
    ["stream_options", "thread.item.updated", "client_effect"],
  );
  assert.deepEqual(events[1].update, { type: "widget.root.updated", widget: counter(2) });
  assert.deepEqual(events[2], { type: "client_effect", name: "counter_changed", data: { n: 2 } });
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].action, { type: "counter.add", payload: { n: 1 } });
  assert.equal(calls[0].shown, "count 1");
  assert.equal(calls[0].context.userId, user.userId);
  assert.equal(calls[0].context.email, "a@example.com");
  // The sync form answers with the replaced item; a reload shows it.
  const answer = await engine.process(act(item, "counter.add", { n: 2 }, true), user);
  assert.deepEqual(JSON.parse(answer.json.toString("utf8")).updated_item.widget, counter(3));
  const stored = (await items(engine, user, item.thread_id)).find((i) => i.id === item.id);
  assert.deepEqual(stored.widget, counter(3));
});

test("a forged or foreign action never reaches the JS handler", async () => {
  const calls = [];
  const engine = await counterEngine(calls);
  const user = { userId: newUser() };
  const item = await shownCounter(engine, user);
  for (const forged of [{ n: 99 }, { n: 1, extra: true }, null]) {
    const err = await refusal(engine.process(act(item, "counter.add", forged, true), user));
    assert.equal(err.code, "invalid_request", JSON.stringify(forged));
  }
  const other = await refusal(engine.process(act(item, "counter.add", { n: 1 }, true), { userId: newUser() }));
  assert.equal(other.code, "not_found");
  assert.equal(calls.length, 0);
});

test("a submitted form reaches the JS handler and its refusals keep their code", async () => {
  const calls = [];
  const engine = await counterEngine(calls);
  const user = { userId: newUser() };
  const item = await shownCounter(engine, user);
  const saved = await engine.process(act(item, "note.save", { n: 1, title: "groceries" }, true), user);
  assert.deepEqual(JSON.parse(saved.json.toString("utf8")), {}, "no widget returned: the sender stays");
  assert.deepEqual(calls[0].action, { type: "note.save", payload: { n: 1, title: "groceries" } });
  // A field the form does not have is refused before the handler.
  const outside = await refusal(engine.process(act(item, "note.save", { n: 1, owner: "mallory" }, true), user));
  assert.equal(outside.code, "invalid_request");
  // The handler's own refusal keeps its code and message.
  const empty = await refusal(engine.process(act(item, "note.save", { n: 1, title: " " }, true), user));
  assert.equal(empty.code, "invalid_request");
  assert.match(empty.message, /Title cannot be empty/);
  const streamed = await collect(await engine.process(act(item, "note.save", { n: 1, title: " " }), user));
  const error = streamed.find((e) => e.type === "error");
  assert.ok(error, JSON.stringify(streamed));
  assert.match(error.message, /Title cannot be empty/);
  // A bug in the handler is an internal error: logged, not shown.
  for (const title of ["crash", "wrong"]) {
    const err = await refusal(engine.process(act(item, "note.save", { n: 1, title }, true), user));
    assert.equal(err.code, "internal", title);
    assert.doesNotMatch(err.body, /a bug in the host/);
  }
  assert.equal(calls.length, 5);
});

test("an action handler without a function or type is a configuration error", async () => {
  for (const actions of [[{ type: "x.y" }], [{ type: "", handler: () => undefined }]]) {
    const err = await refusal(ChatEngine.create({ databaseUrl: sqliteUrl() }, { actions }));
    assert.equal(err.code, "invalid_config");
  }
});
