"""A file either library writes reads identically in the other, on real DagRunner runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lythonic.compose import dag_provenance as lythonic_provenance
from scenarios import run_all, snapshot

import dagtrace


def test_file_written_by_dagtrace_reads_identically_in_lythonic(db_path: Path) -> None:
    ours = dagtrace.DagProvenance(db_path)
    run_ids = run_all(ours)
    theirs = lythonic_provenance.DagProvenance(db_path)
    assert snapshot(theirs, run_ids) == snapshot(ours, run_ids)


def test_file_written_by_lythonic_reads_identically_in_dagtrace(db_path: Path) -> None:
    theirs = lythonic_provenance.DagProvenance(db_path)
    run_ids = run_all(theirs)
    ours = dagtrace.DagProvenance(db_path)
    assert snapshot(ours, run_ids) == snapshot(theirs, run_ids)


def test_lythonic_file_keeps_working_in_both_after_dagtrace_opens_it(db_path: Path) -> None:
    theirs = lythonic_provenance.DagProvenance(db_path)
    first = run_all(theirs)
    ours = dagtrace.DagProvenance(db_path)
    second = run_all(ours)  # dagtrace writes into lythonic's file
    third = run_all(lythonic_provenance.DagProvenance(db_path))  # and lythonic goes on writing
    everything = {
        f"{k}@{i}": v for i, ids in enumerate((first, second, third)) for k, v in ids.items()
    }
    assert snapshot(ours, everything) == snapshot(theirs, everything)


def test_old_schema_without_initiated_by_is_migrated(db_path: Path) -> None:
    ddl = lythonic_provenance._DAG_RUNS_DDL.replace("    initiated_by TEXT,\n", "")
    with sqlite3.connect(db_path) as conn:
        conn.execute(ddl)
        conn.execute(
            "INSERT INTO dag_runs (run_id, dag_nsref, status, started_at) "
            "VALUES ('old', 'legacy', 'completed', 1.5)"
        )
    prov = dagtrace.DagProvenance(db_path)
    assert prov.get_run("old") == {
        "run_id": "old",
        "dag_nsref": "legacy",
        "parent_run_id": None,
        "status": "completed",
        "started_at": 1.5,
        "finished_at": None,
        "source_inputs_json": None,
        "sink_outputs_json": None,
        "initiated_by": None,
    }
    prov.create_run("new", "fresh", {}, initiator="u1")
    assert prov.get_run("new")["initiated_by"] == "u1"
    assert lythonic_provenance.DagProvenance(db_path).get_run("new")["initiated_by"] == "u1"


def test_lythonic_initiated_by_context_is_recorded(db_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    with lythonic_provenance.initiated_by("u-lythonic"):
        prov.create_run("a", "ns", {})
    with dagtrace.initiated_by(dagtrace.SCHEDULER):
        prov.create_run("b", "ns", {})
    prov.create_run("c", "ns", {}, initiator="explicit")
    prov.create_run("d", "ns", {})
    assert [prov.get_run(r)["initiated_by"] for r in "abcd"] == [
        "u-lythonic",
        "scheduler",
        "explicit",
        None,
    ]
    assert [r.initiated_by for r in prov.get_recent_runs()] == [
        None,
        "explicit",
        "scheduler",
        "u-lythonic",
    ]


def test_schema_matches_lythonic_ddl_plus_nullable_extras(tmp_path: Path) -> None:
    lythonic_provenance.DagProvenance(tmp_path / "l.db")
    dagtrace.DagProvenance(tmp_path / "d.db")

    def columns(path: Path) -> dict[str, list[tuple[object, ...]]]:
        with sqlite3.connect(path) as conn:
            return {
                t: [row[1:] for row in conn.execute(f"PRAGMA table_info({t})")]
                for t in ("dag_runs", "node_executions", "edge_traversals")
            }

    theirs, ours = columns(tmp_path / "l.db"), columns(tmp_path / "d.db")
    for table, cols in theirs.items():
        assert ours[table][: len(cols)] == cols  # same names, types, NOT NULL, defaults, PK
        for _name, _type, notnull, default, pk in ours[table][len(cols) :]:
            assert (notnull, default, pk) == (0, None, 0)
