"""Threads and processes writing one file at once: no 'database is locked', no lost write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import dagtrace


def _write_runs(prov: dagtrace.DagProvenance, prefix: str, count: int) -> None:
    for i in range(count):
        run_id = f"{prefix}-{i}"
        prov.create_run(run_id, "ns", {"i": i})
        prov.record_node_start(run_id, "a", "{}", is_source=True)
        prov.complete_node_with_edges(run_id, "a", str(i), [("a", "b")])
        prov.record_node_start(run_id, "b", str(i), is_sink=True)
        prov.complete_node_with_edges(run_id, "b", str(i), [])
        prov.finish_run(run_id, "completed", str(i))


def test_forked_processes_share_one_store_without_losing_writes(store_url: str) -> None:
    prov = dagtrace.DagProvenance(store_url)
    prov.create_run("parent", "ns", {})  # the parent has open connections before forking
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_runs, args=(prov, f"p{n}", 200)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert prov.store.table_counts() == {
        "dag_runs": 801,
        "node_executions": 1600,
        "edge_traversals": 800,
    }
    assert prov.get_run("p3-199")["status"] == "completed"
    assert len(prov.get_recent_runs(limit=1000, status="completed")) == 800


def test_threads_share_one_store_without_losing_writes(store_url: str) -> None:
    prov = dagtrace.DagProvenance(store_url)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            _write_runs(prov, f"t{n}", 100)
            assert prov.get_run(f"t{n}-99") is not None  # a read after a write sees it
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert prov.store.table_counts() == {
        "dag_runs": 800,
        "node_executions": 1600,
        "edge_traversals": 800,
    }


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, dagtrace
    prov = dagtrace.DagProvenance(sys.argv[1])
    prov.create_run("r", "ns", {})
    i = 0
    while True:
        prov.record_node_start("r", f"n{i}", "{}")
        prov.complete_node_with_edges("r", f"n{i}", str(i), [(f"n{i}", f"n{i + 1}")])
        print(i, flush=True)
        i += 1
    """
)


def test_sigkill_loses_no_committed_write(db_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = -1
    for line in proc.stdout:  # kill once 300 nodes are acknowledged, mid-write of the next
        acknowledged = int(line)
        if acknowledged == 299:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    proc.stdout.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    prov = dagtrace.DagProvenance(db_path)
    nodes = {n["node_label"]: n for n in prov.get_node_executions("r")}
    for i in range(acknowledged + 1):
        assert nodes[f"n{i}"]["status"] == "completed"
        assert nodes[f"n{i}"]["output_json"] == str(i)
    assert len(prov.get_edge_traversals("r")) >= acknowledged + 1


def test_commits_reach_the_database_file_in_the_background(db_path: Path) -> None:
    """Checkpoints run on a background thread (not inside a traced program's commit),
    and they do run: the WAL is copied into the database file soon after commits
    stop, without another write or a close."""
    import time

    prov = dagtrace.DagProvenance(db_path)
    _write_runs(prov, "ck", 50)  # 300 commits: far below the inline safety checkpoint

    def runs_in_main_file() -> int:
        """Rows a reader of the main file alone sees (a copy without its WAL)."""
        copy = db_path.with_name("main-only.db")
        copy.write_bytes(db_path.read_bytes())
        conn = sqlite3.connect(copy)
        try:
            return int(conn.execute("SELECT count(*) FROM dag_runs").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # not even the schema is in the main file yet
        finally:
            conn.close()
            copy.unlink()

    deadline = time.monotonic() + 10
    while runs_in_main_file() < 50:  # polled: no event crosses into SQLite's file
        assert time.monotonic() < deadline, "commits never checkpointed into the file"
        time.sleep(0.02)
    prov.close()


def test_a_steady_stream_of_batches_keeps_the_wal_small(tmp_path: Path) -> None:
    """serve's store (batched writes) under requests that never pause: the background
    checkpoint always trails the writer, so SQLite's own checkpoint keeps the WAL near
    1,000 pages and rewritten in place, instead of growing by all that was written."""
    store = dagtrace.SqliteStore(tmp_path / "serve.db", batched_writes=True)
    payload = '"' + "x" * 2000 + '"'
    largest = 0
    for batch in range(120):  # ~24 MB of nodes, ~200 KB a transaction
        with store.transaction() as writer:
            for i in range(100):
                writer.start_node("r", f"n{batch}-{i}", payload, False, False)
        largest = max(largest, os.path.getsize(tmp_path / "serve.db-wal"))
    store.close()
    assert largest < 12 * 2**20, f"the WAL grew to {largest / 2**20:.1f} MiB"


def _write_through(store: dagtrace.Store, run_id: str) -> None:
    with store.transaction() as writer:
        writer.insert_run(run_id, "ns", '{"from": "spawned"}', None, None)


def test_a_store_sent_to_a_spawned_process_writes_the_same_store(store_url: str) -> None:
    """Pickled (as for a process pool), a store reopens there with its own connections."""
    prov = dagtrace.DagProvenance(store_url)
    prov.create_run("here", "ns", {})
    proc = multiprocessing.get_context("spawn").Process(
        target=_write_through, args=(prov.store, "there")
    )
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert {r.run_id for r in prov.get_recent_runs(10)} == {"here", "there"}
    assert prov.get_run("there")["source_inputs_json"] == '{"from": "spawned"}'


def test_opening_waits_while_another_process_writes_a_rollback_journal_file(
    tmp_path: Path, caplog: Any
) -> None:
    """A lythonic file (rollback journal) being written elsewhere cannot switch to WAL
    yet, and SQLite says 'database is locked' at once, without its busy handler (as
    to processes racing to switch a new file): dagtrace waits its turn, not fails."""
    import logging

    path = tmp_path / "lythonic.db"
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("CREATE TABLE t (a)")
    reader.execute("BEGIN IMMEDIATE")  # lythonic mid-write: switching to WAL must wait
    waiting = threading.Event()

    class _Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "switch" in record.getMessage():
                waiting.set()

    handler = _Seen(level=logging.DEBUG)
    logging.getLogger("dagtrace").addHandler(handler)
    logging.getLogger("dagtrace").setLevel(logging.DEBUG)
    opened: list[Any] = []

    def open_it() -> None:
        try:
            opened.append(dagtrace.DagProvenance(path))
        finally:
            waiting.set()  # opened or failed: either way, no more waiting to see

    opener = threading.Thread(target=open_it)
    try:
        opener.start()
        assert waiting.wait(30), "the opener neither waited nor opened"
        reader.execute("COMMIT")  # the writer is done
        opener.join(timeout=30)
    finally:
        logging.getLogger("dagtrace").removeHandler(handler)
        logging.getLogger("dagtrace").setLevel(logging.NOTSET)
        reader.close()
    assert opened, "opening failed instead of waiting"
    opened[0].create_run("r", "ns", {})
    assert opened[0].get_run("r") is not None
    opened[0].close()
