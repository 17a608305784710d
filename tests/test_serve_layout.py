"""The boundaries of the serve package: every query route has its client method, and
what runs without a server (the CLI's other commands, an ingest worker, a client)
loads no web framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve import serving

import dagtrace
from dagtrace._paths import API, Routes, path
from dagtrace.serve import ServeConfig, create_app
from dagtrace.serve.api import router as api_router

CLIENT_CALLS: dict[str, tuple[str, tuple[Any, ...]]] = {
    Routes.RUNS: ("get_recent_runs", ()),
    Routes.ACTIVE_RUNS: ("get_active_runs", ()),
    Routes.RUN_SUMMARIES: ("list_runs", ()),
    Routes.CHANGED_RUNS: ("runs_changed_since", (0.0,)),
    Routes.RUN: ("inspect_run", ("r",)),
    Routes.RUN_RECORD: ("get_run", ("r",)),
    Routes.RUN_DETAILS: ("get_run_details", ("r",)),
    Routes.RUN_NODES: ("get_node_executions", ("r",)),
    Routes.RUN_EDGES: ("get_edge_traversals", ("r",)),
    Routes.RUN_CHILDREN: ("get_child_runs", ("r",)),
    Routes.RUN_PENDING: ("get_pending_nodes", ("r",)),
    Routes.NODE_OUTPUT: ("get_node_output", ("r", "n")),
    Routes.STATS: ("stats", ()),
}
"""Each query route → the `RemoteProvenance` method that requests it, and its arguments."""


def _query_routes(tmp_path: Path) -> set[str]:
    """The app's /api/v1 paths (`{name}` parameters): those of its OpenAPI document, and
    those of the query router. Other paths (the web view, /v1/traces) are not the API."""
    store = dagtrace.open_store(tmp_path / "routes.db")
    try:
        app = create_app(store, ServeConfig(read_only=True))
        documented = set(app.openapi()["paths"])
    finally:
        store.close()
    routed = {getattr(route, "path_format", "") for route in api_router.routes}
    return {p for p in documented | routed if p.startswith(f"{API}/")}


def test_every_query_route_has_its_client_method(tmp_path: Path) -> None:
    routes = _query_routes(tmp_path)
    assert routes == set(Routes.all()), "a route outside the `Routes` table, or one unrouted"
    without = routes - set(CLIENT_CALLS)
    assert not without, f"routes without a RemoteProvenance method: {without}"
    for route, (method, _) in CLIENT_CALLS.items():
        assert callable(getattr(dagtrace.RemoteProvenance, method, None)), (route, method)


def test_each_client_method_requests_its_route(db_path: Path) -> None:
    requested: list[str] = []
    with serving(db_path, "--decoders", "0") as url:
        with dagtrace.RemoteProvenance(url) as remote:
            remote._client.event_hooks["request"].append(
                lambda request: requested.append(request.url.raw_path.decode().split("?")[0])
            )
            for route, (method, args) in CLIENT_CALLS.items():
                requested.clear()
                getattr(remote, method)(*args)
                assert requested == [path(route, run_id="r", label="n")], method
        assert httpx.get(f"{url}{path(Routes.RUN, run_id='active')}").status_code == 404


@pytest.mark.parametrize(
    "module", ["dagtrace.cli", "dagtrace.serve.ingest", "dagtrace._remote", "dagtrace"]
)
def test_no_web_framework_outside_the_server(module: str) -> None:
    """`dagtrace runs` (any command but serve), an ingest worker and the HTTP client
    start without importing fastapi, starlette or uvicorn."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    web = {name for name in imported if name.split(".")[0] in ("fastapi", "starlette", "uvicorn")}
    assert not web, f"{module} imports {sorted(web)[:5]}"
