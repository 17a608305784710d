"""Every read, API route and CLI command survives any value already in a store.

A file lythonic or another tool wrote may hold times no datetime can show: 1e21,
-1e21, 1e12 (year 33658), NaN, inf, or TEXT in a REAL column (SQLite keeps it). The
read models clamp such times to the datetime range (lythonic itself raises); the API
and the CLI also show the raw epoch.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from lythonic.compose.dag_provenance import DagProvenance as LythonicProvenance
from test_serve import serve_process

import dagtrace

ODD_TIMES: dict[str, Any] = {
    "big": 1e21,
    "negative": -1e21,
    "far": 1e12,
    "nan": math.nan,
    "inf": math.inf,
    "text": "yesterday",
}
"""Run id → the value put in every time column of that run, its node and its edge."""


def _odd_store(location: str, *, sqlite_text: bool) -> None:
    """Runs with a node and an edge each, then every time column set to an odd value."""
    prov = dagtrace.DagProvenance(location)
    store = prov.store
    try:
        for run_id in ODD_TIMES:
            prov.create_run(run_id, "odd", {"x": 1})
            prov.record_node_start(run_id, "n", "{}")
            prov.complete_node_with_edges(run_id, "n", '"o"', [("n", "m")])
            prov.finish_run(run_id, "completed")
        prov.create_run("child", "odd/n[]", {}, parent_run_id="big")
        with store.transaction() as writer:
            cur = writer._cur
            for run_id, value in ODD_TIMES.items():
                if isinstance(value, str) and not sqlite_text:
                    continue  # a DOUBLE PRECISION column cannot hold text
                if value != value and sqlite_text:
                    continue  # SQLite stores NaN as NULL: it cannot hold one
                for sql in (
                    "UPDATE dag_runs SET started_at = ?, finished_at = ? WHERE run_id = ?",
                    "UPDATE node_executions SET started_at = ?, finished_at = ? WHERE run_id = ?",
                ):
                    cur.execute(sql, (value, value, run_id))
                cur.execute(
                    "UPDATE edge_traversals SET traversed_at = ? WHERE run_id = ?",
                    (value, run_id),
                )
    finally:
        store.close()


@pytest.fixture
def odd_store(new_store_url: Callable[[], str]) -> str:
    location = new_store_url()
    _odd_store(location, sqlite_text=not location.startswith("postgresql"))
    return location


def test_every_read_survives_odd_times(odd_store: str) -> None:
    prov = dagtrace.DagProvenance(odd_store)
    try:
        runs = prov.get_recent_runs(50)
        assert {r.run_id for r in runs} >= {"big", "negative", "far", "nan", "inf"}
        by_id = {r.run_id: r for r in runs}
        assert by_id["big"].started_at == datetime.max.replace(tzinfo=UTC)
        assert by_id["negative"].started_at == datetime.min.replace(tzinfo=UTC)
        assert by_id["far"].started_at == datetime.max.replace(tzinfo=UTC)
        for run_id in set(by_id) - {"child"}:
            run = prov.inspect_run(run_id)
            assert run is not None and run.nodes["n"].edges[0].downstream_label == "m"
            prov.load_io(run)
            run.latest_update()
            assert prov.get_run(run_id) is not None
            prov.get_node_executions(run_id)
            prov.get_edge_traversals(run_id)
            prov.get_pending_nodes(run_id)
        prov.get_active_runs()
        assert [r.run_id for r in prov.get_child_runs("big")] == ["child"]
        prov.store.list_runs(50, None, top_level=True)
        prov.store.runs_changed_since(0.0)
    finally:
        prov.close()


def test_every_cli_command_and_route_survives_odd_times(tmp_path: Path) -> None:
    db = tmp_path / "odd.db"
    LythonicProvenance(db)  # a file lythonic made
    _odd_store(str(db), sqlite_text=True)
    for args in (["runs", "--all"], ["show", "big"], ["show", "text"], ["stats"]):
        done = subprocess.run(
            [sys.executable, "-m", "dagtrace", *args, "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "dagtrace", "runs", "--all", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "epoch 1e+21" in listing and "epoch 'yesterday'" in listing  # the raw value

    with serve_process(db) as (_, url), httpx.Client(base_url=url) as client:
        paths = ["/api/v1/runs", "/api/v1/runs?all=true", "/api/v1/runs/active"]
        paths += ["/api/v1/runs/summary", "/api/v1/runs/changed?since=0", "/api/v1/stats"]
        for run_id in ODD_TIMES:
            base = f"/api/v1/runs/{run_id}"
            paths += [base, f"{base}?io=true", f"{base}/record", f"{base}/details"]
            paths += [f"{base}/nodes", f"{base}/edges", f"{base}/children", f"{base}/pending"]
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            json.loads(answer.text)  # strict JSON: no NaN or Infinity tokens
        record = client.get("/api/v1/runs/inf/record").json()
        assert record["started_at"] == "Infinity"  # the raw epoch, as JSON can carry it
        with dagtrace.RemoteProvenance(url) as remote:
            assert remote.inspect_run("big") is not None
            assert {r.run_id for r in remote.get_recent_runs(50)} >= set(ODD_TIMES)
