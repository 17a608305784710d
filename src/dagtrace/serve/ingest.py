"""Ingestion: request bodies in, rows committed, requests acknowledged.

`Ingestion` is what a receiver hands each request body to (`serve.otlp` for
OTLP/HTTP; a gRPC receiver or a queue consumer would do the same): it decodes and
commits the rows, bounds what waits (`QueueFull`), restarts dead workers, notes each
write's outcome for /readyz, forwards what was committed, and counts bugs. Two ways
to write, one answer per request (`Ingested`), given only once its rows are committed:
- ingest workers (`serve --decoders N`, N ≥ 1): processes that each decode a
  request and commit its rows with a store connection of their own, so the
  server process only speaks HTTP: decoding is CPU-bound Python, and a process
  that also decodes or writes caps the server at one core's worth of GIL
  (`serve.workers` feeds them the bodies);
- `IngestWriter` (N = 0): one thread that decodes and writes queued requests,
  several per transaction (group commit).

The workers import this module (not the web framework).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._parents import ParentFacts
from ..exceptions import QueueFull, SpanRejected, StoreError, UndecodableRequest
from ..store.base import Store
from ..store.rows import Rows
from .bugs import Bugs
from .codec import JSON, PROTOBUF, DecodedRows, decode_to_rows
from .workers import WorkerPool

if TYPE_CHECKING:
    from .forward import Forwarder
    from .metrics import Metrics
    from .readiness import Readiness

_log = logging.getLogger(__name__)

_GROUP_LIMIT = 64
"""At most this many queued requests share one transaction."""


@dataclass(frozen=True)
class Ingested:
    """What one request did to the store: the answer's partial_success and metrics."""

    received: int
    stored: int
    rejected: list[str]

    @classmethod
    def of(cls, decoded: DecodedRows) -> Ingested:
        return cls(decoded.received, len(decoded.rows), decoded.rejected)


# -- ingest workers ----------------------------------------------------------------------

_worker_store: Store | None = None


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""`dagtrace serve`'s log lines, its ingest workers' included."""


def start_worker(parent_pid: int, store: Store, log_level: int | None = None) -> None:
    """Pool initializer: `store` arrives pickled, which opens it anew here, with
    connections of its own; the worker logs like the server and exits with it."""
    global _worker_store
    collect_less_often()
    if log_level is not None:
        logging.basicConfig(level=log_level, format=LOG_FORMAT)
    _die_with_parent(parent_pid)
    _worker_store = store
    atexit.register(store.close)


def collect_less_often() -> None:
    """Decoding a request makes tens of thousands of short-lived containers, none in a
    reference cycle: collecting the youngest generation every 700 allocations (Python's
    default) took 3-4% of a span's decode and write (instructions counted, bench_serve's
    requests); every 20,000 leaves memory as it was."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, 20_000), middle, old)


def ingest_in_worker(body: bytes, json_encoded: bool) -> Ingested:
    """In a worker: decode one request and commit its rows, in one transaction.
    Raises `UndecodableRequest` (400) or `StoreError` (503), nothing written."""
    decoded = decode_to_rows(body, json_encoded=json_encoded)
    assert _worker_store is not None, "start_worker() did not run in this process"
    _worker_store.write_rows(decoded.rows, parents=decoded.parents)
    return Ingested.of(decoded)


def _die_with_parent(parent_pid: int) -> None:
    """Exit when the server does, even if it was SIGKILLed (a pool worker blocked on
    its queue would otherwise outlive it, holding its pipes)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the server died before prctl took effect
        os._exit(0)

    def watch() -> None:  # elsewhere than Linux: notice the re-parenting within a second
        while os.getppid() == parent_pid:
            time.sleep(1.0)  # a poll of the parent's liveness, not a handshake
        os._exit(0)

    threading.Thread(target=watch, name="dagtrace-parent-watch", daemon=True).start()


# -- in the server process ---------------------------------------------------------------


@dataclass
class _Job:
    body: bytes
    json_encoded: bool
    done: Future[Ingested]
    decoded: DecodedRows | None = None


class IngestWriter:
    """Writes queued requests' records into the store from one thread."""

    def __init__(self, store: Store, *, queue_size: int) -> None:
        self.store = store
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="dagtrace-ingest", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, body: bytes, *, json_encoded: bool = False) -> Future[Ingested]:
        """Queue one request; the future resolves once its rows are committed (or
        fails with `UndecodableRequest`, or the store's error)."""
        job = _Job(body, json_encoded, Future())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull() from None
        return job.done

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < _GROUP_LIMIT:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._write(group)
                    return
                group.append(job)
            self._write(group)

    def _write(self, group: list[_Job]) -> None:
        decodable: list[tuple[_Job, DecodedRows]] = []
        for job in group:
            if job.decoded is None:
                try:
                    job.decoded = decode_to_rows(job.body, json_encoded=job.json_encoded)
                except Exception as e:  # noqa: BLE001 - answered 400 by the caller
                    job.done.set_exception(e)
                    continue
            decodable.append((job, job.decoded))
        if not decodable:
            return
        rows, parents = Rows(), ParentFacts()
        for _, decoded in decodable:
            rows.extend(decoded.rows)
            parents.extend(decoded.parents)
        try:
            self.store.write_rows(rows, parents=parents)
        except Exception as e:  # noqa: BLE001 - each request gets its own answer
            if len(decodable) == 1:
                decodable[0][0].done.set_exception(e)
                return
            for job, _ in decodable:  # one bad request must not fail its neighbours
                self._write([job])
            return
        for job, decoded in decodable:
            job.done.set_result(Ingested.of(decoded))


