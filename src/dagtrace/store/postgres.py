"""The PostgreSQL store: the same schema and reads as SQLite, for several machines.

- psycopg 3 with a connection pool; a forked child opens its own pool.
- Timestamps are DOUBLE PRECISION epoch seconds (a 4-byte REAL would round them to
  minutes); foreign keys are not declared (a node may arrive before its run).
- Schema creation and migration run under a transaction-scoped advisory lock, so
  servers starting together neither race nor fail; writes take no global lock.
- Upserts go in a stable key order; deadlocks and serialisation failures are
  retried a bounded number of times (see `Store.write_records`).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import StoreError
from .base import Durability, Store
from .schema import TABLES
from .writer import (
    EDGE_ON_CONFLICT,
    EDGE_UPSERT_COLUMNS,
    NODE_ON_CONFLICT,
    NODE_UPSERT_COLUMNS,
    Cursor,
    Dialect,
    Writer,
)

_MIGRATION_LOCK = 0x6461677472616365  # "dagtrace"


def _unnest(values: list[str]) -> tuple[str, Any]:
    return "SELECT unnest(?::text[])", values


_log = logging.getLogger(__name__)


def _pg_ddl(ddl: str) -> str:
    """lythonic's SQLite DDL for PostgreSQL: DOUBLE PRECISION times, no foreign keys,
    text compared bytewise (`_text_bytewise`)."""
    ddl = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', ddl)
    ddl = re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)
    ddl = re.sub(r"\bBLOB\b", "BYTEA", ddl)
    ddl = re.sub(r",\s*FOREIGN KEY \([^)]*\) REFERENCES [^)]*\)", "", ddl)
    return ddl


def _columns(cur: Cursor, table: str) -> set[str]:
    cur.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = current_schema()",
        (table,),
    )
    return {row[0] for row in cur.fetchall()}


def _text_bytewise(cur: Cursor, table: str) -> None:
    """Text columns in the "C" collation: ordered as SQLite orders them (by code point),
    and compared without the database's locale. PostgreSQL 15 calls strcoll for every
    comparison of unequal text even in C.UTF-8: in the primary keys of serve's rows,
    that was 6% of PostgreSQL's instructions a span on bench_serve's requests
    (`benchmarks/count_pg_instructions.py`). The indexes on altered columns are
    rebuilt (the table is not rewritten)."""
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = current_schema() AND data_type = 'text' "
        "AND collation_name IS DISTINCT FROM 'C'",
        (table,),
    )
    columns = [row[0] for row in cur.fetchall()]
    if columns:
        retyped = ", ".join(f'ALTER COLUMN {column} TYPE TEXT COLLATE "C"' for column in columns)
        cur.execute(f"ALTER TABLE {table} {retyped}")


POSTGRES = Dialect(
    least="LEAST",
    greatest="GREATEST",
    in_list=_unnest,
    row_locks=True,
    table_columns=_columns,
    ddl=_pg_ddl,
    text_bytewise=_text_bytewise,
)


def _configure_connection(conn: Any) -> None:
    """Plans made for the values at hand: a generic plan (psycopg prepares a statement
    after 5 calls) seq-scanned `dag_runs` in the tree query, and past 1M runs JIT
    compiled for 13 ms a query that runs in 0.5 ms (docs/storage.md, "Growth").

    Versions (`bytearray`) go to bytea through psycopg's own bytes dumper (in C with
    psycopg-binary): the one its DB-API module registers for bytea is Python, called
    five times a node row in a binary COPY."""
    from psycopg.types.string import BytesBinaryDumper

    conn.adapters.register_dumper(bytearray, BytesBinaryDumper)
    conn.execute("SET jit = off")
    conn.execute("SET plan_cache_mode = force_custom_plan")
    conn.commit()


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class _PgCursor:
    """A psycopg cursor that takes dagtrace's `?` placeholders."""

    def __init__(self, cursor: Any) -> None:
        self._cur = cursor

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self._cur.execute(self._sql(sql), params) if params else self._cur.execute(sql)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Any:
        return self._cur.executemany(self._sql(sql), list(seq))

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class _PgCopyCursor(_PgCursor):
    def copy_rows(self, sql: str, types: Sequence[int], rows: Iterable[Sequence[Any]]) -> None:
        """COPY … FROM STDIN (FORMAT BINARY) of these rows, of these column types (oids).

        Binary, not text: PostgreSQL parses no text into floats and bytea, and psycopg
        formats none (bench_serve's requests: 15% less of PostgreSQL's CPU, 25% less
        of the client's, than text COPY)."""
        with self._cur.copy(sql) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    def copy_new_rows(self, sql: str, types: Sequence[int], rows: Iterable[Sequence[Any]]) -> bool:
        """`copy_rows`: False, with nothing written, when a row's key is stored already or
        another transaction stored it meanwhile (after waiting for it)."""
        return self._unless_a_key_is_stored(lambda: self.copy_rows(sql, types, rows))

    def execute_or_fall_back(self, sql: str, fallback: str, params: Sequence[Any]) -> None:
        """`sql`; when a key it inserts is stored (a unique violation), `fallback` instead
        (`_Staged`)."""
        if not self._unless_a_key_is_stored(lambda: self.execute(sql, params)):
            self.execute(fallback, params)

    def _unless_a_key_is_stored(self, write: Callable[[], Any]) -> bool:
        """`write` in a savepoint; False, with the savepoint rolled back, on a unique
        violation (the transaction goes on)."""
        import psycopg.errors

        try:
            with self._cur.connection.transaction():
                write()
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def column_types(self, table: str, columns: Sequence[str]) -> list[int]:
        """The type oids of these columns of `table` (of the schema in use)."""
        self._cur.execute(
            "SELECT attname, atttypid FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        )
        oids = dict(self._cur.fetchall())
        return [int(oids[column]) for column in columns]


_STAGE_FROM = 32
"""Batches of at least this many node or edge rows are upserted through COPY."""
_COPY_NEW_PAUSE = 16
"""After a batch of a table held keys stored already, this many of its next batches are
staged at once: where node starts and ends arrive apart (start markers), nearly every
node batch does, and a COPY that fails on a stored key is work thrown away."""
_BIGINT = 20
"""The oid of `dagtrace_seq`'s type, the stages' own column."""


class _Staged(NamedTuple):
    """How a big batch of one table is written.

    Most batches hold only keys the table does not have: their winners (one per key,
    as `winners` picks them) are copied straight into the table (`copy_new`) in a
    savepoint. That costs PostgreSQL less than half of the upsert below (bench_serve's
    node and edge rows: 3.9 ms a request against 8.5 each), which stages, sorts and
    probes every row. When a key is stored, the COPY fails on it and is rolled back,
    and the batch is upserted instead.

    The upsert stages the batch in a temporary table (emptied at each commit), then
    upserts it in one statement: one winner per key (DISTINCT ON: the row that applying
    them one by one would leave), in one order for every writer (row locks taken in
    the same order).

    `upsert` inserts the keys its snapshot does not have plainly and sends only the
    others through ON CONFLICT, whose per-row check and speculative insertion cost
    PostgreSQL 12% more instructions a span on bench_serve's requests, where nearly
    every key is new. A key another transaction inserts meanwhile fails the plain
    insert (a unique violation): `upsert_all`, all through ON CONFLICT, then runs
    instead, in the same transaction (`_PgCopyCursor.execute_or_fall_back`).

    The upsert takes the rows staged from a sequence number on: a second batch in one
    transaction (deferred records) upserts its own rows only, and nothing is deleted
    before the commit empties the stage."""

    table: str
    columns: Sequence[str]
    winners: Callable[[list[tuple[Any, ...]]], list[tuple[Any, ...]]]
    """The row per key the upsert would keep, in the upsert's key order (row locks)."""
    copy_new: str
    create: str
    copy: str
    upsert: str
    upsert_all: str


def _staged(
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    winner_first: str,
    on_conflict: str,
    winners: Callable[[list[tuple[Any, ...]]], list[tuple[Any, ...]]],
) -> _Staged:
    stage = f"dagtrace_stage_{table}"
    cols = ", ".join(columns)
    # Sorted labels first: a request's rows mostly share one run id, and with it first,
    # every comparison went on to the next keys (the sort took 12% of PostgreSQL's
    # instructions a span, when text still compared through strcoll; 9% fewer in all).
    keys = ", ".join((*key[1:], key[0]))

    stage_winners = (
        f"SELECT DISTINCT ON ({keys}) {cols} FROM {stage} WHERE dagtrace_seq >= ? "
        f"ORDER BY {keys}, {winner_first}, dagtrace_seq"
    )

    def same_key(other: str) -> str:
        return " AND ".join(f"{other}.{k} = winner.{k}" for k in key)

    return _Staged(
        table=table,
        columns=columns,
        winners=winners,
        copy_new=f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)",
        create=f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}, dagtrace_seq BIGINT) "
        "ON COMMIT DELETE ROWS",
        copy=f"COPY {stage} ({cols}, dagtrace_seq) FROM STDIN (FORMAT BINARY)",
        upsert=f"WITH winner AS MATERIALIZED ({stage_winners}), "
        f"inserted AS (INSERT INTO {table} ({cols}) SELECT {cols} FROM winner WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table} stored WHERE {same_key('stored')}) RETURNING {', '.join(key)}) "
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM winner WHERE NOT EXISTS "
        f"(SELECT 1 FROM inserted WHERE {same_key('inserted')}) {on_conflict}",
        upsert_all=f"INSERT INTO {table} ({cols}) {stage_winners} {on_conflict}",
    )


