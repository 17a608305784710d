"""The web view's figures (issue 15), beside the lythonic reads giving the same data.

    python benchmarks/bench_view.py [--runs 100000] [--repeat 20]

On a store of `--runs` runs of 5 nodes plus run `big` (1,000 nodes, 999 edges, its map
node `m` over 100 sub-DAG runs of 10 nodes), built with bulk SQL:
- runs page: `GET /` from a `dagtrace serve` process (server time: the request's
  wall time on loopback), first page and a later one (cursor), and filtered;
  beside lythonic's `get_recent_runs(50)`;
- run page data: `GET /view/api/runs/big`, beside lythonic's `inspect_run` + `load_io`;
- the run page usable in headless Chromium: from navigation to the 1,000 nodes drawn
  (dagre's layout and the drawing measured apart);
- live: from a node's commit (another process's write) to its new status on screen;
- the cost of an idle open page: requests a finished run's page makes in 10 s, and
  the store time of the fingerprint a running run's page polls twice a second.
Targets: runs page ≤ 100 ms, run data ≤ 50 ms, usable ≤ 2 s, live ≤ 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from view_helpers import browser_page, serving, write_big_run

import dagtrace
from dagtrace.store import view_reads as reads

T0 = 1_700_000_000.0
PAYLOAD = '{"rows": [1, 2, 3], "note": "a small payload"}'


def _bulk_runs(db: Path, runs: int) -> None:
    """`runs` top-level runs of 5 nodes and 4 edges, 1 in 50 failed, in one transaction."""
    labels = [f"step{j}" for j in range(5)]
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    run_rows, node_rows, edge_rows = [], [], []
    for i in range(runs):
        failed = i % 50 == 0
        status = "failed" if failed else "completed"
        nsref = f"bench/dag{i % 10}"
        run_rows.append((f"run{i:06d}", nsref, status, T0 + i, T0 + i + 0.5, "{}", 1, "bench"))
        for j, label in enumerate(labels):
            node_status = "failed" if failed and j == 4 else "completed"
            start = T0 + i + j / 10
            node_rows.append(
                (f"run{i:06d}", label, node_status, PAYLOAD, PAYLOAD, start, start + 0.05)
            )
        edge_rows += [(f"run{i:06d}", labels[j], labels[j + 1], T0 + i + j / 10) for j in range(4)]
    conn.executemany(
        "INSERT INTO dag_runs (run_id, dag_nsref, status, started_at, finished_at, "
        "source_inputs_json, attempt, initiated_by) VALUES (?,?,?,?,?,?,?,?)",
        run_rows,
    )
    conn.executemany(
        "INSERT INTO node_executions (run_id, node_label, status, input_json, output_json, "
        "started_at, finished_at) VALUES (?,?,?,?,?,?,?)",
        node_rows,
    )
    conn.executemany("INSERT INTO edge_traversals VALUES (?,?,?,?)", edge_rows)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _row(name: str, ours: float, theirs: float | None, target: float | None) -> None:
    lythonic = f"{theirs:9.1f} ms" if theirs is not None else " " * 12
    goal = f"(target ≤ {target:g} ms)" if target else ""
    print(f"  {name:<46}{ours:9.1f} ms   lythonic {lythonic}  {goal}")


def _http_figures(url: str, lythonic_db: Path, repeat: int) -> None:
    from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance

    theirs = LythonicProvenance(lythonic_db)
    with httpx.Client(base_url=url) as client:
        page = client.get("/", params={"limit": 50})
        older = page.text.split('id="older" href="?')[1].split('"')[0].replace("&amp;", "&")
        recent = _median_ms(lambda: theirs.get_recent_runs(50), repeat)
        _row(
            "runs page GET / (50 newest)", _median_ms(lambda: client.get("/"), repeat), recent, 100
        )
        _row(
            "runs page, a later page (cursor)",
            _median_ms(lambda: client.get("/?" + older), repeat),
            None,
            100,
        )
        failed = _median_ms(lambda: client.get("/", params={"status": "failed"}), repeat)
        _row("runs page, status=failed (1 in 50)", failed, None, 100)
        contains = {"nsref": "dag7", "contains": "true"}
        _row(
            "runs page, nsref contains",
            _median_ms(lambda: client.get("/", params=contains), repeat),
            None,
            100,
        )

        def lythonic_run() -> None:
            run = theirs.inspect_run("big")
            assert run is not None
            theirs.load_io(run)

        data = _median_ms(lambda: client.get("/view/api/runs/big"), repeat)
        _row("run page data GET /view/api/runs/big", data, _median_ms(lythonic_run, repeat), 50)
        node = _median_ms(lambda: client.get("/view/api/runs/big/nodes/node500"), repeat)
        _row("node panel (payloads + last 20 runs)", node, None, None)


def _browser_figures(url: str, db: Path) -> None:
    from playwright.sync_api import expect

    with browser_page() as page:
        loads = []
        for _ in range(3):
            start = time.perf_counter()
            page.goto(url + "/runs/big")
            expect(page.locator("svg.dag g.node[data-status]")).to_have_count(1000, timeout=60_000)
            loads.append((time.perf_counter() - start) * 1000)
        svg = page.locator("svg.dag")
        layout, drawing = svg.get_attribute("data-layout-ms"), svg.get_attribute("data-draw-ms")
        _row("run page usable in Chromium (1,000 nodes)", statistics.median(loads), None, 2000)
        print(f"    of which dagre layout {layout} ms, drawing {drawing} ms (last load)")
        seen: list[str] = []
        page.on("request", lambda r: seen.append(r.url))
        page.wait_for_timeout(10_000)
        print(f"  idle finished-run page: {len(seen)} requests in 10 s (polling stops at the end)")
        _live_figures(page, url, db)


def _live_figures(page: Any, url: str, db: Path) -> None:
    prov = dagtrace.DagProvenance(db)
    prov.create_run("live", "bench/live", {})
    labels = [f"n{i}" for i in range(8)]
    for label in labels:
        prov.record_node_start("live", label, "{}")
    page.goto(url + "/runs/live")
    page.wait_for_selector('g.node[data-path="n7"][data-status="running"]')
    page.evaluate(
        """() => { window.__changed = {};
        new MutationObserver(() => {
          for (const g of document.querySelectorAll('g.node[data-status="completed"]'))
            window.__changed[g.getAttribute('data-path')] ??= Date.now();
        }).observe(document.body, {subtree: true, childList: true, attributes: true}); }"""
    )
    committed = {}
    for label in labels:
        prov.complete_node_with_edges("live", label, "1", [])
        committed[label] = time.time() * 1000
        page.wait_for_selector(f'g.node[data-path="{label}"][data-status="completed"]')
    changed = page.evaluate("window.__changed")
    latencies = [changed[label] - committed[label] for label in labels]
    _row("live: commit → status on screen (median of 8)", statistics.median(latencies), None, 1000)
    print(f"    worst {max(latencies):.0f} ms; the page polls a fingerprint every 500 ms")
    fingerprint = _median_ms(lambda: reads.tree_fingerprint(prov.store, "live"), 50)
    big = _median_ms(lambda: reads.tree_fingerprint(prov.store, "big"), 20)
    print(
        f"  idle running-run page: 2 polls/s × {fingerprint:.2f} ms store time "
        f"({big:.1f} ms for the 2,000-node run): ≤ {2 * big / 10:.1f}% of one core"
    )
    prov.finish_run("live", "completed")
    prov.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "view.db"
        start = time.perf_counter()
        write_big_run(db, t0=T0 + args.runs / 2)
        _bulk_runs(db, args.runs)
        lythonic_db = Path(tmp) / "lythonic-copy.db"
        shutil.copy(db, lythonic_db)
        print(f"store: {args.runs:,} runs + big, built in {time.perf_counter() - start:.1f} s")
        in_process = dagtrace.open_store(str(db), read_only=True)
        page = _median_ms(lambda: reads.list_runs_page(in_process, reads.RunFilter()), 20)
        print(f"  (the runs page's read alone, in process: {page:.1f} ms)")
        in_process.close()
        with serving(db) as url:
            _http_figures(url, lythonic_db, args.repeat)
            _browser_figures(url, db)


if __name__ == "__main__":
    main()
