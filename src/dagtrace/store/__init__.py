"""Storage: where span records become rows, and where every read comes from.

    base.py      `Store`: the backend contract (what a backend implements, the fork
                 and pickling hooks the base calls), transactions and retries
    deferred.py  `DeferredWrites`: records written with the next transaction, or by
                 a flusher thread within 50 ms
    reads.py     `StoreReads`: lythonic's reads and dagtrace's own, once for all backends
    view_reads.py  the web view's reads (pages of runs, tree rows, node history)
    replay.py    `ReplayPlan`: what a replay reuses and what it reruns
    rows.py      span records as row tuples, each write with its version
    writer.py    `Writer`: the statements that write rows, in one transaction
    parent_search.py  the store's side of the sub-run parent search (schema 6)
    schema.py    the tables, and the one migration routine of every backend
    sqlite.py    `SqliteStore`: one file, WAL, long-lived connections
    postgres.py  `PostgresStore`: psycopg pool, COPY staging for big batches

A new backend is one module with a `Store` subclass plus one line in `BACKENDS`.
"""

from __future__ import annotations

import importlib
import os

from ..exceptions import StoreError
from .base import Durability, Store
from .deferred import PendingSource
from .replay import ReplayPlan
from .rows import Rows, rows_for
from .sqlite import SqliteStore
from .writer import Writer

__all__ = [
    "BACKENDS",
    "Durability",
    "PendingSource",
    "ReplayPlan",
    "Rows",
    "SqliteStore",
    "Store",
    "Writer",
    "open_store",
    "rows_for",
]

BACKENDS: dict[str, str] = {
    "sqlite": "dagtrace.store.sqlite:SqliteStore",
    "postgresql": "dagtrace.store.postgres:PostgresStore",
    "postgres": "dagtrace.store.postgres:PostgresStore",
}
"""URL scheme → `module:class` of its backend, imported on first use (psycopg only
when a PostgreSQL URL is opened). A path without a scheme is a SQLite file."""


def open_store(
    target: str | os.PathLike[str],
    *,
    read_only: bool = False,
    durability: Durability = "process",
    batched_writes: bool = False,
) -> Store:
    """Open the store `target` names: a file path, a `sqlite:///path` or a
    `postgresql://` URL. `durability` and `batched_writes` (writes will come hundreds
    of spans at a time, as in `dagtrace serve`: a new file gets larger pages) apply to
    SQLite."""
    text = os.fspath(target)
    scheme = text.split("://", 1)[0] if "://" in text else "sqlite"
    backend = BACKENDS.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise StoreError(
            f"unsupported store URL scheme {scheme!r}: give a SQLite file path or a URL "
            f"of one of {known}",
            location=f"{scheme}://…",
        )
    module, _, name = backend.partition(":")
    store_class: type[Store] = getattr(importlib.import_module(module), name)
    # only when asked: a backend written to the earlier contract takes no such keyword
    hints = {"batched_writes": True} if batched_writes else {}
    return store_class.from_url(text, read_only=read_only, durability=durability, **hints)
