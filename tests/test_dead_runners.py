"""Dead runners: heartbeats keep a live run off the list; a killed runner's run is
listed once silent past the bound, and closed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

import dagtrace
from dagtrace.cli import main

TESTS = Path(__file__).parent
BOUND = 1.0  # seconds of silence; the runners here beat every 0.1 s

_RUNNER = """
import sys, dagtrace
provider = dagtrace.configure(sys.argv[1], heartbeat_interval=0.1)
tracer = dagtrace.DagTracer(provider)
with tracer.run("slow", run_id=sys.argv[2]) as run:
    with run.node("wait") as node:
        print("started", flush=True)
        sys.stdin.readline()       # a node far longer than the silence bound
        node.set_output(1)
provider.shutdown()
"""


def _runner(db: Path, run_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(db), run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    return proc


def test_live_runner_is_never_closed_and_a_killed_one_is(db_path: Path) -> None:
    dagtrace.DagProvenance(db_path).close()
    alive, doomed = _runner(db_path, "alive"), _runner(db_path, "doomed")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    for pipe in (doomed.stdin, doomed.stdout):
        assert pipe is not None
        pipe.close()
    store = dagtrace.open_store(db_path)
    deadline = time.monotonic() + 3 * BOUND
    silent: list[str] = []
    while time.monotonic() < deadline:  # time passing is what is tested here
        silent = [r["run_id"] for r in store.silent_runs(BOUND)]
        assert "alive" not in silent  # its heartbeats keep it off, though its node is long
        if silent == ["doomed"] and time.monotonic() > deadline - BOUND:
            break
        time.sleep(0.1)
    assert silent == ["doomed"]
    result = CliRunner().invoke(
        main, ["dead", "--db", str(db_path), "--silent-for", f"{BOUND}s", "--close"]
    )
    assert result.exit_code == 0, result.output
    assert "doomed" in result.output and "closed" in result.output
    assert "alive" not in result.output
    prov = dagtrace.DagProvenance(db_path)
    assert prov.get_run("doomed")["status"] == "failed"
    assert prov.get_run("alive")["status"] == "running"
    assert alive.stdin is not None and alive.stdout is not None
    alive.stdin.write("go\n")
    alive.stdin.flush()
    assert alive.wait(timeout=30) == 0
    alive.stdin.close()
    alive.stdout.close()
    assert prov.get_run("alive")["status"] == "completed"
    store.close()


def test_runs_without_heartbeats_count_node_activity(db_path: Path) -> None:
    """Drop-in DagProvenance runners send no heartbeat: their nodes are the sign of life."""
    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("busy", "ns", {})
    now = time.time()
    prov.record_node_start("busy", "n", "{}")
    assert prov.store.silent_runs(60, now=now + 30) == []
    assert [r["run_id"] for r in prov.store.silent_runs(60, now=now + 120)] == ["busy"]


def test_heartbeat_spans_reach_an_otlp_only_store(db_path: Path) -> None:
    """A runner that only exports (no live processor) sends dag.heartbeat spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(dagtrace.DagtraceSpanExporter(db_path)))
    tracer = dagtrace.DagTracer(provider, start_markers=True, heartbeat_interval=0.05)
    store = dagtrace.open_store(db_path)

    def heartbeat_at() -> float | None:
        details = store.get_run_details("b")
        return details.get("heartbeat_at") if details else None

    with tracer.run("beating", run_id="b"):
        deadline = time.monotonic() + 10
        while heartbeat_at() is None:
            assert time.monotonic() < deadline, "no heartbeat arrived"
            time.sleep(0.02)
        first = store.get_run_details("b")["heartbeat_at"]
        while store.get_run_details("b")["heartbeat_at"] == first:
            assert time.monotonic() < deadline, "heartbeats stopped"
            time.sleep(0.02)
        assert store.get_run("b")["status"] == "running"
    assert store.get_run("b")["status"] == "completed"
    deadline = time.monotonic() + 10
    while tracer._heartbeat is not None:  # no open run: the beating thread ends
        assert time.monotonic() < deadline
        time.sleep(0.02)
    provider.shutdown()
    store.close()
