"""How read and ingest costs grow with the store (issue 16, Growth), sizes side by side.

    python benchmarks/bench_growth.py [--runs 100000,1000000] [--quick] [--no-postgres]
        [--postgres URL] [--pg-options OPTS] [--rounds 7] [--no-lythonic] [--no-reads]
        [--no-ingest] [--ingest-rounds 5] [--ingest-requests 40] [--senders 4]

For each size (default 100,000 and 1,000,000 runs of 5 nodes, plus run `big`: 1,000
nodes and 100 sub-DAG runs under it, bench_store's rows), a SQLite file and a
PostgreSQL schema built with SQL, not through the API (bench_store's bulk loaders; for
SQLite the lythonic-DDL file, then opened once by dagtrace.DagProvenance, whose
migration adds the indexes). Build time and disk size are printed.

Then, every store open at once, rounds interleaved (each round visits every size,
order alternating, so a slow spell of this shared machine hits every size):
- the drop-in reads: get_recent_runs(20), get_child_runs("big"), inspect_run("big");
- Store.list_runs(20) (what `dagtrace runs` reads) and `dagtrace runs --db X` end to
  end as a subprocess; Store.runs_changed_since(now - 10) (what `dagtrace tail` polls);
- the view's pages from a `dagtrace serve --db X` process per size: `GET /` and the run
  page's data `GET /view/api/runs/big` (and the run page itself, `GET /runs/big`);
- on SQLite, lythonic 0.0.28's three reads on its own copy (no dagtrace index), for scale.
The ratio largest/smallest store is taken per round; its median is checked against 1.5×.

On PostgreSQL a second pass adds `--pg-options` to the URL (default: no JIT, a plan per
call). On both backends runs_changed_since's query is timed in raw SQL as it was before
schema 8 (one OR, no index bounds it) and as it is now (three index ranges).

Ingest: bench_serve's senders and request mix (512 spans a request, sub-runs naming
no parent, non-DAG spans), into a `dagtrace serve` on an empty store and one on the
largest store, rounds interleaved; spans/s and server CPU per span, ratio checked
against 20%. Then the store's write alone, in process (`Store.write_rows` of the same
decoded requests), which the shared machine disturbs less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from bench_serve import (
    SPANS_PER_REQUEST,
    _cpu_seconds,
    _encode,
    _encode_requests,
    _request_spans,
    _sender,
)
from bench_store import _bulk_load, _bulk_load_postgres, _drop_schema, _fresh_schema
from view_helpers import serving

import dagtrace
from dagtrace.store.reads import CHANGED_RUNS_SQL

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
PG_OPTIONS = "-cjit=off -cplan_cache_mode=force_custom_plan"
"""Session settings of a second PostgreSQL pass (the connection URL's `options`): no JIT
for these index-sized reads, and a plan per call for the tree queries (see docs/storage.md)."""
READ_LIMIT = 1.5
"""Largest store over smallest, per read: the issue's bound."""
INGEST_LIMIT = 0.20
"""Ingest rate on the largest store against an empty one."""


# -- building the stores ------------------------------------------------------------


def _build_sqlite(workdir: Path, runs: int, lythonic: bool) -> tuple[Path, Path | None]:
    """bench_store's bulk load (lythonic's DDL, no index), a copy for lythonic, then
    dagtrace's migration (its columns and indexes); prints the times and the size."""
    path = workdir / f"growth-{runs}.db"
    start = time.perf_counter()
    _bulk_load(path, runs)
    loaded = time.perf_counter() - start
    lythonic_copy = None
    if lythonic:
        lythonic_copy = workdir / f"lythonic-{runs}.db"
        shutil.copy(path, lythonic_copy)
    start = time.perf_counter()
    dagtrace.DagProvenance(path).close()  # the migration: columns and indexes
    migrated = time.perf_counter() - start
    size = sum(p.stat().st_size for p in workdir.glob(f"{path.name}*"))
    print(
        f"  SQLite {runs:>11,} runs: built in {loaded + migrated:6.1f} s (rows {loaded:.1f} s, "
        f"dagtrace's migration and indexes {migrated:.1f} s), {size / 2**20:8,.0f} MiB on disk",
        flush=True,
    )
    return path, lythonic_copy


def _build_postgres(base_url: str, runs: int) -> str:
    """A fresh schema, dagtrace's tables and indexes, COPY, ANALYZE (bench_store's)."""
    url = _fresh_schema(base_url)
    start = time.perf_counter()
    _bulk_load_postgres(url, runs)
    took = time.perf_counter() - start
    size = _postgres_size(base_url, url)
    print(
        f"  PostgreSQL {runs:>7,} runs: built in {took:6.1f} s (COPY with the indexes in "
        f"place, ANALYZE), {size / 2**20:8,.0f} MiB (pg_total_relation_size of its tables)",
        flush=True,
    )
    return url


def _schema_of(url: str) -> str:
    return url.rsplit("search_path%3D", 1)[1]


def _postgres_size(base_url: str, url: str) -> int:
    import psycopg

    with psycopg.connect(base_url) as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (_schema_of(url),),
        ).fetchone()
    return int(row[0]) if row else 0


