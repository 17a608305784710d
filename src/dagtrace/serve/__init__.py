"""`dagtrace serve`: the OTLP/HTTP receiver and the query API over one store.

Public: `create_app(store, config)` (the ASGI app), `serve(store, host=, port=,
config=)` (it, on uvicorn, until SIGTERM), `ServeConfig`. They are imported when
first asked for, so that an ingest worker, which imports `serve.ingest`, does not
load the web framework.

Map of the package (a request's way: server → routing → auth → a router → ...):

    app.py        create_app: builds the parts below and wires them, nothing else
    config.py     ServeConfig: what the operator chose (the CLI's serve options)
    state.py      Served: what the routes share (on app.state), the `served` dependency
    server.py     serve(): uvicorn with the connection limits, ready callback, clean stop

  HTTP, the edges
    limits.py     connection limits below the app: header/body deadlines, header bytes,
                  connection cap (a uvicorn protocol subclass)
    routing.py    route on the raw path; `{name:segment}` parameters; `route(Routes.X)`
    auth.py       the bearer token check (a dependency), when a token is required
    body.py       reading a body within the per-request limit and the shared byte budget
    errors.py     error answers that repeat no input; the app's exception handlers

  Routers (a new route goes in one of these, or in a new router included by app.py)
    api.py        the query API, /api/v1/...: paths from `_paths.Routes`, which
                  RemoteProvenance (`_remote.py`) requests them by: add a route there too
    ops.py        /healthz, /readyz (readiness.py), /metrics (metrics.py), the API docs
    otlp.py       the OTLP/HTTP receiver, POST /v1/traces: limits, answers, error bodies
    view/         the web view: pages (not under /api/v1), templates/, static/

  Ingestion (a new receiver, e.g. OTLP/gRPC or a queue, is a module like otlp.py that
  hands each body to the same `Ingestion`)
    ingest.py     Ingestion: worker processes or a writer thread, the queue bound
                  (QueueFull), restart of dead workers, forwarding, the bug count
    codec.py      OTLP request bodies (protobuf, OTLP/JSON) → rows; the answers' bodies
    forward.py    the forwarder to another OTLP endpoint, and its redaction of requests
    bugs.py       bugs met on the ingest path: logged with traceback, counted, re-raised
                  in strict mode
    readiness.py  /readyz: the latest write's outcome, a probe write when none is recent
    metrics.py    the Prometheus metrics
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import ServeConfig
    from .server import serve

__all__ = ["ServeConfig", "create_app", "serve"]

_HOMES = {"ServeConfig": "config", "create_app": "app", "serve": "server"}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module when first asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
