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
nest under it. Runners whose calls do not nest (lythonic's provenance calls)
use `start_run` / `start_node` and the handles' `finish` / `fail` instead.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, TraceFlags

from . import conventions as c
from ._fork import new_lock_in_forked_child, reset_in_forked_child
from ._handles import NodeHandle, RunHandle, fail_span
from ._mapping import payload_attributes
from ._models import safe_json_dumps
from .store import ReplayPlan

_INSTRUMENTATION_NAME = "dagtrace"


class DagTracer:
    """Emits run and node spans by the conventions, with start markers for OTLP-only backends."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        start_markers: bool | None = None,
        heartbeat_interval: float = 30.0,
    ) -> None:
        """`start_markers`: None asks the provider (`configure()` knows whether spans
        leave the process); any other provider gets them. With start markers, open
        runs also send a `dag.heartbeat` span every `heartbeat_interval` seconds (the
        live processor beats for them otherwise)."""
        provider = tracer_provider or trace.get_tracer_provider()
        from . import __version__

        self._tracer = provider.get_tracer(_INSTRUMENTATION_NAME, __version__)
        if start_markers is None:
            start_markers = getattr(provider, "start_markers", True)
        self.start_markers = start_markers
        self._heartbeat_interval = heartbeat_interval
        self._open_runs: dict[str, RunHandle] = {}
        self._heartbeat: threading.Thread | None = None
        self._heartbeat_lock = threading.Lock()
        reset_in_forked_child(self)

    def after_fork_in_child(self) -> None:
        """A forked child sends heartbeat spans for the runs it opens, from a thread of
        its own (its parent's does not run in it; the lock may have been held by it)."""
        self._heartbeat, self._heartbeat_lock, self._open_runs = None, threading.Lock(), {}

    # -- start / finish, for runners whose calls do not nest -----------------------------

    def start_run(
        self,
        nsref: str,
        *,
        run_id: str | None = None,
        inputs: Any = None,
        inputs_json: str | None = None,
        attempt: int = 1,
        initiator: str | None = None,
        replay_of: str | None = None,
        replay_root: str | None = None,
        links: Sequence[SpanContext] = (),
        parent: NodeHandle | None = None,
        parent_run_id: str | None = None,
        parent_node: str | None = None,
    ) -> RunHandle:
        """Start a run span. A sub-DAG run names its composite node: `parent` (its open
        handle, which also makes it the OTel parent) or `parent_run_id` + `parent_node`."""
        run_id = run_id or str(uuid.uuid4())
        if inputs_json is None:
            inputs_json = safe_json_dumps(inputs if inputs is not None else {})
        attributes: dict[str, Any] = {
            c.KIND: c.KIND_RUN,
            c.RUN_ID: run_id,
            c.NSREF: nsref,
            c.ATTEMPT: attempt,
            **payload_attributes(c.RUN_INPUTS, inputs_json),
        }
        if parent is not None:
            parent_run_id, parent_node = parent.run.run_id, parent.label
        optional = {
            c.INITIATOR: initiator,
            c.REPLAY_OF: replay_of,
            c.REPLAY_ROOT: replay_root,
            c.PARENT_RUN_ID: parent_run_id,
            c.PARENT_NODE: parent_node,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        span = self._tracer.start_span(
            c.RUN_SPAN_NAME,
            context=trace.set_span_in_context(parent.span) if parent is not None else None,
            attributes=attributes,
            links=[Link(link) for link in links],
        )
        self._mark_start(span, attributes)
        handle = RunHandle(self, run_id, nsref, attempt, span)
        if self.start_markers and span.is_recording():
            self._open_runs[run_id] = handle
            self._start_heartbeat()
        return handle

    def _closed(self, run: RunHandle) -> None:
        self._open_runs.pop(run.run_id, None)

    def _start_heartbeat(self) -> None:
        with self._heartbeat_lock:
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(
                    target=self._beat, name="dagtrace-heartbeat", daemon=True
                )
                self._heartbeat.start()

    def _beat(self) -> None:
        """Heartbeat spans for the open runs, for backends that only see ended spans;
        the thread ends once no run is open (the next run starts another)."""
        while True:
            time.sleep(self._heartbeat_interval)  # a period, not a handshake
            with self._heartbeat_lock:
                if not self._open_runs:
                    self._heartbeat = None
                    return
            for run in list(self._open_runs.values()):
                now = time.time_ns()
                beat = self._tracer.start_span(
                    c.HEARTBEAT_SPAN_NAME,
                    context=trace.set_span_in_context(run.span),
                    attributes={
                        c.KIND: c.KIND_RUN,
                        c.RUN_ID: run.run_id,
                        c.ATTEMPT: run.attempt,
                        c.HEARTBEAT: True,
                    },
                    start_time=now,
                )
                beat.end(end_time=now)

    def start_node(
        self,
        run: RunHandle,
        label: str,
        *,
        input: Any = None,
        input_json: str | None = None,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> NodeHandle:
        """Start a node span under `run` (explicitly: whatever span is current)."""
        if input_json is None:
            input_json = safe_json_dumps(input if input is not None else {})
        attributes: dict[str, Any] = {
            c.KIND: c.KIND_NODE,
            c.RUN_ID: run.run_id,
            c.NODE_LABEL: label,
            **payload_attributes(c.NODE_INPUT, input_json),
        }
        # Attributes at their conventional default are left out: each costs the SDK
        # a validation per span.
        if run.attempt != 1:
            attributes[c.ATTEMPT] = run.attempt
        if is_source:
            attributes[c.IS_SOURCE] = True
        if is_sink:
            attributes[c.IS_SINK] = True
        span = self._tracer.start_span(
            c.NODE_SPAN_NAME_PREFIX + label,
            context=trace.set_span_in_context(run.span),
            attributes=attributes,
        )
        self._mark_start(span, attributes)
        return NodeHandle(self, run, label, span)

    def skipped_node(
        self, run: RunHandle, label: str, output_json: str, *, links: Sequence[SpanContext] = ()
    ) -> None:
        """A zero-length node span `skipped` with a copied output (replay)."""
        now = time.time_ns()
        span = self._tracer.start_span(
            c.NODE_SPAN_NAME_PREFIX + label,
            context=trace.set_span_in_context(run.span),
            attributes={
                c.KIND: c.KIND_NODE,
                c.RUN_ID: run.run_id,
                c.NODE_LABEL: label,
                c.ATTEMPT: run.attempt,
                c.STATUS: "skipped",
                **payload_attributes(c.NODE_OUTPUT, output_json),
            },
            links=[Link(link) for link in links],
            start_time=now,
        )
        span.end(end_time=now)

    def change(
        self,
        run: RunHandle,
        status: str,
        *,
        label: str | None = None,
        finish: bool = False,
        payload_json: str | None = None,
        error: str | None = None,
        edges: Sequence[str] = (),
    ) -> None:
        """Change an existing run (or its node `label`) that this process may not hold
        open: a zero-length `dag.change` span, child of `run`'s span (a stored span
        context will do), that sets the status, and with `finish` also finished_at and
        the sink outputs (`payload_json`), or a node's output (`payload_json`) or
        `error` (docs/conventions.md, "Changing a run or node")."""
        now = write_time_ns()
        attributes: dict[str, Any] = {
            c.KIND: c.KIND_RUN if label is None else c.KIND_NODE,
            c.RUN_ID: run.run_id,
            c.ATTEMPT: run.attempt,
            c.STATUS: status,
            c.CHANGE: c.CHANGE_FINISH if finish else c.CHANGE_STATUS,
        }
        if label is None:
            attributes[c.NSREF] = run.nsref
        else:
            attributes[c.NODE_LABEL] = label
        if payload_json is not None:
            key = c.RUN_OUTPUTS if label is None else c.NODE_OUTPUT
            attributes.update(payload_attributes(key, payload_json))
        span = self._tracer.start_span(
            c.CHANGE_SPAN_NAME,
            context=trace.set_span_in_context(run.span),
            attributes=attributes,
            start_time=now,
        )
        if edges:
            span.add_event(c.EDGE_EVENT, {c.EDGE_DOWNSTREAM: list(edges)}, timestamp=now)
        if error is not None:
            fail_span(span, error)
        span.end(end_time=now)

    # -- context managers --------------------------------------------------------------

    run = start_run
    """`with dag.run(nsref, ...) as run:` (keywords as `start_run`): the run span is
    current inside the block; an exception ends it `failed`, `DagPaused` `paused`."""
    node = start_node
    """`with dag.node(run, label, ...) as node:` (keywords as `start_node`): likewise."""

    @contextmanager
    def replay(
        self, plan: ReplayPlan, *, run_id: str | None = None, initiator: str | None = None
    ) -> Iterator[RunHandle]:
        """A new run replaying `plan.replay_of`: the reused nodes are recorded as skipped
        (copied output, linked to the original span); execute `plan.rerun` and every
        other node not in `plan.reuse` inside the block."""
        with self.run(
            plan.dag_nsref,
            run_id=run_id,
            inputs_json=plan.source_inputs_json or "{}",
            initiator=initiator,
            replay_of=plan.replay_of,
            replay_root=plan.replay_root,
        ) as run:
            for label, output_json in plan.reuse.items():
                self.skipped_node(run, label, output_json, links=plan_links(plan, label))
            yield run

    def _mark_start(self, span: Span, attributes: dict[str, Any]) -> None:
        """A zero-length child span saying the run or node has started (for OTLP backends)."""
        if not self.start_markers or not span.is_recording():
            return
        started = getattr(span, "start_time", None) or time.time_ns()
        marker = self._tracer.start_span(
            c.START_MARKER_SPAN_NAME,
            context=trace.set_span_in_context(span),
            attributes={**attributes, c.START_MARKER: True},
            start_time=started,
        )
        marker.end(end_time=started)


_last_write_ns = 0
_write_clock_lock = threading.Lock()
new_lock_in_forked_child(sys.modules[__name__], "_write_clock_lock")


def write_time_ns() -> int:
    """Now in ns, after every earlier call in this process: two writes made one after
    the other keep their order even if the wall clock steps back or repeats."""
    global _last_write_ns
    with _write_clock_lock:
        _last_write_ns = max(time.time_ns(), _last_write_ns + 1)
        return _last_write_ns


def plan_links(plan: ReplayPlan, label: str) -> list[SpanContext]:
    """A link to the replayed run's span of `label`, if the store knows it."""
    original = plan.node_spans.get(label)
    return [span_context(*original)] if original else []


def span_context(trace_id: str, span_id: str) -> SpanContext:
    """A remote span context from stored hex ids, for links to earlier spans."""
    return SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(1)
    )
