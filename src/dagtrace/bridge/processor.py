"""`LiveSpanProcessor`: records a run or node when its span starts (deferred: in the
store within 50 ms, at once for reads in this process) and commits it before
`span.end()` returns."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .. import conventions as c
from .._fork import reset_in_forked_child
from .._mapping import SpanRecord
from .._parents import ParentFacts, ParentResolver
from .._redact import Redaction
from ..exceptions import StoreError
from ..store.base import Store
from .problems import BridgeStats, Problems
from .spans import attributes_now, for_otlp_backends_only, map_span, plain_attributes

_log = logging.getLogger(__name__)


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
        self._problems = Problems(self.stats)
        self._resolver = ParentResolver()
        self._owns_store = owns_store
        self._shut_down = False
        self._started: dict[int, ReadableSpan] = {}
        self._open_runs: dict[int, str] = {}
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat: threading.Thread | None = None
        self._policy = store_policy
        self._stopping = threading.Event()
        store.add_pending_source(self)
        reset_in_forked_child(self)

    def after_fork_in_child(self) -> None:
        """The parent's heartbeat thread does not run here, and the runs it beats for
        and the node starts it keeps are the parent's (it writes them): a forked child
        beats for the runs it opens, in a thread of its own, and keeps its own starts."""
        self._heartbeat, self._stopping, self._open_runs = None, threading.Event(), {}
        self._started = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            if self._shut_down:
                return
            now = attributes_now(span)
            kind = now.get(c.KIND)
            if kind != c.KIND_NODE and kind != c.KIND_RUN:
                map_span(span, ended=False, resolver=self._resolver, problems=self._problems)
            elif for_otlp_backends_only(now):
                return
            elif kind == c.KIND_NODE:
                # written lazily: most nodes end first
                self._started[span.get_span_context().span_id] = span
                self.store.wake_flusher()
            else:
                parents = ParentFacts()
                attributes = dict(now)
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
        return map_span(
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
        started, spans = self._started, []
        while started:  # one atomic dict operation at a time: a start takes no lock
            try:
                spans.append(started.popitem()[1])
            except KeyError:  # emptied meanwhile (an end, or another thread's take)
                break
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
            attributes = plain_attributes(span)
            if for_otlp_backends_only(attributes):
                return
            ctx = span.get_span_context()
            span_id = ctx.span_id if ctx is not None else 0
            if self._started:
                self._started.pop(span_id, None)
            if self._open_runs:
                self._open_runs.pop(span_id, None)
            # only a run span can tell a sub-run's parent: a node's end allocates no facts
            parents = ParentFacts() if attributes.get(c.KIND) == c.KIND_RUN else None
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
