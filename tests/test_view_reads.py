"""The web view's reads (`store/view_reads.py`) and the schema 7 index, on both stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import dagtrace
from dagtrace.store import schema as _schema
from dagtrace.store import view_reads as reads


def _runs(prov: dagtrace.DagProvenance, n: int, nsref: str = "etl/daily") -> list[str]:
    """`n` runs of two nodes: every third failed at `b`, the others completed."""
    ids = []
    for i in range(n):
        run_id = f"r{i:03d}"
        prov.create_run(run_id, nsref if i % 2 else f"{nsref}/odd_50%_x", {}, initiator="ci")
        prov.record_node_start(run_id, "a", "{}", is_source=True)
        prov.complete_node_with_edges(run_id, "a", "1", [("a", "b")])
        prov.record_node_start(run_id, "b", "1", is_sink=True)
        if i % 3 == 0:
            prov.fail_node_and_finish_run(run_id, "b", "boom")
        else:
            prov.complete_node_with_edges(run_id, "b", "2", [])
            prov.finish_run(run_id, "completed", "{}")
        ids.append(run_id)
    return ids


def _all_pages(store: Any, flt: reads.RunFilter, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = reads.list_runs_page(store, flt, limit=limit, cursor=cursor)
        rows += page.runs
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def test_runs_pages_newest_first_with_filters_and_cursor(store_url: str) -> None:
    with dagtrace.DagProvenance(store_url) as prov:
        ids = _runs(prov, 23)
        store = prov.store
        rows = _all_pages(store, reads.RunFilter(), limit=5)
        assert [r["run_id"] for r in rows] == list(reversed(ids))
        assert rows[0]["counts"] == {"completed": 2}
        assert rows[-1]["counts"] == {"completed": 1, "failed": 1}
        assert rows[0]["initiated_by"] == "ci" and rows[0]["attempt"] is None  # lythonic API
        failed = _all_pages(store, reads.RunFilter(status="failed"), limit=3)
        assert [r["run_id"] for r in failed] == [i for i in reversed(ids) if int(i[1:]) % 3 == 0]
        # LIKE wildcards in the filter match literally
        odd = _all_pages(store, reads.RunFilter(nsref="50%_x", nsref_contains=True), limit=50)
        assert len(odd) == 12
        assert len(_all_pages(store, reads.RunFilter(nsref="etl/daily/"), limit=50)) == 12
        assert len(_all_pages(store, reads.RunFilter(nsref="50%"), limit=50)) == 0
        assert [r["run_id"] for r in _all_pages(store, reads.RunFilter(run_id="r01"), 50)] == [
            f"r01{k}" for k in range(9, -1, -1)
        ]
        middle = rows[10]["started_at"]
        newer = _all_pages(store, reads.RunFilter(since=middle), limit=50)
        assert len(newer) == 11
        assert reads.list_runs_page(store, reads.RunFilter(), cursor="garbage!").runs


def test_node_history_previous_run_and_fingerprint(store_url: str) -> None:
    with dagtrace.DagProvenance(store_url) as prov:
        ids = _runs(prov, 25)
        store = prov.store
        history = reads.node_history(store, "etl/daily", "b")
        assert [h["run_id"] for h in history] == [i for i in ids if int(i[1:]) % 2][-20:]
        assert {h["status"] for h in history} == {"completed", "failed"}
        assert reads.previous_run(store, "etl/daily", 1e12, "zz") == ids[-2]
        first = store.get_run(ids[1])
        assert first is not None
        assert reads.previous_run(store, "etl/daily", first["started_at"], ids[1]) is None
        prov.create_run("live", "live", {})
        before = reads.tree_fingerprint(store, "live")
        assert before == reads.tree_fingerprint(store, "live")
        prov.record_node_start("live", "a", "{}")
        started = reads.tree_fingerprint(store, "live")
        prov.complete_node_with_edges("live", "a", "1", [])
        assert len({before, started, reads.tree_fingerprint(store, "live")}) == 3
        assert reads.tree_fingerprint(store, "nope") is None
        tree = reads.tree_rows(store, ids[0])
        assert tree is not None and [n["label"] for n in tree.nodes] == ["a", "b"]
        assert tree.edges == [(ids[0], "a", "b")] and tree.runs[0]["status"] == "failed"
        assert reads.tree_rows(store, "nope") is None


def test_runs_by_id_and_node_row(store_url: str) -> None:
    with dagtrace.DagProvenance(store_url) as prov:
        _runs(prov, 3)
        rows = reads.runs_by_id(prov.store, ["r000", "r001", "missing"])
        assert {r["run_id"]: r["status"] for r in rows} == {"r000": "failed", "r001": "completed"}
        row = reads.node_row(prov.store, "r000", "b")
        assert row is not None and row["error"] == "boom" and row["input_json"] == "1"
        assert reads.outputs_of(prov.store, ["r001"]) == {("r001", "a"): "1", ("r001", "b"): "2"}


def _sqlite_file(store_url: str) -> str | None:
    """The file of a SQLite-backed store (the default or the journal backend)."""
    return None if store_url.startswith("postgres") else store_url.removeprefix("journal://")


def _has_index(store_url: str) -> bool:
    if (path := _sqlite_file(store_url)) is not None:
        with sqlite3.connect(path) as conn:
            names = [r[1] for r in conn.execute("PRAGMA index_list(dag_runs)")]
        conn.close()
        return "dagtrace_runs_nsref_started" in names
    import psycopg

    with psycopg.connect(store_url) as pg:
        found = pg.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'dagtrace_runs_nsref_started' "
            "AND schemaname = current_schema()"
        ).fetchone()
    return found is not None


def _as_schema_6(store_url: str) -> None:
    """Undo schema 7's step, as a store left by the previous version."""
    statements = (
        "DROP INDEX dagtrace_runs_nsref_started",
        "UPDATE dagtrace_meta SET value = '6' WHERE key = 'schema_version'",
    )
    if (path := _sqlite_file(store_url)) is not None:
        with sqlite3.connect(path, isolation_level=None) as conn:
            for sql in statements:
                conn.execute(sql)
        conn.close()
        return
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as pg:
        for sql in statements:
            pg.execute(sql)


