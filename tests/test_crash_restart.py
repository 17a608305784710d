"""A lythonic runner SIGKILLed mid-node, failed and restarted from another process.

What a lythonic user does after a crash, with `TracedProvenance` in place of
`DagProvenance`: a new process marks the run `failed` with lythonic's own
`update_run_status` (this instance never opened the run), then `DagRunner.restart`.
The test OTLP receiver stands in for Jaeger (which cannot run here) and shows what a
Jaeger would see of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lythonic.compose.dag_runner import DagRunner
from lythonic_dags import as_lythonic

from dagtrace.lythonic import TracedProvenance

TESTS = Path(__file__).parent

_RUNNER = """
import asyncio, sys
from lythonic.compose.dag_runner import DagRunner
from dagtrace.lythonic import TracedProvenance
import killable_dag
db, log, kill_at, forward = sys.argv[1:5]
killable_dag.setup(log, kill_at=kill_at)
provenance = TracedProvenance(db, forward=forward)
asyncio.run(DagRunner(killable_dag.dag(), provenance=provenance).run(
    {"step0": {"n": 1}}, dag_nsref="killable"))
"""


def test_killed_runner_failed_elsewhere_then_restarted(
    tmp_path: Path, receiver: tuple[str, Path]
) -> None:
    url, received = receiver
    db, log = tmp_path / "runs.db", tmp_path / "executed.log"
    kill_at = random.Random(20261202).choice(["step1", "step2", "step3"])
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_RUNNER), str(db), str(log), kill_at, url],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    executed_before = log.read_text().split()

    prov = TracedProvenance(db, forward=url)
    (run,) = prov.get_recent_runs()
    assert run.status == "running"
    first: Mapping[str, Any] = prov.store.get_run_details(run.run_id) or {}
    prov.update_run_status(run.run_id, "failed")  # what lythonic's docs have one do
    assert (prov.get_run(run.run_id) or {})["status"] == "failed"  # seen at once

    import killable_dag

    killable_dag.setup(str(log), kill_at="never")
    result = asyncio.run(
        DagRunner(killable_dag.dag(), provenance=as_lythonic(prov)).restart(run.run_id)
    )
    assert result.status == "completed", result
    executed_after = log.read_text().split()[len(executed_before) :]
    assert not set(executed_before[:-1]) & set(executed_after)  # completed: not run again
    assert executed_after[0] == kill_at
    after = prov.inspect_run(run.run_id)
    assert after is not None and after.status == "completed"
    assert {n.status for n in after.nodes.values()} == {"completed"}
    second: Mapping[str, Any] = prov.store.get_run_details(run.run_id) or {}
    assert second["attempt"] == 2 and second["trace_id"] != first["trace_id"]
    prov.close()  # sends what is still batched to the receiver

    spans = [json.loads(line) for line in received.read_text().splitlines()]
    change = next(s for s in spans if s["name"] == "dag.change")
    assert change["attributes"]["dag.status"] == "failed"
    assert change["attributes"]["dag.change"] == "status"
    assert (change["trace_id"], change["parent_span_id"]) == (
        first["trace_id"],
        first["span_id"],
    )  # under the killed attempt's run span, in its trace
    restart = next(
        s for s in spans if s["name"] == "dag.run" and s["attributes"].get("dag.attempt") == 2
    )
    assert restart["links"] == [[first["trace_id"], first["span_id"]]]
    assert restart["trace_id"] == second["trace_id"]
    nodes = {
        s["attributes"]["dag.node.label"]
        for s in spans
        if s["name"].startswith("dag.node ") and s["trace_id"] == second["trace_id"]
    }
    assert nodes == set(executed_after)
