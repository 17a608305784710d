"""`TracedProvenance`: hand it to lythonic's `DagRunner(dag, provenance=...)`.

Every write lythonic makes becomes OpenTelemetry spans following
`docs/conventions.md` (a run shows in Jaeger as one trace, sub-DAG runs nested
under their composite nodes); every read comes from the store, with the exact
shapes lythonic expects. Install with `pip install 'dagtrace[lythonic]'`.

    from lythonic.compose.dag_runner import DagRunner
    from dagtrace.lythonic import TracedProvenance

    provenance = TracedProvenance("runs.db")
    result = await DagRunner(dag, provenance=provenance).run(inputs, dag_nsref="etl")

    # a killed runner: close its run, then restart it as lythonic documents
    provenance.close_interrupted(run_id)
    await DagRunner(dag, provenance=provenance).restart(run_id)

    # lythonic's replay passes no old run id: say it, to record the lineage
    with provenance.replay_lineage(run_id):
        await DagRunner(dag, provenance=provenance).replay(run_id, {"publish"})

lythonic calls provenance from executor threads (no OTel context there) and from
the event loop; parentage comes from run ids and the composite node lythonic
names in each sub-DAG nsref, never from the current span.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan

from . import settings
from ._configure import configure
from ._fork import new_lock_in_forked_child
from ._handles import NodeHandle, RunHandle
from ._initiator import current_initiator
from ._instrument import DagTracer, plan_links, span_context
from ._mapping import NOT_FINISHED, check_edges, check_text
from ._models import safe_json_dumps
from ._provenance import ProvenanceReads
from .bridge import LiveSpanProcessor, is_bug, report_bug
from .records import EdgeRow
from .settings import DB_ENV, DEFAULT_DB  # noqa: F401  (this module's names before 0.1)
from .store import ReplayPlan, Store, open_store

_log = logging.getLogger(__name__)
_replaying: ContextVar[ReplayPlan | None] = ContextVar("dagtrace_replaying", default=None)


class TracedProvenance(ProvenanceReads):
    """lythonic's provenance API: writes become spans, reads come from the store.

    - `TracedProvenance(db_path)`: its own TracerProvider recording into that file
      (default `DAGTRACE_DB`, else `./dagtrace.db`).
    - `tracer_provider=`: use yours; a live processor for this store is added to it.
    - `forward=`: also send the spans to Jaeger / a Collector over OTLP.
    - `store=`: an open store (e.g. PostgreSQL) instead of `db_path`.
    Writes never raise into the runner: failures are logged and counted.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        forward: str | bool | None = None,
        store: Store | None = None,
    ) -> None:
        self._owns_store = store is None and tracer_provider is None
        self.store = store or open_store(settings.db_location(db_path))
        self._owns_provider = tracer_provider is None
        if tracer_provider is None:
            tracer_provider = configure(self.store, forward=forward)
        else:
            tracer_provider.add_span_processor(LiveSpanProcessor(self.store))
        self.tracer_provider = tracer_provider
        self._tracer = DagTracer(tracer_provider)
        self._runs: dict[str, RunHandle] = {}
        self._nodes: dict[tuple[str, str], NodeHandle] = {}
        self._edges: dict[str, set[tuple[str, str]]] = {}
        """Edges this instance recorded, per run: lythonic refuses a repeated edge."""
        self._lock = threading.Lock()
        new_lock_in_forked_child(self)
        self._bugs = 0

    def close(self) -> None:
        """Flush and, if it made them, shut its TracerProvider down and close its store
        (a provider you gave keeps writing to the store: close both yourself)."""
        if self._owns_provider:
            self.tracer_provider.shutdown()
        else:
            self.tracer_provider.force_flush()
        if self._owns_store:
            self.store.close()

    @contextmanager
    def replay_lineage(self, run_id: str) -> Iterator[None]:
        """Around `runner.replay(run_id, ...)`: the new run records which run it replays
        (and the root of the chain), and its skipped nodes link to the original spans."""
        token = _replaying.set(self.store.plan_replay(run_id))
        try:
            yield
        finally:
            _replaying.reset(token)

    # -- lythonic's writes, as spans ------------------------------------------------------
    # Each has the effect of lythonic's method of the same name, whatever instance or
    # process opened the run: on a run or node open here its own span carries the write;
    # otherwise a `dag.change` span under the stored span context does (no store read
    # on the first path, one on the second).

    def create_run(
        self,
        run_id: str,
        dag_nsref: str,
        source_inputs: dict[str, Any],
        parent_run_id: str | None = None,
        initiator: str | None = None,
    ) -> None:
        check_text(
            run_id=run_id, dag_nsref=dag_nsref, parent_run_id=parent_run_id, initiator=initiator
        )
        if run_id in self._runs or self.store.get_run(run_id) is not None:
            self._refuse(f"create_run: run {run_id!r} exists")
            return
        plan = _replaying.get() if parent_run_id is None else None
        parent, parent_node = self._composite_node(parent_run_id, dag_nsref)
        handle = self._tracer.start_run(
            dag_nsref,
            run_id=run_id,
            inputs_json=safe_json_dumps(source_inputs),
            initiator=initiator if initiator is not None else current_initiator(),
            replay_of=plan.replay_of if plan else None,
            replay_root=plan.replay_root if plan else None,
            parent=parent,
            parent_run_id=parent_run_id,
            parent_node=parent_node,
        )
        with self._lock:
            self._runs[run_id] = handle
            self._edges[run_id] = set()  # a new run: no edge anywhere yet

    def update_run_status(self, run_id: str, status: str) -> None:
        check_text(run_id=run_id, status=status)
        with self._lock:
            handle = self._runs.get(run_id)
        if status == "running" and handle is None:
            stored = self.store.get_run(run_id)
            if stored is not None and stored["status"] != "running":
                self._start_attempt(run_id)  # a restart: the next attempt of the run
                return
        if handle is not None and status == "paused":
            self._pop_run(run_id)
            self._cut_short_nodes(run_id)
            handle.finish(status=status)  # the runner stops here; its span ends
            return
        run = handle or self._stored_run(run_id, "update_run_status")
        if run is not None:
            self._tracer.change(run, status)

    def finish_run(self, run_id: str, status: str, sink_outputs_json: str | None = None) -> None:
        check_text(run_id=run_id, status=status, sink_outputs_json=sink_outputs_json)
        handle = self._pop_run(run_id)
        if handle is not None and status not in NOT_FINISHED:
            if sink_outputs_json is not None:
                handle.set_outputs_json(sink_outputs_json)
            handle.finish(status=status)
            return
        run = handle or self._stored_run(run_id, "finish_run")
        if run is not None:
            self._tracer.change(run, status, finish=True, payload_json=sink_outputs_json)
        if handle is not None:
            handle.finish(status=status)

    def record_node_start(
        self,
        run_id: str,
        node_label: str,
        input_json: str,
        is_source: bool = False,
        is_sink: bool = False,
    ) -> None:
        check_text(run_id=run_id, node_label=node_label, input_json=input_json)
        run = self._run(run_id, "record_node_start")
        if run is None:
            return
        node = self._tracer.start_node(
            run, node_label, input_json=input_json, is_source=is_source, is_sink=is_sink
        )
        with self._lock:
            self._nodes[(run_id, node_label)] = node

    def record_node_skipped(self, run_id: str, node_label: str, output_json: str) -> None:
        check_text(run_id=run_id, node_label=node_label, output_json=output_json)
        run = self._run(run_id, "record_node_skipped")
        if run is None:
            return
        plan = _replaying.get()
        links = plan_links(plan, node_label) if plan else []
        self._tracer.skipped_node(run, node_label, output_json, links=links)

    def complete_node_with_edges(
        self, run_id: str, node_label: str, output_json: str, edges: list[tuple[str, str]]
    ) -> None:
        check_text(run_id=run_id, node_label=node_label, output_json=output_json)
        check_edges(edges)
        downstream = [d for _, d in edges]
        seen = self._edges_of(run_id, node_label)
        with self._lock:
            repeated = len(set(edges)) < len(edges) or not seen.isdisjoint(edges)
            node = None if repeated else self._nodes.pop((run_id, node_label), None)
            if node is not None:
                seen.update(edges)
        if repeated:
            self._refuse(f"complete_node_with_edges: an edge of {node_label!r} repeats")
            return
        if node is not None:
            node.set_output_json(output_json)
            node.edge(*downstream)
            node.finish()
            return
        run = self._stored_node(run_id, node_label, "complete_node_with_edges")
        if run is None:
            return
        stored = {(e["upstream_label"], e["downstream_label"]) for e in run[1]}
        if stored.intersection(edges):
            self._refuse(f"complete_node_with_edges: an edge of {node_label!r} exists")
            return
        with self._lock:
            seen.update(edges)
        self._tracer.change(
            run[0],
            "completed",
            label=node_label,
            finish=True,
            payload_json=output_json,
            edges=downstream,
        )

    def fail_node_and_finish_run(self, run_id: str, node_label: str, error: str) -> None:
        check_text(run_id=run_id, node_label=node_label, error=error)
        with self._lock:
            node = self._nodes.pop((run_id, node_label), None)
        if node is not None:
            node.fail(error)
        else:
            stored = self._stored_node(run_id, node_label, "fail_node_and_finish_run")
            if stored is not None:
                self._tracer.change(stored[0], "failed", label=node_label, finish=True, error=error)
        handle = self._pop_run(run_id)
        if handle is not None:
            handle.fail(error)
            return
        run = self._stored_run(run_id, "fail_node_and_finish_run")
        if run is not None:
            self._tracer.change(run, "failed", finish=True)

    # -- bookkeeping ------------------------------------------------------------------

    def _refuse(self, why: str) -> None:
        """A call lythonic refuses (it raises) or that names nothing stored: the store is
        left unchanged, the refusal logged and counted (`writes_refused` in stats)."""
        _log.warning("dagtrace: %s; nothing written", why)
        try:
            self.store.write_records([], counters={"writes_refused": 1})
        except Exception as e:  # noqa: BLE001 - never into the runner
            if is_bug(e):
                self._bugs += 1
                report_bug("counting a refused write", e, self._bugs)
            else:
                _log.error("dagtrace: counting a refused write failed: %s", e)

    def _edges_of(self, run_id: str, node_label: str) -> set[tuple[str, str]]:
        """The run's edges, to refuse a repeated one as lythonic does: remembered from
        `create_run` until the run ends or pauses here; for a node open here in a run
        without them (resumed, restarted, or created elsewhere), read once from the
        store and remembered; otherwise the stored way checks the store itself."""
        with self._lock:
            seen = self._edges.get(run_id)
            open_here = (run_id, node_label) in self._nodes
        if seen is not None or not open_here:
            return seen if seen is not None else set()
        stored = {
            (e["upstream_label"], e["downstream_label"])
            for e in self.store.get_edge_traversals(run_id)
        }
        with self._lock:
            return self._edges.setdefault(run_id, stored)

    def _pop_run(self, run_id: str) -> RunHandle | None:
        """Forget a run that ends or pauses here: later writes on it go the stored way."""
        with self._lock:
            self._edges.pop(run_id, None)
            return self._runs.pop(run_id, None)

    def _run(self, run_id: str, call: str) -> RunHandle | None:
        """The run's open handle here, else a handle on its stored span context."""
        with self._lock:
            handle = self._runs.get(run_id)
        return handle if handle is not None else self._stored_run(run_id, call)

    def _stored_run(self, run_id: str, call: str) -> RunHandle | None:
        """A handle on a run this instance does not hold open (another instance or
        process opened it, or it ended): its stored span context, nsref and attempt."""
        run = self.store.get_run(run_id)
        if run is None:
            self._refuse(f"{call}: no run {run_id!r}")
            return None
        details: Mapping[str, Any] = self.store.get_run_details(run_id) or {}
        trace_id, span_id = details.get("trace_id"), details.get("span_id")
        context = span_context(trace_id, span_id) if trace_id and span_id else None
        return RunHandle(
            self._tracer,
            run_id,
            run["dag_nsref"],
            details.get("attempt") or 1,
            NonRecordingSpan(context or INVALID_SPAN_CONTEXT),
        )

    def _stored_node(
        self, run_id: str, node_label: str, call: str
    ) -> tuple[RunHandle, list[EdgeRow]] | None:
        """The run of a node not open here, and the node's stored edges; None (refused)
        when the node is not stored (lythonic's update would change no row)."""
        run = self._run(run_id, call)
        if run is None:
            return None
        if not any(n["node_label"] == node_label for n in self.store.get_node_executions(run_id)):
            self._refuse(f"{call}: no node {node_label!r} in run {run_id!r}")
            return None
        edges = [
            e for e in self.store.get_edge_traversals(run_id) if e["upstream_label"] == node_label
        ]
        return run, edges

    def _composite_node(
        self, parent_run_id: str | None, nsref: str
    ) -> tuple[NodeHandle | None, str | None]:
        """The composite node a sub-DAG run belongs to: lythonic names it in the nsref,
        `{parent nsref}/{label}[{key}]`."""
        if parent_run_id is None:
            return None, None
        with self._lock:
            parent = self._runs.get(parent_run_id)
        parent_nsref = (
            parent.nsref
            if parent
            else (self.store.get_run(parent_run_id) or {"dag_nsref": ""})["dag_nsref"]
        )
        key = nsref[len(parent_nsref) + 1 :] if nsref.startswith(parent_nsref + "/") else ""
        label = key.split("[", 1)[0] or None
        with self._lock:
            node = self._nodes.get((parent_run_id, label)) if label else None
        return node, label

    def _cut_short_nodes(self, run_id: str) -> None:
        """A pause leaves the node that raised it unfinished (lythonic: `running`)."""
        with self._lock:
            open_nodes = [k for k in self._nodes if k[0] == run_id]
            handles = [self._nodes.pop(k) for k in open_nodes]
        for node in handles:
            node.finish(status="running")

    def _start_attempt(self, run_id: str) -> RunHandle:
        """A restart (lythonic sets the status back to `running`): the next attempt of
        the same run id, linked to the previous attempt's run span."""
        run: Mapping[str, Any] = self.store.get_run(run_id) or {}
        details: Mapping[str, Any] = self.store.get_run_details(run_id) or {}
        previous = (
            [span_context(details["trace_id"], details["span_id"])]
            if (details.get("trace_id") and details.get("span_id"))
            else []
        )
        handle = self._tracer.start_run(
            run.get("dag_nsref") or "unknown",
            run_id=run_id,
            inputs_json=run.get("source_inputs_json") or "{}",
            attempt=(details.get("attempt") or 1) + 1,
            initiator=run.get("initiated_by"),
            parent_run_id=run.get("parent_run_id"),
            parent_node=details.get("parent_node_label"),
            links=previous,
        )
        with self._lock:
            self._runs[run_id] = handle
        return handle
