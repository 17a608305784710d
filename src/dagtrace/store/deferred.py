"""Deferred writes: span records a store writes soon rather than now.

The live processor defers a node's start (a row that says "running") so that a node
that starts and ends at once costs one transaction, not two. Deferred records ride
along with the next transaction of any kind, or are flushed by a daemon thread within
`DELAY` seconds; a read flushes them first, so no reader ever sees less than this
process wrote. The store delegates to one `DeferredWrites`, as the SDK's
`BatchSpanProcessor` delegates to its private batch processor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from .._mapping import SpanRecord

_log = logging.getLogger(__name__)


class PendingSource(Protocol):
    """Something holding records to write with the next transaction (the live
    processor's started spans, mapped only if still open when written)."""

    def has_pending(self) -> bool: ...

    def take_pending(self) -> list[SpanRecord]: ...


class DeferredWrites:
    """Records waiting for the next transaction, and the thread that flushes them."""

    DELAY = 0.05
    """Deferred records reach the store within this many seconds (documented: ≤ 100 ms)."""
    CAP = 100_000
    """Records kept while the store cannot be written; the oldest go beyond it."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._records: list[SpanRecord] = []
        self._sources: list[PendingSource] = []
        self._lock = threading.Condition()
        self._flusher: threading.Thread | None = None
        self._armed = False  # in its timed wait: a new start needs no wake-up
        self._wake_requested = False
        self.dropped = 0
        """Records given up because more than `CAP` waited for a failing store."""

    def add(self, records: Sequence[SpanRecord]) -> None:
        with self._lock:
            self._records.extend(records)
        self.wake()

    def for_child(self) -> DeferredWrites:
        """For a forked child: the same flush and sources (the live processors live on in
        it), none of the parent's records, and no thread yet (the parent's does not run
        here)."""
        child = DeferredWrites(self._flush)
        child._sources = list(self._sources)
        return child

    def add_source(self, source: PendingSource) -> None:
        with self._lock:
            self._sources.append(source)

    def wake(self) -> None:
        """Something is pending: make sure it is written within `DELAY`."""
        if self._armed:
            return  # cheap path: no lock, no thread switch per span start
        with self._lock:
            self._wake_requested = True
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="dagtrace-flush", daemon=True
                )
                self._flusher.start()
            else:
                self._lock.notify()

    def pending(self) -> bool:
        return bool(self._records) or any(s.has_pending() for s in self._sources)

    def take(self) -> list[SpanRecord]:
        """Everything pending, to write in the caller's transaction (or `give_back`)."""
        taken: list[SpanRecord] = []
        if not self._records and not self._sources:
            return taken
        if self._records:
            with self._lock:
                taken, self._records = self._records, []
        for source in self._sources:
            if source.has_pending():
                taken.extend(source.take_pending())
        return taken

    def give_back(self, taken: list[SpanRecord]) -> None:
        """The transaction failed: keep the records for the next one, oldest first."""
        if not taken:
            return
        with self._lock:
            self._records[:0] = taken
            overflow = len(self._records) - self.CAP
            if overflow > 0:
                del self._records[:overflow]
                self.dropped += overflow

    def stop(self) -> None:
        with self._lock:
            self._flusher = None
            self._lock.notify_all()

    def _flush_loop(self) -> None:
        """Writes deferred records `DELAY` after they arrive, unless a write or a read
        took them first."""
        me = threading.current_thread()
        while self._flusher is me:
            with self._lock:
                # Woken by a request, not by "something is pending now": a node that
                # starts and ends at once would otherwise wake this thread every time.
                while not self._wake_requested and self._flusher is me:
                    self._lock.wait()
                self._wake_requested = False
                self._armed = True
                self._lock.wait(self.DELAY)  # a deadline, not a handshake
                self._armed = False
            try:
                self._flush()
            except Exception:  # noqa: BLE001 - kept for the next try
                _log.warning("dagtrace: deferred span starts not yet written", exc_info=True)
                with self._lock:
                    self._lock.wait(1.0)  # back off while the store is failing
