"""Row writes: span records as rows, and the statements that write them, once for
every backend.

`Writer` works inside one open transaction. Its lythonic-shaped methods write
exactly the rows lythonic's DagProvenance writes; `write_rows` upserts what span
records say, idempotent and order-independent. SQL uses `?` placeholders and the
few spellings a `Dialect` supplies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._mapping import SpanRecord
from .rows import Rows, row_version, rows_for
from .schema import NODE_ROW, RUN_ROW


class Cursor(Protocol):
    """The slice of a DB-API cursor dagtrace uses."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL of two backends, and nothing else."""

    least: str
    """The two-argument minimum: MIN in SQLite, LEAST in PostgreSQL."""
    greatest: str
    """The two-argument maximum: MAX in SQLite, GREATEST in PostgreSQL."""
    in_list: Callable[[list[str]], tuple[str, Any]]
    """A subquery yielding the given values, and its one parameter: any count, one statement."""
    row_locks: bool
    """Writers lock rows (PostgreSQL), so batches go in key order: two concurrent
    transactions then never wait for each other's rows in opposite orders. SQLite
    locks the whole file, and saves the sort."""
    table_columns: Callable[[Cursor, str], set[str]]
    """The columns of a table in the store's schema; empty when there is no such table."""
    ddl: Callable[[str], str]
    """lythonic's SQLite DDL as this backend spells it."""
    text_bytewise: Callable[[Cursor, str], None]
    """Make the text columns of a table compare bytewise, as SQLite's do (schema 10)."""


