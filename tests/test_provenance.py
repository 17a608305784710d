"""Behaviour of the drop-in DagProvenance that users rely on beyond the seed's text."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from scenarios import run_all

import dagtrace


@pytest.fixture
def prov(store_url: str) -> Iterator[dagtrace.DagProvenance]:
    """The drop-in API on both stores (SQLite file, PostgreSQL schema)."""
    provenance = dagtrace.DagProvenance(store_url)
    yield provenance
    provenance.close()


@pytest.fixture
def scenario_runs(prov: dagtrace.DagProvenance) -> dict[str, str]:
    return run_all(prov)


def test_recent_runs_are_newest_first_and_filter_by_status(
    prov: dagtrace.DagProvenance, scenario_runs: dict[str, str]
) -> None:
    recent = prov.get_recent_runs(limit=1000)
    starts = [r.started_at for r in recent]
    assert starts == sorted(starts, reverse=True)
    assert recent[0].run_id == scenario_runs["replay_of_linear"]
    assert len(prov.get_recent_runs(limit=3)) == 3
    # restarted runs are no longer failed; the map's failed first try of one element is
    assert [r.dag_nsref for r in prov.get_recent_runs(status="failed")] == ["mapped_flaky/mf[1]"]
    assert prov.get_active_runs() == []


def test_sub_dags_hang_off_the_composite_node_by_expansion_key(
    prov: dagtrace.DagProvenance, scenario_runs: dict[str, str]
) -> None:
    def keys(name: str, label: str) -> set[str]:
        run = prov.inspect_run(scenario_runs[name])
        assert run is not None
        return set(run.nodes[label].sub_dags or {})

    assert keys("mapped_list", "mapped") == {f"mapped[{i}]" for i in range(5)}
    assert keys("mapped_dict", "bykey") == {f"bykey[{c}]" for c in "hbwod"}
    assert keys("called", "shout") == {"shout[]"}
    assert keys("switched", "pick") == {"pick[long]"}
    assert keys("map_switched", "m") == {
        "m[0:long]",
        "m[1:short]",
        "m[2:long]",
        "m[3:short]",
        "m[4:long]",
    }
    run = prov.inspect_run(scenario_runs["linear"])
    assert run is not None and all(n.sub_dags is None for n in run.nodes.values())


def test_child_runs_include_grandchildren(
    prov: dagtrace.DagProvenance, scenario_runs: dict[str, str]
) -> None:
    children = prov.get_child_runs(scenario_runs["nested"])
    nsrefs = sorted(r.dag_nsref for r in children)
    assert nsrefs == sorted(
        [f"nested/outer[{i}]" for i in range(5)] + [f"nested/outer[{i}]/deep[]" for i in range(5)]
    )
    starts = [r.started_at for r in children]
    assert starts == sorted(starts)
    top = prov.inspect_run(scenario_runs["nested"])
    assert top is not None
    grandchild = top.nodes["outer"].sub_dags["outer[2]"].nodes["deep"].sub_dags["deep[]"]
    assert grandchild.dag_nsref == "nested/outer[2]/deep[]"
    assert grandchild.nodes["shout"].status == "completed"


def test_pending_nodes_after_failure_and_pause(prov: dagtrace.DagProvenance) -> None:
    prov.create_run("r", "ns", {})
    prov.record_node_start("r", "a", "{}", is_source=True)
    prov.complete_node_with_edges("r", "a", '"x"', [("a", "b")])
    prov.record_node_start("r", "b", '"x"')
    prov.fail_node_and_finish_run("r", "b", "Traceback: boom")
    assert prov.get_pending_nodes("r") == ["b"]
    assert prov.get_run("r")["status"] == "failed"

    prov.create_run("p", "ns", {})
    prov.record_node_start("p", "a", "{}")
    prov.update_run_status("p", "paused")
    assert prov.get_pending_nodes("p") == ["a"]
    assert [r.run_id for r in prov.get_recent_runs(status="paused")] == ["p"]


def test_restart_reuses_the_run_id_without_duplicates(
    prov: dagtrace.DagProvenance, scenario_runs: dict[str, str]
) -> None:
    run_id = scenario_runs["failing"]
    run = prov.inspect_run(run_id)
    assert run is not None and run.status == "completed"
    assert {n: e.status for n, e in run.nodes.items()} == {
        "load": "completed",
        "words": "completed",
        "flaky": "completed",
        "count": "completed",
    }
    assert run.nodes["flaky"].error is None  # the retried node no longer shows the old error
    edges = prov.get_edge_traversals(run_id)
    assert len(edges) == len({(e["upstream_label"], e["downstream_label"]) for e in edges}) == 3
    assert prov.get_pending_nodes(run_id) == []


def test_replay_skips_nodes_with_copied_outputs(
    prov: dagtrace.DagProvenance, scenario_runs: dict[str, str]
) -> None:
    original, replay = scenario_runs["linear"], scenario_runs["replay_of_linear"]
    nodes = {n["node_label"]: n for n in prov.get_node_executions(replay)}
    assert nodes["load"]["status"] == nodes["words"]["status"] == "skipped"
    assert nodes["count"]["status"] == "completed"
    assert prov.get_node_output(replay, "words") == prov.get_node_output(original, "words")
    assert prov.get_run(replay)["parent_run_id"] is None


def test_load_io_fills_run_and_selected_nodes(
    prov: dagtrace.DagProvenance, scenario_runs: dict[str, str]
) -> None:
    run = prov.inspect_run(scenario_runs["linear"])
    assert run is not None and run.io is None
    prov.load_io(run, ["words"])
    assert run.io is not None and json.loads(run.io.input_json or "") == {
        "load": {"text": "hello big world of dags"}
    }
    assert json.loads(run.io.output_json or "") == {"count": 5}
    assert run.nodes["words"].io is not None
    words = json.loads(run.nodes["words"].io.output_json or "")
    assert words == ["hello", "big", "world", "of", "dags"]
    assert run.nodes["count"].io is None


def test_unknown_ids_read_as_none_or_empty(prov: dagtrace.DagProvenance) -> None:
    assert prov.get_run("nope") is None
    assert prov.inspect_run("nope") is None
    assert prov.get_node_executions("nope") == []
    assert prov.get_node_output("nope", "x") is None
    assert prov.get_pending_nodes("nope") == []
    assert prov.get_edge_traversals("nope") == []
    assert prov.get_child_runs("nope") == []


def test_payloads_that_are_not_json_serialisable(prov: dagtrace.DagProvenance) -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    prov.create_run("r", "ns", {"load": {"when": when, "model": dagtrace.IoPayload()}})
    inputs = prov.get_run("r")["source_inputs_json"]
    assert inputs is not None
    assert json.loads(inputs) == {
        "load": {"when": str(when), "model": {"input_json": None, "output_json": None}}
    }


def test_latest_update_and_nodes_changed_since(prov: dagtrace.DagProvenance) -> None:
    prov.create_run("r", "ns", {})
    prov.record_node_start("r", "a", "{}")
    prov.complete_node_with_edges("r", "a", "1", [("a", "b")])
    before_b = datetime.now(UTC)
    prov.record_node_start("r", "b", "1")
    run = prov.inspect_run("r")
    assert run is not None
    assert [n.node_label for n in run.nodes_changed_since(before_b)] == ["b"]
    assert run.latest_update() == run.nodes["b"].started_at


def test_runs_changed_since_are_the_running_and_the_recently_started_or_ended(
    prov: dagtrace.DagProvenance,
) -> None:
    prov.create_run("old-done", "ns", {})
    prov.finish_run("old-done", "completed")
    prov.create_run("old-running", "ns", {})
    prov.create_run("old-paused", "ns", {})
    prov.update_run_status("old-paused", "paused")
    since = time.time()
    prov.create_run("new", "ns", {})
    prov.create_run("new-child", "ns/c[]", {}, parent_run_id="new")
    prov.finish_run("new", "failed")
    assert prov.store.runs_changed_since(since) == ["old-running", "new"]
    assert prov.store.runs_changed_since(since - 3600) == [
        "old-done",
        "old-running",
        "old-paused",
        "new",
    ]


def test_list_runs_is_get_recent_runs_flat_with_node_counts(
    prov: dagtrace.DagProvenance,
) -> None:
    run_all(prov)
    for status, top_level in ((None, True), (None, False), ("completed", True)):
        trees = prov.store.get_recent_runs(50, status, top_level=top_level)
        flat = prov.store.list_runs(50, status, top_level=top_level)
        assert [(r["run_id"], r["status"], r["nodes"]) for r in flat] == [
            (t.run_id, t.status, len(t.nodes)) for t in trees
        ]
        assert all(
            (r["started_at"], r["finished_at"]) == (get["started_at"], get["finished_at"])
            for r in flat
            for get in [cast("Mapping[str, Any]", prov.get_run(r["run_id"]) or {})]
        )
    assert len(prov.store.list_runs(2)) == 2


def test_a_schema_3_file_gets_the_index_that_lists_top_level_runs(db_path: Path) -> None:
    dagtrace.DagProvenance(db_path).close()
    with sqlite3.connect(db_path, isolation_level=None) as conn:  # as version 3 left it
        conn.execute("DROP INDEX dagtrace_runs_parent_started")
        conn.execute("CREATE INDEX dagtrace_runs_parent ON dag_runs (parent_run_id)")
        conn.execute("UPDATE dagtrace_meta SET value = '3' WHERE key = 'schema_version'")
    dagtrace.DagProvenance(db_path).close()
    with sqlite3.connect(db_path) as conn:
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        plan = " ".join(
            str(row)
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT run_id FROM dag_runs WHERE parent_run_id IS NULL "
                "ORDER BY started_at DESC LIMIT 20"
            )
        )
    assert "dagtrace_runs_parent_started" in indexes and "dagtrace_runs_parent" not in indexes
    assert "TEMP B-TREE" not in plan  # newest top-level runs without sorting them all


def test_inspect_run_takes_a_bounded_number_of_queries(db_path: Path) -> None:
    """A deep and wide sub-DAG tree loads in the same few statements as a lone run."""
    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("root", "ns", {})
    parent, nsref = "root", "ns"
    for _ in range(12):  # 12 levels deep, each level 10 wide
        prov.record_node_start(parent, "m", "[]")
        for i in range(10):
            prov.create_run(f"{parent}.{i}", f"{nsref}/m[{i}]", {}, parent_run_id=parent)
            prov.record_node_start(f"{parent}.{i}", "leaf", "{}")
        parent, nsref = f"{parent}.0", f"{nsref}/m[0]"
    statements: list[str] = []
    prov.inspect_run("root")  # leaves one pooled reader connection
    reader = cast(dagtrace.SqliteStore, prov.store)._idle_readers[0]
    reader.set_trace_callback(statements.append)
    run = prov.inspect_run("root")
    reader.set_trace_callback(None)
    assert run is not None
    depth = 0
    node = run.nodes["m"]
    while node.sub_dags:
        depth += 1
        assert len(node.sub_dags) == 10
        node = (
            node.sub_dags["m[0]"].nodes["m"]
            if "m" in node.sub_dags["m[0]"].nodes
            else (node.sub_dags["m[0]"].nodes["leaf"])
        )
    assert depth == 12
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) <= 4


def test_read_only_open_and_read_only_file(db_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("r", "ns", {})
    prov.close()
    reader = dagtrace.DagProvenance(db_path, read_only=True)
    assert reader.get_run("r") is not None
    with pytest.raises(dagtrace.StoreError, match="read-only"):
        reader.create_run("s", "ns", {})
    uri_reader = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    assert uri_reader.execute("SELECT count(*) FROM dag_runs").fetchone() == (1,)


def test_read_only_open_of_a_pre_initiator_lythonic_file(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TABLE dag_runs (run_id TEXT PRIMARY KEY, dag_nsref TEXT NOT NULL, "
            "parent_run_id TEXT, status TEXT NOT NULL, started_at REAL NOT NULL, "
            "finished_at REAL, source_inputs_json TEXT, sink_outputs_json TEXT)"
        )
        conn.execute(
            "INSERT INTO dag_runs VALUES ('r', 'ns', NULL, 'completed', 1.0, 2.0, '{}', NULL)"
        )
        for ddl in (
            dagtrace.store.schema.NODE_EXECUTIONS_DDL,
            dagtrace.store.schema.EDGE_TRAVERSALS_DDL,
        ):
            conn.execute(ddl)
    reader = dagtrace.DagProvenance(db_path, read_only=True)
    assert reader.get_run("r")["initiated_by"] is None
    assert reader.get_recent_runs()[0].run_id == "r"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"this is not a database, just text" * 200), "not a database"),
        (lambda p: p.mkdir(), "cannot open"),
    ],
    ids=["not-sqlite", "a-directory"],
)
def test_unusable_files_raise_store_error_naming_the_file(
    db_path: Path, make: Any, message: str
) -> None:
    make(db_path)
    with pytest.raises(dagtrace.StoreError, match=message) as info:
        dagtrace.DagProvenance(db_path)
    assert str(db_path) in str(info.value)


def test_a_schema_that_cannot_be_migrated(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE dag_runs (run_id TEXT PRIMARY KEY, something TEXT)")
    with pytest.raises(dagtrace.StoreError, match="dag_runs lacks dag_nsref"):
        dagtrace.DagProvenance(db_path)
    with sqlite3.connect(db_path) as conn:  # and the failed migration left nothing behind
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"dag_runs", "sqlite_autoindex_dag_runs_1"}


def test_a_url_where_a_path_is_expected(tmp_path: Path) -> None:
    with pytest.raises(dagtrace.StoreError, match="unsupported store URL scheme 'mysql'"):
        dagtrace.DagProvenance("mysql://user:secret@host/db")
    prov = dagtrace.DagProvenance(f"sqlite:///{tmp_path}/via-url.db")
    assert prov.db_path == tmp_path / "via-url.db"


def test_a_failed_write_alters_nothing(prov: dagtrace.DagProvenance) -> None:
    prov.create_run("r", "ns", {"a": 1})
    before = prov.get_run("r")
    with pytest.raises(dagtrace.StoreError, match=r"(?i)unique"):
        prov.create_run("r", "other", {"b": 2})
    assert prov.get_run("r") == before
    prov.record_node_start("r", "n", "{}")
    prov.complete_node_with_edges("r", "n", "1", [("n", "m")])
    with pytest.raises(dagtrace.StoreError):  # the duplicate edge fails the whole batch
        prov.complete_node_with_edges("r", "n", "2", [("n", "x"), ("n", "m")])
    assert prov.get_node_output("r", "n") == "1"
    assert [e["downstream_label"] for e in prov.get_edge_traversals("r")] == ["m"]


def test_directory_is_created_like_lythonic(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "p.db"
    dagtrace.DagProvenance(path).create_run("r", "ns", {})
    assert path.is_file()


def test_wal_mode_is_persistent_and_lythonic_reads_uncheckpointed_writes(db_path: Path) -> None:
    from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance

    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("r", "ns", {})
    assert Path(f"{db_path}-wal").exists()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert LythonicProvenance(db_path).get_run("r") == prov.get_run("r")
    assert os.path.getsize(db_path) > 0


def test_timestamps_round_trip_to_the_microsecond(prov: dagtrace.DagProvenance) -> None:
    from dagtrace._mapping import SpanRecord

    started, finished = 1795888599.123456, 1795888600.654321
    prov.store.write_records(
        [
            SpanRecord(
                kind="run",
                run_id="t",
                attempt=1,
                phase=1,
                status="completed",
                started_at=started,
                finished_at=finished,
                trace_id=None,
                span_id=None,
                parent_span_id=None,
                nsref="ns",
            ),
            SpanRecord(
                kind="node",
                run_id="t",
                attempt=1,
                phase=1,
                status="completed",
                started_at=started,
                finished_at=finished,
                trace_id=None,
                span_id=None,
                parent_span_id=None,
                label="n",
                edges=[("m", finished)],
            ),
        ]
    )
    run = prov.get_run("t")
    assert run is not None and (run["started_at"], run["finished_at"]) == (started, finished)
    tree = prov.inspect_run("t")
    assert tree is not None
    assert tree.started_at == datetime.fromtimestamp(started, UTC)
    assert tree.nodes["n"].finished_at.microsecond == 654321
    assert prov.get_edge_traversals("t")[0]["traversed_at"] == finished


def test_edges_of_a_node_come_by_time_then_downstream_label(prov: dagtrace.DagProvenance) -> None:
    """Edges recorded at the same time (a node's edges from one span) come in lythonic's
    order, by downstream label, on every backend and whatever order they were written in;
    in inspect_run, get_recent_runs and get_child_runs alike."""
    prov.create_run("p", "ns", {})
    prov.record_node_start("p", "m", "{}")
    prov.create_run("r", "ns/m[0]", {}, parent_run_id="p")
    prov.record_node_start("r", "a", "{}")
    prov.complete_node_with_edges("r", "a", "1", [("a", d) for d in ("c", "e", "B", "b", "d")])
    with prov.store.transaction() as writer:
        writer.cursor.execute(
            "UPDATE edge_traversals SET traversed_at = "
            "CASE downstream_label WHEN 'd' THEN 5.0 ELSE 7.0 END WHERE run_id = ?",
            ("r",),
        )
    expected = ["d", "B", "b", "c", "e"]
    sub = prov.inspect_run("r")
    parent = prov.inspect_run("p")
    assert sub is not None and parent is not None
    for run in (
        sub,
        parent.nodes["m"].sub_dags["m[0]"],
        prov.get_child_runs("p")[0],
        next(r for r in prov.get_recent_runs(5) if r.run_id == "r"),
    ):
        assert [e.downstream_label for e in run.nodes["a"].edges] == expected
    if isinstance(prov.store, dagtrace.SqliteStore):
        from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance

        theirs = LythonicProvenance(prov.store.path).inspect_run("r")
        assert theirs is not None and theirs.model_dump() == sub.model_dump()


def test_edges_from_no_stored_node_are_left_out_as_lythonic_does(
    prov: dagtrace.DagProvenance,
) -> None:
    """An edge whose upstream node has no row (a file another tool wrote), or in a run
    with no node at all, is in no tree: lythonic attaches edges to their upstream node."""
    prov.create_run("r", "ns", {})
    prov.record_node_start("r", "a", "{}")
    prov.complete_node_with_edges("r", "a", "1", [("a", "b")])
    prov.create_run("bare", "ns", {})
    with prov.store.transaction() as writer:
        writer.cursor.executemany(
            "INSERT INTO edge_traversals (run_id, upstream_label, downstream_label, "
            "traversed_at) VALUES (?, ?, ?, ?)",
            [("r", "ghost", "a", 1.0), ("bare", "x", "y", 2.0)],
        )
    recent = {run.run_id: run for run in prov.get_recent_runs(5)}
    for run in (prov.inspect_run("r"), recent["r"]):
        assert run is not None and list(run.nodes) == ["a"]
        assert [e.downstream_label for e in run.nodes["a"].edges] == ["b"]
    for run in (prov.inspect_run("bare"), recent["bare"]):
        assert run is not None and run.nodes == {}
    if isinstance(prov.store, dagtrace.SqliteStore):
        from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance

        theirs = LythonicProvenance(prov.store.path)
        assert [r.model_dump() for r in theirs.get_recent_runs(5)] == [
            r.model_dump() for r in prov.get_recent_runs(5)
        ]
