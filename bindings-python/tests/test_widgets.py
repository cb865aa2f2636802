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
