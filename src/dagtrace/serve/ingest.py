"""The receiver's write path.

Two ways, one answer per request (`Ingested`), acknowledged (200) only once its
rows are committed:
- ingest workers (`serve --decoders N`, N ≥ 1): processes that each decode a
  request and commit its rows with a store connection of their own, so the
  server process only speaks HTTP: decoding is CPU-bound Python, and a process
  that also decodes or writes caps the server at one core's worth of GIL;
- `IngestWriter` (N = 0): one thread that decodes and writes queued requests,
  several per transaction (group commit).

And the forwarder, re-sending received requests to another endpoint.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import httpx

from .._parents import ParentFacts
from .._store import Store
from .._writer import Rows
from ..exceptions import QueueFull
from ..settings import DEFAULT_FORWARD_BUFFER
from .codec import DecodedRows, decode_to_rows

_log = logging.getLogger("dagtrace.serve")

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
    if log_level is not None:
        logging.basicConfig(level=log_level, format=LOG_FORMAT)
    _die_with_parent(parent_pid)
    _worker_store = store
    atexit.register(store.close)


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


"""Bytes of received requests held for the forward target before the oldest go."""


class Forwarder:
    """Re-sends received requests to another OTLP/HTTP endpoint (Jaeger, a Collector).

    Bounded in bytes: when the target is down or slow and `max_bytes` of requests
    wait, the oldest are dropped and counted; ingestion into the store never waits.
    """

    RETRYABLE = frozenset({429, 502, 503, 504})

    def __init__(
        self,
        url: str,
        *,
        prepare: Callable[[bytes, str], bytes] | None = None,
        max_bytes: int = DEFAULT_FORWARD_BUFFER,
        max_attempts: int = 5,
        timeout: float = 5.0,
    ) -> None:
        """`prepare(body, content_type)` turns a received body into the one sent (the
        redaction): it runs on the forwarding thread, not on the request's path."""
        self.url = url
        self.forwarded = 0
        self.dropped = 0
        self._prepare = prepare
        self._max_bytes = max_bytes
        self._pending: deque[tuple[bytes, str]] = deque()
        self._pending_bytes = 0
        self._changed = threading.Condition()
        self._max_attempts = max_attempts
        self._client = httpx.Client(timeout=timeout)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dagtrace-forward", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not counting the one being sent)."""
        return len(self._pending)

    def submit(self, body: bytes, content_type: str) -> None:
        with self._changed:
            self._pending.append((body, content_type))
            self._pending_bytes += len(body)
            while self._pending_bytes > self._max_bytes:
                oldest, _ = self._pending.popleft()
                self._pending_bytes -= len(oldest)
                self.dropped += 1
            self._changed.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what waits, without retries, for at most `timeout` seconds; drop the rest."""
        self._stopping.set()
        with self._changed:
            self._changed.notify()
        self._thread.join(timeout)
        with self._changed:
            left = len(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self.dropped += left
        if left:
            _log.warning("stopping: %d request(s) not forwarded to %s", left, self.url)
        self._client.close()

    def _next(self) -> tuple[bytes, str] | None:
        with self._changed:
            while not self._pending and not self._stopping.is_set():
                self._changed.wait()
            if not self._pending:
                return None
            body, content_type = self._pending.popleft()
            self._pending_bytes -= len(body)
            return body, content_type

    def _run(self) -> None:
        while (item := self._next()) is not None:
            body, content_type = item
            try:
                if self._prepare is not None:
                    body = self._prepare(body, content_type)
                sent = self._send(body, content_type)
            except Exception as e:  # noqa: BLE001 - stored already; forwarding is best effort
                if not self._stopping.is_set():  # else stop() closed the client: it counts
                    _log.warning("not forwarded: %s", e)
                sent = False
            with self._changed:
                if sent:
                    self.forwarded += 1
                else:
                    self.dropped += 1

    def _send(self, body: bytes, content_type: str) -> bool:
        """Up to `max_attempts` tries; between two, the target's Retry-After if it gave
        one, else an exponential backoff. Cut short by stop()."""
        backoff = 0.1
        for attempt in range(1, self._max_attempts + 1):
            wait = backoff
            try:
                response = self._client.post(
                    self.url, content=body, headers={"Content-Type": content_type}
                )
            except httpx.HTTPError as e:
                problem = str(e) or e.__class__.__name__
            else:
                if response.status_code < 300:
                    return True
                if response.status_code not in self.RETRYABLE:
                    _log.warning("forward to %s refused: HTTP %d", self.url, response.status_code)
                    return False
                problem = f"HTTP {response.status_code}"
                asked = _retry_after(response.headers.get("retry-after"))
                wait = backoff if asked is None else asked
            if attempt == self._max_attempts:
                _log.warning(
                    "forward to %s failed %d times, dropped: %s", self.url, attempt, problem
                )
                return False
            if self._stopping.wait(wait):
                return False
            backoff = min(backoff * 2, 5.0)
        return False


_MAX_RETRY_AFTER = 60.0


def _retry_after(header: str | None) -> float | None:
    """Retry-After in seconds (the OTLP spec asks clients to honour it), at most a
    minute; None when absent or given as a date."""
    if header is None or not header.strip().isdigit():
        return None
    return min(float(header), _MAX_RETRY_AFTER)
