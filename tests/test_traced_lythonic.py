"""lythonic's DagRunner through TracedProvenance: spans in, the same reads as lythonic's
own DagProvenance out; restart, replay and a killed runner."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lythonic_dags as dags
import pytest
from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance
from lythonic.compose.dag_runner import DagRunner
from lythonic_dags import as_lythonic
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from scenarios import AMBIGUOUS, run_all

from dagtrace.lythonic import TracedProvenance

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _quiet_lythonic() -> Iterator[None]:
    logging.getLogger("lythonic").setLevel(logging.CRITICAL)  # it logs the planned failures
    yield
    logging.getLogger("lythonic").setLevel(logging.NOTSET)


@pytest.fixture
def traced(db_path: Path) -> Iterator[TracedProvenance]:
    provenance = TracedProvenance(db_path)
    yield provenance
    provenance.close()


def _presence(row: dict[str, Any]) -> dict[str, Any]:
    """Run ids and timestamps differ between two executions: keep only their shape."""
    out = {
        k: v
        for k, v in row.items()
        if k not in ("run_id", "parent_run_id", "started_at", "finished_at")
    }
    out["finished"] = row["finished_at"] is not None
    if row["finished_at"] is not None and row["started_at"] is not None:
        assert row["started_at"] <= row["finished_at"]
    return out


def _tree(run: Any) -> dict[str, Any]:
    nodes = {}
    for label, node in run.nodes.items():
        if node.finished_at is not None and node.started_at is not None:
            assert node.started_at <= node.finished_at
        sub = node.sub_dags or {}
        nodes[label] = {
            "status": node.status,
            "is_source": node.is_source,
            "is_sink": node.is_sink,
            "error": node.error,
            "finished": node.finished_at is not None,
            "edges": [e.downstream_label for e in node.edges],
            "sub_dags": sorted(sub)
            if run.dag_nsref.startswith(AMBIGUOUS)
            else {k: _tree(v) for k, v in sub.items()},
        }
    return {
        "nsref": run.dag_nsref,
        "status": run.status,
        "initiated_by": run.initiated_by,
        "finished": run.finished_at is not None,
        "nodes": nodes,
    }


def normalised(prov: Any, run_ids: dict[str, str]) -> dict[str, Any]:
    """Every read, with runs matched by nsref and nodes by label."""
    out: dict[str, Any] = {}
    for name, run_id in run_ids.items():
        run = prov.inspect_run(run_id)
        prov.load_io(run)
        children = prov.get_child_runs(run_id)
        out[name] = {
            "get_run": _presence(prov.get_run(run_id)),
            "nodes": {n["node_label"]: _presence(n) for n in prov.get_node_executions(run_id)},
            "edges": sorted(
                (e["upstream_label"], e["downstream_label"])
                for e in prov.get_edge_traversals(run_id)
            ),
            "pending": sorted(prov.get_pending_nodes(run_id)),
            "outputs": {n: prov.get_node_output(run_id, n) for n in run.nodes},
            "io": {
                "run": run.io.model_dump(),
                "nodes": {k: n.io.model_dump() for k, n in run.nodes.items()},
            },
            "inspect_run": _tree(run),
            "child_runs": sorted(c.dag_nsref for c in children)
            if name == AMBIGUOUS
            else sorted(json.dumps(_tree(c), sort_keys=True) for c in children),
        }
    recent = prov.get_recent_runs(limit=1000)
    out["recent"] = Counter(
        (r.dag_nsref, r.status) for r in recent if not r.dag_nsref.startswith(AMBIGUOUS + "/")
    )
    starts = [r.started_at for r in recent]
    assert starts == sorted(starts, reverse=True)
    out["active"] = [
        r.dag_nsref for r in prov.get_active_runs() if not r.dag_nsref.startswith(AMBIGUOUS + "/")
    ]
    return out


def test_every_read_matches_lythonic_own_provenance(
    traced: TracedProvenance, tmp_path: Path
) -> None:
    ours = run_all(traced)
    lythonic = LythonicProvenance(tmp_path / "lythonic.db")
    theirs = run_all(lythonic)
    assert normalised(traced, ours) == normalised(lythonic, theirs)


def test_restarted_map_shows_the_latest_attempt_under_each_key(
    traced: TracedProvenance,
) -> None:
    run_ids = run_all(traced)
    run = traced.inspect_run(run_ids[AMBIGUOUS])
    assert run is not None and run.status == "completed"
    children = traced.get_child_runs(run_ids[AMBIGUOUS])
    assert Counter(c.dag_nsref for c in children)[f"{AMBIGUOUS}/mf[1]"] == 2  # both attempts
    shown = run.nodes["mf"].sub_dags or {}
    assert set(shown) == {f"mf[{i}]" for i in range(5)}
    assert shown["mf[1]"].status == "completed"  # the latest, not the failed first attempt
    latest = max((c for c in children if c.dag_nsref.endswith("mf[1]")), key=lambda c: c.started_at)
    assert shown["mf[1]"].run_id == latest.run_id


def test_replay_records_lineage_apart_from_parent(traced: TracedProvenance) -> None:
    run_ids = run_all(traced)
    original, replay = run_ids["linear"], run_ids["replay_of_linear"]
    assert traced.get_run(replay)["parent_run_id"] is None
    details = traced.store.get_run_details(replay)
    assert details is not None
    assert (details["replay_of_run_id"], details["replay_root_run_id"]) == (original, original)
    assert traced.store.get_replays(original) == [replay]
    # replaying the replay: the root stays the first run of the chain
    with traced.replay_lineage(replay):
        again = asyncio.run(
            DagRunner(dags.linear(), provenance=as_lythonic(traced)).replay(replay, {"words"})
        )
    chained = traced.store.get_run_details(again.run_id)
    assert chained is not None
    assert (chained["replay_of_run_id"], chained["replay_root_run_id"]) == (replay, original)
    assert again.status == "completed"


def test_one_trace_per_run_with_sub_dags_under_composite_nodes(db_path: Path) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    traced = TracedProvenance(db_path, tracer_provider=provider)
    result = asyncio.run(
        DagRunner(dags.nested(), provenance=as_lythonic(traced)).run(
            {"load": {"text": "a b"}}, dag_nsref="nested"
        )
    )
    traced.close()
    spans = [s for s in memory.get_finished_spans() if not s.attributes.get("dag.start_marker")]
    assert len({s.context.trace_id for s in spans}) == 1
    by_id = {s.context.span_id: s for s in spans}
    outer = next(s for s in spans if s.attributes.get("dag.node.label") == "outer")
    sub_runs = [
        s
        for s in spans
        if s.name == "dag.run" and s.attributes.get("dag.run.parent_id") == result.run_id
    ]
    assert len(sub_runs) == 2 and all(s.parent.span_id == outer.context.span_id for s in sub_runs)
    deep = [s for s in spans if s.attributes.get("dag.nsref", "").endswith("/deep[]")]
    assert all(by_id[s.parent.span_id].attributes["dag.node.label"] == "deep" for s in deep)
    assert traced.get_run(result.run_id)["status"] == "completed"


def test_initiator_from_lythonic_context(traced: TracedProvenance) -> None:
    from lythonic.compose.dag_provenance import initiated_by

    async def run() -> str:
        with initiated_by("u-7"):
            result = await DagRunner(dags.called(), provenance=as_lythonic(traced)).run(
                {"load": {"text": "x"}}, dag_nsref="called"
            )
        return result.run_id

    run_id = asyncio.run(run())
    assert traced.get_run(run_id)["initiated_by"] == "u-7"
    assert all(c.initiated_by == "u-7" for c in traced.get_child_runs(run_id))


_KILLED_LYTHONIC_RUNNER = """
import asyncio, os, signal, sys
from lythonic.compose.dag_runner import DagRunner
from dagtrace.lythonic import TracedProvenance
import killable_dag
db, log = sys.argv[1], sys.argv[2]
killable_dag.setup(log, kill_at=sys.argv[3])
provenance = TracedProvenance(db)
result = asyncio.run(DagRunner(killable_dag.dag(), provenance=provenance).run(
    {"step0": {"n": 1}}, dag_nsref="killable"))
