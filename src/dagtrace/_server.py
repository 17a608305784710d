"""`dagtrace serve`: an OTLP/HTTP receiver and a JSON query API over one store.

Built on FastAPI (OpenAPI for the query API for free) and uvicorn. Ingestion:
`POST /v1/traces`, protobuf or OTLP/JSON, gzip, answered by the OTLP rules
(200 + ExportTraceServiceResponse once committed; partial_success for unusable
spans; 400 undecodable; 413 too large, also after decompression; 415 other types;
429 / 503 with Retry-After when the write queue or the body budget is full, or the
store is failing).

What a client may hold is bounded: header and body time, open connections and
header bytes (`_limits`), bytes of bodies in memory (`_body`). Error answers repeat
no input (`_safe_message`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import ClientDisconnect

from . import __version__
from ._auth import exposure_problem, token_problem
from ._body import (
    BodyBudget,
    read_body,
    return_large_buffers_to_the_os,
)
from ._ingest import (
    Forwarder,
    Ingested,
    IngestWriter,
    ingest_in_worker,
    start_worker,
)
from ._limits import BODY_TIMED_OUT, ConnectionCounts, ConnectionLimits, limited_protocol
from ._models import DagRun, IoPayload, raw_times
from ._otlp import export_response, redact_request, status_body
from ._readiness import PROBE_INTERVAL, Readiness
from ._redact import Redaction
from ._routing import RawPathRouting
from ._store import Store
from .exceptions import BadGzip, OverBudget, QueueFull, StoreError, TooLarge, UndecodableRequest
from .settings import (
    DEFAULT_BODY_BUDGET,
    DEFAULT_FORWARD_BUFFER,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    DEFAULT_QUEUE,
    TOKEN_ENV,
)

_log = logging.getLogger("dagtrace.serve")

__all__ = ["DEFAULT_BODY_BUDGET", "TOKEN_ENV", "ServeConfig", "create_app", "serve"]

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
_GRPC_UNAVAILABLE, _GRPC_INVALID_ARGUMENT, _GRPC_RESOURCE_EXHAUSTED = 14, 3, 8


@dataclass(frozen=True)
class ServeConfig:
    max_body: int = DEFAULT_MAX_BODY
    """Bytes accepted per request, before and after decompression."""
    queue_size: int = DEFAULT_QUEUE
    """Requests waiting to be written; beyond it, 429."""
    token: str | None = None
    forward: str | None = None
    forward_buffer: int = DEFAULT_FORWARD_BUFFER
    """Bytes of requests waiting for the forward target; beyond it the oldest are dropped."""
    retry_after: int = 1
    redaction: Redaction = field(default_factory=Redaction)
    """Applied to what is forwarded and what the query API returns, not to the store."""
    decoders: int = 0
    """Ingest workers: processes that decode requests and commit their rows (0: a
    thread of the server does both)."""
    body_budget: int = DEFAULT_BODY_BUDGET
    """Bytes of request bodies held at once (as received, and after gunzip) until their
    requests are answered; beyond it, 429."""
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    read_only: bool = False
    """Answer queries only: no /v1/traces, nothing written (no migration either: the
    caller opens the store read-only)."""
    insecure_no_token: bool = False
    """Serve on a non-loopback address without a token (refused otherwise)."""
    probe_interval: float = PROBE_INTERVAL
    """/readyz writes a probe when no write happened for this long."""
    jaeger_url: str | None = None
    """Jaeger UI base URL: the web view links runs and nodes to their traces there."""

    def __post_init__(self) -> None:
        if self.token is not None and (problem := token_problem(self.token)):
            raise ValueError(f"unusable token: {problem}")
        if self.body_budget < self.max_body:
            raise ValueError("the body budget must be at least max_body")


class _Metrics:
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


def _configured_log_level() -> int | None:
    """The root logger's level if the server's program configured logging, for its workers."""
    root = logging.getLogger()
    return root.level if root.handlers else None


def create_app(
    store: Store,
    config: ServeConfig = ServeConfig(),
    *,
    connections: ConnectionCounts | None = None,
) -> FastAPI:
    """The ASGI app; the caller owns `store` (closed after `app.state.shutdown()`).

    `connections`: what the connection limits did (`serve` passes its protocol's), for
    /metrics."""
    metrics = _Metrics()
    budget = BodyBudget(config.body_budget)
    metrics.watch_limits(budget, connections or ConnectionCounts())
    app = FastAPI(
        title="dagtrace",
        version=__version__,
        description="OTLP/HTTP receiver and read API for DAG run provenance.",
        docs_url=None,  # served below, behind the token like the API
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(RawPathRouting)
    auth = _bearer_auth(config.token)
    readiness = Readiness(store, writes=not config.read_only, interval=config.probe_interval)
    app.state.readiness = readiness
    if config.read_only:
        app.state.shutdown = lambda: None
    else:
        app.state.shutdown = _ingest_route(app, store, config, metrics, auth, budget, readiness)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        try:
            problem = readiness.problem()
        except StoreError:
            return JSONResponse({"status": "store unreachable"}, status_code=503)
        if problem is not None:
            return JSONResponse({"status": "store cannot be written"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(auth)])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _docs_routes(app, auth)
    _query_routes(app, store, auth, config.redaction)
    from .serve.view import view_router  # the web view (issue 15)

    app.include_router(
        view_router(
            store,
            token=config.token,
            jaeger_url=config.jaeger_url,
            redaction=config.redaction,
            read_only=config.read_only,
        )
    )
    _error_answers(app)
    return app


def _ingest_route(
    app: FastAPI,
    store: Store,
    config: ServeConfig,
    metrics: _Metrics,
    auth: Callable[..., Awaitable[None]],
    budget: BodyBudget,
    readiness: Readiness,
) -> Callable[[], None]:
    """`POST /v1/traces` and what writes it; returns what stops them."""
    writer = IngestWriter(store, queue_size=config.queue_size)
    forwarder = None
    if config.forward:

        def redacted(body: bytes, content_type: str) -> bytes:
            json_encoded = content_type == _JSON
            return redact_request(body, json_encoded=json_encoded, redaction=config.redaction)

        forwarder = Forwarder(config.forward, prepare=redacted, max_bytes=config.forward_buffer)
        metrics.watch_forwarder(forwarder)
    in_workers = 0  # requests submitted to the workers and not yet answered

    def waiting() -> int:
        """Requests accepted and waiting for a writer (the write queue's depth)."""
        return writer.depth + max(0, in_workers - config.decoders)

    metrics.queue_depth.set_function(waiting)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            config.decoders,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            # pickled: each worker opens the store anew
            initargs=(os.getpid(), store, _configured_log_level()),
        )

    pools = [new_pool()] if config.decoders > 0 else []

    def shutdown() -> None:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
        writer.stop()
        if forwarder:
            forwarder.stop()

    async def ingest_body(body: bytes, json_encoded: bool) -> Ingested:
        """Committed, or raises: QueueFull, UndecodableRequest, BrokenProcessPool, or
        the store's error."""
        nonlocal in_workers
        if not pools:
            return await asyncio.wrap_future(writer.submit(body, json_encoded=json_encoded))
        if waiting() >= config.queue_size:
            raise QueueFull()
        in_workers += 1
        pool = pools[0]
        try:
            return await asyncio.wrap_future(pool.submit(ingest_in_worker, body, json_encoded))
        except BrokenProcessPool as e:
            if pools[0] is pool:  # the first request to notice starts new workers
                _log.error("an ingest worker died (%s); starting new ones", e)
                pools[0] = new_pool()
            raise
        finally:
            in_workers -= 1

    @app.post("/v1/traces", include_in_schema=False, dependencies=[Depends(auth)])
    async def ingest(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        json_encoded = content_type == _JSON

        def error(code: int, message: str, *, retry: bool = False) -> Response:
            retry_after = config.retry_after if retry else None
            return _otlp_error(
                code, message, json_encoded=json_encoded, metrics=metrics, retry_after=retry_after
            )

        if content_type not in (_PROTOBUF, _JSON):
            json_encoded = False
            return error(415, "use application/x-protobuf or application/json")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return error(415, "this content-encoding is not supported; use gzip or none")
        if waiting() >= config.queue_size:  # before reading a body that would only wait
            return error(429, "write queue full, retry later", retry=True)
        with budget.hold() as held:
            try:
                body = await read_body(
                    request.stream(),
                    declared=_content_length(request),
                    gzipped=encoding == "gzip",
                    limit=config.max_body,
                    held=held,
                )
            except TooLarge:
                return error(413, f"request body above {config.max_body} bytes")
            except OverBudget:
                return error(429, "too many request bodies in hand, retry later", retry=True)
            except BadGzip as e:
                return error(400, str(e))
            except ClientDisconnect:
                timed_out = request.scope.get("state", {}).get(BODY_TIMED_OUT)
                if not timed_out:  # (else the protocol logged why)
                    _log.info("a client went away before the end of its request body")
                return Response(status_code=400)  # nobody to answer
            try:
                with metrics.in_progress.track_inprogress(), metrics.ingest_seconds.time():
                    ingested = await ingest_body(body, json_encoded)
            except UndecodableRequest as e:
                return error(400, _safe_message(str(e)))
            except QueueFull:
                return error(429, "write queue full, retry later", retry=True)
            except BrokenProcessPool:  # a worker died (new ones started): the client retries
                return error(503, "cannot ingest now, retry later", retry=True)
            except Exception as e:  # noqa: BLE001 - the store failed: retryable, nothing stored
                _log.error("write failed: %s", e)
                if isinstance(e, StoreError):  # not ready until a write succeeds
                    readiness.wrote(str(e))
                return error(503, "the store cannot be written now, retry later", retry=True)
            readiness.wrote(None)
            metrics.received.inc(ingested.received)
            metrics.stored.inc(ingested.stored)
            metrics.rejected.inc(len(ingested.rejected))
            if forwarder:
                forwarder.submit(body, content_type)
            metrics.requests.labels("200").inc()
            rejected = [_safe_message(reason) for reason in ingested.rejected]
            return Response(
                export_response(rejected, json_encoded=json_encoded), media_type=content_type
            )

    return shutdown


def _content_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "").strip()
    return int(declared) if declared.isdigit() else None


def _docs_routes(app: FastAPI, auth: Callable[..., Awaitable[None]]) -> None:
    """OpenAPI and its two viewers, behind the same guard as the API."""
    guard = [Depends(auth)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guard)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="dagtrace - Swagger UI")

    @app.get("/redoc", include_in_schema=False, dependencies=guard)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="dagtrace - ReDoc")


