"""The bridge across processes: live state seen from outside, a killed runner, several
exporting processes, forwarding to a real OTLP receiver process."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from traced_pipeline import run_pipeline

import dagtrace

TESTS = Path(__file__).parent


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS), **(env or {})},
    )


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll another process's effect on a shared file; no event crosses processes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError("not seen in time")


def test_another_process_sees_a_node_running_while_its_span_is_open(db_path: Path) -> None:
    runner = _python(
        """
        import sys, dagtrace
        provider = dagtrace.configure(sys.argv[1])
        tracer = dagtrace.DagTracer(provider)
        with tracer.run("live", run_id="live") as run:
            with run.node("slow", input={"x": 1}) as node:
                print("started", flush=True)
                sys.stdin.readline()          # hold the span open until told
                node.set_output(1)
        provider.shutdown()
        print("ended", flush=True)
        """,
        str(db_path),
    )
    assert runner.stdout is not None and runner.stdin is not None
    assert runner.stdout.readline().strip() == "started"
    prov = dagtrace.DagProvenance(db_path, read_only=False)

    def running() -> bool:
        run = prov.inspect_run("live")
        return (
            run is not None
            and run.nodes.get("slow") is not None
            and (run.nodes["slow"].status == "running")
        )

    delay = _wait_for(running)
    assert delay < 1.0  # documented bound 100 ms; generous here for a loaded CI machine
    assert prov.get_run("live")["status"] == "running"
    runner.stdin.write("go\n")
    runner.stdin.flush()
    assert runner.stdout.readline().strip() == "ended"
    runner.wait(timeout=30)
    runner.stdin.close()
    runner.stdout.close()
    assert prov.get_node_output("live", "slow") == "1"
    assert prov.get_run("live")["status"] == "completed"


def _child_holds_a_node_open(
    run: dagtrace.RunHandle, write_first: bool, started: Any, release: Any
) -> None:
    try:
        if write_first:  # the child's store has made a transaction of its own
            with run.node("child_done") as done:
                done.set_output(2)
        with run.node("child_open") as node:
            started.set()
            release.wait(30)
            node.set_output(3)
        os._exit(0)
    except BaseException:  # noqa: BLE001 - a forked child reports by its exit code
        os._exit(1)


@pytest.mark.parametrize("write_first", [False, True], ids=["at-once", "after-a-write"])
def test_a_forked_child_s_open_node_is_stored_running(db_path: Path, write_first: bool) -> None:
    """The deferred start of a node opened in a forked child reaches the store while the
    node runs, as in its parent: the child has its own flusher, fed by the same
    processor, whether or not it wrote before."""
    provider = dagtrace.configure(db_path)
    tracer = dagtrace.DagTracer(provider)
    prov = dagtrace.DagProvenance(db_path)
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    with tracer.run("fork", run_id="fork") as run:
        with run.node("parent_node") as node:
            node.set_output(1)
        child = ctx.Process(
            target=_child_holds_a_node_open, args=(run, write_first, started, release)
        )
        child.start()
        try:
            assert started.wait(30)

            def running() -> bool:
                nodes = {n["node_label"]: n["status"] for n in prov.get_node_executions("fork")}
                return nodes.get("child_open") == "running"

            _wait_for(running)
        finally:
            release.set()
            child.join(30)
    assert child.exitcode == 0
    provider.shutdown()
    assert prov.get_node_output("fork", "child_open") == "3"


def _child_holds_a_run_open(tracer: dagtrace.DagTracer, started: Any, release: Any) -> None:
    try:
        with tracer.run("forked", run_id="child-run"):
            started.set()
            release.wait(30)
        os._exit(0)
    except BaseException:  # noqa: BLE001 - a forked child reports by its exit code
        os._exit(1)


@pytest.mark.parametrize("path", ["live-processor", "heartbeat-spans"])
def test_a_run_a_forked_child_opens_has_heartbeats(db_path: Path, path: str) -> None:
    """A forked child beats for the runs it opens (its parent's heartbeat thread does
    not run in it): else `dagtrace dead` would take its long nodes for a dead runner.
    Both ways: the live processor's own beats, and `DagTracer`'s heartbeat spans (for
    spans that leave the process; here through the exporter)."""
    provider: TracerProvider
    if path == "live-processor":
        provider = dagtrace.configure(db_path, heartbeat_interval=0.05)
        tracer = dagtrace.DagTracer(provider)
    else:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(dagtrace.DagtraceSpanExporter(db_path)))
        tracer = dagtrace.DagTracer(provider, start_markers=True, heartbeat_interval=0.05)
    prov = dagtrace.DagProvenance(db_path)
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()

    def beating(run_id: str) -> bool:  # a beat after the run's start (which sets it too)
        run, details = prov.get_run(run_id), prov.store.get_run_details(run_id)
        return (
            run is not None
            and details is not None
            and ((details["heartbeat_at"] or 0) > run["started_at"])
        )

    with tracer.run("parent", run_id="parent-run"):  # the parent's heartbeat thread runs
        _wait_for(lambda: beating("parent-run"))
        child = ctx.Process(target=_child_holds_a_run_open, args=(tracer, started, release))
        child.start()
        try:
            assert started.wait(30)
            _wait_for(lambda: beating("child-run"))
        finally:
            release.set()
            child.join(30)
    assert child.exitcode == 0
    provider.shutdown()


def _flush_and_exit(provider: Any) -> None:
    os._exit(0 if provider.force_flush() else 1)


def test_a_forked_child_counts_none_of_its_parent_s_problems(db_path: Path) -> None:
    """Counters a parent has not saved yet are its own to save: a child that writes
    first must not save them too (each pool worker would count them once more)."""
    provider = dagtrace.configure(db_path)
    prov = dagtrace.DagProvenance(db_path)
    # a node span without a run id: rejected and counted, not saved until a write
    provider.get_tracer("t").start_span("bad", attributes={"dag.kind": "node"}).end()
    child = multiprocessing.get_context("fork").Process(target=_flush_and_exit, args=(provider,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert provider.force_flush()
    assert prov.store.stats().get("spans_rejected") == 1
    provider.shutdown()


_KILLABLE_RUNNER = """
import json, os, signal, sys, dagtrace
db, kill_at, attempt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
provider = dagtrace.configure(db)
tracer = dagtrace.DagTracer(provider)
prov = dagtrace.DagProvenance(db)
labels = [f"step{i}" for i in range(8)]
executed = []
with tracer.run("killable", run_id="k", attempt=attempt, inputs={"n": 8}) as run:
    for i, label in enumerate(labels):
        if prov.get_node_output("k", label) is not None:   # done before: skip
            continue
        with run.node(label, input=i, is_source=i == 0) as node:
            executed.append(label)
            if i == kill_at:
                print(json.dumps(executed), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)        # die mid-node
            node.set_output(i * 10)
            if i + 1 < len(labels):
                node.edge(labels[i + 1])
    run.set_outputs({"last": 70})
