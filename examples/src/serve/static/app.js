// Demo page of chatkit-engine serve. It speaks the ChatKit protocol as the
// ChatKit web component does: every operation is a POST of a JSON body to
// /chatkit with a Bearer token; streaming operations answer with SSE frames
// (`data: <json>\n\n`), read here with fetch + ReadableStream. No build
// step, no dependencies.
"use strict";

const STORE = {
  token: "chatkit-demo.token",
  user: "chatkit-demo.user",
  thread: "chatkit-demo.thread",
};

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  token: localStorage.getItem(STORE.token),
  user: localStorage.getItem(STORE.user),
  threadId: localStorage.getItem(STORE.thread),
  threads: [],
  controller: null,
  items: new Map(), // item id -> { el, item }
  lastTurn: null, // { text, threadId, userItemId } of the last request, for retry
  effects: [], // client_effect events received, newest last
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------- transport

async function fetchChatKit(body, signal, retried = false) {
  const res = await fetch("/chatkit", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: `Bearer ${state.token}`,
    },
    body: JSON.stringify(body),
    signal,
  });
  if (res.ok) return res;
  let code = "http_error";
  let message = `The server answered ${res.status}.`;
  try {
    const err = (await res.json()).error;
    if (err) ({ code, message } = err);
  } catch (_) {
    /* not JSON */
  }
  // Dev tokens are signed with a per-process key: after a server restart,
  // sign the same user in again once, silently.
  if (res.status === 401 && !retried && state.info?.identity === "dev" && state.user) {
    if (await devSignIn(state.user).then(() => true, () => false)) {
      return fetchChatKit(body, signal, true);
    }
  }
  if (res.status === 401) {
    signOut(`Your session ended (${message}) Please sign in again.`);
  }
  throw new ApiError(res.status, code, message);
}

/** A non-streaming request: one JSON document. */
async function request(type, params) {
  const res = await fetchChatKit({ type, params });
  return res.json();
}

/** A streaming request: calls onEvent for each SSE `data:` line. */
async function stream(type, params, signal, onEvent) {
  const res = await fetchChatKit({ type, params }, signal);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of frame.split("\n")) {
        if (line.startsWith("data:")) onEvent(JSON.parse(line.slice(5).trimStart()));
      }
    }
  }
}

// ---------------------------------------------------------------- identity

