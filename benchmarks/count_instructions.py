"""Instructions per node and per span, counted by valgrind: steady where timing is not.

    python benchmarks/count_instructions.py [--nodes 1000] [--requests 10]

On a shared machine, CPU time moves ±5% from run to run, which hides a change of a few
percent. Instructions do not move. Each figure is a program run under valgrind's
callgrind twice, doing the work N times and zero times, and the difference divided by N.
Valgrind runs the program about 50 times slower (the background threads' periods are
stretched alike); the whole script takes a few minutes.

- the live path, per node, as lythonic's DagRunner calls it (record_node_start, then
  complete_node_with_edges with one edge): `TracedProvenance`, `dagtrace.DagProvenance`,
  and bench_runner's two bound arms (raw sqlite3; the bare SDK plus one raw commit);
- the live processor per node as bench_bridge drives it, and bridge_budget's no-glue
  arm (the bare SDK, the mapping and one raw commit);
- serve's work per span on bench_serve's requests (512 spans, the mix), in process: the
  decode (protobuf to rows) alone, then decode and the store's write;
- every process of `dagtrace serve` (two decoding processes) and of ingest_budget.py's
  no-glue server (two uvicorn processes decoding and writing raw, with the sub-runs'
  parent links as serve sets them) per span received,
  under `valgrind --trace-children=yes`: what serve's own code adds, where CPU time on
  a shared machine moves too much to tell (kernel time is not counted).

Needs `valgrind` on the PATH (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent

_CHILD = r"""
import gc, pickle, sys, tempfile
from pathlib import Path
sys.path.insert(0, {here!r})
what, n = sys.argv[1], int(sys.argv[2])
where = Path(tempfile.mkdtemp())
# Valgrind runs ~50x slower: stretch the background threads' periods alike, so they
# run as often per node as they do outside it.
from dagtrace.store.deferred import DeferredWrites
from dagtrace.store.sqlite import SqliteStore
DeferredWrites.DELAY *= 50
SqliteStore._CHECKPOINT_PERIOD *= 50
if what in ("traced", "drop-in", "raw sqlite3", "bare SDK + raw"):
    import dagtrace
    from bench_runner import RawSqlite, RawTraced
    from dagtrace.lythonic import TracedProvenance
    make = {{"traced": TracedProvenance, "drop-in": dagtrace.DagProvenance,
             "raw sqlite3": RawSqlite, "bare SDK + raw": RawTraced}}[what]
    p = make(where / "store.db")
    p.create_run("r", "bench", {{"a": 1}})
    for i in range(n):
        p.record_node_start("r", f"n{{i}}", '{{"n": 1}}', False, False)
        p.complete_node_with_edges("r", f"n{{i}}", "2", [(f"n{{i}}", f"n{{i + 1}}")])
    p.finish_run("r", "completed", None)
    p.close()
elif what in ("live processor", "no glue"):
    import bench_bridge, bridge_budget
    import dagtrace
    from opentelemetry.sdk.trace import TracerProvider
    bench_bridge.PAYLOAD = bench_bridge._payload(100)
    if what == "live processor":
        provider = dagtrace.configure(where / "live.db", forward=False)
    else:
        provider = TracerProvider()
        provider.add_span_processor(bridge_budget._MapAndCommit(where / "no-glue.db"))
    bench_bridge._traced(provider, n, "r")
    provider.shutdown()
else:
    from dagtrace.serve.codec import decode_to_rows
    from dagtrace.serve.ingest import collect_less_often
    from dagtrace.store import open_store
    collect_less_often()  # as in serve's ingest workers
    bodies = pickle.loads(Path(sys.argv[3]).read_bytes())
    store = open_store(str(where / "serve.db"), batched_writes=True)
    first = decode_to_rows(bodies[0], json_encoded=False)
    store.write_rows(first.rows, parents=first.parents)
    for body in bodies[1 : 1 + n]:
        decoded = decode_to_rows(body, json_encoded=False)
        if what == "decode + write":
            store.write_rows(decoded.rows, parents=decoded.parents)
    store.close()
