"""The store: the contract every backend fulfils, and everything built on it once.

`Store` holds transactions with retries, the deferred-write queue (`DeferredWrites`),
process safety (fork, pickling) and, through `StoreReads`, every read. A backend is
one module with one `Store` subclass, plus one line in `dagtrace.store.BACKENDS`.

What a backend implements (the base calls these; `SqliteStore` and `PostgresStore`
are the two examples, `tests/journal_backend.py` a third):

- class attribute `dialect` (a `Dialect`: what differs in its SQL);
- `__init__`: set `location` (for messages; never a password) and `read_only`, call
  `super().__init__()`, then `self._migrate()` unless read-only;
- `from_url(url, *, read_only, durability)`: open the store a URL of its scheme
  names; `open_store` adds `batched_writes=True` (writes will come hundreds of spans at
  a time: a hint) only for a server, so accept it if the backend has a use for it;
- `_transaction()`: a `Writer` inside one write transaction, committed on exit,
  rolled back on error; driver errors become `StoreError`;
- `_reading()`: a cursor inside one read snapshot (`?` placeholders);
- `_migration()`: a cursor inside a transaction holding the schema lock, for the
  one migration routine of `schema.migrate`;
- `_reopen_args()`: the arguments that open the same store in another process
  (a store is pickled to serve's decoding processes);
- `_forget_connections()`: in a forked child, drop the parent's connections without
  closing them (the base calls it on the child's first use);
- `_close_connections()`, `vacuum()`, `size_bytes()`; optionally `_retryable()`.

A backend calls `self._check_process()` where it hands out a connection.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

from .._mapping import SpanRecord
from .._parents import ParentFacts
from ..exceptions import StoreError
from . import schema
from .deferred import DeferredWrites, PendingSource
from .parent_search import ParentSearch
from .parent_search import prune as prune_parent_search
from .reads import StoreReads
from .replay import ReplayPlan, plan_replay
from .rows import Rows, rows_for
from .writer import Cursor, Writer

_log = logging.getLogger(__name__)

Durability = Literal["process", "power"]
"""How a commit survives (SQLite): a killed process ("process") or power loss ("power")."""

_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()
"""Every store object of this process: a read flushes the deferred writes of the others
open on the same database (two `TracedProvenance` on one file, say)."""

_pid = os.getpid()
"""This process's id, kept current by a fork hook: `os.getpid()` is a system call."""


_inherited: list[dict[str, Any]] = []
"""In a forked child, what its stores held in the parent (connections, a pool, their
cursors): kept, never collected, because closing them here could block on a lock a
thread of the parent held at the fork (SQLite's, psycopg_pool's), or touch the parent's
server sessions. The operating system releases them when the child exits."""


def _forked() -> None:
    """In a forked child, which has one thread at this moment: every store forgets its
    parent's connections and deferred records now, before any thread of the child can
    use them."""
    global _pid
    _pid = os.getpid()
    for store in list(_open_stores):
        _inherited.append(dict(vars(store)))
        store._start_in_child()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    return _pid


