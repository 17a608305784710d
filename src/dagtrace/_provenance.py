"""`DagProvenance`: lythonic's DagProvenance API, method for method, over a dagtrace store.

Hand it to lythonic's `DagRunner(dag, provenance=...)` unchanged. Each public
write is one transaction, as in lythonic; unlike lythonic it keeps its
connections open and writes in WAL mode (see `dagtrace.store.sqlite` on durability).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._initiator import current_initiator
from ._mapping import check_edges, check_text
from ._models import DagRun, safe_json_dumps
from .records import EdgeRow, NodeRow, RunRow
from .store import Durability, SqliteStore, Store, open_store


class ProvenanceReads:
    """lythonic's read methods over `self.store`: shared by every provenance class."""

    store: Store

    def close_interrupted(self, run_id: str, reason: str = "interrupted: runner died") -> int:
        """Close a run whose runner died, so it can be restarted (status `failed`).

        Its running nodes and running sub-DAG runs are closed too; spans of the dead
        attempt made before the close change nothing. Returns how many runs were
        closed (0: the run is unknown or not running). Not in lythonic: a dagtrace addition.
        """
        return self.store.close_interrupted(run_id, reason)

    def get_run(self, run_id: str) -> RunRow | None:
        """Get a run record by ID, or None if not found."""
        return self.store.get_run(run_id)

    def get_node_executions(self, run_id: str) -> list[NodeRow]:
        """Get all node execution records for a run."""
        return self.store.get_node_executions(run_id)

    def get_node_output(self, run_id: str, node_label: str) -> str | None:
        """Get the output JSON of a completed or skipped node, or None."""
        return self.store.get_node_output(run_id, node_label)

    def get_pending_nodes(self, run_id: str) -> list[str]:
        """Get labels of nodes that are not yet completed or skipped."""
        return self.store.get_pending_nodes(run_id)

    def get_edge_traversals(self, run_id: str) -> list[EdgeRow]:
        """Get all edge traversals for a run, oldest first."""
        return self.store.get_edge_traversals(run_id)

    def inspect_run(self, run_id: str) -> DagRun | None:
        """Get a full DagRun model by ID, with nested nodes, edges, and sub-DAGs."""
        return self.store.inspect_run(run_id)

    def load_io(self, dag_run: DagRun, node_labels: Sequence[str] | None = None) -> None:
        """Populate `io` on `dag_run` and its nodes (all, or `node_labels`); not sub-DAGs."""
        self.store.load_io(dag_run, node_labels)

    def get_recent_runs(self, limit: int = 20, status: str | None = None) -> list[DagRun]:
        """List runs (sub-DAG runs included) with full node/edge data, newest first."""
        return self.store.get_recent_runs(limit, status)

    def get_active_runs(self) -> list[DagRun]:
        """Get all currently running DAG executions (at most 100)."""
        return self.store.get_active_runs()

    def get_child_runs(self, parent_run_id: str) -> list[DagRun]:
        """Recursively get all descendant runs (children, grandchildren, etc.)."""
        return self.store.get_child_runs(parent_run_id)