_QUOTED = re.compile(r"""'[^']*'|"[^"]*\"""")
_MAX_MESSAGE = 200


def _safe_message(text: str) -> str:
    """An error message fit to answer with: quoted values (the repr of what was sent)
    elided, at most 200 characters. Error answers repeat no input."""
    text = _QUOTED.sub("\x00", text)
    for quote in ("'", '"'):  # an unterminated quote (a cut repr): drop what follows it
        if (i := text.find(quote)) >= 0:
            text = text[:i] + "…"
    text = text.replace("\x00", "'…'")
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


def _error_answers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """FastAPI's 422, without the `input` (and `ctx`) it would repeat."""
        detail = [
            {
                "type": str(error.get("type", "")),
                "loc": [str(part)[:100] for part in error.get("loc", ())],
                "msg": _safe_message(str(error.get("msg", ""))),
            }
            for error in exc.errors()[:20]
        ]
        return JSONResponse({"detail": detail}, status_code=422)


def _redacted_run(run: DagRun, redaction: Redaction) -> DagRun:
    if run.io is not None:
        run.io = IoPayload(
            input_json=redaction.payload(run.io.input_json),
            output_json=redaction.payload(run.io.output_json),
        )
    for node in run.nodes.values():
        if node.io is not None:
            node.io = IoPayload(
                input_json=redaction.payload(node.io.input_json),
                output_json=redaction.payload(node.io.output_json),
            )
    return run


