"""lythonic's writes mean through OTel what they mean in lythonic, from any instance.

A differential test: derandomised Hypothesis sequences of lythonic 0.0.28's seven
writes, made from one or two instances, go into lythonic's own `DagProvenance` and
into `dagtrace.lythonic.TracedProvenance` (every write a span, through the live
processor); the rows must be equal up to timestamps. Calls lythonic refuses (it
raises) must leave dagtrace's store unchanged, without raising into the caller.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance

from dagtrace.lythonic import TracedProvenance

RUNS = ("r1", "r2")
LABELS = ("a", "b", "c")

_runs = st.sampled_from(RUNS)
_labels = st.sampled_from(LABELS)
_payloads = st.sampled_from(['{"x": 1}', '"out"', "[1, 2]"])
_ops = st.one_of(
    st.tuples(st.just("create_run"), _runs, st.sampled_from(["etl", "etl/x[0]"])),
    st.tuples(
        st.just("update_run_status"),
        _runs,
        st.sampled_from(["running", "paused", "failed", "completed"]),
    ),
    st.tuples(
        st.just("finish_run"),
        _runs,
        st.sampled_from(["completed", "failed", "paused"]),
        st.one_of(st.none(), _payloads),
    ),
    st.tuples(st.just("record_node_start"), _runs, _labels, _payloads, st.booleans()),
    st.tuples(st.just("record_node_skipped"), _runs, _labels, _payloads),
    st.tuples(
        st.just("complete_node_with_edges"),
        _runs,
        _labels,
        _payloads,
        st.lists(_labels, max_size=2),
    ),
    st.tuples(st.just("fail_node_and_finish_run"), _runs, _labels, st.just("Err: boom")),
)
_program = st.lists(st.tuples(st.integers(0, 1), _ops), min_size=1, max_size=14)


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every lythonic column but the timestamps, sorted."""
    conn = sqlite3.connect(path)
    try:
        return {
            "runs": sorted(
                conn.execute(
                    "SELECT run_id, dag_nsref, parent_run_id, status, source_inputs_json, "
                    "sink_outputs_json, initiated_by FROM dag_runs"
                ).fetchall()
            ),
            "nodes": sorted(
                conn.execute(
                    "SELECT run_id, node_label, status, is_source, is_sink, input_json, "
                    "output_json, error FROM node_executions"
                ).fetchall()
            ),
            "edges": sorted(
                conn.execute(
                    "SELECT run_id, upstream_label, downstream_label FROM edge_traversals"
                ).fetchall()
            ),
        }
    finally:
        conn.close()


def _call(prov: Any, op: tuple[Any, ...]) -> None:
    name, run_id, *args = op
    if name == "create_run":
        prov.create_run(run_id, args[0], {"in": run_id})
    elif name == "update_run_status":
        prov.update_run_status(run_id, args[0])
    elif name == "finish_run":
        prov.finish_run(run_id, args[0], sink_outputs_json=args[1])
    elif name == "record_node_start":
        label, payload, source = args
        prov.record_node_start(run_id, label, payload, is_source=source, is_sink=not source)
    elif name == "record_node_skipped":
        prov.record_node_skipped(run_id, *args)
    elif name == "complete_node_with_edges":
        label, payload, downstream = args
        prov.complete_node_with_edges(run_id, label, payload, [(label, d) for d in downstream])
    else:
        prov.fail_node_and_finish_run(run_id, *args)


def _meaningful(
    op: tuple[Any, ...], rows: dict[str, list[tuple[Any, ...]]], elsewhere: TracedProvenance
) -> bool:
    """Writes that name something stored, as a runner's do. lythonic would also write a
    node row or edges of a run that does not exist, or edges of a node that does not:
    dagtrace refuses those (logged and counted) instead of half-applying them. Nor does
    a runner restart a run that another runner is still executing (lythonic's restart
    refuses a running run): a restart is a new attempt, which supersedes the older one."""
    name, run_id, *args = op
    if name == "create_run":
        return True
    if run_id not in {r[0] for r in rows["runs"]}:
        return False
    if name == "update_run_status" and args[0] == "running" and run_id in elsewhere._runs:
        status = next(r[3] for r in rows["runs"] if r[0] == run_id)
        return status == "running"
    if name == "complete_node_with_edges":
        return (run_id, args[0]) in {n[:2] for n in rows["nodes"]}
    return True