class Writer:
    """Row writes inside one open transaction; the same statements on every backend.

    Method for method these are lythonic's cursor-level helpers, so the drop-in
    API writes exactly the rows lythonic writes.
    """

    def __init__(self, cursor: Cursor, dialect: Dialect) -> None:
        self._cur = cursor
        self._dialect = dialect
        self._ordered = dialect.row_locks

    @property
    def cursor(self) -> Cursor:
        """The transaction's cursor, for statements of a caller's own in it (the parent
        search's) that must commit or roll back with the rows."""
        return self._cur

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def probe(self) -> None:
        """A write that changes no value: proves the store takes writes (`/readyz`)."""
        self._cur.execute("UPDATE dagtrace_meta SET value = value WHERE key = 'schema_version'")

    def insert_run(
        self,
        run_id: str,
        dag_nsref: str,
        source_inputs_json: str,
        parent_run_id: str | None,
        initiator: str | None,
    ) -> None:
        self._cur.execute(
            "INSERT INTO dag_runs (run_id, dag_nsref, parent_run_id, status, started_at, "
            "source_inputs_json, initiated_by) VALUES (?, ?, ?, 'running', ?, ?, ?)",
            (run_id, dag_nsref, parent_run_id, time.time(), source_inputs_json, initiator),
        )

    def update_run_status(self, run_id: str, status: str) -> None:
        self._cur.execute("UPDATE dag_runs SET status = ? WHERE run_id = ?", (status, run_id))

    def finish_run(self, run_id: str, status: str, sink_outputs_json: str | None) -> None:
        self._cur.execute(
            "UPDATE dag_runs SET status = ?, finished_at = ?, sink_outputs_json = ? "
            "WHERE run_id = ?",
            (status, time.time(), sink_outputs_json, run_id),
        )

    def start_node(
        self, run_id: str, node_label: str, input_json: str, is_source: bool, is_sink: bool
    ) -> None:
        """Insert or wholly replace the node row as `running` (lythonic's INSERT OR REPLACE)."""
        self._cur.execute(
            "INSERT INTO node_executions (run_id, node_label, status, is_source, is_sink, "
            "input_json, started_at) VALUES (?, ?, 'running', ?, ?, ?, ?) "
            "ON CONFLICT (run_id, node_label) DO UPDATE SET status = excluded.status, "
            "is_source = excluded.is_source, is_sink = excluded.is_sink, "
            "input_json = excluded.input_json, started_at = excluded.started_at, "
            "output_json = NULL, finished_at = NULL, error = NULL, "
            "trace_id = NULL, span_id = NULL",
            (run_id, node_label, int(is_source), int(is_sink), input_json, time.time()),
        )

    def skip_node(self, run_id: str, node_label: str, output_json: str) -> None:
        """Insert or wholly replace the node row as `skipped` with a copied output."""
        now = time.time()
        self._cur.execute(
            "INSERT INTO node_executions (run_id, node_label, status, output_json, started_at, "
            "finished_at) VALUES (?, ?, 'skipped', ?, ?, ?) "
            "ON CONFLICT (run_id, node_label) DO UPDATE SET status = excluded.status, "
            "is_source = 0, is_sink = 0, input_json = NULL, output_json = excluded.output_json, "
            "started_at = excluded.started_at, finished_at = excluded.finished_at, "
            "error = NULL, trace_id = NULL, span_id = NULL",
            (run_id, node_label, output_json, now, now),
        )

    def complete_node(self, run_id: str, node_label: str, output_json: str) -> None:
        self._cur.execute(
            "UPDATE node_executions SET status = 'completed', output_json = ?, finished_at = ? "
            "WHERE run_id = ? AND node_label = ?",
            (output_json, time.time(), run_id, node_label),
        )

    def fail_node(self, run_id: str, node_label: str, error: str) -> None:
        self._cur.execute(
            "UPDATE node_executions SET status = 'failed', error = ?, finished_at = ? "
            "WHERE run_id = ? AND node_label = ?",
            (error, time.time(), run_id, node_label),
        )

    def insert_edges(self, run_id: str, edges: Sequence[tuple[str, str]]) -> None:
        if not edges:
            return
        self._cur.executemany(
            "INSERT INTO edge_traversals (run_id, upstream_label, downstream_label, "
            "traversed_at) VALUES (?, ?, ?, ?)",
            [(run_id, up, down, time.time()) for up, down in edges],
        )

    # -- span records: idempotent, order-independent ---------------------------------

    def apply_records(self, records: Iterable[SpanRecord]) -> None:
        """Upsert rows for span records; any arrival order gives the in-order result."""
        self.write_rows(rows_for(records))

    def write_rows(self, rows: Rows) -> None:
        """Upsert `rows_for` rows.

        Each group of columns a write sets keeps the values of its newest write
        (`row_version`: the latest attempt, then the later write), so any arrival
        order ends the same; the same span twice changes nothing. Rows go in a
        stable key order where rows are locked (`Dialect.row_locks`).
        """
        if rows.runs:
            self._execute(_RUN_UPSERT_SQL[self._dialect], rows.runs, _by_run)
        if rows.nodes:
            self.upsert_nodes(rows.nodes)
        if rows.edges:
            self.upsert_edges(rows.edges)
        if rows.beats:
            self.heartbeat(rows.beats)

    def upsert_nodes(self, rows: list[tuple[Any, ...]]) -> None:
        """`rows_for` node rows; a backend may override with a bulk path, same result."""
        self._execute(_NODE_UPSERT_SQL, rows, _by_node)

    def upsert_edges(self, rows: list[tuple[Any, ...]]) -> None:
        """`rows_for` edge rows; a backend may override with a bulk path, same result."""
        self._execute(_EDGE_UPSERT_SQL, rows, _by_edge)

    def heartbeat(self, seen: dict[str, float]) -> None:
        """Runners of these runs were alive at these times (never moves backwards)."""
        self._execute(
            f"UPDATE dag_runs SET heartbeat_at = {self._dialect.greatest}("
            "COALESCE(heartbeat_at, 0), ?) WHERE run_id = ?",
            [(at, run_id) for run_id, at in sorted(seen.items())],
        )

    def _execute(
        self,
        sql: str,
        rows: list[tuple[Any, ...]],
        key: Callable[[Any], Any] | None = None,
    ) -> None:
        if len(rows) == 1:  # the live processor's common case: execute is cheaper
            self._cur.execute(sql, rows[0])
        else:
            self._cur.executemany(sql, sorted(rows, key=key) if key and self._ordered else rows)

    def prune_batch(
        self, older_than: float, statuses: Sequence[str] | None, include_active: bool, limit: int
    ) -> int:
        """Delete up to `limit` top-level runs started before `older_than`, with their
        descendant runs, nodes and edges. Returns how many top-level runs went."""
        where = ["parent_run_id IS NULL", "started_at < ?"]
        params: list[Any] = [older_than]
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if not include_active:
            where.append("status NOT IN ('running', 'paused')")
        self._cur.execute(
            f"SELECT run_id FROM dag_runs WHERE {' AND '.join(where)} ORDER BY started_at LIMIT ?",
            (*params, limit),
        )
        roots = [r[0] for r in self._cur.fetchall()]
        if not roots:
            return 0
        in_roots, root_ids = self._dialect.in_list(roots)
        self._cur.execute(
            f"WITH RECURSIVE tree(run_id) AS (SELECT run_id FROM dag_runs WHERE run_id IN "
            f"({in_roots}) UNION SELECT d.run_id FROM dag_runs AS d JOIN tree AS t "
            "ON d.parent_run_id = t.run_id) SELECT run_id FROM tree",
            (root_ids,),
        )
        in_tree, ids = self._dialect.in_list([r[0] for r in self._cur.fetchall()])
        for table in ("edge_traversals", "node_executions", "dag_runs"):
            self._cur.execute(f"DELETE FROM {table} WHERE run_id IN ({in_tree})", (ids,))
        return len(roots)

    def add_counters(self, deltas: dict[str, int]) -> None:
        """Add to the bridge's persisted counters (`dagtrace stats` shows them)."""
        self._cur.executemany(
            "INSERT INTO dagtrace_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value = CAST(CAST(dagtrace_meta.value AS BIGINT) + "
            "CAST(excluded.value AS BIGINT) AS TEXT)",
            [(f"counter.{name}", str(n)) for name, n in sorted(deltas.items()) if n],
        )

    def close_run(self, run_id: str, reason: str, closed_at: float) -> int:
        """Close a running run, its running nodes and running descendants as failed.

        A close is a write made at `closed_at` (`row_version`): a later write of the
        same attempt (a runner wrongly declared dead, an operator) still wins over it.
        Returns how many runs were closed (0 if `run_id` was not running).
        """
        self._cur.execute(
            "WITH RECURSIVE tree(run_id) AS (SELECT run_id FROM dag_runs WHERE run_id = ? "
            "AND status = 'running' UNION SELECT d.run_id FROM dag_runs AS d "
            "JOIN tree AS t ON d.parent_run_id = t.run_id) "
            "SELECT d.run_id, COALESCE(d.attempt, 1) FROM tree JOIN dag_runs AS d "
            "ON d.run_id = tree.run_id WHERE d.status = 'running'",
            (run_id,),
        )
        runs = self._cur.fetchall()
        if not runs:
            return 0
        at_ns = int(closed_at * 1e9)
        in_tree, ids = self._dialect.in_list([r[0] for r in runs])
        self._cur.execute(
            "SELECT run_id, node_label, COALESCE(attempt, 1) FROM node_executions "
            f"WHERE run_id IN ({in_tree}) AND status = 'running'",
            (ids,),
        )
        nodes = self._cur.fetchall()
        if nodes:
            self._cur.executemany(
                "UPDATE node_executions SET status = 'failed', error = ?, finished_at = ?, "
                "attempt = ?, phase = 2, status_version = ?, error_version = ? "
                "WHERE run_id = ? AND node_label = ?",
                [
                    (reason, closed_at, attempt, v, v, rid, label)
                    for rid, label, attempt in nodes
                    for v in (row_version(attempt, 1, at_ns, None),)
                ],
            )
        self._cur.executemany(
            "UPDATE dag_runs SET status = 'failed', finished_at = ?, close_reason = ?, "
            "attempt = ?, phase = 2, status_version = ?, finish_version = ? WHERE run_id = ?",
            [
                (closed_at, reason, attempt, v, v, rid)
                for rid, attempt in runs
                for v in (row_version(attempt, 1, at_ns, None),)
            ],
        )
        return len(runs)