_BY_LABEL_THEN_RUN = itemgetter(1, 0)
_BY_LABELS_THEN_RUN_THEN_TIME = itemgetter(1, 2, 0, 3)


def _node_winners(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Node rows of one key each (`_PgWriter.upsert_nodes`), by label, then run id:
    Python orders text by code point, as "C" orders UTF-8."""
    return sorted(rows, key=_BY_LABEL_THEN_RUN)


def _edge_winners(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The latest traversal of each edge (the last of its key in this order), by labels,
    then run id. Two traversals of an edge at one time are the same row."""
    in_order = sorted(rows, key=_BY_LABELS_THEN_RUN_THEN_TIME)
    return list({row[:3]: row for row in in_order}.values())


_STAGED_NODES = _staged(
    "node_executions",
    NODE_UPSERT_COLUMNS,
    ("run_id", "node_label"),
    "dagtrace_seq",  # one row per key is staged (`_PgWriter.upsert_nodes`)
    NODE_ON_CONFLICT,
    _node_winners,
)
_STAGED_EDGES = _staged(
    "edge_traversals",
    EDGE_UPSERT_COLUMNS,
    ("run_id", "upstream_label", "downstream_label"),
    "traversed_at DESC",  # the latest traversal wins
    EDGE_ON_CONFLICT,
    _edge_winners,
)


class _PgWriter(Writer):
    """Big batches (a receiver's requests) go through COPY: psycopg's executemany
    costs ~50 µs of client CPU per node with its edges, COPY a fraction of it."""

    def __init__(
        self,
        cursor: _PgCopyCursor,
        *,
        may_stage: bool,
        copy_types: dict[str, list[int]],
        stages: frozenset[str],
        copy_new_paused: dict[str, int],
    ) -> None:
        """`may_stage`: the role may create temporary tables (PostgreSQL's default);
        `copy_types`: each staged table's COPY column types, filled on first use;
        `stages`: the stages this connection's session already has (committed);
        `copy_new_paused`: per table, how many more batches skip `_Staged.copy_new`."""
        super().__init__(cursor, POSTGRES)
        self._copy_cursor = cursor
        self._may_stage = may_stage
        self._copy_types = copy_types
        self._copy_new_paused = copy_new_paused
        self.stages = stages
        """The session's stages, with those this transaction creates."""
        self._staged_rows: dict[str, int] = {}
        """Rows staged so far in this transaction, per table: the next batch's first
        sequence number."""

    def upsert_nodes(self, rows: list[tuple[Any, ...]]) -> None:
        """The first row of each node goes in bulk; the others (a start marker and the
        end of one node in one batch) follow one by one: each column group keeps its
        newest write in any order, so the bulk first changes nothing."""
        if len(rows) < _STAGE_FROM:
            super().upsert_nodes(rows)
            return
        seen: set[tuple[Any, ...]] = set()
        first: list[tuple[Any, ...]] = []
        rest: list[tuple[Any, ...]] = []
        for row in rows:
            key = row[:2]
            (rest if key in seen else first).append(row)
            seen.add(key)
        self._bulk(_STAGED_NODES, first, super().upsert_nodes)
        if rest:
            super().upsert_nodes(rest)

    def upsert_edges(self, rows: list[tuple[Any, ...]]) -> None:
        if len(rows) < _STAGE_FROM:
            super().upsert_edges(rows)
        else:
            self._bulk(_STAGED_EDGES, rows, super().upsert_edges)

    def _bulk(
        self,
        staged: _Staged,
        rows: list[tuple[Any, ...]],
        one_by_one: Callable[[list[tuple[Any, ...]]], None],
    ) -> None:
        if self._copied_new(staged, rows):
            return
        if self._may_stage:
            self._staged(staged, rows)
        else:  # a role without TEMPORARY: the same rows, several times slower
            one_by_one(rows)

    def _copied_new(self, staged: _Staged, rows: list[tuple[Any, ...]]) -> bool:
        """Whether the rows' winners went straight into the table: none of their keys
        was stored (`_Staged`)."""
        paused = self._copy_new_paused.get(staged.table, 0)
        if paused:
            self._copy_new_paused[staged.table] = paused - 1
            return False
        types = self._types(staged)[:-1]
        if self._copy_cursor.copy_new_rows(staged.copy_new, types, staged.winners(rows)):
            return True
        self._copy_new_paused[staged.table] = _COPY_NEW_PAUSE
        return False

    def _types(self, staged: _Staged) -> list[int]:
        """The stage's COPY column types: the table's columns, then the sequence."""
        types = self._copy_types.get(staged.table)
        if types is None:
            columns = self._copy_cursor.column_types(staged.table, staged.columns)
            types = self._copy_types[staged.table] = [*columns, _BIGINT]
        return types

    def _staged(self, staged: _Staged, rows: list[tuple[Any, ...]]) -> None:
        cur = self._copy_cursor
        if staged.table not in self.stages:
            cur.execute(staged.create)
            self.stages |= {staged.table}
        first = self._staged_rows.get(staged.table, 0)
        self._staged_rows[staged.table] = first + len(rows)
        rows_in_order = ((*row, seq) for seq, row in enumerate(rows, first))
        cur.copy_rows(staged.copy, self._types(staged), rows_in_order)
        cur.execute_or_fall_back(staged.upsert, staged.upsert_all, (first,))


class PostgresStore(Store):
    """A provenance store in a PostgreSQL database (`postgresql://user@host/db`).

    Select a schema with the URL's `options=-csearch_path=NAME`.
    """

    dialect = POSTGRES

    def __init__(self, url: str, *, read_only: bool = False, pool_size: int = 8) -> None:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as e:
            raise StoreError(
                "the PostgreSQL store needs psycopg: pip install 'dagtrace[postgres]'",
                location=redact_url(url),
            ) from e
        super().__init__()
        self.url = url
        self.location = redact_url(url)
        self.read_only = read_only
        self._pool_size = pool_size
        self._pool: Any = None
        self._temp_tables_allowed: bool | None = None
        self._copy_types: dict[str, list[int]] = {}
        self._copy_new_paused: dict[str, int] = {}
        self._stages: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
        """Per pooled connection, the stage tables its session has: created once, not
        at every transaction (a catalog lookup and a notice each)."""
        if not read_only:
            self._migrate()

    @classmethod
    def from_url(
        cls, url: str, *, read_only: bool, durability: Durability, batched_writes: bool = False
    ) -> PostgresStore:
        """A `postgresql://` URL; every commit is durable on the server (`durability`
        is SQLite's)."""
        return cls(url, read_only=read_only)

    def _reopen_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (self.url,), {"read_only": self.read_only, "pool_size": self._pool_size}

    def _forget_connections(self) -> None:
        self._pool = None

    # -- connections --------------------------------------------------------------------

    def _connections(self) -> Any:
        self._check_process()
        if self._pool is None:  # first use, or a forked child: a pool of its own
            from psycopg_pool import ConnectionPool

            try:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self._pool_size,
                    open=True,
                    timeout=30,
                    kwargs={"autocommit": False},
                    configure=_configure_connection,
                )
                self._pool.wait(timeout=30)
            except Exception as e:  # psycopg_pool raises its own types; all are re-raised
                raise StoreError(
                    f"cannot connect to PostgreSQL: {_reason(e)}", location=self.location
                ) from e
        return self._pool

    @contextmanager
    def _transaction(self) -> Iterator[Writer]:
        if self.read_only:
            raise StoreError("the store was opened read-only", location=self.location)
        import psycopg

        try:
            with self._connections().connection() as conn:
                stages = self._stages.get(conn, frozenset())
                with conn.transaction():
                    cursor = _PgCopyCursor(conn.cursor())
                    writer = _PgWriter(
                        cursor,
                        may_stage=self._may_stage(cursor),
                        copy_types=self._copy_types,
                        stages=stages,
                        copy_new_paused=self._copy_new_paused,
                    )
                    yield writer
                if writer.stages is not stages:  # committed: the session keeps them
                    self._stages[conn] = writer.stages
        except psycopg.Error as e:
            raise StoreError(f"write failed: {_reason(e)}", location=self.location) from e

    def _may_stage(self, cursor: Cursor) -> bool:
        """Whether this role may create temporary tables, asked once: without that
        (a hardened database), big batches go row by row, slower but the same."""
        if self._temp_tables_allowed is None:
            cursor.execute("SELECT has_database_privilege(current_database(), 'TEMPORARY')")
            self._temp_tables_allowed = bool(cursor.fetchone()[0])
            if not self._temp_tables_allowed:
                _log.info(
                    "no TEMPORARY privilege on %s: batches are written row by row", self.location
                )
        return self._temp_tables_allowed

    @contextmanager
    def _reading(self) -> Iterator[Cursor]:
        import psycopg

        try:
            with self._connections().connection() as conn, conn.transaction():
                cur = conn.cursor()
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield _PgCursor(cur)
        except psycopg.Error as e:
            raise StoreError(f"read failed: {_reason(e)}", location=self.location) from e

    def _retryable(self, error: BaseException) -> bool:
        import psycopg.errors

        cause = error.__cause__
        return isinstance(
            cause,
            psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure,
        )

    def vacuum(self) -> None:
        """VACUUM ANALYZE of the provenance tables (PostgreSQL reuses space after a plain
        VACUUM; VACUUM FULL, which shrinks files and locks tables, is left to the DBA)."""
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                for table in TABLES:
                    conn.execute(f"VACUUM ANALYZE {table}")
        except psycopg.Error as e:
            raise StoreError(f"vacuum failed: {_reason(e)}", location=self.location) from e

    def size_bytes(self) -> int:
        """Tables and indexes of the provenance schema."""
        with self._read() as cur:
            cur.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                f"AND c.relname IN ({', '.join(repr(t) for t in TABLES)})"
            )
            return int(cur.fetchone()[0])

    def _close_connections(self) -> None:
        if self._pool is not None:
            self._pool.close()

    # -- schema -------------------------------------------------------------------------

    @contextmanager
    def _migration(self) -> Iterator[Cursor]:
        """A transaction under an advisory lock: servers may start together."""
        import psycopg

        try:
            with self._connections().connection() as conn, conn.transaction():
                cur = _PgCursor(conn.cursor())
                cur.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                yield cur
        except psycopg.Error as e:
            raise StoreError(
                f"cannot create or migrate the schema: {_reason(e)}", location=self.location
            ) from e


def _reason(error: BaseException) -> str:
    """The driver's message, first line only, never the statement or its parameters."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
