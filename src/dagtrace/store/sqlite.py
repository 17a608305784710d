"""The embedded SQLite store: one file, WAL, long-lived connections.

- One writer connection per process, behind a lock, so threads of one process
  queue in Python instead of sleeping in SQLite's busy handler; processes
  contend through `BEGIN IMMEDIATE` (the write lock taken up front) and a busy
  timeout.
- A small pool of reader connections: in WAL, reads never wait for the writer.
- After `fork()` the child drops the parent's connections and opens its own.

Durability (`durability=`):
- ``"process"`` (default): WAL with ``synchronous=NORMAL``. A committed write
  survives the process being killed (SIGKILL, OOM); the last commits before an
  OS crash or power loss may be lost, never corrupting the file.
- ``"power"``: ``synchronous=FULL``: every commit is fsynced and survives power
  loss, at the cost of one fsync per commit.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from ..exceptions import StoreError
from . import base
from .base import Durability, Store
from .writer import Cursor, Dialect, Writer

_log = logging.getLogger(__name__)

# The sqlite3 module binds only exact int, float, str and bytearray parameters at once;
# for any other, None included, it first looks for an adapter, and a failed lookup
# raises and formats an AttributeError it then drops: ~2,500 instructions for each NULL
# bound (a node row binds about four). An adapter registered for None is found at once,
# and `{}.get` (a C function: `{}.get(None)` is None) binds the same NULL.
if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:  # an application's stays
    sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))

_SYNCHRONOUS: dict[str, str] = {"process": "NORMAL", "power": "FULL"}


def _json_each(values: list[str]) -> tuple[str, Any]:
    return "SELECT value FROM json_each(?)", json.dumps(values)


def _columns(cur: Cursor, table: str) -> set[str]:
    cur.execute(f"PRAGMA table_info({table})")
    return {row[1] for row in cur.fetchall()}


_URL_PREFIX = "sqlite:///"

SQLITE = Dialect(
    least="MIN",
    greatest="MAX",
    in_list=_json_each,
    row_locks=False,
    table_columns=_columns,
    ddl=lambda ddl: ddl,
    text_bytewise=lambda cur, table: None,  # TEXT compares with BINARY, bytewise
)


class SqliteStore(Store):
    """A provenance store in one SQLite file, readable by lythonic's DagProvenance."""

    dialect = SQLITE
    _file_id: tuple[int, int] | None
    """(device, inode) of the file this store's connections opened."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        durability: Durability = "process",
        busy_timeout: float = 30.0,
        batched_writes: bool = False,
        same_file_as: tuple[int, int] | None = None,
    ) -> None:
        """`batched_writes`: writes will come hundreds of spans at a time (`dagtrace
        serve`), so a new file gets 8 KiB pages instead of 2 KiB (see `_use_wal`).
        `same_file_as`: the (device, inode) of the file another process of the same
        program has open (a store pickled to serve's ingest workers): this store uses
        only that file, as if it had opened it itself, and never creates one."""
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'process' or 'power', not {durability!r}")
        self.path = Path(path)
        self.location = str(self.path)
        self._file_path, self._shm_path = str(self.path), f"{self.path}-shm"  # stat per write
        self.durability = durability
        self._synchronous = _SYNCHRONOUS[durability]
        self._busy_timeout = busy_timeout
        self._new_page_size = 8192 if batched_writes else 2048
        self._batched_writes = batched_writes
        self.read_only = read_only or (self.path.exists() and not os.access(self.path, os.W_OK))
        super().__init__()
        self._forget_connections()
        if same_file_as is not None:  # opened and migrated by the process that sent it
            self._file_id = same_file_as
            return
        if self.read_only:
            if not self.path.is_file():
                raise StoreError("database file does not exist", location=self.location)
            self._check_readable_schema()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the directory: {e}", location=self.location) from e
            self._migrate()

    @classmethod
    def from_url(
        cls, url: str, *, read_only: bool, durability: Durability, batched_writes: bool = False
    ) -> SqliteStore:
        """A file path, or a `sqlite:///path` URL."""
        path = url[len(_URL_PREFIX) :] if url.startswith(_URL_PREFIX) else url
        return cls(path, read_only=read_only, durability=durability, batched_writes=batched_writes)

    def _reopen_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (str(self.path),), {
            "read_only": self.read_only,
            "durability": self.durability,
            "busy_timeout": self._busy_timeout,
            "batched_writes": self._batched_writes,
            "same_file_as": self._file_id,
        }

    # -- connections ------------------------------------------------------------------

    def _forget_connections(self) -> None:
        """Forget all connections (at start, and in a forked child: never reuse the parent's)."""
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._writes: Writer  # the Writer of the writer connection, made with it
        self._begin_commit: sqlite3.Cursor  # and a cursor of its own for BEGIN and COMMIT
        self._idle_readers: list[sqlite3.Connection] = []
        self._all_readers: list[sqlite3.Connection] = []
        self._file_id = None
        self._shm_seen: tuple[int, int, int] | None = None
        self._shm_broken = False
        self._committed = threading.Event()
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri() + ("?mode=ro" if read_only else "")
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            if not read_only:
                self._use_wal(conn)
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                pages = (
                    self._BATCHED_CHECKPOINT_PAGES
                    if self._batched_writes
                    else self._SAFETY_CHECKPOINT_PAGES
                )
                conn.execute(f"PRAGMA wal_autocheckpoint={pages}")
            else:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the SQLite database: {e}", location=self.location) from e
        if self._file_id is None:  # the file our first connection, of any kind, opened
            self._file_id = self._current_file_id()
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new file to WAL, with pages for its writes: 2 KiB for a node at a time
        (the drop-in's commit then writes ~30% fewer bytes than with 4 KiB, and took
        92 against 109 µs a node with 4 KiB pages in bench_runner), 8 KiB for batches
        (serve: 41 against 47 µs of CPU a span in bench_serve). An existing file keeps
        its own pages.

        Processes opening a new file together race for this switch, and SQLite answers
        the losers "database is locked" at once, without its busy handler: they retry
        until the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.005
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute(f"PRAGMA page_size={self._new_page_size}")
                    conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
            _log.debug("dagtrace: waiting to switch %s to WAL (another process uses it)", self.path)
            time.sleep(delay)  # a backoff while another process holds the file
            delay = min(delay * 2, 0.1)

    def _writer_connection(self) -> sqlite3.Connection:
        if self.read_only:
            raise StoreError("the store was opened read-only", location=self.location)
        if self._writer is None:
            self._writer = self._connect(read_only=False)
            self._writes = Writer(self._writer.cursor(), SQLITE)  # one per connection
            self._begin_commit = self._writer.cursor()  # conn.execute makes a cursor a call
        return self._writer

    def _current_file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._file_path)  # a str: no Path conversion per transaction
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _check_file(self) -> None:
        """The file our connections hold must still be the one at the path: writes to a
        deleted file vanish with it, and a replaced one must not get our WAL. Called
        with `_lock` held, before each transaction and read.

        Either way this store refuses from then on (StoreError: 503 from the server),
        touching nothing at the path: closing our connections would let SQLite apply
        or delete WAL files that may now belong to another database. Restarting the
        process opens whatever database is at the path by then.
        """
        if self._file_id is not None:  # else no writer opened yet: nothing to compare with
            now = self._current_file_id()
            if now != self._file_id:
                what = "deleted" if now is None else "replaced by another file"
                raise StoreError(
                    f"the database file was {what} while in use; nothing more is written or "
                    "read here: restore the file if needed, then restart this process",
                    location=self.location,
                )
        self._check_shm()

    def _check_shm(self) -> None:
        """SQLite maps the `-shm` file (WAL mode) into memory: once it is truncated, a
        read of a mapped page past its new end kills the process with SIGBUS, and once
        replaced, other processes index the WAL elsewhere. So before each access: the
        file our connections mapped must still be there, as large as it was. If not,
        this store refuses from then on, like a deleted file. (A truncation racing an
        access already under way cannot be caught: docs/reliability.md.)"""
        try:
            st = os.stat(self._shm_path)
        except OSError:
            st = None
        seen = self._shm_seen
        if seen is None:  # recorded once ours is mapped (opening may truncate a stale one)
            if st is not None and (self._writer is not None or self._all_readers):
                self._shm_seen = (st.st_dev, st.st_ino, st.st_size)
            return
        if st is not None and (st.st_dev, st.st_ino) == seen[:2] and st.st_size >= seen[2]:
            if st.st_size > seen[2]:
                self._shm_seen = (st.st_dev, st.st_ino, st.st_size)
            return
        self._shm_broken = True
        raise StoreError(
            "the database's -shm file was truncated, replaced or deleted while in use; "
            "nothing more is written or read here: restart this process",
            location=self.location,
        )

    # -- Store ------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    @contextmanager
    def _reading(self) -> Iterator[Cursor]:
        self._check_process()
        with self._lock:
            self._check_file()  # never read a deleted file's stale rows
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self._connect(read_only=self.read_only)
            with self._lock:
                self._all_readers.append(conn)
        try:
            conn.execute("BEGIN")
            try:
                yield conn.cursor()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreError(f"read failed: {e}", location=self.location) from e
        finally:
            with self._lock:
                self._idle_readers.append(conn)

    _CHECKPOINT_PERIOD = 0.1
    """At most this often, the WAL is copied into the database file (if anything was
    committed since): the WAL stays about as large as 100 ms of commits. With batched
    writes, this long after commits pause (`_wait_for_a_pause`)."""
    _SAFETY_CHECKPOINT_PAGES = 10_000
    """Checkpoints (a copy of the WAL into the file, and its fsync) belong to the
    background thread (`_checkpoint_loop`); inline, every 200th node commit or so paid
    for one: 13 µs per node commit on average (measured). SQLite checkpoints inline
    only past this bound, if that thread falls behind."""
    _BATCHED_CHECKPOINT_PAGES = 1_000
    """SQLite's own bound, for batched writes (`dagtrace serve`): under a steady stream
    of requests the thread always falls behind, since a writer appends while it copies,
    so the WAL never restarts and grew to 65 MB. Inline at 1,000 pages it stays ~8 MB
    and is rewritten in place: 17.6 against 20.3 µs of CPU a span for the write, of
    which the system's 7.2 against 10.1 (medians of 10 rounds, in process). The thread
    then waits for a pause in commits (`_wait_for_a_pause`)."""

    def _wake_checkpointer(self) -> None:
        self._committed.set()
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="dagtrace-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints on a connection of their own: they wait for no writer and
        no writer waits for them; the fsync happens here, not in a traced program."""
        conn: sqlite3.Connection | None = None
        try:
            while not self._closing.is_set():
                self._committed.wait()
                if self._batched_writes:
                    self._wait_for_a_pause()
                else:
                    self._closing.wait(self._CHECKPOINT_PERIOD)  # a pace, not a handshake
                    self._committed.clear()
                if self._closing.is_set():
                    return
                try:
                    with self._lock:
                        self._check_file()  # never checkpoint into a replaced file
                    conn = conn or self._connect(read_only=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (StoreError, sqlite3.Error) as e:
                    _log.warning("dagtrace: background checkpoint failed: %s", e)
        finally:
            if conn is not None:
                conn.close()

    def _wait_for_a_pause(self) -> None:
        """Batched writes: SQLite checkpoints inline while commits go on, so this thread
        waits for a period without any (or for closing), and copies what is left then.
        Checkpointing every period under load as well wrote the same pages into the file
        again and again: its threads took 6% of serve's CPU (perf)."""
        self._committed.clear()  # set again by any commit meanwhile
        while not self._closing.wait(self._CHECKPOINT_PERIOD) and self._committed.is_set():
            self._committed.clear()

    def _stop_checkpointer(self) -> None:
        self._closing.set()
        self._committed.set()
        if self._checkpointer is not None and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(timeout=30)
        self._checkpointer = None

    def vacuum(self) -> None:
        """VACUUM: rewrites the file without its free pages; blocks every writer meanwhile
        (SQLite reuses free pages on its own: this only shrinks the file)."""
        self._check_process()
        with self._lock:
            conn = self._writer_connection()
            try:
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                raise StoreError(f"vacuum failed: {e}", location=self.location) from e

    def size_bytes(self) -> int:
        """The database file and its WAL."""
        return sum(os.path.getsize(p) for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def _close_connections(self) -> None:
        with self._lock:
            connections = [*self._all_readers, *([self._writer] if self._writer else [])]
            if self._shm_broken:  # see `_check_shm`: closing would checkpoint through it
                _never_closed.extend(connections)  # they hold the lock a checkpoint needs
                _keep_until_exit(connections)
                connections = []
        self._stop_checkpointer()
        with self._lock:
            for conn in connections:
                conn.close()
            self._writer, self._all_readers, self._idle_readers = None, [], []
            self._closed = True

    # -- schema -----------------------------------------------------------------------

    @contextmanager
    def _migration(self) -> Iterator[Cursor]:
        """The writer connection in `BEGIN IMMEDIATE`: the file's write lock."""
        self._check_process()
        with self._lock:
            conn = self._writer_connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn.cursor()
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                _rollback(conn)
                raise StoreError(f"cannot migrate the schema: {e}", location=self.location) from e
            except BaseException:
                _rollback(conn)
                raise

    def _check_readable_schema(self) -> None:
        """Without write access nothing can be migrated: read what is there."""
        with self._reading() as cur:
            columns = _columns(cur, "dag_runs")
        if not columns:
            raise StoreError("not a provenance database: no dag_runs table", location=self.location)
        if "initiated_by" not in columns:
            self.initiated_by_column = "NULL"
        if "parent_node_label" not in columns:
            self.parent_node_column = "NULL"


class _Transaction:
    """`BEGIN IMMEDIATE` … `COMMIT` under the store's lock; rolled back on any error.

    A class rather than a generator: it runs once per node the live processor
    records, and every frame there counts.
    """

    __slots__ = ("_conn", "_store")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __enter__(self) -> Writer:
        store = self._store
        if store._pid != base._pid:
            store._check_process()
        store._lock.acquire()
        try:
            if store._closed:  # closed while this thread waited for the lock
                raise StoreError("the store is closed", location=store.location)
            store._check_file()
            self._conn = store._writer or store._writer_connection()
            store._begin_commit.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            store._lock.release()
            raise StoreError(f"write failed: {e}", location=store.location) from e
        except BaseException:
            store._lock.release()
            raise
        return store._writes

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> None:
        store, conn = self._store, self._conn
        try:
            if error is None:
                try:
                    store._begin_commit.execute("COMMIT")
                except sqlite3.Error as e:
                    _rollback(conn)
                    raise StoreError(f"write failed: {e}", location=store.location) from e
                if not store._committed.is_set():
                    store._wake_checkpointer()
                return
            _rollback(conn)
            if isinstance(error, sqlite3.Error):
                raise StoreError(f"write failed: {error}", location=store.location) from error
        finally:
            store._lock.release()


_never_closed: list[sqlite3.Connection] = []
"""Connections of a store whose -shm file was truncated: the last connection of a
file to close checkpoints it, reading the mapped -shm (SIGBUS). They stay open until
the process exits; the operating system releases them."""


def _keep_until_exit(objects: list[Any]) -> None:
    """One more reference to each, never given back: not even the interpreter's
    finalisation frees (and so closes) them."""
    import ctypes

    for obj in objects:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one worth reporting
