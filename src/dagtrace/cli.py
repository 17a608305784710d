"""The `dagtrace` command: a thin mirror of the store API.

Exit codes: 0 ok · 1 the run shown failed · 2 usage error · 3 not found ·
4 store (or server) unreachable.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any, NoReturn

import click

from . import __version__, settings
from ._auth import client_token
from ._ingest import LOG_FORMAT
from ._limits import default_max_connections
from ._models import DagRun, describe_epoch, seconds_between
from ._provenance import open_store
from ._remote import RemoteProvenance
from ._render import render_run_tree
from ._store import Store
from .exceptions import StoreError
from .settings import (
    DB_ENV,
    DEFAULT_BODY_BUDGET,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_DB,
    DEFAULT_FORWARD_BUFFER,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_JAEGER_URL,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    DEFAULT_QUEUE,
    JAEGER_URL_ENV,
    TOKEN_ENV,
)

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


_db_option = click.option(
    "--db",
    envvar=DB_ENV,
    default=DEFAULT_DB,
    show_default=True,
    show_envvar=True,
    help="The store: a SQLite file path, a sqlite:/// or postgresql:// URL, or the URL of "
    "a dagtrace server (http://host:4319) to read through its API.",
)
_store_option = click.option(
    "--db",
    envvar=DB_ENV,
    default=DEFAULT_DB,
    show_default=True,
    show_envvar=True,
    help="The store itself: a SQLite file path, a sqlite:/// or postgresql:// URL.",
)
_token_option = click.option(
    "--token",
    envvar=TOKEN_ENV,
    show_envvar=True,
    default=None,
    help="Bearer token of the server (with an http:// --db); empty: none.",
)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"dagtrace: {message}", err=True)
    sys.exit(code)


def _reader(db: str, token: str | None) -> Store | RemoteProvenance:
    """A local store, or a server's query API when `db` is an http(s) URL."""
    if db.startswith(("http://", "https://")):
        try:
            return RemoteProvenance(db, token=client_token(token))
        except ValueError as e:
            _fail(f"--token: {e}", EXIT_USAGE)
    return _open(db)


def _open(db: str, *, read_only: bool = True) -> Store:
    if db.startswith(("http://", "https://")):
        _fail("this command needs the store itself, not a server URL", EXIT_USAGE)
    if read_only and "://" not in db and not os.path.exists(db):
        _fail(f"no store at {db} (set --db or {DB_ENV})", EXIT_UNREACHABLE)
    try:
        return open_store(db, read_only=read_only)
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)


def _when(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dagtrace")
def main() -> None:
    """dagtrace: provenance of DAG runs, recorded from OpenTelemetry spans.

    \b
    Examples:
      dagtrace serve                OTLP/HTTP receiver + query API on 127.0.0.1:4319
      dagtrace runs                 the 20 newest top-level runs
      dagtrace runs --failed        failed ones
      dagtrace show RUN_ID          one run as a tree, with its Jaeger link
      dagtrace tail --until RUN_ID  follow a run until it ends
      dagtrace close RUN_ID         close a run whose runner died
      dagtrace dead --close         close every run silent for 5 minutes
      dagtrace prune --older-than 30d
      dagtrace stats                row counts, size, bridge error counters

    Exit codes: 0 ok, 1 the run shown failed, 2 usage error, 3 not found,
    4 store or server unreachable. Every command takes --db (or DAGTRACE_DB).
    """


@main.command()
@_db_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--status", type=click.Choice(["running", "completed", "failed", "paused"]))
@click.option("--active", "status", flag_value="running", help="Same as --status running.")
@click.option("--failed", "status", flag_value="failed", help="Same as --status failed.")
@click.option("--all", "include_sub_runs", is_flag=True, help="Include sub-DAG runs.")
@_token_option
def runs(
    db: str, limit: int, status: str | None, include_sub_runs: bool, token: str | None
) -> None:
    """List recent runs, newest first (top-level runs unless --all).

    \b
    Example:
      dagtrace runs --failed --limit 5
      dagtrace runs --db http://127.0.0.1:4319
    """
    store = _reader(db, token)
    try:
        found = store.list_runs(limit, status, top_level=not include_sub_runs)
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)
    if not found:
        click.echo("no runs")
        return
    click.echo(f"{'RUN ID':<38}{'STATUS':<11}{'STARTED':<21}{'DURATION':>10}{'NODES':>7}  NSREF")
    for run in found:
        seconds = seconds_between(run["started_at"], run["finished_at"])
        duration = "-" if seconds is None else f"{seconds:.2f}s"
        click.echo(
            f"{run['run_id']:<38}{run['status']:<11}"
            f"{describe_epoch(run['started_at']):<21}"
            f"{duration:>10}{run['nodes']:>7}  {run['dag_nsref']}"
        )