def _run_program(tmp_path: Path, program: list[tuple[int, tuple[Any, ...]]]) -> None:
    where = Path(tempfile.mkdtemp(dir=tmp_path))  # one per Hypothesis example
    lythonic_db, dagtrace_db = where / "lythonic.db", where / "dagtrace.db"
    lythonic = [LythonicProvenance(lythonic_db), LythonicProvenance(lythonic_db)]
    traced = [TracedProvenance(dagtrace_db), TracedProvenance(dagtrace_db)]
    try:
        for instance, op in program:
            before = _rows(lythonic_db)
            if not _meaningful(op, before, traced[1 - instance]):
                continue
            try:
                _call(lythonic[instance], op)
            except sqlite3.IntegrityError:
                assert _rows(lythonic_db) == before  # refused: nothing written
            _call(traced[instance], op)  # never raises
            for prov in traced:  # node starts wait for the next write or read (≤ 50 ms)
                prov.store.flush()
            assert _rows(dagtrace_db) == _rows(lythonic_db), (instance, op)
    finally:
        for prov in traced:
            prov.close()
            prov.store.close()


@settings(
    derandomize=True,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(program=_program)
def test_traced_writes_equal_lythonics(tmp_path: Path, program: Any) -> None:
    _run_program(tmp_path, program)


@pytest.mark.parametrize(
    "program",
    [
        # the new user's first report: a pause, then the run finished
        [
            (0, ("create_run", "r1", "etl")),
            (0, ("update_run_status", "r1", "paused")),
            (0, ("finish_run", "r1", "completed", None)),
        ],
        # a second instance fails a run the first holds open, then completes its node
        [
            (0, ("create_run", "r1", "etl")),
            (0, ("record_node_start", "r1", "a", '"i"', True)),
            (1, ("update_run_status", "r1", "failed")),
            (1, ("complete_node_with_edges", "r1", "a", '"o"', ["b"])),
            (1, ("finish_run", "r1", "completed", '{"b": 1}')),
        ],
        # a restart from another instance continues the same rows
        [
            (0, ("create_run", "r1", "etl")),
            (0, ("record_node_start", "r1", "a", '"i"', True)),
            (0, ("fail_node_and_finish_run", "r1", "a", "Err: boom")),
            (1, ("update_run_status", "r1", "running")),
            (1, ("record_node_start", "r1", "a", '"i"', True)),
            (1, ("complete_node_with_edges", "r1", "a", '"o"', [])),
            (1, ("finish_run", "r1", "completed", None)),
        ],
        # refused calls: a duplicate run, a repeated edge (same and other instance)
        [
            (0, ("create_run", "r1", "etl")),
            (1, ("create_run", "r1", "etl/x[0]")),
            (0, ("record_node_start", "r1", "a", '"i"', True)),
            (0, ("complete_node_with_edges", "r1", "a", '"o"', ["b", "b"])),
            (0, ("complete_node_with_edges", "r1", "a", '"o"', ["b"])),
            (1, ("complete_node_with_edges", "r1", "a", '"p"', ["b"])),
        ],
        # an edge repeated after the run paused and resumed in the same instance
        [
            (0, ("create_run", "r1", "etl")),
            (0, ("record_node_start", "r1", "a", '"i"', True)),
            (0, ("complete_node_with_edges", "r1", "a", '"o"', ["b"])),
            (0, ("update_run_status", "r1", "paused")),
            (0, ("update_run_status", "r1", "running")),
            (0, ("record_node_start", "r1", "a", '"i"', True)),
            (0, ("complete_node_with_edges", "r1", "a", '"p"', ["b"])),
        ],
        # ... and after it failed and was restarted
        [
            (0, ("create_run", "r1", "etl")),
            (0, ("record_node_start", "r1", "a", '"i"', True)),
            (0, ("complete_node_with_edges", "r1", "a", '"o"', ["b"])),
            (0, ("finish_run", "r1", "failed", None)),
            (0, ("update_run_status", "r1", "running")),
            (0, ("record_node_start", "r1", "a", '"i"', True)),
            (0, ("complete_node_with_edges", "r1", "a", '"p"', ["b"])),
        ],
    ],
    ids=[
        "pause-then-finish",
        "other-instance-writes",
        "restart-elsewhere",
        "refused",
        "repeated-edge-after-resume",
        "repeated-edge-after-restart",
    ],
)
def test_reported_sequences(tmp_path: Path, program: list[tuple[int, tuple[Any, ...]]]) -> None:
    _run_program(tmp_path, program)