print(json.dumps(executed), flush=True)
provider.shutdown()
"""


@pytest.mark.parametrize("kill_at", [0, 3, 7])
def test_runner_killed_mid_node_is_closed_and_restarted(db_path: Path, kill_at: int) -> None:
    first = _python(_KILLABLE_RUNNER, str(db_path), str(kill_at), "1")
    out, _ = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert json.loads(out) == [f"step{i}" for i in range(kill_at + 1)]

    prov = dagtrace.DagProvenance(db_path)  # another process reads the store
    nodes = {n["node_label"]: n["status"] for n in prov.get_node_executions("k")}
    # Every node that ended is there; the killed node's start is there unless the kill
    # came within the 50 ms its start may wait to be written (docs/conventions.md).
    assert nodes.pop(f"step{kill_at}", None) in (None, "running")
    assert nodes == {f"step{i}": "completed" for i in range(kill_at)}
    assert prov.get_run("k")["status"] == "running"
    assert prov.close_interrupted("k", "interrupted: runner killed") == 1
    assert prov.get_run("k")["status"] == "failed"

    second = _python(_KILLABLE_RUNNER, str(db_path), "-1", "2")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    assert json.loads(out) == [f"step{i}" for i in range(kill_at, 8)]  # no re-execution
    run = prov.inspect_run("k")
    assert run is not None and run.status == "completed"
    assert all(n.status == "completed" for n in run.nodes.values()) and len(run.nodes) == 8
    assert len(prov.get_edge_traversals("k")) == 7


def _export_from_process(db: str, prefix: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(dagtrace.DagtraceSpanExporter(db)))
    tracer = dagtrace.DagTracer(provider)
    for i in range(25):
        run_pipeline(tracer, run_id=f"{prefix}-{i}")
    provider.shutdown()


def test_several_processes_export_into_one_file(db_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_export_from_process, args=(str(db_path), f"p{n}")) for n in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    counts = dagtrace.DagProvenance(db_path).store.table_counts()
    # per run: 1 + 3 map + 3 call sub-DAG runs; nodes 3 + 3×2 + 3×1; edges 2 + 3×1
    assert counts == {"dag_runs": 100 * 7, "node_executions": 100 * 12, "edge_traversals": 100 * 5}


def test_forwarded_spans_match_the_store(
    db_path: Path, receiver: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received_file = receiver
    monkeypatch.setenv("OTEL_SERVICE_NAME", "pipeline-under-test")
    provider = dagtrace.configure(db_path, forward=url)
    run_pipeline(dagtrace.DagTracer(provider))
    provider.shutdown()  # flushes the BatchSpanProcessor into the receiver
    received = [json.loads(line) for line in received_file.read_text().splitlines()]
    by_span = {r["span_id"]: r for r in received}
    assert {r["service"] for r in received} == {"pipeline-under-test"}
    prov = dagtrace.DagProvenance(db_path)
    runs = [prov.get_run("run-1")] + [prov.get_run(r.run_id) for r in prov.get_child_runs("run-1")]
    with prov.store._read() as cur:  # trace and span ids the store holds
        cur.execute("SELECT run_id, node_label, trace_id, span_id FROM node_executions")
        nodes = cur.fetchall()
        cur.execute(
            "SELECT run_id, trace_id, span_id, parent_run_id, parent_node_label FROM dag_runs"
        )
        run_rows = {r[0]: r for r in cur.fetchall()}
    assert len(runs) == 7 and len(nodes) == 12
    trace_ids = {r[1] for r in run_rows.values()}
    assert len(trace_ids) == 1  # one trace for the run and its sub-DAG runs
    for run_id, label, trace_id, span_id in nodes:
        span = by_span[span_id]
        assert (span["trace_id"], span["name"]) == (trace_id, f"dag.node {label}")
        assert span["parent_span_id"] == run_rows[run_id][2]  # node under its run span
    for _, trace_id, span_id, parent_run, parent_node in run_rows.values():
        span = by_span[span_id]
        assert span["trace_id"] == trace_id and span["name"] == "dag.run"
        if parent_run:  # a sub-DAG run hangs under its composite node's span
            composite = next(n for n in nodes if n[0] == parent_run and n[1] == parent_node)
            assert span["parent_span_id"] == composite[3]


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections are refused


def test_forward_target_down_breaks_nothing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    provider = dagtrace.configure(db_path, forward=f"http://127.0.0.1:{_refused_port()}/v1/traces")
    run_pipeline(dagtrace.DagTracer(provider))
    assert dagtrace.DagProvenance(db_path).get_run("run-1")["status"] == "completed"
    provider.shutdown()  # returns (within the exporter's timeout) instead of hanging


def test_otel_traces_exporter_dagtrace_entry_point(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    proc = _python(
        """
        from opentelemetry import trace
        from opentelemetry.sdk._configuration import _initialize_components
        import dagtrace
        _initialize_components()   # what opentelemetry-instrument does at start-up
        from traced_pipeline import run_pipeline
        run_pipeline(dagtrace.DagTracer())
        trace.get_tracer_provider().shutdown()
        """,
        env={
            "OTEL_TRACES_EXPORTER": "dagtrace",
            "DAGTRACE_DB": str(db),
            "OTEL_SERVICE_NAME": "env-configured",
        },
    )
    _, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    prov = dagtrace.DagProvenance(db)
    assert prov.get_run("run-1")["status"] == "completed"
    assert len(prov.get_child_runs("run-1")) == 6
