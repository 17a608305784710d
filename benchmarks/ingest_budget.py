"""What bounds serve's SQLite ingest: the parts every span pays, against the 35 µs floor.

    python benchmarks/ingest_budget.py [--requests 10] [--senders 4] [--rounds 15]

As bridge_budget.py does for the live processor. Measured in one run on bench_serve's
requests (512 spans, the mix), new ones each round, each figure the median of
--rounds, in CPU µs per span:
- in process, on the round's bodies:
  - parse: upb's `FromString` alone;
  - walk: parse, and reading every field the mapping reads (upb's objects), nothing
    kept: what any Python reader of these requests pays;
  - decode: serve's shared decode, protobuf → parts → mapping → row tuples;
  - raw write: those rows with the store's own upsert statements straight from sqlite3
    (BEGIN IMMEDIATE, executemany, COMMIT; WAL, synchronous=NORMAL, SQLite's own
    checkpoints), no parent search, on a new file;
  - raw+links: the same, with the sub-runs' parent links set by the store's
    `ParentSearch` on that cursor (the mapping's last step: span parents →
    `parent_run_id`);
  - write: the store's `write_rows` (the parent search, serve's checkpoints);
- over HTTP, every server process's CPU while bench_serve's senders post the bodies
  (--senders connections at once to each server):
  - bare HTTP: uvicorn (httptools, uvloop) with an ASGI app that reads each body and
    answers 200, nothing else;
  - no glue: the same app decoding each body with serve's decode and writing it as
    raw+links does, in each of its processes: the HTTP stack, the mapping (parent
    links included) and SQLite, nothing of serve's between (no decoding processes,
    limits or store object). It must store what serve stores, or it bounds another
    job: the run checks that both hold the same runs, parent links, nodes and edges
    (without the parent links it did not: its sub-runs had no parent);
  - serve: `dagtrace serve` (its decoding processes, limits, parent search, checkpoints).
The no-glue server is what serve cannot go below; when it is above the floor, the
floor is bound by it, and serve is held to within 10% of it. `walk + raw write + bare
HTTP` is the bound without the mapping; the mapping's share (decode − walk, and
raw+links − raw write) is printed beside it.
The three servers run at once, started and warmed before the first round, each on a
database of its own that grows by the same bodies. Each sender posts each body to each
server in turn, starting with a different one each time, so all three see the same
spell of a shared machine: on one, the same Python loop took 160 to 285 ms from one
second to the next, and serve / no glue measured one after the other moved from 0.85
to 1.73 between rounds (1.02 to 1.20 at once). count_instructions.py counts both
servers' instructions, which do not move at all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_serve import SPANS_PER_REQUEST, _cpu_seconds, _encode_requests
from bridge_budget import _raw_connection
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from dagtrace._parents import ParentFacts
from dagtrace.serve.codec import decode_to_rows
from dagtrace.serve.ingest import collect_less_often
from dagtrace.store.parent_search import ParentSearch
from dagtrace.store.rows import Rows
from dagtrace.store.sqlite import SqliteStore
from dagtrace.store.writer import _EDGE_UPSERT_SQL, _NODE_UPSERT_SQL, _RUN_UPSERT_SQL, Writer

FLOOR_US = 35.0


def _walk(body: bytes) -> None:
    """Read every field `serve.codec` reads of each span, keeping nothing."""
    request = ExportTraceServiceRequest.FromString(body)
    for resource_spans in request.resource_spans[:]:
        for scope_spans in resource_spans.scope_spans[:]:
            for span in scope_spans.spans[:]:
                read = [span.trace_id, span.span_id, span.parent_span_id]
                read += [span.start_time_unix_nano, span.end_time_unix_nano]
                read += [span.dropped_events_count, span.status.code, span.status.message]
                for kv in span.attributes[:]:
                    value = kv.value
                    read += [kv.key, value.string_value or value.int_value]
                for event in span.events[:]:
                    read += [event.name, event.time_unix_nano]
                    for kv in event.attributes[:]:
                        read += [kv.key, *(v.string_value for v in kv.value.array_value.values[:])]
                read += [(link.trace_id, link.span_id) for link in span.links[:]]


def _raw_write(cur: sqlite3.Cursor, rows: Rows, parents: ParentFacts | None = None) -> None:
    """One request's rows in one transaction, the store's statements, no Python around;
    with `parents`, the sub-runs' parent links too, as the store sets them
    (`ParentSearch` on the same cursor, around the rows)."""
    cur.execute("BEGIN IMMEDIATE")
    search = None
    if parents:
        search = ParentSearch(Writer(cur, SqliteStore.dialect), parents, sweep_key=str(id(cur)))
        search.before_rows()
    cur.executemany(_RUN_UPSERT_SQL[SqliteStore.dialect], rows.runs)
    cur.executemany(_NODE_UPSERT_SQL, rows.nodes)
    cur.executemany(_EDGE_UPSERT_SQL, rows.edges)
    if search:
        search.after_rows()
    cur.execute("COMMIT")


# -- in process --------------------------------------------------------------------------


def _cpu_us(work: Callable[[], None], spans: int) -> float:
    start = time.process_time()
    work()
    return (time.process_time() - start) / spans * 1e6


def _in_process_round(bodies: list[bytes], workdir: Path, tag: str) -> dict[str, float]:
    spans = len(bodies) * SPANS_PER_REQUEST
    decoded = [decode_to_rows(b, json_encoded=False) for b in bodies]
    conn = _raw_connection(workdir / f"raw-{tag}.db", batched_writes=True)
    cur = conn.cursor()
    linked = _raw_connection(workdir / f"linked-{tag}.db", batched_writes=True)
    linked_cur = linked.cursor()
    store = SqliteStore(workdir / f"store-{tag}.db", batched_writes=True)
    try:
        return {
            "parse": _cpu_us(
                lambda: [ExportTraceServiceRequest.FromString(b) for b in bodies], spans
            ),
            "walk": _cpu_us(lambda: [_walk(b) for b in bodies], spans),
            "decode": _cpu_us(
                lambda: [decode_to_rows(b, json_encoded=False) for b in bodies], spans
            ),
            "raw write": _cpu_us(lambda: [_raw_write(cur, d.rows) for d in decoded], spans),
            "raw+links": _cpu_us(
                lambda: [_raw_write(linked_cur, d.rows, d.parents) for d in decoded], spans
            ),
            "write": _cpu_us(
                lambda: [store.write_rows(d.rows, parents=d.parents) for d in decoded], spans
            ),
        }
    finally:
        conn.close()
        linked.close()
        store.close()
        _remove(workdir)


# -- over HTTP ---------------------------------------------------------------------------


def _bare_server(mode: str, db: str, processes: int) -> None:
    """`processes` uvicorn processes on one socket (as serve's decoding processes share
    its cores), each with an app that reads each body and answers 200; with `no glue`,
    each decodes the body and writes its rows raw first. Prints the port once the
    socket listens (connections wait in its backlog until a process accepts them)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    if mode == "no glue":
        SqliteStore(Path(db), batched_writes=True).close()  # the schema, before the race
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            _bare_process(mode, db, sock)
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(c, signal.SIGTERM) for c in children])
    print(sock.getsockname()[1], flush=True)
    for pid in children:
        os.waitpid(pid, 0)


