"""The parent of a sub-DAG run span that does not name it, found through OTel spans.

docs/conventions.md: a run span without `dag.run.parent_id` falls back to its OTel
parent, walking up through non-DAG spans (an HTTP span between the composite node and
the sub-DAG run) to a node span, or to a span link's node span. One walk (`walk`)
serves every entry point, over what each knows of the spans:
- the live processor: the spans its process saw (`ParentResolver`, in memory);
- the exporter and `dagtrace serve`: the batch (`ParentFacts`) and the store, in the
  batch's own transaction (`ParentSearch`), whatever order, batch and (PostgreSQL)
  server the spans come in. The store keeps for it only non-DAG span → parent pairs
  (`dagtrace_span_parents`) and the sub-runs whose search waits for a span not yet
  seen (`dagtrace_parent_search`); node spans are found by `node_executions (trace_id,
  span_id)`. A late node span resolves the sub-runs waiting for it, a late non-DAG
  span moves them on.

An explicit parent beats an inferred one, whichever arrives first; among inferred
ones the OTel parent beats links, and an earlier link a later one. Entries older than
`KEEP_SECONDS` are dropped on the way (and by `dagtrace prune`).

On PostgreSQL two servers may hold the two ends of a chain at once: each batch takes
transaction-scoped advisory locks per trace (shared for the node and non-DAG spans it
brings, exclusive where it leaves a search waiting or moves one on) before it reads,
so of two such batches the later one sees the earlier one's rows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from . import conventions as c
from ._fork import new_lock_in_forked_child
from ._mapping import SpanRecord

MAX_STEPS = 64
"""Spans a walk goes up at most (a longer chain is taken for a cycle and dropped)."""

KEEP_SECONDS = 86_400.0
"""Non-DAG span → parent pairs, waiting searches and inferred-parent marks are dropped
this long (a day) after they were written: a sub-run's spans reaching the store more
than a day apart from its composite node's (or the spans between) stay unlinked, and
an explicit parent arriving more than a day after an inferred one no longer replaces
it. `dagtrace prune` drops them too."""

SWEEP_PERIOD = 60.0
"""Seconds between two drops of old entries by one process writing a store."""
SWEEP_LIMIT = 10_000
"""Rows of each table dropped at most per sweep (the next write sweeps again if full)."""

Found = tuple[str, str]
"""A node span: (run id, node label)."""

K = TypeVar("K", bound=Hashable)


class SpanGraph(Protocol):
    """What is known of spans: which are node spans, which non-DAG spans have which parent."""

    def nodes_of(self, span_ids: Collection[str]) -> Mapping[str, Found]: ...

    def parents_of(self, span_ids: Collection[str]) -> Mapping[str, str]: ...


def walk(starts: Mapping[K, str], graph: SpanGraph) -> tuple[dict[K, Found], dict[K, str]]:
    """From each start span, up through non-DAG parents: the node span reached (found),
    or the first span the graph does not know (the frontier, where a search waits).
    Set by set: a few lookups per step, whatever the number of starts."""
    found: dict[K, Found] = {}
    frontier: dict[K, str] = {}
    at = dict(starts)
    for _ in range(MAX_STEPS):
        if not at:
            break
        nodes = graph.nodes_of(set(at.values()))
        rest = {}
        for key, span in at.items():
            node = nodes.get(span)
            if node is not None:
                found[key] = node
            else:
                rest[key] = span
        if not rest:
            break
        parents = graph.parents_of(set(rest.values()))
        at = {}
        for key, span in rest.items():
            parent = parents.get(span)
            if parent is None:
                frontier[key] = span
            else:
                at[key] = parent
    return found, frontier  # what is still in `at` went round a cycle: dropped


class Start(NamedTuple):
    """Where a search for a run's parent starts (or has got to)."""

    preference: int
    """0: through the OTel parent; 1, 2 …: through the span links, in order."""
    trace_id: str
    span_id: str


def starts_of(record: SpanRecord, link_traces: Sequence[str | None] = ()) -> list[Start]:
    """The starts of a run span's search for its parent: none when it names its parent,
    is not a run's own span (a heartbeat, a change), or has neither parent nor links."""
    if (
        record.kind != c.KIND_RUN
        or record.parent_run_id is not None
        or record.heartbeat
        or record.change is not None
    ):
        return []
    trace = record.trace_id or ""
    starts = [Start(0, trace, record.parent_span_id)] if record.parent_span_id else []
    for i, link in enumerate(record.link_span_ids, start=1):
        link_trace = link_traces[i - 1] if i <= len(link_traces) else None
        starts.append(Start(i, link_trace or trace, link))
    return starts


