"""SDK spans to span records: the shared mapping (`_mapping`) fed from an SDK span."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

from .. import conventions as c
from .._mapping import SpanEvent, SpanRecord, is_dag_span, record_from_parts
from .._parents import ParentFacts, ParentResolver
from .._redact import Redaction
from ..exceptions import SpanRejected
from .problems import Problems

_log = logging.getLogger(__name__)


def record_from_sdk_span(
    span: ReadableSpan, *, ended: bool, attributes: dict[str, Any] | None = None
) -> SpanRecord | None:
    """The shared mapping, fed from an SDK span (at start or at end); `attributes`:
    the span's, already copied by `plain_attributes`."""
    if attributes is None:
        if not is_dag_span(span.attributes):
            return None
        attributes = plain_attributes(span)
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


def plain_attributes(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes as a plain dict, copied once: reading the SDK's locked
    BoundedAttributes key by key costs more than the rest of the mapping."""
    return dict(attributes_now(span))


def attributes_now(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes to read at once and not keep (a started span may still
    change them): the SDK's inner dict when it has one (SDK 1.x), the public mapping
    otherwise."""
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    return inner if isinstance(inner, dict) else (span.attributes or _NO_ATTRIBUTES)


def for_otlp_backends_only(attributes: Mapping[str, Any]) -> bool:
    """Start markers and heartbeat spans: the live processor sees starts and beats itself."""
    return attributes.get(c.START_MARKER) is True or attributes.get(c.HEARTBEAT) is True


def map_span(
    span: ReadableSpan,
    *,
    ended: bool,
    problems: Problems,
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
        if record.kind == c.KIND_NODE:
            if record.span_id and record.label:
                resolver.saw_node(record.span_id, record.run_id, record.label)
        else:
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