# -- what a receiver uses ----------------------------------------------------------------


class Ingestion:
    """The write path of one server, for any receiver: `ingest` each request body,
    `stop` at the end (what is in hand is written first)."""

    def __init__(
        self,
        store: Store,
        *,
        metrics: Metrics,
        readiness: Readiness,
        queue_size: int,
        decoders: int = 0,
        forwarder: Forwarder | None = None,
        bugs: Bugs | None = None,
    ) -> None:
        """`decoders`: worker processes (0: one thread of this process decodes and
        writes); `queue_size`: requests waiting for one, beyond which `QueueFull`."""
        self.store = store
        self.queue_size = queue_size
        self.decoders = decoders
        self.bugs = bugs or Bugs()
        self._metrics = metrics
        self._readiness = readiness
        self._forwarder = forwarder
        self._writer = IngestWriter(store, queue_size=queue_size) if decoders == 0 else None
        self._pool = self._new_pool() if decoders > 0 else None
        if decoders == 0:  # this process decodes
            collect_less_often()
        self._in_workers = 0  # requests submitted to the workers and not yet answered
        metrics.queue_depth.set_function(lambda: self.waiting)

    @property
    def waiting(self) -> int:
        """Requests accepted and waiting for a writer (the write queue's depth)."""
        if self._writer is not None:
            return self._writer.depth
        return max(0, self._in_workers - self.decoders)

    @property
    def full(self) -> bool:
        """Whether a request now would be refused (`QueueFull`): a receiver asks before
        reading a body that would only wait."""
        return self.waiting >= self.queue_size

    async def ingest(self, pieces: list[bytes], *, json_encoded: bool) -> Ingested:
        """Decode and commit one request body (its pieces, in order), then forward it.
        Raises `QueueFull`, `UndecodableRequest`, `BrokenProcessPool` (a worker died;
        the next request starts a new one: retry), `StoreError` or `SpanRejected`
        (nothing stored), or any other exception: a bug, logged with its traceback and
        counted in `bugs` first."""
        metrics = self._metrics
        try:
            with metrics.in_progress.track_inprogress(), metrics.ingest_seconds.time():
                ingested = await self._commit(pieces, json_encoded)
        except (QueueFull, UndecodableRequest, BrokenProcessPool):
            raise
        except (StoreError, SpanRejected) as e:
            _log.error("write failed: %s", e)
            if isinstance(e, StoreError):  # not ready until a write succeeds
                self._readiness.wrote(str(e))
            raise
        except Exception:
            self.bugs.met("ingesting a request")
            raise
        self._readiness.wrote(None)
        metrics.received.inc(ingested.received)
        metrics.stored.inc(ingested.stored)
        metrics.rejected.inc(len(ingested.rejected))
        if self._forwarder is not None:
            self._forwarder.submit(b"".join(pieces), JSON if json_encoded else PROTOBUF)
        return ingested

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._writer is not None:
            self._writer.stop()
        if self._forwarder is not None:
            self._forwarder.stop()

    async def _commit(self, pieces: list[bytes], json_encoded: bool) -> Ingested:
        if self._writer is not None:
            body = b"".join(pieces)
            return await asyncio.wrap_future(self._writer.submit(body, json_encoded=json_encoded))
        if self.full:
            raise QueueFull()
        self._in_workers += 1
        assert self._pool is not None
        try:
            ingested: Ingested = await self._pool.submit(pieces, json_encoded)
            return ingested
        except BrokenProcessPool as e:  # the next request starts a new worker
            _log.error("%s; the next request starts a new one", e)
            raise
        finally:
            self._in_workers -= 1

    def _new_pool(self) -> WorkerPool:
        return WorkerPool(
            self.decoders,
            ingest_in_worker,
            initializer=start_worker,
            # pickled: each worker opens the store anew
            initargs=(os.getpid(), self.store, _configured_log_level()),
        )


def _configured_log_level() -> int | None:
    """The root logger's level if the server's program configured logging, for its workers."""
    root = logging.getLogger()
    return root.level if root.handlers else None
