"""`dagtrace serve` as a real process: OTLP in (protobuf, JSON, gzip), query API out."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import receiver_process
from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_helpers import json_request, protobuf_request
from traced_pipeline import run_pipeline

import dagtrace
from dagtrace import conventions as c

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


@contextmanager
def serve_process(
    db: str | Path, *args: str, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`dagtrace serve` on a free port (run through `prefix`, e.g. taskset); yields the
    process and its URL once it printed its ready line; stops it if still running."""
    serve = [sys.executable, "-m", "dagtrace", "serve", "--db", str(db), "--port", "0"]
    proc = subprocess.Popen(
        [*prefix, *serve, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    try:
        assert "listening on" in line, proc.stderr.read()
        yield proc, line.split("listening on ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


@contextmanager
def serving(db: str | Path, *args: str) -> Iterator[str]:
    """`dagtrace serve` on a free port; yields its URL once it printed its ready line."""
    with serve_process(db, *args) as (_, url):
        yield url


_OPEN: list[dagtrace.RemoteProvenance] = []


def open_remote(url: str, token: str | None = None) -> dagtrace.RemoteProvenance:
    remote = dagtrace.RemoteProvenance(url, token=token)
    _OPEN.append(remote)
    return remote


@pytest.fixture(autouse=True)
def _close_remotes() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def server(db_path: Path) -> Iterator[str]:
    with serving(db_path) as url:
        yield url


def recorded_spans(**kwargs: Any) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    run_pipeline(dagtrace.DagTracer(provider), **kwargs)
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_official_exporter_with_gzip_then_query_api_and_remote_provenance(
    server: str, db_path: Path
) -> None:
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{server}/v1/traces", compression=Compression.Gzip)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_pipeline(dagtrace.DagTracer(provider), fail_publish=True)
    provider.shutdown()

    remote = open_remote(server)
    local = dagtrace.DagProvenance(db_path, read_only=True)
    assert remote.get_run("run-1") == local.get_run("run-1")
    assert remote.get_run("run-1")["status"] == "failed"
    assert remote.get_pending_nodes("run-1") == ["publish"]
    assert remote.get_node_executions("run-1") == local.get_node_executions("run-1")
    assert remote.get_edge_traversals("run-1") == local.get_edge_traversals("run-1")
    assert remote.inspect_run("run-1") == local.inspect_run("run-1")
    assert [r.model_dump() for r in remote.get_child_runs("run-1")] == [
        r.model_dump() for r in local.get_child_runs("run-1")
    ]
    assert [r.run_id for r in remote.get_recent_runs(100)] == [
        r.run_id for r in local.get_recent_runs(100)
    ]
    assert remote.get_node_output("run-1", "load") == local.get_node_output("run-1", "load")
    assert remote.get_node_output("run-1", "publish") is None
    assert remote.get_run("nope") is None and remote.inspect_run("nope") is None
    run = remote.inspect_run("run-1")
    assert run is not None
    remote.load_io(run, ["load"])
    assert run.nodes["load"].io is not None and run.nodes["shout"].io is None
    top = httpx.get(f"{server}/api/v1/runs").json()
    assert [r["run_id"] for r in top] == ["run-1"]  # top-level only unless all=true
    assert "/api/v1/runs/{run_id}" in httpx.get(f"{server}/openapi.json").json()["paths"]


def test_json_ids_equal_protobuf_ids(tmp_path: Path) -> None:
    spans = recorded_spans()
    with serving(tmp_path / "pb.db") as pb_url, serving(tmp_path / "json.db") as json_url:
        assert (
            httpx.post(
                f"{pb_url}/v1/traces", content=protobuf_request(spans), headers=PB
            ).status_code
            == 200
        )
        answer = httpx.post(
            f"{json_url}/v1/traces",
            content=json_request(spans, uppercase=True),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert answer.status_code == 200 and answer.json() == {}

    def ids(path: Path) -> Any:
        with sqlite3.connect(path) as conn:
            return (
                sorted(conn.execute("SELECT run_id, trace_id, span_id FROM dag_runs")),
                sorted(
                    conn.execute(
                        "SELECT run_id, node_label, trace_id, span_id, status, "
                        "output_json FROM node_executions"
                    )
                ),
            )

    from_pb, from_json = ids(tmp_path / "pb.db"), ids(tmp_path / "json.db")
    assert from_pb == from_json
    real = {f"{s.context.span_id:016x}" for s in spans}
    assert {row[3] for row in from_pb[1]} <= real  # lowercase hex of the real ids


def test_partial_success_reports_unusable_spans_and_stores_the_rest(server: str) -> None:
    spans = recorded_spans()
    body = json.loads(json_request(spans, uppercase=False))
    scope = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    scope[0]["spanId"] = "abcd"  # wrong length
    target = next(s for s in scope if any(a["key"] == c.NODE_LABEL for a in s["attributes"]))
    for attribute in target["attributes"]:
        if attribute["key"] == c.NODE_LABEL:
            attribute["value"] = {"stringValue": "bad\u0000label"}
    answer = httpx.post(f"{server}/v1/traces", content=json.dumps(body), headers=JS)
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span id of 2 bytes" in partial["errorMessage"] and "NUL" in partial["errorMessage"]
    assert "bad" not in partial["errorMessage"]  # never echoes the payload
    assert open_remote(server).get_run("run-1") is not None


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", PB, 400),  # truncated protobuf
        (b'{"resourceSpans": [', JS, 400),  # truncated JSON
        (b'{"resourceSpans": {"not": "a list"}}', JS, 400),
        (b"[]", JS, 400),
        (b"hello", {"Content-Type": "text/plain"}, 415),
        (b"hello", {**PB, "Content-Encoding": "br"}, 415),
        (b"\x1f\x8b\x08\x00garbage", {**PB, "Content-Encoding": "gzip"}, 400),
    ],
    ids=["truncated-pb", "truncated-json", "wrong-shape", "array", "text", "brotli", "bad-gzip"],
)
def test_malformed_requests_are_refused_and_store_nothing(
    server: str, body: bytes, headers: dict[str, str], code: int
) -> None:
    answer = httpx.post(f"{server}/v1/traces", content=body, headers=headers)
    assert answer.status_code == code
    assert open_remote(server).stats()["dag_runs"] == 0
    if code == 400 and headers is PB:
        assert answer.headers["content-type"] == "application/x-protobuf"


def test_oversized_and_bomb_payloads_get_413(db_path: Path) -> None:
    spans = recorded_spans()
    with serving(db_path, "--max-body", "4096") as url:
        big = protobuf_request(spans)
        assert len(big) > 4096
        assert httpx.post(f"{url}/v1/traces", content=big, headers=PB).status_code == 413
        bomb = gzip.compress(b"\x00" * (10 * 1024 * 1024))  # 10 MiB of zeros in ~10 KiB
        answer = httpx.post(
            f"{url}/v1/traces", content=bomb[:4000], headers={**PB, "Content-Encoding": "gzip"}
        )
        assert answer.status_code == 413
        small = protobuf_request(spans[:3])
        ok = httpx.post(
            f"{url}/v1/traces",
            content=gzip.compress(small),
            headers={**PB, "Content-Encoding": "gzip"},
        )
        assert ok.status_code == 200
        assert ExportTraceServiceResponse.FromString(ok.content).partial_success.rejected_spans == 0


def test_token_guards_ingestion_and_queries(db_path: Path) -> None:
    spans = recorded_spans()
    with serving(db_path, "--token", "s3cret") as url:
        body = protobuf_request(spans)
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 401
        wrong = {**PB, "Authorization": "Bearer nope"}
        assert httpx.post(f"{url}/v1/traces", content=body, headers=wrong).status_code == 401
        assert httpx.get(f"{url}/api/v1/runs").status_code == 401
        right = {**PB, "Authorization": "Bearer s3cret"}
        assert httpx.post(f"{url}/v1/traces", content=body, headers=right).status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200
        with pytest.raises(dagtrace.StoreError, match="bearer token"):
            open_remote(url).get_run("run-1")
        assert open_remote(url, token="s3cret").get_run("run-1") is not None


INGEST_MODES = pytest.mark.parametrize(
    "ingest", [["--decoders", "2"], ["--decoders", "0"]], ids=["workers", "server-thread"]
)
"""Both write paths: worker processes that decode and commit, or the server's own thread."""


@INGEST_MODES
def test_concurrent_senders(ingest: list[str], db_path: Path) -> None:
    with serving(db_path, *ingest) as server:
        _send_concurrently(server)
    counts = dagtrace.DagProvenance(db_path, read_only=True).store.table_counts()
    assert counts == {"dag_runs": 40 * 7, "node_executions": 40 * 12, "edge_traversals": 40 * 5}


def _send_concurrently(server: str) -> None:
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            for i in range(10):
                spans = recorded_spans(run_id=f"s{n}-{i}")
                answer = httpx.post(
                    f"{server}/v1/traces", content=protobuf_request(spans), headers=PB, timeout=30
                )
                assert answer.status_code == 200, answer.status_code
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll the server's own metrics: the only signal that crosses the process boundary."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize(
    "ingest", [["--decoders", "1"], ["--decoders", "0"]], ids=["worker", "server-thread"]
)
def test_full_write_queue_answers_429_with_retry_after(ingest: list[str], db_path: Path) -> None:
    """One request being written (blocked on the file's lock), one waiting: the third
    finds the queue (of 1) full."""
    spans = recorded_spans()
    body = protobuf_request(spans)
    with serving(db_path, "--queue", "1", *ingest) as url:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the writer now waits for the lock
        answers: list[int] = []
        first = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/v1/traces", content=body, headers=PB, timeout=60).status_code
            )
        )
        first.start()
        _wait_until(
            lambda: (
                _metric(url, "dagtrace_requests_in_progress") == 1
                and _metric(url, "dagtrace_write_queue_depth") == 0
            )
        )  # taken by the writer
        second = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/v1/traces", content=body, headers=PB, timeout=60).status_code
            )
        )
        second.start()
        _wait_until(lambda: _metric(url, "dagtrace_write_queue_depth") == 1)  # queued
        third = httpx.post(f"{url}/v1/traces", content=body, headers=PB)
        assert third.status_code == 429
        assert third.headers["Retry-After"] == "1"
        blocker.execute("ROLLBACK")
        blocker.close()
        first.join()
        second.join()
        assert answers == [200, 200]