"""


def _instructions(what: str, n: int, extra: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(_CHILD.format(here=str(HERE)))
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                str(script),
                what,
                str(n),
                *extra,
            ],
            capture_output=True,
            text=True,
            check=True,
            # str hashes move dict layouts, and so counts by ±1%, from run to run
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    assert found, out.stderr[-2000:]
    return int(found.group(1))


def _per_unit(what: str, n: int, extra: list[str] | None = None) -> float:
    extra = extra or []
    return (_instructions(what, n, extra) - _instructions(what, 0, extra)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the live path")
    parser.add_argument("--requests", type=int, default=10, help="requests of 512 spans")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    print(f"the live path, instructions per node ({args.nodes} nodes):")
    live = {w: _per_unit(w, args.nodes) for w in ("raw sqlite3", "drop-in")}
    live |= {w: _per_unit(w, args.nodes) for w in ("bare SDK + raw", "traced")}
    live |= {w: _per_unit(w, args.nodes) for w in ("no glue", "live processor")}
    for arm, bound in (
        ("drop-in", "raw sqlite3"),
        ("traced", "bare SDK + raw"),
        ("live processor", "no glue"),
    ):
        print(
            f"  {arm:<14} {live[arm]:>10,.0f}   its bound ({bound}) {live[bound]:>10,.0f}"
            f"   {live[arm] / live[bound]:.2f}× the bound"
        )
    sys.path.insert(0, str(HERE))
    from bench_serve import SPANS_PER_REQUEST, _encode_requests

    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "requests.pickle"
        bodies.write_bytes(pickle.dumps(_encode_requests(args.requests + 1, "count")))
        spans = args.requests * SPANS_PER_REQUEST
        print(f"serve's work, instructions per span ({args.requests} requests, bench_serve's mix):")
        decode = _per_unit("decode", args.requests, [str(bodies)]) * args.requests / spans
        both = _per_unit("decode + write", args.requests, [str(bodies)]) * args.requests / spans
    print(f"  decode (protobuf → rows)   {decode:>10,.0f}")
    print(f"  the store's write          {both - decode:>10,.0f}")
    print(f"  both                       {both:>10,.0f}")
    requests = _encode_requests(args.requests + 1, "server")
    print(f"every server process, instructions per span ({args.requests} requests):")
    servers = {arm: _server_per_span(arm, requests) for arm in ("no glue", "serve")}
    print(f"  no glue (ingest_budget.py) {servers['no glue']:>10,.0f}")
    print(
        f"  dagtrace serve             {servers['serve']:>10,.0f}"
        f"   {servers['serve'] / servers['no glue']:.2f}× no glue"
    )


def _server_per_span(arm: str, requests: list[bytes]) -> float:
    """Instructions of every process of a server posted requests[1:] one at a time,
    less those of one posted none (both warmed by requests[0], 4 at once)."""
    from bench_serve import SPANS_PER_REQUEST

    count = len(requests) - 1
    work = _server_instructions(arm, requests, count) - _server_instructions(arm, requests, 0)
    return work / (count * SPANS_PER_REQUEST)


def _server_instructions(arm: str, requests: list[bytes], count: int) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from ingest_budget import _start, _url

    headers = {"Content-Type": "application/x-protobuf"}
    os.environ["PYTHONHASHSEED"] = "0"  # as _instructions: str hashes move counts by ±1%
    with tempfile.TemporaryDirectory() as tmp:
        valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes"]
        valgrind += [f"--callgrind-out-file={tmp}/callgrind.%p", f"--log-file={tmp}/log.%p"]
        server = _start(arm, f"{tmp}/server.db", 2, under=valgrind)
        try:
            url = f"{_url(server, arm)}/v1/traces"
            with ThreadPoolExecutor(4) as warmers:
                answers = warmers.map(
                    lambda _: httpx.post(url, content=requests[0], headers=headers, timeout=600),
                    range(4),
                )
                assert {a.status_code for a in answers} == {200}
            with httpx.Client(timeout=600) as client:
                for body in requests[1 : 1 + count]:
                    assert client.post(url, content=body, headers=headers).status_code == 200
        finally:
            server.terminate()
            server.wait()
            server.stdout.close()  # type: ignore[union-attr]
        return sum(_collected(out) for out in Path(tmp).glob("callgrind.*"))


def _collected(callgrind_out: Path) -> int:
    for line in callgrind_out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
