"""The query API (`/api/v1/...`): the DagProvenance reads as JSON, one function per route.

The paths come from `_paths.Routes`, the table `RemoteProvenance` requests them by:
a new route goes in both (a test checks that every route has its client method).
Sync routes: FastAPI runs them in its threadpool. What the API returns is redacted
(`ServeConfig.redaction`); the store keeps everything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import TypeAdapter

from .._models import DagRun, IoPayload, raw_times
from .._paths import Routes
from .._redact import Redaction
from .routing import route
from .state import Served, served

router = APIRouter()

Reads = Annotated[Served, Depends(served)]

_RUNS = TypeAdapter(list[DagRun])


def _json(value: DagRun | list[DagRun]) -> Response:
    """Run trees as JSON, serialized by pydantic-core in one pass. (Returned as models,
    FastAPI would check them against `response_model`, turn them into Python dicts and
    lists, then those into JSON: three times the time on a big tree. `response_model`
    stays on the routes for the OpenAPI document.)"""
    data = value.model_dump_json() if isinstance(value, DagRun) else _RUNS.dump_json(value)
    return Response(content=data, media_type="application/json")


def _found(value: Any, what: str) -> Any:
    if value is None:
        raise HTTPException(404, f"no such {what}")
    return value


def redacted_run(run: DagRun, redaction: Redaction) -> DagRun:
    if run.io is not None:
        run.io = IoPayload(
            input_json=redaction.payload(run.io.input_json),
            output_json=redaction.payload(run.io.output_json),
        )
    for node in run.nodes.values():
        if node.io is not None:
            node.io = IoPayload(
                input_json=redaction.payload(node.io.input_json),
                output_json=redaction.payload(node.io.output_json),
            )
    return run


@router.get(route(Routes.RUNS), response_model=list[DagRun])
def recent_runs(
    served: Reads,
    limit: int = Query(20, ge=1, le=10_000),
    status: str | None = None,
    all: bool = Query(False, description="Include sub-DAG runs (they are nested anyway)."),
) -> Response:
    """Recent runs, newest first, as `get_recent_runs`; top-level runs unless `all`."""
    return _json(served.store.get_recent_runs(limit, status, top_level=not all))


@router.get(route(Routes.ACTIVE_RUNS), response_model=list[DagRun])
def active_runs(served: Reads) -> Response:
    """Running runs, as `get_active_runs`."""
    return _json(served.store.get_active_runs())


@router.get(route(Routes.RUN_SUMMARIES))
def run_summaries(
    served: Reads,
    limit: int = Query(20, ge=1, le=10_000),
    status: str | None = None,
    all: bool = Query(False, description="Include sub-DAG runs."),
) -> list[dict[str, Any]]:
    """Newest runs first, flat, with their node count: no trees (`dagtrace runs`)."""
    return [raw_times(run) for run in served.store.list_runs(limit, status, top_level=not all)]


@router.get(route(Routes.CHANGED_RUNS))
def changed_runs(
    served: Reads, since: float = Query(..., description="Epoch seconds.")
) -> list[str]:
    """Ids of the top-level runs running, or started or finished after `since`."""
    return served.store.runs_changed_since(since)


@router.get(route(Routes.RUN), response_model=DagRun)
def inspect(served: Reads, run_id: str, io: bool = False) -> Response:
    """One run with nodes, edges and sub-DAG runs, as `inspect_run` (+ `load_io`)."""
    run = _found(served.store.inspect_run(run_id), "run")
    if io:
        served.store.load_io(run)
        redacted_run(run, served.config.redaction)
    return _json(run)


@router.get(route(Routes.RUN_RECORD))
def record(served: Reads, run_id: str) -> dict[str, Any]:
    """The run row, as `get_run`."""
    row = _found(served.store.get_run(run_id), "run")
    redaction = served.config.redaction
    return raw_times(
        {
            **row,
            "source_inputs_json": redaction.payload(row["source_inputs_json"]),
            "sink_outputs_json": redaction.payload(row["sink_outputs_json"]),
        }
    )


@router.get(route(Routes.RUN_DETAILS))
def details(served: Reads, run_id: str) -> dict[str, Any]:
    """Trace and span ids, attempt, lineage, close reason."""
    return _found(served.store.get_run_details(run_id), "run")  # type: ignore[no-any-return]


@router.get(route(Routes.RUN_NODES))
def nodes(served: Reads, run_id: str) -> list[dict[str, Any]]:
    """Node rows, as `get_node_executions`."""
    rows = served.config.redaction.node_rows(served.store.get_node_executions(run_id))
    return [raw_times(row) for row in rows]


@router.get(route(Routes.RUN_EDGES))
def edges(served: Reads, run_id: str) -> list[dict[str, Any]]:
    """Edge traversals, as `get_edge_traversals`."""
    return [raw_times(edge) for edge in served.store.get_edge_traversals(run_id)]


@router.get(route(Routes.RUN_CHILDREN), response_model=list[DagRun])
def children(served: Reads, run_id: str) -> Response:
    """All descendant runs, as `get_child_runs`."""
    return _json(served.store.get_child_runs(run_id))


@router.get(route(Routes.RUN_PENDING))
def pending(served: Reads, run_id: str) -> list[str]:
    """Labels of nodes not completed or skipped, as `get_pending_nodes`."""
    return served.store.get_pending_nodes(run_id)


@router.get(route(Routes.NODE_OUTPUT))
def output(served: Reads, run_id: str, label: str) -> dict[str, str]:
    """A completed or skipped node's output JSON, as `get_node_output`."""
    output = _found(served.store.get_node_output(run_id, label), "node output")
    return {"output_json": served.config.redaction.payload(output)}  # type: ignore[dict-item]


@router.get(route(Routes.STATS))
def stats(served: Reads) -> dict[str, int]:
    """Row counts and the bridge's counters, and `bugs`: exceptions this server met on
    its ingest path that were neither store failures nor rejected spans (each logged
    with its traceback)."""
    figures = served.store.stats()
    figures["bugs"] = figures.get("bugs", 0) + served.bugs.count
    return figures