def _query_routes(
    app: FastAPI, store: Store, auth: Callable[..., Awaitable[None]], redaction: Redaction
) -> None:
    """The DagProvenance reads as JSON (sync routes: FastAPI runs them in its threadpool)."""
    guard = [Depends(auth)]

    def found(value: Any, what: str) -> Any:
        if value is None:
            raise HTTPException(404, f"no such {what}")
        return value

    @app.get("/api/v1/runs", dependencies=guard, response_model=list[DagRun])
    def recent_runs(
        limit: int = Query(20, ge=1, le=10_000),
        status: str | None = None,
        all: bool = Query(False, description="Include sub-DAG runs (they are nested anyway)."),
    ) -> list[DagRun]:
        """Recent runs, newest first, as `get_recent_runs`; top-level runs unless `all`."""
        return store.get_recent_runs(limit, status, top_level=not all)

    @app.get("/api/v1/runs/active", dependencies=guard, response_model=list[DagRun])
    def active_runs() -> list[DagRun]:
        """Running runs, as `get_active_runs`."""
        return store.get_active_runs()

    @app.get("/api/v1/runs/summary", dependencies=guard)
    def run_summaries(
        limit: int = Query(20, ge=1, le=10_000),
        status: str | None = None,
        all: bool = Query(False, description="Include sub-DAG runs."),
    ) -> list[dict[str, Any]]:
        """Newest runs first, flat, with their node count: no trees (`dagtrace runs`)."""
        return [raw_times(run) for run in store.list_runs(limit, status, top_level=not all)]

    @app.get("/api/v1/runs/changed", dependencies=guard)
    def changed_runs(since: float = Query(..., description="Epoch seconds.")) -> list[str]:
        """Ids of the top-level runs running, or started or finished after `since`."""
        return store.runs_changed_since(since)

    @app.get("/api/v1/runs/{run_id:segment}", dependencies=guard, response_model=DagRun)
    def inspect(run_id: str, io: bool = False) -> DagRun:
        """One run with nodes, edges and sub-DAG runs, as `inspect_run` (+ `load_io`)."""
        run = found(store.inspect_run(run_id), "run")
        if io:
            store.load_io(run)
            _redacted_run(run, redaction)
        return run  # type: ignore[no-any-return]

    @app.get("/api/v1/runs/{run_id:segment}/record", dependencies=guard)
    def record(run_id: str) -> dict[str, Any]:
        """The run row, as `get_run`."""
        row = found(store.get_run(run_id), "run")
        return raw_times(
            {
                **row,
                "source_inputs_json": redaction.payload(row["source_inputs_json"]),
                "sink_outputs_json": redaction.payload(row["sink_outputs_json"]),
            }
        )

    @app.get("/api/v1/runs/{run_id:segment}/details", dependencies=guard)
    def details(run_id: str) -> dict[str, Any]:
        """Trace and span ids, attempt, lineage, close reason."""
        return found(store.get_run_details(run_id), "run")  # type: ignore[no-any-return]

    @app.get("/api/v1/runs/{run_id:segment}/nodes", dependencies=guard)
    def nodes(run_id: str) -> list[dict[str, Any]]:
        """Node rows, as `get_node_executions`."""
        return [raw_times(n) for n in redaction.node_rows(store.get_node_executions(run_id))]

    @app.get("/api/v1/runs/{run_id:segment}/edges", dependencies=guard)
    def edges(run_id: str) -> list[dict[str, Any]]:
        """Edge traversals, as `get_edge_traversals`."""
        return [raw_times(edge) for edge in store.get_edge_traversals(run_id)]

    @app.get(
        "/api/v1/runs/{run_id:segment}/children", dependencies=guard, response_model=list[DagRun]
    )
    def children(run_id: str) -> list[DagRun]:
        """All descendant runs, as `get_child_runs`."""
        return store.get_child_runs(run_id)

    @app.get("/api/v1/runs/{run_id:segment}/pending", dependencies=guard)
    def pending(run_id: str) -> list[str]:
        """Labels of nodes not completed or skipped, as `get_pending_nodes`."""
        return store.get_pending_nodes(run_id)

    @app.get("/api/v1/runs/{run_id:segment}/nodes/{label:segment}/output", dependencies=guard)
    def output(run_id: str, label: str) -> dict[str, str]:
        """A completed or skipped node's output JSON, as `get_node_output`."""
        output = found(store.get_node_output(run_id, label), "node output")
        return {"output_json": redaction.payload(output)}  # type: ignore[dict-item]

    @app.get("/api/v1/stats", dependencies=guard)
    def stats() -> dict[str, int]:
        """Row counts and the bridge's counters."""
        return store.stats()

    @app.exception_handler(StoreError)
    async def store_unreachable(request: Request, exc: StoreError) -> Response:
        _log.error("store error on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": "the store is unreachable"}, status_code=503)


