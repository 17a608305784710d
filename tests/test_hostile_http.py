"""`dagtrace serve` and its clients against hostile clients and accidents (issue 13):
auth left off, slow and greedy connections, bodies past the memory budget, a -shm
file truncated underneath, gzip members and junk, ids that are not path-safe,
errors repeating input, dropped connections, /readyz when writes fail, --read-only.

Real processes and sockets throughout; timeouts are set short (≤ 2 s) and waited
for on the socket, never with a sleep."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

import httpx
import pytest
from otlp_helpers import json_request, protobuf_request
from test_serve import PB, _metric, _wait_until, recorded_spans, serve_process, serving

import dagtrace

SERVE = [sys.executable, "-m", "dagtrace", "serve", "--port", "0", "--decoders", "0"]
MiB = 1024 * 1024


def _refused(
    db: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`dagtrace serve` expected to refuse to start: its finished process."""
    return subprocess.run(
        [*SERVE, "--db", str(db), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
    )


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def _connect(url: str) -> socket.socket:
    sock = socket.create_connection(_host_port(url), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (the wait is on the
    socket; `timeout` is only the test's bound)."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


# -- auth off by accident ------------------------------------------------------------------


def test_an_empty_token_is_refused_not_taken_as_none(db_path: Path) -> None:
    for args, env in (
        (["--token", ""], None),  # `--token "$DAGTRACE_TOKEN"` with the variable unset
        ([], {"DAGTRACE_TOKEN": ""}),
    ):
        proc = _refused(db_path, *args, env=env)
        assert proc.returncode == 2, proc.stdout
        assert "empty" in proc.stderr
    assert not db_path.exists()  # refused before opening anything


def test_a_non_loopback_bind_needs_a_token_or_an_explicit_flag(db_path: Path) -> None:
    for host in ("0.0.0.0", "::"):
        proc = _refused(db_path, "--host", host)
        assert proc.returncode == 2
        assert "--insecure-no-token" in proc.stderr
    with serve_process(db_path, "--host", "0.0.0.0", "--insecure-no-token", "--decoders", "0") as (
        _,
        url,
    ):
        assert httpx.get(f"{url}/api/v1/runs").status_code == 200


def test_clients_take_an_empty_token_as_none(db_path: Path) -> None:
    with serving(db_path, "--token", "s3cret", "--decoders", "0") as url:
        with dagtrace.RemoteProvenance(url, token="") as remote:
            with pytest.raises(dagtrace.StoreError, match="wants a bearer token"):
                remote.stats()
        cli = [sys.executable, "-m", "dagtrace", "stats", "--db", url]
        done = subprocess.run([*cli, "--token", ""], capture_output=True, text=True, timeout=30)
        assert done.returncode == 4 and "bearer token" in done.stderr
        done = subprocess.run([*cli, "--token", "s3cret"], capture_output=True, text=True)
        assert done.returncode == 0 and "dag_runs" in done.stdout


def test_a_non_ascii_token_is_refused_with_a_clear_message_on_both_sides(
    db_path: Path,
) -> None:
    proc = _refused(db_path, "--token", "pässwörd")
    assert proc.returncode == 2
    assert "visible ASCII" in proc.stderr
    with pytest.raises(ValueError, match="visible ASCII"):
        dagtrace.RemoteProvenance("http://127.0.0.1:1", token="pässwörd")


def test_the_api_docs_need_the_token_too(db_path: Path) -> None:
    with serving(db_path, "--token", "s3cret", "--decoders", "0") as url:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
            right = {"Authorization": "Bearer s3cret"}
            assert httpx.get(f"{url}{path}", headers=right).status_code == 200, path
        schema = httpx.get(f"{url}/openapi.json", headers=right).json()
        assert "/api/v1/runs/{run_id}" in schema["paths"]


# -- slow and greedy clients -----------------------------------------------------------------

QUICK = ("--header-timeout", "1", "--body-timeout", "1.5")


def test_slow_headers_and_bodies_are_cut_off_at_their_deadlines(db_path: Path) -> None:
    with serving(db_path, *QUICK, "--decoders", "0") as url:
        idle = _connect(url)  # sends nothing
        partial = _connect(url)
        partial.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        trickle = _connect(url)  # a byte at a time, each well within the deadline
        slow_body = _connect(url)
        slow_body.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x00" * 10
        )
        started = time.monotonic()
        trickle.settimeout(0.2)
        sent = b""
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
            try:
                trickle.sendall(bytes([byte]))
                sent += bytes([byte])
                trickle.recv(1024)  # 408, or b"" (closed): the server gave up on it
                break
            except TimeoutError:
                continue  # nothing from the server yet: keep trickling
            except OSError:
                break  # reset after its close
        trickle_lasted = time.monotonic() - started
        assert trickle_lasted < 4.0 and len(sent) < 100, "a trickled request was not cut off"
        assert _until_closed(idle) == b""
        assert _until_closed(partial).startswith(b"HTTP/1.1 408")
        assert _until_closed(slow_body).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 5.0
        for sock in (idle, partial, trickle, slow_body):
            sock.close()
        assert _metric(url, 'dagtrace_connections_closed_total{reason="header_timeout"}') >= 3
        assert _metric(url, 'dagtrace_connections_closed_total{reason="body_timeout"}') == 1
        # a request sent at an ordinary pace is untouched
        body = protobuf_request(recorded_spans())
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 200


def test_endless_headers_get_431(db_path: Path) -> None:
    with serving(db_path, "--decoders", "0") as url:
        sock = _connect(url)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(20):
                sock.sendall(b"X-Filler: " + b"z" * 8190 + b"\r\n")
        except OSError:
            pass  # closed by the server while sending: it answered first
        assert _until_closed(sock).startswith(b"HTTP/1.1 431")
        sock.close()


def test_idle_connections_past_the_limit_make_room_for_new_clients(db_path: Path) -> None:
    with serving(db_path, "--max-connections", "4", "--header-timeout", "30") as url:
        with ExitStack() as stack:
            idle = [stack.enter_context(_connect(url)) for _ in range(4)]
            # a fifth client is served: the connection idle longest makes room
            assert httpx.get(f"{url}/healthz").status_code == 200
            assert _until_closed(idle[0]) == b""
            # every connection in the middle of a request (the server asked for the
            # body: 100 Continue): a new one gets 503
            busy = [stack.enter_context(_connect(url)) for _ in range(4)]
            for sock in busy:
                sock.sendall(
                    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                    b"Content-Type: application/x-protobuf\r\nExpect: 100-continue\r\n\r\n"
                )
                assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
            refused = _connect(url)  # answered as soon as it is accepted
            assert _until_closed(refused).startswith(b"HTTP/1.1 503")
            refused.close()
        closed = 'dagtrace_connections_closed_total{reason="%s"}'
        assert _metric(url, closed % "idle_evicted") >= 4 and _metric(url, closed % "refused") == 1


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_more_idle_connections_than_file_descriptors_lock_no_one_out(db_path: Path) -> None:
    """With 128 file descriptors, 150 idle connections: the default --max-connections
    (half the limit) keeps the server accepting."""
    prefix = ("prlimit", "--nofile=128:128")
    with serve_process(db_path, "--decoders", "0", "--header-timeout", "60", prefix=prefix) as (
        _,
        url,
    ):
        with ExitStack() as stack:
            for _ in range(150):
                stack.enter_context(_connect(url))
            answer = httpx.get(f"{url}/healthz", timeout=5)
            assert answer.status_code == 200
            assert _metric(url, "dagtrace_connections_open") <= 64


# -- memory: the body budget -----------------------------------------------------------------


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _queues(port: int) -> list[tuple[int, int, int]]:
    """(local port, tx queue, rx queue) of the loopback TCP sockets to or from `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (
                int(fields[1].rsplit(":", 1)[1], 16),
                int(fields[2].rsplit(":", 1)[1], 16),
            )
            if port in (local, remote) and fields[3] == "01":  # ESTABLISHED
                tx, rx = (int(n, 16) for n in fields[4].split(":"))
                found.append((local, tx, rx))
    return found


def _all_read(port: int) -> bool:
    """Every byte the clients sent is in the server process: sent (no client socket has
    any to send) and read (no server socket has any waiting). Answers may wait unread
    in the clients' sockets."""
    return all((rx if local == port else tx) == 0 for local, tx, rx in _queues(port))


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)")
def test_bodies_past_the_budget_are_refused_before_they_are_held(db_path: Path) -> None:
    """16 clients each send 4 MiB but the last byte, with a Content-Length, then 16
    more without one (chunked). Budget 8 MiB: the server process grows by at most
    the budget plus 8 MiB (tolerance: allocator rounding, 16 × 64 KiB of uvicorn
    buffers, the interpreter's own growth; measured 8–10.5 MiB), and once they are
    gone no body is held and it stays within that bound. Before the budget, all 64 MiB
    were held."""
    budget, body_size, clients = 8 * MiB, 4 * MiB, 16
    tolerance = 8 * MiB
    args = ("--max-body", str(body_size), "--body-budget", str(budget), "--decoders", "0")
    with serve_process(db_path, *args) as (proc, url):
        port = _host_port(url)[1]
        warm = protobuf_request(recorded_spans())
        assert httpx.post(f"{url}/v1/traces", content=warm, headers=PB).status_code == 200
        start = _rss(proc.pid)
        for chunked in (False, True):
            baseline = _rss(proc.pid)
            with ExitStack() as stack:
                socks = [stack.enter_context(_connect(url)) for _ in range(clients)]
                length = (
                    b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % body_size
                )
                for sock in socks:
                    sock.sendall(
                        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/x-protobuf\r\n" + length + b"\r\n\r\n"
                    )
                for sock in socks:
                    sock.settimeout(10)
                    piece = b"\x00" * (MiB - 1)
                    for _ in range(4):
                        try:
                            sock.sendall(
                                b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                            )
                        except OSError:
                            break  # answered 429 and closed: fine
                _wait_until(lambda: _all_read(port), timeout=30)
                grown = _rss(proc.pid) - baseline
                held = _metric(url, "dagtrace_body_bytes_held")
                assert held <= budget
                assert grown <= budget + tolerance, f"grew {grown / MiB:.1f} MiB"
            _wait_until(lambda: _metric(url, "dagtrace_body_bytes_held") == 0)
        assert _metric(url, 'dagtrace_requests_total{code="429"}') >= clients
        # No body is held any more (the gauge is back to 0, above); what the allocator
        # keeps of their memory varies (seen 1.5-2.8 MiB with this test alone, 6.9-9.1
        # MiB after the rest of this file): it stays within the bound.
        after = _rss(proc.pid) - start
        assert after <= budget + tolerance, f"kept {after / MiB:.1f} MiB"
        assert httpx.post(f"{url}/v1/traces", content=warm, headers=PB).status_code == 200


# -- the store's -shm file truncated underneath ----------------------------------------------


def _checkpointed(db: Path) -> bool:
    """The WAL index says every frame is copied into the database file: the background
    checkpoint that follows a commit is over (mxFrame of the index header, nBackfill of
    the checkpoint info, native byte order)."""
    head = Path(f"{db}-shm").read_bytes()[:100]
    return int.from_bytes(head[16:20], sys.byteorder) == int.from_bytes(head[96:100], sys.byteorder)


@pytest.mark.parametrize("decoders", ["1", "0"], ids=["worker", "server-thread"])
def test_a_truncated_shm_file_is_answered_503_not_sigbus(db_path: Path, decoders: str) -> None:
    """Truncated while serve is idle. (During the milliseconds of a checkpoint or a
    write it still dies of SIGBUS: the documented limit.)"""
    body = protobuf_request(recorded_spans())
    with serve_process(db_path, "--decoders", decoders) as (proc, url):
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 200
        _wait_until(lambda: _checkpointed(db_path))
        os.truncate(f"{db_path}-shm", 0)
        refused = httpx.post(f"{url}/v1/traces", content=body, headers=PB, timeout=30)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert httpx.get(f"{url}/api/v1/runs").status_code == 503
        assert proc.poll() is None
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # closing did not touch the mapping either


# -- gzip ----------------------------------------------------------------------------------


def test_every_gzip_member_is_decoded_and_junk_after_them_refused(db_path: Path) -> None:
    first = protobuf_request(recorded_spans(run_id="first"))
    second = protobuf_request(recorded_spans(run_id="second"))
    gz = {**PB, "Content-Encoding": "gzip"}
    with serving(db_path, "--decoders", "0") as url:
        remote = dagtrace.RemoteProvenance(url)
        two = gzip.compress(first) + gzip.compress(second)
        assert httpx.post(f"{url}/v1/traces", content=two, headers=gz).status_code == 200
        assert remote.get_run("first") is not None and remote.get_run("second") is not None
        third = protobuf_request(recorded_spans(run_id="third"))
        for junk in (b"junk", b"\x00\x00\x00\x00", b"\x1f"):
            answer = httpx.post(f"{url}/v1/traces", content=gzip.compress(third) + junk, headers=gz)
            assert answer.status_code == 400, junk
        assert remote.get_run("third") is None
        remote.close()


# -- ids and labels that are not path-safe -----------------------------------------------------

AWKWARD = ["a/b", "q?x=1", "h#1", "..", ".", "../stats", "%2F", "a b", "é/ü", "active", "summary"]
AWKWARD.append("")  # empty: stored by the drop-in, so readable too


def test_every_stored_id_and_label_reads_back_over_http(db_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    for run_id in AWKWARD:
        prov.create_run(run_id, "ns", {"x": 1})
        for label in AWKWARD:
            prov.record_node_start(run_id, label, "{}")
            prov.complete_node_with_edges(run_id, label, json.dumps([run_id, label]), [])
        prov.finish_run(run_id, "completed", None)
    prov.create_run("child/1", "ns", {}, parent_run_id="a/b")
    prov.close()
    with serving(db_path, "--decoders", "0") as url:
        with dagtrace.RemoteProvenance(url) as remote:
            for run_id in AWKWARD:
                run = remote.get_run(run_id)
                assert run is not None and run["run_id"] == run_id, run_id
                assert remote.get_run_details(run_id) is not None
                tree = remote.inspect_run(run_id)
                assert tree is not None and set(tree.nodes) == set(AWKWARD), run_id
                assert {n["node_label"] for n in remote.get_node_executions(run_id)} == set(AWKWARD)
                assert remote.get_pending_nodes(run_id) == []
                assert remote.get_edge_traversals(run_id) == []
                for label in AWKWARD:
                    assert remote.get_node_output(run_id, label) == json.dumps([run_id, label])
            assert [r.run_id for r in remote.get_child_runs("a/b")] == ["child/1"]
            assert remote.get_run("b") is None and remote.get_node_output("a/b", "b") is None
        assert httpx.get(f"{url}/api/v1/runs/a%2Fb").json()["run_id"] == "a/b"


# -- errors never repeat input -------------------------------------------------------------


def test_error_answers_repeat_no_input(db_path: Path) -> None:
    spans = recorded_spans()
    secret = "secret-token-value"
    with serving(db_path, "--decoders", "0") as url:
        for field_path, value in (
            ("attributes", {"key": "http.auth", "value": {"intValue": secret}}),
            ("startTimeUnixNano", secret * 60_000),  # about 1 MB
        ):
            body = json.loads(json_request(spans))
            span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
            if field_path == "attributes":
                span["attributes"].append(value)
            else:
                span[field_path] = value
            answer = httpx.post(
                f"{url}/v1/traces",
                content=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code in (200, 400), answer.status_code
            assert secret not in answer.text and len(answer.content) < 1000, answer.text[:300]
        invalid = httpx.get(f"{url}/api/v1/runs", params={"limit": secret})
        assert invalid.status_code == 422
        assert secret not in invalid.text
        assert invalid.json()["detail"][0]["loc"] == ["query", "limit"]


# -- a client gone mid-body ------------------------------------------------------------------


def test_a_client_gone_mid_body_is_one_log_line_not_a_traceback(db_path: Path) -> None:
    with serve_process(db_path, "--decoders", "0") as (proc, url):
        sock = _connect(url)
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\x00" * 1000
        )
        sock.close()
        assert httpx.get(f"{url}/healthz").status_code == 200
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        log = proc.stderr.read()
    assert "Traceback" not in log and "ERROR" not in log, log
    gone = [line for line in log.splitlines() if "went away" in line]
    assert len(gone) == 1 and " INFO " in gone[0], log


# -- /readyz, unwritable files, --read-only --------------------------------------------------


def _fail_writes(db: Path, *tables: str) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for table in tables:
            for op in ("INSERT", "UPDATE"):
                conn.execute(
                    f"CREATE TRIGGER fail_{op}_{table} BEFORE {op} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'writes refused by the test'); END"
                )


def _allow_writes(db: Path) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for (name,) in names:
            conn.execute(f"DROP TRIGGER {name}")


def _ready(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=30).status_code


def test_readyz_follows_the_latest_write_and_probes_when_idle(db_path: Path) -> None:
    body = protobuf_request(recorded_spans())
    args = ("--decoders", "0", "--readiness-probe-interval", "0.2")
    with serving(db_path, *args) as url:
        assert _ready(url) == 200
        _fail_writes(db_path, "dagtrace_meta")  # only the probe can notice: no request comes
        _wait_until(lambda: _ready(url) == 503)
        _allow_writes(db_path)
        _wait_until(lambda: _ready(url) == 200)
        _fail_writes(db_path, "dag_runs", "dagtrace_meta")
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 503
        assert _ready(url) == 503  # the latest write failed
        _allow_writes(db_path)
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 200
        assert _ready(url) == 200  # and now one succeeded


@contextmanager
def _unwritable(tmp_path: Path) -> Iterator[Path]:
    """A store file this process cannot write: on a read-only mount as root (who may
    write any file), else a read-only file in a read-only directory."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        db = folder / "runs.db"
        dagtrace.DagProvenance(db).close()
        db.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield db
        finally:
            folder.chmod(0o755)
        return
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        db = mount / "runs.db"
        dagtrace.DagProvenance(db).close()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield db
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_serve_refuses_a_sqlite_file_it_cannot_write_unless_read_only(tmp_path: Path) -> None:
    with _unwritable(tmp_path) as db:
        proc = _refused(db)
        err = proc.stderr
        assert proc.returncode == 4, err
        assert f"cannot write {db}" in err and "--read-only" in err


def test_read_only_serves_queries_and_neither_migrates_nor_ingests(db_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("r", "ns", {})
    prov.close()
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:  # an older dagtrace's
        conn.execute("UPDATE dagtrace_meta SET value = '3' WHERE key = 'schema_version'")
    before = db_path.read_bytes()
    with serving(db_path, "--read-only") as url:
        assert httpx.get(f"{url}/api/v1/runs/r").json()["run_id"] == "r"
        body = protobuf_request(recorded_spans())
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 404
        assert _ready(url) == 200
    assert db_path.read_bytes() == before
    with closing(sqlite3.connect(db_path)) as conn:
        version = conn.execute("SELECT value FROM dagtrace_meta WHERE key = 'schema_version'")
        assert version.fetchone() == ("3",)
