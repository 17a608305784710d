"""The reads the web view needs beyond DagProvenance's: a filtered, keyset-paged runs
list, per-run extras (attempts, span ids, lineage), one node's payloads, a node's
history over the runs of its nsref, and a cheap fingerprint of a run tree for polling.

Plain functions over a `Store` (its read snapshot, `?` placeholders, which every
backend takes), apart from `StoreReads` because only the view calls them. A lythonic
file served read-only lacks dagtrace's extra columns: those read as NULL there.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .base import Store

NODE_EXTRAS = ("attempt", "trace_id", "span_id", "payload_error")
HISTORY_RUNS = 20
"""A node's history covers this many runs of its nsref (the issue's number)."""


def has_extras(store: Store) -> bool:
    """Whether dagtrace's own columns exist (not on a lythonic file opened read-only)."""
    return store.parent_node_column != "NULL"


def _cols(store: Store, names: tuple[str, ...], prefix: str = "") -> str:
    """`names` as select-list items, NULL for each when the columns do not exist."""
    if has_extras(store):
        return ", ".join(f"{prefix}{n}" for n in names)
    return ", ".join("NULL" for _ in names)


@dataclass(frozen=True)
class RunFilter:
    """What the runs page filters on; every field optional."""

    status: str | None = None
    nsref: str | None = None
    nsref_contains: bool = False
    """`nsref` matches anywhere in the nsref, not only as its prefix."""
    run_id: str | None = None
    """A run id or the start of one."""
    since: float | None = None
    until: float | None = None
    top_level: bool = True


