"""The shapes dagtrace reads return, and the one read interface every reader has.

The `TypedDict`s are plain dicts at run time, key for key what lythonic's
DagProvenance returns (`RunRow`, `NodeRow`, `EdgeRow`) or dagtrace's own reads add;
they only let a type checker see the keys. `ProvenanceReader` is lythonic's read API;
`StoreReader` adds dagtrace's own reads. The store, the drop-in `DagProvenance`,
`TracedProvenance` and `RemoteProvenance` are all `ProvenanceReader`s; the store and
`RemoteProvenance` (what the CLI reads through) are `StoreReader`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypedDict, runtime_checkable

from ._models import DagRun

__all__ = [
    "EdgeRow",
    "NodeRow",
    "ProvenanceReader",
    "RunDetails",
    "RunRow",
    "RunSummary",
    "SilentRun",
    "StoreReader",
]


class RunRow(TypedDict):
    """A `dag_runs` row as lythonic's `get_run` returns it (times in epoch seconds)."""

    run_id: str
    dag_nsref: str
    parent_run_id: str | None
    status: str
    started_at: float
    finished_at: float | None
    source_inputs_json: str | None
    sink_outputs_json: str | None
    initiated_by: str | None


class NodeRow(TypedDict):
    """A `node_executions` row as lythonic's `get_node_executions` returns it."""

    run_id: str
    node_label: str
    status: str
    is_source: bool
    is_sink: bool
    input_json: str | None
    output_json: str | None
    started_at: float | None
    finished_at: float | None
    error: str | None


class EdgeRow(TypedDict):
    run_id: str
    upstream_label: str
    downstream_label: str
    traversed_at: float


class RunSummary(TypedDict):
    """One line of `list_runs`: a run without its tree, with its count of nodes."""

    run_id: str
    dag_nsref: str
    status: str
    started_at: float
    finished_at: float | None
    nodes: int


class RunDetails(TypedDict):
    """What dagtrace keeps beside lythonic's columns of a run."""

    trace_id: str | None
    span_id: str | None
    attempt: int | None
    replay_of_run_id: str | None
    replay_root_run_id: str | None
    close_reason: str | None
    payload_error: str | None
    parent_node_label: str | None
    heartbeat_at: float | None


class SilentRun(TypedDict):
    """A running run with no sign of life (`dagtrace sweep`)."""

    run_id: str
    dag_nsref: str
    last_seen: float


@runtime_checkable
class ProvenanceReader(Protocol):
    """lythonic's DagProvenance reads: what a runner needs to restart or replay a run."""

    def get_run(self, run_id: str) -> RunRow | None: ...

    def get_node_executions(self, run_id: str) -> list[NodeRow]: ...

    def get_node_output(self, run_id: str, node_label: str) -> str | None: ...

    def get_pending_nodes(self, run_id: str) -> list[str]: ...

    def get_edge_traversals(self, run_id: str) -> list[EdgeRow]: ...

    def inspect_run(self, run_id: str) -> DagRun | None: ...

    def load_io(self, dag_run: DagRun, node_labels: Sequence[str] | None = None) -> None: ...

    def get_recent_runs(self, limit: int = 20, status: str | None = None) -> list[DagRun]: ...

    def get_active_runs(self) -> list[DagRun]: ...

    def get_child_runs(self, parent_run_id: str) -> list[DagRun]: ...


@runtime_checkable
class StoreReader(ProvenanceReader, Protocol):
    """dagtrace's own reads besides lythonic's: a store, or serve through HTTP."""

    def get_run_details(self, run_id: str) -> RunDetails | None: ...

    def list_runs(
        self, limit: int = 20, status: str | None = None, *, top_level: bool = True
    ) -> list[RunSummary]: ...

    def runs_changed_since(self, since: float) -> list[str]: ...

    def stats(self) -> dict[str, int]: ...
