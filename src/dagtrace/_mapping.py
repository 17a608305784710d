"""The one span mapping: any DAG span (SDK or OTLP) → a `SpanRecord` → row writes.

Every entry point (live processor, exporter, OTLP receiver) extracts the same
parts from its span type and calls `record_from_parts`; `Writer.apply_records`
turns records into idempotent, order-independent upserts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import conventions as c
from .exceptions import SpanRejected

PHASE_START = 0
"""A run or node has started (on_start, or a start marker)."""
PHASE_END = 1
"""Its span ended: the attempt's final word, unless closed."""
PHASE_CLOSED = 2
"""Closed as interrupted (stored in `phase`; the order of writes is `row_version`'s)."""


_CHANGES = frozenset({c.CHANGE_STATUS, c.CHANGE_FINISH})

NOT_FINISHED = frozenset({"running", "paused"})
"""Statuses of an ended span whose run or node is not finished: a paused run, a node
cut short by the pause (lythonic leaves both without `finished_at`)."""


class SpanEvent(NamedTuple):
    name: str
    time_ns: int
    attributes: Mapping[str, Any]


@dataclass(slots=True)
class SpanRecord:
    """What a DAG span says about one run or node row, in storage units (epoch seconds)."""

    kind: str
    run_id: str
    attempt: int
    phase: int
    status: str
    started_at: float
    finished_at: float | None
    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None
    error: str | None = None
    payload_error: str | None = None
    # run spans
    nsref: str | None = None
    parent_run_id: str | None = None
    parent_node: str | None = None
    inputs_json: str | None = None
    outputs_json: str | None = None
    initiator: str | None = None
    replay_of: str | None = None
    replay_root: str | None = None
    close_reason: str | None = None
    # node spans
    label: str | None = None
    is_source: bool | None = False
    is_sink: bool | None = False
    input_json: str | None = None
    output_json: str | None = None
    edges: list[tuple[str, float]] = field(default_factory=list)
    dropped_events: int = 0
    link_span_ids: Sequence[str] = ()
    """Span ids the span links to: a fallback for the parent of a sub-DAG run."""
    heartbeat: bool = False
    """Only a sign of life at `started_at`: changes nothing but `heartbeat_at`."""
    started_ns: int = 0
    """The span's start time in ns (the version of the start it stands for)."""
    written_ns: int = 0
    """When the write this record describes was made (its start, end or change time):
    orders writes of one attempt (see `row_versions`)."""
    change: str | None = None
    """`status` or `finish` for a change span (`dag.change`): it changes an existing
    row and is not the run's or node's own span."""


def is_dag_span(attributes: Mapping[str, Any] | None) -> bool:
    if not attributes:
        return False
    return attributes.get(c.KIND) in (c.KIND_RUN, c.KIND_NODE)


