// Browser test of the serve demo page: Debian's chromium driven by
// playwright-core against a running `serve` (started by
// scripts/stages/40-browser.sh in development identity mode with a paced
// offline model, CHATKIT_DEV_STREAM_DELAY_MS, so that streaming can be
// watched and a long answer stopped midway).
//
//   SERVE_URL=http://127.0.0.1:PORT node --test
//
// Optional: CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (saves
// PNGs of the page there).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";

const BASE = process.env.SERVE_URL;
const SHOTS = process.env.SCREENSHOT_DIR;
const USER = `alice-${Date.now().toString(36)}`;
const TIMEOUT = 15_000;

let context;
let page;
let profile;

async function shot(name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

async function sendMessage(text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
}

/** Waits until no response is streaming (the Send button is back). */
async function waitIdle() {
  await page.waitForSelector("#send:not([hidden])", { timeout: TIMEOUT });
  await page.waitForSelector("#input:not([disabled])", { timeout: TIMEOUT });
}

before(async () => {
  assert.ok(BASE, "set SERVE_URL to the running serve, e.g. http://127.0.0.1:8000");
  profile = mkdtempSync(join(tmpdir(), "chatkit-chromium-"));
  // A persistent context on a fresh, temporary profile directory.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    viewport: { width: 1180, height: 760 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => {
    throw err;
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test("signs in with a development identity", async () => {
  await page.goto(BASE);
  await page.waitForSelector("#signin:not([hidden])");
  assert.equal(await page.textContent("#model-badge"), "offline scripted model");
  await shot("01-sign-in");
  await page.fill("#dev-user", USER);
  await page.click("#sign-in");
  await page.waitForSelector("#app:not([hidden])");
  assert.equal(await page.textContent("#who"), `Signed in as ${USER}`);
  assert.ok(await page.isVisible("#welcome"));
});

test("streams the answer and shows the tool call as a workflow task", async () => {
  await sendMessage("add a task to buy milk");
  // The answer streams in: the bubble exists while still streaming.
  await page.waitForSelector(".msg.user >> text=add a task to buy milk");
  await page.waitForSelector(".msg.assistant.streaming");
  await waitIdle();
  const answer = await page.textContent(".msg.assistant");
  assert.match(answer, /buy milk/i);
  const task = page.locator(".workflow .task.complete");
  await task.first().waitFor();
  assert.match(await task.first().locator(".title").textContent(), /creating a task/i);
  // The thread appears in the list with its title.
  await page.waitForSelector(".threads button[aria-current='true']");
  await shot("02-answer");
});

test("keeps the history across a reload", async () => {
  await page.reload();
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector(".msg.user >> text=add a task to buy milk");
  assert.match(await page.textContent(".msg.assistant"), /buy milk/i);
  assert.equal(await page.locator(".workflow .task.complete").count(), 1);
  assert.equal(await page.locator(".threads button").count(), 1);
});

test("shows Urdu right to left", async () => {
  await page.click("#new-chat");
  const urdu = "دودھ خریدنے کا کام شامل کرو";
  await sendMessage(urdu);
  await page.waitForSelector(`.msg.user >> text=${urdu}`);
  await waitIdle();
  const bubbles = page.locator(".msg");
  assert.equal(await bubbles.count(), 2);
  for (const bubble of await bubbles.all()) {
    assert.equal(await bubble.getAttribute("dir"), "auto");
    assert.equal(await bubble.evaluate((el) => getComputedStyle(el).direction), "rtl");
    assert.ok(await bubble.evaluate((el) => el.matches(":dir(rtl)")));
  }
  // The answer is in Urdu (Arabic script).
  assert.match(await page.textContent(".msg.assistant"), /[\u0600-\u06FF]/);
  assert.equal(await page.locator(".threads button").count(), 2);
  await shot("03-urdu");
});

test("stopping a long answer midway keeps the partial text", async () => {
  await sendMessage("show my tasks");
  await page.waitForSelector(".msg.assistant.streaming");
  assert.ok(await page.isVisible("#stop"));
  await page.click("#stop");
  await page.waitForSelector(".msg.assistant.stopped");
  await waitIdle();
  assert.match(await page.textContent(".msg.assistant.stopped .note"), /stopped/i);
  assert.equal(await page.locator(".msg.assistant.streaming").count(), 0);
  await shot("04-stopped");

  // The same question answered in full, for comparison.
  await sendMessage("show my tasks");
  await page.waitForSelector(".msg.assistant.streaming");
  await waitIdle();
  const full = (await page.locator(".msg.assistant").last().textContent()).trim();

  // After a reload the thread shows what the server kept of the stopped
  // answer: a non-empty beginning of the full one.
  await page.reload();
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector(".msg.user >> text=show my tasks");
  const answers = await page.locator(".msg.assistant").allTextContents();
  const kept = answers[answers.length - 2].trim();
  assert.ok(kept.length > 0, "the partial answer was kept");
  assert.ok(kept.length < full.length, `"${kept}" is shorter than "${full}"`);
  assert.ok(full.startsWith(kept), `"${full}" starts with "${kept}"`);
  await shot("04b-kept-after-reload");
});

test("offers a retry after a failed request, and the retry answers", async () => {
  await page.click("#new-chat");
  let failed = false;
  await page.route("**/chatkit", async (route) => {
    if (!failed) {
      failed = true;
      await route.abort("connectionreset");
    } else {
      await route.continue();
    }
  });
  await sendMessage("add a task to call mom");
  await page.waitForSelector(".banner-error .retry");
  await shot("05-error");
  await page.click(".banner-error .retry");
  await waitIdle();
  await page.waitForSelector(".msg.assistant >> text=/call mom/i");
  assert.equal(await page.locator(".banner-error").count(), 0);
  await page.unroute("**/chatkit");
});

/** Every item of the message pane: its rendered height and the height its content needs. */
async function itemHeights() {
  return page.$$eval(".messages > .msg, .messages > .workflow", (els) =>
    els.map((el) => ({
      kind: el.className,
      text: el.textContent.trim().slice(0, 40),
      height: el.getBoundingClientRect().height,
      needed: el.scrollHeight,
    })),
  );
}

function assertReadable(items) {
  assert.ok(items.some((i) => i.kind.startsWith("workflow")), "the conversation shows tool activity");
  for (const item of items) {
    // A line of text is at least 16 px; a squeezed item is a few px tall and clips its content.
    assert.ok(item.height >= 16, `${item.kind} "${item.text}" is ${item.height}px tall`);
    assert.ok(
      item.height + 1 >= item.needed,
      `${item.kind} "${item.text}" is ${item.height}px tall but its content needs ${item.needed}px`,
    );
  }
}

test("every item stays readable in a conversation taller than the pane", async () => {
  await page.click("#new-chat");
  const chores = ["water the plants", "pay the rent", "book a dentist", "fix the bike", "call the bank", "buy bread"];
  for (const chore of chores) {
    await sendMessage(`add a task to ${chore}`);
    await page.waitForSelector(`.msg.user >> text=add a task to ${chore}`);
    await waitIdle();
  }
  const pane = await page.$eval(".messages", (el) => ({ scroll: el.scrollHeight, client: el.clientHeight }));
  assert.ok(pane.scroll > pane.client, `the conversation (${pane.scroll}px) is taller than the pane (${pane.client}px)`);
  assert.equal(await page.locator(".workflow").count(), chores.length);
  assertReadable(await itemHeights());
  await shot("06-long-conversation");

  // The same after a reload, when the page renders the stored items in one go.
  await page.reload();
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector(`.msg.user >> text=add a task to ${chores[chores.length - 1]}`);
  assert.equal(await page.locator(".workflow").count(), chores.length);
  assertReadable(await itemHeights());
});

/** The user's tasks as the database has them: title -> completed. */
function tasksInDatabase() {
  assert.ok(process.env.CHATKIT_DB, "set CHATKIT_DB to serve's SQLite file");
  const script = [
    "import json, sqlite3, sys",
    "db = sqlite3.connect(sys.argv[1])",
    "rows = db.execute('SELECT title, completed FROM tasks WHERE \"userId\" = ? ORDER BY title', (sys.argv[2],))",
    "print(json.dumps({t: bool(c) for t, c in rows}))",
  ].join("\n");
  return JSON.parse(execFileSync("python3", ["-c", script, process.env.CHATKIT_DB, USER], { encoding: "utf8" }));
}

/** The task list widget's rows as the page shows them: title -> done. */
async function tasksInWidget(list) {
  const rows = list.locator(".w-ListViewItem");
  const shown = {};
  for (const row of await rows.all()) {
    const title = row.locator(".w-Text").first();
    shown[(await title.textContent()).trim()] = await title.evaluate((el) => el.classList.contains("w-done"));
  }
  return shown;
}

test("acts on tasks from their widgets, confirms a delete, and the database agrees", async () => {
  await page.click("#new-chat");
  await sendMessage("show my tasks");
  await waitIdle();
  const list = page.locator(".widget .w-ListView").last();
  await list.waitFor();
  assert.deepEqual(await tasksInWidget(list), tasksInDatabase());
  await shot("07-task-list");

  // Toggle one from the widget: its row is redrawn in place, with no answer.
  const answersBefore = await page.locator(".msg.assistant").count();
  const row = list.locator(".w-ListViewItem", { hasText: "water the plants" });
  await row.locator("button", { hasText: "Done" }).click();
  await row.locator(".w-Text.w-done").waitFor();
  await row.locator("button", { hasText: "Undo" }).waitFor();
  await waitIdle();
  assert.equal(await page.locator(".msg.assistant").count(), answersBefore, "no model answer");
  assert.equal(tasksInDatabase()["water the plants"], true);

  // Edit one in place: its row becomes a form; Save updates the database
  // and redraws the row, again with no answer.
  const dentist = list.locator(".w-ListViewItem", { hasText: "book a dentist" });
  await dentist.locator("button", { hasText: "Edit" }).click();
  const form = list.locator(".w-ListViewItem form");
  await form.waitFor();
  assert.equal(await form.locator("input[name=title]").inputValue(), "book a dentist");
  await form.locator("input[name=title]").fill("book a dentist for Friday");
  await form.locator("select[name=priority]").selectOption("high");
  await form.locator("input[name=due_date]").fill("2031-05-09");
  await shot("08-edit-form");
  await form.locator("button[type=submit]").click();
  const edited = list.locator(".w-ListViewItem", { hasText: "book a dentist for Friday" });
  await edited.locator(".w-Badge", { hasText: "high" }).waitFor();
  await waitIdle();
  assert.equal(await list.locator("form").count(), 0, "the form is gone");
  assert.equal(await page.locator(".msg.assistant").count(), answersBefore, "no model answer");
  const inDbAfterEdit = tasksInDatabase();
  assert.equal(inDbAfterEdit["book a dentist for Friday"], false);
  assert.equal("book a dentist" in inDbAfterEdit, false);

  // Delete one through the confirmation card.
  await sendMessage("delete pay the rent");
  await waitIdle();
  const card = page.locator(".widget .w-Card", { hasText: "Delete the task “pay the rent”?" });
  await card.waitFor();
  assert.equal(tasksInDatabase()["pay the rent"], false, "nothing is deleted before Confirm");
  await shot("09-confirm");
  await card.locator(".w-footer button", { hasText: "Confirm" }).click();
  await card.locator(".w-Caption", { hasText: "Confirmed" }).waitFor();
  await waitIdle();
  await page.waitForSelector(".msg.assistant >> text=/Deleted/");
  assert.equal(await card.locator(".w-footer").count(), 0, "an answered card offers nothing");
  assert.equal("pay the rent" in tasksInDatabase(), false);

  // Cancel another delete: the model is told, the task stays.
  await sendMessage("delete fix the bike");
  await waitIdle();
  const other = page.locator(".widget .w-Card", { hasText: "Delete the task “fix the bike”?" });
  await other.locator(".w-footer button", { hasText: "Cancel" }).click();
  await other.locator(".w-Caption", { hasText: "Cancelled" }).waitFor();
  await waitIdle();
  await page.waitForSelector(".msg.assistant >> text=/nothing was deleted/");
  assert.equal(tasksInDatabase()["fix the bike"], false);
  await shot("10-cancelled");

  // After a reload the page shows what the database has.
  await page.reload();
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector(".msg.user >> text=delete fix the bike");
  const reloaded = page.locator(".widget .w-ListView").first();
  const inDb = tasksInDatabase();
  const shownAfter = await tasksInWidget(reloaded);
  assert.equal(shownAfter["water the plants"], true, "the toggled row stays toggled");
  assert.equal(shownAfter["book a dentist for Friday"], false, "the edited row stays edited");
  assert.equal(inDb["water the plants"], true);
  assert.equal(await page.locator(".w-Caption", { hasText: "Confirmed" }).count(), 1);
  assert.equal(await page.locator(".w-Caption", { hasText: "Cancelled" }).count(), 1);
  assert.equal(await page.locator(".w-footer").count(), 0);
  // A fresh list shows exactly the database's tasks.
  await sendMessage("show my tasks");
  await waitIdle();
  assert.deepEqual(await tasksInWidget(page.locator(".widget .w-ListView").last()), tasksInDatabase());
  await shot("11-after-reload");
});
