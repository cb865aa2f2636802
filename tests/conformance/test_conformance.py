"""Wire conformance of chatkit-engine against the openai-chatkit package's own pydantic types.

Every line of the dump (see conftest.py) is validated with the `chatkit.types` type named by its
`schema`, re-serialized exactly as `chatkit.server.ChatKitServer` serializes responses, and the
result must equal the engine's bytes. Whole-file tests then check that the dump exercises every
request type, event type, item type, update type, task type, workflow summary shape and
annotation source kind that the installed chatkit version defines.
"""

from __future__ import annotations

import difflib
import json
import re
import types as pytypes
import typing
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Iterator

import pytest
from chatkit import types as ck
from chatkit.server import ChatKitServer
from pydantic import BaseModel, TypeAdapter, ValidationError

if typing.TYPE_CHECKING:
    from conftest import Record

# --------------------------------------------------------------------------------------------
# chatkit types per dump schema

#: schema name -> the chatkit type the SDK returns for it (threads.list builds a `Page` of
#: `Thread`s via `_to_thread_response`; items.list returns the store's `Page[ThreadItem]`).
SCHEMAS: dict[str, Any] = {
    "ThreadStreamEvent": ck.ThreadStreamEvent,
    "Thread": ck.Thread,
    "Page[Thread]": ck.Page[ck.Thread],
    "Page[ThreadItem]": ck.Page[ck.ThreadItem],
    "Attachment": ck.Attachment,
    "SyncCustomActionResponse": ck.SyncCustomActionResponse,
    "TranscriptionResult": ck.TranscriptionResult,
}
EMPTY_BODY = "{}"
EMPTY_PAGE = '{"data":[],"has_more":false}'

#: chatkit-engine's documented extension fields (README, "Serving"; ThreadStreamEvent::
#: thread_busy_error): event type -> field -> the values it may take. They come after every
#: chatkit field; chatkit's pydantic types (extra="ignore") accept and drop them, so the
#: byte comparison is made on the event without them.
EXTENSIONS: dict[str, dict[str, set[str]]] = {
    "error": {"reason": {"thread_busy"}},
}


@lru_cache(maxsize=None)
def adapter(schema: str) -> TypeAdapter[Any]:
    return TypeAdapter(SCHEMAS[schema])


def sdk_serialize(obj: BaseModel) -> str:
    """What ChatKitServer sends for `obj`: its own `_serialize` (model_dump_json with
    by_alias=True, exclude_none=True, context={"exclude_metadata": True})."""
    if isinstance(obj, ck.Page) and obj.data and all(isinstance(t, ck.Thread) for t in obj.data):
        # threads.list: the server wraps the threads in a plain, unparametrized `Page`.
        obj = ck.Page(has_more=obj.has_more, after=obj.after, data=list(obj.data))
    return ChatKitServer._serialize(None, obj).decode("utf-8")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# helpers: union members, model walking, diffs