RUN_VERSIONS = ("span_version", "status_version", "finish_version", "outputs_version")
"""A run row's column groups, each with the version of the write that set it last."""
NODE_VERSIONS = (
    "span_version",
    "status_version",
    "output_version",
    "error_version",
    "input_version",
)
"""A node row's column groups, each with the version of the write that set it last."""

_RUN_UPSERT_COLUMNS = (
    *RUN_ROW,
    "trace_id",
    "span_id",
    "attempt",
    "phase",
    "parent_node_label",
    "replay_of_run_id",
    "replay_root_run_id",
    "close_reason",
    "payload_error",
    "heartbeat_at",
    *RUN_VERSIONS,
)
_RUN_KEPT = (
    "parent_run_id",
    "parent_node_label",
    "source_inputs_json",
    "initiated_by",
    "replay_of_run_id",
    "replay_root_run_id",
)
"""Facts of the run itself, the same in every attempt: the first value seen stays."""
_RUN_GROUPS = {
    "span_version": ("dag_nsref", "trace_id", "span_id", "attempt", "phase", "payload_error"),
    "status_version": ("status",),
    "finish_version": ("finished_at", "close_reason"),
    "outputs_version": ("sink_outputs_json",),
}
"""Columns each write sets together (see `_run_groups`); every CASE sees the row before
the update, so each group takes the values of its own newest write."""
_NODE_GROUPS = {
    "span_version": (
        "started_at",
        "trace_id",
        "span_id",
        "attempt",
        "phase",
        "payload_error",
    ),
    "status_version": ("status", "finished_at"),
    "output_version": ("output_json",),
    "error_version": ("error",),
    "input_version": ("is_source", "is_sink", "input_json"),
}


