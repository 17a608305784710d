"""dagtrace.DagProvenance against lythonic 0.0.28's, same workloads, one run, ratios printed.

    python benchmarks/bench_store.py [--runs 100000] [--rounds 7] [--quick] [--postgres URL]

Workloads (default durability on both sides: lythonic's rollback journal with a
connection per call, dagtrace's WAL + synchronous=NORMAL, both SIGKILL-safe):
- writes: record_node_start + complete_node_with_edges per node, as DagRunner drives them;
- reads, on a store of --runs runs of 5 nodes and 4 edges each plus run `big` (1,000
  nodes and 999 edges, its map node `m` over 100 sub-DAG runs of 10 nodes and 9 edges
  each: issue #16's shape, as bench_view.py's), bulk-loaded once with SQL and copied so
  each library reads its own copy: get_recent_runs(20), get_child_runs("big") and
  inspect_run("big").

The reads run in --rounds interleaved rounds. In each, every read goes through
lythonic, the drop-in dagtrace.DagProvenance, RemoteProvenance and the raw query API
(the HTTP GET of its JSON, unparsed) of a `dagtrace serve` process on the drop-in's
file, so a slow spell of the machine hits every arm of a round; ratios are printed per
round and for the medians (each call starts with the cyclic GC's young generations
collected, off the clock). Each round also measures what bounds each read: the raw
sqlite3 fetch of exactly the rows its answer holds (run, node and edge rows by their
ids, known in advance: no search of the sub-DAG tree, no read transaction) plus the
least construction of lythonic's pydantic models from them (no validation: each
model's fields set straight into the instance, one datetime per stored time, each
node's edges sorted by time, each sub-run under its composite node).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance
from pydantic import BaseModel

import dagtrace
from dagtrace._models import DagRun, EdgeTraversal, NodeExecution
from dagtrace._paths import Routes, path

FLOORS = {
    "writes": 20.0,
    "get_recent_runs(20)": 100.0,
    "get_child_runs": 50.0,
    "inspect_run": 5.0,
}
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


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches the same way for every arm
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


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


class Read(NamedTuple):
    name: str
    call: Callable[[Any], Any]
    """The read on a provenance object (lythonic's, dagtrace's, RemoteProvenance)."""
    route: str
    params: dict[str, str]
    """The query API's request for the same answer."""
    runs: str
    """SQL of the ids of the runs the answer holds (the bound's fetch starts from them)."""


READS = [
    Read(
        "get_recent_runs(20)",
        lambda p: p.get_recent_runs(20),
        Routes.RUNS,
        {"limit": "20", "all": "true"},
        "",  # the bound fetches them newest first, as any reader must
    ),
    Read(
        "get_child_runs",
        lambda p: p.get_child_runs("big"),
        path(Routes.RUN_CHILDREN, run_id="big"),
        {},
        "SELECT run_id FROM dag_runs WHERE parent_run_id = 'big' ORDER BY started_at",
    ),
    Read(
        "inspect_run",
        lambda p: p.inspect_run("big"),
        path(Routes.RUN, run_id="big"),
        {"io": "false"},
        "SELECT run_id FROM dag_runs WHERE run_id = 'big' OR parent_run_id = 'big'",
    ),
]

_RUN_FIELDS = "run_id, dag_nsref, parent_run_id, status, started_at, finished_at, initiated_by"
_BY_IDS = "WHERE run_id IN (SELECT value FROM json_each(?))"


