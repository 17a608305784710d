"""dagtrace.DagProvenance against lythonic 0.0.28's, same workloads, one run, ratios printed.

    python benchmarks/bench_store.py [--runs 100000] [--quick]

Workloads (default durability on both sides: lythonic's rollback journal with a
connection per call, dagtrace's WAL + synchronous=NORMAL, both SIGKILL-safe):
- writes: record_node_start + complete_node_with_edges per node, as DagRunner drives them;
- get_recent_runs(20) and get_child_runs on a store of --runs runs of 5 nodes each,
  plus one run with 1,000 nodes and 100 sub-DAG runs; bulk-loaded once with SQL and
  copied, so each library reads its own copy;
- inspect_run of that big run.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance

import dagtrace

FLOORS = {"writes": 20.0, "get_recent_runs(20)": 50.0, "get_child_runs": 50.0, "inspect_run": 2.0}
PAYLOAD = '{"rows": [' + ", ".join(['{"id": 1, "name": "x"}'] * 10) + "]}"


def _rate_of_writes(prov: Any, nodes: int, rounds: int = 3) -> float:
    """Median nodes/s over `rounds` runs of `nodes` nodes each."""
    rates = []
    for r in range(rounds):
        run_id = f"w{r}"
        prov.create_run(run_id, "bench", {"x": 1})
        start = time.perf_counter()
        for i in range(nodes):
            label = f"n{i}"
            prov.record_node_start(run_id, label, PAYLOAD, is_source=i == 0)
            prov.complete_node_with_edges(run_id, label, PAYLOAD, [(label, f"n{i + 1}")])
        rates.append(nodes / (time.perf_counter() - start))
    return statistics.median(rates)


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches the same way for both libraries
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _bulk_load(path: Path, runs: int) -> None:
    """`runs` runs of 5 nodes and 4 edges, and run `big` with 1,000 nodes and 100 sub-DAG runs."""
    LythonicProvenance(path)  # lythonic's own DDL: no index, as lythonic users have it
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    t0 = 1_700_000_000.0
    labels = [f"step{j}" for j in range(5)]

    def run_rows() -> Any:
        for i in range(runs):
            yield (f"run{i}", "bench/dag", None, "completed", t0 + i, t0 + i + 0.5, "{}", "{}")

    def node_rows() -> Any:
        for i in range(runs):
            for j, label in enumerate(labels):
                yield (f"run{i}", label, "completed", int(j == 0), int(j == 4), PAYLOAD, PAYLOAD,
                       t0 + i + j / 10, t0 + i + j / 10 + 0.05, None)

    def edge_rows() -> Any:
        for i in range(runs):
            for j in range(4):
                yield (f"run{i}", labels[j], labels[j + 1], t0 + i + j / 10 + 0.06)

    conn.executemany("INSERT INTO dag_runs (run_id, dag_nsref, parent_run_id, status, started_at, "
                     "finished_at, source_inputs_json, sink_outputs_json) VALUES (?,?,?,?,?,?,?,?)",
                     run_rows())
    node_sql = ("INSERT INTO node_executions (run_id, node_label, status, is_source, is_sink, "
                "input_json, output_json, started_at, finished_at, error) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)")
    conn.executemany(node_sql, node_rows())
    conn.executemany("INSERT INTO edge_traversals VALUES (?,?,?,?)", edge_rows())
    big_start = t0 + runs / 2
    conn.execute("INSERT INTO dag_runs VALUES ('big', 'bench/big', NULL, 'completed', ?, ?, "
                 "'{}', '{}', NULL)", (big_start, big_start + 60))
    conn.executemany(node_sql, [("big", "m" if k == 0 else f"node{k}", "completed", 0, 0,
                                 PAYLOAD, PAYLOAD, big_start + k / 100, big_start + k / 100 + 0.005,
                                 None) for k in range(1000)])
    conn.executemany("INSERT INTO edge_traversals VALUES (?,?,?,?)",
                     [("big", f"node{k}", f"node{k + 1}", big_start + k / 100 + 0.006)
                      for k in range(1, 999)])
    for c in range(100):
        child = f"big.{c}"
        conn.execute("INSERT INTO dag_runs VALUES (?, ?, 'big', 'completed', ?, ?, '{}', '{}', "
                     "NULL)", (child, f"bench/big/m[{c}]", big_start + c / 10, big_start + c / 10 + 1))
        conn.executemany(node_sql, [(child, lb, "completed", 0, 0, PAYLOAD, PAYLOAD,
                                     big_start + c / 10 + j / 100, big_start + c / 10 + j / 100 + 0.001,
                                     None) for j, lb in enumerate(labels)])
    conn.commit()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the read store")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dagtrace-bench-"))
    results: list[tuple[str, str, float, float]] = []  # name, unit, lythonic, dagtrace

    nodes = 300 if args.quick else 2000
    lyth_rate = _rate_of_writes(LythonicProvenance(workdir / "lw.db"), max(nodes // 10, 100))
    ours_rate = _rate_of_writes(dagtrace.DagProvenance(workdir / "dw.db"), nodes)
    results.append(("writes", "nodes/s", lyth_rate, ours_rate))

    print(f"bulk-loading {args.runs:,} runs …", flush=True)
    template = workdir / "template.db"
    _bulk_load(template, args.runs)
    shutil.copy(template, workdir / "lr.db")
    shutil.copy(template, workdir / "dr.db")
    lyth = LythonicProvenance(workdir / "lr.db")
    ours = dagtrace.DagProvenance(workdir / "dr.db")  # opening adds dagtrace's indexes
    slow, fast = (3, 30) if args.quick else (10, 200)
    for name, call in [
        ("get_recent_runs(20)", lambda p: p.get_recent_runs(20)),
        ("get_child_runs", lambda p: p.get_child_runs("big")),
        ("inspect_run", lambda p: p.inspect_run("big")),
    ]:
        theirs = _median_seconds(lambda: call(lyth), slow)
        mine = _median_seconds(lambda: call(ours), fast)
        assert [r.model_dump() for r in _as_list(call(ours))] == [
            r.model_dump() for r in _as_list(call(lyth))
        ], f"{name}: dagtrace and lythonic disagree"
        results.append((name, "ms", theirs * 1000, mine * 1000))

    print(f"\n{'workload':<22}{'lythonic 0.0.28':>18}{'dagtrace':>14}{'ratio':>9}{'floor':>8}")
    failed = False
    for name, unit, theirs, mine in results:
        ratio = mine / theirs if unit == "nodes/s" else theirs / mine
        ok = ratio >= FLOORS[name]
        failed |= not ok
        print(f"{name:<22}{theirs:>12.2f} {unit:<6}{mine:>9.2f} {unit:<6}{ratio:>6.1f}×"
              f"{FLOORS[name]:>6.0f}× {'ok' if ok else 'BELOW FLOOR'}")
    shutil.rmtree(workdir)
    if failed:
        print("\nsome figures are below their floor (this machine may be noisy: rerun)")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


if __name__ == "__main__":
    main()
