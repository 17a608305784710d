"""Faults: a runner SIGKILLed at seeded points, a store that cannot be written."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import dagtrace

TESTS = Path(__file__).parent
KILL_POINTS = int(os.environ.get("DAGTRACE_KILL_POINTS", "10"))
"""10 in CI; DAGTRACE_KILL_POINTS=50 for every point (docs/reliability.md)."""
ALL_NODES = {f"step{i}" for i in range(7)} | {"fan", "last"}


WRITES = 25
"""Store writes of one uninterrupted run of kill_runner.py (it prints the count)."""
POINTS = [(k, mode) for k in range(1, WRITES + 1) for mode in ("before", "inside")]
random.Random(20261128).shuffle(POINTS)


def _run(db: Path, kill_at: int, mode: str, log: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TESTS / "kill_runner.py"), str(db), str(kill_at), mode, str(log)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _logged(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    return [
        (int(a), label)
        for a, label in (line.split() for line in log.read_text().split("\n") if line)
    ]


def test_the_uninterrupted_run_makes_the_writes_the_points_assume(tmp_path: Path) -> None:
    done = _run(tmp_path / "k.db", 0, "before", tmp_path / "ended.log")
    assert done.returncode == 0 and f"completed after {WRITES} writes" in done.stdout


@pytest.mark.parametrize(("kill_at", "mode"), POINTS[:KILL_POINTS])
def test_sigkill_at_the_kth_write_loses_nothing_and_restarts(
    tmp_path: Path, kill_at: int, mode: str
) -> None:
    db, log = tmp_path / "k.db", tmp_path / "ended.log"
    first = _run(db, kill_at, mode, log)
    assert first.returncode == -signal.SIGKILL, first.stderr
    killed = True
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    prov = dagtrace.DagProvenance(db)
    status = {n["node_label"]: n["status"] for n in prov.get_node_executions("k")}
    ended_before = {label for _, label in _logged(log)}
    assert all(status.get(label) == "completed" for label in ended_before)  # every ended node
    if killed:
        run = prov.get_run("k")
        if run is not None and run["status"] == "running":
            assert prov.close_interrupted("k") >= 1
        second = _run(db, 0, "before", log)
        assert second.returncode == 0 and "completed" in second.stdout, second.stderr
        again = {label for attempt, label in _logged(log) if attempt > 1}
        assert not again & ended_before  # completed nodes are not executed again
    final = prov.inspect_run("k")
    assert final is not None and final.status == "completed"
    assert {label for label, n in final.nodes.items() if n.status == "completed"} == ALL_NODES
    assert len(final.nodes["fan"].sub_dags or {}) == 4
    prov.close()