@pytest.mark.parametrize(
    "ingest", [["--decoders", "1"], ["--decoders", "0"]], ids=["worker", "server-thread"]
)
def test_sigterm_answers_and_stores_the_request_in_flight_then_exits_0(
    ingest: list[str], db_path: Path
) -> None:
    """A rolling restart: the request being written when SIGTERM arrives is still
    committed and answered 200; then the server exits cleanly."""
    body = protobuf_request(recorded_spans())
    with serve_process(db_path, *ingest) as (proc, url):
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the request waits for the file's lock
        answers: list[int] = []
        sender = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/v1/traces", content=body, headers=PB, timeout=60).status_code
            )
        )
        sender.start()
        _wait_until(lambda: _metric(url, "dagtrace_requests_in_progress") == 1)
        proc.send_signal(signal.SIGTERM)
        _wait_until(lambda: not _accepts_connections(url))  # shutting down, no new requests
        blocker.execute("ROLLBACK")
        blocker.close()
        sender.join()
        assert answers == [200]
        assert proc.wait(timeout=30) == 0
        log = proc.stderr.read()
        assert " INFO dagtrace.serve.server: stopping: finishing the requests in hand" in log
        assert log.rstrip().endswith(" INFO dagtrace.serve.server: stopped"), log
    run = dagtrace.DagProvenance(db_path, read_only=True).get_run("run-1")
    assert run is not None and run["status"] == "completed"


