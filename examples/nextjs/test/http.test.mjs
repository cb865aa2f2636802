// Drives the built app (`next build` first) over HTTP: `next start` serves
// /api/chatkit (a Pages Router API route) and /chatkit (an App Router route
// handler), both embedding chatkit-engine; whole turns go through each.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const appDir = fileURLToPath(new URL("..", import.meta.url));
const secret = "nextjs-example-test-secret-0123456789";
let server;
let baseUrl;
let output = "";

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
function token(sub) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + 600 })}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

// The same endpoint twice: a Pages Router API route (`handleNode`) and an
// App Router route handler (`handle`); every ChatKit test runs on both.
const PATHS = ["/api/chatkit", "/chatkit"];

function post(path, body, sub) {
  const headers = { "content-type": "application/json" };
  if (sub) headers.authorization = `Bearer ${token(sub)}`;
  return fetch(`${baseUrl}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
}

const input = (text) => ({ content: [{ type: "input_text", text }], attachments: [], inference_options: {} });
const events = (text) =>
  text
    .split("\n\n")
    .filter((f) => f.startsWith("data: "))
    .map((f) => JSON.parse(f.slice(6)));
const answers = (evs) =>
  evs
    .filter((e) => e.type === "thread.item.done" && e.item.type === "assistant_message")
    .map((e) => e.item.content.map((p) => p.text).join(""));

before(async () => {
  assert.ok(existsSync(join(appDir, ".next", "BUILD_ID")), "run `next build` first");
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), "chatkit-nextjs-"));
  server = spawn(
    process.execPath,
    [join(appDir, "node_modules", "next", "dist", "bin", "next"), "start", "-p", String(port), "-H", "127.0.0.1"],
    {
      cwd: appDir,
      env: {
        ...process.env,
        NEXT_TELEMETRY_DISABLED: "1",
        DATABASE_URL: `sqlite://${join(dir, "chatkit.db")}`,
        JWT_SECRET: secret,
        OPENAI_API_KEY: "",
        JWKS_URL: "",
        CHATKIT_DEMO_USER: "",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  server.stdout.on("data", (d) => (output += d));
  server.stderr.on("data", (d) => (output += d));
  for (let i = 0; i < 300; i++) {
    if (server.exitCode !== null) break;
    try {
      await fetch(baseUrl);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  assert.fail(`next start did not come up:\n${output}`);
});

after(() => {
  server?.kill("SIGTERM");
});

for (const path of PATHS) {
  test(`${path}: a whole turn over HTTP, then the thread is listed and its items stored`, async () => {
    const user = `next-${randomUUID()}`;
    const first = await post(path, { type: "threads.create", params: { input: input("add a task to buy milk") } }, user);
    assert.equal(first.status, 200, output);
    assert.match(first.headers.get("content-type"), /^text\/event-stream/);
    const created = events(await first.text());
    assert.equal(created[0].type, "thread.created");
    const threadId = created[0].thread.id;
    assert.deepEqual(answers(created), ['Added "buy milk" to your tasks (medium priority).']);

    const second = await post(
      path,
      { type: "threads.add_user_message", params: { thread_id: threadId, input: input("show my tasks") } },
      user,
    );
    assert.equal(second.status, 200);
    assert.match(answers(events(await second.text()))[0], /buy milk — pending/);

    const list = await post(path, { type: "threads.list", params: {} }, user);
    assert.equal(list.status, 200);
    assert.match(list.headers.get("content-type"), /^application\/json/);
    assert.deepEqual(
      (await list.json()).data.map((t) => t.id),
      [threadId],
    );

    const stored = await post(path, { type: "items.list", params: { thread_id: threadId, order: "asc" } }, user);
    const kinds = (await stored.json()).data.map((item) => item.type);
    assert.equal(kinds.filter((k) => k === "assistant_message").length, 2);

    // Another user sees nothing of it.
    const foreign = await post(path, { type: "items.list", params: { thread_id: threadId } }, `next-${randomUUID()}`);
    assert.equal(foreign.status, 404);
    assert.equal((await foreign.json()).error.code, "not_found");
  });

  test(`${path}: errors are JSON with their status`, async () => {
    const anonymous = await post(path, { type: "threads.list", params: {} });
    assert.equal(anonymous.status, 401);
    assert.equal((await anonymous.json()).error.code, "unauthorized");

    const invalid = await post(path, { type: "threads.nope", params: {} }, "someone");
    assert.equal(invalid.status, 400);
    assert.equal((await invalid.json()).error.code, "invalid_request");

    const get = await fetch(`${baseUrl}${path}`);
    assert.equal(get.status, 405);
  });
}

test("the task list beside the chat follows what the assistant changed", async () => {
  const user = `next-${randomUUID()}`;
  const tasks = () => fetch(`${baseUrl}/api/tasks`, { headers: { authorization: `Bearer ${token(user)}` } });
  const empty = await tasks();
  assert.equal(empty.status, 200);
  assert.deepEqual((await empty.json()).data, []);

  const turn = await post("/api/chatkit", { type: "threads.create", params: { input: input("add a task to water the plants") } }, user);
  const created = events(await turn.text());
  // The page's onEffect hears which tasks changed, then reloads the list.
  const effect = created.find((e) => e.type === "client_effect");
  assert.equal(effect.name, "tasks_changed");
  const listed = (await (await tasks()).json()).data;
  assert.deepEqual(listed.map((t) => t.title), ["water the plants"]);
  assert.deepEqual(effect.data.task_ids, [listed[0].id]);

  const anonymous = await fetch(`${baseUrl}/api/tasks`);
  assert.equal(anonymous.status, 401);
});
