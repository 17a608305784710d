"""The handles `DagTracer` gives out: a run or node being executed, and the `with`
scope that makes its span current and ends it (`failed` on an exception)."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import Token
from typing import TYPE_CHECKING, Any, Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, Status, StatusCode

from . import conventions as c
from ._mapping import payload_attributes
from ._models import safe_json_dumps
from .exceptions import DagPaused

if TYPE_CHECKING:
    from ._instrument import DagTracer


def fail_span(span: Span, error: BaseException | str) -> None:
    """ERROR status, an `exception` event, and the stack trace as `dag.error` with its
    `.length`: the stored error is `dag.error` when it arrives whole, else what the
    event says (led by `{type}: {message}` when the attribute length limit cut it)."""
    if isinstance(error, BaseException):
        import traceback  # only on failures

        span.record_exception(error)
        span.set_attributes(payload_attributes(c.ERROR, "".join(traceback.format_exception(error))))
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        return
    span.set_attributes(payload_attributes(c.ERROR, error))
    lines = [line for line in error.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "error"
    kind, _, message = last.partition(": ")
    span.add_event(
        c.EXCEPTION_EVENT,
        {
            c.EXCEPTION_TYPE: kind,
            c.EXCEPTION_MESSAGE: message or last,
            c.EXCEPTION_STACKTRACE: error,
        },
    )
    span.set_status(Status(StatusCode.ERROR, last))


class _Scoped:
    """A handle is its own `with` block: its span is current inside it (as
    `trace.use_span`, without its two generator frames per node); the block's exception
    ends it `failed`, `DagPaused` ends a run `paused`."""

    span: Span
    _token: Token[Context]

    def finish(self, *, status: str | None = None) -> None:
        raise NotImplementedError

    def fail(self, error: BaseException | str) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        otel_context.detach(self._token)
        if error is None:
            self.finish()
        elif isinstance(error, DagPaused) and isinstance(self, RunHandle):
            self.finish(status="paused")
            return True  # a paused run leaves its block quietly
        else:
            self.fail(error)
        return False


class NodeHandle(_Scoped):
    """An executing node: set its output, record edges, start sub-DAG runs under it."""

    def __init__(self, tracer: DagTracer, run: RunHandle, label: str, span: Span) -> None:
        self._tracer, self.run, self.label, self.span = tracer, run, label, span

    def set_output(self, output: Any) -> None:
        self.set_output_json(safe_json_dumps(output))

    def set_output_json(self, output_json: str) -> None:
        self.span.set_attributes(payload_attributes(c.NODE_OUTPUT, output_json))

    def edge(self, *downstream: str) -> None:
        """Record traversals to `downstream` labels now, as one `dag.edge` event."""
        if len(downstream) == 1:  # a string is cheaper for the SDK to check than an array
            self.span.add_event(c.EDGE_EVENT, {c.EDGE_DOWNSTREAM: downstream[0]})
        elif downstream:
            self.span.add_event(c.EDGE_EVENT, {c.EDGE_DOWNSTREAM: list(downstream)})

    def sub_run(
        self,
        expansion_key: str,
        *,
        run_id: str | None = None,
        inputs: Any = None,
        inputs_json: str | None = None,
        attempt: int = 1,
        initiator: str | None = None,
    ) -> RunHandle:
        """`with node.sub_run("chunk[0]", inputs=...) as sub:` a sub-DAG run of this
        composite node; `expansion_key` as `label[key]` or `label[]`."""
        return self._tracer.start_run(
            f"{self.run.nsref}/{expansion_key}",
            parent=self,
            run_id=run_id,
            inputs=inputs,
            inputs_json=inputs_json,
            attempt=attempt,
            initiator=initiator,
        )

    def finish(self, *, status: str | None = None) -> None:
        """End the node span: `completed`, or an explicit status (`running` when a pause
        cut the node short: a restart executes it again)."""
        if status is not None:
            self.span.set_attribute(c.STATUS, status)
        self.span.end()

    def fail(self, error: BaseException | str) -> None:
        """End the node span as failed; `error` is an exception or a formatted traceback."""
        fail_span(self.span, error)
        self.span.end()


class RunHandle(_Scoped):
    """An executing run: start nodes, set the sink outputs, finish or fail."""

    def __init__(self, tracer: DagTracer, run_id: str, nsref: str, attempt: int, span: Span):
        self._tracer, self.run_id, self.nsref, self.attempt, self.span = (
            tracer,
            run_id,
            nsref,
            attempt,
            span,
        )

    @property
    def trace_id(self) -> str:
        return trace.format_trace_id(self.span.get_span_context().trace_id)

    def node(
        self,
        label: str,
        *,
        input: Any = None,
        input_json: str | None = None,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> NodeHandle:
        """`with run.node(label, input=..., is_source=..., is_sink=...) as node:`"""
        return self._tracer.start_node(
            self, label, input=input, input_json=input_json, is_source=is_source, is_sink=is_sink
        )

    def set_outputs(self, outputs: Any) -> None:
        self.set_outputs_json(safe_json_dumps(outputs))

    def set_outputs_json(self, outputs_json: str) -> None:
        self.span.set_attributes(payload_attributes(c.RUN_OUTPUTS, outputs_json))

    def skip_node(self, label: str, output: Any, *, links: Sequence[SpanContext] = ()) -> None:
        """Record `label` as skipped with a copied output (replay), linked to the original."""
        self._tracer.skipped_node(self, label, safe_json_dumps(output), links=links)

    def finish(self, *, status: str | None = None) -> None:
        """End the run span: `completed`, or an explicit status such as `paused`."""
        if status is not None:
            self.span.set_attribute(c.STATUS, status)
        self._tracer._closed(self)
        self.span.end()

    def fail(self, error: BaseException | str) -> None:
        fail_span(self.span, error)
        self._tracer._closed(self)
        self.span.end()