class Bound:
    """What bounds one read: the raw fetch of its rows and the least construction of
    its models from them, in one call (`read`, the bound) and each apart (`fetch`,
    `construct` and, of the latter, `datetimes`)."""

    def __init__(self, path: Path, read: Read) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.ids = (
            json.dumps([r[0] for r in self.conn.execute(read.runs).fetchall()])
            if read.runs
            else None
        )
        self.rows = self.fetch()

    def fetch(self) -> tuple[list[Any], list[Any], list[Any]]:
        cur = self.conn.cursor()
        if self.ids is None:  # the newest runs: one index scan gives ids and rows
            cur.execute(f"SELECT {_RUN_FIELDS} FROM dag_runs ORDER BY started_at DESC LIMIT 20")
            runs = cur.fetchall()
            ids = json.dumps([r[0] for r in runs])
        else:
            ids = self.ids
            cur.execute(  # in the order of `ids` (start order)
                f"SELECT {_RUN_FIELDS} FROM json_each(?) JOIN dag_runs ON run_id = value", (ids,)
            )
            runs = cur.fetchall()
        cur.execute(
            "SELECT run_id, node_label, status, is_source, is_sink, started_at, finished_at, "
            f"error FROM node_executions {_BY_IDS}",
            (ids,),
        )
        nodes = cur.fetchall()
        cur.execute(
            "SELECT run_id, upstream_label, downstream_label, traversed_at "
            f"FROM edge_traversals {_BY_IDS}",
            (ids,),
        )
        return runs, nodes, cur.fetchall()

    def read(self) -> dict[str, DagRun]:
        """The whole bound in one call, as a read does it: fetch, then construct."""
        return self.construct(self.fetch())

    def construct(self, rows: tuple[list[Any], list[Any], list[Any]] | None = None) -> Any:
        """The models of the rows (`self.rows`, fetched once) as lythonic nests them,
        built the least costly way known: no validation, each model's `__dict__` and
        pydantic's three slots set through BaseModel's own slot descriptors, nodes and
        edge lists found by plain dict lookups (rows come grouped by run)."""
        run_rows, node_rows, edge_rows = rows or self.rows
        new, utc, at = object.__new__, UTC, datetime.fromtimestamp
        set_dict, set_fields, set_extra, set_private = _SLOTS
        node_fields, edge_fields, run_fields = _FIELDS
        nodes: dict[str, dict[str, NodeExecution]] = {}
        edge_lists: dict[str, dict[str, list[EdgeTraversal]]] = {}
        run_nodes: dict[str, NodeExecution] = {}
        run_edges: dict[str, list[EdgeTraversal]] = {}
        last = None
        for run_id, label, status, source, sink, started, finished, error in node_rows:
            if run_id != last:
                last = run_id
                run_nodes = nodes[run_id] = {}
                run_edges = edge_lists[run_id] = {}
            node = new(NodeExecution)
            edges = run_edges[label] = []
            set_dict(
                node,
                {
                    "node_label": label,
                    "status": status,
                    "is_source": bool(source),
                    "is_sink": bool(sink),
                    "started_at": at(started, utc),
                    "finished_at": at(finished, utc),
                    "error": error,
                    "edges": edges,
                    "sub_dags": None,
                    "io": None,
                },
            )
            set_fields(node, node_fields)
            set_extra(node, None)
            set_private(node, None)
            run_nodes[label] = node
        for run_id, upstream, downstream, traversed in sorted(edge_rows, key=itemgetter(3)):
            edge = new(EdgeTraversal)
            set_dict(edge, {"downstream_label": downstream, "traversed_at": at(traversed, utc)})
            set_fields(edge, edge_fields)
            set_extra(edge, None)
            set_private(edge, None)
            edge_lists[run_id][upstream].append(edge)
        runs: dict[str, DagRun] = {}
        for run_id, nsref, parent, status, started, finished, initiator in run_rows:
            run = new(DagRun)
            set_dict(
                run,
                {
                    "run_id": run_id,
                    "dag_nsref": nsref,
                    "parent_run_id": parent,
                    "status": status,
                    "started_at": at(started, utc),
                    "finished_at": at(finished, utc),
                    "initiated_by": initiator,
                    "nodes": nodes.get(run_id) or {},
                    "io": None,
                },
            )
            set_fields(run, run_fields)
            set_extra(run, None)
            set_private(run, None)
            runs[run_id] = run
        for run_id, nsref, parent, *_ in run_rows:  # sub-run nsrefs: `{parent}/m[{i}]`
            if parent in runs:
                key = nsref[len(runs[parent].dag_nsref) + 1 :]
                node = nodes[parent][key[: key.index("[")]]
                if node.sub_dags is None:
                    node.sub_dags = {}
                node.sub_dags[key] = runs[run_id]
        return runs

    def datetimes(self) -> None:
        """Only the datetimes `construct` makes."""
        run_rows, node_rows, edge_rows = self.rows
        at, utc = datetime.fromtimestamp, UTC
        for row in node_rows:
            at(row[5], utc)
            at(row[6], utc)
        for row in edge_rows:
            at(row[3], utc)
        for row in run_rows:
            at(row[4], utc)
            at(row[5], utc)

    def answer(self, read: Read) -> list[DagRun]:
        """What `read` builds, as the read returns it (checked against lythonic)."""
        runs = self.read()
        return [runs["big"]] if read.name == "inspect_run" else list(runs.values())

    def counts(self) -> str:
        runs, nodes, edges = self.rows
        times = 2 * len(runs) + 2 * len(nodes) + len(edges)
        values = 7 * len(runs) + 8 * len(nodes) + 4 * len(edges)
        return (
            f"{len(runs)} runs, {len(nodes)} nodes, {len(edges)} edges: {values} values "
            f"fetched, {len(runs) + len(nodes) + len(edges)} models, {times} datetimes"
        )


_FIELDS = tuple(set(m.model_fields) for m in (NodeExecution, EdgeTraversal, DagRun))
_SLOTS = tuple(
    BaseModel.__dict__[name].__set__
    for name in (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    )
)


