"""Metrics and token usage through the binding: the text of
``ChatEngine.metrics()`` parses with Prometheus's own text parser
(``prometheus_client``) and its counts match a scripted set of turns."""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

import chatkit_engine as ce
from conftest import FakeProvider, add_message, create_thread, parse_sse

Key = Tuple[str, FrozenSet[Tuple[str, str]]]


def samples(engine: ce.ChatEngine) -> Dict[Key, float]:
    """Every sample of the metrics text, by name and labels."""
    out: Dict[Key, float] = {}
    for family in text_string_to_metric_families(engine.metrics()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def delta(before: Dict[Key, float], after: Dict[Key, float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def families(engine: ce.ChatEngine) -> Dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(engine.metrics())}


async def collect(result: ce.ProcessResult) -> List[Dict[str, Any]]:
    return parse_sse(b"".join([chunk async for chunk in result]))


async def test_the_metrics_text_parses_and_counts_what_ran(
    database_url: str, fake_provider: Dict[str, Any]
) -> None:
    engine = ce.ChatEngine(database_url=database_url, jwt_secret="s" * 40, **fake_provider)
    weather_calls: List[int] = []

    @engine.tool(parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    async def lookup_weather(ctx: ce.ToolContext, args: Dict[str, Any]) -> str:
        """The weather in a city (fails on its second call)."""
        weather_calls.append(1)
        if len(weather_calls) == 2:
            raise LookupError("station offline")
        return "sunny"

    await engine.start()
    # The recorder is per process and other tests ran turns too: compare
    # what this test adds.
    before = samples(engine)
    alice = ce.RequestContext("alice")

    # 1: a plain answer (one model call); 2 and 3: a tool call and the
    # answer after it (two model calls each; the second tool call fails).
    first = await collect(await engine.process(create_thread("hello"), alice))
    thread_id = first[0]["thread"]["id"]
    await collect(await engine.process(add_message(thread_id, "weather in Lahore?"), alice))
    await collect(await engine.process(create_thread("weather again"), alice))
    for header in (None, "Bearer not-a-jwt"):
        with pytest.raises(ce.AuthError):
            await engine.authenticate(header)

    after = samples(engine)
    kinds = families(engine)
    assert kinds["chatkit_turns_started"] == "counter"
    assert kinds["chatkit_turn_duration_seconds"] == "histogram"
    assert kinds["chatkit_open_streams"] == "gauge"

    assert delta(before, after, "chatkit_turns_started_total") == 3
    assert delta(before, after, "chatkit_turns_finished_total", outcome="completed") == 3
    assert delta(before, after, "chatkit_turn_duration_seconds_count", outcome="completed") == 3
    assert delta(before, after, "chatkit_turn_first_event_seconds_count") == 3
    assert delta(before, after, "chatkit_model_calls_total", provider="generic", outcome="ok") == 5
    assert delta(before, after, "chatkit_model_call_duration_seconds_count", provider="generic") == 5
    tokens_in = delta(before, after, "chatkit_model_tokens_total", provider="generic", direction="input")
    tokens_out = delta(before, after, "chatkit_model_tokens_total", provider="generic", direction="output")
    assert (tokens_in, tokens_out) == (5 * FakeProvider.PROMPT_TOKENS, 5 * FakeProvider.COMPLETION_TOKENS)
    assert delta(before, after, "chatkit_tool_calls_total", tool="lookup_weather", outcome="ok") == 1
    assert delta(before, after, "chatkit_tool_calls_total", tool="lookup_weather", outcome="error") == 1
    assert delta(before, after, "chatkit_tool_call_duration_seconds_count", tool="lookup_weather") == 2
    assert delta(before, after, "chatkit_auth_failures_total", code="unauthorized") == 1
    assert delta(before, after, "chatkit_auth_failures_total", code="malformed_token") == 1
    # Every stream closed and every thread was freed again.
    assert delta(before, after, "chatkit_open_streams") == 0
    assert delta(before, after, "chatkit_busy_threads") == 0
    backend = "postgres" if database_url.startswith("postgres") else "sqlite"
    assert delta(before, after, "chatkit_store_query_duration_seconds_count", store=backend, op="add_thread_item") >= 6
    if backend == "postgres":
        assert ("chatkit_pool_connections", frozenset({("state", "idle")})) in after
        assert ("chatkit_pool_connections", frozenset({("state", "in_use")})) in after

    # The same turns, as token usage the host can read.
    usage = await engine.token_usage(alice, thread_id)
    assert usage["thread"]["turns"] == 2 and usage["thread"]["model_calls"] == 3
    assert usage["thread"]["input_tokens"] == 3 * FakeProvider.PROMPT_TOKENS
    assert usage["thread"]["estimated"] is False
    assert usage["today"]["turns"] == 3 and usage["daily_budget"] is None


async def test_a_spent_daily_budget_ends_the_turn_with_an_error_event(
    sqlite_url: str, fake_provider: Dict[str, Any]
) -> None:
    per_turn = FakeProvider.PROMPT_TOKENS + FakeProvider.COMPLETION_TOKENS
    engine = ce.ChatEngine(database_url=sqlite_url, daily_token_budget=per_turn, **fake_provider)
    alice = ce.RequestContext("alice")
    events = await collect(await engine.process(create_thread("hello"), alice))
    assert not [e for e in events if e["type"] == "error"]
    events = await collect(await engine.process(create_thread("hello again"), alice))
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "custom"
    assert f"daily budget of {per_turn} tokens" in errors[0]["message"]
    usage = await engine.token_usage(alice)
    assert usage["remaining_today"] == 0 and usage["today"]["turns"] == 1
    with pytest.raises(ce.NotFoundError):
        await engine.token_usage(ce.RequestContext("bob"), events[0]["thread"]["id"])