def record_from_parts(
    *,
    attributes: Mapping[str, Any],
    events: Sequence[SpanEvent],
    error_status: bool,
    status_description: str | None,
    trace_id: str | None,
    span_id: str | None,
    parent_span_id: str | None,
    start_ns: int,
    end_ns: int | None,
    ended: bool,
    dropped_events: int = 0,
    link_span_ids: Sequence[str] = (),
) -> SpanRecord | None:
    """Map one span's parts; None if it is not a DAG span; `SpanRejected` if unusable.

    `ended` is False for a span seen at start (on_start). A start marker is an
    ended span that describes its parent's start: the record then takes the
    parent's span id.
    """
    kind = attributes.get(c.KIND)
    if kind not in (c.KIND_RUN, c.KIND_NODE):
        return None
    _check_time(start_ns)
    if end_ns is not None:
        _check_time(end_ns)
    if kind == c.KIND_RUN and attributes.get(c.HEARTBEAT) is True:
        return SpanRecord(
            kind=c.KIND_RUN,
            run_id=_text(attributes, c.RUN_ID, required=True),  # type: ignore[arg-type]
            attempt=_attempt(attributes),
            phase=PHASE_START,
            status="running",
            started_at=start_ns / 1e9,
            finished_at=None,
            trace_id=trace_id,
            span_id=None,
            parent_span_id=None,
            heartbeat=True,
        )
    marker = attributes.get(c.START_MARKER) is True
    phase = PHASE_START if marker or not ended else PHASE_END
    if marker:
        span_id, parent_span_id = parent_span_id, None
    change = attributes.get(c.CHANGE)
    if change is not None and not ended:
        return None  # a change is recorded when its span ends
    if change is not None and (change not in _CHANGES or marker):
        raise SpanRejected(
            f"attribute {c.CHANGE} must be {c.CHANGE_STATUS!r} or {c.CHANGE_FINISH!r}, "
            "on an ended span that is not a start marker"
        )
    if change is not None and attributes.get(c.STATUS) is None:
        raise SpanRejected(f"a {c.CHANGE} span must carry {c.STATUS}")
    record = SpanRecord(
        kind=str(kind),
        run_id=_text(attributes, c.RUN_ID, required=True),  # type: ignore[arg-type]
        attempt=_attempt(attributes),
        phase=phase,
        status=_status(attributes, phase, error_status),
        started_at=start_ns / 1e9,
        finished_at=None,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        dropped_events=dropped_events,
        link_span_ids=link_span_ids,
        started_ns=start_ns,
        written_ns=end_ns if phase == PHASE_END and end_ns is not None else start_ns,
        change=change,
    )
    if phase == PHASE_END and end_ns is not None and record.status not in NOT_FINISHED:
        record.finished_at = end_ns / 1e9
    if record.status == "failed" and phase == PHASE_END:
        record.error = _error_text(events, status_description, attributes)
    if kind == c.KIND_RUN:
        _fill_run(record, attributes)
    else:
        _fill_node(record, attributes, events if phase == PHASE_END else ())
    if attributes.get(c.REDACTED) is True:
        mark_not_reusable(record, "payloads redacted or capped by policy")
    return record


def mark_not_reusable(record: SpanRecord, why: str) -> None:
    """Keep altered payloads from ever feeding a restart or replay: a node's output, a
    run's source inputs are not stored (restart re-executes the node) and
    `payload_error` says why (replay refuses)."""
    if record.kind == c.KIND_NODE:
        record.output_json = None
    else:
        record.inputs_json = None
    note = f"{why}: not reusable for restart or replay"
    record.payload_error = f"{record.payload_error}; {note}" if record.payload_error else note


def _fill_run(record: SpanRecord, attributes: Mapping[str, Any]) -> None:
    record.nsref = _text(attributes, c.NSREF, required=True)
    record.parent_run_id = _text(attributes, c.PARENT_RUN_ID)
    record.parent_node = _text(attributes, c.PARENT_NODE)
    record.initiator = _text(attributes, c.INITIATOR)
    record.replay_of = _text(attributes, c.REPLAY_OF)
    record.replay_root = _text(attributes, c.REPLAY_ROOT)
    record.close_reason = _text(attributes, c.CLOSE_REASON)
    record.inputs_json = _payload(record, attributes, c.RUN_INPUTS)
    record.outputs_json = _payload(record, attributes, c.RUN_OUTPUTS)


def _fill_node(
    record: SpanRecord, attributes: Mapping[str, Any], events: Iterable[SpanEvent]
) -> None:
    record.label = _text(attributes, c.NODE_LABEL, required=True)
    record.is_source = _flag(attributes.get(c.IS_SOURCE))
    record.is_sink = _flag(attributes.get(c.IS_SINK))
    record.input_json = _payload(record, attributes, c.NODE_INPUT)
    record.output_json = _payload(record, attributes, c.NODE_OUTPUT)
    edges = record.edges
    for name, time_ns, event_attributes in events:
        if name != c.EDGE_EVENT:
            continue
        downstream = event_attributes.get(c.EDGE_DOWNSTREAM)
        _check_time(time_ns)
        at = time_ns / 1e9
        for label in (downstream,) if isinstance(downstream, str) else (downstream or ()):
            if not isinstance(label, str) or not _storable(label):
                raise SpanRejected(
                    "a dag.edge event has a downstream label that is not text, "
                    "or contains NUL or an unpaired surrogate"
                )
            edges.append((label, at))


