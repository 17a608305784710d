"""Helpers that emit spans following `docs/conventions.md`, with any TracerProvider.

    dag = DagTracer(provider)
    with dag.run("etl", inputs={"fetch": {"url": u}}) as run:
        with run.node("fetch", input={"url": u}, is_source=True) as node:
            node.set_output(data)
            node.edge("parse")
        with run.node("chunks", input=data) as composite:
            for i, part in enumerate(parts):
                with composite.sub_run(f"chunks[{i}]", inputs=part) as sub:
                    ...

Parentage comes from the handles, never from whatever span is current, so
nodes may run on worker threads or in concurrent asyncio tasks. Inside a
`with`, the node's span is current, so the spans a node makes (an HTTP call)
nest under it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode

from . import conventions as c
from ._mapping import payload_attributes
from ._models import safe_json_dumps

_INSTRUMENTATION_NAME = "dagtrace"


class DagPaused(Exception):
    """Raise inside a `run` block to end the run as `paused` (restartable)."""


class NodeHandle:
    """An executing node: set its output, record edges, start sub-DAG runs under it."""

    def __init__(self, tracer: DagTracer, run: RunHandle, label: str, span: Span) -> None:
        self._tracer, self.run, self.label, self.span = tracer, run, label, span

    def set_output(self, output: Any) -> None:
        self.span.set_attributes(payload_attributes(c.NODE_OUTPUT, safe_json_dumps(output)))

    def edge(self, *downstream: str) -> None:
        """Record traversals to `downstream` labels now, as one `dag.edge` event."""
        if downstream:
            self.span.add_event(c.EDGE_EVENT, {c.EDGE_DOWNSTREAM: list(downstream)})

    def sub_run(self, expansion_key: str, **kwargs: Any) -> Any:
        """A sub-DAG run of this composite node; `expansion_key` as `label[key]` or `label[]`."""
        return self._tracer.run(
            f"{self.run.nsref}/{expansion_key}", _parent=self, **kwargs
        )


class RunHandle:
    """An executing run: start nodes, set the sink outputs, pause."""

    def __init__(self, tracer: DagTracer, run_id: str, nsref: str, attempt: int, span: Span):
        self._tracer, self.run_id, self.nsref, self.attempt, self.span = (
            tracer, run_id, nsref, attempt, span,
        )

    @property
    def trace_id(self) -> str:
        return trace.format_trace_id(self.span.get_span_context().trace_id)

    def node(self, label: str, **kwargs: Any) -> Any:
        return self._tracer.node(self, label, **kwargs)

    def set_outputs(self, outputs: Any) -> None:
        self.span.set_attributes(payload_attributes(c.RUN_OUTPUTS, safe_json_dumps(outputs)))

    def skip_node(self, label: str, output: Any, *, links: Sequence[SpanContext] = ()) -> None:
        """Record `label` as skipped with a copied output (replay), linked to the original."""
        self._tracer.skipped_node(self, label, output, links=links)


class DagTracer:
    """Emits run and node spans by the conventions, with start markers for OTLP-only backends."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        start_markers: bool | None = None,
    ) -> None:
        """`start_markers`: None asks the provider (`configure()` knows whether spans
        leave the process); any other provider gets them."""
        provider = tracer_provider or trace.get_tracer_provider()
        from . import __version__

        self._tracer = provider.get_tracer(_INSTRUMENTATION_NAME, __version__)
        if start_markers is None:
            start_markers = getattr(provider, "start_markers", True)
        self.start_markers = start_markers

    @contextmanager
    def run(
        self,
        nsref: str,
        *,
        run_id: str | None = None,
        inputs: Any = None,
        attempt: int = 1,
        initiator: str | None = None,
        replay_of: str | None = None,
        replay_root: str | None = None,
        links: Sequence[SpanContext] = (),
        _parent: NodeHandle | None = None,
    ) -> Iterator[RunHandle]:
        """A run span; an exception ends it `failed`, `DagPaused` ends it `paused`."""
        run_id = run_id or str(uuid.uuid4())
        attributes: dict[str, Any] = {
            c.KIND: c.KIND_RUN, c.RUN_ID: run_id, c.NSREF: nsref, c.ATTEMPT: attempt,
            **payload_attributes(c.RUN_INPUTS, safe_json_dumps(inputs if inputs is not None else {})),
        }
        optional = {c.INITIATOR: initiator, c.REPLAY_OF: replay_of, c.REPLAY_ROOT: replay_root}
        attributes.update({k: v for k, v in optional.items() if v is not None})
        context = None
        if _parent is not None:
            attributes[c.PARENT_RUN_ID] = _parent.run.run_id
            attributes[c.PARENT_NODE] = _parent.label
            context = trace.set_span_in_context(_parent.span)
        span = self._tracer.start_span(
            c.RUN_SPAN_NAME, context=context, attributes=attributes,
            links=[Link(link) for link in links],
        )
        self._mark_start(span, attributes)
        handle = RunHandle(self, run_id, nsref, attempt, span)
        with trace.use_span(span, end_on_exit=False, record_exception=False,
                            set_status_on_exception=False):
            try:
                yield handle
            except DagPaused:
                span.set_attribute(c.STATUS, "paused")
            except BaseException as e:
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {e}"))
                span.end()
                raise
        span.end()

    @contextmanager
    def node(
        self,
        run: RunHandle,
        label: str,
        *,
        input: Any = None,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> Iterator[NodeHandle]:
        """A node span under `run`; an exception ends it `failed` with its stack trace."""
        attributes: dict[str, Any] = {
            c.KIND: c.KIND_NODE, c.RUN_ID: run.run_id, c.NODE_LABEL: label,
            c.ATTEMPT: run.attempt, c.IS_SOURCE: is_source, c.IS_SINK: is_sink,
            **payload_attributes(c.NODE_INPUT, safe_json_dumps(input if input is not None else {})),
        }
        span = self._tracer.start_span(
            c.NODE_SPAN_NAME_PREFIX + label,
            context=trace.set_span_in_context(run.span),
            attributes=attributes,
        )
        self._mark_start(span, attributes)
        with trace.use_span(span, end_on_exit=False, record_exception=False,
                            set_status_on_exception=False):
            try:
                yield NodeHandle(self, run, label, span)
            except BaseException as e:
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {e}"))
                span.end()
                raise
        span.end()

    def skipped_node(
        self, run: RunHandle, label: str, output: Any, *, links: Sequence[SpanContext] = ()
    ) -> None:
        now = time.time_ns()
        span = self._tracer.start_span(
            c.NODE_SPAN_NAME_PREFIX + label,
            context=trace.set_span_in_context(run.span),
            attributes={
                c.KIND: c.KIND_NODE, c.RUN_ID: run.run_id, c.NODE_LABEL: label,
                c.ATTEMPT: run.attempt, c.STATUS: "skipped",
                **payload_attributes(c.NODE_OUTPUT, safe_json_dumps(output)),
            },
            links=[Link(link) for link in links],
            start_time=now,
        )
        span.end(end_time=now)

    def _mark_start(self, span: Span, attributes: dict[str, Any]) -> None:
        """A zero-length child span saying the run or node has started (for OTLP backends)."""
        if not self.start_markers or not span.is_recording():
            return
        started = getattr(span, "start_time", None) or time.time_ns()
        marker = self._tracer.start_span(
            c.START_MARKER_SPAN_NAME, context=trace.set_span_in_context(span),
            attributes={**attributes, c.START_MARKER: True}, start_time=started,
        )
        marker.end(end_time=started)