# -- the reads ------------------------------------------------------------------------


class Arm:
    """One store of one size: its location, a DagProvenance, a serve process's client."""

    def __init__(self, runs: int, location: str, client: httpx.Client) -> None:
        self.runs = runs
        self.location = location
        self.prov = dagtrace.DagProvenance(location)
        self.client = client


def _get(client: httpx.Client, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)


def _cli_runs(location: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dagtrace", "runs", "--db", location],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.count("\n") == 21, out  # a header and 20 runs


READS: list[tuple[str, Callable[[Arm], object], int]] = [
    # name, the call, calls per round (their median is the round's figure)
    ("get_recent_runs(20)", lambda a: a.prov.get_recent_runs(20), 15),
    ("get_child_runs(big)", lambda a: a.prov.get_child_runs("big"), 5),
    ("inspect_run(big)", lambda a: a.prov.inspect_run("big"), 5),
    ("Store.list_runs(20)", lambda a: a.prov.store.list_runs(20), 15),
    (
        "Store.runs_changed_since(now-10)",
        lambda a: a.prov.store.runs_changed_since(time.time() - 10),
        5,
    ),
    ("dagtrace runs (CLI, subprocess)", lambda a: _cli_runs(a.location), 2),
    ("view GET / (runs page)", lambda a: _get(a.client, "/"), 10),
    ("view GET /view/api/runs/big", lambda a: _get(a.client, "/view/api/runs/big"), 5),
    ("view GET /runs/big (run page)", lambda a: _get(a.client, "/runs/big"), 10),
]

LYTHONIC_READS: list[tuple[str, Callable[[Any], object]]] = [
    ("lythonic get_recent_runs(20)", lambda p: p.get_recent_runs(20)),
    ("lythonic get_child_runs(big)", lambda p: p.get_child_runs("big")),
    ("lythonic inspect_run(big)", lambda p: p.inspect_run("big")),
]


def _batch_ms(fn: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def _check_same_shape(arms: list[Arm]) -> None:
    """Every size holds the same big run: the reads compare like with like."""
    shapes = set()
    for arm in arms:
        big = arm.prov.inspect_run("big")
        assert big is not None
        subs = len(arm.prov.get_child_runs("big"))
        shapes.add((len(big.nodes), sum(len(node.edges) for node in big.nodes.values()), subs))
        assert len(arm.prov.get_recent_runs(20)) == 20
    assert len(shapes) == 1, f"the big run differs between sizes: {shapes}"
    nodes, edges, children = shapes.pop()
    print(f"  big run: {nodes:,} nodes, {edges:,} edges, {children} sub-DAG runs, at every size")


Read = tuple[str, Callable[[int], object], int]
"""A read's name, the call on the store of a size, and calls per round."""


def _on(stores: dict[int, Any], call: Callable[[Any], object], n: int) -> object:
    return call(stores[n])


def _interleaved(
    sizes: list[int], reads: list[Read], rounds: int
) -> dict[str, dict[int, list[float]]]:
    """ms per read and size, one figure per round; sizes alternate order each round."""
    figures: dict[str, dict[int, list[float]]] = {
        name: {n: [] for n in sizes} for name, _, _ in reads
    }
    for _name, call, calls in reads:  # warm caches (and PostgreSQL's prepared statements)
        for n in sizes:
            for _ in range(12 if calls > 2 else 1):
                call(n)
    for r in range(rounds):
        order = sizes if r % 2 == 0 else sizes[::-1]
        for name, call, calls in reads:
            for n in order:
                figures[name][n].append(_batch_ms(partial(call, n), calls))
    return figures


def _report(
    title: str, sizes: list[int], figures: dict[str, dict[int, list[float]]], limit: float | None
) -> dict[str, dict[str, float]]:
    small, large = sizes[0], sizes[-1]
    print(
        f"\n{title}: ms, median of {len(next(iter(figures.values()))[small])} rounds; "
        f"ratio {large:,} / {small:,} runs per round, median [min–max]"
    )
    print(f"  {'read':<36}" + "".join(f"{f'{n:,} runs':>16}" for n in sizes) + f"{'ratio':>10}")
    summary: dict[str, dict[str, float]] = {}
    for name, per_size in figures.items():
        ratios = [b / a for a, b in zip(per_size[small], per_size[large], strict=True)]
        ratio = statistics.median(ratios)
        medians = {n: statistics.median(per_size[n]) for n in sizes}
        verdict = ""
        if limit is not None:
            verdict = "ok" if ratio <= limit else f"ABOVE {limit:g}×"
        print(
            f"  {name:<36}"
            + "".join(f"{medians[n]:>13.2f} ms" for n in sizes)
            + f"{ratio:>9.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]  {verdict}"
        )
        summary[name] = {**{str(n): round(medians[n], 3) for n in sizes}, "ratio": round(ratio, 3)}
    return summary


def _read_figures(
    backend: str, stores: dict[int, str], lythonic: dict[int, Path], rounds: int
) -> dict[str, dict[str, float]]:
    sizes = sorted(stores)
    with contextlib.ExitStack() as stack:
        arms: dict[int, Arm] = {}
        for n in sizes:
            url = stack.enter_context(serving(stores[n]))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=120))
            arms[n] = Arm(n, stores[n], client)
            stack.callback(arms[n].prov.close)
        _check_same_shape(list(arms.values()))
        reads: list[Read] = [(name, partial(_on, arms, call), k) for name, call, k in READS]
        summary = _report(
            f"{backend}, dagtrace", sizes, _interleaved(sizes, reads, rounds), READ_LIMIT
        )
    if lythonic:
        from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance

        theirs = {n: LythonicProvenance(path) for n, path in lythonic.items()}
        lreads: list[Read] = [
            (name, partial(_on, theirs, call), 1) for name, call in LYTHONIC_READS
        ]
        figures = _interleaved(sizes, lreads, max(3, rounds // 2))
        summary.update(
            _report("SQLite, lythonic 0.0.28 (no index; for scale)", sizes, figures, None)
        )
    return summary


# -- runs_changed_since: the query as it is, and with an index and a UNION ----------------

CHANGED_BEFORE = (
    "SELECT run_id FROM dag_runs WHERE parent_run_id IS NULL "
    "AND (status = 'running' OR started_at > ? OR finished_at > ?) ORDER BY started_at"
)
"""Store.runs_changed_since's query before schema 8: one OR of the three conditions,
which no index bounds (SQLite walks every top-level run, PostgreSQL scans the table)."""


def _changed_before_after(
    backend: str, stores: dict[int, str], rounds: int
) -> dict[str, dict[str, float]]:
    """Raw SQL on the same stores (schema 8, as shipped), interleaved: the query before
    schema 8, and the one `runs_changed_since` runs now (`CHANGED_RUNS_SQL`)."""
    sizes = sorted(stores)
    conns: dict[int, Any] = {}
    for n in sizes:
        if backend == "SQLite":
            conns[n] = sqlite3.connect(stores[n], isolation_level=None)
        else:
            import psycopg

            conns[n] = psycopg.connect(stores[n], autocommit=True)

    def run(n: int, sql: str) -> None:
        since = time.time() - 10
        if backend == "SQLite":
            conns[n].execute(sql, (since, since)).fetchall()
        else:
            conns[n].execute(sql.replace("?", "%s"), (since, since)).fetchall()

    try:
        reads: list[Read] = [
            ("before schema 8 (one OR)", lambda n: run(n, CHANGED_BEFORE), 5),
            ("shipped (three index ranges)", lambda n: run(n, CHANGED_RUNS_SQL), 15),
        ]
        figures = _interleaved(sizes, reads, rounds)
    finally:
        for conn in conns.values():
            conn.close()
    title = f"{backend}, runs_changed_since's query in raw SQL, before and since schema 8"
    return _report(title, sizes, figures, READ_LIMIT)


# -- ingest ---------------------------------------------------------------------------


@contextlib.contextmanager
def _server(db: str) -> Iterator[tuple[str, int]]:
    """`dagtrace serve` as bench_serve starts it (serve's own count of ingest workers),
    each worker started by concurrent posts before any clock; yields (url, pid)."""
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed with the server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagtrace", "serve", "--db", db, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            log.seek(0)
            raise RuntimeError(f"dagtrace serve did not start: {log.read()}")
        url = line.split("listening on ")[1].split()[0]
        warm = _encode_requests(1, f"probe-{proc.pid}")[0]

        def post_warm(_: int) -> int:
            headers = {"Content-Type": "application/x-protobuf"}
            return httpx.post(f"{url}/v1/traces", content=warm, headers=headers).status_code

        with ThreadPoolExecutor(8) as warmers:
            assert set(warmers.map(post_warm, range(8))) == {200}
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stdout.close()
        log.close()


def _ingest_round(
    url: str, pid: int, prefix: str, senders: int, requests: int
) -> tuple[float, float]:
    """bench_serve's senders (requests encoded before the clock), all answered after
    commit: (spans/s, server CPU µs per span)."""
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(senders)]
    procs = [
        ctx.Process(
            target=_sender,
            args=([url], requests, f"{prefix}s{n}", readies[n], go, results, 1024, True),
        )
        for n in range(senders)
    ]
    for p in procs:
        p.start()
    for ready in readies:
        ready.wait()
    cpu_before = _cpu_seconds([pid])
    start = time.perf_counter()
    go.set()
    codes = [code for _ in procs for code in results.get()]
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds([pid]) - cpu_before
    for p in procs:
        p.join()
    assert codes == [200] * senders * requests, set(codes)
    spans = senders * requests * SPANS_PER_REQUEST
    return spans / elapsed, cpu / spans * 1e6


def _ingest_figures(
    backend: str, empty: str, full: str, full_runs: int, rounds: int, senders: int, requests: int
) -> dict[str, float]:
    arms = {"empty": empty, f"{full_runs:,} runs": full}
    rates: dict[str, list[float]] = {a: [] for a in arms}
    cpus: dict[str, list[float]] = {a: [] for a in arms}
    with contextlib.ExitStack() as stack:
        servers = {a: stack.enter_context(_server(db)) for a, db in arms.items()}
        for r in range(rounds):
            order = list(arms) if r % 2 == 0 else list(arms)[::-1]
            for a in order:
                url, pid = servers[a]
                rate, cpu = _ingest_round(url, pid, f"g{r}{a[0]}", senders, requests)
                rates[a].append(rate)
                cpus[a].append(cpu)
    big = f"{full_runs:,} runs"
    ratios = [b / a for a, b in zip(rates["empty"], rates[big], strict=True)]
    ratio = statistics.median(ratios)
    ok = ratio >= 1 - INGEST_LIMIT
    print(
        f"\n{backend}, ingest through one `dagtrace serve` ({senders} senders × {requests} "
        f"requests of {SPANS_PER_REQUEST} spans a round, bench_serve's mix; median of {rounds} "
        "rounds)"
    )
    for a in arms:
        print(
            f"  {a:<20}{statistics.median(rates[a]):>10,.0f} spans/s   server CPU "
            f"{statistics.median(cpus[a]):5.0f} µs/span   rounds: "
            + ", ".join(f"{x:,.0f}" for x in rates[a])
        )
    print(
        f"  {big} / empty: {ratio:.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]  "
        + ("ok" if ok else f"BEYOND {INGEST_LIMIT:.0%}")
    )
    write = _store_write_figures(empty, full, big, rounds, requests)
    return {
        "empty_spans_per_s": round(statistics.median(rates["empty"])),
        "full_spans_per_s": round(statistics.median(rates[big])),
        "ratio": round(ratio, 3),
        **write,
    }


def _store_write_figures(
    empty: str, full: str, big: str, rounds: int, requests: int
) -> dict[str, float]:
    """The store's part alone, in process (no HTTP, no decoding, no sender competing for
    the cores): ms per request of the same mix written with `Store.write_rows`, parent
    step included, rounds interleaved. Steadier than spans/s on a shared machine."""
    from dagtrace import open_store
    from dagtrace.serve.codec import decode_to_rows

    count = max(4, requests // 5)
    stores = {"empty": open_store(empty), big: open_store(full)}
    ms: dict[str, list[float]] = {a: [] for a in stores}
    try:
        for r in range(rounds + 2):
            for a in list(stores) if r % 2 == 0 else list(stores)[::-1]:
                batches = [
                    decode_to_rows(_encode(spans), json_encoded=False)
                    for spans in _request_spans(count, f"w{r}{a[0]}")
                ]
                start = time.perf_counter()
                for batch in batches:
                    stores[a].write_rows(batch.rows, parents=batch.parents)
                ms[a].append((time.perf_counter() - start) / count * 1000)
    finally:
        for store in stores.values():
            store.close()
    ratios = [e / f for e, f in zip(ms["empty"], ms[big], strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"  the store's write alone, in process ({count} requests a round, {rounds + 2} rounds): "
        f"empty {statistics.median(ms['empty']):.1f} ms, {big} {statistics.median(ms[big]):.1f} "
        f"ms per request; rate {big} / empty {ratio:.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]  "
        + ("ok" if ratio >= 1 - INGEST_LIMIT else f"BEYOND {INGEST_LIMIT:.0%}")
    )
    return {
        "write_ms_empty": round(statistics.median(ms["empty"]), 2),
        "write_ms_full": round(statistics.median(ms[big]), 2),
        "write_ratio": round(ratio, 3),
    }


# -- main -----------------------------------------------------------------------------


def _all_reads(
    sqlite: dict[int, str],
    lythonic: dict[int, Path],
    postgres: dict[int, str],
    pg_options: str,
    rounds: int,
) -> dict[str, Any]:
    figures: dict[str, Any] = {"SQLite": _read_figures("SQLite", sqlite, lythonic, rounds)}
    if postgres:
        figures["PostgreSQL"] = _read_figures("PostgreSQL", postgres, {}, rounds)
        if pg_options:
            tuned = {n: url + quote(f" {pg_options}") for n, url in postgres.items()}
            figures["PostgreSQL tuned"] = _read_figures(
                f"PostgreSQL, options={pg_options}", tuned, {}, rounds
            )
    figures["SQLite changed_since"] = _changed_before_after("SQLite", sqlite, rounds)
    if postgres:
        figures["PostgreSQL changed_since"] = _changed_before_after("PostgreSQL", postgres, rounds)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", default="100000,1000000", help="store sizes, comma-separated (runs of 5 nodes)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="10,000 and 100,000 runs, fewer rounds"
    )
    parser.add_argument("--rounds", type=int, default=None, help="read rounds (default 7; quick 3)")
    parser.add_argument("--postgres", metavar="URL", default=POSTGRES)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--pg-options",
        default=PG_OPTIONS,
        help=f"a second PostgreSQL read pass with these session options ('' to skip; "
        f"default {PG_OPTIONS!r})",
    )
    parser.add_argument("--no-lythonic", action="store_true", help="skip lythonic's reads")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest comparison")
    parser.add_argument("--no-reads", action="store_true", help="build, then ingest only")
    parser.add_argument("--ingest-rounds", type=int, default=None, help="default 5; quick 2")
    parser.add_argument("--ingest-requests", type=int, default=None, help="per sender; default 40")
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else sorted(int(n) for n in args.runs.split(","))
    rounds = args.rounds or (3 if args.quick else 7)
    ingest_rounds = args.ingest_rounds or (2 if args.quick else 5)
    ingest_requests = args.ingest_requests or (10 if args.quick else 40)
    backends = ["SQLite"] + ([] if args.no_postgres else ["PostgreSQL"])
    figures: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="dagtrace-bench-growth-"))
    schemas: list[str] = []
    try:
        print(f"building the stores ({', '.join(f'{n:,}' for n in sizes)} runs) …", flush=True)
        sqlite: dict[int, str] = {}
        lythonic: dict[int, Path] = {}
        for n in sizes:
            path, copy = _build_sqlite(workdir, n, not (args.no_lythonic or args.no_reads))
            sqlite[n] = str(path)
            if copy:
                lythonic[n] = copy
        postgres: dict[int, str] = {}
        if "PostgreSQL" in backends:
            for n in sizes:
                postgres[n] = _build_postgres(args.postgres, n)
                schemas.append(postgres[n])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        print(f"  (peak memory of the builds: {peak:,.0f} MiB, the rows built in memory)")

        if not args.no_reads:
            figures.update(_all_reads(sqlite, lythonic, postgres, args.pg_options, rounds))

        if not args.no_ingest:
            empty = str(workdir / "empty.db")
            figures["SQLite ingest"] = _ingest_figures(
                "SQLite",
                empty,
                sqlite[sizes[-1]],
                sizes[-1],
                ingest_rounds,
                args.senders,
                ingest_requests,
            )
            if postgres:
                empty_url = _fresh_schema(args.postgres)
                schemas.append(empty_url)
                figures["PostgreSQL ingest"] = _ingest_figures(
                    "PostgreSQL",
                    empty_url,
                    postgres[sizes[-1]],
                    sizes[-1],
                    ingest_rounds,
                    args.senders,
                    ingest_requests,
                )
    finally:
        for url in schemas:
            _drop_schema(args.postgres, url)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
