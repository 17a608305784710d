"""The reads: lythonic's DagProvenance reads (flat dicts and `DagRun` trees) and
dagtrace's own, written once for every backend.

A backend supplies `_read()` (a cursor in one read snapshot) and its `dialect`; the
SQL here uses `?` placeholders, which the PostgreSQL cursor translates. A whole sub-DAG
tree loads in three queries (its runs, their nodes, their edges) whatever its depth or
width, a fourth when a sub-run's nsref does not name its composite node.

What a big tree's read costs is fetching its rows and building its models (the models
are built unvalidated, `_build`); `benchmarks/bench_store.py` measures both apart as
the bound of each read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, tzinfo
from typing import Any, cast

from .._models import (
    FIELD_SETS,
    SLOT_SETTERS,
    DagRun,
    EdgeTraversal,
    IoPayload,
    NodeExecution,
    epoch_to_datetime,
)
from .._subruns import Linked, Place, nsref_place, parent_node_places
from ..records import EdgeRow, NodeRow, RunDetails, RunRow, RunSummary, SilentRun
from . import schema
from .writer import Cursor, Dialect

_RUN_COLUMNS = ("run_id", "dag_nsref", "parent_run_id", "status", "started_at", "finished_at")
_NODE_COLUMNS = "run_id, node_label, status, is_source, is_sink, started_at, finished_at, error"


def _newest_runs(
    columns: str, limit: int, status: str | None, top_level: bool
) -> tuple[str, tuple[Any, ...]]:
    """A query of the newest runs' `columns`, newest first, and its parameters."""
    where = ["status = ?"] if status else []
    if top_level:
        where.append("parent_run_id IS NULL")
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    sql = f"SELECT {columns} FROM dag_runs {clause}ORDER BY started_at DESC LIMIT ?"
    return sql, ((status, limit) if status else (limit,))


def _tree(seed_sql: str, initiated_by: str) -> str:
    """Run rows of the seed runs and all their descendants, in start order.

    `initiated_by` is the column, or `NULL` for an old file opened read-only.
    UNION (not UNION ALL) makes a corrupt parent cycle terminate.
    """
    cols = ", ".join((*_RUN_COLUMNS, initiated_by))
    d_cols = ", ".join(f"d.{c}" if c != "NULL" else c for c in (*_RUN_COLUMNS, initiated_by))
    return (
        f"WITH RECURSIVE tree AS (SELECT {cols} FROM dag_runs WHERE run_id IN ({seed_sql}) "
        f"UNION SELECT {d_cols} FROM dag_runs AS d JOIN tree AS t ON d.parent_run_id = t.run_id) "
        "SELECT * FROM tree ORDER BY started_at, run_id"
    )


CHANGED_RUNS_SQL = (
    "SELECT run_id, started_at FROM dag_runs WHERE parent_run_id IS NULL AND status = 'running' "
    "UNION SELECT run_id, started_at FROM dag_runs WHERE parent_run_id IS NULL AND started_at > ? "
    "UNION SELECT run_id, started_at FROM dag_runs WHERE parent_run_id IS NULL AND finished_at > ? "
    "ORDER BY started_at"
)
"""`runs_changed_since`: three index ranges (schema 8); an OR of the three conditions
scanned every top-level run (8× slower at 1,000,000 runs than at 100,000)."""