@dataclass
class ParentFacts:
    """What one batch of spans tells about sub-run parents; cheap to pickle (a decoding
    process sends it back with the batch's rows)."""

    nodes: dict[str, Found] = field(default_factory=dict)
    """Node span id → (run id, label)."""
    hops: dict[str, str | None] = field(default_factory=dict)
    """Non-DAG span id → its parent span id; None for a root (a search stops there)."""
    traces: set[str] = field(default_factory=set)
    """Trace ids of those spans (PostgreSQL's lock keys)."""
    run_spans: set[str] = field(default_factory=set)
    """Span ids of run spans: a search reaching one stops (a run span is no node)."""
    searches: dict[str, list[Start]] = field(default_factory=dict)
    """Run id → where its search starts (runs naming no parent)."""
    inferred: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    """Run id → (preference, parent run, node label) found before the store (in memory)."""
    explicit: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Run id → its explicit (parent run, parent node)."""

    def __bool__(self) -> bool:
        return bool(self.nodes or self.hops or self.searches or self.inferred or self.explicit)

    def saw_other(self, span_id: str, parent_span_id: str | None, trace_id: str) -> None:
        """A non-DAG span (hex ids)."""
        self.hops[span_id] = parent_span_id
        self.traces.add(trace_id)

    def saw_node(self, span_id: str, run_id: str, label: str, trace_id: str | None) -> None:
        self.nodes[span_id] = (run_id, label)
        self.traces.add(trace_id or "")

    def saw_run(self, record: SpanRecord, starts: Sequence[Start]) -> None:
        """A run's own span: its explicit parent, or its search's `starts`."""
        if record.span_id:
            self.run_spans.add(record.span_id)
        if record.heartbeat or record.change is not None:
            return
        if record.parent_run_id is not None:
            self.explicit.setdefault(record.run_id, (record.parent_run_id, record.parent_node))
        elif starts and not self.searches.get(record.run_id):
            self.searches[record.run_id] = list(starts)

    def saw_record(self, record: SpanRecord, link_traces: Sequence[str | None] = ()) -> None:
        """A mapped DAG span; `link_traces`: the trace ids of its links, in order."""
        if record.kind == c.KIND_NODE:
            if record.span_id and record.label and record.change is None:
                self.saw_node(record.span_id, record.run_id, record.label, record.trace_id)
        elif record.kind == c.KIND_RUN:
            self.saw_run(record, starts_of(record, link_traces))

    def extend(self, other: ParentFacts) -> None:
        self.nodes.update(other.nodes)
        for span, parent in other.hops.items():
            if parent is not None or span not in self.hops:
                self.hops[span] = parent
        self.traces |= other.traces
        self.run_spans |= other.run_spans
        for run_id, starts in other.searches.items():
            if not self.searches.get(run_id):
                self.searches[run_id] = starts
        for run_id, found in other.inferred.items():
            if run_id not in self.inferred or found < self.inferred[run_id]:
                self.inferred[run_id] = found
        for run_id, named in other.explicit.items():
            self.explicit.setdefault(run_id, named)


class _BatchGraph:
    """The batch's spans alone."""

    def __init__(self, facts: ParentFacts) -> None:
        self._facts = facts

    def nodes_of(self, span_ids: Collection[str]) -> Mapping[str, Found]:
        nodes = self._facts.nodes
        return {s: nodes[s] for s in span_ids if s in nodes}

    def parents_of(self, span_ids: Collection[str]) -> Mapping[str, str]:
        hops = self._facts.hops
        return {s: p for s in span_ids if (p := hops.get(s)) is not None}


class ParentResolver:
    """The live processor's span graph: the most recent spans its process saw, in memory.

    Bounded: it remembers the most recent `capacity` node and non-DAG spans each.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._nodes: OrderedDict[str, Found] = OrderedDict()
        self._others: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        new_lock_in_forked_child(self)

    def saw_node(self, span_id: str, run_id: str, label: str) -> None:
        nodes = self._nodes  # once a node: `_remember`, inlined
        with self._lock:
            nodes[span_id] = (run_id, label)
            if len(nodes) > self._capacity:
                nodes.popitem(last=False)

    def saw_other(self, span_id: str, parent_span_id: str) -> None:
        with self._lock:
            self._remember(self._others, span_id, parent_span_id)

    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        if len(table) > self._capacity:
            table.popitem(last=False)

    def nodes_of(self, span_ids: Collection[str]) -> Mapping[str, Found]:
        nodes = self._nodes
        return {s: nodes[s] for s in span_ids if s in nodes}

    def parents_of(self, span_ids: Collection[str]) -> Mapping[str, str]:
        others = self._others
        return {s: others[s] for s in span_ids if s in others}

    def resolve(
        self,
        record: SpanRecord,
        facts: ParentFacts,
        link_traces: Sequence[str | None] = (),
        *,
        keep_searching: bool = True,
    ) -> None:
        """Put in `facts` what `record` says of its run's parent, with the parent this
        process's spans lead it to (`inferred`); with `keep_searching`, where the store
        should go on with what is left (from where the walk here stopped)."""
        if record.kind != c.KIND_RUN:
            return
        starts = starts_of(record, link_traces)
        if not starts:
            facts.saw_run(record, ())
            return
        with self._lock:
            found, frontier = walk({s.preference: s.span_id for s in starts}, self)
        best = min(found, default=None)
        if best is not None:
            facts.inferred[record.run_id] = (best, *found[best])
        left = [
            Start(s.preference, s.trace_id, frontier[s.preference])
            for s in starts
            if s.preference in frontier and (best is None or s.preference < best)
        ]
        facts.saw_run(record, left if keep_searching else ())


def facts_of(records: Iterable[SpanRecord]) -> ParentFacts:
    """The facts span records give alone (no non-DAG spans, links in their own trace)."""
    facts = ParentFacts()
    for record in records:
        facts.saw_record(record)
    return facts
