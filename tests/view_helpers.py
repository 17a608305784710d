"""Helpers of the web view's tests (and of benchmarks/bench_view.py): `dagtrace serve`
in its own process, a headless Chromium through Playwright, and stores to show."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

IN_CI = bool(os.environ.get("CI"))
BROWSER_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]


@contextmanager
def serving(db: Path | str, *args: str) -> Iterator[str]:
    """`dagtrace serve --db db` on a free port; yields its URL once it printed its ready
    line (no sleeps); stops it afterwards."""
    command = [sys.executable, "-m", "dagtrace", "serve", "--db", str(db), "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--decoders", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    try:
        assert "listening on" in line, proc.stderr.read()
        yield line.split("listening on ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def chromium_or_skip() -> str:
    """Debian's chromium; skip with the reason when it or Playwright is missing (fail
    under CI, where .ci/run installs it)."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the browser tests need playwright (pip install -e '.[test]')"
    path = shutil.which("chromium")
    if problem is None and path is None:
        problem = "the browser tests need Debian's chromium (apt-get install chromium)"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI is set: {problem}")
        pytest.skip(problem)
    assert path is not None
    return path


@contextmanager
def browser_page(**context: Any) -> Iterator[Any]:
    """A fresh page of a headless Chromium; it records dialogs and console errors on
    `page.dialogs` / `page.errors` (hostile strings must trigger neither)."""
    from playwright.sync_api import sync_playwright

    path = chromium_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=BROWSER_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 900}, **context)
            page: Any = ctx.new_page()  # carries what it saw: .dialogs, .errors
            page.dialogs = []
            page.errors = []

            def on_dialog(dialog: Any) -> None:
                page.dialogs.append(dialog.message)
                dialog.dismiss()

            def on_console(message: Any) -> None:
                if message.type == "error":
                    page.errors.append(message.text)

            def on_page_error(error: Any) -> None:
                page.errors.append(str(error))

            page.on("dialog", on_dialog)
            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def traced(db: Path, fn: Any, *args: Any, **kwargs: Any) -> None:
    """Run `fn(tracer, ...)` with a DagTracer recording into `db`."""
    import dagtrace

    provider = dagtrace.configure(db)
    try:
        fn(dagtrace.DagTracer(provider), *args, **kwargs)
    finally:
        provider.shutdown()


_RUN_COLS = "run_id, dag_nsref, parent_run_id, status, started_at, finished_at, attempt"
_NODE_COLS = "run_id, node_label, status, is_source, is_sink, output_json, started_at, finished_at"


def write_big_run(
    db: Path | str, run_id: str = "big", *, t0: float = 1_800_000_000.0, subs: int = 100
) -> None:
    """A run of 1,000 nodes and 999 edges (a chain from the map node `m`), `m` mapped
    over `subs` sub-DAG runs of 10 nodes each, written in bulk (SQL, not spans)."""
    import dagtrace

    dagtrace.DagProvenance(db).close()  # the schema
    runs: list[tuple[Any, ...]] = [(run_id, "bench/big", None, "completed", t0, t0 + 60, 1)]
    labels = ["m", *(f"node{k}" for k in range(1, 1000))]
    nodes: list[tuple[Any, ...]] = []
    edges: list[tuple[Any, ...]] = []
    for k, label in enumerate(labels):
        start = t0 + k / 20
        nodes.append(
            (run_id, label, "completed", int(k == 0), int(k == 999), "1", start, start + 0.04)
        )
        if k:
            edges.append((run_id, labels[k - 1], label, start - 0.005))
    for c in range(subs):
        child, start = f"{run_id}.{c}", t0 + c / 1000
        runs.append((child, f"bench/big/m[{c}]", run_id, "completed", start, start + 0.04, 1))
        for j in range(10):
            at = start + j / 1000
            nodes.append(
                (child, f"s{j}", "completed", int(j == 0), int(j == 9), "1", at, at + 0.0009)
            )
            if j:
                edges.append((child, f"s{j - 1}", f"s{j}", at - 0.0001))
    with sqlite3.connect(db) as conn:
        conn.executemany(f"INSERT INTO dag_runs ({_RUN_COLS}) VALUES (?,?,?,?,?,?,?)", runs)
        conn.executemany(
            f"INSERT INTO node_executions ({_NODE_COLS}) VALUES (?,?,?,?,?,?,?,?)", nodes
        )
        conn.executemany("INSERT INTO edge_traversals VALUES (?,?,?,?)", edges)
    conn.close()


HOSTILE_LABEL = '<script>alert("label")</script>'
HOSTILE_ONERROR = '<img src=x onerror=alert("onerror")>'
RTL_RUN_ID = "\u202erun-\u05e9\u05dc\u05d5\u05dd-<b>"


def hostile_run(tracer: Any) -> None:
    """A run whose every string tries to become markup: a `<script>` label, an
    `onerror=` payload and node, an RTL run id with a tag in it, a failing node whose
    error holds markup too."""
    nsref = '<script>alert("nsref")</script>/"onmouseover=alert(1)'
    with tracer.run(nsref, run_id=RTL_RUN_ID, inputs={"x": HOSTILE_ONERROR}) as run:
        with run.node(HOSTILE_LABEL, input={"html": HOSTILE_ONERROR}, is_source=True) as n:
            n.set_output({"out": "</script><script>alert('output')</script>"})
            n.edge(HOSTILE_ONERROR)
        try:
            with run.node(HOSTILE_ONERROR, input=HOSTILE_ONERROR, is_sink=True):
                raise ValueError('<img src=x onerror=alert("error")>')
        except ValueError:
            pass