class Store(StoreReads, ABC):
    """Provenance storage: transactions for writes, DagProvenance-shaped reads.

    A store sent to another process (pickled) opens the same file or database there,
    with connections of its own; in a forked child it opens its own on first use.
    """

    location: str
    """The file or database, for error messages (never includes a password)."""

    read_only: bool

    _RETRIES = 5

    def __init__(self) -> None:
        self._pid = _pid
        self._closed = False
        self.deferred = DeferredWrites(self.flush)
        _open_stores.add(self)

    # -- the backend contract ----------------------------------------------------------

    @classmethod
    @abstractmethod
    def from_url(
        cls, url: str, *, read_only: bool, durability: Durability, batched_writes: bool = False
    ) -> Store:
        """The store `url` names (`open_store` calls this for the backend's schemes);
        `batched_writes` is a hint a backend may ignore."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Writer]:
        """The backend's write transaction: committed on exit, rolled back on error."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Cursor]:
        """A cursor inside one read snapshot, for reads that take several queries."""

    @abstractmethod
    def _migration(self) -> AbstractContextManager[Cursor]:
        """A cursor in a write transaction that holds the schema lock."""

    @abstractmethod
    def _reopen_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Positional and keyword arguments of the constructor that reopen this store."""

    @abstractmethod
    def _forget_connections(self) -> None:
        """In a forked child: drop the parent's connections, never closing them."""

    @abstractmethod
    def _close_connections(self) -> None:
        """Close this process's connections (once; `close` guards the rest)."""

    @abstractmethod
    def vacuum(self) -> None:
        """Give freed space back to the file system. Blocking: writers wait until it ends."""

    @abstractmethod
    def size_bytes(self) -> int:
        """What the store occupies on disk."""

    def _retryable(self, error: StoreError) -> bool:
        """Whether a failed write transaction may succeed if simply tried again."""
        return False

    # -- process safety ----------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to a process of a pool), it opens the same store there."""
        args, kwargs = self._reopen_args()
        return (_reopen, (type(self), args, kwargs))

    def _check_process(self) -> None:
        """Closed stores refuse; a forked child starts with no connection, and no
        deferred record, of its parent's."""
        if self._closed:
            raise StoreError("the store is closed", location=self.location)
        if self._pid != _pid:
            self._start_in_child()

    def _start_in_child(self) -> None:
        self._pid = _pid
        self.deferred = self.deferred.for_child()
        self._forget_connections()

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        self.deferred.stop()
        if not self._closed and self._pid == _pid:
            self._close_connections()
        self._closed = True

    def _migrate(self) -> None:
        """Create or upgrade the schema; no lock, no DDL when it is current (a role
        without CREATE privileges can still start)."""
        with self._reading() as cur:
            if schema.version(cur, self.dialect) >= schema.SCHEMA_VERSION:
                return
        with self._migration() as cur:
            schema.migrate(cur, self.dialect, self.location)

    # -- writes --------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[Writer]:
        """One write transaction: committed on exit, rolled back (nothing written) on error.

        Deferred records ride along, so they are never older than the newest commit.
        """
        return _Transaction(self)

    def write_records(
        self,
        records: Sequence[SpanRecord],
        *,
        counters: dict[str, int] | None = None,
        parents: ParentFacts | None = None,
    ) -> None:
        """Store span records now, in one transaction (with any deferred ones).

        `parents`: what the batch's spans tell about sub-run parents (`parents`); the
        parents it leads to are set in the same transaction.
        A transaction the database aborted to break a deadlock or a serialisation
        conflict is retried, a bounded number of times.
        """
        self.write_rows(rows_for(records), counters=counters, parents=parents)

    def write_rows(
        self,
        rows: Rows,
        *,
        counters: dict[str, int] | None = None,
        parents: ParentFacts | None = None,
    ) -> None:
        """`write_records` for rows already built (by a decoding process, say)."""
        if self._closed or self._pid != _pid:  # `_check_process`: once a node, inlined
            self._check_process()
        for attempt in range(1, self._RETRIES + 1):
            pending: list[SpanRecord] = []
            try:
                with self._transaction() as writer:  # what `transaction()` does, inlined:
                    pending = self.deferred.take()  # inside: see `_Transaction.__enter__`
                    search = (
                        ParentSearch(writer, parents, sweep_key=self.location) if parents else None
                    )
                    if search:  # its locks and reads come before any row is written
                        search.before_rows()
                    if pending:  # this is the live processor's path, once per node
                        writer.apply_records(pending)
                    writer.write_rows(rows)
                    if search:
                        search.after_rows()
                    if counters:
                        writer.add_counters(counters)
                return
            except StoreError as e:
                self.deferred.give_back(pending)
                if attempt == self._RETRIES or not self._retryable(e):
                    raise
                time.sleep(0.01 * attempt)  # a backoff between two tries, not a handshake
            except BaseException:
                self.deferred.give_back(pending)
                raise

    def close_interrupted(self, run_id: str, reason: str) -> int:
        """Close a run whose runner died: it, its running nodes and running descendants
        become `failed` with `reason`; spans of that attempt made before now change
        nothing (docs/conventions.md, "Which write wins").
        Returns the number of runs closed: 0 if the run is unknown or not running."""
        with self.transaction() as writer:
            return writer.close_run(run_id, reason, time.time())

    def prune(
        self,
        *,
        older_than: float,
        statuses: Sequence[str] | None = None,
        include_active: bool = False,
        batch_size: int = 500,
    ) -> int:
        """Delete top-level runs started before `older_than` (epoch seconds) with their
        sub-DAG runs, nodes and edges, `batch_size` runs per transaction so writers
        wait at most one short batch. `running` and `paused` runs stay unless
        `include_active`. Then drops the sub-run parent searches (`parents`) written
        before `older_than` or a day ago, or of runs no longer stored. Returns the number
        of top-level runs deleted."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        total = 0
        while True:
            with self.transaction() as writer:
                deleted = writer.prune_batch(older_than, statuses, include_active, batch_size)
            total += deleted
            if deleted < batch_size:
                break
        with self.transaction() as writer:  # sub-run parent searches: old or of runs gone
            prune_parent_search(writer, older_than)
        return total

    # -- deferred writes -----------------------------------------------------------------

    def defer_records(self, records: Sequence[SpanRecord]) -> None:
        """Store span records soon: with the next write or read, or within 50 ms."""
        self.deferred.add(records)

    def add_pending_source(self, source: PendingSource) -> None:
        """Have every transaction also write what `source` holds."""
        self.deferred.add_source(source)

    def wake_flusher(self) -> None:
        """Something is pending in a source: make sure it is written soon."""
        self.deferred.wake()

    @property
    def deferred_dropped(self) -> int:
        return self.deferred.dropped

    def flush(self) -> None:
        """Write deferred records now; raises `StoreError` if the store cannot be written."""
        if self.deferred.pending():
            with self.transaction():
                pass

    # -- reads ---------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        """A read snapshot that sees every write this process made, deferred ones included
        (through any store object open on the same database)."""
        for store in (self, *_open_stores):
            if store.deferred.pending() and (store is self or store.location == self.location):
                try:
                    store.flush()
                except StoreError:
                    _log.warning("dagtrace: reading without deferred span starts", exc_info=True)
        with self._reading() as cur:
            yield cur

    def stats(self) -> dict[str, int]:
        """Row counts, size on disk and the bridge's persisted counters."""
        return {**self.table_counts(), "size_bytes": self.size_bytes(), **self.get_counters()}

    def plan_replay(
        self, run_id: str, rerun_nodes: Iterable[str] = (), *, from_failure: bool = False
    ) -> ReplayPlan:
        """Plan a replay of a finished run: rerun `rerun_nodes` (and, with `from_failure`,
        every node that did not complete), reuse the other outputs."""
        return plan_replay(self, run_id, rerun_nodes, from_failure=from_failure)


class _Transaction:
    """`Store.transaction()`: a class, not a generator; every drop-in call runs one."""

    __slots__ = ("_inner", "_pending", "_store")

    def __init__(self, store: Store) -> None:
        self._store = store

    def __enter__(self) -> Writer:
        store = self._store
        if store._closed or store._pid != _pid:  # a forked child takes none of its
            store._check_process()  # parent's records (`_check_process`, inlined)
        self._inner = inner = store._transaction()
        writer = inner.__enter__()
        # Taken inside the transaction: a read through this store flushes them first and
        # waits for its lock (SQLite), so it sees a transaction that took them already.
        deferred, pending = store.deferred, []
        try:
            self._pending = pending = deferred.take()
            if pending:
                writer.apply_records(pending)
        except BaseException as e:
            try:
                inner.__exit__(type(e), e, e.__traceback__)  # rolled back
            finally:
                deferred.give_back(pending)
            raise
        return writer

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> None:
        try:
            self._inner.__exit__(kind, error, tb)
        except BaseException:
            self._store.deferred.give_back(self._pending)
            raise
        if error is not None:
            self._store.deferred.give_back(self._pending)


def _reopen(cls: type[Store], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Store:
    return cls(*args, **kwargs)