def _flag(value: Any) -> bool | None:
    """A boolean attribute; None when absent (a later attempt keeps the earlier value)."""
    return None if value is None else value is True


def _text(attributes: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = attributes.get(key)
    if value.__class__ is str and value and "\x00" not in value and value.isascii():
        return value  # the common case, checked in one line
    if value is None or value == "":
        if required:
            raise SpanRejected(f"missing required attribute {key}")
        return None
    if not isinstance(value, str):
        raise SpanRejected(f"attribute {key} must be a string, not {type(value).__name__}")
    if not _storable(value):
        raise SpanRejected(f"attribute {key} contains NUL or an unpaired surrogate")
    return value


def check_text(**arguments: str | None) -> None:
    """Raise `ValueError` for an argument no store keeps as given (NUL, an unpaired
    surrogate), before anything is written."""
    for name, value in arguments.items():
        if value is None or (value.__class__ is str and value.isascii() and "\x00" not in value):
            continue  # the common case, checked in one line
        if not (isinstance(value, str) and _storable(value)):
            raise ValueError(
                f"{name} must be text without NUL or unpaired surrogates: {value!r:.80}"
            )


def check_edges(edges: Sequence[tuple[str, str]]) -> None:
    """`check_text` for every label of lythonic's `edges` argument, named `edges[i][j]`
    (the names are only made for a label that fails: this runs once per node)."""
    for i, edge in enumerate(edges):
        for j, label in enumerate(edge):
            if not (label.__class__ is str and label.isascii() and "\x00" not in label):
                check_text(**{f"edges[{i}][{j}]": label})


def _storable(text: str) -> bool:
    """Text every store keeps as given: no NUL (PostgreSQL TEXT), valid UTF-8."""
    if "\x00" in text:
        return False
    if text.isascii():  # JSON payloads nearly always are: no copy to check them
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


MAX_ATTEMPT = 2**31 - 1
"""The highest `dag.attempt` stored: PostgreSQL's INTEGER, the same on every store."""
MAX_TIME_NS = 253_402_300_800 * 10**9
"""Span times are stored only before the year 10000 (what a datetime can show)."""


def _attempt(attributes: Mapping[str, Any]) -> int:
    value = attributes.get(c.ATTEMPT, 1)
    if value.__class__ is int and 1 <= value <= MAX_ATTEMPT:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPT:
        raise SpanRejected(f"attribute {c.ATTEMPT} must be an integer from 1 to {MAX_ATTEMPT}")
    return value


def _check_time(time_ns: int) -> None:
    if not 0 <= time_ns < MAX_TIME_NS:
        digits = str(time_ns)
        shown = f"{digits} ns" if len(digits) <= 24 else f"of {len(digits)} digits"
        raise SpanRejected(f"span time {shown} is outside 0 to the year 10000 (Unix epoch ns)")


def _status(attributes: Mapping[str, Any], phase: int, error_status: bool) -> str:
    """Explicit `dag.status` beats the span status; a start is always `running`."""
    explicit = attributes.get(c.STATUS)
    if explicit is not None and explicit not in c.STATUSES:
        raise SpanRejected(f"attribute {c.STATUS} must be one of {sorted(c.STATUSES)}")
    if phase == PHASE_START:
        return "running"
    if explicit is not None:
        return str(explicit)
    return "failed" if error_status else "completed"


def _payload(record: SpanRecord, attributes: Mapping[str, Any], key: str) -> str | None:
    """A JSON payload attribute, or None (with `payload_error`) if it was cut on the way."""
    value = attributes.get(key)
    if value is None:
        return None
    if value.__class__ is not str:
        value = json.dumps(value, default=str)  # kvlist / array values of newer SDKs
    ascii = value.isascii()
    if "\x00" in value or not (ascii or _storable(value)):
        raise SpanRejected(f"attribute {key} contains NUL or an unpaired surrogate")
    declared = attributes.get(_LENGTH_KEYS[key])
    if declared.__class__ is int:  # not a bool, whose class is bool
        actual = len(value) if ascii else len(value.encode("utf-8"))
        if actual != declared:
            note = f"{key} cut to {actual} of {declared} bytes (attribute value length limit)"
            record.payload_error = (
                f"{record.payload_error}; {note}" if record.payload_error else note
            )
            return None
    return value


_LENGTH_KEYS = {
    key: key + c.LENGTH_SUFFIX for key in (c.RUN_INPUTS, c.RUN_OUTPUTS, c.NODE_INPUT, c.NODE_OUTPUT)
}


def _error_text(
    events: Sequence[SpanEvent],
    status_description: str | None,
    attributes: Mapping[str, Any] | None = None,
) -> str | None:
    """The error of a failed span, by the rules of docs/conventions.md (Status):

    a whole `dag.error` (its `.length` matches); else the last exception's stack trace,
    led by `{type}: {message}` and a cut note when the trace looks cut; else its type and
    message; else a `dag.error` that was cut or has no length; else the status text.
    """
    error = attributes.get(c.ERROR) if attributes else None
    declared = attributes.get(c.ERROR + c.LENGTH_SUFFIX) if attributes else None
    if not isinstance(error, str) or not error:
        error = None
    elif declared.__class__ is int and declared == _utf8_length(error):
        return error
    for event in reversed(events):
        if event.name != c.EXCEPTION_EVENT:
            continue
        trace = event.attributes.get(c.EXCEPTION_STACKTRACE)
        kind = event.attributes.get(c.EXCEPTION_TYPE)
        message = event.attributes.get(c.EXCEPTION_MESSAGE)
        headline = None
        if kind or message:
            headline = f"{kind}: {message}" if kind and message else str(kind or message)
        if isinstance(trace, str) and trace:
            if not kind or _trace_is_whole(trace, str(kind), message):
                return trace
            return _cut_error(headline, trace)
        if headline:
            return headline
    if error is not None:
        if declared.__class__ is int:  # cut: say so, led by the status text if any
            return _cut_error(status_description or None, error)
        return error
    return status_description or None


ERROR_CUT_NOTE = "[cut to {n} characters by the attribute value length limit]"
"""The line between `{type}: {message}` and a stack trace that was cut on the way."""


def _cut_error(headline: str | None, trace: str) -> str:
    note = ERROR_CUT_NOTE.format(n=len(trace))
    return f"{headline}\n{note}\n{trace}" if headline else f"{note}\n{trace}"


_FRAME_STARTS = ("Traceback (", 'File "')
_GROUP_END = "+" + "-" * 36
"""The line that closes Python's rendering of an exception group."""


def _trace_is_whole(trace: str, kind: str, message: Any) -> bool:
    """Whether a stack trace ends as one printed whole: a line naming the exception type
    (`{type}` or `{type}: {message}`, the type maybe module-qualified, maybe inside an
    exception group's `|` box) with no Python frame after it. Python prints that line
    last (notes may follow); Java and JavaScript print it first. A trace cut by the
    attribute value length limit ends inside the frames."""
    first = message.strip().splitlines()[0] if isinstance(message, str) and message.strip() else ""
    lines = [line for line in trace.splitlines() if line.strip()]
    if lines and lines[-1].strip() == _GROUP_END:
        return True  # an exception group's box, closed: printed whole
    for line in reversed(lines):
        line = line.lstrip(" \t|")
        if line.startswith(_FRAME_STARTS):
            return False
        head, colon, rest = line.partition(":")
        head = head.strip()
        if head and (head == kind or head.endswith("." + kind) or kind.endswith("." + head)):
            return not (colon and first) or rest.strip().startswith(first)
    return False


def payload_attributes(key: str, payload_json: str) -> dict[str, Any]:
    """The payload attribute and its byte length, as the conventions ask."""
    return {key: payload_json, key + c.LENGTH_SUFFIX: _utf8_length(payload_json)}
