"""OTLP/HTTP ingestion into SQLite through `dagtrace serve`, spans per second.

    python benchmarks/bench_serve.py [--requests 40] [--senders 4] [--db URL] [--servers N]

A separate sender process encodes its requests before the clock starts: 512 spans per
request (node spans with ~1 KiB of payload, half input and half output, and 3 edges
each, plus their run span; --payload-bytes changes the size),
protobuf, sent by --senders connections at once, each answered after commit at the
default durability. Meanwhile a reader times `inspect_run` of a 500-node run through
the query API.

Baseline, in the same run and before the servers start: lythonic's DagProvenance
recording the same nodes (payloads and 3 edges each) in process, as its DagRunner
does (record_node_start + complete_node_with_edges); the ratio says how many such
runners one `dagtrace serve` keeps up with.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

SPANS_PER_REQUEST = 512


PAYLOAD_BYTES = 1024
"""JSON payload per node span, split evenly between its input and its output."""


def _rows(size: int) -> list[dict[str, object]]:
    """A JSON-able value whose JSON is about `size` bytes."""
    rows: list[dict[str, object]] = []
    while len(json.dumps(rows)) < size:
        rows.append({"id": len(rows), "name": f"row-{len(rows)}", "ok": True})
    return rows


def _encode_requests(count: int, prefix: str, payload_bytes: int = PAYLOAD_BYTES) -> list[bytes]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import dagtrace

    payload = _rows(payload_bytes // 2)
    requests = []
    for r in range(count):
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = dagtrace.DagTracer(provider, start_markers=False)
        with tracer.run("bench", run_id=f"{prefix}-{r}") as run:
            for i in range(SPANS_PER_REQUEST - 1):
                with run.node(f"n{i}", input=payload) as node:
                    node.set_output(payload)
                    node.edge(f"n{i + 1}", f"n{i + 2}", f"n{i + 3}")
        provider.shutdown()
        spans = memory.get_finished_spans()
        assert len(spans) == SPANS_PER_REQUEST
        requests.append(encode_spans(spans).SerializeToString())
    return requests


_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
"""A forward target that takes every request and reads nothing (Jaeger cannot run here)."""


def _lythonic_nodes_per_s(payload_bytes: int, nodes: int) -> float:
    """lythonic 0.0.28's DagProvenance recording `nodes` of the benchmark's nodes."""
    from lythonic.compose.dag_provenance import DagProvenance

    payload = json.dumps(_rows(payload_bytes // 2))
    with tempfile.TemporaryDirectory(prefix="dagtrace-bench-lythonic-") as workdir:
        prov = DagProvenance(Path(workdir) / "lythonic.db")
        prov.create_run("bench", "bench", {})
        start = time.perf_counter()
        for i in range(nodes):
            label = f"n{i}"
            edges = [(label, f"n{i + k}") for k in (1, 2, 3)]
            prov.record_node_start("bench", label, payload)
            prov.complete_node_with_edges("bench", label, payload, edges)
        return nodes / (time.perf_counter() - start)


def _sender(
    urls: list[str],
    count: int,
    prefix: str,
    ready: object,
    go: object,
    out: object,
    payload_bytes: int,
) -> None:
    requests = _encode_requests(count, prefix, payload_bytes)
    ready.set()  # type: ignore[attr-defined]
    go.wait()  # type: ignore[attr-defined]
    codes = []
    with httpx.Client(timeout=120) as client:
        for i, body in enumerate(requests):
            answer = client.post(
                f"{urls[i % len(urls)]}/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            codes.append(answer.status_code)
    out.put(codes)  # type: ignore[attr-defined]


def _forwarded(url: str) -> int:
    """Requests this server's forwarder has delivered (its /metrics)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("dagtrace_forwarded_requests_total "):
            return int(float(line.split()[1]))
    return 0


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children (Linux /proc);
    -1 where /proc is not there."""
    proc = Path("/proc")
    if not proc.is_dir():
        return -1.0
    ticks = float(os.sysconf("SC_CLK_TCK"))
    wanted, total = set(pids), 0.0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid in wanted or ppid in wanted:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per sender")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument(
        "--payload-bytes",
        type=int,
        default=PAYLOAD_BYTES,
        help="JSON payload per node span, half input, half output (default 1024)",
    )
    parser.add_argument(
        "--decoders",
        type=int,
        default=None,
        help="decoding processes per server (default: serve's own choice)",
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="dagtrace serve processes on the same store (PostgreSQL for > 1)",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="the store (default: a new SQLite file); a postgresql:// URL is "
        "used in a fresh schema",
    )
    parser.add_argument(
        "--forward",
        action="store_true",
        help="serve also forwards every request (redacted) to a sink process",
    )
    parser.add_argument(
        "--lythonic-nodes",
        type=int,
        default=1000,
        help="nodes the lythonic baseline records (0: skip it)",
    )
    args = parser.parse_args()
    lythonic_rate = (
        _lythonic_nodes_per_s(args.payload_bytes, args.lythonic_nodes)
        if args.lythonic_nodes
        else None
    )
    schema_url = None
    if args.db and args.db.startswith("postgresql://"):
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_store import _drop_schema, _fresh_schema

        db = schema_url = _fresh_schema(args.db)
    else:
        db = args.db or str(Path(tempfile.mkdtemp(prefix="dagtrace-bench-serve-")) / "serve.db")
    sink = None
    forward: list[str] = []
    if args.forward:
        sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
        forward = ["--forward", f"http://127.0.0.1:{sink.stdout.readline().strip()}/v1/traces"]  # type: ignore[union-attr]
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagtrace",
                "serve",
                "--db",
                db,
                "--port",
                "0",
                *(["--decoders", str(args.decoders)] if args.decoders is not None else []),
                *forward,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.servers)
    ]
    urls = [s.stdout.readline().split("listening on ")[1].split()[0] for s in servers]  # type: ignore[union-attr]
    url = urls[0]
    try:
        # one run to read back while ingesting
        warm = _encode_requests(1, "probe")[0]

        def post_warm(to: str) -> int:
            headers = {"Content-Type": "application/x-protobuf"}
            return httpx.post(f"{to}/v1/traces", content=warm, headers=headers).status_code

        # Concurrent posts to every server: each starts all its ingest workers (a
        # pool spawns them on demand) before the clock and the CPU count start.
        with ThreadPoolExecutor(8) as warmers:
            assert set(warmers.map(post_warm, urls * 8)) == {200}
        ctx = multiprocessing.get_context("spawn")
        go, results = ctx.Event(), ctx.Queue()
        readies = [ctx.Event() for _ in range(args.senders)]
        senders = [
            ctx.Process(
                target=_sender,
                args=(
                    urls[n:] + urls[:n],
                    args.requests,
                    f"s{n}",
                    readies[n],
                    go,
                    results,
                    args.payload_bytes,
                ),
            )
            for n in range(args.senders)
        ]
        for p in senders:
            p.start()
        for ready in readies:
            ready.wait()
        latencies: list[float] = []
        stop = threading.Event()

        def read_while_ingesting() -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    start = time.perf_counter()
                    assert client.get(f"{url}/api/v1/runs/probe-0").status_code == 200
                    latencies.append(time.perf_counter() - start)
                    stop.wait(0.05)

        reader = threading.Thread(target=read_while_ingesting)
        cpu_before = _cpu_seconds([s.pid for s in servers])
        start = time.perf_counter()
        go.set()
        reader.start()
        codes = [code for _ in senders for code in results.get()]
        elapsed = time.perf_counter() - start
        cpu_used = _cpu_seconds([s.pid for s in servers]) - cpu_before
        forwarded = sum(_forwarded(u) for u in urls) if args.forward else 0
        stop.set()
        reader.join()
        for p in senders:
            p.join()
    finally:
        for server in servers:
            server.terminate()
            server.wait()
            server.stdout.close()  # type: ignore[union-attr]
        if sink:
            sink.terminate()
            sink.wait()
            sink.stdout.close()  # type: ignore[union-attr]
        if schema_url:
            _drop_schema(args.db, schema_url)
    total = args.senders * args.requests * SPANS_PER_REQUEST
    assert codes == [200] * len(codes), f"non-200 answers: {set(codes)}"
    store = "PostgreSQL" if schema_url else "SQLite"
    print(
        f"{total:,} spans in {len(codes)} requests of {SPANS_PER_REQUEST}, "
        f"{args.senders} senders, {args.servers} server(s), {store}: {elapsed:.2f} s"
    )
    print(
        f"ingest: {total / elapsed:,.0f} spans/s   (floor ≥ 20,000; payload "
        f"{args.payload_bytes} B per span)"
    )
    if cpu_before >= 0:
        print(
            f"server CPU: {cpu_used / total * 1e6:.0f} µs per span (servers and their ingest "
            f"workers, reader included; steadier than spans/s on a shared machine)"
        )
    if args.forward:
        print(f"forwarded to the sink by then: {forwarded} of {len(codes)} requests")
    if latencies:
        q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
        print(
            f"inspect_run of a 511-node run via the API while ingesting: "
            f"median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p95 {q[18] * 1000:.1f} ms ({len(latencies)} reads)"
        )
    if lythonic_rate:
        print(
            f"baseline: lythonic DagProvenance records the same nodes at {lythonic_rate:,.0f} "
            f"nodes/s in process; serve ingests {total / elapsed / lythonic_rate:.1f}× that"
        )
    figures = {"spans_per_s": round(total / elapsed)}
    if lythonic_rate:
        figures["lythonic_nodes_per_s"] = round(lythonic_rate)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
