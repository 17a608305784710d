"""dagtrace.DagProvenance against lythonic 0.0.28's, same workloads, one run, ratios printed.

    python benchmarks/bench_store.py [--runs 100000] [--quick] [--postgres URL]

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


def _dataset(
    runs: int,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """`runs` runs of 5 nodes and 4 edges, and run `big`: 1,000 nodes and 999 edges (a
    chain from its map node `m`), `m` mapped over 100 sub-DAG runs of 10 nodes and 9
    edges each (the shape of issue #16 and bench_view.py): rows of dag_runs,
    node_executions and edge_traversals."""
    t0 = 1_700_000_000.0
    labels = [f"step{j}" for j in range(5)]
    run_rows: list[tuple[Any, ...]] = []
    node_rows: list[tuple[Any, ...]] = []
    edge_rows: list[tuple[Any, ...]] = []
    for i in range(runs):
        run_rows.append(
            (f"run{i}", "bench/dag", None, "completed", t0 + i, t0 + i + 0.5, "{}", "{}", None)
        )
        for j, label in enumerate(labels):
            node_rows.append(
                (
                    f"run{i}",
                    label,
                    "completed",
                    int(j == 0),
                    int(j == 4),
                    PAYLOAD,
                    PAYLOAD,
                    t0 + i + j / 10,
                    t0 + i + j / 10 + 0.05,
                    None,
                )
            )
        for j in range(4):
            edge_rows.append((f"run{i}", labels[j], labels[j + 1], t0 + i + j / 10 + 0.06))
    big = t0 + runs / 2
    run_rows.append(("big", "bench/big", None, "completed", big, big + 60, "{}", "{}", None))
    big_labels = ["m", *(f"node{k}" for k in range(1, 1000))]
    for k, label in enumerate(big_labels):
        start = big + k / 100
        node_rows.append(
            (
                "big",
                label,
                "completed",
                int(k == 0),
                int(k == 999),
                PAYLOAD,
                PAYLOAD,
                start,
                start + 0.005,
                None,
            )
        )
        if k:
            edge_rows.append(("big", big_labels[k - 1], label, start - 0.004))
    sub_labels = [f"s{j}" for j in range(10)]
    for c in range(100):
        child, start = f"big.{c}", big + c / 10
        run_rows.append(
            (child, f"bench/big/m[{c}]", "big", "completed", start, start + 1, "{}", "{}", None)
        )
        for j, label in enumerate(sub_labels):
            at = start + j / 100
            node_rows.append(
                (
                    child,
                    label,
                    "completed",
                    int(j == 0),
                    int(j == 9),
                    PAYLOAD,
                    PAYLOAD,
                    at,
                    at + 0.001,
                    None,
                )
            )
            if j:
                edge_rows.append((child, sub_labels[j - 1], label, at - 0.0005))
    return run_rows, node_rows, edge_rows


_RUN_COLS = (
    "run_id, dag_nsref, parent_run_id, status, started_at, finished_at, "
    "source_inputs_json, sink_outputs_json, initiated_by"
)
_NODE_COLS = (
    "run_id, node_label, status, is_source, is_sink, input_json, output_json, "
    "started_at, finished_at, error"
)
_EDGE_COLS = "run_id, upstream_label, downstream_label, traversed_at"


def _bulk_load(path: Path, runs: int) -> None:
    """Into a SQLite file with lythonic's own DDL: no index, as lythonic users have it."""
    LythonicProvenance(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    run_rows, node_rows, edge_rows = _dataset(runs)
    conn.executemany(f"INSERT INTO dag_runs ({_RUN_COLS}) VALUES ({','.join('?' * 9)})", run_rows)
    conn.executemany(
        f"INSERT INTO node_executions ({_NODE_COLS}) VALUES ({','.join('?' * 10)})", node_rows
    )
    conn.executemany(f"INSERT INTO edge_traversals ({_EDGE_COLS}) VALUES (?,?,?,?)", edge_rows)
    conn.commit()
    conn.close()


def _bulk_load_postgres(url: str, runs: int) -> None:
    """The same rows into a PostgreSQL schema dagtrace created, with COPY."""
    import psycopg

    dagtrace.DagProvenance(url).close()  # the schema, with dagtrace's indexes
    run_rows, node_rows, edge_rows = _dataset(runs)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for table, cols, rows in (
            ("dag_runs", _RUN_COLS, run_rows),
            ("node_executions", _NODE_COLS, node_rows),
            ("edge_traversals", _EDGE_COLS, edge_rows),
        ):
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        cur.execute("ANALYZE")


def _fresh_schema(base_url: str) -> str:
    import uuid
    from urllib.parse import quote

    import psycopg

    schema = f"dagtrace_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"


def _drop_schema(base_url: str, url: str) -> None:
    import psycopg

    schema = url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the read store")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="also run every workload on this PostgreSQL database "
        "(in a fresh schema), e.g. postgresql://postgres@127.0.0.1:5432/test",
    )
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
    for name, call in READS:
        theirs = _median_seconds(lambda call=call: call(lyth), slow)
        mine = _median_seconds(lambda call=call: call(ours), fast)
        assert [r.model_dump() for r in _as_list(call(ours))] == [
            r.model_dump() for r in _as_list(call(lyth))
        ], f"{name}: dagtrace and lythonic disagree"
        results.append((name, "ms", theirs * 1000, mine * 1000))
    postgres = _postgres_figures(args, nodes, fast) if args.postgres else {}

    print(
        f"\n{'workload':<22}{'lythonic 0.0.28':>18}{'dagtrace SQLite':>18}{'ratio':>9}"
        f"{'floor':>8}" + (f"{'dagtrace PostgreSQL':>22}{'ratio':>9}" if postgres else "")
    )
    failed = False
    for name, unit, theirs, mine in results:
        ratio = mine / theirs if unit == "nodes/s" else theirs / mine
        ok = ratio >= FLOORS[name]
        failed |= not ok
        line = (
            f"{name:<22}{theirs:>12.2f} {unit:<6}{mine:>12.2f} {unit:<6}{ratio:>6.1f}×"
            f"{FLOORS[name]:>6.0f}× {'ok' if ok else 'BELOW FLOOR':<12}"
        )
        if name in postgres:
            pg = postgres[name]
            pg_ratio = pg / theirs if unit == "nodes/s" else theirs / pg
            line += f"{pg:>12.2f} {unit:<6}{pg_ratio:>6.1f}×"
        print(line)
    shutil.rmtree(workdir)
    if failed:
        print("\nsome figures are below their floor (this machine may be noisy: rerun)")


READS: list[tuple[str, Any]] = [
    ("get_recent_runs(20)", lambda p: p.get_recent_runs(20)),
    ("get_child_runs", lambda p: p.get_child_runs("big")),
    ("inspect_run", lambda p: p.inspect_run("big")),
]


def _postgres_figures(args: Any, nodes: int, repeat: int) -> dict[str, float]:
    """The same workloads on PostgreSQL: writes in nodes/s, reads in ms."""
    figures: dict[str, float] = {}
    url = _fresh_schema(args.postgres)
    try:
        writer = dagtrace.DagProvenance(url)
        figures["writes"] = _rate_of_writes(writer, nodes // 2)
        writer.close()
    finally:
        _drop_schema(args.postgres, url)
    url = _fresh_schema(args.postgres)
    try:
        print(f"bulk-loading {args.runs:,} runs into PostgreSQL …", flush=True)
        _bulk_load_postgres(url, args.runs)
        reader = dagtrace.DagProvenance(url)
        for name, call in READS:
            figures[name] = _median_seconds(lambda call=call: call(reader), repeat) * 1000
        reader.close()
    finally:
        _drop_schema(args.postgres, url)
    return figures


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


if __name__ == "__main__":
    main()