def _accepts_connections(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_forward_target_down_loses_nothing_in_the_store(db_path: Path) -> None:
    spans = recorded_spans()
    with serving(db_path, "--forward", f"http://127.0.0.1:{_refused_port()}/v1/traces") as url:
        for _ in range(3):
            answer = httpx.post(f"{url}/v1/traces", content=protobuf_request(spans), headers=PB)
            assert answer.status_code == 200
        assert open_remote(url).get_run("run-1")["status"] == "completed"


def test_a_forward_target_that_never_answers_holds_up_nothing_and_drops_the_oldest(
    db_path: Path,
) -> None:
    """Ingestion answers while forwards wait; past --forward-buffer bytes the oldest
    waiting request is dropped (and counted), never one in the store."""
    spans = recorded_spans()
    body = protobuf_request(spans)
    with socket.socket() as black_hole:  # accepts connections (the kernel does), never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        target = f"http://127.0.0.1:{black_hole.getsockname()[1]}/v1/traces"
        room_for_one = str(len(body) * 3 // 2)
        with serving(db_path, "--forward", target, "--forward-buffer", room_for_one) as url:

            def post() -> None:
                answer = httpx.post(f"{url}/v1/traces", content=body, headers=PB)
                assert answer.status_code == 200

            post()
            _wait_until(lambda: _metric(url, "dagtrace_forward_queue_depth") == 0)  # in flight
            for _ in range(3):
                post()
            assert _metric(url, "dagtrace_forward_queue_depth") == 1
            assert _metric(url, "dagtrace_forward_dropped_requests_total") == 2
            assert _metric(url, "dagtrace_forwarded_requests_total") == 0
            assert open_remote(url).get_run("run-1")["status"] == "completed"


def test_forwarder_stop_drops_what_a_stuck_target_left_waiting_and_counts_it() -> None:
    from dagtrace.serve.forward import Forwarder

    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        forwarder = Forwarder(f"http://127.0.0.1:{black_hole.getsockname()[1]}/v1/traces")
        for _ in range(50):
            forwarder.submit(b"\x0a\x00", "application/x-protobuf")
        forwarder.stop(timeout=0.5)  # the one in flight keeps the thread busy past this
        assert forwarder.depth == 0 and forwarder.forwarded == 0
        assert forwarder.dropped >= 49


def test_forwarding_reaches_another_otlp_receiver(
    db_path: Path, receiver: tuple[str, Path]
) -> None:
    target, out = receiver
    spans = recorded_spans()
    with serving(db_path, "--forward", target) as url:
        answer = httpx.post(f"{url}/v1/traces", content=protobuf_request(spans), headers=PB)
        assert answer.status_code == 200
        _wait_until(lambda: len(out.read_text().splitlines()) == len(spans))
        _wait_until(lambda: _metric(url, "dagtrace_forwarded_requests_total") == 1)
    forwarded = {json.loads(line)["span_id"] for line in out.read_text().splitlines()}
    assert forwarded == {f"{s.context.span_id:016x}" for s in spans}


def test_forwarding_retries_a_busy_target_after_its_retry_after(
    db_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "received.jsonl"
    spans = recorded_spans()
    with receiver_process("otlp_receiver.py", out, "2", "1") as target:  # 2 × 503, wait 1 s
        with serving(db_path, "--forward", f"{target}/v1/traces") as url:
            answer = httpx.post(f"{url}/v1/traces", content=protobuf_request(spans), headers=PB)
            assert answer.status_code == 200
            _wait_until(lambda: _metric(url, "dagtrace_forwarded_requests_total") == 1, 30)
            assert _metric(url, "dagtrace_forward_dropped_requests_total") == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    refused = [line["refused_at"] for line in lines if "refused_at" in line]
    assert len(refused) == 2 and refused[1] - refused[0] >= 1.0  # it waited as asked
    assert len([line for line in lines if "span_id" in line]) == len(spans)  # once each


def test_health_readiness_and_metrics(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server}/readyz").json() == {"status": "ready"}
    httpx.post(f"{server}/v1/traces", content=protobuf_request(recorded_spans()), headers=PB)
    assert _metric(server, "dagtrace_spans_stored_total") > 0
    assert _metric(server, 'dagtrace_requests_total{code="200"}') == 1
    assert _metric(server, "dagtrace_ingest_seconds_count") == 1


def test_every_metric_the_deployment_guide_names_is_exported(db_path: Path) -> None:
    import re

    guide = (Path(__file__).parents[1] / "docs" / "deployment.md").read_text()
    documented = set(re.findall(r"`(dagtrace_[a-z_]+)", guide))
    assert len(documented) >= 9
    with serving(db_path, "--forward", f"http://127.0.0.1:{_refused_port()}/v1/traces") as url:
        exported = httpx.get(f"{url}/metrics").text
    names = {line.split()[2] for line in exported.splitlines() if line.startswith("# TYPE")}
    names |= {f"{name}_total" for name in names}  # counters are exported with the suffix
    assert documented <= names, f"documented, not exported: {documented - names}"


def test_cli_against_a_server(server: str) -> None:
    httpx.post(
        f"{server}/v1/traces",
        content=protobuf_request(recorded_spans(fail_publish=True)),
        headers=PB,
    )
    cli = [sys.executable, "-m", "dagtrace"]
    shown = subprocess.run([*cli, "show", "run-1", "--db", server], capture_output=True, text=True)
    assert shown.returncode == 1 and "publish  [failed]" in shown.stdout
    assert subprocess.run([*cli, "show", "nope", "--db", server]).returncode == 3
    listed = subprocess.run([*cli, "runs", "--db", server], capture_output=True, text=True)
    assert listed.returncode == 0 and "run-1" in listed.stdout
    down = f"http://127.0.0.1:{_refused_port()}"
    assert subprocess.run([*cli, "runs", "--db", down], capture_output=True).returncode == 4
    tailed = subprocess.run(
        [*cli, "tail", "--db", server, "--until", "run-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tailed.returncode == 1 and "pipe:publish  failed" in tailed.stdout


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_default_ingest_workers_follow_the_cores_serve_may_use(db_path: Path) -> None:
    """In a container pinned to one core of a bigger machine, one process does all."""
    with serve_process(db_path, prefix=("taskset", "-c", "0")) as (proc, _):
        proc.terminate()
        proc.wait(timeout=30)
        assert "ingest on a thread" in proc.stderr.read()


def test_serve_port_in_use_is_a_clear_error(server: str, db_path: Path) -> None:
    port = server.rsplit(":", 1)[1]
    clash = subprocess.run(
        [sys.executable, "-m", "dagtrace", "serve", "--db", str(db_path), "--port", port],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert clash.returncode == 4 and "cannot listen" in clash.stderr


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find child processes")
def test_decoder_processes_die_with_a_killed_server(db_path: Path) -> None:
    with serve_process(db_path, "--decoders", "2") as (proc, url):
        body = protobuf_request(recorded_spans())
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 200
        children = _children(proc.pid)
        assert children  # the decoders (and multiprocessing's resource tracker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _wait_until(lambda: not any(Path(f"/proc/{c}").exists() for c in children))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find child processes")
def test_a_dead_decoder_answers_503_then_new_ones_decode(db_path: Path) -> None:
    import os
    import signal

    with serving(db_path, "--decoders", "1") as url:
        body = protobuf_request(recorded_spans())
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 200
        server_pid = next(
            p for p in _children(os.getpid()) if "serve" in Path(f"/proc/{p}/cmdline").read_text()
        )
        decoders = [
            p
            for p in _children(server_pid)
            if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
        ]
        assert decoders
        for pid in decoders:
            os.kill(pid, signal.SIGKILL)
        codes = [
            httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code for _ in range(3)
        ]
        assert codes[0] in (200, 503) and codes[-1] == 200  # never a 500, and it recovers


def _page_size(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def test_a_file_serve_creates_has_pages_for_batches_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """serve writes hundreds of spans a transaction: 8 KiB pages (fewer, fuller page
    writes); the in-process classes commit a node at a time: 2 KiB. Either file works
    for the other, and lythonic reads both."""
    served, in_process = tmp_path / "served.db", tmp_path / "in-process.db"
    dagtrace.DagProvenance(in_process).close()
    body = protobuf_request(recorded_spans())
    for db in (served, in_process):
        with serving(db) as url:
            headers = {"Content-Type": "application/x-protobuf"}
            assert httpx.post(f"{url}/v1/traces", content=body, headers=headers).status_code == 200
    assert (_page_size(served), _page_size(in_process)) == (8192, 2048)
    for db in (served, in_process):
        assert LythonicProvenance(db).get_run("run-1")["status"] == "completed"
