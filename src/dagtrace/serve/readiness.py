"""`/readyz`: whether the store takes writes now, not only whether it can be reached.

The latest write decides (a request's rows, or a probe): a failed one makes the
server not ready until a later write succeeds. When no request was written for
`PROBE_INTERVAL` seconds, `/readyz` writes a probe first (so at most one probe per
interval, and none while requests keep the store busy). The probe rewrites the
schema-version row of `dagtrace_meta` with its own value: it takes the write lock
and appends to the WAL (SQLite) or needs UPDATE rights (PostgreSQL), and changes
nothing anyone reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..exceptions import StoreError
from ..store.base import Store

_log = logging.getLogger(__name__)

PROBE_INTERVAL = 5.0


def probe_write(store: Store) -> None:
    """A write transaction that changes no value; raises StoreError when it fails."""
    with store.transaction() as writer:
        writer.probe()


class Readiness:
    """The outcome of the latest write. Thread-safe: writes are noted on the event loop,
    `/readyz` asks from a worker thread."""

    def __init__(
        self,
        store: Store,
        *,
        writes: bool = True,
        interval: float = PROBE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._writes = writes
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._probing = threading.Lock()
        self._at = -1e18  # when the latest write ended; none yet
        self._failure: str | None = None

    def wrote(self, failure: str | None = None) -> None:
        """A request's write ended: committed (None) or failed (why)."""
        with self._lock:
            self._at, self._failure = self._clock(), failure

    def problem(self) -> str | None:
        """Why the server is not ready now, or None. May write a probe (see module doc)."""
        self._store.table_counts()  # reachable at all (raises StoreError)
        if not self._writes:
            return None
        with self._lock:
            fresh = self._clock() - self._at < self._interval
            failure = self._failure
        if fresh:
            return failure
        with self._probing:  # one probe at a time; the others wait for its outcome
            with self._lock:
                if self._clock() - self._at < self._interval:
                    return self._failure
            try:
                probe_write(self._store)
            except StoreError as e:
                _log.warning("readiness probe: the store cannot be written: %s", e)
                self.wrote(f"the store cannot be written: {e}")
            else:
                self.wrote(None)
            with self._lock:
                return self._failure
