"""The store's side of the sub-run parent search (`dagtrace._parents` has the walk).

The exporter and `dagtrace serve` search in the batch's own transaction
(`ParentSearch`), whatever order, batch and (PostgreSQL) server the spans come in. The
store keeps for it only non-DAG span → parent pairs (`dagtrace_span_parents`) and the
sub-runs whose search waits for a span not yet seen (`dagtrace_parent_search`); node
spans are found by `node_executions (trace_id, span_id)`. A late node span resolves the
sub-runs waiting for it, a late non-DAG span moves them on.

On PostgreSQL two servers may hold the two ends of a chain at once: each batch takes
transaction-scoped advisory locks per trace (shared for the node and non-DAG spans it
brings, exclusive where it leaves a search waiting or moves one on) before it reads,
so of two such batches the later one sees the earlier one's rows.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import zlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .._fork import new_lock_in_forked_child
from .._parents import (
    KEEP_SECONDS,
    SWEEP_LIMIT,
    SWEEP_PERIOD,
    Found,
    ParentFacts,
    Start,
    walk,
)
from .writer import Cursor, Dialect, Writer


class _StoreGraph:
    """The batch's spans, then the store's (node spans by `node_executions.trace_id,
    span_id`), for walks that start in `traces`: a span's parents are in its trace."""

    def __init__(self, cur: Cursor, dialect: Dialect, facts: ParentFacts) -> None:
        self._cur = cur
        self._dialect = dialect
        self._facts = facts
        self.traces: Collection[str] = ()

    def nodes_of(self, span_ids: Collection[str]) -> Mapping[str, Found]:
        nodes = self._facts.nodes
        out = {s: nodes[s] for s in span_ids if s in nodes}
        rest = [s for s in span_ids if s not in out and s not in self._facts.hops]
        if rest:
            traces, spans = sorted(self.traces), sorted(rest)
            if self._dialect.row_locks:  # PostgreSQL: both arrays bound one index scan
                where = "trace_id = ANY(?::text[]) AND span_id = ANY(?::text[])"
            else:
                (in_traces, traces), (in_spans, spans) = map(self._dialect.in_list, (traces, spans))
                where = f"trace_id IN ({in_traces}) AND span_id IN ({in_spans})"
            self._cur.execute(
                f"SELECT span_id, run_id, node_label FROM node_executions WHERE {where}",
                (traces, spans),
            )
            for span, run_id, label in self._cur.fetchall():
                out.setdefault(span, (run_id, label))
        return out

    def parents_of(self, span_ids: Collection[str]) -> Mapping[str, str]:
        hops = self._facts.hops
        out = {s: p for s in span_ids if (p := hops.get(s)) is not None}
        rest = [s for s in span_ids if s not in hops]
        if rest:
            in_rest, ids = self._dialect.in_list(sorted(rest))
            self._cur.execute(
                "SELECT span_id, parent_span_id FROM dagtrace_span_parents "
                f"WHERE span_id IN ({in_rest})",
                (ids,),
            )
            out.update(self._cur.fetchall())
        return out


_FINE_LOCKS = 32
"""A batch of spans from more traces than this locks coarse buckets of traces instead
(PostgreSQL's lock table is shared and bounded: 64 locks per connection by default)."""
_COARSE_BUCKETS = 64
_COARSE_BASE = 1 << 61


def _fine_key(trace_id: str) -> int:
    try:
        return int(trace_id[:15], 16)  # random bits already; below 2^60
    except ValueError:
        return zlib.crc32(trace_id.encode())


def _coarse_key(trace_id: str) -> int:
    return _COARSE_BASE + _fine_key(trace_id) % _COARSE_BUCKETS


_LOCK_SQL = (
    "SELECT count(*) FROM unnest(?::bigint[], ?::boolean[]) AS t(k, x) WHERE (CASE WHEN x "
    "THEN pg_advisory_xact_lock(k) ELSE pg_advisory_xact_lock_shared(k) END) IS NULL"
)
"""Takes the locks in the order given (sorted: two batches never wait in a circle)."""

Key = tuple[str, int]
"""A search: (run id, preference)."""

_next_sweep: dict[str, float] = {}
_sweep_lock = threading.Lock()
new_lock_in_forked_child(sys.modules[__name__], "_sweep_lock")