def _bare_process(mode: str, db: str, sock: socket.socket) -> None:
    import uvicorn

    collect_less_often()  # as serve's decoding processes: a setting, not glue
    cur = _raw_connection(Path(db), batched_writes=True).cursor() if mode == "no glue" else None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if cur is not None:
            decoded = decode_to_rows(bytes(body), json_encoded=False)
            _raw_write(cur, decoded.rows, decoded.parents)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/x-protobuf"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])


class _Senders:
    """--senders processes, each posting its share of a round's bodies to every server,
    over one keep-alive connection per server, as bench_serve's senders do."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._inboxes = [ctx.SimpleQueue() for _ in range(count)]
        self._outbox = ctx.SimpleQueue()
        self._procs = [
            ctx.Process(target=_send, args=(n, count, inbox, self._outbox), daemon=True)
            for n, inbox in enumerate(self._inboxes)
        ]
        for p in self._procs:
            p.start()

    def burst(self, servers: Sequence[_Server], bodies_file: Path) -> list[tuple[float, float]]:
        """Each server's CPU seconds (every process; its own process) while the senders
        post every body of `bodies_file` to each server, each body to them in turn,
        starting with a different one each time; every answer must be 200."""
        for inbox in self._inboxes:
            inbox.put(([server.url for server in servers], str(bodies_file)))
        for _ in self._inboxes:
            self._outbox.get()  # its share loaded
        before = [server.cpu() for server in servers]
        for inbox in self._inboxes:
            inbox.put("go")
        codes = [code for _ in self._inboxes for code in self._outbox.get()]
        after = [server.cpu() for server in servers]
        assert set(codes) == {200}, f"non-200 answers: {set(codes)}"
        return [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for p in self._procs:
            p.join()


def _send(part: int, parts: int, inbox: Any, outbox: Any) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    clients: dict[str, httpx.Client] = {}
    while (job := inbox.get()) is not None:
        urls, bodies_file = job
        bodies = pickle.loads(Path(bodies_file).read_bytes())[part::parts]
        for url in urls:
            if url not in clients:
                clients[url] = httpx.Client(base_url=url, timeout=120)
        ours = [clients[url] for url in urls]
        outbox.put("loaded")
        inbox.get()  # go
        codes = []
        for n, body in enumerate(bodies):
            first = (n + part) % len(ours)
            for client in ours[first:] + ours[:first]:
                codes.append(client.post("/v1/traces", content=body, headers=headers).status_code)
        outbox.put(codes)
    for client in clients.values():
        client.close()


def _start(arm: str, db: str, processes: int, under: Sequence[str] = ()) -> subprocess.Popen[str]:
    """A server of `arm` on `db`, its command run `under` another (valgrind, say)."""
    if arm == "serve":
        command = ["-m", "dagtrace", "serve", "--db", db, "--port", "0"]
        command += ["--decoders", str(processes)]
    else:
        command = [__file__, "--bare", arm, db, str(processes)]
    return subprocess.Popen([*under, sys.executable, *command], stdout=subprocess.PIPE, text=True)


def _url(server: subprocess.Popen[str], arm: str) -> str:
    line = server.stdout.readline()  # type: ignore[union-attr]
    if arm == "serve":
        return line.split("listening on ")[1].split()[0]
    return f"http://127.0.0.1:{line.strip()}"


_ARMS = ("bare HTTP", "no glue", "serve")


class _Server:
    """One arm's server, started once, its database in `workdir`, warmed: as bench_serve,
    concurrent posts start every decoding process before anything is counted."""

    def __init__(self, arm: str, workdir: Path, processes: int, warm: bytes) -> None:
        self.arm = arm
        self.process = _start(arm, str(workdir / f"{arm.replace(' ', '-')}.db"), processes)
        self.url = _url(self.process, arm)
        headers = {"Content-Type": "application/x-protobuf"}

        def post_warm(_: int) -> int:
            return httpx.post(f"{self.url}/v1/traces", content=warm, headers=headers).status_code

        with ThreadPoolExecutor(8) as warmers:
            assert set(warmers.map(post_warm, range(8))) == {200}

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of every process of this server, and of the server process alone
        (serve's: HTTP, no decoding)."""
        return _cpu_seconds([self.process.pid]), _own_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()
        self.process.stdout.close()  # type: ignore[union-attr]