async function devSignIn(user) {
  const res = await fetch("/api/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error?.message || `sign-in failed (${res.status})`);
  setIdentity(body.token, body.user_id);
}

function setIdentity(token, user) {
  state.token = token;
  state.user = user;
  localStorage.setItem(STORE.token, token);
  localStorage.setItem(STORE.user, user);
}

function signOut(message) {
  stopStreaming();
  state.token = null;
  state.threadId = null;
  localStorage.removeItem(STORE.token);
  localStorage.removeItem(STORE.thread);
  showSignIn(message);
}

function showSignIn(message) {
  $("app").hidden = true;
  $("account").hidden = true;
  $("signin").hidden = false;
  const dev = state.info?.identity === "dev";
  $("signin-dev").hidden = !dev;
  $("signin-jwt").hidden = dev;
  $("dev-user").required = dev;
  $("jwt-token").required = !dev;
  const error = $("signin-error");
  error.hidden = !message;
  error.textContent = message || "";
  (dev ? $("dev-user") : $("jwt-token")).focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const button = $("sign-in");
  button.disabled = true;
  $("signin-error").hidden = true;
  try {
    if (state.info.identity === "dev") {
      await devSignIn($("dev-user").value.trim());
    } else {
      const token = $("jwt-token").value.trim().replace(/^Bearer\s+/i, "");
      setIdentity(token, "");
    }
    await showApp();
  } catch (err) {
    showSignIn(err.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- threads

async function showApp() {
  await loadThreads(); // fails (and signs out) when the token is rejected
  $("signin").hidden = true;
  $("app").hidden = false;
  $("account").hidden = false;
  $("who").textContent = state.user ? `Signed in as ${state.user}` : "Signed in";
  loadUsage();
  if (state.threadId && state.threads.some((t) => t.id === state.threadId)) {
    await openThread(state.threadId);
  } else {
    newChat();
  }
  $("input").focus();
}

// ---------------------------------------------------------------- usage

/** Shows the caller's tokens today (and of the open thread) against the
 * daily budget, from GET /api/usage. */
async function loadUsage() {
  const query = state.threadId ? `?thread_id=${encodeURIComponent(state.threadId)}` : "";
  let report;
  try {
    const res = await fetch(`/api/usage${query}`, {
      headers: { Authorization: `Bearer ${state.token}` },
    });
    if (!res.ok) return;
    report = await res.json();
  } catch {
    return; // the usage line is informative only
  }
  const fmt = (n) => Number(n).toLocaleString("en");
  const today = report.today.input_tokens + report.today.output_tokens;
  const parts = [];
  if (report.daily_budget != null) {
    parts.push(`Tokens today: ${fmt(today)} / ${fmt(report.daily_budget)}`);
  } else {
    parts.push(`Tokens today: ${fmt(today)}`);
  }
  if (report.thread) {
    parts.push(`this chat: ${fmt(report.thread.input_tokens + report.thread.output_tokens)}`);
  }
  const estimated = report.today.estimated || (report.thread && report.thread.estimated);
  const el = $("usage");
  el.textContent = parts.join(" · ") + (estimated ? " (estimated)" : "");
  el.classList.toggle("spent", report.remaining_today === 0);
  el.title = estimated
    ? "Some counts are estimates: the model did not report its token usage."
    : "Token counts reported by the model provider.";
  el.hidden = false;
}

async function loadThreads() {
  const page = await request("threads.list", { limit: 50, order: "desc" });
  state.threads = page.data;
  renderThreads();
}

function renderThreads() {
  const list = $("threads");
  list.replaceChildren();
  for (const thread of state.threads) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dir = "auto";
    button.textContent = thread.title || "New chat";
    button.title = button.textContent;
    button.dataset.threadId = thread.id;
    if (thread.id === state.threadId) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => openThread(thread.id));
    li.append(button);
    list.append(li);
  }
  $("threads-empty").hidden = state.threads.length > 0;
}

function upsertThread(thread) {
  const index = state.threads.findIndex((t) => t.id === thread.id);
  if (index >= 0) state.threads[index] = { ...state.threads[index], ...thread };
  else state.threads.unshift(thread);
  renderThreads();
}

function setThread(id) {
  state.threadId = id;
  if (id) localStorage.setItem(STORE.thread, id);
  else localStorage.removeItem(STORE.thread);
  renderThreads();
}

function clearMessages() {
  state.items.clear();
  const messages = $("messages");
  messages.replaceChildren($("welcome"));
  $("welcome").hidden = false;
  setStatus("");
}

function newChat() {
  stopStreaming();
  setThread(null);
  clearMessages();
  $("input").focus();
}

async function openThread(id) {
  stopStreaming();
  setThread(id);
  clearMessages();
  try {
    // Newest first, then shown oldest first.
    const page = await request("items.list", { thread_id: id, limit: 100, order: "desc" });
    for (const item of page.data.reverse()) renderItem(item);
    scrollDown();
  } catch (err) {
    if (err.status === 404) {
      newChat();
      await loadThreads();
    } else {
      showError(err.message, null);
    }
  }
}

// ---------------------------------------------------------------- rendering

function scrollDown() {
  const messages = $("messages");
  messages.scrollTop = messages.scrollHeight;
}

function setStatus(text) {
  $("status").textContent = text || "";
}

function textOf(item) {
  return (item.content || [])
    .map((part) => part.text || "")
    .join("");
}

function bubble(role, text) {
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  el.dir = "auto";
  el.textContent = text;
  return el;
}

function place(id, el) {
  $("welcome").hidden = true;
  const existing = state.items.get(id);
  if (existing) existing.el.replaceWith(el);
  else $("messages").append(el);
}

function renderItem(item) {
  let el;
  switch (item.type) {
    case "user_message":
      el = bubble("user", textOf(item));
      break;
    case "assistant_message":
      el = bubble("assistant", textOf(item));
      break;
    case "workflow":
      el = renderWorkflow(item.workflow);
      break;
    case "task":
      el = renderWorkflow({ tasks: [item.task] });
      break;
    case "widget":
      el = renderWidget(item);
      break;
    default:
      return; // hidden context, client tool calls: not shown here
  }
  el.dataset.itemId = item.id;
  el.dataset.type = item.type;
  place(item.id, el);
  state.items.set(item.id, { el, item });
  scrollDown();
  return el;
}

function renderWorkflow(workflow) {
  const el = document.createElement("div");
  el.className = "workflow";
  const summary = document.createElement("div");
  summary.className = "summary";
  const s = workflow.summary;
  if (s && s.title) summary.textContent = s.title;
  else if (s && typeof s.duration === "number") summary.textContent = `Worked for ${s.duration}s`;
  else summary.hidden = true;
  const list = document.createElement("ul");
  for (const task of workflow.tasks || []) list.append(renderTask(task));
  el.append(summary, list);
  return el;
}

function renderTask(task) {
  const li = document.createElement("li");
  li.className = `task ${task.status_indicator || "none"}`;
  const ind = document.createElement("span");
  ind.className = "ind";
  const title = document.createElement("span");
  title.className = "title";
  title.dir = "auto";
  title.textContent = task.title || task.type;
  li.append(ind, title);
  const detail = taskDetail(task.content);
  if (detail) {
    const content = document.createElement("span");
    content.className = "content";
    content.dir = "auto";
    content.textContent = detail;
    content.title = detail;
    li.append(content);
  }
  return li;
}

/** A short line for a task's content: tool results are JSON, of which the
 * task title or the error is shown; other text is shown as is. */
function taskDetail(content) {
  if (!content) return "";
  let value;
  try {
    value = JSON.parse(content);
  } catch (_) {
    if (!/^\s*[[{]/.test(content)) return content;
    if (/"data"\s*:\s*\[/.test(content)) return "";
    // Long tool results arrive shortened, so no longer valid JSON.
    const title = /"title"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(content);
    return title ? `“${title[1]}”…` : "";
  }
  if (value && typeof value === "object") {
    if (value.success === false) return value.error || "failed";
    const data = value.data;
    if (data && typeof data.title === "string") return `“${data.title}”`;
    if (Array.isArray(data)) return `${data.length} task${data.length === 1 ? "" : "s"}`;
  }
  return "";
}

// ---------------------------------------------------------------- widgets

/** A widget item: the ChatKit components the engine emits, drawn with plain
 * DOM. Controls with a server action send it (`threads.custom_action`, or
 * `threads.sync_custom_action` when the action says `streaming: false`). */
function renderWidget(item) {
  const el = document.createElement("div");
  el.className = "widget";
  el.append(renderComponent(item.widget, item));
  return el;
}

function renderComponent(node, item) {
  if (!node || typeof node !== "object") return document.createTextNode("");
  const kids = () => (Array.isArray(node.children) ? node.children : []).map((c) => renderComponent(c, item));
  let el;
  switch (node.type) {
    case "Card":
    case "ListView":
    case "Basic":
      el = document.createElement("div");
      el.append(...kids());
      if (node.status && node.status.text) {
        const status = document.createElement("div");
        status.className = "w-status";
        status.textContent = node.status.text;
        el.prepend(status);
      }
      if (node.confirm || node.cancel) {
        const footer = document.createElement("div");
        footer.className = "w-footer";
        for (const [which, spec] of [["confirm", node.confirm], ["cancel", node.cancel]]) {
          if (!spec) continue;
          footer.append(actionButton(spec.label, spec.action, item, `w-button ${which === "confirm" ? "primary" : "outline"}`));
        }
        el.append(footer);
      }
      break;
    case "ListViewItem":
      el = document.createElement("div");
      el.append(...kids());
      break;
    case "Form":
      el = renderForm(node, item, kids);
      break;
    case "Row":
    case "Col":
    case "Box":
      el = document.createElement("div");
      if (typeof node.flex === "number") el.style.flex = String(node.flex);
      if (node.align) el.style.alignItems = node.align === "start" || node.align === "end" ? `flex-${node.align}` : node.align;
      el.append(...kids());
      break;
    case "Text":
    case "Title":
    case "Caption":
    case "Markdown":
      el = document.createElement("span");
      el.dir = "auto";
      el.textContent = node.value ?? "";
      if (node.lineThrough) el.classList.add("w-done");
      if (node.color) el.dataset.color = node.color;
      break;
    case "Badge":
      el = document.createElement("span");
      el.textContent = node.label ?? "";
      if (node.color) el.dataset.color = node.color;
      break;
    case "Label":
      el = document.createElement("label");
      el.textContent = node.value ?? "";
      if (node.fieldName) el.dataset.field = node.fieldName;
      break;
    case "Input":
      el = document.createElement("input");
      el.type = node.inputType || "text";
      el.name = node.name || "";
      el.value = node.defaultValue ?? "";
      if (node.placeholder) el.placeholder = node.placeholder;
      if (node.pattern) el.pattern = node.pattern;
      if (node.required) el.required = true;
      el.dir = "auto";
      break;
    case "Select":
      el = document.createElement("select");
      el.name = node.name || "";
      for (const option of node.options || []) {
        const opt = document.createElement("option");
        opt.value = option.value;
        opt.textContent = option.label;
        el.append(opt);
      }
      if (node.defaultValue != null) el.value = node.defaultValue;
      break;
    case "Button":
      if (node.submit) {
        el = document.createElement("button");
        el.type = "submit";
        el.className = "w-button primary";
        el.textContent = node.label ?? "";
        break;
      }
      el = actionButton(node.label ?? "", node.onClickAction, item, "w-button");
      if (node.color) el.dataset.color = node.color;
      if (node.variant) el.dataset.variant = node.variant;
      break;
    case "Icon":
      el = document.createElement("span");
      el.className = "w-icon";
      el.dataset.name = node.name || "";
      el.textContent = { "check-circle-filled": "✓", "empty-circle": "○", check: "✓", "circle-question": "?" }[node.name] || "•";
      if (node.color) el.dataset.color = node.color;
      break;
    case "Divider":
      el = document.createElement("hr");
      break;
    case "Spacer":
      el = document.createElement("span");
      el.style.flex = "1";
      break;
    default:
      el = document.createElement("div");
      el.append(...kids());
  }
  el.classList.add(`w-${node.type}`);
  if (node.key) el.dataset.key = node.key;
  return el;
}

/** A `Form`: submitting it sends its `onSubmitAction` with the values of its
 * named controls merged into the payload (a dotted name nests), as ChatKit's
 * own client does. */
function renderForm(node, item, kids) {
  const form = document.createElement("form");
  form.noValidate = false;
  form.append(...kids());
  const action = node.onSubmitAction;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!action || action.handler === "client") return;
    const payload = { ...(action.payload ?? {}) };
    for (const [name, value] of new FormData(form)) {
      const path = name.split(".");
      let target = payload;
      for (const part of path.slice(0, -1)) target = target[part] ??= {};
      target[path[path.length - 1]] = value;
    }
    sendAction(item.id, { ...action, payload }, form.querySelector("button[type=submit]"));
  });
  return form;
}

function actionButton(label, action, item, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = label;
  if (action && action.handler !== "client") {
    button.addEventListener("click", () => sendAction(item.id, action, button));
  } else {
    button.disabled = true;
  }
  return button;
}

/** Sends a widget action for the widget item `itemId` and applies the answer. */
async function sendAction(itemId, action, button) {
  if (state.controller || !state.threadId) return;
  const params = { thread_id: state.threadId, item_id: itemId, action: { type: action.type, payload: action.payload ?? null } };
  for (const b of document.querySelectorAll(`[data-item-id="${itemId}"] button`)) b.disabled = true;
  if (action.streaming === false) {
    try {
      const answer = await request("threads.sync_custom_action", params);
      if (answer.updated_item) renderItem(answer.updated_item);
    } catch (err) {
      showError(err.message, null);
    } finally {
      if (button.isConnected) renderItem(state.items.get(itemId).item);
    }
    return;
  }
  const turn = { text: null, threadId: state.threadId, userItemId: null, action: true };
  await runTurn("threads.custom_action", params, turn);
  // A refused action leaves the widget as it was: draw it clickable again.
  const entry = state.items.get(itemId);
  if (entry && entry.el.querySelector("button:disabled")) renderItem(entry.item);
}

function showError(message, retry) {
  const el = document.createElement("div");
  el.className = "banner-error";
  el.setAttribute("role", "alert");
  const text = document.createElement("span");
  text.textContent = message || "Something went wrong.";
  el.append(text);
  if (retry) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "retry";
    button.textContent = "Retry";
    button.addEventListener("click", () => {
      el.remove();
      retry();
    });
    el.append(button);
  }
  $("welcome").hidden = true;
  $("messages").append(el);
  scrollDown();
}

// ---------------------------------------------------------------- events

function onEvent(event, turn) {
  switch (event.type) {
    case "thread.created":
      setThread(event.thread.id);
      turn.threadId = event.thread.id;
      upsertThread(event.thread);
      break;
    case "thread.updated":
      upsertThread(event.thread);
      break;
    case "thread.item.added":
    case "thread.item.done":
    case "thread.item.replaced": {
      const el = renderItem(event.item);
      if (event.item.type === "user_message") turn.userItemId = event.item.id;
      if (el && event.item.type === "assistant_message") {
        el.classList.toggle("streaming", event.type === "thread.item.added");
        if (event.type === "thread.item.added") turn.assistantEl = el;
      }
      break;
    }
    case "thread.item.updated":
      onItemUpdate(event.item_id, event.update);
      break;
    case "thread.item.removed": {
      const entry = state.items.get(event.item_id);
      if (entry) entry.el.remove();
      state.items.delete(event.item_id);
      break;
    }
    case "stream_options":
      $("stop").hidden = !event.stream_options.allow_cancel;
      break;
    case "progress_update":
      setStatus(event.text);
      break;
    case "client_effect":
      // What ChatKit React hands to `onEffect`: the page can refresh what
      // changed (the Next.js example reloads its task list on tasks_changed).
      state.effects.push(event);
      document.dispatchEvent(new CustomEvent("chatkit.effect", { detail: { name: event.name, data: event.data } }));
      break;
    case "notice": {
      const el = document.createElement("div");
      el.className = "notice";
      el.textContent = event.message || "";
      $("messages").append(el);
      break;
    }
    case "error":
      turn.failed = true;
      showError(
        event.code === "custom" && event.message ? event.message : "The response failed.",
        event.allow_retry && !turn.action ? () => retryTurn(turn) : null,
      );
      break;
    default:
      break;
  }
}

function onItemUpdate(itemId, update) {
  const entry = state.items.get(itemId);
  if (!entry) return;
  const { el, item } = entry;
  switch (update.type) {
    case "assistant_message.content_part.added":
      item.content = item.content || [];
      item.content[update.content_index] = update.content;
      el.textContent = textOf(item);
      break;
    case "assistant_message.content_part.text_delta": {
      item.content = item.content || [];
      const part = item.content[update.content_index] || { type: "output_text", text: "" };
      part.text = (part.text || "") + update.delta;
      item.content[update.content_index] = part;
      el.textContent = textOf(item);
      break;
    }
    case "assistant_message.content_part.done":
      item.content[update.content_index] = update.content;
      el.textContent = textOf(item);
      break;
    case "workflow.task.added":
    case "workflow.task.updated":
      item.workflow.tasks[update.task_index] = update.task;
      renderItem(item);
      return;
    case "widget.root.updated":
      item.widget = update.widget;
      renderItem(item);
      return;
    default:
      return;
  }
  scrollDown();
}

// ---------------------------------------------------------------- turns

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("input").disabled = busy;
  document.body.classList.toggle("busy", busy);
}

