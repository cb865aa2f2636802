// Metrics text and token usage through the binding, on SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChatEngine, ChatKitError, collect, create, newUser, postgresUrl, sqliteUrl } from "./helpers.mjs";

/** The value of the sample `line` starts with (`name{labels}`), 0 when absent. */
function sample(text, series) {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

for (const [store, url] of [
  ["sqlite", sqliteUrl],
  ["postgres", postgresUrl],
]) {
  describe(`metrics and token usage on ${store}`, () => {
    test("metrics() counts the turns that ran and tokenUsage() reads them back", async () => {
      const engine = await ChatEngine.create({ databaseUrl: url() });
      const alice = { userId: newUser() };
      const series = 'chatkit_turns_finished_total{outcome="completed"}';
      const before = sample(engine.metrics(), series);
      const events = await collect(await engine.process(create("add a task to buy milk"), alice));
      await collect(await engine.process(create("list my tasks"), alice));
      const text = engine.metrics();
      assert.match(text, /# TYPE chatkit_turn_duration_seconds histogram/);
      assert.equal(sample(text, series) - before, 2);

      const threadId = events[0].thread.id;
      const usage = await engine.tokenUsage(alice, threadId);
      assert.equal(usage.today.turns, 2);
      assert.equal(usage.thread.turns, 1);
      assert.equal(usage.thread.estimated, true, "the offline model reports no usage");
      assert.equal(usage.daily_budget, null);
      await assert.rejects(engine.tokenUsage({ userId: newUser() }, threadId), (err) => {
        assert.ok(err instanceof ChatKitError);
        assert.equal(err.code, "not_found");
        return true;
      });
    });
  });
}

test("a spent daily budget ends the next turn with a token_budget_exceeded error event", async () => {
  const engine = await ChatEngine.create({ databaseUrl: sqliteUrl(), dailyTokenBudget: 1 });
  const alice = { userId: newUser() };
  const first = await collect(await engine.process(create("hello"), alice));
  assert.equal(first.filter((e) => e.type === "error").length, 0);
  const second = await collect(await engine.process(create("hello again"), alice));
  const errors = second.filter((e) => e.type === "error");
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /daily budget of 1 tokens/);
  const usage = await engine.tokenUsage(alice);
  assert.equal(usage.remaining_today, 0);
});