class Arms(NamedTuple):
    lythonic: Any
    dagtrace: Any
    remote: Any
    api: httpx.Client


ARMS = ("lythonic", "dagtrace", "Remote", "API", "bound", "bound SQL", "bound models", "datetimes")


def _round(read: Read, arms: Arms, bound: Bound, slow: int, fast: int) -> dict[str, float]:
    """One round of one read: ms per call in every arm, the median of `fast` calls
    (`slow` of lythonic's). The arms take turns call by call, in an order that rotates
    (none always runs after the same other), and each call starts with the cyclic GC's
    young generations empty (collected off the clock): an arm pays for the collections
    its own allocations cause, not for another's."""
    calls: dict[str, Callable[[], object]] = {
        "lythonic": lambda: read.call(arms.lythonic),
        "dagtrace": lambda: read.call(arms.dagtrace),
        "Remote": lambda: read.call(arms.remote),
        "API": lambda: arms.api.get(read.route, params=read.params).content,
        "bound": bound.read,
        "bound SQL": bound.fetch,
        "bound models": bound.construct,
        "datetimes": bound.datetimes,
    }
    samples: dict[str, list[float]] = {arm: [] for arm in calls}
    for call in calls.values():
        call()  # warm caches the same way for every arm
    order = list(calls)
    clock = time.perf_counter
    for i in range(fast):
        turn = i % len(order)
        for arm in order[turn:] + order[:turn]:
            if arm == "lythonic" and i % max(fast // slow, 1):
                continue
            gc.collect(1)
            start = clock()
            calls[arm]()
            samples[arm].append(clock() - start)
    return {arm: statistics.median(values) * 1000 for arm, values in samples.items()}


def _serve(db: Path) -> tuple[subprocess.Popen[str], str]:
    """`dagtrace serve` on a free port (no ingest workers: reads only); its URL once it
    printed its ready line."""
    command = [sys.executable, "-m", "dagtrace", "serve", "--db", str(db), "--port", "0"]
    log = db.with_suffix(".serve.log")
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*command, "--decoders", "0"], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"dagtrace serve did not start: {line!r}\n{log.read_text()}")
    return proc, line.split("listening on ")[1].split()[0]


