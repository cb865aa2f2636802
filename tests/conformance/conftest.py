"""Loads the conformance dump written by `cargo run -p chatkit-engine --example conformance_dump`.

The dump is a JSONL file named by the environment variable CHATKIT_CONFORMANCE_JSONL. Each line is

    {"case": str, "request_type": str | null, "schema": str, "json": str}

where `json` is the exact text the engine produced (one SSE event, one response body, or, for
schema "SseBody", a whole SSE body). Loading problems are reported as a collection error with a
clear message; nothing is skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ENV_VAR = "CHATKIT_CONFORMANCE_JSONL"

#: Every schema name a dump line may carry (see test_conformance.SCHEMAS for the chatkit types).
SCHEMA_NAMES = (
    "ThreadStreamEvent",
    "Thread",
    "Page[Thread]",
    "Page[ThreadItem]",
    "Attachment",
    "SyncCustomActionResponse",
    "TranscriptionResult",
    "Empty",
    "SseBody",
)


@dataclass(frozen=True)
class Record:
    """One line of the dump."""

    lineno: int
    case: str
    request_type: str | None
    schema: str
    json: str

    @property
    def label(self) -> str:
        """How failures name this line: file line number, case, schema."""
        return f"line {self.lineno} case {self.case!r} ({self.schema})"


class DumpError(Exception):
    """The dump file is missing or malformed."""


@lru_cache(maxsize=1)
def load_records() -> tuple[Record, ...]:
    """Read and structurally check the dump named by CHATKIT_CONFORMANCE_JSONL."""
    name = os.environ.get(ENV_VAR)
    if not name:
        raise DumpError(
            f"{ENV_VAR} is not set. Produce the dump with\n"
            "  cargo run -q -p chatkit-engine --example conformance_dump -- /tmp/conformance.jsonl\n"
            f"and run pytest with {ENV_VAR}=/tmp/conformance.jsonl (scripts/test does both)."
        )
    path = Path(name)
    if not path.is_file():
        raise DumpError(f"{ENV_VAR}={name}: no such file")
    records: list[Record] = []
    problems: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                problems.append(f"line {lineno}: not JSON: {exc}")
                continue
            if not isinstance(obj, dict):
                problems.append(f"line {lineno}: not a JSON object")
                continue
            missing = {"case", "request_type", "schema", "json"} - obj.keys()
            if missing:
                problems.append(f"line {lineno}: missing keys {sorted(missing)}")
                continue
            case, rtype, schema, text = obj["case"], obj["request_type"], obj["schema"], obj["json"]
            if not isinstance(case, str) or not case:
                problems.append(f"line {lineno}: 'case' must be a non-empty string")
            elif rtype is not None and not isinstance(rtype, str):
                problems.append(f"line {lineno} case {case!r}: 'request_type' must be a string or null")
            elif schema not in SCHEMA_NAMES:
                problems.append(
                    f"line {lineno} case {case!r}: unknown schema {schema!r} (expected one of {list(SCHEMA_NAMES)})"
                )
            elif not isinstance(text, str):
                problems.append(
                    f"line {lineno} case {case!r}: 'json' must be the engine's output as a JSON string, "
                    f"got {type(text).__name__}"
                )
            else:
                records.append(Record(lineno, case, rtype, schema, text))
    if problems:
        raise DumpError(f"{path}: malformed dump:\n  " + "\n  ".join(problems))
    if not records:
        raise DumpError(f"{path}: the dump is empty")
    return tuple(records)


def pytest_configure(config: pytest.Config) -> None:
    # Validating widget JSON makes pydantic try chatkit's strict widget classes, which warn that
    # constructing them directly is deprecated. That advice is for integrators, not for us.
    config.addinivalue_line(
        "filterwarnings", "ignore:Direct usage of named widget classes is deprecated:DeprecationWarning"
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    # Report a missing or malformed dump once, plainly, before collection.
    try:
        load_records()
    except DumpError as exc:
        raise pytest.UsageError(f"conformance dump: {exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that takes `record` with one dump line per test."""
    if "record" not in metafunc.fixturenames:
        return
    try:
        records = load_records()
    except DumpError as exc:
        raise pytest.UsageError(f"conformance dump: {exc}") from None
    metafunc.parametrize(
        "record", records, ids=[f"L{r.lineno}-{r.case}" for r in records]
    )


@pytest.fixture(scope="session")
def records() -> tuple[Record, ...]:
    """All dump lines (for the whole-file coverage tests)."""
    try:
        return load_records()
    except DumpError as exc:
        pytest.fail(f"conformance dump: {exc}", pytrace=False)
