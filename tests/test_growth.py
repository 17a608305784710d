"""Retention: pruning old runs with their descendants while writers keep recording."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import dagtrace
from dagtrace.cli import main

RUNS = int(os.environ.get("DAGTRACE_PRUNE_RUNS", "20000"))
"""20,000 in CI; DAGTRACE_PRUNE_RUNS=1000000 for the long run (docs/reliability.md)."""


def _bulk_load(store: dagtrace.Store, runs: int, t0: float) -> None:
    """`runs` top-level runs, one started per second from t0, each with one sub-DAG run,
    3 nodes and 2 edges; every tenth run still `running`."""
    run_rows: list[tuple[Any, ...]] = []
    node_rows: list[tuple[Any, ...]] = []
    edge_rows: list[tuple[Any, ...]] = []
    for i in range(runs):
        status = "running" if i % 10 == 0 else "completed"
        run_rows.append((f"r{i}", "bulk", None, status, t0 + i, None, "{}", None, None))
        run_rows.append(
            (f"r{i}.c", "bulk/m[]", f"r{i}", "completed", t0 + i + 0.5, None, "{}", None, None)
        )
        for label in ("a", "b", "m"):
            node_rows.append((f"r{i}", label, "completed", 0, 0, "{}", "1", t0 + i, t0 + i))
        edge_rows += [(f"r{i}", "a", "b", t0 + i), (f"r{i}", "b", "m", t0 + i)]
    with store.transaction() as writer:
        cur = writer._cur  # bulk load: plain INSERTs in one transaction
        cur.executemany(
            "INSERT INTO dag_runs (run_id, dag_nsref, parent_run_id, status, "
            "started_at, finished_at, source_inputs_json, sink_outputs_json, "
            "initiated_by) VALUES (?,?,?,?,?,?,?,?,?)",
            run_rows,
        )
        cur.executemany(
            "INSERT INTO node_executions (run_id, node_label, status, is_source, "
            "is_sink, input_json, output_json, started_at, finished_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            node_rows,
        )
        cur.executemany(
            "INSERT INTO edge_traversals (run_id, upstream_label, downstream_label, "
            "traversed_at) VALUES (?,?,?,?)",
            edge_rows,
        )


def test_prune_half_while_a_writer_keeps_recording(store_url: str) -> None:
    prov = dagtrace.DagProvenance(store_url)
    t0 = time.time() - RUNS - 10_000
    _bulk_load(prov.store, RUNS, t0)
    stop = threading.Event()
    errors: list[BaseException] = []
    written: list[str] = []

    def writer() -> None:
        writer_prov = dagtrace.DagProvenance(store_url)
        try:
            while not stop.is_set():
                run_id = f"live-{len(written)}"
                writer_prov.create_run(run_id, "live", {})
                writer_prov.record_node_start(run_id, "n", "{}")
                writer_prov.complete_node_with_edges(run_id, "n", "1", [("n", "o")])
                writer_prov.finish_run(run_id, "completed", "{}")
                written.append(run_id)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            writer_prov.close()

    thread = threading.Thread(target=writer)
    thread.start()
    cutoff = t0 + RUNS / 2  # the older half
    deleted = prov.store.prune(older_than=cutoff, batch_size=500)
    stop.set()
    thread.join()
    assert errors == [] and written  # the writer went on recording throughout
    half, running_in_half = RUNS // 2, RUNS // 2 // 10
    assert deleted == half - running_in_half  # running runs are never pruned unless asked
    counts = prov.store.table_counts()
    kept = RUNS - deleted
    assert counts["dag_runs"] == kept * 2 + len(written)
    assert counts["node_executions"] == kept * 3 + len(written)
    assert counts["edge_traversals"] == kept * 2 + len(written)
    assert prov.get_run("r1") is None and prov.get_run("r1.c") is None  # with its sub-DAG run
    assert prov.get_run("r0")["status"] == "running"
    assert prov.get_run(f"r{RUNS - 1}") is not None
    assert all(prov.get_run(r) is not None for r in written[-5:])
    with prov.store._read() as cur:  # nothing orphaned
        cur.execute(
            "SELECT count(*) FROM node_executions n WHERE NOT EXISTS "
            "(SELECT 1 FROM dag_runs r WHERE r.run_id = n.run_id)"
        )
        assert cur.fetchone()[0] == 0
    assert prov.store.prune(older_than=cutoff, include_active=True) == running_in_half
    prov.close()


def test_prune_cli_with_status_and_vacuum(db_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    _bulk_load(prov.store, 2000, time.time() - 40 * 86400)  # 40 days ago, one a second
    prov.create_run("fresh", "new", {})
    prov.finish_run("fresh", "completed")
    prov.close()
    before = os.path.getsize(db_path)
    result = CliRunner().invoke(
        main,
        ["prune", "--db", str(db_path), "--older-than", "30d", "--status", "completed", "--vacuum"],
    )
    assert result.exit_code == 0, result.output
    assert "pruned 1800 run(s)" in result.output and "vacuumed" in result.output
    assert os.path.getsize(db_path) < before
    after = dagtrace.DagProvenance(db_path, read_only=True)
    assert after.get_run("fresh") is not None and after.get_run("r0") is not None
    bad = CliRunner().invoke(main, ["prune", "--db", str(db_path), "--older-than", "soon"])
    assert bad.exit_code == 2 and "30d" in bad.output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("3600", 3600), ("2w", 1209600)],
)
def test_ages(text: str, seconds: float) -> None:
    from dagtrace.cli.maintenance import _age

    assert _age(text) == seconds
