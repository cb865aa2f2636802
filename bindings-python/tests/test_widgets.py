"""Python tools that show widgets, send client effects and ask for confirmation."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import chatkit_engine as ce
from conftest import create_thread, parse_sse

from test_engine import collect

STATS = {"success": True, "data": {"total": 7, "pending": 7, "completed": 0}}


def _answers(events: List[Dict[str, Any]]) -> List[str]:
    return [
        "".join(part["text"] for part in e["item"]["content"])
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    ]


async def test_a_python_tool_shows_a_widget_and_sends_client_effects(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url)
    card = {"type": "Card", "children": [{"type": "Text", "value": "7 notes"}]}

    @engine.tool(name="get_stats")
    async def stats(ctx: ce.ToolContext, args: Dict[str, Any]) -> ce.ToolResult:
        return ce.ToolResult(STATS, widget=card, effects=[{"name": "notes_changed", "data": {"ids": ["n1"]}}])

    events = parse_sse(await collect(await engine.process(create_thread("how many tasks do I have?"), ce.RequestContext("dana"))))
    assert _answers(events) == ["You have 7 tasks: 7 pending and 0 completed."], "the model got the output"
    widgets = [e["item"]["widget"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "widget"]
    assert widgets == [card]
    effects = [e for e in events if e["type"] == "client_effect"]
    assert effects == [{"type": "client_effect", "name": "notes_changed", "data": {"ids": ["n1"]}}]


async def test_a_widget_that_is_not_a_root_fails_the_call_clearly(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url)

    @engine.tool(name="get_stats")
    async def stats(ctx: ce.ToolContext, args: Dict[str, Any]) -> ce.ToolResult:
        return ce.ToolResult(STATS, widget={"type": "Text", "value": "not a root"})

    events = parse_sse(await collect(await engine.process(create_thread("how many tasks do I have?"), ce.RequestContext("dana"))))
    assert not [e for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "widget"]
    assert "widget was refused" in _answers(events)[0]


async def test_a_python_tool_that_requires_approval_runs_only_after_confirm(sqlite_url: str) -> None:
    engine = ce.ChatEngine(database_url=sqlite_url)
    calls: List[str] = []

    @engine.tool(name="get_stats", requires_approval=True)
    async def stats(ctx: ce.ToolContext, args: Dict[str, Any]) -> Dict[str, Any]:
        calls.append(ctx["user_id"] or "")
        return STATS

    erin = ce.RequestContext("erin")
    asked = parse_sse(await collect(await engine.process(create_thread("how many tasks do I have?"), erin)))
    assert calls == [] and _answers(asked) == []
    card = next(e["item"] for e in asked if e["type"] == "thread.item.done" and e["item"]["type"] == "widget")
    assert card["widget"]["children"][0]["value"] == "Run get_stats?"
    confirm = json.dumps({
        "type": "threads.custom_action",
        "params": {"thread_id": asked[0]["thread"]["id"], "item_id": card["id"], "action": card["widget"]["confirm"]["action"]},
    }).encode()
    # Another user cannot answer it.
    try:
        await engine.process(confirm, ce.RequestContext("mallory"))
        raise AssertionError("another user answered the confirmation")
    except ce.NotFoundError:
        pass
    resumed = parse_sse(await collect(await engine.process(confirm, erin)))
    assert calls == ["erin"]
    assert _answers(resumed) == ["You have 7 tasks: 7 pending and 0 completed."]
    again = parse_sse(await collect(await engine.process(confirm, erin)))
    assert any(e["type"] == "error" for e in again)
    assert calls == ["erin"], "a second click runs nothing"


# --------------------------------------------------------------------------------------------
# action handlers registered from Python


def _counter(n: int) -> Dict[str, Any]:
    return {
        "type": "Card",
        "children": [
            {"type": "Text", "value": f"count {n}"},
            {
                "type": "Form",
                "onSubmitAction": {"type": "note.save", "payload": {"n": n}},
                "children": [
                    {"type": "Input", "name": "title"},
                    {"type": "Button", "submit": True, "label": "Save"},
                ],
            },
            {
                "type": "Button",
                "label": "+1",
                "onClickAction": {"type": "counter.add", "payload": {"n": n}},
            },
        ],
    }


async def _shown_counter(engine: ce.ChatEngine, ctx: ce.RequestContext) -> Dict[str, Any]:
    """Runs a turn whose Python tool shows the counter card; returns that widget item."""
    events = parse_sse(await collect(await engine.process(create_thread("how many tasks do I have?"), ctx)))
    item = next(e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "widget")
    return item


def _action(item: Dict[str, Any], kind: str, payload: Any, sync: bool = False) -> bytes:
    return json.dumps({
        "type": "threads.sync_custom_action" if sync else "threads.custom_action",
        "params": {"thread_id": item["thread_id"], "item_id": item["id"], "action": {"type": kind, "payload": payload}},
    }).encode()


def _counter_engine(sqlite_url: str, calls: List[Any]) -> ce.ChatEngine:
    engine = ce.ChatEngine(database_url=sqlite_url)

    @engine.tool(name="get_stats")
    async def stats(ctx: ce.ToolContext, args: Dict[str, Any]) -> ce.ToolResult:
        return ce.ToolResult(STATS, widget=_counter(1))

    @engine.action("counter.add")
    async def add(ctx: ce.ActionContext, action: Dict[str, Any], widget: Dict[str, Any]) -> ce.ActionResult:
        calls.append((ctx["user_id"], action, widget["children"][0]["value"]))
        n = action["payload"]["n"] + 1
        return ce.ActionResult(widget=_counter(n), effects=[{"name": "counter_changed", "data": {"n": n}}])

    @engine.action("note.save")
    async def save(ctx: ce.ActionContext, action: Dict[str, Any], widget: Dict[str, Any]) -> ce.ActionResult | None:
        calls.append((ctx["user_id"], action))
        title = action["payload"].get("title", "")
        if not title.strip():
            raise ce.InvalidRequestError("Title cannot be empty")
        if title == "crash":
            raise RuntimeError("a bug in the host")
        if title == "wrong":
            return {"widget": "not an ActionResult"}  # type: ignore[return-value]
        return None

    return engine


async def test_a_python_action_handler_updates_the_widget_in_place_without_the_model(sqlite_url: str) -> None:
    calls: List[Any] = []
    engine = _counter_engine(sqlite_url, calls)
    frank = ce.RequestContext("frank")
    item = await _shown_counter(engine, frank)
    events = parse_sse(await collect(await engine.process(_action(item, "counter.add", {"n": 1}), frank)))
    assert [e["type"] for e in events] == ["stream_options", "thread.item.updated", "client_effect"], events
    assert events[1]["update"] == {"type": "widget.root.updated", "widget": _counter(2)}
    assert events[2]["name"] == "counter_changed" and events[2]["data"] == {"n": 2}
    assert calls == [("frank", {"type": "counter.add", "payload": {"n": 1}}, "count 1")]
    # The sync form answers with the replaced item; a reload shows it.
    answer = json.loads((await engine.process(_action(item, "counter.add", {"n": 2}, sync=True), frank)).json or b"{}")
    assert answer["updated_item"]["widget"] == _counter(3)
    page = json.loads((await engine.process(json.dumps({
        "type": "items.list", "params": {"thread_id": item["thread_id"]}}).encode(), frank)).json or b"{}")
    stored = next(i for i in page["data"] if i["id"] == item["id"])
    assert stored["widget"] == _counter(3)


async def test_a_forged_or_foreign_action_never_reaches_the_python_handler(sqlite_url: str) -> None:
    calls: List[Any] = []
    engine = _counter_engine(sqlite_url, calls)
    frank = ce.RequestContext("frank")
    item = await _shown_counter(engine, frank)
    for forged in ({"n": 99}, {"n": 1, "extra": True}, None):
        try:
            await engine.process(_action(item, "counter.add", forged, sync=True), frank)
            raise AssertionError(f"a forged payload {forged!r} was accepted")
        except ce.InvalidRequestError:
            pass
    try:
        await engine.process(_action(item, "counter.add", {"n": 1}, sync=True), ce.RequestContext("mallory"))
        raise AssertionError("another user acted on frank's widget")
    except ce.NotFoundError:
        pass
    assert calls == []


async def test_a_submitted_form_reaches_the_handler_and_its_errors_keep_their_code(sqlite_url: str) -> None:
    calls: List[Any] = []
    engine = _counter_engine(sqlite_url, calls)
    frank = ce.RequestContext("frank")
    item = await _shown_counter(engine, frank)
    done = await engine.process(_action(item, "note.save", {"n": 1, "title": "groceries"}, sync=True), frank)
    assert json.loads(done.json or b"") == {}, "no widget returned: the sender stays"
    assert calls == [("frank", {"type": "note.save", "payload": {"n": 1, "title": "groceries"}})]
    # A field the form does not have is refused before the handler.
    try:
        await engine.process(_action(item, "note.save", {"n": 1, "owner": "mallory"}, sync=True), frank)
        raise AssertionError("a field outside the form was accepted")
    except ce.InvalidRequestError:
        pass
    # The handler's own refusal keeps its code and message.
    try:
        await engine.process(_action(item, "note.save", {"n": 1, "title": " "}, sync=True), frank)
        raise AssertionError("an empty title was accepted")
    except ce.InvalidRequestError as err:
        assert "Title cannot be empty" in str(err)
    streamed = parse_sse(await collect(await engine.process(_action(item, "note.save", {"n": 1, "title": " "}), frank)))
    errors = [e for e in streamed if e["type"] == "error"]
    assert errors and "Title cannot be empty" in errors[0]["message"], streamed
    # A bug in the handler is an internal error: logged, not shown.
    for title in ("crash", "wrong"):
        try:
            await engine.process(_action(item, "note.save", {"n": 1, "title": title}, sync=True), frank)
            raise AssertionError(f"{title}: no error")
        except ce.InternalError as err:
            assert "a bug in the host" not in err.body.decode(), err.body
    assert len(calls) == 5


def test_an_action_handler_must_be_async() -> None:
    engine = ce.ChatEngine(database_url="sqlite::memory:")

    def not_async(ctx: Any, action: Any, widget: Any) -> None:
        return None

    try:
        engine.add_action("x.y", not_async)  # type: ignore[arg-type]
        raise AssertionError("a plain function was accepted")
    except TypeError:
        pass
