"""`RemoteProvenance`: the DagProvenance reads over a `dagtrace serve` query API.

For dashboards, scripts and read-only tools on other machines. (Runners restart
and replay by reading the shared store directly.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import httpx
from pydantic import TypeAdapter

from ._models import DagRun, IoPayload
from ._paths import API, Routes, path
from ._token import client_token
from .exceptions import StoreError
from .records import EdgeRow, NodeRow, RunDetails, RunRow, RunSummary

_RUNS = TypeAdapter(list[DagRun])


class RemoteProvenance:
    """Read methods of `DagProvenance`, same names and shapes, against a server URL."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        """`url`: the server's base URL (`http://host:4319`, or behind a proxy
        `https://host/dagtrace`) or its query API (`http://host:4319/api/v1`), with or
        without a trailing slash. `token`: the server's bearer token; an empty one is
        none; one that is not visible ASCII raises ValueError (servers refuse those)."""
        self.url = url.rstrip("/").removesuffix(API).rstrip("/")
        token = client_token(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteProvenance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> Any:
        """GET JSON; None for 404; StoreError when the server cannot be used."""
        raw = self._get_raw(path, **params)
        return None if raw is None else json.loads(raw)

    def _get_raw(self, path: str, **params: Any) -> bytes | None:
        """GET the JSON body unparsed (run trees are validated straight from it, which
        skips building dicts first); None for 404; StoreError as `_get`."""
        try:
            response = self._client.get(
                path, params={k: v for k, v in params.items() if v is not None}
            )
        except httpx.HTTPError as e:
            raise StoreError(f"server unreachable: {e}", location=self.url) from e
        if response.status_code == 404:
            return None
        if response.status_code == 401:
            raise StoreError(
                "the server wants a bearer token: pass token= or set DAGTRACE_TOKEN",
                location=self.url,
            )
        if response.status_code >= 400:
            raise StoreError(f"server answered HTTP {response.status_code}", location=self.url)
        return response.content

    def get_run(self, run_id: str) -> RunRow | None:
        return cast(RunRow | None, self._get(path(Routes.RUN_RECORD, run_id=run_id)))

    def get_run_details(self, run_id: str) -> RunDetails | None:
        return cast(RunDetails | None, self._get(path(Routes.RUN_DETAILS, run_id=run_id)))

    def get_node_executions(self, run_id: str) -> list[NodeRow]:
        return cast(list[NodeRow], self._get(path(Routes.RUN_NODES, run_id=run_id)) or [])

    def get_node_output(self, run_id: str, node_label: str) -> str | None:
        found = self._get(path(Routes.NODE_OUTPUT, run_id=run_id, label=node_label))
        return found["output_json"] if found else None

    def get_pending_nodes(self, run_id: str) -> list[str]:
        return self._get(path(Routes.RUN_PENDING, run_id=run_id)) or []

    def get_edge_traversals(self, run_id: str) -> list[EdgeRow]:
        return cast(list[EdgeRow], self._get(path(Routes.RUN_EDGES, run_id=run_id)) or [])

    def inspect_run(self, run_id: str, *, io: bool = False) -> DagRun | None:
        found = self._get_raw(path(Routes.RUN, run_id=run_id), io=str(io).lower())
        return None if found is None else DagRun.model_validate_json(found)

    def load_io(self, dag_run: DagRun, node_labels: Sequence[str] | None = None) -> None:
        """Populate `io` on `dag_run` and its nodes (all, or `node_labels`)."""
        full = self.inspect_run(dag_run.run_id, io=True)
        if full is None:
            return
        dag_run.io = full.io
        wanted = set(node_labels) if node_labels is not None else set(dag_run.nodes)
        for label, node in dag_run.nodes.items():
            source = full.nodes.get(label)
            if label in wanted and source is not None:
                node.io = source.io or IoPayload()

    def get_recent_runs(
        self, limit: int = 20, status: str | None = None, *, top_level: bool = False
    ) -> list[DagRun]:
        found = self._get_raw(
            Routes.RUNS, limit=limit, status=status, all=str(not top_level).lower()
        )
        return [] if found is None else _RUNS.validate_json(found)

    def get_active_runs(self) -> list[DagRun]:
        found = self._get_raw(Routes.ACTIVE_RUNS)
        return [] if found is None else _RUNS.validate_json(found)

    def get_child_runs(self, parent_run_id: str) -> list[DagRun]:
        found = self._get_raw(path(Routes.RUN_CHILDREN, run_id=parent_run_id))
        return [] if found is None else _RUNS.validate_json(found)

    def list_runs(
        self, limit: int = 20, status: str | None = None, *, top_level: bool = True
    ) -> list[RunSummary]:
        params: dict[str, Any] = {"limit": limit, "all": str(not top_level).lower()}
        if status:
            params["status"] = status
        return cast(list[RunSummary], self._get(Routes.RUN_SUMMARIES, **params) or [])

    def runs_changed_since(self, since: float) -> list[str]:
        return self._get(Routes.CHANGED_RUNS, since=since) or []

    def stats(self) -> dict[str, int]:
        return self._get(Routes.STATS) or {}
