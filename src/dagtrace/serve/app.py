"""`create_app`: one server's ASGI app, wired from the parts of this package."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from .. import __version__
from ..store.base import Store
from . import api, ops, otlp
from .auth import bearer_auth
from .body import BodyBudget
from .bugs import Bugs
from .config import DEFAULT_CONFIG, ServeConfig
from .errors import install_error_answers
from .forward import Forwarder, redactor
from .ingest import Ingestion
from .limits import ConnectionCounts
from .metrics import Metrics
from .readiness import Readiness
from .routing import RawPathRouting
from .state import Served
from .view import view_router


def create_app(
    store: Store,
    config: ServeConfig = DEFAULT_CONFIG,
    *,
    connections: ConnectionCounts | None = None,
) -> FastAPI:
    """The ASGI app; the caller owns `store` (closed after `app.state.shutdown()`).

    `connections`: what the connection limits did (`serve` passes its protocol's), for
    /metrics."""
    metrics = Metrics()
    budget = BodyBudget(config.body_budget)
    metrics.watch_limits(budget, connections or ConnectionCounts())
    readiness = Readiness(store, writes=not config.read_only, interval=config.probe_interval)
    bugs = Bugs()
    ingestion = None if config.read_only else _ingestion(store, config, metrics, readiness, bugs)
    app = FastAPI(
        title="dagtrace",
        version=__version__,
        description="OTLP/HTTP receiver and read API for DAG run provenance.",
        docs_url=None,  # served by `ops`, behind the token like the API
        redoc_url=None,
        openapi_url=None,
    )
    app.state.served = Served(store, config, readiness, metrics, budget, bugs, ingestion)
    app.state.shutdown = ingestion.stop if ingestion else lambda: None
    app.add_middleware(RawPathRouting)
    guard = [Depends(bearer_auth(config.token))]
    if ingestion:
        app.include_router(otlp.router, dependencies=guard)
    app.include_router(ops.probes)
    app.include_router(ops.router, dependencies=guard)
    app.include_router(api.router, dependencies=guard)
    app.include_router(
        view_router(
            store,
            token=config.token,
            jaeger_url=config.jaeger_url,
            redaction=config.redaction,
            read_only=config.read_only,
        )
    )
    install_error_answers(app)
    return app


def _ingestion(
    store: Store, config: ServeConfig, metrics: Metrics, readiness: Readiness, bugs: Bugs
) -> Ingestion:
    forwarder = None
    if config.forward:
        forwarder = Forwarder(
            config.forward,
            prepare=redactor(config.redaction),
            max_bytes=config.forward_buffer,
            bugs=bugs,
        )
        metrics.watch_forwarder(forwarder)
    return Ingestion(
        store,
        metrics=metrics,
        readiness=readiness,
        queue_size=config.queue_size,
        decoders=config.decoders,
        forwarder=forwarder,
        bugs=bugs,
    )