class ParentSearch:
    """The parent step of one batch, inside its transaction: `before_rows` locks and
    reads (before the batch's upserts take any row lock), `after_rows` writes."""

    def __init__(self, writer: Writer, facts: ParentFacts, *, sweep_key: str) -> None:
        self._cur = writer.cursor
        self._dialect = writer.dialect
        self._concurrent = self._dialect.row_locks  # PostgreSQL: other servers write too
        self._facts = facts
        self._sweep_key = sweep_key
        self._held: dict[int, bool] = {}
        self._resolved: dict[str, tuple[int, str, str]] = {}
        self._waits: dict[Key, tuple[str, str]] = {}
        self._dropped: set[Key] = set()
        self._searched: set[str] = set()
        """Runs with rows in `dagtrace_parent_search` (others need no DELETE there)."""

    # -- before the batch's rows: locks and reads ----------------------------------------

    def before_rows(self) -> None:
        facts = self._facts
        graph = _StoreGraph(self._cur, self._dialect, facts)
        searches = self._open_searches()
        starts: dict[Key, str] = {}
        traces: dict[Key, str] = {}
        for run_id, run_starts in searches.items():
            for s in run_starts:
                starts[(run_id, s.preference)] = s.span_id
                traces[(run_id, s.preference)] = s.trace_id
        graph.traces = set(traces.values())
        found, frontier = walk(starts, graph) if starts else ({}, {})
        if self._concurrent:
            exclusive = {traces[k] for k in frontier}
            self._lock(facts.traces if (facts.nodes or facts.hops) else set(), exclusive)
            if frontier:  # what committed meanwhile, seen now that no one else can add it
                more, frontier = walk(frontier, graph)
                found.update(more)
        for key, span in frontier.items():
            self._wait(key, traces[key], span)
        for key, node in found.items():
            self._found(key, node)
        self._meet_waiting_searches(graph)

    def _open_searches(self) -> dict[str, list[Start]]:
        """The batch's searches and in-memory finds, less those an explicit parent or a
        better inferred one (in the batch or the store) makes useless."""
        facts = self._facts
        searches = {r: s for r, s in facts.searches.items() if r not in facts.explicit}
        for run_id, (preference, parent, label) in facts.inferred.items():
            if run_id not in facts.explicit:
                self._resolved[run_id] = (preference, parent, label)
        runs = sorted(set(searches) | set(self._resolved))
        if not runs:
            return searches
        in_runs, ids = self._dialect.in_list(runs)
        self._cur.execute(
            "SELECT d.run_id, d.parent_run_id IS NOT NULL, (SELECT MIN(s.preference) "
            "FROM dagtrace_parent_search AS s WHERE s.run_id = d.run_id AND s.look_for IS NULL), "
            "EXISTS (SELECT 1 FROM dagtrace_parent_search AS s WHERE s.run_id = d.run_id) "
            f"FROM dag_runs AS d WHERE d.run_id IN ({in_runs})",
            (ids,),
        )
        for run_id, has_parent, inferred_at, searched in self._cur.fetchall():
            if searched:
                self._searched.add(run_id)
            if has_parent and inferred_at is None:  # an explicit parent: nothing to find
                searches.pop(run_id, None)
                self._resolved.pop(run_id, None)
                continue
            if inferred_at is None:
                continue
            if run_id in searches:
                searches[run_id] = [s for s in searches[run_id] if s.preference < inferred_at]
            if run_id in self._resolved and self._resolved[run_id][0] >= inferred_at:
                del self._resolved[run_id]
        return {r: s for r, s in searches.items() if s}

    def _meet_waiting_searches(self, graph: _StoreGraph) -> None:
        """Searches in the store waiting for a node or non-DAG span of this batch."""
        facts = self._facts
        if not facts.nodes and not facts.hops:
            return
        self._cur.execute("SELECT 1 FROM dagtrace_parent_search WHERE look_for IS NOT NULL LIMIT 1")
        if self._cur.fetchone() is None:
            return  # no search waits (the common case): no lookup of every span
        in_met, ids = self._dialect.in_list(sorted({*facts.nodes, *facts.hops}))
        self._cur.execute(
            "SELECT run_id, preference, trace_id, look_for FROM dagtrace_parent_search "
            f"WHERE look_for IN ({in_met})",
            (ids,),
        )
        onward: dict[Key, str] = {}
        traces: dict[Key, str] = {}
        for run_id, preference, trace_id, look_for in self._cur.fetchall():
            if run_id in facts.explicit:
                continue  # its explicit parent clears its searches
            key = (run_id, preference)
            self._searched.add(run_id)
            node = facts.nodes.get(look_for)
            if node is not None:
                self._found(key, node)
                continue
            parent = facts.hops.get(look_for)
            if parent is None:  # a root span: this way leads to no node
                self._dropped.add(key)
            else:
                onward[key], traces[key] = parent, trace_id
        if not onward:
            return
        if self._concurrent:  # it moves on to where it may wait again: exclusive
            self._lock(set(), set(traces.values()))
        graph.traces = set(traces.values())
        found, frontier = walk(onward, graph)
        for key, node in found.items():
            self._found(key, node)
        for key, span in frontier.items():
            self._wait(key, traces[key], span)

    def _found(self, key: Key, node: Found) -> None:
        run_id, preference = key
        known = self._resolved.get(run_id)
        if known is None or preference < known[0]:
            self._resolved[run_id] = (preference, *node)

    def _wait(self, key: Key, trace_id: str, span_id: str) -> None:
        if span_id in self._facts.run_spans or (
            span_id in self._facts.hops and self._facts.hops[span_id] is None
        ):
            self._dropped.add(key)  # a run span or a root: no node this way
        else:
            self._waits[key] = (trace_id, span_id)

    def _lock(self, shared: set[str], exclusive: set[str]) -> None:
        wanted: dict[int, bool] = {}
        for trace in shared:
            wanted[_fine_key(trace) if len(shared) <= _FINE_LOCKS else _coarse_key(trace)] = False
        for trace in exclusive:
            wanted[_fine_key(trace)] = wanted[_coarse_key(trace)] = True
        new = sorted(k for k, x in wanted.items() if k not in self._held or x > self._held[k])
        if not new:
            return
        self._cur.execute(_LOCK_SQL, (new, [wanted[k] for k in new]))
        self._cur.fetchall()
        for k in new:
            self._held[k] = wanted[k]

    # -- after the batch's rows: writes --------------------------------------------------

    def after_rows(self) -> None:
        now = time.time()
        cur, facts = self._cur, self._facts
        self._settle(now)
        waits = sorted(
            (run_id, preference, trace, span, now)
            for (run_id, preference), (trace, span) in self._waits.items()
            if run_id not in self._resolved or preference < self._resolved[run_id][0]
        )
        if waits:
            cur.executemany(
                "INSERT INTO dagtrace_parent_search (run_id, preference, trace_id, look_for, "
                "seen_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, preference) DO UPDATE "
                "SET trace_id = excluded.trace_id, look_for = excluded.look_for, "
                "seen_at = excluded.seen_at WHERE dagtrace_parent_search.look_for IS NOT NULL",
                waits,
            )
        dropped = sorted(self._dropped - set(self._waits))
        if dropped:
            cur.executemany(
                "DELETE FROM dagtrace_parent_search WHERE run_id = ? AND preference = ? "
                "AND look_for IS NOT NULL",
                dropped,
            )
        if facts.explicit:
            self._explicit(facts.explicit)
        hops = sorted((s, p, now) for s, p in facts.hops.items() if p is not None)
        if hops:
            self._insert(
                "dagtrace_span_parents (span_id, parent_span_id, seen_at)",
                ("text", "text", "float8"),
                hops,
                "ON CONFLICT (span_id) DO NOTHING",
            )
        self._sweep_if_due(now)

    def _settle(self, now: float) -> None:
        """Set the inferred parents, in one statement, where the run has neither an
        explicit parent nor a better inferred one; mark them inferred."""
        resolved = sorted((r, *found) for r, found in self._resolved.items())
        if not resolved:
            return
        cur = self._cur
        source, params = _values(self._dialect, resolved)
        cur.execute(
            "UPDATE dag_runs AS d SET parent_node_label = CASE WHEN d.parent_run_id IS NULL "
            "THEN COALESCE(d.parent_node_label, v.label) ELSE v.label END, "
            f"parent_run_id = v.parent FROM ({source}) AS v WHERE d.run_id = v.rid "
            "AND (d.parent_run_id IS NULL OR EXISTS (SELECT 1 FROM dagtrace_parent_search AS s "
            "WHERE s.run_id = d.run_id AND s.look_for IS NULL AND s.preference > v.pref)) "
            "RETURNING run_id",
            params,
        )
        applied = {row[0] for row in cur.fetchall()}
        searched = [(r, p, r in applied) for r, p, _, _ in resolved if r in self._searched]
        if any(a for _, _, a in searched):  # its other searches and worse marks end
            cur.executemany(
                "DELETE FROM dagtrace_parent_search WHERE run_id = ? AND preference >= ?",
                [(r, p) for r, p, a in searched if a],
            )
        if any(not a for _, _, a in searched):  # explicit, as good or gone: this way ends
            cur.executemany(
                "DELETE FROM dagtrace_parent_search WHERE run_id = ? AND preference >= ? "
                "AND look_for IS NOT NULL",
                [(r, p) for r, p, a in searched if not a],
            )
        marks = [(r, p, "", None, now) for r, p, _, _ in resolved if r in applied]
        if marks:
            self._insert(
                "dagtrace_parent_search (run_id, preference, trace_id, look_for, seen_at)",
                ("text", "int", "text", "text", "float8"),
                marks,
                "ON CONFLICT (run_id, preference) DO UPDATE SET trace_id = '', look_for = NULL, "
                "seen_at = excluded.seen_at",
            )

    def _insert(
        self,
        into: str,
        types: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        on_conflict: str,
    ) -> None:
        """INSERT rows (in key order): PostgreSQL in one statement (a round trip each
        counts), SQLite row by row (in process: cheaper than building a statement)."""
        if self._concurrent:
            arrays = ", ".join(f"?::{t}[]" for t in types)
            columns = [list(column) for column in zip(*rows, strict=True)]
            self._cur.execute(
                f"INSERT INTO {into} SELECT * FROM unnest({arrays}) {on_conflict}", columns
            )
        else:
            marks = ", ".join("?" * len(types))
            self._cur.executemany(f"INSERT INTO {into} VALUES ({marks}) {on_conflict}", rows)

    def _explicit(self, explicit: Mapping[str, tuple[str, str | None]]) -> None:
        """Runs naming their parent end their searches; one whose parent was inferred
        takes the explicit one instead (the run upsert keeps the first it saw)."""
        in_runs, ids = self._dialect.in_list(sorted(explicit))
        self._cur.execute(
            f"DELETE FROM dagtrace_parent_search WHERE run_id IN ({in_runs}) "
            "RETURNING run_id, look_for",
            (ids,),
        )
        inferred = sorted({run_id for run_id, look_for in self._cur.fetchall() if not look_for})
        if inferred:
            self._cur.executemany(
                "UPDATE dag_runs SET parent_node_label = CASE WHEN parent_run_id = ? "
                "THEN COALESCE(?, parent_node_label) ELSE ? END, parent_run_id = ? "
                "WHERE run_id = ?",
                [(p, node, node, p, r) for r in inferred for p, node in (explicit[r],)],
            )

    def _sweep_if_due(self, now: float) -> None:
        with _sweep_lock:
            if time.monotonic() < _next_sweep.get(self._sweep_key, 0.0):
                return
            _next_sweep[self._sweep_key] = time.monotonic() + SWEEP_PERIOD
        if sweep(self._cur, now - KEEP_SECONDS, SWEEP_LIMIT):
            with _sweep_lock:
                _next_sweep[self._sweep_key] = 0.0  # more to drop: again with the next write