print(result.run_id)
"""


@pytest.mark.parametrize("kill_at", ["step1", "step3"])
def test_killed_lythonic_runner_is_closed_and_restarted(
    db_path: Path, tmp_path: Path, kill_at: str
) -> None:
    log = tmp_path / "executed.log"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_KILLED_LYTHONIC_RUNNER),
            str(db_path),
            str(log),
            kill_at,
        ],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    executed_before = log.read_text().split()
    traced = TracedProvenance(db_path)
    (run,) = traced.get_recent_runs()
    assert run.status == "running"
    assert traced.close_interrupted(run.run_id) == 1

    import killable_dag

    killable_dag.setup(str(log), kill_at="never")
    result = asyncio.run(
        DagRunner(killable_dag.dag(), provenance=as_lythonic(traced)).restart(run.run_id)
    )
    assert result.status == "completed", result
    executed_after = log.read_text().split()[len(executed_before) :]
    finished_before = executed_before[:-1]  # the killed node had not finished
    assert not set(finished_before) & set(executed_after)  # nothing completed runs again
    assert executed_after[0] == kill_at
    assert {n.status for n in traced.inspect_run(run.run_id).nodes.values()} == {"completed"}
    traced.close()


def test_a_long_lived_instance_keeps_nothing_of_finished_runs(traced: TracedProvenance) -> None:
    """A service running DAGs for days through one TracedProvenance: each run's open
    handles and remembered edges go when the run finishes (they used to pile up)."""

    async def run_many() -> list[str]:
        runner = DagRunner(dags.called(), provenance=as_lythonic(traced))
        return [
            (await runner.run({"load": {"text": "a b"}}, dag_nsref="called")).run_id
            for _ in range(5)
        ]

    run_ids = asyncio.run(run_many())
    assert all(traced.get_run(r)["status"] == "completed" for r in run_ids)
    assert all(traced.get_edge_traversals(r) for r in run_ids)
    assert (traced._runs, traced._nodes, traced._edges) == ({}, {}, {})


def _record_in_child(prov: TracedProvenance, done: Any) -> None:
    try:
        prov.create_run("child", "ns", {})
        prov.record_node_start("child", "a", "{}")
        prov.complete_node_with_edges("child", "a", "1", [])
        prov.finish_run("child", "completed", "{}")
        done.set()
        os._exit(0)
    except BaseException:  # noqa: BLE001 - a forked child reports by its exit code
        os._exit(1)


def test_a_child_forked_while_a_lock_is_held_still_records(tmp_path: Path) -> None:
    """A fork copies a lock that another thread holds at that moment, held, and nothing
    in the child would ever release it: our locks are made anew in a forked child."""
    import multiprocessing

    prov = TracedProvenance(tmp_path / "t.db")
    ctx = multiprocessing.get_context("fork")
    done = ctx.Event()
    with prov._lock:  # as if another thread were inside it at the fork
        child = ctx.Process(target=_record_in_child, args=(prov, done))
        child.start()
        recorded = done.wait(20)
    child.join(10)
    if child.exitcode is None:
        child.kill()
    assert recorded and child.exitcode == 0
    assert LythonicProvenance(tmp_path / "t.db").get_run("child")["status"] == "completed"
    prov.close()
