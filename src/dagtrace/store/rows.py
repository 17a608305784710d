"""Span records as rows: what each record writes, and the version every write carries.

`rows_for` turns records into plain tuples (picklable from serve's decoding
processes); `Writer.write_rows` upserts them. Each column group of a row keeps the
version (`row_version`) of the write that set it, so writes apply in any order and
any number of times with the same result (docs/conventions.md, "Which write wins").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import conventions as c
from .._mapping import NOT_FINISHED, PHASE_START, SpanRecord


@dataclass
class Rows:
    """Span records as row tuples, ready to write; picklable between processes."""

    runs: list[tuple[Any, ...]] = field(default_factory=list)
    nodes: list[tuple[Any, ...]] = field(default_factory=list)
    edges: list[tuple[Any, ...]] = field(default_factory=list)
    beats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.runs) + len(self.nodes) + len(self.beats)

    def extend(self, other: Rows) -> None:
        self.runs += other.runs
        self.nodes += other.nodes
        self.edges += other.edges
        for run_id, at in other.beats.items():
            self.beats[run_id] = max(self.beats.get(run_id, 0.0), at)


def row_version(attempt: int, rank: int, written_ns: int, span_id: str | None) -> bytearray:
    """A write's place in the order of writes to one row, as bytes that compare (SQLite
    BLOB, PostgreSQL BYTEA: bytewise) as the tuple (attempt, time, rank, span id) does.
    A `bytearray`: the sqlite3 module binds one at once, where a `bytes` parameter goes
    through its adapter lookup first (~2,000 instructions each, five a node row).

    The latest attempt wins; within it the later write, as the later call does in
    lythonic. `rank` (0 a start, 1 an end, a change or a close) puts the end of a
    zero-length span after its start; the span id breaks the remaining ties, and the
    same span delivered twice has the same version (a duplicate changes nothing).
    """
    return _version(
        attempt.to_bytes(4, "big"), written_ns, _RANKS[rank], bytes.fromhex(span_id or "")
    )


def _version(attempt: bytes, written_ns: int, rank: bytes, span_id: bytes) -> bytearray:
    return bytearray(b"".join((attempt, written_ns.to_bytes(9, "big"), rank, span_id)))


_RANKS = (b"\x00", b"\x01")


_START, _END = 1, 2
"""Which of a record's two writes sets a column group: an ended span also stands for
its own start (a node start is often never written: it ended first), so a group its
end leaves alone takes the start's value at the start's version."""


def _run_groups(r: SpanRecord) -> tuple[int, int, int, int]:
    """Which write sets each group of a run row: (span, status, finish, outputs), 0 none.

    As lythonic's methods: a `status` change sets the status only; `finish` (and an
    ended run span with a final status) sets status, finished_at and sink outputs; a
    start (of any attempt) sets the status and clears finished_at, never the outputs;
    a run span ending `paused` or `running` sets its status only.
    """
    if r.change is not None:
        finish = _END if r.change == c.CHANGE_FINISH else 0
        return 0, _END, finish, finish
    if r.phase == PHASE_START:
        return _START, _START, _START, 0
    if r.status in NOT_FINISHED:
        return _END, _END, _START, 0
    return _END, _END, _END, _END


def _node_groups(r: SpanRecord) -> tuple[int, int, int, int]:
    """Which write sets each group of a node row: (span, status, output, error), 0 none.

    A start replaces the whole row (lythonic's INSERT OR REPLACE); an end or a `finish`
    change sets the status and finished_at, and the output (completed, skipped) or the
    error (failed); a `status` change or an end left `running` sets only the status.
    """
    if r.phase == PHASE_START:
        return _START, _START, _START, _START
    if r.change is not None:
        if r.change == c.CHANGE_STATUS:
            return 0, _END, 0, 0
        failed = r.status == "failed"
        return 0, _END, 0 if failed else _END, _END if failed else 0
    if r.status in NOT_FINISHED:
        return _END, _END, _START, _START
    failed = r.status == "failed"
    return _END, _END, _START if failed else _END, _END if failed else _START


def rows_for(records: Iterable[SpanRecord]) -> Rows:
    """The dag_runs, node_executions and edge_traversals rows span records write."""
    rows = Rows()
    for r in records:
        if r.heartbeat:
            rows.beats[r.run_id] = max(rows.beats.get(r.run_id, 0.0), r.started_at)
            continue
        attempt, span_bytes = r.attempt.to_bytes(4, "big"), bytes.fromhex(r.span_id or "")
        versions = (  # row_version's, each part made once
            None,
            _version(attempt, r.started_ns, _RANKS[0], span_bytes),
            _version(attempt, r.written_ns, _RANKS[1], span_bytes)
            if r.phase != PHASE_START
            else None,
        )
        own = r.change is None
        trace_id, span_id = (r.trace_id, r.span_id) if own else (None, None)
        if r.kind == "run":
            span, status, finish, outputs = _run_groups(r)
            rows.runs.append(
                (
                    r.run_id,
                    r.nsref,
                    r.parent_run_id,
                    r.status,
                    r.started_at,
                    r.finished_at if finish == _END else None,
                    r.inputs_json,
                    r.outputs_json if outputs == _END else None,
                    r.initiator,
                    trace_id,
                    span_id,
                    r.attempt,
                    r.phase,
                    r.parent_node,
                    r.replay_of,
                    r.replay_root,
                    r.close_reason if finish == _END else None,
                    r.payload_error,
                    r.finished_at or r.started_at,
                    versions[span],
                    versions[status],
                    versions[finish],
                    versions[outputs],
                )
            )
        else:
            span, status, output, error = _node_groups(r)
            # a later attempt without an input keeps the earlier input and flags
            inputs = span if r.attempt == 1 or r.input_json is not None else 0
            rows.nodes.append(
                (
                    r.run_id,
                    r.label,
                    r.status,
                    int(r.is_source or False),
                    int(r.is_sink or False),
                    r.input_json,
                    r.output_json if output == _END else None,
                    r.started_at,
                    r.finished_at,
                    r.error if error == _END else None,
                    trace_id,
                    span_id,
                    r.attempt,
                    r.phase,
                    r.payload_error,
                    versions[span],
                    versions[status],
                    versions[output],
                    versions[error],
                    versions[inputs],
                )
            )
            if r.edges:  # a list, not a generator: most records have none
                rows.edges += [(r.run_id, r.label, down, at) for down, at in r.edges]
    return rows