def test_schema_7_adds_the_nsref_index_to_a_schema_6_store(store_url: str) -> None:
    assert _schema.SCHEMA_VERSION >= 7
    dagtrace.DagProvenance(store_url).close()
    assert _has_index(store_url)
    _as_schema_6(store_url)
    assert not _has_index(store_url)
    with dagtrace.DagProvenance(store_url) as prov:
        _runs(prov, 2)
        assert reads.node_history(prov.store, "etl/daily", "a")[0]["status"] == "completed"
    assert _has_index(store_url)


def test_node_history_uses_the_index(tmp_path: Path) -> None:
    db = tmp_path / "plan.db"
    dagtrace.DagProvenance(db).close()
    with sqlite3.connect(db) as conn:
        plan = " ".join(
            str(r)
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT run_id, started_at FROM dag_runs "
                "WHERE dag_nsref = 'x' ORDER BY started_at DESC LIMIT 20"
            )
        )
    conn.close()
    assert "dagtrace_runs_nsref_started" in plan and "TEMP B-TREE" not in plan


def test_a_lythonic_file_read_only_reads_as_nulls(tmp_path: Path) -> None:
    from lythonic.compose import dag_provenance as lythonic_provenance

    db = tmp_path / "lythonic.db"
    theirs = lythonic_provenance.DagProvenance(db)
    theirs.create_run("l1", "plain", {})
    theirs.record_node_start("l1", "a", "{}")
    theirs.finish_run("l1", "completed")
    store = dagtrace.open_store(str(db), read_only=True)
    try:
        assert not reads.has_extras(store)
        (row,) = reads.list_runs_page(store, reads.RunFilter()).runs
        assert row["run_id"] == "l1" and row["attempt"] is None
        tree = reads.tree_rows(store, "l1")
        assert tree is not None and tree.runs[0]["trace_id"] is None
        assert tree.nodes[0]["attempt"] is None and tree.nodes[0]["label"] == "a"
        assert reads.replays_of(store, "l1") == []
    finally:
        store.close()


@pytest.mark.parametrize("cursor", ["", "e30", "WzEsIDJd", "bm90IGpzb24"])
def test_bad_cursors_decode_to_none_or_a_pair(cursor: str) -> None:
    decoded = reads.decode_cursor(cursor)
    assert decoded is None or isinstance(decoded[1], str)
    assert reads.decode_cursor(reads.encode_cursor(1.5, "x/y")) == (1.5, "x/y")


def _placed_by_inspect(run: Any, prefix: str = "") -> dict[str, tuple[str, str]]:
    """path of each node → (its run id, status), through inspect_run's sub_dags."""
    found = {}
    for label, node in run.nodes.items():
        found[prefix + label] = (run.run_id, node.status)
        for key, sub in (node.sub_dags or {}).items():
            found.update(_placed_by_inspect(sub, prefix + key + "/"))
    return found


def _placed_by_view(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    from dagtrace.serve.view import model as view_model

    return {n["path"]: (n["run_id"], n["status"]) for n in view_model.walk(data)}


def test_the_view_places_sub_runs_where_inspect_run_does(tmp_path: Path) -> None:
    from scenarios import run_all
    from traced_pipeline import run_pipeline
    from view_helpers import traced

    from dagtrace.serve.view.tree import page_tree

    db = tmp_path / "both.db"
    traced(db, run_pipeline, run_id="traced-1")
    with dagtrace.DagProvenance(db) as prov:
        run_ids = [*run_all(prov).values(), "traced-1"]
        for run_id in run_ids:
            rows = reads.tree_rows(prov.store, run_id)
            run = prov.inspect_run(run_id)
            assert rows is not None and run is not None
            assert _placed_by_view(page_tree(rows, run_id)) == _placed_by_inspect(run), run_id


def test_runs_changed_since_reads_index_ranges_only(tmp_path: Path) -> None:
    """Schema 8: what `dagtrace tail` re-reads costs the same on any size of store: no
    step of its plan reads every top-level run (an OR of the three conditions did)."""
    from dagtrace.store.reads import CHANGED_RUNS_SQL

    db = tmp_path / "plan.db"
    dagtrace.DagProvenance(db).close()
    with sqlite3.connect(db) as conn:
        plan = [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {CHANGED_RUNS_SQL}", (0.0, 0.0))]
    conn.close()
    steps = [step for step in plan if "dag_runs" in step]
    # each a range: running runs, or started / finished after the time; never every
    # top-level run (`parent_run_id=?` alone), as the OR of the three conditions was
    assert len(steps) == 3 and all("status=?" in s or ">?" in s for s in steps), plan
