"""`configure()`: one call to a TracerProvider that records DAG runs and, if asked, forwards them.

Configuration order, as in the OTel SDK: explicit argument → environment
variable → default. Only this edge reads the environment.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import Attributes

from . import conventions as c
from . import settings
from ._redact import Redaction
from .bridge import LiveSpanProcessor, RedactingSpanExporter
from .store import open_store
from .store.base import Store

_log = logging.getLogger(__name__)

"""An OTLP endpoint to forward spans to (Jaeger, a Collector); `OTEL_EXPORTER_OTLP_*` also count."""


class DagRecordingSampler(sampling.Sampler):
    """Wraps a sampler so DAG spans are always at least recorded (stored).

    A DAG span the wrapped sampler drops becomes RECORD_ONLY: the live processor
    stores it; exporters (Jaeger) only get sampled spans, so it is not forwarded.
    """

    def __init__(self, delegate: sampling.Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> sampling.SamplingResult:
        result = self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is sampling.Decision.DROP and attributes and attributes.get(c.KIND):
            return sampling.SamplingResult(
                sampling.Decision.RECORD_ONLY, attributes, result.trace_state
            )
        return result

    def get_description(self) -> str:
        return f"DagRecordingSampler{{{self.delegate.get_description()}}}"


class DagtraceTracerProvider(TracerProvider):
    """The SDK's TracerProvider, knowing whether DAG start markers are needed.

    Start markers serve backends that only see ended spans (OTLP). A provider that
    only records in-process has the live processor's on_start instead.
    """

    def __init__(self, *, start_markers: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_markers = start_markers


def configure(
    db: str | os.PathLike[str] | Store | None = None,
    *,
    forward: str | bool | None = None,
    service_name: str | None = None,
    sampler: sampling.Sampler | None = None,
    span_limits: SpanLimits | None = None,
    set_global: bool = False,
    heartbeat_interval: float = 30.0,
    redaction: Redaction | None = None,
    store_policy: Redaction | None = None,
    forward_protocol: str | None = None,
) -> DagtraceTracerProvider:
    """A TracerProvider that records DAG runs into `db` and optionally forwards all spans.

    - `db`: a store, a SQLite path or URL; default `DAGTRACE_DB`, else `./dagtrace.db`.
    - `forward`: an OTLP/HTTP traces endpoint (`http://localhost:4318/v1/traces`), or
      True to use `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`;
      default `DAGTRACE_FORWARD`, else forward only if one of those OTEL variables
      is set. The official OTLP exporter reads the other `OTEL_EXPORTER_OTLP_*`
      variables (headers, timeout, compression) as usual.
    - `forward_protocol`: `http/protobuf` or `grpc` (`pip install 'dagtrace[grpc]'`);
      default `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`.
    - `service_name`: default `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`.
    - `sampler`: default from `OTEL_TRACES_SAMPLER`; DAG spans are always recorded.
    - `set_global`: also install it as the global TracerProvider.
    - `heartbeat_interval`: seconds between heartbeats of the runs open here.
    - `redaction`: what forwarded spans hide (default `Redaction()`: keys like
      password, token, secret); the store keeps payloads exact unless `store_policy`
      is also given (then changed outputs are stored as not reusable).

    `DagTracer(provider)` emits start markers only when spans are forwarded.
    """
    store = db if isinstance(db, Store) else open_store(settings.db_location(db))
    resource = Resource.create({"service.name": service_name} if service_name else {})
    exporter = _forwarding_exporter(forward, forward_protocol)
    provider = DagtraceTracerProvider(
        start_markers=exporter is not None,
        resource=resource,
        sampler=DagRecordingSampler(sampler or sampling._get_from_env_or_default()),
        span_limits=span_limits,
    )
    provider.add_span_processor(
        LiveSpanProcessor(
            store,
            owns_store=not isinstance(db, Store),
            heartbeat_interval=heartbeat_interval,
            store_policy=store_policy,
        )
    )
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(
                RedactingSpanExporter(exporter, redaction if redaction is not None else Redaction())
            )
        )
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


PROTOCOLS = settings.OTLP_PROTOCOLS


def _forwarding_exporter(forward: str | bool | None, protocol: str | None) -> SpanExporter | None:
    if forward is None:
        forward = settings.forward_endpoint()
    otel_endpoint = settings.otlp_endpoint()
    if (forward is None and not otel_endpoint) or forward is False:
        return None
    endpoint = forward if isinstance(forward, str) else None
    if _protocol(protocol) == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as e:
            raise ValueError(
                "forwarding over OTLP/gRPC needs the gRPC exporter: pip install 'dagtrace[grpc]'"
            ) from e
        if endpoint is None:
            return GrpcExporter()  # endpoint, headers, TLS from OTEL_EXPORTER_OTLP_*
        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()


def _protocol(explicit: str | None) -> str:
    """Explicit argument, else OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
    OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf. A bad argument raises; a bad
    environment value is logged and the default used."""
    if explicit is not None:
        if explicit not in PROTOCOLS:
            raise ValueError(f"forward_protocol must be one of {PROTOCOLS}, not {explicit!r}")
        return explicit
    setting = settings.otlp_protocol_setting()
    if setting is None:
        return "http/protobuf"
    name, value = setting
    if value in PROTOCOLS:
        return value
    _log.warning("dagtrace: %s=%r is not one of %s; using http/protobuf", name, value, PROTOCOLS)
    return "http/protobuf"