@main.command()
@_db_option
@click.argument("run_id")
@click.option(
    "--jaeger-url",
    envvar=JAEGER_URL_ENV,
    default=DEFAULT_JAEGER_URL,
    show_default=True,
    show_envvar=True,
    help="Jaeger UI base URL for the link.",
)
@_token_option
@click.option(
    "--io",
    "with_io",
    is_flag=True,
    help="Also print each node's input and output (secret keys redacted).",
)
def show(db: str, run_id: str, jaeger_url: str, token: str | None, with_io: bool) -> None:
    """Show one run as a tree: nodes and sub-DAG runs, statuses, durations, errors.

    Exits 1 if the run failed, 3 if there is no such run.

    \b
    Example:
      dagtrace show 3f2c…   --jaeger-url http://jaeger.internal:16686
    """
    store = _reader(db, token)
    try:
        run = store.inspect_run(run_id)
        details = store.get_run_details(run_id) if run else None
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)
    if run is None:
        _fail(f"no run {run_id!r} in {db}", EXIT_NOT_FOUND)
    click.echo(render_run_tree(run))
    if with_io:
        _echo_io(store, run)
    _echo_details(details or {}, jaeger_url)
    if run.status == "failed":
        sys.exit(EXIT_RUN_FAILED)


def _echo_io(store: Store | RemoteProvenance, run: DagRun) -> None:
    from ._redact import Redaction

    redaction = Redaction(max_payload_bytes=2000)
    try:
        store.load_io(run)
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)
    if run.io:
        click.echo(f"inputs: {redaction.payload(run.io.input_json)}")
        click.echo(f"outputs: {redaction.payload(run.io.output_json)}")
    for label, node in run.nodes.items():
        if node.io:
            click.echo(
                f"  {label}: in {redaction.payload(node.io.input_json)} "
                f"→ out {redaction.payload(node.io.output_json)}"
            )


def _echo_details(details: dict[str, Any], jaeger_url: str) -> None:
    if details.get("attempt") and details["attempt"] > 1:
        click.echo(f"attempt: {details['attempt']}")
    if details.get("close_reason"):
        click.echo(f"closed: {details['close_reason']}")
    if details.get("replay_of_run_id"):
        click.echo(
            f"replay of: {details['replay_of_run_id']} "
            f"(chain root {details.get('replay_root_run_id')})"
        )
    if details.get("payload_error"):
        click.echo(f"payload: {details['payload_error']}")
    if details.get("trace_id"):
        click.echo(f"trace: {jaeger_url.rstrip('/')}/trace/{details['trace_id']}")


@main.command()
@_store_option
@click.argument("run_id")
@click.option(
    "--reason",
    default="interrupted: runner died",
    show_default=True,
    help="Recorded in dag_runs.close_reason.",
)
def close(db: str, run_id: str, reason: str) -> None:
    """Close a run whose runner died, so it can be restarted.

    The run, its running nodes and running sub-DAG runs become `failed`; spans
    of the dead attempt made before the close change nothing. Exits 3 if the run
    is unknown or not running.

    \b
    Example:
      dagtrace close 3f2c… --reason "host lost"
    """
    store = _open(db, read_only=False)
    try:
        closed = store.close_interrupted(run_id, reason)
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)
    if not closed:
        _fail(f"run {run_id!r} is unknown or not running", EXIT_NOT_FOUND)
    click.echo(f"closed {closed} run(s): {reason}")


