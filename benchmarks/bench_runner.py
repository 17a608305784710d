"""What a lythonic user feels: DagRunner's time per node with each provenance, one run.

    python benchmarks/bench_runner.py [--nodes 200] [--rounds 7]

lythonic's DagRunner runs a chain of `--nodes` trivial nodes with:
- `NullProvenance` (lythonic's: the runner alone),
- lythonic 0.0.28's `DagProvenance` (rollback journal, a connection per call),
- `dagtrace.DagProvenance` (the drop-in: each call durable when it returns),
- `dagtrace.lythonic.TracedProvenance` (every write a span; an ended node committed
  before `end()` returns),
in interleaved rounds (a slow spell of the machine hits every arm of a round), each
round in a shuffled (seeded) order, each arm's run after an untimed `sync`: measured, an
arm right after lythonic's fsyncs paid ~60 µs a node more, whatever its code. The
overhead of an arm is its time per node minus the runner alone's; the ratio is
lythonic's overhead over the arm's, per round and for the medians.
Floor (issue 16): ≥ 25 for both dagtrace classes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge_budget import _MapAndCommit
from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance
from lythonic.compose.dag_provenance import NullProvenance
from lythonic.compose.dag_runner import DagRunner
from lythonic.compose.namespace import Dag
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import dagtrace
from dagtrace import conventions as c
from dagtrace._mapping import payload_attributes
from dagtrace.lythonic import TracedProvenance

FLOOR = 25.0


def step(n: int) -> int:
    return n + 1


def chain(nodes: int) -> Dag:
    dag = Dag()
    last = dag.node(step, label="n0")
    for i in range(1, nodes):
        last = last >> dag.node(step, label=f"n{i}")
    return dag


def _per_node(dag: Dag, provenance: Any, nodes: int) -> float:
    """Seconds per node of one DagRunner run (the run's own create and finish included)."""
    runner = DagRunner(dag, provenance=provenance)
    start = time.perf_counter()
    result = asyncio.run(runner.run({"n0": {"n": 0}}, dag_nsref="bench"))
    elapsed = time.perf_counter() - start
    assert result.status == "completed", result
    return elapsed / nodes


class RawSqlite:
    """The bound of the drop-in: the statements lythonic's DagRunner calls for, as raw
    sqlite3 on one connection (WAL, synchronous=NORMAL, as dagtrace), each call its own
    committed transaction (a call that returned is durable), after the two `stat`s that
    keep the file promises (a deleted or replaced file, a truncated `-shm`: refused, not
    written or SIGBUS), nothing else: no lock, no argument check, no Writer. What any
    implementation keeping dagtrace's promises pays."""

    def __init__(self, path: Path) -> None:
        dagtrace.DagProvenance(path).close()  # the same schema and indexes
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._watched = (path, Path(f"{path}-shm"))

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        for watched in self._watched:  # the file checks docs/reliability.md promises
            os.stat(watched)
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            cur.execute(sql, params)
        cur.execute("COMMIT")

    def create_run(self, run_id: str, nsref: str, inputs: Any, *args: Any, **kw: Any) -> None:
        self._write(
            (
                "INSERT INTO dag_runs (run_id, dag_nsref, status, started_at, "
                "source_inputs_json) VALUES (?, ?, 'running', ?, ?)",
                (run_id, nsref, time.time(), json.dumps(inputs)),
            )
        )

    def record_node_start(
        self,
        run_id: str,
        label: str,
        input_json: str,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> None:
        self._write(
            (
                "INSERT OR REPLACE INTO node_executions (run_id, node_label, status, "
                "is_source, is_sink, input_json, started_at) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (run_id, label, int(is_source), int(is_sink), input_json, time.time()),
            )
        )

    def complete_node_with_edges(
        self, run_id: str, label: str, output_json: str, edges: list[tuple[str, str]]
    ) -> None:
        now = time.time()
        self._write(
            (
                "UPDATE node_executions SET status = 'completed', output_json = ?, "
                "finished_at = ? WHERE run_id = ? AND node_label = ?",
                (output_json, now, run_id, label),
            ),
            *(
                (
                    "INSERT INTO edge_traversals (run_id, upstream_label, downstream_label, "
                    "traversed_at) VALUES (?, ?, ?, ?)",
                    (run_id, up, down, now),
                )
                for up, down in edges
            ),
        )

    def finish_run(self, run_id: str, status: str, sink_outputs_json: str | None = None) -> None:
        self._write(
            (
                "UPDATE dag_runs SET status = ?, finished_at = ?, sink_outputs_json = ? "
                "WHERE run_id = ?",
                (status, time.time(), sink_outputs_json, run_id),
            )
        )

    def close(self) -> None:
        self._conn.close()


class RawTraced:
    """The bound of `TracedProvenance`: the same spans (a run span, a node span with its
    input, output, their lengths (the conventions' check for a cut payload) and a
    `dag.edge` event) through the bare SDK, and at each node span's
    end bridge_budget's no-glue processor: the shared mapping to the node's rows and one
    raw sqlite3 commit of them after the two file checks (an ended node is committed
    before `end()` returns, its writes versioned as docs/conventions.md promises). No
    deferred start, no lythonic argument checks, no glue."""

    def __init__(self, path: Path) -> None:
        self._raw = RawSqlite(path)
        self._map_and_commit = _MapAndCommit(path)
        provider = TracerProvider()
        provider.add_span_processor(self._map_and_commit)
        self._tracer = provider.get_tracer("bound")
        self._runs: dict[str, Any] = {}
        self._nodes: dict[tuple[str, str], Any] = {}

    def create_run(self, run_id: str, nsref: str, inputs: Any, *args: Any, **kw: Any) -> None:
        self._runs[run_id] = self._tracer.start_span(
            nsref, attributes={c.KIND: c.KIND_RUN, c.RUN_ID: run_id, c.NSREF: nsref}
        )
        self._raw.create_run(run_id, nsref, inputs)

    def record_node_start(
        self,
        run_id: str,
        label: str,
        input_json: str,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> None:
        context = trace.set_span_in_context(self._runs[run_id])
        self._nodes[(run_id, label)] = self._tracer.start_span(
            label,
            context=context,
            attributes={
                c.KIND: c.KIND_NODE,
                c.RUN_ID: run_id,
                c.NODE_LABEL: label,
                **payload_attributes(c.NODE_INPUT, input_json),
            },
        )

    def complete_node_with_edges(
        self, run_id: str, label: str, output_json: str, edges: list[tuple[str, str]]
    ) -> None:
        span = self._nodes.pop((run_id, label))
        span.set_attributes(payload_attributes(c.NODE_OUTPUT, output_json))
        span.add_event(c.EDGE_EVENT, {c.EDGE_DOWNSTREAM: [down for _, down in edges]})
        span.end()

    def finish_run(self, run_id: str, status: str, sink_outputs_json: str | None = None) -> None:
        self._runs.pop(run_id).end()
        self._raw.finish_run(run_id, status, sink_outputs_json)

    def close(self) -> None:
        self._map_and_commit.conn.close()
        self._raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    dag = chain(args.nodes)
    where = Path(tempfile.mkdtemp(prefix="dagtrace-bench-runner-"))
    arms: dict[str, Callable[[], Any]] = {
        "runner alone": NullProvenance,
        "lythonic DagProvenance": lambda: LythonicProvenance(where / "lythonic.db"),
        "dagtrace.DagProvenance": lambda: dagtrace.DagProvenance(where / "dropin.db"),
        "TracedProvenance": lambda: TracedProvenance(where / "traced.db"),
        "raw sqlite3 (bound)": lambda: RawSqlite(where / "raw.db"),
        "bare SDK + raw (bound)": lambda: RawTraced(where / "raw-traced.db"),
    }
    made = {name: make() for name, make in arms.items()}
    for prov in made.values():  # warm-up: imports, schema, first connections
        _per_node(dag, prov, args.nodes)
    samples: dict[str, list[float]] = {name: [] for name in arms}
    print(f"DagRunner, a chain of {args.nodes} nodes, {args.rounds} interleaved rounds")
    print(f"{'round':>5}  " + "  ".join(f"{n:>24}" for n in arms) + "   ratio drop-in / traced")
    order, shuffle = list(made), random.Random(16).shuffle
    for r in range(args.rounds):
        shuffle(order)  # no arm always runs right after another's writes settle
        for name in order:
            os.sync()  # each arm starts with no other arm's writes in flight (untimed)
            samples[name].append(_per_node(dag, made[name], args.nodes))
        alone, lyth = samples["runner alone"][-1], samples["lythonic DagProvenance"][-1]
        drop = (lyth - alone) / max(samples["dagtrace.DagProvenance"][-1] - alone, 1e-9)
        traced = (lyth - alone) / max(samples["TracedProvenance"][-1] - alone, 1e-9)
        cells = "  ".join(f"{samples[n][-1] * 1e6:>21.0f} µs" for n in arms)
        print(f"{r + 1:>5}  {cells}   {drop:6.1f}× / {traced:6.1f}×")
    medians = {name: statistics.median(s) for name, s in samples.items()}
    # An arm's overhead: the median over rounds of its time minus the runner alone's in
    # the same round (paired, so a slow spell of the machine cancels out).
    overheads = {
        name: statistics.median(a - b for a, b in zip(s, samples["runner alone"], strict=True))
        for name, s in samples.items()
    }
    lyth_overhead = overheads["lythonic DagProvenance"]
    print("\nmedians per node, and overhead over the runner alone (median of paired rounds):")
    for name, value in medians.items():
        overhead = overheads[name]
        line = f"  {name:<24} {value * 1e6:8.0f} µs   overhead {overhead * 1e6:8.0f} µs"
        if name not in ("runner alone", "lythonic DagProvenance") and "bound" not in name:
            ratio = lyth_overhead / max(overhead, 1e-9)
            verdict = "meets" if ratio >= FLOOR else "below"
            line += (
                f"   lythonic's overhead / this = {ratio:5.1f}× ({verdict} the {FLOOR:.0f}× floor)"
            )
        print(line)
    print()
    for arm, bound_arm in (
        ("dagtrace.DagProvenance", "raw sqlite3 (bound)"),
        ("TracedProvenance", "bare SDK + raw (bound)"),
    ):
        bound = overheads[bound_arm]
        print(
            f"{arm}: its bound ({bound_arm}) has overhead {bound * 1e6:.0f} µs = lythonic's / "
            f"{lyth_overhead / max(bound, 1e-9):.1f}; {arm}'s overhead is "
            f"{overheads[arm] / max(bound, 1e-9):.2f}× its bound (target ≤ 1.10×)"
        )
    for prov in made.values():
        close = getattr(prov, "close", None)
        if close is not None:
            close()


if __name__ == "__main__":
    main()