@dataclass
class RunsPage:
    """One page of runs, newest first, and the cursor of the next (None: the last)."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching it literally (escape character `!`)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def encode_cursor(started_at: float, run_id: str) -> str:
    """An opaque cursor: the last row's (started_at, run_id)."""
    raw = json.dumps([started_at, run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str] | None:
    """The (started_at, run_id) a cursor holds, or None for a malformed one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, run_id = json.loads(raw)
        return float(started), str(run_id)
    except (ValueError, TypeError):
        return None


def _where(flt: RunFilter, cursor: tuple[float, str] | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if flt.top_level:
        where.append("parent_run_id IS NULL")
    if flt.status:
        where.append("status = ?")
        params.append(flt.status)
    if flt.nsref:
        where.append("dag_nsref LIKE ? ESCAPE '!'")
        lead = "%" if flt.nsref_contains else ""
        params.append(f"{lead}{_like(flt.nsref)}%")
    if flt.run_id:
        where.append("run_id LIKE ? ESCAPE '!'")
        params.append(f"{_like(flt.run_id)}%")
    if flt.since is not None:
        where.append("started_at >= ?")
        params.append(flt.since)
    if flt.until is not None:
        where.append("started_at < ?")
        params.append(flt.until)
    if cursor is not None:  # keyset: strictly after the last row shown
        where.append("(started_at < ? OR (started_at = ? AND run_id < ?))")
        params += [cursor[0], cursor[0], cursor[1]]
    return (f"WHERE {' AND '.join(where)} " if where else ""), params


_PAGE_KEYS = (
    "run_id",
    "dag_nsref",
    "parent_run_id",
    "status",
    "started_at",
    "finished_at",
    "initiated_by",
    "attempt",
)


def list_runs_page(
    store: Store, flt: RunFilter, *, limit: int = 50, cursor: str | None = None
) -> RunsPage:
    """Newest runs first matching `flt`, after `cursor`, each with its node counts by
    status. Keyset paging: page N costs what page 1 does, on any number of runs."""
    after = decode_cursor(cursor) if cursor else None
    where, params = _where(flt, after)
    attempt = _cols(store, ("attempt",))
    sql = (
        f"SELECT run_id, dag_nsref, parent_run_id, status, started_at, finished_at, "
        f"{store.initiated_by_column}, {attempt} FROM dag_runs {where}"
        "ORDER BY started_at DESC, run_id DESC LIMIT ?"
    )
    with store._read() as cur:
        cur.execute(sql, (*params, limit + 1))
        rows = [dict(zip(_PAGE_KEYS, r, strict=True)) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        _add_node_counts(store, cur, rows)
    page = RunsPage(runs=rows)
    if more and rows:
        page.next_cursor = encode_cursor(rows[-1]["started_at"], rows[-1]["run_id"])
    return page


def runs_by_id(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """The runs-page rows of these runs (to refresh running ones in place)."""
    if not run_ids:
        return []
    in_ids, ids = store.dialect.in_list(run_ids)
    attempt = _cols(store, ("attempt",))
    with store._read() as cur:
        cur.execute(
            f"SELECT run_id, dag_nsref, parent_run_id, status, started_at, finished_at, "
            f"{store.initiated_by_column}, {attempt} FROM dag_runs WHERE run_id IN ({in_ids})",
            (ids,),
        )
        rows = [dict(zip(_PAGE_KEYS, r, strict=True)) for r in cur.fetchall()]
        _add_node_counts(store, cur, rows)
    return rows


def _add_node_counts(store: Store, cur: Any, rows: list[dict[str, Any]]) -> None:
    """Each row's `counts`: node count by status, for the rows listed only."""
    for row in rows:
        row["counts"] = {}
    if not rows:
        return
    by_id = {row["run_id"]: row for row in rows}
    in_ids, ids = store.dialect.in_list(list(by_id))
    cur.execute(
        "SELECT run_id, status, COUNT(*) FROM node_executions "
        f"WHERE run_id IN ({in_ids}) GROUP BY run_id, status",
        (ids,),
    )
    for run_id, status, n in cur.fetchall():
        by_id[run_id]["counts"][status] = n


def replays_of(store: Store, run_id: str) -> list[str]:
    """Runs that replay `run_id` (none on a lythonic file read-only)."""
    return store.get_replays(run_id) if has_extras(store) else []


def node_row(store: Store, run_id: str, label: str) -> dict[str, Any] | None:
    """One node's row with its payloads and dagtrace's extras."""
    keys = ("status", "started_at", "finished_at", "error", "input_json", "output_json")
    with store._read() as cur:
        cur.execute(
            f"SELECT {', '.join(keys)}, {_cols(store, NODE_EXTRAS)} FROM node_executions "
            "WHERE run_id = ? AND node_label = ?",
            (run_id, label),
        )
        row = cur.fetchone()
    return None if row is None else dict(zip((*keys, *NODE_EXTRAS), row, strict=True))


def outputs_of(store: Store, run_ids: list[str]) -> dict[tuple[str, str], str | None]:
    """(run id, label) → output JSON of every node of these runs (for compare)."""
    if not run_ids:
        return {}
    in_ids, ids = store.dialect.in_list(run_ids)
    with store._read() as cur:
        cur.execute(
            "SELECT run_id, node_label, output_json FROM node_executions "
            f"WHERE run_id IN ({in_ids})",
            (ids,),
        )
        return {(r[0], r[1]): r[2] for r in cur.fetchall()}


def node_history(
    store: Store, nsref: str, label: str, *, limit: int = HISTORY_RUNS
) -> list[dict[str, Any]]:
    """The node's status and times in the last `limit` runs of `nsref`, oldest first
    (runs without that node included, as status None). Uses the index
    `dag_runs (dag_nsref, started_at)` (schema 7)."""
    with store._read() as cur:
        cur.execute(
            "SELECT r.run_id, r.started_at, n.status, n.started_at, n.finished_at "
            "FROM (SELECT run_id, started_at FROM dag_runs WHERE dag_nsref = ? "
            "ORDER BY started_at DESC LIMIT ?) AS r "
            "LEFT JOIN node_executions AS n ON n.run_id = r.run_id AND n.node_label = ? "
            "ORDER BY r.started_at",
            (nsref, limit, label),
        )
        keys = ("run_id", "run_started_at", "status", "started_at", "finished_at")
        return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


def previous_run(store: Store, nsref: str, started_at: float, run_id: str) -> str | None:
    """The run of the same nsref that started just before this one."""
    with store._read() as cur:
        cur.execute(
            "SELECT run_id FROM dag_runs WHERE dag_nsref = ? "
            "AND (started_at < ? OR (started_at = ? AND run_id < ?)) "
            "ORDER BY started_at DESC, run_id DESC LIMIT 1",
            (nsref, started_at, started_at, run_id),
        )
        row = cur.fetchone()
    return None if row is None else str(row[0])


def tree_fingerprint(store: Store, run_id: str) -> str | None:
    """A digest that changes whenever the run tree shows something new (a node, a
    status, a time, an edge): what a page polls while the run runs. Three index reads
    and aggregates; no payload is read. None when there is no such run."""
    with store._read() as cur:
        cur.execute(
            "WITH RECURSIVE tree AS (SELECT run_id, status, finished_at FROM dag_runs "
            "WHERE run_id = ? UNION SELECT d.run_id, d.status, d.finished_at FROM dag_runs d "
            "JOIN tree t ON d.parent_run_id = t.run_id) "
            "SELECT run_id, status, finished_at FROM tree ORDER BY run_id",
            (run_id,),
        )
        runs = cur.fetchall()
        if not runs:
            return None
        in_ids, ids = store.dialect.in_list([r[0] for r in runs])
        cur.execute(
            "SELECT status, COUNT(*), MAX(started_at), MAX(finished_at) FROM node_executions "
            f"WHERE run_id IN ({in_ids}) GROUP BY status ORDER BY status",
            (ids,),
        )
        nodes = cur.fetchall()
        cur.execute(
            f"SELECT COUNT(*), MAX(traversed_at) FROM edge_traversals WHERE run_id IN ({in_ids})",
            (ids,),
        )
        edges = cur.fetchone()
    text = json.dumps([runs, nodes, edges], default=str)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass
class TreeRows:
    """A run and all its descendants as raw rows, read in one snapshot: what the run
    page draws, without building models (the cost of `inspect_run` on big trees)."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    """In start order: run_id, dag_nsref, parent_run_id, status, started_at,
    finished_at, parent_node, attempt, trace_id."""
    nodes: list[dict[str, Any]] = field(default_factory=list)
    """run_id, label, status, started_at, finished_at, error, attempt, payload_error."""
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    """(run id, upstream, downstream), in traversal order."""


_TREE_RUN_KEYS = (
    "run_id",
    "dag_nsref",
    "parent_run_id",
    "status",
    "started_at",
    "finished_at",
    "parent_node",
    "attempt",
    "trace_id",
)
_TREE_NODE_KEYS = (
    "run_id",
    "label",
    "status",
    "started_at",
    "finished_at",
    "error",
    "attempt",
    "payload_error",
)


def tree_rows(store: Store, run_id: str) -> TreeRows | None:
    """The run `run_id` and its descendants (UNION: a corrupt parent cycle ends)."""
    extras = _cols(store, ("attempt", "trace_id"))
    with store._read() as cur:
        cur.execute(
            "WITH RECURSIVE tree AS (SELECT run_id FROM dag_runs WHERE run_id = ? UNION "
            "SELECT d.run_id FROM dag_runs AS d JOIN tree AS t ON d.parent_run_id = t.run_id) "
            "SELECT run_id, dag_nsref, parent_run_id, status, started_at, finished_at, "
            f"{store.parent_node_column}, {extras} FROM dag_runs "
            "WHERE run_id IN (SELECT run_id FROM tree) ORDER BY started_at, run_id",
            (run_id,),
        )
        runs = [dict(zip(_TREE_RUN_KEYS, r, strict=True)) for r in cur.fetchall()]
        if not runs:
            return None
        in_ids, ids = store.dialect.in_list([r["run_id"] for r in runs])
        cur.execute(
            "SELECT run_id, node_label, status, started_at, finished_at, error, "
            f"{_cols(store, ('attempt', 'payload_error'))} FROM node_executions "
            f"WHERE run_id IN ({in_ids})",
            (ids,),
        )
        nodes = [dict(zip(_TREE_NODE_KEYS, r, strict=True)) for r in cur.fetchall()]
        cur.execute(
            "SELECT run_id, upstream_label, downstream_label FROM edge_traversals "
            f"WHERE run_id IN ({in_ids}) ORDER BY traversed_at",
            (ids,),
        )
        edges = [(r[0], r[1], r[2]) for r in cur.fetchall()]
    return TreeRows(runs=runs, nodes=nodes, edges=edges)
