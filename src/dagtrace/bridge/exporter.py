"""`DagtraceSpanExporter` writes batches of ended spans, one transaction per batch
(`OTEL_TRACES_EXPORTER=dagtrace`; the SDK wraps it in a BatchSpanProcessor), and
`RedactingSpanExporter` hands an OTLP exporter redacted copies."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import settings
from .._fork import new_lock_in_forked_child
from .._parents import ParentFacts
from .._redact import Redaction
from ..store.base import Store
from .problems import BridgeStats, Problems
from .spans import map_span

_log = logging.getLogger(__name__)


class DagtraceSpanExporter(SpanExporter):
    """Writes each batch of ended DAG spans in one transaction; never raises.

    With no argument (as `OTEL_TRACES_EXPORTER=dagtrace` builds it) the store is
    `DAGTRACE_DB`, else `./dagtrace.db`.
    """

    def __init__(self, store: Store | str | os.PathLike[str] | None = None) -> None:
        from ..store import open_store

        if isinstance(store, Store):
            self.store, self._owns_store = store, False
        else:
            target = store if store is not None else settings.db_location()
            self.store, self._owns_store = open_store(target), True
        self.stats = BridgeStats()
        self._problems = Problems(self.stats)
        self._shut_down = False
        self._lock = threading.Lock()
        new_lock_in_forked_child(self)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            _log.warning("dagtrace: export called after shutdown; %d spans dropped", len(spans))
            return SpanExportResult.FAILURE
        try:
            # Sub-run parents are found in the store, from this batch and earlier ones
            # (non-DAG spans included: they connect sub-runs to composite nodes).
            parents = ParentFacts()
            records = [
                r
                for s in spans
                if (r := map_span(s, ended=True, parents=parents, problems=self._problems))
            ]
            if records or parents:
                with self._lock:
                    self._problems.write(self.store, records, parents)
                self._problems.count("spans_stored", len(records))
            return SpanExportResult.SUCCESS
        except Exception as e:  # noqa: BLE001 - never into the traced program
            self._problems.failure(f"exporting {len(spans)} spans", e)
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # export() writes before it returns: nothing is buffered here

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        if self._owns_store:
            try:
                self.store.close()
            except Exception as e:  # noqa: BLE001
                self._problems.failure("closing the store", e)


class RedactingSpanExporter(SpanExporter):
    """Hands `inner` (the OTLP exporter to Jaeger) copies of the spans with secret keys
    and payloads redacted and capped; the store, fed elsewhere, keeps them exact."""

    def __init__(self, inner: SpanExporter, redaction: Redaction) -> None:
        self.inner = inner
        self.redaction = redaction

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._redacted(s) for s in spans])

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        from opentelemetry.sdk.trace import Event

        return ReadableSpan(
            name=span.name,
            context=span.get_span_context(),
            parent=span.parent,
            resource=span.resource,
            attributes=self.redaction.attributes(span.attributes or {}),
            events=[
                Event(e.name, self.redaction.attributes(e.attributes or {}), e.timestamp)
                for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()