class DagProvenance(ProvenanceReads):
    """Storage for DAG run state and node execution traces, drop-in for lythonic's.

    Raises `StoreError` (naming the file) where lythonic raises driver errors, and
    `ValueError` before writing anything for text no store keeps as given (NUL, an
    unpaired surrogate).
    """

    db_path: Path

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        durability: Durability = "process",
    ) -> None:
        self.store = open_store(db_path, read_only=read_only, durability=durability)
        self.db_path = Path(self.store.location) if isinstance(self.store, SqliteStore) else None  # type: ignore[assignment]
        """The SQLite file, as in lythonic; None for a PostgreSQL store."""

    def close(self) -> None:
        """Close the store's connections (optional: they close with the process)."""
        self.store.close()

    def __enter__(self) -> DagProvenance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        dag_nsref: str,
        source_inputs: dict[str, Any],
        parent_run_id: str | None = None,
        initiator: str | None = None,
    ) -> None:
        """Create a new run record with status 'running'.

        `initiator` defaults to `run_initiator` (dagtrace's, else lythonic's); pass it
        explicitly from another thread, which does not see the caller's context.
        """
        who = initiator if initiator is not None else current_initiator()
        check_text(run_id=run_id, dag_nsref=dag_nsref, parent_run_id=parent_run_id, initiator=who)
        with self.store.transaction() as w:
            w.insert_run(run_id, dag_nsref, safe_json_dumps(source_inputs), parent_run_id, who)

    def update_run_status(self, run_id: str, status: str) -> None:
        """Update the status of a run without setting finished_at."""
        check_text(run_id=run_id, status=status)
        with self.store.transaction() as w:
            w.update_run_status(run_id, status)

    def finish_run(self, run_id: str, status: str, sink_outputs_json: str | None = None) -> None:
        """Set final status and finished_at timestamp."""
        check_text(run_id=run_id, status=status, sink_outputs_json=sink_outputs_json)
        with self.store.transaction() as w:
            w.finish_run(run_id, status, sink_outputs_json)

    def record_node_start(
        self,
        run_id: str,
        node_label: str,
        input_json: str,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> None:
        """Record that a node has started execution."""
        check_text(run_id=run_id, node_label=node_label, input_json=input_json)
        with self.store.transaction() as w:
            w.start_node(run_id, node_label, input_json, is_source, is_sink)

    def record_node_skipped(self, run_id: str, node_label: str, output_json: str) -> None:
        """Record a node as skipped with a copied output (used in replay)."""
        check_text(run_id=run_id, node_label=node_label, output_json=output_json)
        with self.store.transaction() as w:
            w.skip_node(run_id, node_label, output_json)

    def complete_node_with_edges(
        self,
        run_id: str,
        node_label: str,
        output_json: str,
        edges: list[tuple[str, str]],
    ) -> None:
        """Record node completion and all outgoing edge traversals in one transaction."""
        check_text(run_id=run_id, node_label=node_label, output_json=output_json)
        check_edges(edges)
        with self.store.transaction() as w:
            w.complete_node(run_id, node_label, output_json)
            w.insert_edges(run_id, edges)

    def fail_node_and_finish_run(self, run_id: str, node_label: str, error: str) -> None:
        """Record node failure and mark the run as failed in one transaction."""
        check_text(run_id=run_id, node_label=node_label, error=error)
        with self.store.transaction() as w:
            w.fail_node(run_id, node_label, error)
            w.finish_run(run_id, "failed", None)


class NullProvenance:
    """No-op provenance: discards writes, returns None/empty on reads."""

    def create_run(
        self,
        run_id: str,
        dag_nsref: str,
        source_inputs: dict[str, Any],
        parent_run_id: str | None = None,
        initiator: str | None = None,
    ) -> None:
        pass

    def update_run_status(self, run_id: str, status: str) -> None:
        pass

    def finish_run(self, run_id: str, status: str, sink_outputs_json: str | None = None) -> None:
        pass

    def record_node_start(
        self,
        run_id: str,
        node_label: str,
        input_json: str,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> None:
        pass

    def record_node_skipped(self, run_id: str, node_label: str, output_json: str) -> None:
        pass

    def complete_node_with_edges(
        self, run_id: str, node_label: str, output_json: str, edges: list[tuple[str, str]]
    ) -> None:
        pass

    def fail_node_and_finish_run(self, run_id: str, node_label: str, error: str) -> None:
        pass

    def get_run(self, run_id: str) -> RunRow | None:
        return None

    def get_node_executions(self, run_id: str) -> list[NodeRow]:
        return []

    def get_node_output(self, run_id: str, node_label: str) -> str | None:
        return None

    def get_pending_nodes(self, run_id: str) -> list[str]:
        return []

    def get_edge_traversals(self, run_id: str) -> list[EdgeRow]:
        return []

    def inspect_run(self, run_id: str) -> DagRun | None:
        return None

    def load_io(self, dag_run: DagRun, node_labels: Sequence[str] | None = None) -> None:
        pass

    def get_recent_runs(self, limit: int = 20, status: str | None = None) -> list[DagRun]:
        return []

    def get_active_runs(self) -> list[DagRun]:
        return []

    def get_child_runs(self, parent_run_id: str) -> list[DagRun]:
        return []
