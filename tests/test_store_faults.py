"""The store failing under a running program or server: a deleted or replaced SQLite
file, a full disk, a read-only PostgreSQL role, a server killed mid-ingest."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from otlp_helpers import protobuf_request
from test_serve import recorded_spans, serving
from traced_pipeline import run_pipeline

import dagtrace
from dagtrace import LiveSpanProcessor

PB = {"Content-Type": "application/x-protobuf"}


def post(url: str, run_id: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/traces",
        content=protobuf_request(recorded_spans(run_id=run_id)),
        headers=PB,
        timeout=60,
    )


def test_deleted_file_is_refused_until_restored_and_restarted(
    db_path: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.db"
    with serving(db_path) as url:
        assert post(url, "before").status_code == 200
        with sqlite3.connect(db_path) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)  # an online backup, as docs/storage.md says
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        refused = post(url, "while-deleted")
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert not db_path.exists()  # nothing was written into a fresh file behind our back
        shutil.copy(backup, db_path)  # the operator restores it...
        assert post(url, "still-refused").status_code == 503  # ...and must restart serve
    with serving(db_path) as url:
        assert post(url, "while-deleted").status_code == 200  # the client's retry
        with dagtrace.RemoteProvenance(url) as remote:
            assert remote.get_run("before") is not None
            assert remote.get_run("while-deleted") is not None
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_store_that_only_read_so_far_refuses_a_deleted_file(db_path: Path) -> None:
    """An existing, current file is opened without a write (no migration needed): its
    first read already pins the file, so a deletion is refused, not read stale, and no
    empty file is made at the path."""
    dagtrace.DagProvenance(db_path).close()
    prov = dagtrace.DagProvenance(db_path)
    assert prov.get_recent_runs() == []
    db_path.unlink()  # the database file alone: its -shm stays as it was
    with pytest.raises(dagtrace.StoreError, match="database file was deleted"):
        prov.get_recent_runs()
    with pytest.raises(dagtrace.StoreError, match="database file was deleted"):
        prov.create_run("r", "ns", {})
    assert not db_path.exists()
    prov.close()


def test_live_processor_keeps_the_program_running_when_the_file_is_deleted(
    db_path: Path,
) -> None:
    provider = dagtrace.configure(db_path)
    processor = cast(LiveSpanProcessor, provider._active_span_processor._span_processors[0])
    tracer = dagtrace.DagTracer(provider)
    run_pipeline(tracer, run_id="one")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    run_pipeline(tracer, run_id="two")  # must not raise
    assert processor.stats.store_failures > 0
    provider.shutdown()  # nor here
    assert not db_path.exists()


def test_replaced_file_is_never_mixed_with_ours(db_path: Path, tmp_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("old", "ns", {})
    other = tmp_path / "other.db"
    with dagtrace.DagProvenance(other) as restored:
        restored.create_run("restored", "ns", {})
    os.replace(other, db_path)  # e.g. a restore from backup, moved into place
    with pytest.raises(dagtrace.StoreError, match=r"replaced by another file.*restart"):
        prov.create_run("new", "ns", {})
    with pytest.raises(dagtrace.StoreError, match="replaced"):
        prov.get_run("old")
    prov.close()  # the process stops; then, as docs/storage.md says for a restore, the
    for suffix in ("-wal", "-shm"):  # old WAL files go with the old database
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    with dagtrace.DagProvenance(db_path) as after_restart:
        assert after_restart.get_run("restored") is not None
        assert after_restart.get_run("old") is None and after_restart.get_run("new") is None


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, small file system (tmpfs): filling it is a real disk-full error."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the disk-full test: {done.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs needs root: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_bytes: int) -> Path:
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as out:
        out.write(b"\0" * max(free - leave_bytes, 0))
    return filler


def test_disk_full_answers_503_and_recovers(tiny_disk: Path) -> None:
    db = tiny_disk / "serve.db"
    with serving(db) as url:
        assert post(url, "fits").status_code == 200
        filler = _fill(tiny_disk, 4096)
        answers = {f"full-{i}": [post(url, f"full-{i}").status_code] for i in range(5)}
        assert 503 in [codes[0] for codes in answers.values()]
        for i in range(2):  # a sender retries while the disk is still full
            answers[f"full-{i}"].append(post(url, f"full-{i}").status_code)
        assert {code for codes in answers.values() for code in codes} <= {200, 503}
        filler.unlink()  # the fault clears
        assert post(url, "after").status_code == 200
        with dagtrace.RemoteProvenance(url) as remote:
            assert remote.get_run("fits") is not None and remote.get_run("after") is not None
            for run_id, codes in answers.items():  # stored if and only if a try said 200
                assert (remote.get_run(run_id) is not None) == (200 in codes), (run_id, codes)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_disk_full_never_raises_into_the_traced_program(tiny_disk: Path) -> None:
    db = tiny_disk / "live.db"
    provider = dagtrace.configure(db)
    processor = cast(LiveSpanProcessor, provider._active_span_processor._span_processors[0])
    tracer = dagtrace.DagTracer(provider)
    run_pipeline(tracer, run_id="fits")
    filler = _fill(tiny_disk, 4096)
    for i in range(5):
        run_pipeline(tracer, run_id=f"full-{i}")  # must not raise
    assert processor.stats.store_failures > 0
    filler.unlink()
    run_pipeline(tracer, run_id="after")
    provider.shutdown()
    prov = dagtrace.DagProvenance(db)
    assert all(prov.get_run(r) is not None for r in ("fits", "after", "full-4"))


def test_read_only_postgres_role_answers_503_then_recovers(
    pg_schema_url: Callable[[], str],
) -> None:
    import psycopg
    from conftest import PG_BASE_URL

    url = pg_schema_url()
    dagtrace.DagProvenance(url).close()  # the schema exists
    schema = url.rsplit("search_path%3D", 1)[1]
    role = f"dagtrace_ro_{uuid.uuid4().hex[:8]}"
    assert PG_BASE_URL is not None
    with psycopg.connect(PG_BASE_URL, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    role_url = url.replace("postgres@", f"{role}@", 1)
    try:
        with serving(role_url) as server:  # starts: the schema is current, nothing to create
            refused = post(server, "ro")
            assert refused.status_code == 503
            assert "permission" not in refused.text  # no driver internals to the client
            with psycopg.connect(PG_BASE_URL, autocommit=True) as admin:
                admin.execute(
                    f"GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
                )
            assert post(server, "rw").status_code == 200
            with dagtrace.RemoteProvenance(server) as remote:
                assert remote.get_run("rw") is not None and remote.get_run("ro") is None
    finally:
        with psycopg.connect(PG_BASE_URL, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_server_killed_mid_ingest_loses_and_duplicates_nothing(db_path: Path) -> None:
    """Senders retry until acknowledged; the server is SIGKILLed and restarted on the
    same port. Every acknowledged run is there, exactly once."""
    acked: list[str] = []
    lock = threading.Lock()
    half = threading.Event()
    stop = threading.Event()
    bodies = {
        f"k{n}-{i}": protobuf_request(recorded_spans(run_id=f"k{n}-{i}"))
        for n in range(3)
        for i in range(15)
    }

    def sender(n: int, url: str) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(15):
                run_id = f"k{n}-{i}"
                while not stop.is_set():
                    try:
                        if (
                            client.post(
                                f"{url}/v1/traces", content=bodies[run_id], headers=PB
                            ).status_code
                            == 200
                        ):
                            break
                    except httpx.HTTPError:
                        pass
                    stop.wait(0.05)  # the retry backoff of an OTLP client
                with lock:
                    acked.append(run_id)
                    if len(acked) == 20:
                        half.set()

    proc = subprocess.Popen(
        [sys.executable, "-m", "dagtrace", "serve", "--db", str(db_path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split("listening on ")[1].split()[0]
    threads = [threading.Thread(target=sender, args=(n, url)) for n in range(3)]
    for t in threads:
        t.start()
    assert half.wait(60)
    proc.send_signal(signal.SIGKILL)  # mid-ingest
    proc.wait()
    proc.stdout.close()
    port = url.rsplit(":", 1)[1]
    restarted = subprocess.Popen(
        [sys.executable, "-m", "dagtrace", "serve", "--db", str(db_path), "--port", port],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert restarted.stdout is not None
    assert "listening on" in restarted.stdout.readline()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    restarted.terminate()
    restarted.wait()
    restarted.stdout.close()
    assert sorted(acked) == sorted(bodies)
    prov = dagtrace.DagProvenance(db_path, read_only=True)
    assert all(prov.get_run(r)["status"] == "completed" for r in acked)
    assert prov.store.table_counts() == {
        "dag_runs": 45 * 7,
        "node_executions": 45 * 12,
        "edge_traversals": 45 * 5,
    }


def test_a_role_without_temporary_tables_still_writes_big_batches(tmp_path: Path) -> None:
    """Where TEMPORARY is revoked (a hardened database), the PostgreSQL store writes a
    receiver's big batches whose keys are stored row by row instead of staging them
    (new keys are copied, as anywhere): the same rows."""
    import psycopg
    from conftest import _postgres_or_skip
    from test_bridge import node_row, store_rows

    from dagtrace.store.rows import Rows

    base = _postgres_or_skip()
    name = f"dagtrace_notemp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"CREATE DATABASE {name} OWNER {name}")
        admin.execute(f"REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC, {name}")
    role_url = base.replace("postgres@", f"{name}@", 1).rsplit("/", 1)[0] + f"/{name}"
    nodes = [node_row(f"n{i % 7}", f'"{i}"', 1 + i % 3, 1) for i in range(60)]
    edges = [("r", f"n{i % 7}", f"m{i % 5}", float(i)) for i in range(60)]
    newer = [node_row(f"n{i % 9}", f'"{i}"', 2 + i % 3, 1) for i in range(60)]
    later = [("r", f"n{i % 9}", f"m{i % 5}", float(i + 30)) for i in range(60)]
    batches = [Rows(nodes=nodes, edges=edges), Rows(nodes=newer, edges=later)]
    try:
        for location in (role_url, tmp_path / "reference.db"):
            store = dagtrace.open_store(location)
            for rows in batches:  # the second holds stored keys and new ones
                store.write_rows(Rows(nodes=list(rows.nodes), edges=list(rows.edges)))
            store.close()
        assert store_rows(role_url) == store_rows(str(tmp_path / "reference.db"))
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {name}")