@main.command()
@_db_option
@_token_option
def stats(db: str, token: str | None) -> None:
    """Row counts and the bridge's error counters.

    \b
    Example:
      dagtrace stats --db /var/lib/dagtrace/runs.db
    """
    store = _reader(db, token)
    try:
        figures = store.stats()
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)
    for name, value in figures.items():
        click.echo(f"{name:<28}{value:>14,}")


@main.command()
@_store_option
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
    "(default: one per core it may run on, at most 8; on one core, or 0: a thread of "
    "the server does both).",
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

    from ._auth import exposure_problem
    from ._limits import ConnectionLimits
    from ._redact import DEFAULT_PATTERNS, Redaction
    from ._server import ServeConfig
    from ._server import serve as run_server

    if token is None and settings.is_set_but_empty(TOKEN_ENV):
        _fail(f"{TOKEN_ENV} is set but empty: set a token, or unset it", EXIT_USAGE)
    problem = exposure_problem(host, token, insecure_no_token=insecure_no_token)
    if problem:
        _fail(f"--token: {problem}" if token is not None else problem, EXIT_USAGE)
    if body_budget < max_body:
        _fail("--body-budget must be at least --max-body", EXIT_USAGE)
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    if not read_only:
        _check_file_writable(db)
    store = _open(db, read_only=read_only)
    if not read_only:
        _check_writable(store)
    redaction = Redaction(
        patterns=() if no_redact else (patterns or DEFAULT_PATTERNS), max_payload_bytes=max_payload
    )
    if decoders is None:
        cores = _usable_cores()
        decoders = min(8, cores) if cores > 1 else 0
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
        _fail(f"cannot listen on {host}:{port}: {e.strerror}", EXIT_UNREACHABLE)
    finally:
        store.close()


@main.command()
@_db_option
@_token_option
@click.option(
    "--until",
    "until_run",
    default=None,
    metavar="RUN_ID",
    help="Stop when this run is no longer running (exit 1 if it failed).",
)
@click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    help="Seconds between two looks at the store.",
)
def tail(db: str, token: str | None, until_run: str | None, interval: float) -> None:
    """Print each run and node change as it happens, until interrupted.

    Starts with the runs running now or ended in the last 10 seconds, then follows
    every run that starts. With --until, exits when that run ends: 0, or 1 if it failed.

    \b
    Example:
      dagtrace tail --until 3f2c…
    """
    import time

    reader = _reader(db, token)
    seen: dict[tuple[str, str], str] = {}
    since = time.time() - _TAIL_LINGER
    try:
        while True:
            polled_at = time.time()
            try:
                run_ids = reader.runs_changed_since(since)
                if until_run and until_run not in run_ids:
                    run_ids.append(until_run)
                runs = [reader.inspect_run(run_id) for run_id in run_ids]
            except StoreError as e:
                _fail(str(e), EXIT_UNREACHABLE)
            watched = runs[run_ids.index(until_run)] if until_run else None
            if until_run and watched is None:
                _fail(f"no run {until_run!r}", EXIT_NOT_FOUND)
            for run in runs:
                if run is not None:
                    _print_changes(run, seen)
            if watched is not None and watched.status not in ("running",):
                sys.exit(EXIT_RUN_FAILED if watched.status == "failed" else EXIT_OK)
            since = polled_at - _TAIL_LINGER
            time.sleep(interval)  # polling a store: there is no event to wait on
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)


def _cannot_write(location: str, reason: str) -> NoReturn:
    _fail(f"cannot write {location}: {reason} (--read-only serves queries only)", EXIT_UNREACHABLE)


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
    from ._readiness import probe_write
    from ._sqlite import SqliteStore

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


_TAIL_LINGER = 10.0
"""Seconds a finished run is still re-read: spans that arrive late (batched, or from a
clock a little behind) still show."""


