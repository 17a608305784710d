"""What the bridge counts, and how it swallows what it must not raise: store failures
and rejected spans are counted and logged; anything else is a bug (`report_bug`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from opentelemetry import context as otel_context

from .. import settings
from .._fork import reset_in_forked_child
from .._mapping import SpanRecord
from .._parents import ParentFacts
from ..exceptions import SpanRejected, is_bug
from ..store.base import Store

_log = logging.getLogger(__name__)


@dataclass
class BridgeStats:
    """What the bridge did with the spans it saw, since it started."""

    spans_stored: int = 0
    spans_ignored: int = 0
    """Not DAG spans (no `dag.kind`): an HTTP client span inside a node, say."""
    spans_rejected: int = 0
    """DAG spans that could not be stored (a missing run id, a NUL in a label, …)."""
    store_failures: int = 0
    """Writes that failed (the store unreachable, full, read-only …)."""
    bugs: int = 0
    """Any other exception on the OTel path: a bug in dagtrace, logged with its traceback
    (re-raised instead when `DAGTRACE_STRICT` is set, as in dagtrace's own tests)."""
    spans_with_dropped_events: int = 0
    """Node spans past the SDK's event limit: some `dag.edge` events may be lost."""

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


_PERSISTED = ("spans_rejected", "store_failures", "bugs", "spans_with_dropped_events")
"""Counters also added up in the store, so `dagtrace stats` shows them from any process."""


class Problems:
    """Count and log without flooding: the first failure and then every 100th."""

    def __init__(self, stats: BridgeStats) -> None:
        self.stats = stats
        self._lock = threading.Lock()
        self._unsaved: dict[str, int] = {}
        reset_in_forked_child(self)

    def after_fork_in_child(self) -> None:
        """The parent saves its own unsaved counts (else they would count twice), and its
        lock may have been held at the fork."""
        self._lock, self._unsaved = threading.Lock(), {}

    def count(self, name: str, n: int = 1) -> int:
        with self._lock:
            value = int(getattr(self.stats, name)) + n
            setattr(self.stats, name, value)
            if name in _PERSISTED:
                self._unsaved[name] = self._unsaved.get(name, 0) + n
        return value

    def take_unsaved(self) -> dict[str, int]:
        """Counter increments not yet in the store (give them back if the write fails)."""
        if not self._unsaved:
            return {}
        with self._lock:
            taken, self._unsaved = self._unsaved, {}
        return taken

    def give_back(self, unsaved: dict[str, int]) -> None:
        with self._lock:
            for name, n in unsaved.items():
                self._unsaved[name] = self._unsaved.get(name, 0) + n

    def write(
        self, store: Store, records: Sequence[SpanRecord], parents: ParentFacts | None = None
    ) -> None:
        """Write records with the unsaved counters (and what `parents` leads to), in one
        transaction."""
        token = otel_context.attach(_SUPPRESSING)  # the store's own I/O makes no spans
        unsaved = self.take_unsaved()
        try:
            store.write_records(records, counters=unsaved, parents=parents)
        except BaseException:
            self.give_back(unsaved)
            raise
        finally:
            otel_context.detach(token)

    def failure(self, what: str, error: BaseException) -> None:
        """Count and log an exception the OTel path swallows: a store failure, or a bug
        (anything else), which re-raises in strict mode. Call it in the `except` block."""
        if is_bug(error):
            report_bug(what, error, self.count("bugs"))
            return
        total = self.count("store_failures")
        if total == 1 or total % 100 == 0:
            _log.error("dagtrace: %s failed (%d failures so far): %s", what, total, error)

    def rejected(self, error: SpanRejected) -> None:
        total = self.count("spans_rejected")
        if total == 1 or total % 100 == 0:
            _log.warning("dagtrace: span rejected (%d so far): %s", total, error)


def report_bug(what: str, error: BaseException, total: int) -> None:
    """Log a bug with its traceback, where the OTel path must not raise; re-raise it
    instead when `DAGTRACE_STRICT` is set (dagtrace's tests), so it fails a test rather
    than passing for a store failure. Call it in the `except` block."""
    _log.error("dagtrace: bug while %s (%d so far; please report it)", what, total, exc_info=error)
    if settings.strict():
        raise error


_SUPPRESSING = otel_context.set_value(
    otel_context._SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context()
)
"""The context the store's own I/O runs in: no span is current, instrumentation off."""
