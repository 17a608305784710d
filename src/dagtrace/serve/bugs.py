"""Bugs: what serve's ingest path meets that is neither a store failure (`StoreError`)
nor a rejected span (`SpanRejected`): a decoder, mapping or redaction error, say.

Each is logged with its traceback and counted (`bugs` in `/api/v1/stats`). The one who
met it then re-raises in strict mode (`settings.strict()`, the test suite) so that the
bug fails loudly (a dead thread, a test failing on the 500); otherwise the receiver
answers 500, never a retryable 503: the same request would meet the same bug again."""

from __future__ import annotations

import logging
import threading

_log = logging.getLogger(__name__)


class Bugs:
    """A count of bugs met (thread-safe: the event loop, the writer and the forwarder
    threads report here)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def met(self, doing: str) -> None:
        """In an `except` block: count the exception being handled, log its traceback."""
        with self._lock:
            self.count += 1
            count = self.count
        _log.exception("a bug while %s (%d so far)", doing, count)