function stopStreaming() {
  if (state.controller) state.controller.abort();
}

async function runTurn(type, params, turn) {
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  setStatus("");
  try {
    await stream(type, params, controller.signal, (event) => onEvent(event, turn));
  } catch (err) {
    if (controller.signal.aborted) {
      const el = turn.assistantEl;
      if (el) {
        el.classList.add("stopped");
        const note = document.createElement("span");
        note.className = "note";
        note.textContent = "Stopped";
        el.append(note);
      } else {
        setStatus("Stopped.");
      }
    } else if (err instanceof ApiError && err.status === 401) {
      // signOut already showed the sign-in form
    } else {
      turn.failed = true;
      const message =
        err instanceof ApiError
          ? err.message
          : "The connection to the server broke off. Check that it is running, then retry.";
      showError(message, turn.action ? null : () => retryTurn(turn));
    }
  } finally {
    if (turn.assistantEl) turn.assistantEl.classList.remove("streaming");
    if (state.controller === controller) state.controller = null;
    setBusy(false);
    if (!controller.signal.aborted) setStatus("");
    loadUsage();
    $("input").focus();
  }
}

async function send(text) {
  text = text.trim();
  if (!text || state.controller) return;
  const input = {
    content: [{ type: "input_text", text }],
    attachments: [],
    quoted_text: "",
    inference_options: {},
  };
  const turn = { text, threadId: state.threadId, userItemId: null };
  state.lastTurn = turn;
  $("input").value = "";
  autosize();
  if (state.threadId) {
    await runTurn("threads.add_user_message", { thread_id: state.threadId, input }, turn);
  } else {
    await runTurn("threads.create", { input }, turn);
  }
}