def _remove(workdir: Path) -> None:
    """Drop the in-process arms' databases, and flush what is left to write: pages
    written back meanwhile would take the servers' cores."""
    for db in workdir.glob("*.db*"):
        db.unlink()
    os.sync()


def _own_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of this one process (its children not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=10, help="requests per sender per round and arm"
    )
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="serve's decoding processes, and the bare servers' processes (default: one "
        "per usable core, serve's own default)",
    )
    parser.add_argument("--bare", nargs=3, metavar=("MODE", "DB", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        _bare_server(args.bare[0], args.bare[1], int(args.bare[2]))
        return
    collect_less_often()  # the in-process arms, as serve's decoding processes
    with tempfile.TemporaryDirectory(prefix="dagtrace-ingest-budget-") as tmp:
        figures = _rounds(args, Path(tmp))
        _report(figures, args.rounds, args.requests * args.senders * SPANS_PER_REQUEST)
        _same_record(Path(tmp) / "servers" / "no-glue.db", Path(tmp) / "servers" / "serve.db")


def _rounds(args: argparse.Namespace, workdir: Path) -> dict[str, list[float]]:
    """Each round's new bodies through the in-process arms, then into the three servers
    at once."""
    figures: dict[str, list[float]] = {}
    (workdir / "servers").mkdir()
    warm = _encode_requests(1, "warm")[0]
    senders = _Senders(args.senders)
    servers: list[_Server] = []
    try:
        for arm in _ARMS:
            servers.append(_Server(arm, workdir / "servers", args.processes, warm))
        for r in range(args.rounds):
            bodies = _encode_requests(args.requests * args.senders, f"budget-{r}")
            bodies_file = workdir / "bodies.pickle"
            bodies_file.write_bytes(pickle.dumps(bodies))
            spans = len(bodies) * SPANS_PER_REQUEST
            for arm, us in _in_process_round(bodies, workdir, f"r{r}").items():
                figures.setdefault(arm, []).append(us)
            os.sync()  # the in-process arms' writeback, before the count
            for server, (used, own) in zip(
                servers, senders.burst(servers, bodies_file), strict=True
            ):
                figures.setdefault(server.arm, []).append(used / spans * 1e6)
                if server.arm == "serve":
                    figures.setdefault("serve's own process", []).append(own / spans * 1e6)
            print(
                f"round {r + 1}: " + ", ".join(f"{a} {v[-1]:.1f}" for a, v in figures.items()),
                flush=True,
            )
    finally:
        for server in servers:
            server.stop()
        senders.close()
    return figures


def _same_record(no_glue: Path, serve: Path) -> None:
    """The no-glue server stored what serve stored (runs with their parent links, nodes,
    edges): it is serve's bound only if it does the same job."""
    queries = {
        "runs": "SELECT * FROM dag_runs ORDER BY run_id",
        "nodes": "SELECT * FROM node_executions ORDER BY run_id, node_label",
        "edges": "SELECT * FROM edge_traversals ORDER BY run_id, upstream_label, downstream_label",
        "sub-runs with a parent": "SELECT run_id FROM dag_runs WHERE run_id LIKE '%-sub%' "
        "AND parent_run_id IS NOT NULL ORDER BY run_id",
    }
    counts = []
    for what, sql in queries.items():
        stored = [_read_all(db, sql) for db in (no_glue, serve)]
        assert stored[0] == stored[1], f"no glue and serve stored different {what}"
        assert stored[0], f"no {what} stored: nothing to compare"
        counts.append(f"{len(stored[0]):,} {what}")
    print(f"no glue and serve stored the same {', '.join(counts)}")


def _read_all(db: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _report(figures: dict[str, list[float]], rounds: int, spans: int) -> None:
    m = {arm: statistics.median(v) for arm, v in figures.items()}
    print(
        f"\nCPU µs per span, medians of {rounds} rounds ({spans:,} spans an arm a round, the mix):"
    )
    for arm in ("parse", "walk", "decode", "raw write", "raw+links", "write"):
        print(f"  {arm:<10} {m[arm]:6.1f}   in process")
    for arm in _ARMS:
        print(f"  {arm:<10} {m[arm]:6.1f}   every server process")
    own = m["serve's own process"]
    print(f"  {'':<10} {own:6.1f}   of which serve's own process (HTTP, no decoding)")
    ratios = [s / n for s, n in zip(figures["serve"], figures["no glue"], strict=True)]
    strict = m["walk"] + m["raw write"] + m["bare HTTP"]
    links = m["raw+links"] - m["raw write"]
    mapping = m["decode"] - m["walk"] + links
    print(
        f"bound without the mapping (walk + raw write + bare HTTP): {strict:.1f} µs, "
        f"{strict / FLOOR_US:.2f}× the {FLOOR_US:.0f} µs floor; the mapping (decode − walk, "
        f"and the parent links {links:.1f}) {mapping:.1f} µs, "
        f"{mapping / m['serve'] * 100:.0f}% of serve's"
    )
    print(
        f"no glue: {m['no glue']:.1f} µs, {m['no glue'] / FLOOR_US:.2f}× the floor; "
        f"serve {m['serve']:.1f} µs, {m['serve'] / m['no glue']:.2f}× no glue "
        f"(median of the rounds' ratios {statistics.median(ratios):.2f}; rounds: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; within 10% is ≤ 1.10); of no glue's, "
        f"the parent links {links:.1f} µs (serve / (no glue − the links): "
        f"{m['serve'] / (m['no glue'] - links):.2f})"
    )


if __name__ == "__main__":
    main()
