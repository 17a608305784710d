"""A third store backend, written as the contract in `dagtrace/store/base.py` says: one
module, plus one line in `dagtrace.store.BACKENDS` (conftest adds it), and the store
suite runs on it (`new_store_url` is parametrised over every backend).

SQLite in its rollback-journal mode, as lythonic itself writes: one connection per
process behind a lock, for reads and writes alike. It proves that a backend needs
nothing beyond the contract: no WAL, no reader pool, no checkpointer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagtrace.exceptions import StoreError
from dagtrace.store.base import Durability, Store
from dagtrace.store.sqlite import SQLITE
from dagtrace.store.writer import Cursor, Writer

SCHEME = "journal"


class JournalStore(Store):
    dialect = SQLITE

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.read_only = read_only
        super().__init__()
        self._forget_connections()
        if not read_only:
            self._migrate()

    @classmethod
    def from_url(
        cls, url: str, *, read_only: bool, durability: Durability, batched_writes: bool = False
    ) -> JournalStore:
        return cls(url.removeprefix(f"{SCHEME}://"), read_only=read_only)

    def _reopen_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (str(self.path),), {"read_only": self.read_only}

    def _forget_connections(self) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        self._check_process()
        if self._conn is None:
            self._conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA synchronous=OFF")  # tests need no power-loss safety
        return self._conn

    @contextmanager
    def _in_transaction(self, begin: str, what: str) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute(begin)
                try:
                    yield conn.cursor()
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"{what} failed: {e}", location=self.location) from e

    @contextmanager
    def _transaction(self) -> Iterator[Writer]:
        if self.read_only:
            raise StoreError("the store was opened read-only", location=self.location)
        with self._in_transaction("BEGIN IMMEDIATE", "write") as cur:
            yield Writer(cur, SQLITE)

    def _reading(self) -> Any:
        return self._in_transaction("BEGIN", "read")

    def _migration(self) -> Any:
        return self._in_transaction("BEGIN IMMEDIATE", "migration")

    def _close_connections(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def vacuum(self) -> None:
        with self._lock:
            self._connection().execute("VACUUM")

    def size_bytes(self) -> int:
        return os.path.getsize(self.path)


def _cursor_type_check(cur: sqlite3.Cursor) -> Cursor:
    return cur  # a sqlite3 cursor is the slice of DB-API cursor `Cursor` names
