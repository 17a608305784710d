"""What bounds the live processor: the parts every traced node pays, against lythonic/20.

    python benchmarks/bridge_budget.py [--nodes 3000] [--rounds 5]

Measured in one run, each as the median of --rounds:
- lythonic: its DagProvenance as DagRunner drives it (as in bench_bridge.py); a
  live processor 20× faster must stay under a twentieth of it;
- bare SDK: the same node spans with no processor (the SDK's own work);
- raw commit: the live processor's own statements for one ended node (BEGIN
  IMMEDIATE, node upsert, edge upsert, COMMIT) on a WAL file, straight from
  sqlite3, with no mapping and no Python around them;
- mapping: one ended SDK span through the shared mapping to its row tuples.
The sum of the last three is what a live processor cannot go below.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import bench_bridge as bridge
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import dagtrace
from dagtrace.bridge import record_from_sdk_span
from dagtrace.store.rows import rows_for
from dagtrace.store.writer import _EDGE_UPSERT_SQL, _NODE_UPSERT_SQL


def _raw_commit_us(workdir: Path, nodes: int, tag: str) -> float:
    path = workdir / f"raw-{tag}.db"
    dagtrace.SqliteStore(path).close()  # the schema, WAL, 2 KiB pages
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    cur = conn.cursor()
    payload = "x" * 120
    start = time.perf_counter()
    for i in range(nodes):
        cur.execute("BEGIN IMMEDIATE")
        node = ("r", f"n{i}", "completed", 0, 0, payload, payload, 1.0, 2.0, None)
        cur.execute(_NODE_UPSERT_SQL, (*node, "a" * 32, "b" * 16, 1, 1, None))
        cur.execute(_EDGE_UPSERT_SQL, ("r", f"n{i}", f"n{i + 1}", 2.0))
        cur.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / nodes * 1e6


class _Keep(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _mapping_us(nodes: int) -> float:
    keep = _Keep()
    provider = TracerProvider()
    provider.add_span_processor(keep)
    bridge._traced(provider, nodes, "mapping")
    spans = [s for s in keep.spans if (s.attributes or {}).get("dag.kind") == "node"]
    start = time.perf_counter()
    for span in spans:
        rows_for([record_from_sdk_span(span, ended=True)])  # type: ignore[list-item]
    return (time.perf_counter() - start) / len(spans) * 1e6


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
    }
    lythonic_nodes = max(args.nodes // 10, 200)
    for r in range(args.rounds):
        parts["lythonic"].append(
            bridge._lythonic(lythonic_nodes, workdir, f"l{r}") / lythonic_nodes * 1e6
        )
        parts["bare SDK"].append(bridge._bare(args.nodes, workdir, f"b{r}") / args.nodes * 1e6)
        parts["raw commit"].append(_raw_commit_us(workdir, args.nodes, str(r)))
        parts["mapping"].append(_mapping_us(args.nodes))
    us = {name: statistics.median(values) for name, values in parts.items()}
    budget = us["lythonic"] / 20
    floor = us["bare SDK"] + us["raw commit"] + us["mapping"]
    for name, value in us.items():
        print(f"{name:<12}{value:>10.1f} µs/node")
    print(f"\nbudget for a live processor 20× faster than lythonic: {budget:6.1f} µs/node")
    print(f"bare SDK + raw commit + mapping (no glue at all):      {floor:6.1f} µs/node")
    print(f"left for everything else:                              {budget - floor:6.1f} µs/node")


if __name__ == "__main__":
    main()
