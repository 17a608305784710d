"""Instrumented runner → store, nodes per second, against the bare OTel SDK and lythonic.

    python benchmarks/bench_bridge.py [--nodes 3000]

Every arm makes identical spans through `dagtrace.DagTracer` (a run, then per node
a span with its dag.* attributes, an input and an output of --payload-bytes JSON,
and one edge event; start markers only with --start-markers):
- bare SDK: a TracerProvider with no processor (the ceiling: spans cost this anyway);
- dagtrace live: `dagtrace.configure(db)`, the live processor, default durability;
- dagtrace exporter: BatchSpanProcessor(DagtraceSpanExporter), as OTEL_TRACES_EXPORTER=dagtrace;
- lythonic: its DagProvenance driven as DagRunner drives it, same payloads, no spans.
The clock stops after the provider's flush; a read then checks that every node is
stored (untimed: it is the reader's cost, not the processor's). Rounds run the arms in
a shuffled (seeded) order, each after an untimed `sync`: an arm right after lythonic's
fsyncs or another's writes would pay for their writeback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import dagtrace

MARKERS = False

PAYLOAD: object = None  # set from --payload-bytes


def _payload(size: int) -> object:
    """A JSON-able value whose JSON is about `size` bytes."""
    rows, text = [], "[]"
    while len(text) < size:
        rows.append({"id": len(rows), "name": f"row-{len(rows)}", "ok": True})
        text = json.dumps(rows)
    return rows


def _traced(provider: TracerProvider, nodes: int, run_id: str) -> None:
    tracer = dagtrace.DagTracer(provider, start_markers=MARKERS)
    with tracer.run("bench", run_id=run_id, inputs={"n": nodes}) as run:
        for i in range(nodes):
            with run.node(f"n{i}", input=PAYLOAD, is_source=i == 0) as node:
                node.set_output(PAYLOAD)
                node.edge(f"n{i + 1}")


def _bare(nodes: int, _workdir: Path, run_id: str) -> float:
    provider = TracerProvider()
    start = time.perf_counter()
    _traced(provider, nodes, run_id)
    provider.force_flush()
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return elapsed


def _live(nodes: int, workdir: Path, run_id: str) -> float:
    provider = dagtrace.configure(workdir / "live.db", forward=False)
    prov = dagtrace.DagProvenance(workdir / "live.db")
    start = time.perf_counter()
    _traced(provider, nodes, run_id)
    provider.force_flush()
    elapsed = time.perf_counter() - start
    assert len(prov.get_node_executions(run_id)) == nodes
    provider.shutdown()
    return elapsed


def _exporter(nodes: int, workdir: Path, run_id: str) -> float:
    provider = TracerProvider()
    provider.add_span_processor(
        # The default queue (2048) drops spans in a burst this size: size it, as
        # docs/conventions.md says (OTEL_BSP_MAX_QUEUE_SIZE).
        BatchSpanProcessor(
            dagtrace.DagtraceSpanExporter(workdir / "exported.db"), max_queue_size=1 << 16
        )
    )
    prov = dagtrace.DagProvenance(workdir / "exported.db")
    start = time.perf_counter()
    _traced(provider, nodes, run_id)
    provider.force_flush()
    elapsed = time.perf_counter() - start
    assert len(prov.get_node_executions(run_id)) == nodes
    provider.shutdown()
    return elapsed


def _lythonic(nodes: int, workdir: Path, run_id: str) -> float:
    prov = LythonicProvenance(workdir / "lythonic.db")
    start = time.perf_counter()
    prov.create_run(run_id, "bench", {"n": nodes})
    for i in range(nodes):  # serialising the payloads per node, as DagRunner does
        prov.record_node_start(run_id, f"n{i}", json.dumps(PAYLOAD), is_source=i == 0)
        prov.complete_node_with_edges(
            run_id, f"n{i}", json.dumps(PAYLOAD), [(f"n{i}", f"n{i + 1}")]
        )
    prov.finish_run(run_id, "completed", "{}")
    elapsed = time.perf_counter() - start
    assert len(prov.get_node_executions(run_id)) == nodes
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--payload-bytes",
        type=int,
        default=100,
        help="JSON size of each node's input and output (default 100)",
    )
    parser.add_argument(
        "--start-markers",
        action="store_true",
        help="emit start markers in every arm (as when forwarding over OTLP)",
    )
    args = parser.parse_args()
    global PAYLOAD, MARKERS
    PAYLOAD, MARKERS = _payload(args.payload_bytes), args.start_markers
    print(
        f"{args.nodes} nodes per round, payloads {len(json.dumps(PAYLOAD))} B, "
        f"start markers {'on' if MARKERS else 'off'} in every arm"
    )
    workdir = Path(tempfile.mkdtemp(prefix="dagtrace-bench-bridge-"))
    arms: dict[str, Any] = {
        "bare OTel SDK": (_bare, args.nodes),
        "dagtrace live processor": (_live, args.nodes),
        "dagtrace exporter (batch)": (_exporter, args.nodes),
        "lythonic DagProvenance": (_lythonic, max(args.nodes // 10, 200)),
    }
    for name, (arm, nodes) in arms.items():
        arm(min(nodes, 200), workdir, f"warm-{name}")
    # Rounds interleave the arms, so a slow spell of this shared machine slows every
    # arm of a round alike instead of one arm's every round.
    times: dict[str, list[float]] = {name: [] for name in arms}
    order, shuffle = list(arms), random.Random(16).shuffle
    for r in range(args.rounds):
        shuffle(order)
        for name in order:
            arm, nodes = arms[name]
            os.sync()  # no arm pays for another's writes still in flight (untimed)
            times[name].append(arm(nodes, workdir, f"{name}-{r}") / nodes * 1e6)
    per_node_us = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n{'arm':<28}{'µs/node':>10}{'nodes/s':>12}")
    for name, us in per_node_us.items():
        print(f"{name:<28}{us:>10.1f}{1e6 / us:>12,.0f}")
    bare, live = per_node_us["bare OTel SDK"], per_node_us["dagtrace live processor"]
    lyth, exported = per_node_us["lythonic DagProvenance"], per_node_us["dagtrace exporter (batch)"]
    live_vs_lythonic = [
        ly / li
        for ly, li in zip(
            times["lythonic DagProvenance"], times["dagtrace live processor"], strict=True
        )
    ]
    live_vs_bare = [
        li / ba
        for li, ba in zip(times["dagtrace live processor"], times["bare OTel SDK"], strict=True)
    ]
    print()
    print("per round, live vs lythonic: " + "  ".join(f"{x:.1f}×" for x in live_vs_lythonic))
    print("per round, live vs bare SDK: " + "  ".join(f"{x:.2f}×" for x in live_vs_bare))
    print()
    print(f"live processor vs lythonic:    {lyth / live:5.1f}× faster")
    print(f"live processor vs bare SDK:    {live / bare:5.2f}× the cost (floor ≤ 2.5×)")
    print(f"exporter vs lythonic:          {lyth / exported:5.1f}× faster")
    print(f"exporter vs bare SDK:          {exported / bare:5.2f}× the cost")


if __name__ == "__main__":
    main()