def _print_changes(run: DagRun, seen: dict[tuple[str, str], str]) -> None:
    if seen.get((run.run_id, "")) != run.status:
        seen[(run.run_id, "")] = run.status
        click.echo(f"{_when(run.started_at)}  run   {run.dag_nsref}  {run.status}  {run.run_id}")
    for label, node in sorted(run.nodes.items(), key=lambda kv: kv[1].started_at or run.started_at):
        if seen.get((run.run_id, label)) != node.status:
            seen[(run.run_id, label)] = node.status
            click.echo(
                f"{_when(node.finished_at or node.started_at)}  node  "
                f"{run.dag_nsref}:{label}  {node.status}"
            )
        for child in (node.sub_dags or {}).values():
            _print_changes(child, seen)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _age(text: str) -> float:
    """`30d`, `12h`, `90m`, `3600s`, `2w` → seconds."""
    text = text.strip().lower()
    unit = text[-1:] if text[-1:] in _UNITS else "s"
    number = text[:-1] if text[-1:] in _UNITS else text
    try:
        value = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use a number and a unit, e.g. 30d, 12h, 90m") from None
    if value < 0:
        raise click.BadParameter("the age cannot be negative")
    return value * _UNITS[unit]


@main.command()
@_store_option
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Runs started longer ago than this: 30d, 12h, 90m, 3600s.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["completed", "failed", "paused", "running"]),
    help="Only runs with this status (repeatable). Default: any finished run.",
)
@click.option(
    "--include-active",
    is_flag=True,
    help="Also prune running and paused runs (never done otherwise).",
)
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1),
    help="Top-level runs per transaction: writers wait at most one batch.",
)
@click.option(
    "--vacuum",
    is_flag=True,
    help="Then shrink the file (SQLite VACUUM: BLOCKS all writers until done).",
)
def prune(
    db: str,
    older_than: str,
    statuses: tuple[str, ...],
    include_active: bool,
    batch_size: int,
    vacuum: bool,
) -> None:
    """Delete old runs with their sub-DAG runs, nodes and edges.

    Runs in bounded batches without blocking writers for long. Running and paused
    runs are kept unless --include-active. Freed space is reused by new runs;
    --vacuum also shrinks the file, blocking writers meanwhile.

    \b
    Example:
      dagtrace prune --older-than 30d --status completed
    """
    import time

    store = _open(db, read_only=False)
    cutoff = time.time() - _age(older_than)
    try:
        deleted = store.prune(
            older_than=cutoff,
            statuses=statuses or None,
            include_active=include_active,
            batch_size=batch_size,
        )
        click.echo(
            f"pruned {deleted} run(s) started before "
            f"{datetime.fromtimestamp(cutoff).astimezone():%Y-%m-%d %H:%M:%S}"
        )
        if vacuum:
            store.vacuum()
            click.echo(f"vacuumed: {store.size_bytes():,} bytes now")
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)
    finally:
        store.close()


@main.command()
@_store_option
@click.option(
    "--silent-for",
    default="5m",
    show_default=True,
    metavar="AGE",
    help="No heartbeat, run or node activity for this long: 90s, 5m, 1h. Keep it "
    "above 3 × the runners' heartbeat interval (30 s by default).",
)
@click.option(
    "--close",
    "close_them",
    is_flag=True,
    help="Close the runs listed as interrupted (restartable).",
)
@click.option(
    "--auto",
    is_flag=True,
    help="Keep watching, closing silent runs every --interval, until interrupted.",
)
@click.option(
    "--interval",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between two looks, with --auto.",
)
def dead(db: str, silent_for: str, close_them: bool, auto: bool, interval: float) -> None:
    """List runs whose runner has gone silent; optionally close them as interrupted.

    A run is silent when it is `running` and neither a heartbeat (sent every 30 s by
    live runners) nor any run or node activity reached the store for --silent-for.

    \b
    Example:
      dagtrace dead --silent-for 10m --close
    """
    import time

    bound = _age(silent_for)
    store = _open(db, read_only=not (close_them or auto))
    try:
        while True:
            silent = store.silent_runs(bound)
            for run in silent:
                age = time.time() - run["last_seen"]
                line = f"{run['run_id']}  {run['dag_nsref']}  silent for {age:.0f}s"
                if close_them or auto:
                    reason = f"interrupted: runner silent for {age:.0f}s"
                    closed = store.close_interrupted(run["run_id"], reason)
                    line += "  → closed" if closed else "  (finished meanwhile)"
                click.echo(line)
            if not auto:
                if not silent:
                    click.echo(f"no run silent for {silent_for}")
                return
            time.sleep(interval)  # a period, not a handshake
    except StoreError as e:
        _fail(str(e), EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        return
    finally:
        store.close()
