"""`/metrics`: what serve counts, in the Prometheus text format (one registry per app).

The names are the operator's contract (docs/deployment.md lists them; a test checks
that each one listed is exported)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .body import BodyBudget
    from .forward import Forwarder
    from .limits import ConnectionCounts

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "dagtrace_spans_received", "Spans received over OTLP", registry=self.registry
        )
        self.stored = Counter(
            "dagtrace_spans_stored", "DAG spans committed to the store", registry=self.registry
        )
        self.rejected = Counter(
            "dagtrace_spans_rejected",
            "DAG spans rejected (partial_success)",
            registry=self.registry,
        )
        self.requests = Counter(
            "dagtrace_requests", "OTLP requests by answer", ["code"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "dagtrace_write_queue_depth", "Requests waiting to be written", registry=self.registry
        )
        self.in_progress = Gauge(
            "dagtrace_requests_in_progress",
            "OTLP requests accepted and not yet answered",
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "dagtrace_ingest_seconds",
            "From a request's body read to its rows committed (or refused), queue wait included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The body of `/metrics` (media type `CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def watch_limits(self, budget: BodyBudget, counts: ConnectionCounts) -> None:
        """Export what the body budget and the connection limits hold and did."""
        held = Gauge(
            "dagtrace_body_bytes_held",
            "Bytes of request bodies held until their requests are answered (--body-budget)",
            registry=self.registry,
        )
        held.set_function(lambda: budget.held)
        connections = Gauge(
            "dagtrace_connections_open", "Open client connections", registry=self.registry
        )
        connections.set_function(lambda: counts.open)
        self.registry.register(_ConnectionCloses(counts))

    def watch_forwarder(self, forwarder: Forwarder) -> None:
        """Export the forwarder's own counts (it runs on its own thread)."""
        depth = Gauge(
            "dagtrace_forward_queue_depth",
            "Received requests waiting to be forwarded",
            registry=self.registry,
        )
        depth.set_function(lambda: forwarder.depth)
        self.registry.register(_ForwarderCounts(forwarder))


class _ForwarderCounts(Collector):
    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "dagtrace_forwarded_requests",
            "Requests the forward target accepted",
            value=self._forwarder.forwarded,
        )
        yield CounterMetricFamily(
            "dagtrace_forward_dropped_requests",
            "Requests not forwarded: refused, retries used up, or the buffer full",
            value=self._forwarder.dropped,
        )


class _ConnectionCloses(Collector):
    def __init__(self, counts: ConnectionCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "dagtrace_connections_closed",
            "Connections the server closed or refused, by reason",
            labels=["reason"],
        )
        for reason, n in self._counts.closed.items():
            family.add_metric([reason], n)
        yield family
