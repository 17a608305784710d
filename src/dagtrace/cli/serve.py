"""`dagtrace serve`: the serve stack (FastAPI, uvicorn) is imported only when it runs,
so every other command starts without it."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from .. import settings
from ..exceptions import StoreError
from ..settings import (
    DEFAULT_BODY_BUDGET,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_FORWARD_BUFFER,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    DEFAULT_QUEUE,
    JAEGER_URL_ENV,
    TOKEN_ENV,
)
from ..store.base import Store
from .common import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    fail,
    open_local,
    store_option,
)


@click.command()
@store_option
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Interface to bind. Any other than a loopback one (0.0.0.0, ::, an address) "
    "needs --token, or --insecure-no-token.",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port (printed on the ready line).",
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    show_envvar=True,
    default=None,
    help="Require `Authorization: Bearer TOKEN` on ingestion, queries, /metrics and the "
    "API docs: visible ASCII, not empty (an empty one, or an empty DAGTRACE_TOKEN, is "
    "refused rather than taken as no token).",
)
@click.option(
    "--insecure-no-token",
    is_flag=True,
    help="Serve on a non-loopback --host without a token (anyone who reaches it may "
    "read and write the store).",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Answer queries only: no /v1/traces, no schema migration, nothing written. "
    "Without it, a SQLite file this process cannot write is refused (exit 4).",
)
@click.option(
    "--max-body",
    default=DEFAULT_MAX_BODY,
    show_default=True,
    type=click.IntRange(1024),
    help="Bytes per request, also after gunzip (413 above).",
)
@click.option(
    "--body-budget",
    default=DEFAULT_BODY_BUDGET,
    show_default=True,
    type=click.IntRange(1024),
    metavar="BYTES",
    help="Bytes of request bodies held at once, as received and after gunzip, from "
    "their first byte until answered: queued and being written included. Beyond it, 429 "
    "with Retry-After, before the body is read when its Content-Length does not fit. "
    "At least --max-body.",
)
@click.option(
    "--header-timeout",
    default=DEFAULT_HEADER_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0.1),
    metavar="SECONDS",
    help="From a connection waiting for a request (new, or its answer sent) to that "
    "request's headers; then it is closed (408 if part of a request came).",
)
@click.option(
    "--body-timeout",
    default=DEFAULT_BODY_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0.1),
    metavar="SECONDS",
    help="From a request's headers to the end of its body; then 408 and closed.",
)
@click.option(
    "--max-connections",
    default=None,
    type=click.IntRange(1),
    help="Open connections; a new one beyond it closes the one idle longest, or gets 503 "
    "when all are in a request (default: half the open-file limit, at most 1024).",
)
@click.option(
    "--readiness-probe-interval",
    default=5.0,
    type=click.FloatRange(0.05),
    hidden=True,
    help="Seconds without a write after which /readyz writes a probe.",
)
@click.option(
    "--queue",
    "queue_size",
    default=DEFAULT_QUEUE,
    show_default=True,
    type=click.IntRange(1),
    help="Requests waiting for a writer (an ingest worker or the server's thread); 429 above.",
)
@click.option(
    "--forward",
    default=None,
    metavar="URL",
    help="Also send what is received to this OTLP/HTTP endpoint (e.g. Jaeger).",
)
@click.option(
    "--forward-buffer",
    default=DEFAULT_FORWARD_BUFFER,
    show_default=True,
    type=click.IntRange(1024),
    metavar="BYTES",
    help="Received requests held while the forward target is slow or down; "
    "beyond it the oldest are dropped (the store keeps them).",
)
@click.option(
    "--redact",
    "patterns",
    multiple=True,
    metavar="REGEX",
    help="Key pattern whose values are hidden in forwarded spans and API answers "
    "(repeatable; replaces the defaults: password, token, secret, …).",
)
@click.option("--no-redact", is_flag=True, help="Hide nothing.")
@click.option(
    "--max-payload",
    default=None,
    type=click.IntRange(16),
    metavar="BYTES",
    help="Cap each JSON payload forwarded or returned by the API.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Server log (stderr, timestamped): info says what it serves and when it stops.",
)
@click.option(
    "--decoders",
    default=None,
    type=click.IntRange(0),
    help="Ingest workers: processes that decode requests and commit their rows "
    "(default: one per core it may run on, at most 8; on one core, on Windows, or 0: a "
    "thread of the server does both).",
)
@click.option(
    "--jaeger-url",
    envvar=JAEGER_URL_ENV,
    default=None,
    show_envvar=True,
    help="Jaeger UI base URL: the web view links runs and nodes to their traces there.",
)
def serve(
    db: str,
    host: str,
    port: int,
    token: str | None,
    insecure_no_token: bool,
    read_only: bool,
    max_body: int,
    body_budget: int,
    header_timeout: float,
    body_timeout: float,
    max_connections: int | None,
    readiness_probe_interval: float,
    queue_size: int,
    forward: str | None,
    forward_buffer: int,
    patterns: tuple[str, ...],
    no_redact: bool,
    max_payload: int | None,
    log_level: str,
    decoders: int | None,
    jaeger_url: str | None,
) -> None:
    """Receive OTLP/HTTP traces into the store and serve the query API.

    POST /v1/traces (protobuf or JSON, gzip) · GET /api/v1/runs … (OpenAPI at /docs)
    · /healthz · /readyz · /metrics · the web view at / (runs, graphs, compare).
    A 200 means the request's rows are committed.
    Exits 2 for an unusable token or an exposed --host without one, 4 when the store
    cannot be opened or (SQLite, without --read-only) written.

    \b
    Example:
      dagtrace serve --db /var/lib/dagtrace/runs.db --port 4319 --forward http://localhost:4318/v1/traces
    """
    import logging

    from .._redact import DEFAULT_PATTERNS, Redaction
    from ..serve import ServeConfig
    from ..serve import serve as run_server
    from ..serve.auth import exposure_problem
    from ..serve.ingest import LOG_FORMAT
    from ..serve.limits import ConnectionLimits, default_max_connections
    from ..serve.workers import WorkerPool

    if token is None and settings.is_set_but_empty(TOKEN_ENV):
        fail(f"{TOKEN_ENV} is set but empty: set a token, or unset it", EXIT_USAGE)
    problem = exposure_problem(host, token, insecure_no_token=insecure_no_token)
    if problem:
        fail(f"--token: {problem}" if token is not None else problem, EXIT_USAGE)
    if body_budget < max_body:
        fail("--body-budget must be at least --max-body", EXIT_USAGE)
    if decoders is None:
        cores = _usable_cores()
        decoders = min(8, cores) if cores > 1 and WorkerPool.supported() else 0
    elif decoders and not WorkerPool.supported():
        fail("--decoders: ingest worker processes need a Unix event loop; use 0 here", EXIT_USAGE)
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    if not read_only:
        _check_file_writable(db)
    store = open_local(db, read_only=read_only, batched_writes=True)
    if not read_only:
        _check_writable(store)
    redaction = Redaction(
        patterns=() if no_redact else (patterns or DEFAULT_PATTERNS), max_payload_bytes=max_payload
    )
    config = ServeConfig(
        max_body=max_body,
        queue_size=queue_size,
        token=token,
        forward=forward,
        forward_buffer=forward_buffer,
        redaction=redaction,
        decoders=decoders,
        body_budget=body_budget,
        limits=ConnectionLimits(
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections or default_max_connections(),
        ),
        read_only=read_only,
        insecure_no_token=insecure_no_token,
        probe_interval=readiness_probe_interval,
        jaeger_url=jaeger_url,
    )

    def ready(url: str) -> None:
        click.echo(f"dagtrace serve: listening on {url} (store {store.location})", err=False)
        sys.stdout.flush()

    try:
        run_server(store, host=host, port=port, config=config, on_ready=ready)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror}", EXIT_UNREACHABLE)
    finally:
        store.close()


def _cannot_write(location: str, reason: str) -> NoReturn:
    fail(f"cannot write {location}: {reason} (--read-only serves queries only)", EXIT_UNREACHABLE)


def _check_file_writable(db: str) -> None:
    """Exit 4 if `db` is an existing SQLite file this process may not open for writing
    (before SQLite opens it: it would fall back to reading it)."""
    if db.startswith("sqlite:///"):
        db = db.removeprefix("sqlite:///")
    elif "://" in db:
        return
    if os.path.isfile(db):
        try:
            with open(db, "r+b"):
                pass
        except OSError as e:
            _cannot_write(db, e.strerror or str(e))


def _check_writable(store: Store) -> None:
    """Exit 4 unless this process can write a SQLite store (a probe write). A
    PostgreSQL role without write rights is served: 503 until it gets them."""
    from ..serve.readiness import probe_write
    from ..store.sqlite import SqliteStore

    if not isinstance(store, SqliteStore):
        return
    try:
        if store.read_only:
            raise StoreError("not writable by this process", location=store.location)
        probe_write(store)
    except StoreError as e:
        store.close()
        _cannot_write(store.location, str(e))


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a
    container's cpuset), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1