def _check_answers(arms: Arms, read: Read, bound: Bound) -> None:
    theirs = [r.model_dump() for r in _as_list(read.call(arms.lythonic))]
    assert [r.model_dump() for r in bound.answer(read)] == theirs, f"{read.name}: bound differs"
    for arm in (arms.dagtrace, arms.remote):
        ours = [r.model_dump() for r in _as_list(read.call(arm))]
        assert ours == theirs, f"{read.name}: {type(arm).__name__} and lythonic disagree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the read store")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved read rounds")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="also run every workload on this PostgreSQL database "
        "(in a fresh schema), e.g. postgresql://postgres@127.0.0.1:5432/test",
    )
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    slow, fast = (3, 10) if args.quick else (7, 40)
    workdir = Path(tempfile.mkdtemp(prefix="dagtrace-bench-"))

    nodes = 300 if args.quick else 2000
    lyth_rate = _rate_of_writes(LythonicProvenance(workdir / "lw.db"), max(nodes // 10, 100))
    ours_rate = _rate_of_writes(dagtrace.DagProvenance(workdir / "dw.db"), nodes)

    print(f"bulk-loading {args.runs:,} runs …", flush=True)
    template = workdir / "template.db"
    _bulk_load(template, args.runs)
    shutil.copy(template, workdir / "lr.db")
    shutil.copy(template, workdir / "dr.db")
    ours = dagtrace.DagProvenance(workdir / "dr.db")  # opening adds dagtrace's indexes
    server, url = _serve(workdir / "dr.db")
    try:
        arms = Arms(
            LythonicProvenance(workdir / "lr.db"),
            ours,
            dagtrace.RemoteProvenance(url, timeout=60),
            httpx.Client(base_url=url, timeout=60),
        )
        bounds = {read.name: Bound(workdir / "dr.db", read) for read in READS}
        for read in READS:
            _check_answers(arms, read, bounds[read.name])
        figures: dict[str, list[dict[str, float]]] = {read.name: [] for read in READS}
        for r in range(rounds):
            print(f"round {r + 1}/{rounds} …", flush=True)
            for read in READS:
                figures[read.name].append(_round(read, arms, bounds[read.name], slow, fast))
        postgres = _postgres_figures(args, nodes, fast, arms) if args.postgres else {}
    finally:
        server.terminate()
        server.wait(timeout=30)
    _print(args, rounds, lyth_rate, ours_rate, figures, bounds, postgres)
    shutil.rmtree(workdir)


def _print(
    args: Any,
    rounds: int,
    lyth_rate: float,
    ours_rate: float,
    figures: dict[str, list[dict[str, float]]],
    bounds: dict[str, Bound],
    postgres: dict[str, float],
) -> None:
    pg = f"{'dagtrace PostgreSQL':>22}{'ratio':>8}" if postgres else ""
    print(
        f"\n{'workload':<22}{'lythonic 0.0.28':>17}{'dagtrace SQLite':>18}"
        f"{'ratio':>8}{'floor':>8}{pg}"
    )
    failed = False
    ratio = ours_rate / lyth_rate
    failed |= ratio < FLOORS["writes"]
    line = (
        f"{'writes':<22}{lyth_rate:>10,.0f} nodes/s{ours_rate:>10,.0f} nodes/s{ratio:>7.1f}×"
        f"{FLOORS['writes']:>7.0f}×"
    )
    if "writes" in postgres:
        line += f"{postgres['writes']:>14,.0f} nodes/s{postgres['writes'] / lyth_rate:>7.1f}×"
    print(line + ("" if ratio >= FLOORS["writes"] else "  BELOW FLOOR"))

    print(
        f"\nreads on {args.runs:,} runs + the big run, SQLite, ms per call, medians of "
        f"{rounds} interleaved rounds (ratio: lythonic's time / the arm's)"
    )
    print(
        f"{'read':<22}{'lythonic':>10}{'dagtrace':>10}{'ratio':>8}{'floor':>7}"
        f"{'Remote':>10}{'ratio':>8}{'API':>10}{'ratio':>8}"
        + (f"{'PostgreSQL':>12}{'ratio':>8}" if postgres else "")
    )
    medians: dict[str, dict[str, float]] = {}
    for name, per_round in figures.items():
        med = medians[name] = {arm: statistics.median(f[arm] for f in per_round) for arm in ARMS}
        theirs = med["lythonic"]
        ok = theirs / med["dagtrace"] >= FLOORS[name]
        failed |= not ok
        line = (
            f"{name:<22}{theirs:>10.2f}{med['dagtrace']:>10.3f}{theirs / med['dagtrace']:>7.1f}×"
            f"{FLOORS[name]:>6.0f}×{med['Remote']:>10.3f}{theirs / med['Remote']:>7.1f}×"
            f"{med['API']:>10.3f}{theirs / med['API']:>7.1f}×"
        )
        if name in postgres:
            line += f"{postgres[name]:>12.3f}{theirs / postgres[name]:>7.1f}×"
        print(line + ("" if ok else "  BELOW FLOOR"))

    print("\nper round, lythonic's time / dagtrace's (drop-in | Remote | API):")
    for name, per_round in figures.items():
        cells = "  ".join(
            f"{f['lythonic'] / f['dagtrace']:.0f}|{f['lythonic'] / f['Remote']:.0f}"
            f"|{f['lythonic'] / f['API']:.0f}"
            for f in per_round
        )
        print(f"  {name:<22}{cells}")

    print(
        "\nwhat bounds each read (raw sqlite3 fetch of exactly its rows + the least "
        "construction of its models; medians of the same rounds):"
    )
    for name, med in medians.items():
        bound = med["bound"]
        share = [f["dagtrace"] / f["bound"] for f in figures[name]]
        floor_ms = med["lythonic"] / FLOORS[name]
        print(
            f"  {name}: {bounds[name].counts()}\n"
            f"    bound: {bound:.3f} ms (SQL fetch {med['bound SQL']:.3f} + model construction "
            f"{med['bound models']:.3f}, of which datetimes {med['datetimes']:.3f}, each "
            f"measured apart), dagtrace {med['dagtrace']:.3f} ms = "
            f"{med['dagtrace'] / bound:.0%} of bound (per round "
            f"{' '.join(f'{s:.0%}' for s in share)})\n"
            f"    floor {FLOORS[name]:.0f}× needs ≤ {floor_ms:.3f} ms: the bound alone is "
            f"{bound / floor_ms:.0%} of that, lythonic / bound = {med['lythonic'] / bound:.1f}×"
        )
    if failed:
        print("\nsome figures are below their floor (see what bounds them above)")


def _postgres_figures(args: Any, nodes: int, repeat: int, arms: Arms) -> dict[str, float]:
    """The same workloads on PostgreSQL: writes in nodes/s, reads in ms; each read's
    answer checked against SQLite's."""
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
        for read in READS:
            assert [r.model_dump() for r in _as_list(read.call(reader))] == [
                r.model_dump() for r in _as_list(read.call(arms.dagtrace))
            ], f"{read.name}: PostgreSQL and SQLite disagree"
            figures[read.name] = _median_ms(lambda read=read: read.call(reader), repeat)
        reader.close()
    finally:
        _drop_schema(args.postgres, url)
    return figures


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


if __name__ == "__main__":
    main()
