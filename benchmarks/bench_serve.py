"""OTLP/HTTP ingestion into SQLite through `dagtrace serve`, spans per second.

    python benchmarks/bench_serve.py [--requests 40] [--senders 4] [--db URL] [--servers N]

A separate sender process encodes its requests before the clock starts: 512 spans per
request (node spans with ~1 KiB of payload, half input and half output, and 3 edges
each, plus their run span; --payload-bytes changes the size),
protobuf, sent by --senders connections at once, each answered after commit at the
default durability. The mix (unless --plain): 8 of the nodes are composite nodes, each
calling a service (a non-DAG `GET` span) that runs a sub-DAG run naming no parent (2
nodes), and 16 nodes make a non-DAG database span: serve finds each sub-run's parent
through the `GET` span. Meanwhile a reader times `inspect_run` of a 500-node run through
the query API; the same reads, made again alone afterwards, measure the reader's share
of the server CPU, so ingest's own CPU per span is printed too.

Before the servers start, what that parent resolution costs the store's write, in
process (`--resolution-requests` of the same requests): each request written without
the parent step, with it, and split in two (the sub-runs first: their searches wait,
then the parent run resolves them), each on a fresh store.

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

sys.path.insert(0, str(Path(__file__).parent))
from bench_store import _drop_schema, _fresh_schema

SPANS_PER_REQUEST = 512
COMPOSITES = 8
"""Composite nodes per request, each with a `GET` span and a sub-run of SUB_NODES nodes."""
SUB_NODES = 2
DB_SPANS = 16
"""Non-DAG leaf spans per request (a database call inside a node)."""


PAYLOAD_BYTES = 1024
"""JSON payload per node span, split evenly between its input and its output."""


def _rows(size: int) -> list[dict[str, object]]:
    """A JSON-able value whose JSON is about `size` bytes."""
    rows: list[dict[str, object]] = []
    while len(json.dumps(rows)) < size:
        rows.append({"id": len(rows), "name": f"row-{len(rows)}", "ok": True})
    return rows


def _encode_requests(
    count: int, prefix: str, payload_bytes: int = PAYLOAD_BYTES, *, mix: bool = True
) -> list[bytes]:
    return [_encode(spans) for spans in _request_spans(count, prefix, payload_bytes, mix=mix)]


def _encode(spans: object) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(spans).SerializeToString())  # type: ignore[arg-type]


def _request_spans(
    count: int, prefix: str, payload_bytes: int = PAYLOAD_BYTES, *, mix: bool = True
) -> list[list[object]]:
    """The spans of each request: a run of node spans; with `mix`, composite nodes
    whose sub-runs (naming no parent) run under a non-DAG `GET` span, and non-DAG
    database spans."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import dagtrace

    payload = _rows(payload_bytes // 2)
    extra = COMPOSITES * (2 + SUB_NODES) + DB_SPANS if mix else 0
    nodes = SPANS_PER_REQUEST - 1 - extra
    composite_every = nodes // COMPOSITES
    db_every = nodes // DB_SPANS
    requests = []
    for r in range(count):
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = dagtrace.DagTracer(provider, start_markers=False)
        plain = provider.get_tracer("bench-service")
        run_id = f"{prefix}-{r}"
        with tracer.run("bench", run_id=run_id) as run:
            for i in range(nodes):
                with run.node(f"n{i}", input=payload) as node:
                    here = trace.set_span_in_context(node.span)
                    if mix and i % db_every == 0 and i // db_every < DB_SPANS:
                        plain.start_span("SELECT rows", context=here).end()
                    if mix and i % composite_every == 0 and i // composite_every < COMPOSITES:
                        _sub_run(plain, here, run_id, i, payload)
                    node.set_output(payload)
                    node.edge(f"n{i + 1}", f"n{i + 2}", f"n{i + 3}")
        provider.shutdown()
        spans = list(memory.get_finished_spans())
        assert len(spans) == SPANS_PER_REQUEST, len(spans)
        requests.append(spans)
    return requests


def _sub_run(tracer: object, context: object, run_id: str, i: int, payload: object) -> None:
    """A service call (`GET`) running a sub-DAG run that does not name its parent."""
    from opentelemetry import trace

    from dagtrace import conventions as c
    from dagtrace._mapping import payload_attributes

    with tracer.start_as_current_span("GET /chunk", context=context) as call:  # type: ignore[attr-defined]
        sub_id = f"{run_id}-sub{i}"
        attributes = {c.KIND: "run", c.RUN_ID: sub_id, c.NSREF: f"bench/n{i}[0]"}
        with tracer.start_as_current_span(  # type: ignore[attr-defined]
            "dag.run", context=trace.set_span_in_context(call), attributes=attributes
        ):
            for k in range(SUB_NODES):
                with tracer.start_as_current_span(  # type: ignore[attr-defined]
                    f"dag.node s{k}",
                    attributes={
                        c.KIND: "node",
                        c.RUN_ID: sub_id,
                        c.NODE_LABEL: f"s{k}",
                        **payload_attributes(c.NODE_OUTPUT, json.dumps(payload)),
                    },
                ):
                    pass


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


def _resolution_cost(db: str | None, payload_bytes: int, count: int) -> dict[str, float]:
    """ms per request of the store's write: without the parent step, with it, and split
    in two requests (sub-runs first), each arm on a fresh store, rounds interleaved."""
    import shutil

    from dagtrace import open_store
    from dagtrace.serve.codec import decode_to_rows

    def decoded(spans: list[object]) -> object:
        return decode_to_rows(_encode(spans), json_encoded=False)

    requests = _request_spans(count, "res", payload_bytes)
    whole = [decoded(spans) for spans in requests]
    halves = []
    for spans in requests:
        sub = [s for s in spans if _sub_run_span(s)]
        halves.append(decoded(sub))
        halves.append(decoded([s for s in spans if not _sub_run_span(s)]))
    arms = {
        "whole, no node span index": (whole, False, False),
        "whole, without": (whole, False, True),
        "whole, with": (whole, True, True),
        "split, without": (halves, False, True),
        "split, with": (halves, True, True),
    }
    timings: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(3):
        for arm, (batches, search, index) in arms.items():
            workdir = tempfile.mkdtemp(prefix="dagtrace-bench-resolution-")
            location = _fresh_schema(db) if db else str(Path(workdir) / "r.db")
            store = open_store(location)
            try:
                if not index:
                    with store.transaction() as writer:
                        writer._cur.execute("DROP INDEX dagtrace_nodes_trace_span")
                start = time.perf_counter()
                for batch in batches:
                    store.write_rows(batch.rows, parents=batch.parents if search else None)  # type: ignore[attr-defined]
                timings[arm].append((time.perf_counter() - start) / count * 1e3)
                if search:
                    with store._read() as cur:
                        cur.execute("SELECT count(*) FROM dag_runs WHERE parent_run_id IS NOT NULL")
                        assert cur.fetchone()[0] == count * COMPOSITES, "sub-runs not resolved"
            finally:
                store.close()
                if db:
                    _drop_schema(db, location)
                shutil.rmtree(workdir, ignore_errors=True)
    return {arm: statistics.median(t) for arm, t in timings.items()}


def _sub_run_span(span: object) -> bool:
    name = span.name  # type: ignore[attr-defined]
    return name == "GET /chunk" or "-sub" in str((span.attributes or {}).get("dag.run.id", ""))  # type: ignore[attr-defined]


def _sender(
    urls: list[str],
    count: int,
    prefix: str,
    ready: object,
    go: object,
    out: object,
    payload_bytes: int,
    mix: bool,
) -> None:
    requests = _encode_requests(count, prefix, payload_bytes, mix=mix)
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


def _resolved_sub_runs(db: str) -> int:
    """Sub-runs (`…-sub…` run ids) the store has a parent for."""
    from dagtrace import open_store

    store = open_store(db, read_only=True)
    try:
        with store._read() as cur:
            cur.execute(
                "SELECT count(*) FROM dag_runs WHERE parent_run_id IS NOT NULL "
                "AND run_id LIKE '%-sub%'"
            )
            return int(cur.fetchone()[0])
    finally:
        store.close()


def _forwarded(url: str) -> int:
    """Requests this server's forwarder has delivered (its /metrics)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("dagtrace_forwarded_requests_total "):
            return int(float(line.split()[1]))
    return 0


def _reads_alone_cpu(url: str, count: int, pids: list[int], postgres: bool) -> tuple[float, float]:
    """Server CPU seconds (and PostgreSQL's, if `postgres`) of `count` probe reads with
    nothing else going on: the reader's share of what was measured while ingesting
    (-1 without /proc)."""
    before, pg_before = _cpu_seconds(pids), _postgres_cpu_seconds() if postgres else -1.0
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            assert client.get(f"{url}/api/v1/runs/probe-0").status_code == 200
    return (
        _cpu_seconds(pids) - before if before >= 0 else -1.0,
        _postgres_cpu_seconds() - pg_before if pg_before >= 0 else -1.0,
    )


def _postgres_cpu_seconds() -> float:
    """User + system CPU seconds of every PostgreSQL process on this machine (the
    postmaster, its backends, WAL writer, checkpointer...); -1 without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return -1.0
    ticks, total = float(os.sysconf("SC_CLK_TCK")), 0.0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        if text.split(" (", 1)[1].startswith("postgres)"):
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


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
        help="decoding processes per server (default: serve's own choice, one per core; "
        "with --servers N > 1, the cores split between the servers, as docs/deployment.md "
        "advises for servers sharing a machine)",
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
        "--plain",
        action="store_true",
        help="node spans only: no sub-runs, no non-DAG spans (the mix before schema 6)",
    )
    parser.add_argument(
        "--resolution-requests",
        type=int,
        default=6,
        help="requests the in-process measure of parent resolution writes per arm (0: skip)",
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
    if args.decoders is None and args.servers > 1:
        affinity = getattr(os, "sched_getaffinity", None)
        cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
        args.decoders = max(1, cores // args.servers)
    postgres = bool(args.db and args.db.startswith("postgresql://"))
    resolution = (
        _resolution_cost(
            args.db if postgres else None, args.payload_bytes, args.resolution_requests
        )
        if args.resolution_requests and not args.plain
        else None
    )
    schema_url = None
    if postgres:
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
        warm = _encode_requests(1, "probe", mix=not args.plain)[0]

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
                    not args.plain,
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
        pg_before = _postgres_cpu_seconds() if postgres else -1.0
        start = time.perf_counter()
        go.set()
        reader.start()
        codes = [code for _ in senders for code in results.get()]
        elapsed = time.perf_counter() - start
        cpu_used = _cpu_seconds([s.pid for s in servers]) - cpu_before
        pg_used = _postgres_cpu_seconds() - pg_before if pg_before >= 0 else -1.0
        forwarded = sum(_forwarded(u) for u in urls) if args.forward else 0
        stop.set()
        reader.join()
        for p in senders:
            p.join()
        resolved = _resolved_sub_runs(db)
        reads_cpu, pg_reads_cpu = _reads_alone_cpu(
            url, len(latencies), [s.pid for s in servers], postgres
        )
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
        f"{args.senders} senders, {args.servers} server(s)"
        f"{f' of {args.decoders} ingest worker(s)' if args.decoders is not None else ''}, "
        f"{store}: {elapsed:.2f} s"
    )
    print(
        f"ingest: {total / elapsed:,.0f} spans/s   (floor ≥ 40,000 on SQLite; payload "
        f"{args.payload_bytes} B per span)"
    )
    ingest_cpu = cpu_used - max(reads_cpu, 0.0)
    if cpu_before >= 0:
        print(
            f"server CPU: {cpu_used / total * 1e6:.0f} µs per span (servers and their ingest "
            f"workers, the reader's reads included; steadier than spans/s on a shared machine)"
        )
        print(
            f"server CPU of ingest alone: {ingest_cpu / total * 1e6:.0f} µs per span (floor "
            f"≤ 35 on SQLite): the same {len(latencies)} reads, made again alone afterwards, "
            f"took {reads_cpu * 1e3:.0f} ms of server CPU"
        )
    if pg_used >= 0:
        pg_ingest = pg_used - max(pg_reads_cpu, 0.0)
        print(
            f"PostgreSQL's processes meanwhile: {pg_used / total * 1e6:.0f} µs per span, "
            f"{pg_ingest / total * 1e6:.0f} without the reads' share ({pg_reads_cpu * 1e3:.0f} "
            f"ms alone); ingest alone plus PostgreSQL: "
            f"{(ingest_cpu + pg_ingest) / total * 1e6:.0f} µs per span (floor: ≤ 1.5× "
            "SQLite's ingest alone)"
        )
    if args.forward:
        print(f"forwarded to the sink by then: {forwarded} of {len(codes)} requests")
    if not args.plain:
        expected = (len(codes) + 1) * COMPOSITES  # and the probe run, posted 8 times a server
        print(
            f"mix per request: {COMPOSITES} sub-runs naming no parent under a non-DAG span, "
            f"{COMPOSITES + DB_SPANS} non-DAG spans; sub-runs whose parent serve found: "
            f"{resolved:,} of {expected:,}"
        )
    if resolution:
        base, index = resolution["whole, without"], resolution["whole, no node span index"]
        whole = resolution["whole, with"] - base
        split = resolution["split, with"] - resolution["split, without"]
        print(
            f"parent resolution, in process ({store}, ms per request of {SPANS_PER_REQUEST} "
            f"spans, medians of 3): write {base:.2f} without the parent step (node span "
            f"index included: {base - index:+.2f} vs none), {whole:+.2f} with it "
            f"({whole / base * 100:+.0f}%, {whole / COMPOSITES * 1e3:.0f} µs per sub-run); "
            f"split (sub-runs first, waiting): {split:+.2f} per request pair"
        )
    if latencies:
        q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
        print(
            f"inspect_run of the probe run via the API while ingesting: "
            f"median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p95 {q[18] * 1000:.1f} ms ({len(latencies)} reads)"
        )
    if lythonic_rate:
        print(
            f"baseline: lythonic DagProvenance records the same nodes at {lythonic_rate:,.0f} "
            f"nodes/s in process; serve ingests {total / elapsed / lythonic_rate:.1f}× that"
        )
    figures: dict[str, float] = {"spans_per_s": round(total / elapsed)}
    if cpu_before >= 0:
        figures["cpu_us_per_span"] = round(cpu_used / total * 1e6, 1)
        figures["ingest_cpu_us_per_span"] = round(ingest_cpu / total * 1e6, 1)
    if pg_used >= 0:
        figures["postgres_cpu_us_per_span"] = round(pg_used / total * 1e6, 1)
        figures["postgres_ingest_cpu_us_per_span"] = round(
            (pg_used - max(pg_reads_cpu, 0.0)) / total * 1e6, 1
        )
    if resolution:
        figures["resolution_ms_per_request"] = round(
            resolution["whole, with"] - resolution["whole, without"], 3
        )
    if lythonic_rate:
        figures["lythonic_nodes_per_s"] = round(lythonic_rate)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
