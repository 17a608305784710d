"""What bounds the live processor: the parts every traced node pays, against 2.5× the bare SDK.

    python benchmarks/bridge_budget.py [--nodes 3000] [--rounds 5]

Measured in one run, each as the median of --rounds:
- lythonic: its DagProvenance as DagRunner drives it (as in bench_bridge.py), for scale;
- bare SDK: the same node spans with no processor (the SDK's own work);
- raw commit: the two `stat`s that keep the file promises (docs/reliability.md), then
  the live processor's own statements for one ended node (BEGIN IMMEDIATE, node
  upsert, edge upsert, COMMIT) with the mapping's rows, on a WAL file, straight from
  sqlite3, with no Python around them;
- mapping: one ended SDK span through the shared mapping to its row tuples;
- no glue: the bare SDK's spans with, at each node's end, the mapping to its rows and
  one raw commit of them (the promise: an ended node is committed before `end()`
  returns), in a bare SpanProcessor;
- live processor: `bench_bridge.py`'s live arm, in the same rounds.
The no-glue arm is what a live processor cannot go below. When it is above the 2.5×
floor, the commit bounds the live processor, which is then held to within 10% of it.
The parts alone sum to less: run apart, none pays for the cache misses of the others.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import bench_bridge as bridge
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import dagtrace
from dagtrace.bridge import record_from_sdk_span
from dagtrace.store.rows import Rows, rows_for
from dagtrace.store.writer import _EDGE_UPSERT_SQL, _NODE_UPSERT_SQL

_NO_GLUE = "no glue: bare SDK, mapping, raw commit"


def _raw_connection(path: Path, *, batched_writes: bool = False) -> sqlite3.Connection:
    """The store's schema and WAL (2 KiB pages; 8 KiB for `batched_writes`, as serve
    makes them), then a plain sqlite3 connection to it at the default durability."""
    dagtrace.SqliteStore(path, batched_writes=batched_writes).close()
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _commit(cur: sqlite3.Cursor, rows: Rows, watched: tuple[Path, Path]) -> None:
    """One node's rows in one transaction, after the two `stat`s that keep the file
    promises (docs/reliability.md; as bench_runner's raw arm)."""
    for path in watched:
        os.stat(path)
    cur.execute("BEGIN IMMEDIATE")
    for node in rows.nodes:
        cur.execute(_NODE_UPSERT_SQL, node)
    for edge in rows.edges:
        cur.execute(_EDGE_UPSERT_SQL, edge)
    cur.execute("COMMIT")


def _raw_commit_us(workdir: Path, node_rows: list[Rows], tag: str) -> float:
    """Each ended node's own rows (from the mapping, made beforehand), one committed
    transaction a node, straight from sqlite3."""
    path = workdir / f"raw-{tag}.db"
    conn, watched = _raw_connection(path), (path, Path(f"{path}-shm"))
    cur = conn.cursor()
    start = time.perf_counter()
    for rows in node_rows:
        _commit(cur, rows, watched)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / len(node_rows) * 1e6


class _MapAndCommit(SpanProcessor):
    """At each node span's end, the shared mapping to its rows and one raw commit of
    them, before `end()` returns: a live processor with no glue at all."""

    def __init__(self, path: Path) -> None:
        self.conn = _raw_connection(path)
        self._cur, self._watched = self.conn.cursor(), (path, Path(f"{path}-shm"))

    def on_end(self, span: ReadableSpan) -> None:
        if (span.attributes or {}).get("dag.kind") == "node":
            record = record_from_sdk_span(span, ended=True)
            _commit(self._cur, rows_for([record]), self._watched)  # type: ignore[list-item]


def _no_glue_us(workdir: Path, nodes: int, tag: str) -> float:
    """The bare SDK's spans, the mapping and the raw commits together: each pays the
    others' cache misses, as in a traced program (the parts alone sum to less)."""
    processor = _MapAndCommit(workdir / f"no-glue-{tag}.db")
    provider = TracerProvider()
    provider.add_span_processor(processor)
    start = time.perf_counter()
    bridge._traced(provider, nodes, "r")
    provider.force_flush()
    elapsed = time.perf_counter() - start
    processor.conn.close()
    return elapsed / nodes * 1e6


class _Keep(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _mapping_us(nodes: int) -> tuple[float, list[Rows]]:
    keep = _Keep()
    provider = TracerProvider()
    provider.add_span_processor(keep)
    bridge._traced(provider, nodes, "mapping")
    spans = [s for s in keep.spans if (s.attributes or {}).get("dag.kind") == "node"]
    start = time.perf_counter()
    rows = [rows_for([record_from_sdk_span(span, ended=True)]) for span in spans]  # type: ignore[list-item]
    return (time.perf_counter() - start) / len(spans) * 1e6, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bridge.PAYLOAD = bridge._payload(100)
    workdir = Path(tempfile.mkdtemp(prefix="dagtrace-bridge-budget-"))
    parts: dict[str, list[float]] = {
        "lythonic": [],
        "bare SDK": [],
        "raw commit": [],
        "mapping": [],
        _NO_GLUE: [],
        "live processor": [],
    }
    lythonic_nodes = max(args.nodes // 10, 200)
    bridge._live(200, workdir, "warm")
    arms = {
        "lythonic": lambda r: (
            bridge._lythonic(lythonic_nodes, workdir, f"l{r}") / lythonic_nodes * 1e6
        ),
        "bare SDK": lambda r: bridge._bare(args.nodes, workdir, f"b{r}") / args.nodes * 1e6,
        "raw commit": lambda r: _raw_commit_us(workdir, node_rows, str(r)),
        _NO_GLUE: lambda r: _no_glue_us(workdir, args.nodes, str(r)),
        "live processor": lambda r: bridge._live(args.nodes, workdir, f"v{r}") / args.nodes * 1e6,
    }
    order, shuffle = list(arms), random.Random(16).shuffle
    for r in range(args.rounds):
        mapping_us, node_rows = _mapping_us(args.nodes)
        parts["mapping"].append(mapping_us)
        shuffle(order)  # as bench_bridge: no arm always runs after another's writes
        for name in order:
            os.sync()  # untimed
            parts[name].append(arms[name](r))
    us = {name: statistics.median(values) for name, values in parts.items()}
    bare, live = us["bare SDK"], us["live processor"]
    bound, bounds = us[_NO_GLUE], parts[_NO_GLUE]
    for name, value in us.items():
        print(f"{name:<40}{value:>8.1f} µs/node")
    rows = (
        ("floor, 2.5× the bare SDK", 2.5 * bare),
        ("parts alone: bare SDK + raw commit + mapping", bare + us["raw commit"] + us["mapping"]),
        ("bound: the no-glue arm", bound),
        ("live processor", live),
    )
    print()
    for name, value in rows:
        print(f"{name:<46}{value:>8.1f} µs/node = {value / bare:.2f}× the bare SDK")
    print(f"live processor against the bound: {live / bound:.2f}× (within 10%: ≤ 1.10×)")
    print(
        "per round, live against the bound: "
        + "  ".join(f"{v / b:.2f}×" for v, b in zip(parts["live processor"], bounds, strict=True))
    )


if __name__ == "__main__":
    main()
