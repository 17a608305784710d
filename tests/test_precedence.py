"""The precedence table of docs/conventions.md ("Which write wins"), row by row.

Each row is two writes to one run or node row, made in a known order. Stored in either
arrival order, on both stores, through the one span mapping, the row ends the same and
says what the later write (or the later attempt) says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

import dagtrace
from dagtrace import conventions as c
from dagtrace._mapping import SpanRecord, record_from_parts

S = 1_000_000_000  # one second in ns
RUN_SPAN, NODE_SPAN = "a" * 16, "b" * 16


def span(
    *,
    kind: str = c.KIND_RUN,
    attempt: int = 1,
    start: int,
    end: int | None = None,
    status: str | None = None,
    change: str | None = None,
    marker_of: str | None = None,
    span_id: str = RUN_SPAN,
    error: bool = False,
    outputs: str | None = None,
) -> SpanRecord:
    """One DAG span of run "r" (node "n"), mapped as every entry point maps it."""
    attributes: dict[str, Any] = {c.KIND: kind, c.RUN_ID: "r", c.ATTEMPT: attempt}
    if kind == c.KIND_RUN:
        attributes[c.NSREF] = "etl"
        if outputs is not None:
            attributes[c.RUN_OUTPUTS] = outputs
    else:
        attributes[c.NODE_LABEL] = "n"
        if outputs is not None:
            attributes[c.NODE_OUTPUT] = outputs
    if status is not None:
        attributes[c.STATUS] = status
    if change is not None:
        attributes[c.CHANGE] = change
    if marker_of is not None:
        attributes[c.START_MARKER] = True
    record = record_from_parts(
        attributes=attributes,
        events=[],
        error_status=error,
        status_description="boom" if error else None,
        trace_id="f" * 32,
        span_id=span_id,
        parent_span_id=marker_of,
        start_ns=start,
        end_ns=end if end is not None else start,
        ended=True,
    )
    assert record is not None
    return record


def start(**kw: Any) -> SpanRecord:
    """A run or node seen starting: the live processor's on_start."""
    record = span(**kw)
    record.phase, record.status, record.finished_at = 0, "running", None
    record.written_ns = record.started_ns
    return record


def _row(location: str, kind: str) -> Mapping[str, Any]:
    store = dagtrace.open_store(location)
    try:
        if kind == c.KIND_RUN:
            run = store.get_run("r")
            details: Mapping[str, Any] = store.get_run_details("r") or {}
            assert run is not None
            return {**run, **{k: details.get(k) for k in ("attempt", "close_reason", "span_id")}}
        (node,) = store.get_node_executions("r")
        return node
    finally:
        store.close()


def _apply(location: str, write: SpanRecord | tuple[str, float]) -> None:
    store = dagtrace.open_store(location)
    try:
        if isinstance(write, SpanRecord):
            store.write_records([write])
        else:  # a close: `dagtrace close` / close_interrupted at a known time
            with store.transaction() as writer:
                writer.close_run("r", write[0], write[1])
    finally:
        store.close()