def union_members(tp: Any) -> list[type]:
    """The classes of a (possibly Annotated, possibly nested) union, in declaration order."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return union_members(typing.get_args(tp)[0])
    if origin is typing.Union or origin is pytypes.UnionType:
        out: list[type] = []
        for arg in typing.get_args(tp):
            out.extend(union_members(arg))
        return out
    return [tp]


def type_tag(cls: type[BaseModel]) -> str:
    """The `type` discriminator value of a chatkit model class."""
    default = cls.model_fields["type"].default
    assert isinstance(default, str), f"{cls.__name__} has no literal type default"
    return default


def walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Every value inside a validated object (models, lists, dicts), with a JSON-ish path."""
    yield path, value
    if isinstance(value, BaseModel):
        # __dict__ holds the field values; reading it avoids deprecated-field warnings.
        items = list(vars(value).items()) + list((value.__pydantic_extra__ or {}).items())
        for key, child in items:
            yield from walk(child, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            yield from walk(child, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from walk(child, f"{path}.{key}")


def readable_diff(ours: str, sdk: str) -> str:
    """First differing position plus a field-per-line unified diff."""
    pos = next(
        (i for i, (a, b) in enumerate(zip(ours, sdk)) if a != b), min(len(ours), len(sdk))
    )
    lo = max(0, pos - 60)
    head = (
        f"first difference at char {pos}:\n"
        f"  engine: ...{ours[lo:pos + 60]!s}...\n"
        f"  sdk   : ...{sdk[lo:pos + 60]!s}...\n"
    )

    def split(s: str) -> list[str]:
        return re.sub(r'([{\[,])(?=["{\[])', "\\1\n", s).splitlines()

    diff = difflib.unified_diff(split(ours), split(sdk), "engine", "chatkit", lineterm="", n=2)
    return head + "\n".join(diff)


# --------------------------------------------------------------------------------------------
# validation of one JSON text


class Nonconformance(AssertionError):
    pass


def without_extensions(label: str, schema: str, text: str) -> str:
    """`text` without chatkit-engine's documented extension fields (EXTENSIONS), which must be
    the last fields and carry a documented value; anything else is left for the byte check."""
    if schema != "ThreadStreamEvent":
        return text
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return text
    allowed = EXTENSIONS.get(doc.get("type"), {}) if isinstance(doc, dict) else {}
    present = [key for key in doc if key in allowed] if allowed else []
    if not present:
        return text
    suffix = ""
    for key in present:
        if doc[key] not in allowed[key]:
            raise Nonconformance(
                f"{label}: extension field {key!r} has the undocumented value {doc[key]!r} "
                f"(documented: {sorted(allowed[key])})"
            )
        suffix += f",{json.dumps(key)}:{json.dumps(doc[key], ensure_ascii=False)}"
    if not text.endswith(suffix + "}"):
        raise Nonconformance(f"{label}: extension fields {present} must come last: {text}")
    return text[: -len(suffix) - 1] + "}"


def check_json(label: str, schema: str, text: str, request_type: str | None = None) -> BaseModel:
    """Validate `text` as `schema`, require byte-equal SDK re-serialization (of the text without
    documented extension fields), and check the protocol rules pydantic cannot see. Returns the
    validated object."""
    try:
        obj = adapter(schema).validate_json(text)
    except ValidationError as exc:
        raise Nonconformance(
            f"{label}: does not validate as chatkit {schema}:\n{exc}\njson: {text}"
        ) from None
    sdk = sdk_serialize(obj)
    text = without_extensions(label, schema, text)
    if sdk != text:
        raise Nonconformance(
            f"{label}: re-serialized by chatkit it is not byte-identical\n"
            f"{readable_diff(text, sdk)}\nengine: {text}\nsdk   : {sdk}"
        )
    check_semantics(label, schema, obj, request_type)
    return obj


def check_semantics(label: str, schema: str, obj: BaseModel, request_type: str | None) -> None:
    problems: list[str] = []
    for path, value in walk(obj):
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() != timedelta(0):
                problems.append(f"{path}: timestamp {value.isoformat()} is not UTC with 'Z'")
        elif isinstance(value, (ck.HiddenContextItem, ck.SDKHiddenContextItem)):
            problems.append(f"{path}: hidden item of type {value.type!r} sent to the client")
        elif isinstance(value, ck.Thread) and value.metadata != {}:
            problems.append(
                f"{path}.metadata: the SDK never sends thread metadata (always {{}}), got {value.metadata!r}"
            )
    # Threads outside threads.get_by_id always carry the empty page (server._to_thread_response).
    threads_without_items: list[tuple[str, ck.Thread]] = []
    if isinstance(obj, (ck.ThreadCreatedEvent, ck.ThreadUpdatedEvent)):
        threads_without_items.append(("$.thread", obj.thread))
    elif schema == "Thread" and request_type == "threads.update":
        threads_without_items.append(("$", obj))
    elif schema == "Page[Thread]":
        threads_without_items.extend((f"$.data[{i}]", t) for i, t in enumerate(obj.data))
    for path, thread in threads_without_items:
        items = thread.items.model_dump_json(exclude_none=True)
        if items != EMPTY_PAGE:
            problems.append(f"{path}.items: must be the empty page {EMPTY_PAGE}, got {items}")
    if problems:
        raise Nonconformance(f"{label}:\n  " + "\n  ".join(problems))


SSE_CHUNK = re.compile(r"data: ([^\r\n]*)\n\n")
SSE_DATA = re.compile(r"data: ([^\r\n]*)")


def parse_sse_body(label: str, body: str) -> list[str]:
    """Split an SSE body into its event JSON texts; the body must be nothing but
    `data: <json>\\n\\n` chunks (no other fields, comments or blank lines)."""
    texts: list[str] = []
    pos = 0
    while pos < len(body):
        m = SSE_DATA.match(body, pos)
        if m is None:
            raise Nonconformance(
                f"{label}: SSE framing broken at char {pos} (chunk {len(texts)}): expected 'data: ', "
                f"found {body[pos:pos + 60]!r}"
            )
        if body[m.end():m.end() + 2] != "\n\n":
            raise Nonconformance(
                f"{label}: SSE framing broken after chunk {len(texts)}'s JSON (char {m.end()}): "
                f"expected '\\n\\n', found {body[m.end():m.end() + 20]!r}"
            )
        texts.append(m.group(1))
        pos = m.end() + 2
    return texts


@lru_cache(maxsize=None)
def validated(record: Record) -> tuple[BaseModel, ...]:
    """The chatkit objects of one dump line (raises Nonconformance on any problem)."""
    if record.schema == "Empty":
        if record.json != EMPTY_BODY:
            raise Nonconformance(f"{record.label}: expected exactly {EMPTY_BODY!r}, got {record.json!r}")
        return ()
    if record.schema == "SseBody":
        return tuple(
            check_json(f"{record.label} event {i}", "ThreadStreamEvent", text)
            for i, text in enumerate(parse_sse_body(record.label, record.json))
        )
    return (check_json(record.label, record.schema, record.json, record.request_type),)


# --------------------------------------------------------------------------------------------
# expectations derived from the installed chatkit

REQUEST_CLASSES = union_members(ck.ChatKitReq)
STREAMING_REQUESTS = {type_tag(c) for c in union_members(ck.StreamingReq)}
#: non-streaming request type -> schemas its response may have (from server._process_non_streaming)
NON_STREAMING_SCHEMAS = {
    "threads.get_by_id": {"Thread"},
    "threads.list": {"Page[Thread]"},
    "threads.update": {"Thread"},
    "threads.delete": {"Empty"},
    "items.list": {"Page[ThreadItem]"},
    "items.feedback": {"Empty"},
    "attachments.create": {"Attachment"},
    "attachments.delete": {"Empty"},
    "input.transcribe": {"TranscriptionResult"},
    # SyncCustomActionResponse() without an item serializes as {}
    "threads.sync_custom_action": {"SyncCustomActionResponse", "Empty"},
}
HIDDEN_ITEM_TYPES = {type_tag(ck.HiddenContextItem), type_tag(ck.SDKHiddenContextItem)}
VISIBLE_ITEM_CLASSES = [
    c for c in union_members(ck.ThreadItem) if c not in (ck.HiddenContextItem, ck.SDKHiddenContextItem)
]
ANNOTATION_SOURCE_CLASSES = union_members(typing.get_type_hints(ck.Annotation)["source"])


def test_expectations_match_chatkit_1_6_5() -> None:
    """Guards the derived sets: if chatkit changes, this says what changed."""
    assert len(REQUEST_CLASSES) == 16
    assert set(NON_STREAMING_SCHEMAS) | STREAMING_REQUESTS == {type_tag(c) for c in REQUEST_CLASSES}
    assert len(union_members(ck.ThreadStreamEvent)) == 12
    assert len(union_members(ck.ThreadItemUpdate)) == 10
    assert {type_tag(c) for c in VISIBLE_ITEM_CLASSES} == {
        "user_message", "assistant_message", "client_tool_call", "widget", "generated_image",
        "structured_input", "workflow", "task", "end_of_turn",
    }
    assert {type_tag(c) for c in union_members(ck.Task)} == {"custom", "web_search", "thought", "file", "image"}
    assert union_members(ck.WorkflowSummary) == [ck.CustomSummary, ck.DurationSummary]
    assert {type_tag(c) for c in ANNOTATION_SOURCE_CLASSES} == {"url", "file", "entity"}


# --------------------------------------------------------------------------------------------
# one test per dump line


def test_line(record: Record) -> None:
    """Validates with chatkit's types and re-serializes byte-identically."""
    if record.request_type is not None:
        rtype = record.request_type
        if rtype in STREAMING_REQUESTS:
            allowed = {"ThreadStreamEvent", "SseBody"}
        elif rtype in NON_STREAMING_SCHEMAS:
            allowed = NON_STREAMING_SCHEMAS[rtype]
        else:
            pytest.fail(f"{record.label}: unknown request_type {rtype!r}", pytrace=False)
        if record.schema not in allowed:
            pytest.fail(
                f"{record.label}: a {rtype} response is never a {record.schema} "
                f"(expected {' or '.join(sorted(allowed))})",
                pytrace=False,
            )
    problem = None
    try:
        validated(record)
    except Nonconformance as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


# --------------------------------------------------------------------------------------------
# whole-file checks


def all_objects(records: tuple[Record, ...]) -> list[tuple[Record, BaseModel]]:
    """Validated objects of every line that validates (lines that don't fail in test_line)."""
    out: list[tuple[Record, BaseModel]] = []
    for r in records:
        try:
            out.extend((r, obj) for obj in validated(r))
        except Nonconformance:
            pass
    return out


def instances(records: tuple[Record, ...], classes: typing.Iterable[type]) -> set[type]:
    wanted = tuple(classes)
    return {
        type(v) for _, obj in all_objects(records) for _, v in walk(obj) if isinstance(v, wanted)
    }


def assert_covered(what: str, expected: list[type], seen: set[type]) -> None:
    missing = [f"{type_tag(c) if 'type' in c.model_fields else c.__name__} ({c.__name__})"
               for c in expected if c not in seen]
    assert not missing, f"the dump never shows these {what}: {', '.join(missing)}"


def test_no_hidden_items(records: tuple[Record, ...]) -> None:
    """No JSON (valid or not) contains a hidden_context_item / sdk_hidden_context item."""

    def raw_walk(v: Any) -> Iterator[dict[str, Any]]:
        if isinstance(v, dict):
            yield v
            for c in v.values():
                yield from raw_walk(c)
        elif isinstance(v, list):
            for c in v:
                yield from raw_walk(c)

    offenders = []
    for r in records:
        texts = [r.json]
        if r.schema == "SseBody":
            texts = [m.group(1) for m in SSE_CHUNK.finditer(r.json)]
        for text in texts:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError:
                continue  # reported by test_line
            for d in raw_walk(doc):
                if d.get("type") in HIDDEN_ITEM_TYPES and "thread_id" in d:
                    offenders.append(f"{r.label}: item {d.get('id')!r} of type {d['type']!r}")
    assert not offenders, "hidden items sent to the client:\n  " + "\n  ".join(offenders)


def test_every_schema_appears(records: tuple[Record, ...]) -> None:
    seen = {r.schema for r in records}
    missing = [s for s in [*SCHEMAS, "Empty"] if s not in seen]
    assert not missing, f"the dump has no line with schema {missing}"


def test_every_request_type_appears(records: tuple[Record, ...]) -> None:
    seen = {r.request_type for r in records}
    missing = [type_tag(c) for c in REQUEST_CLASSES if type_tag(c) not in seen]
    assert not missing, f"the dump never answers these request types: {missing}"


def test_every_stream_event_type_appears(records: tuple[Record, ...]) -> None:
    seen = {type(obj) for _, obj in all_objects(records)}
    assert_covered("ThreadStreamEvent types", union_members(ck.ThreadStreamEvent), seen)


def test_every_item_update_type_appears(records: tuple[Record, ...]) -> None:
    classes = union_members(ck.ThreadItemUpdate)
    assert_covered("ThreadItemUpdate types", classes, instances(records, classes))


def test_every_visible_item_type_appears(records: tuple[Record, ...]) -> None:
    assert_covered("ThreadItem types", VISIBLE_ITEM_CLASSES, instances(records, VISIBLE_ITEM_CLASSES))


def test_every_task_type_appears(records: tuple[Record, ...]) -> None:
    classes = union_members(ck.Task)
    assert_covered("Task types", classes, instances(records, classes))


def test_both_workflow_summary_shapes_appear(records: tuple[Record, ...]) -> None:
    seen = {
        type(v.summary)
        for _, obj in all_objects(records)
        for _, v in walk(obj)
        if isinstance(v, ck.Workflow) and v.summary is not None
    }
    missing = [c.__name__ for c in union_members(ck.WorkflowSummary) if c not in seen]
    assert not missing, f"the dump never shows these WorkflowSummary shapes: {missing}"


def test_every_annotation_source_kind_appears(records: tuple[Record, ...]) -> None:
    seen = {
        type(v.source)
        for _, obj in all_objects(records)
        for _, v in walk(obj)
        if isinstance(v, ck.Annotation)
    }
    assert_covered("annotation source kinds", ANNOTATION_SOURCE_CLASSES, seen)


def test_the_busy_thread_error_carries_its_documented_reason(records: tuple[Record, ...]) -> None:
    """A second message on a busy thread is a retryable `custom` error event that validates as
    chatkit's ErrorEvent and adds `"reason": "thread_busy"` for clients to match on."""
    busy = [
        (r, json.loads(r.json))
        for r in records
        if r.schema == "ThreadStreamEvent" and json.loads(r.json).get("reason") == "thread_busy"
    ]
    assert busy, "the dump never shows the busy-thread error event"
    for record, doc in busy:
        (event,) = validated(record)
        assert isinstance(event, ck.ErrorEvent), record.label
        assert (event.code, event.allow_retry) == ("custom", True), record.label
        assert event.message, record.label
        assert list(doc) == ["type", "code", "message", "allow_retry", "reason"], record.label


# --------------------------------------------------------------------------------------------
# widgets: every component checked against chatkit's strict widget models

from chatkit import widgets as ckw  # noqa: E402
from chatkit.actions import ActionConfig  # noqa: E402

#: The component types the to-do assistant's widgets use; each must appear in the dump.
TASK_WIDGET_COMPONENTS = {
    "Card", "ListView", "ListViewItem", "Row", "Col", "Text", "Title", "Caption", "Badge",
    "Button", "Icon", "Divider", "Spacer", "Form", "Input", "Select", "Label",
}


def strict_class(kind: str) -> type[BaseModel]:
    """The strict chatkit model of a component type (every member of the strict unions)."""
    members = union_members(ckw.StrictWidgetComponent) + union_members(ckw.StrictWidgetRoot)
    for cls in members:
        if type_tag(cls) == kind:
            return cls
    raise AssertionError(f"{kind} is not a strict chatkit widget component")


def widget_roots(records: tuple[Record, ...]) -> list[tuple[str, Any]]:
    """Every widget root the engine sent: widget items, root updates, sync action results."""
    roots: list[tuple[str, Any]] = []
    for record in records:
        if record.schema not in ("ThreadStreamEvent", "SyncCustomActionResponse", "Page[ThreadItem]"):
            continue
        for path, value in walk(json.loads(record.json)):
            if path.endswith(".widget") and isinstance(value, dict) and "type" in value:
                roots.append((f"{record.label} {path}", value))
    return roots


def components_of(node: Any) -> Iterator[dict]:
    if isinstance(node, dict) and "type" in node:
        yield node
        for child in node.get("children") or []:
            yield from components_of(child)


def action_configs(node: dict) -> Iterator[Any]:
    for key, value in node.items():
        if key.startswith("on") and key.endswith("Action"):
            yield value


def test_every_task_widget_component_is_a_strict_chatkit_component(records: tuple[Record, ...]) -> None:
    """Each component the engine sends validates against its strict chatkit model, uses only that
    model's fields, and serializes back to the same bytes; each action is a full ActionConfig."""
    seen: set[str] = set()
    roots = [(label, root) for label, root in widget_roots(records) if "tasks." in json.dumps(root) or root.get("type") == "Card"]
    assert roots, "the dump holds the to-do assistant's widgets"
    for label, root in roots:
        for node in components_of(root):
            kind = node["type"]
            if kind == "Basic":
                continue
            cls = strict_class(kind)
            fields = {f.alias or name for name, f in cls.model_fields.items()}
            unknown = set(node) - fields
            assert not unknown, f"{label}: {kind} has fields chatkit does not define: {unknown}"
            try:
                model = cls.model_validate(node)
            except ValidationError as exc:
                raise AssertionError(f"{label}: {kind} is not a valid chatkit {kind}: {exc}") from exc
            if kind not in ("Card", "ListView", "ListViewItem", "Row", "Col", "Box"):
                # Leaf components: byte-equal to chatkit's own serialization.
                ours = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
                sdk = model.model_dump_json(exclude_none=True)
                assert ours == sdk, f"{label}: {kind}\n{readable_diff(ours, sdk)}"
            for config in action_configs(node):
                full = ActionConfig.model_validate(config).model_dump(exclude_none=True)
                assert config == full, f"{label}: {kind} action {config} is not a full ActionConfig {full}"
                assert list(config) == list(full), f"{label}: action key order {list(config)}"
            seen.add(kind)
    missing = TASK_WIDGET_COMPONENTS - seen
    assert not missing, f"component types never dumped: {sorted(missing)}"


def test_confirmation_cards_use_chatkits_card_actions(records: tuple[Record, ...]) -> None:
    """The confirmation card's confirm / cancel are chatkit CardActions with full ActionConfigs."""
    cards = [root for _, root in widget_roots(records) if "confirm" in root]
    assert cards, "the dump holds a confirmation card"
    for card in cards:
        model = ckw.Card.model_validate(card)
        for which in ("confirm", "cancel"):
            spec = card[which]
            assert set(spec) == {"label", "action"}
            full = ActionConfig.model_validate(spec["action"]).model_dump(exclude_none=True)
            assert spec["action"] == full and list(spec["action"]) == list(full)
        assert model.confirm is not None and model.cancel is not None


def test_task_changes_reach_the_page_as_client_effects(records: tuple[Record, ...]) -> None:
    effects = [
        json.loads(r.json)
        for r in records
        if r.schema == "ThreadStreamEvent" and json.loads(r.json).get("type") == "client_effect"
        and r.case.startswith("task")
    ]
    assert effects, "the to-do assistant sends client effects"
    for effect in effects:
        assert effect["name"] == "tasks_changed"
        assert effect["data"]["task_ids"] and all(isinstance(i, str) for i in effect["data"]["task_ids"])