def _values(dialect: Dialect, rows: list[tuple[str, int, str, str]]) -> tuple[str, Any]:
    """A subquery of (rid, pref, parent, label) rows, and its parameters."""
    if dialect.row_locks:  # PostgreSQL: arrays, one per column
        columns = [list(column) for column in zip(*rows, strict=True)]
        return (
            "SELECT * FROM unnest(?::text[], ?::int[], ?::text[], ?::text[]) "
            "AS t(rid, pref, parent, label)",
            columns,
        )
    return (
        "SELECT json_extract(value, '$[0]') AS rid, json_extract(value, '$[1]') AS pref, "
        "json_extract(value, '$[2]') AS parent, json_extract(value, '$[3]') AS label "
        "FROM json_each(?)",
        (json.dumps(rows),),
    )


def sweep(cur: Cursor, older_than: float, limit: int | None = None) -> bool:
    """Drop parent-search entries written before `older_than` (epoch seconds), at most
    `limit` per table; whether a table had more than that."""
    cap = f" LIMIT {int(limit)}" if limit is not None else ""
    full = False
    for table, key in (
        ("dagtrace_span_parents", "span_id"),
        ("dagtrace_parent_search", "run_id, preference"),
    ):
        cur.execute(
            f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} "
            f"WHERE seen_at < ?{cap})",
            (older_than,),
        )
        full = full or (limit is not None and cur.rowcount >= limit)
    return full


def prune(writer: Writer, older_than: float) -> None:
    """`dagtrace prune`: entries older than `older_than` or `KEEP_SECONDS`, and the
    searches of runs no longer stored."""
    cur = writer.cursor
    sweep(cur, max(older_than, time.time() - KEEP_SECONDS))
    cur.execute(
        "DELETE FROM dagtrace_parent_search WHERE NOT EXISTS "
        "(SELECT 1 FROM dag_runs AS d WHERE d.run_id = dagtrace_parent_search.run_id)"
    )