RUN_START = start(start=1 * S)
NODE_START = start(kind=c.KIND_NODE, start=1 * S, span_id=NODE_SPAN)
NODE_FINISHED_ELSEWHERE = span(
    kind=c.KIND_NODE,
    start=3 * S,
    status="completed",
    change="finish",
    outputs='"x"',
    span_id="c" * 16,
)
ROWS: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "start vs end": (
        [RUN_START, span(start=1 * S, end=5 * S)],
        {"status": "completed", "finished_at": 5.0},
    ),
    "end vs a later status change": (
        [
            RUN_START,
            span(start=1 * S, end=5 * S, outputs='{"o": 1}'),
            span(start=6 * S, status="failed", change="status", span_id="c" * 16),
        ],
        {"status": "failed", "finished_at": 5.0, "sink_outputs_json": '{"o": 1}'},
    ),
    "a paused end vs a later finish (a second end of the attempt)": (
        [
            RUN_START,
            span(start=1 * S, end=5 * S, status="paused"),
            span(start=6 * S, status="completed", change="finish", span_id="c" * 16),
        ],
        {"status": "completed", "finished_at": 6.0, "sink_outputs_json": None},
    ),
    "two status changes": (
        [
            RUN_START,
            span(start=6 * S, status="failed", change="status", span_id="c" * 16),
            span(start=7 * S, status="paused", change="status", span_id="d" * 16),
        ],
        {"status": "paused", "finished_at": None},
    ),
    "a close vs a later status change": (
        [
            RUN_START,
            ("interrupted: runner died", 4.0),
            "|",
            span(start=6 * S, status="paused", change="status", span_id="c" * 16),
        ],
        {"status": "paused", "finished_at": 4.0, "close_reason": "interrupted: runner died"},
    ),
    "a close vs a late end from a runner wrongly declared dead": (
        [RUN_START, ("interrupted: runner died", 4.0), "|", span(start=1 * S, end=5 * S)],
        {"status": "completed", "finished_at": 5.0, "close_reason": None},
    ),
    "an end made before a close, delivered after it": (
        [RUN_START, ("interrupted: runner died", 6.0), "|", span(start=1 * S, end=5 * S)],
        {"status": "failed", "finished_at": 6.0, "close_reason": "interrupted: runner died"},
    ),
    "a status change of attempt 1 vs the start of attempt 2": (
        [
            RUN_START,
            start(start=5 * S, attempt=2, span_id="e" * 16),
            span(start=9 * S, status="failed", change="status", span_id="c" * 16),
        ],
        {"status": "running", "attempt": 2, "span_id": "e" * 16},
    ),
    "a start marker vs a status change": (
        [
            start(start=1 * S, marker_of=RUN_SPAN, span_id="9" * 16),
            span(start=2 * S, status="failed", change="status", span_id="c" * 16),
        ],
        {"status": "failed", "span_id": RUN_SPAN},
    ),
    "node: a start vs a later finish from another process": (
        [
            NODE_START,
            NODE_FINISHED_ELSEWHERE,
        ],
        {"status": "completed", "output_json": '"x"', "finished_at": 3.0},
    ),
    "node: a finish vs the node's own later failure": (
        [
            NODE_START,
            NODE_FINISHED_ELSEWHERE,
            span(kind=c.KIND_NODE, start=1 * S, end=4 * S, error=True, span_id=NODE_SPAN),
        ],
        {"status": "failed", "output_json": '"x"', "error": "boom", "finished_at": 4.0},
    ),
}


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
def test_every_arrival_order_ends_as_the_table_says(
    new_store_url: Callable[[], str], row: str
) -> None:
    """A close decides which runs it closes from what is stored when it is made: the
    writes before it ("|") arrive first, the spans after it in any order."""
    writes, expected = ROWS[row]
    cut = writes.index("|") if "|" in writes else -1
    before, writes = writes[: cut + 1 if cut >= 0 else 0], writes[cut + 1 :]
    before = [w for w in before if w != "|"]
    kind = next((w.kind for w in writes if isinstance(w, SpanRecord)), c.KIND_RUN)
    results = []
    for order in (writes, writes[::-1], writes + writes):  # in order, reversed, twice
        location = new_store_url()
        if kind == c.KIND_NODE:
            _apply(location, RUN_START)
        for write in before + order:
            _apply(location, write)
        results.append(_row(location, kind))
    assert results[0] == results[1] == results[2]
    assert {k: results[0][k] for k in expected} == expected


def test_a_later_attempt_without_input_keeps_the_earlier_input_and_flags(
    new_store_url: Callable[[], str],
) -> None:
    """docs/conventions.md, Node spans: input and flags carry over when a later attempt
    names no input; output and error never do."""
    location = new_store_url()
    first = span(kind=c.KIND_NODE, start=1 * S, end=2 * S, error=True, span_id=NODE_SPAN)
    first.input_json, first.is_source = '"in"', True
    again = start(kind=c.KIND_NODE, attempt=2, start=5 * S, span_id="e" * 16)
    again.input_json, again.is_source = None, None
    for write in (again, first):  # the later attempt arrives first
        _apply(location, write)
    node = _row(location, c.KIND_NODE)
    assert (node["status"], node["input_json"], node["is_source"]) == ("running", '"in"', True)
    assert (node["output_json"], node["error"], node["finished_at"]) == (None, None, None)