def _bearer_auth(token: str | None) -> Callable[[Request], Awaitable[None]]:
    """A dependency: 401 unless `Authorization: Bearer <token>` (when a token is set)."""
    expected = f"Bearer {token}".encode() if token else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        # Starlette decodes header bytes as latin-1: this gives back the bytes sent
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):  # constant time
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    return check


def _otlp_error(
    code: int,
    message: str,
    *,
    json_encoded: bool,
    metrics: _Metrics,
    retry_after: int | None = None,
) -> Response:
    metrics.requests.labels(str(code)).inc()
    grpc = {400: _GRPC_INVALID_ARGUMENT, 429: _GRPC_RESOURCE_EXHAUSTED}.get(code, _GRPC_UNAVAILABLE)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(
        status_body(grpc, message, json_encoded=json_encoded),
        status_code=code,
        media_type=_JSON if json_encoded else _PROTOBUF,
        headers=headers,
    )


def serve(
    store: Store,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: ServeConfig = ServeConfig(),
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the server until SIGINT / SIGTERM; `on_ready(url)` once it accepts requests.

    Port 0 picks a free port; the URL passed to `on_ready` has the real one. Raises
    ValueError, before binding, for a non-loopback `host` without a token (unless
    `config.insecure_no_token`).
    """
    import socket

    import uvicorn

    problem = exposure_problem(host, config.token, insecure_no_token=config.insecure_no_token)
    if problem:
        raise ValueError(problem)
    return_large_buffers_to_the_os()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound}"
    counts = ConnectionCounts()
    app = create_app(store, config, connections=counts)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if on_ready and not self.should_exit:
                on_ready(url)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """uvicorn's, minus re-raising the signal once the server stopped: that would
            kill this process before it drains the write queue, stops its decoding
            processes and closes the store."""
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    server = _Server(
        uvicorn.Config(
            app,
            http=limited_protocol(config.limits, counts),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
    )
    limits = config.limits
    _log.info(
        "serving %s on %s: %s, queue %d, body budget %d bytes, %d connections, "
        "header/body timeouts %g/%gs%s%s",
        store.location,
        url,
        "read-only"
        if config.read_only
        else f"{config.decoders} ingest worker(s)"
        if config.decoders
        else "ingest on a thread",
        config.queue_size,
        config.body_budget,
        limits.max_connections,
        limits.header_timeout,
        limits.body_timeout,
        ", no token" if config.token is None else "",
        f", forwarding to {config.forward}" if config.forward else "",
    )
    try:
        server.run(sockets=[sock])
    finally:
        _log.info("stopping: finishing the requests in hand")
        app.state.shutdown()
        sock.close()
        _log.info("stopped")