/** Retry after an error: re-run the answer to the stored user message, or
 * send the text again when it never reached the server. */
async function retryTurn(turn) {
  if (state.controller) return;
  if (turn.threadId && turn.userItemId) {
    const next = { ...turn, failed: false, assistantEl: null };
    await runTurn("threads.retry_after_item", { thread_id: turn.threadId, item_id: turn.userItemId }, next);
  } else {
    await send(turn.text);
  }
}

// ---------------------------------------------------------------- wiring

function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

async function init() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("new-chat").addEventListener("click", newChat);
  $("stop").addEventListener("click", stopStreaming);
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send($("input").value);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send($("input").value);
    }
  });
  $("input").addEventListener("input", autosize);
  for (const chip of document.querySelectorAll("[data-prompt]")) {
    chip.addEventListener("click", () => send(chip.dataset.prompt));
  }

  try {
    const res = await fetch("/api/info");
    state.info = await res.json();
  } catch (_) {
    state.info = { identity: "jwt" };
  }
  const badge = $("model-badge");
  badge.hidden = false;
  if (state.info.offline_model) {
    badge.textContent = "offline scripted model";
    badge.title = "Keyword rules for development, not a language model. Set OPENAI_API_KEY for a real one.";
  } else {
    badge.textContent = state.info.model || "model";
    badge.classList.add("live");
  }
  if (state.info.identity === "dev") {
    document.title += " (development mode)";
  }
  if (state.token) {
    try {
      await showApp();
      return;
    } catch (_) {
      if (!$("signin").hidden) return; // signOut already asked to sign in
    }
  }
  showSignIn();
}

init();
