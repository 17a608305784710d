"""TracedProvenance reads nothing from the store for writes on runs it holds open.

The runner's overhead (benchmarks/bench_runner.py) depends on it: a DagRunner run makes
one store read (create_run's check that the run id is new), not one per node.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lythonic.compose.dag_runner import DagRunner
from lythonic.compose.namespace import Dag
from lythonic_dags import as_lythonic

from dagtrace.lythonic import TracedProvenance
from dagtrace.store.base import Store


def _inc(n: int) -> int:
    return n + 1


def test_a_run_on_one_instance_reads_the_store_once(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = Dag()
    chain = dag.node(_inc, label="n0")
    for i in range(1, 10):
        chain = chain >> dag.node(_inc, label=f"n{i}")
    prov = TracedProvenance(db_path)
    reads: list[str] = []
    original = Store._read

    def counting(self: Store) -> Any:
        reads.append("read")
        return original(self)

    monkeypatch.setattr(Store, "_read", counting)
    result = asyncio.run(
        DagRunner(dag, provenance=as_lythonic(prov)).run({"n0": {"n": 0}}, dag_nsref="c")
    )
    monkeypatch.undo()
    prov.close()
    assert result.status == "completed"
    assert len(reads) == 1
