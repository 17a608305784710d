"""The OpenTelemetry bridge: SDK spans in, provenance rows out.

- `LiveSpanProcessor` records a run or node when its span starts (deferred: in
  the file within 50 ms, at once for reads in this process) and commits it before
  `span.end()` returns.
- `DagtraceSpanExporter` writes batches of ended spans, one transaction per batch
  (`OTEL_TRACES_EXPORTER=dagtrace`; the SDK wraps it in a BatchSpanProcessor).

Neither ever raises into the traced program: failures are logged and counted in
`stats` (and in the store, for `dagtrace stats`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

from . import conventions as c
from . import settings
from ._mapping import SpanEvent, SpanRecord, is_dag_span, record_from_parts
from ._parents import ParentFacts, ParentResolver
from ._redact import Redaction
from .exceptions import SpanRejected, StoreError
from .store.base import Store

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


class _Problems:
    """Count and log without flooding: the first failure and then every 100th."""

    def __init__(self, stats: BridgeStats) -> None:
        self.stats = stats
        self._lock = threading.Lock()
        self._unsaved: dict[str, int] = {}

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
        unsaved = self.take_unsaved()
        try:
            with _Suppressed():
                store.write_records(records, counters=unsaved, parents=parents)
        except BaseException:
            self.give_back(unsaved)
            raise

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


def is_bug(error: BaseException) -> bool:
    """Whether an exception the OTel path swallows is a bug: neither a store failure nor
    a rejected span."""
    return not isinstance(error, StoreError | SpanRejected)


def report_bug(what: str, error: BaseException, total: int) -> None:
    """Log a bug with its traceback, where the OTel path must not raise; re-raise it
    instead when `DAGTRACE_STRICT` is set (dagtrace's tests), so it fails a test rather
    than passing for a store failure. Call it in the `except` block."""
    _log.error("dagtrace: bug while %s (%d so far; please report it)", what, total, exc_info=error)
    if settings.strict():
        raise error


def record_from_sdk_span(
    span: ReadableSpan, *, ended: bool, attributes: dict[str, Any] | None = None
) -> SpanRecord | None:
    """The shared mapping, fed from an SDK span (at start or at end); `attributes`:
    the span's, already copied by `_plain`."""
    if attributes is None:
        if not is_dag_span(span.attributes):
            return None
        attributes = _plain(span)
    elif not is_dag_span(attributes):
        return None
    ctx = span.get_span_context()
    parent = span.parent
    status = span.status
    run_span = attributes.get(c.KIND) == c.KIND_RUN
    return record_from_parts(
        attributes=attributes,
        events=[SpanEvent(e.name, e.timestamp, e.attributes or _NO_ATTRIBUTES) for e in span.events]
        if ended
        else (),
        error_status=status.status_code is StatusCode.ERROR,
        status_description=status.description,
        trace_id=format_trace_id(ctx.trace_id) if ctx else None,
        span_id=format_span_id(ctx.span_id) if ctx else None,
        parent_span_id=format_span_id(parent.span_id) if parent else None,
        start_ns=span.start_time or time.time_ns(),
        end_ns=span.end_time,
        ended=ended,
        dropped_events=span.dropped_events if ended else 0,
        # Links only ever lead a sub-DAG run to its composite node.
        link_span_ids=[format_span_id(link.context.span_id) for link in span.links]
        if run_span
        else (),
    )


_NO_ATTRIBUTES: dict[str, Any] = {}


def _plain(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes as a plain dict, copied once: reading the SDK's locked
    BoundedAttributes key by key costs more than the rest of the mapping. Uses its
    inner dict when it has one (SDK 1.x), the public mapping otherwise."""
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    return dict(inner) if isinstance(inner, dict) else dict(span.attributes or {})


def _for_otlp_backends(attributes: dict[str, Any]) -> bool:
    """Start markers and heartbeat spans: the live processor sees starts and beats itself."""
    return attributes.get(c.START_MARKER) is True or attributes.get(c.HEARTBEAT) is True


def _map(
    span: ReadableSpan,
    *,
    ended: bool,
    problems: _Problems,
    parents: ParentFacts | None = None,
    resolver: ParentResolver | None = None,
    policy: Redaction | None = None,
    attributes: dict[str, Any] | None = None,
) -> SpanRecord | None:
    """Map one SDK span; what it tells about sub-run parents goes to `parents` (for the
    store's search), through `resolver` first when there is one (the live processor's
    spans in memory: only the parents found there and, at the end of a run span, where
    its search is left go to the store)."""
    try:
        mapped = record_from_sdk_span(span, ended=ended, attributes=attributes)
    except SpanRejected as e:
        problems.rejected(e)
        return None
    if mapped is None:
        ctx, parent = span.get_span_context(), span.parent
        if ctx is not None:
            span_id = format_span_id(ctx.span_id)
            parent_id = format_span_id(parent.span_id) if parent is not None else None
            if resolver is not None:
                if parent_id is not None:
                    resolver.saw_other(span_id, parent_id)
            elif parents is not None:
                parents.saw_other(span_id, parent_id, format_trace_id(ctx.trace_id))
        problems.count("spans_ignored")
        return None
    record = mapped
    if policy is not None:
        policy.apply_to_record(record)
    link_traces = (
        [format_trace_id(link.context.trace_id) for link in span.links]
        if record.kind == c.KIND_RUN
        else ()
    )
    if resolver is not None:
        if record.kind == c.KIND_NODE and record.span_id and record.label:
            resolver.saw_node(record.span_id, record.run_id, record.label)
        resolver.resolve(
            record,
            parents if parents is not None else ParentFacts(),
            link_traces,
            keep_searching=ended,
        )
    elif parents is not None:
        parents.saw_record(record, link_traces)
    if record.dropped_events:
        problems.count("spans_with_dropped_events")
        _log.warning(
            "dagtrace: node %r of run %s dropped %d events: put several downstream labels in "
            "one dag.edge event, or raise OTEL_SPAN_EVENT_COUNT_LIMIT",
            record.label,
            record.run_id,
            record.dropped_events,
        )
    return record


_SUPPRESSING = otel_context.set_value(
    otel_context._SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context()
)
"""The context the store's own I/O runs in: no span is current, instrumentation off."""


class _Suppressed:
    """Run the store's own I/O with instrumentation suppressed: it must make no spans."""

    def __enter__(self) -> None:
        self._token = otel_context.attach(_SUPPRESSING)

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._token)


class LiveSpanProcessor(SpanProcessor):
    """Records DAG spans as they start and end, into `store`; never raises.

    A run start is committed at once (a killed runner leaves its run `running`).
    A node start is only remembered: it is written with the next transaction, a
    read in this process, or within 50 ms, if the node is still running then; a
    node that ends first costs one commit (its end), not two.
    """

    def __init__(
        self,
        store: Store,
        *,
        owns_store: bool = False,
        heartbeat_interval: float = 30.0,
        store_policy: Redaction | None = None,
    ) -> None:
        """`heartbeat_interval`: seconds between two heartbeats of the runs open in this
        process (`dagtrace dead` finds runs whose heartbeats stopped). `store_policy`:
        redact or cap what is stored too (changed outputs are then not reusable)."""
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        self.store = store
        self.stats = BridgeStats()
        self._problems = _Problems(self.stats)
        self._resolver = ParentResolver()
        self._owns_store = owns_store
        self._shut_down = False
        self._started: dict[int, ReadableSpan] = {}
        self._started_lock = threading.Lock()
        self._open_runs: dict[int, str] = {}
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat: threading.Thread | None = None
        self._policy = store_policy
        self._stopping = threading.Event()
        store.add_pending_source(self)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            if self._shut_down:
                return
            attributes = _plain(span)
            kind = attributes.get(c.KIND)
            if kind != c.KIND_NODE and kind != c.KIND_RUN:
                _map(span, ended=False, resolver=self._resolver, problems=self._problems)
            elif _for_otlp_backends(attributes):
                return
            elif kind == c.KIND_NODE:
                with self._started_lock:  # written lazily: most nodes end first
                    was_idle = not self._started
                    self._started[span.get_span_context().span_id] = span
                if was_idle:
                    self.store.wake_flusher()
            else:
                parents = ParentFacts()
                record = self._record(span, ended=False, attributes=attributes, parents=parents)
                if record is not None:
                    self._write_or_keep(record, "recording a run start", parents)
                    self._open_runs[span.get_span_context().span_id] = record.run_id
                    self._start_heartbeat()
        except Exception as e:  # noqa: BLE001 - never into the traced program
            self._problems.failure("recording a span start", e)

    def _record(
        self,
        span: ReadableSpan,
        *,
        ended: bool,
        attributes: dict[str, Any] | None = None,
        parents: ParentFacts | None = None,
    ) -> SpanRecord | None:
        return _map(
            span,
            ended=ended,
            resolver=self._resolver,
            parents=parents,
            problems=self._problems,
            policy=self._policy,
            attributes=attributes,
        )

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(
                target=self._beat, name="dagtrace-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def _beat(self) -> None:
        """While runs are open here, say every `heartbeat_interval` that their runner lives."""
        while not self._stopping.wait(self._heartbeat_interval):  # a period, not a handshake
            run_ids = set(self._open_runs.values())
            if not run_ids:
                continue
            now = time.time()
            beats = [
                SpanRecord(
                    kind=c.KIND_RUN,
                    run_id=r,
                    attempt=1,
                    phase=0,
                    status="running",
                    started_at=now,
                    finished_at=None,
                    trace_id=None,
                    span_id=None,
                    parent_span_id=None,
                    heartbeat=True,
                )
                for r in sorted(run_ids)
            ]
            try:
                self._problems.write(self.store, beats)
            except Exception as e:  # noqa: BLE001 - the next beat tries again
                self._problems.failure("writing heartbeats", e)

    def has_pending(self) -> bool:
        return bool(self._started)

    def take_pending(self) -> list[SpanRecord]:
        """Start records of the node spans still open (the store calls this)."""
        with self._started_lock:
            spans = list(self._started.values())
            self._started.clear()
        records = []
        for span in spans:
            record = self._record(span, ended=False)
            if record is not None:
                records.append(record)
        return records

    def _write_or_keep(
        self, record: SpanRecord, what: str, parents: ParentFacts | None = None
    ) -> None:
        try:
            self._problems.write(self.store, [record], parents or None)
        except StoreError as e:
            self._problems.failure(what, e)
            inferred = parents.inferred.get(record.run_id) if parents else None
            if inferred and record.parent_run_id is None:  # kept with the record itself
                record.parent_run_id, record.parent_node = (
                    inferred[1],
                    record.parent_node or inferred[2],
                )
            self.store.defer_records([record])  # retried with the next write

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self._shut_down:
                return
            attributes = _plain(span)
            if _for_otlp_backends(attributes):
                return
            ctx = span.get_span_context()
            span_id = ctx.span_id if ctx is not None else 0
            if self._started:
                with self._started_lock:
                    self._started.pop(span_id, None)
            if self._open_runs:
                self._open_runs.pop(span_id, None)
            parents = ParentFacts()
            record = self._record(span, ended=True, attributes=attributes, parents=parents)
            if record is not None:
                self._write_or_keep(record, "recording a span end", parents)
                self._problems.count("spans_stored")
        except Exception as e:  # noqa: BLE001 - never into the traced program
            self._problems.failure("recording a span end", e)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self._problems.write(self.store, [])  # deferred starts and unsaved counters
            return True
        except Exception as e:  # noqa: BLE001
            self._problems.failure("flushing", e)
            return False

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._stopping.set()
        self.force_flush()
        self._shut_down = True
        if self._owns_store:
            self.store.close()


class DagtraceSpanExporter(SpanExporter):
    """Writes each batch of ended DAG spans in one transaction; never raises.

    With no argument (as `OTEL_TRACES_EXPORTER=dagtrace` builds it) the store is
    `DAGTRACE_DB`, else `./dagtrace.db`.
    """

    def __init__(self, store: Store | str | os.PathLike[str] | None = None) -> None:
        from .store import open_store

        if isinstance(store, Store):
            self.store, self._owns_store = store, False
        else:
            target = store if store is not None else settings.db_location()
            self.store, self._owns_store = open_store(target), True
        self.stats = BridgeStats()
        self._problems = _Problems(self.stats)
        self._shut_down = False
        self._lock = threading.Lock()

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
                if (r := _map(s, ended=True, parents=parents, problems=self._problems))
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