def _by_run(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[:1]


def _by_node(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[:2]


def _by_edge(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[:3]


def _newer(table: str, version: str) -> str:
    """SQL: the incoming write of this group is newer than the stored one (a row that
    lythonic or an older dagtrace wrote has no versions: any write is newer)."""
    return (
        f"(excluded.{version} > {table}.{version} OR "
        f"({table}.{version} IS NULL AND excluded.{version} IS NOT NULL))"
    )


def _group_sets(table: str, groups: dict[str, tuple[str, ...]]) -> list[str]:
    sets = []
    for version, columns in groups.items():
        newer = _newer(table, version)
        for col in (*columns, version):
            sets.append(f"{col} = CASE WHEN {newer} THEN excluded.{col} ELSE {table}.{col} END")
    return sets


def _any_newer(table: str, groups: dict[str, tuple[str, ...]]) -> str:
    return " OR ".join(_newer(table, version) for version in groups)


def _run_upsert_sql(dialect: Dialect) -> str:
    merged = ", ".join(f"{col} = COALESCE(dag_runs.{col}, excluded.{col})" for col in _RUN_KEPT)
    return (
        f"INSERT INTO dag_runs ({', '.join(_RUN_UPSERT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_RUN_UPSERT_COLUMNS))}) "
        f"ON CONFLICT (run_id) DO UPDATE SET {merged}, "
        f"started_at = {dialect.least}(dag_runs.started_at, excluded.started_at), "
        f"heartbeat_at = {dialect.greatest}(COALESCE(dag_runs.heartbeat_at, 0), "
        f"excluded.heartbeat_at), {', '.join(_group_sets('dag_runs', _RUN_GROUPS))}"
    )


class _UpsertSqlByDialect(dict[Dialect, str]):
    """The run upsert's text, built once per dialect."""

    def __missing__(self, dialect: Dialect) -> str:
        self[dialect] = sql = _run_upsert_sql(dialect)
        return sql


_RUN_UPSERT_SQL = _UpsertSqlByDialect()


NODE_UPSERT_COLUMNS = (
    *NODE_ROW,
    "trace_id",
    "span_id",
    "attempt",
    "phase",
    "payload_error",
    *NODE_VERSIONS,
)
"""A `rows_for` node row, column by column."""
NODE_ON_CONFLICT = (
    "ON CONFLICT (run_id, node_label) DO UPDATE SET "
    + ", ".join(_group_sets("node_executions", _NODE_GROUPS))
    + f" WHERE {_any_newer('node_executions', _NODE_GROUPS)}"
)
_NODE_UPSERT_SQL = (
    f"INSERT INTO node_executions ({', '.join(NODE_UPSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(NODE_UPSERT_COLUMNS))}) {NODE_ON_CONFLICT}"
)
EDGE_UPSERT_COLUMNS = ("run_id", "upstream_label", "downstream_label", "traversed_at")
EDGE_ON_CONFLICT = (
    "ON CONFLICT (run_id, upstream_label, downstream_label) "
    "DO UPDATE SET traversed_at = excluded.traversed_at "
    "WHERE excluded.traversed_at > edge_traversals.traversed_at"
)
"""A traversal seen again (a later attempt) keeps the latest time, whatever the order."""
_EDGE_UPSERT_SQL = (
    f"INSERT INTO edge_traversals ({', '.join(EDGE_UPSERT_COLUMNS)}) "
    f"VALUES (?, ?, ?, ?) {EDGE_ON_CONFLICT}"
)