class StoreReads:
    """Every read of a store; `Store` inherits them, backends inherit `Store`."""

    location: str
    dialect: Dialect
    initiated_by_column: str = "initiated_by"
    """`NULL` when reading, without write access, a file from before lythonic 0.0.28."""
    parent_node_column: str = "parent_node_label"
    """`NULL` when reading, without write access, a file dagtrace never migrated."""

    def _read(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    _DETAILS = (
        "trace_id",
        "span_id",
        "attempt",
        "replay_of_run_id",
        "replay_root_run_id",
        "close_reason",
        "payload_error",
        "parent_node_label",
        "heartbeat_at",
    )

    def get_run_details(self, run_id: str) -> RunDetails | None:
        """What dagtrace keeps beside lythonic's columns: trace and span ids, attempt,
        lineage, why a run was closed or a payload dropped, the last heartbeat."""
        with self._read() as cur:
            cur.execute(
                f"SELECT {', '.join(self._DETAILS)} FROM dag_runs WHERE run_id = ?", (run_id,)
            )
            row = cur.fetchone()
        return None if row is None else cast(RunDetails, dict(zip(self._DETAILS, row, strict=True)))

    def silent_runs(self, silent_for: float, *, now: float | None = None) -> list[SilentRun]:
        """Top-level `running` runs with no sign of life for `silent_for` seconds: no
        heartbeat, no run or node start or end. Their runner is probably dead."""
        cutoff = (now if now is not None else time.time()) - silent_for
        with self._read() as cur:
            cur.execute(
                "SELECT r.run_id, r.dag_nsref, r.started_at, r.heartbeat_at, "
                "(SELECT MAX(COALESCE(n.finished_at, n.started_at)) FROM node_executions n "
                "WHERE n.run_id = r.run_id) FROM dag_runs r "
                "WHERE r.status = 'running' AND r.parent_run_id IS NULL ORDER BY r.started_at",
            )
            rows = cur.fetchall()
        silent: list[SilentRun] = []
        for run_id, nsref, started, beat, node_activity in rows:
            last_seen = max(v for v in (started, beat, node_activity) if v is not None)
            if last_seen < cutoff:
                silent.append({"run_id": run_id, "dag_nsref": nsref, "last_seen": last_seen})
        return silent

    def list_runs(
        self, limit: int = 20, status: str | None = None, *, top_level: bool = True
    ) -> list[RunSummary]:
        """Newest runs first, flat: run_id, dag_nsref, status, started_at, finished_at
        (epoch seconds) and their count of `nodes`, without loading any tree (what
        `dagtrace runs` lists, cheap however big the runs are)."""
        newest, params = _newest_runs(
            "run_id, dag_nsref, status, started_at, finished_at", limit, status, top_level
        )
        with self._read() as cur:
            cur.execute(  # nodes counted for the runs listed only, not every candidate
                "SELECT r.run_id, r.dag_nsref, r.status, r.started_at, r.finished_at, "
                "(SELECT COUNT(*) FROM node_executions AS n WHERE n.run_id = r.run_id) "
                f"FROM ({newest}) AS r ORDER BY r.started_at DESC",
                params,
            )
            keys = ("run_id", "dag_nsref", "status", "started_at", "finished_at", "nodes")
            return [cast(RunSummary, dict(zip(keys, row, strict=True))) for row in cur.fetchall()]

    def runs_changed_since(self, since: float) -> list[str]:
        """Top-level runs that are running, or started or finished after `since` (epoch
        seconds), oldest first: the runs whose tree may have changed, which is all a
        follower (`dagtrace tail`) needs to re-read."""
        with self._read() as cur:
            cur.execute(CHANGED_RUNS_SQL, (since, since))
            return [r[0] for r in cur.fetchall()]

    def get_replays(self, run_id: str) -> list[str]:
        """Ids of the runs that replay `run_id`, oldest first."""
        with self._read() as cur:
            cur.execute(
                "SELECT run_id FROM dag_runs WHERE replay_of_run_id = ? ORDER BY started_at",
                (run_id,),
            )
            return [r[0] for r in cur.fetchall()]

    def get_counters(self) -> dict[str, int]:
        """The bridge's persisted counters, e.g. `spans_rejected`, `store_failures`."""
        with self._read() as cur:
            cur.execute("SELECT key, value FROM dagtrace_meta WHERE key LIKE 'counter.%'")
            return {key[len("counter.") :]: int(value) for key, value in cur.fetchall()}

    def table_counts(self) -> dict[str, int]:
        """Rows per provenance table."""
        with self._read() as cur:
            counts = {}
            for table in ("dag_runs", "node_executions", "edge_traversals"):
                cur.execute(f"SELECT count(*) FROM {table}")
                counts[table] = int(cur.fetchone()[0])
            return counts

    # -- flat reads: exactly lythonic's dict shapes ---------------------------------

    def get_run(self, run_id: str) -> RunRow | None:
        columns = (*schema.RUN_ROW[:-1], self.initiated_by_column)
        with self._read() as cur:
            cur.execute(f"SELECT {', '.join(columns)} FROM dag_runs WHERE run_id = ?", (run_id,))
            row = cur.fetchone()
        return None if row is None else cast(RunRow, dict(zip(schema.RUN_ROW, row, strict=True)))

    def get_node_executions(self, run_id: str) -> list[NodeRow]:
        with self._read() as cur:
            cur.execute(
                f"SELECT {', '.join(schema.NODE_ROW)} FROM node_executions WHERE run_id = ? "
                "ORDER BY node_label",
                (run_id,),
            )
            rows = cur.fetchall()
        return [
            cast(
                NodeRow,
                {
                    **dict(zip(schema.NODE_ROW, r, strict=True)),
                    "is_source": bool(r[3]),
                    "is_sink": bool(r[4]),
                },
            )
            for r in rows
        ]

    def get_node_output(self, run_id: str, node_label: str) -> str | None:
        with self._read() as cur:
            cur.execute(
                "SELECT output_json FROM node_executions WHERE run_id = ? AND node_label = ? "
                "AND status IN ('completed', 'skipped')",
                (run_id, node_label),
            )
            row = cur.fetchone()
        return row[0] if row else None

    def get_pending_nodes(self, run_id: str) -> list[str]:
        with self._read() as cur:
            cur.execute(
                "SELECT node_label FROM node_executions WHERE run_id = ? "
                "AND status IN ('pending', 'running', 'failed') ORDER BY node_label",
                (run_id,),
            )
            return [r[0] for r in cur.fetchall()]

    def get_edge_traversals(self, run_id: str) -> list[EdgeRow]:
        with self._read() as cur:
            cur.execute(
                "SELECT run_id, upstream_label, downstream_label, traversed_at "
                "FROM edge_traversals WHERE run_id = ? ORDER BY traversed_at",
                (run_id,),
            )
            rows = cur.fetchall()
        return [
            {"run_id": r[0], "upstream_label": r[1], "downstream_label": r[2], "traversed_at": r[3]}
            for r in rows
        ]

    # -- tree reads: DagRun models with nodes, edges and sub-DAGs ----------------------

    def inspect_run(self, run_id: str) -> DagRun | None:
        seed = "SELECT run_id FROM dag_runs WHERE run_id = ?"
        with self._read() as cur:
            runs = self._load_tree(cur, seed, (run_id,))
        return runs.get(run_id)

    def get_recent_runs(
        self, limit: int = 20, status: str | None = None, *, top_level: bool = False
    ) -> list[DagRun]:
        """Newest first; `top_level` leaves out sub-DAG runs (they stay nested)."""
        columns = ", ".join((*_RUN_COLUMNS, self.initiated_by_column))
        newest, params = _newest_runs(columns, limit, status, top_level)
        with self._read() as cur:
            cur.execute(newest, params)
            top_rows = cur.fetchall()
            if not top_rows:
                return []
            top = [r[0] for r in top_rows]
            in_top, ids = self.dialect.in_list(top)
            cur.execute(f"SELECT 1 FROM dag_runs WHERE parent_run_id IN ({in_top}) LIMIT 1", (ids,))
            if cur.fetchone() is None:  # no sub-DAG runs below: these rows are the trees
                runs = self._load_runs(cur, top_rows, in_top, ids, nested=False)
            else:
                runs = self._load_tree(cur, in_top, (ids,))
        return [runs[r] for r in top if r in runs]

    def get_active_runs(self) -> list[DagRun]:
        return self.get_recent_runs(limit=100, status="running")

    def get_child_runs(self, parent_run_id: str) -> list[DagRun]:
        """All descendants, ordered by start, each with its own sub-DAG tree."""
        seed = "SELECT run_id FROM dag_runs WHERE parent_run_id = ?"
        with self._read() as cur:
            runs = self._load_tree(cur, seed, (parent_run_id,))
        return list(runs.values())

    def load_io(self, dag_run: DagRun, node_labels: Sequence[str] | None = None) -> None:
        labels = list(node_labels) if node_labels is not None else list(dag_run.nodes)
        with self._read() as cur:
            cur.execute(
                "SELECT source_inputs_json, sink_outputs_json FROM dag_runs WHERE run_id = ?",
                (dag_run.run_id,),
            )
            row = cur.fetchone()
            if row:
                dag_run.io = IoPayload(input_json=row[0], output_json=row[1])
            if not labels:
                return
            cur.execute(
                "SELECT node_label, input_json, output_json FROM node_executions WHERE run_id = ?",
                (dag_run.run_id,),
            )
            wanted = set(labels)
            for label, input_json, output_json in cur.fetchall():
                node = dag_run.nodes.get(label)
                if node is not None and label in wanted:
                    node.io = IoPayload(input_json=input_json, output_json=output_json)

    def _load_tree(self, cur: Cursor, seed_sql: str, params: tuple[Any, ...]) -> dict[str, DagRun]:
        """Runs selected by `seed_sql` and all their descendants, keyed by id, in start order."""
        cur.execute(_tree(seed_sql, self.initiated_by_column), params)
        run_rows = cur.fetchall()
        if not run_rows:
            return {}
        in_runs, ids = self.dialect.in_list([r[0] for r in run_rows])
        return self._load_runs(cur, run_rows, in_runs, ids)

    def _load_runs(
        self, cur: Cursor, run_rows: list[Any], in_runs: str, ids: Any, *, nested: bool = True
    ) -> dict[str, DagRun]:
        """The runs of `run_rows`, keyed by id in their order, with their nodes and edges
        (`in_runs`, `ids`: their ids in SQL), and unless not `nested` (none is another's
        sub-run) each sub-run under its composite node, a later row winning a key."""
        cur.execute(
            f"SELECT {_NODE_COLUMNS} FROM node_executions WHERE run_id IN ({in_runs})", (ids,)
        )
        node_rows = cur.fetchall()
        edges_sql = f"SELECT {_EDGE_COLUMNS} FROM edge_traversals WHERE run_id IN ({in_runs})"
        cur.execute(edges_sql, (ids,))
        edge_rows = cur.fetchall()
        try:
            # Each node's edges by time, ties by downstream label: lythonic's order
            # (SQLite's sort is stable over its scan of the primary key), on every
            # backend; sorted here, as the rows come (time and downstream label first),
            # rather than in SQL, which cost a temporary B-tree.
            edge_rows.sort()
            runs = _build(run_rows, node_rows, edge_rows, _from_timestamp)
        except (OverflowError, ValueError, OSError, TypeError):
            # A time no datetime shows (or TEXT among the REALs, which Python cannot
            # sort): clamped, and the edges in the order SQL gives them.
            cur.execute(f"{edges_sql} ORDER BY traversed_at", (ids,))
            runs = _build(run_rows, node_rows, cur.fetchall(), _clamped)
        if nested:
            self._nest(cur, runs)
        return runs

    def _nest(self, cur: Cursor, runs: dict[str, DagRun]) -> None:
        """Each sub-run under its parent's composite node, in the order of `runs`."""
        places: dict[str, Place] = {}
        unplaced: list[DagRun] = []
        for run in runs.values():
            parent_id = run.parent_run_id
            parent = runs.get(parent_id) if parent_id is not None else None
            if parent is not None and parent is not run:
                place = nsref_place(run.dag_nsref, parent.dag_nsref, parent.nodes)
                if place is None:  # its nsref does not name its composite node
                    unplaced.append(run)
                else:
                    places[run.run_id] = place
        if unplaced:
            places.update(self._places_by_parent_node(cur, unplaced, runs))
        if not places:
            return
        for run in runs.values():  # start order: a later run under the same key wins
            place = places.get(run.run_id)
            if place is not None:
                node = runs[run.parent_run_id or ""].nodes[place[0]]
                if node.sub_dags is None:
                    node.sub_dags = {}
                node.sub_dags[place[1]] = run

    def _places_by_parent_node(
        self, cur: Cursor, children: list[DagRun], runs: dict[str, DagRun]
    ) -> dict[str, Place]:
        """Places of sub-runs whose nsref names no node of their parent, by their stored
        `parent_node_label` (`_subruns.parent_node_places`)."""
        in_children, ids = self.dialect.in_list([r.run_id for r in children])
        cur.execute(
            f"SELECT run_id, {self.parent_node_column} FROM dag_runs "
            f"WHERE run_id IN ({in_children})",
            (ids,),
        )
        labels = dict(cur.fetchall())
        return parent_node_places(
            Linked(child.run_id, child.dag_nsref, parent_id, label)
            for child in children
            for label, parent_id in ((labels.get(child.run_id), child.parent_run_id or ""),)
            if label and label in runs[parent_id].nodes and not _descends(parent_id, child, runs)
        )


def _descends(run_id: str, ancestor: DagRun, runs: dict[str, DagRun]) -> bool:
    """Whether `run_id` is `ancestor` or below it (a corrupt parent cycle)."""
    seen: set[str] = set()
    while run_id in runs and run_id not in seen:
        if run_id == ancestor.run_id:
            return True
        seen.add(run_id)
        run_id = runs[run_id].parent_run_id or ""
    return False


_EDGE_COLUMNS = "traversed_at, downstream_label, run_id, upstream_label"
_from_timestamp = datetime.fromtimestamp


def _clamped(epoch: Any, _tz: tzinfo) -> datetime | None:
    return epoch_to_datetime(epoch)


def _build(
    run_rows: list[Any],
    node_rows: list[Any],
    edge_rows: list[Any],
    at: Callable[[Any, tzinfo], datetime | None],
) -> dict[str, DagRun]:
    """`DagRun` models of the rows, keyed by run id in the order of `run_rows`, their
    nodes and edges attached (not their sub-DAGs). `at(epoch, UTC)` makes the datetimes.

    Rows of our own schema need no validation: each model is built as `model(**fields)`
    would build it, minus the validation (`_models.trusted`, inlined here: these loops
    are most of the cost of a big tree's read). Edges go into lists kept aside, not
    through `node.edges`: a model's attributes are slower to reach than a dict's items.
    """
    new, utc = object.__new__, UTC
    set_dict, set_fields_set, set_extra, set_private = SLOT_SETTERS
    node_fields = FIELD_SETS[NodeExecution]
    edge_fields = FIELD_SETS[EdgeTraversal]
    run_fields = FIELD_SETS[DagRun]
    nodes_by_run: dict[str, dict[str, NodeExecution]] = {}
    edges_by_run: dict[str, dict[str, list[EdgeTraversal]]] = {}
    run_nodes: dict[str, NodeExecution] = {}
    run_edges: dict[str, list[EdgeTraversal]] = {}
    last_run = None
    for run_id, label, status, is_source, is_sink, started, finished, error in node_rows:
        if run_id != last_run:  # rows come by run: one lookup per run, not per node
            last_run = run_id
            if run_id in nodes_by_run:
                run_nodes, run_edges = nodes_by_run[run_id], edges_by_run[run_id]
            else:
                run_nodes = nodes_by_run[run_id] = {}
                run_edges = edges_by_run[run_id] = {}
        node = new(NodeExecution)
        edges = run_edges[label] = []
        set_dict(
            node,
            {
                "node_label": label,
                "status": status,
                "is_source": bool(is_source),
                "is_sink": bool(is_sink),
                "started_at": None if started is None else at(started, utc),
                "finished_at": None if finished is None else at(finished, utc),
                "error": error,
                "edges": edges,
                "sub_dags": None,
                "io": None,
            },
        )
        set_fields_set(node, node_fields)
        set_extra(node, None)
        set_private(node, None)
        run_nodes[label] = node
    for traversed, downstream, run_id, upstream in edge_rows:
        try:
            edges = edges_by_run[run_id][upstream]
        except KeyError:  # as lythonic: an edge from no node is dropped
            continue
        edge = new(EdgeTraversal)
        set_dict(edge, {"downstream_label": downstream, "traversed_at": at(traversed, utc)})
        set_fields_set(edge, edge_fields)
        set_extra(edge, None)
        set_private(edge, None)
        edges.append(edge)
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
                "finished_at": None if finished is None else at(finished, utc),
                "initiated_by": initiator,
                "nodes": nodes_by_run.get(run_id) or {},
                "io": None,
            },
        )
        set_fields_set(run, run_fields)
        set_extra(run, None)
        set_private(run, None)
        runs[run_id] = run
    return runs
