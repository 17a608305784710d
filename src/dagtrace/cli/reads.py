"""Commands that read: `runs`, `show`, `stats`, `tail`."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click

from .._models import DagRun, describe_epoch, seconds_between
from .._remote import RemoteProvenance
from .._render import render_run_tree
from ..settings import (
    DEFAULT_JAEGER_URL,
    JAEGER_URL_ENV,
)
from ..store.base import Store
from .common import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_RUN_FAILED,
    db_option,
    fail,
    open_reader,
    token_option,
    when,
)


@click.command()
@db_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--status", type=click.Choice(["running", "completed", "failed", "paused"]))
@click.option("--active", "status", flag_value="running", help="Same as --status running.")
@click.option("--failed", "status", flag_value="failed", help="Same as --status failed.")
@click.option("--all", "include_sub_runs", is_flag=True, help="Include sub-DAG runs.")
@token_option
def runs(
    db: str, limit: int, status: str | None, include_sub_runs: bool, token: str | None
) -> None:
    """List recent runs, newest first (top-level runs unless --all).

    \b
    Example:
      dagtrace runs --failed --limit 5
      dagtrace runs --db http://127.0.0.1:4319
    """
    store = open_reader(db, token)
    found = store.list_runs(limit, status, top_level=not include_sub_runs)
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


@click.command()
@db_option
@click.argument("run_id")
@click.option(
    "--jaeger-url",
    envvar=JAEGER_URL_ENV,
    default=DEFAULT_JAEGER_URL,
    show_default=True,
    show_envvar=True,
    help="Jaeger UI base URL for the link.",
)
@token_option
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
    store = open_reader(db, token)
    run = store.inspect_run(run_id)
    details = store.get_run_details(run_id) if run else None
    if run is None:
        fail(f"no run {run_id!r} in {db}", EXIT_NOT_FOUND)
    click.echo(render_run_tree(run))
    if with_io:
        _echo_io(store, run)
    _echo_details(details or {}, jaeger_url)
    if run.status == "failed":
        sys.exit(EXIT_RUN_FAILED)


def _echo_io(store: Store | RemoteProvenance, run: DagRun) -> None:
    from .._redact import Redaction

    redaction = Redaction(max_payload_bytes=2000)
    store.load_io(run)
    if run.io:
        click.echo(f"inputs: {redaction.payload(run.io.input_json)}")
        click.echo(f"outputs: {redaction.payload(run.io.output_json)}")
    for label, node in run.nodes.items():
        if node.io:
            click.echo(
                f"  {label}: in {redaction.payload(node.io.input_json)} "
                f"→ out {redaction.payload(node.io.output_json)}"
            )


def _echo_details(details: Mapping[str, Any], jaeger_url: str) -> None:
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


@click.command()
@db_option
@token_option
def stats(db: str, token: str | None) -> None:
    """Row counts and the bridge's error counters.

    \b
    Example:
      dagtrace stats --db /var/lib/dagtrace/runs.db
    """
    store = open_reader(db, token)
    figures = store.stats()
    for name, value in figures.items():
        click.echo(f"{name:<28}{value:>14,}")


@click.command()
@db_option
@token_option
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

    reader = open_reader(db, token)
    seen: dict[tuple[str, str], str] = {}
    since = time.time() - _TAIL_LINGER
    try:
        while True:
            polled_at = time.time()
            run_ids = reader.runs_changed_since(since)
            if until_run and until_run not in run_ids:
                run_ids.append(until_run)
            runs = [reader.inspect_run(run_id) for run_id in run_ids]
            watched = runs[run_ids.index(until_run)] if until_run else None
            if until_run and watched is None:
                fail(f"no run {until_run!r}", EXIT_NOT_FOUND)
            for run in runs:
                if run is not None:
                    _print_changes(run, seen)
            if watched is not None and watched.status not in ("running",):
                sys.exit(EXIT_RUN_FAILED if watched.status == "failed" else EXIT_OK)
            since = polled_at - _TAIL_LINGER
            time.sleep(interval)  # polling a store: there is no event to wait on
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)


_TAIL_LINGER = 10.0
"""Seconds a finished run is still re-read: spans that arrive late (batched, or from a
clock a little behind) still show."""


def _print_changes(run: DagRun, seen: dict[tuple[str, str], str]) -> None:
    if seen.get((run.run_id, "")) != run.status:
        seen[(run.run_id, "")] = run.status
        click.echo(f"{when(run.started_at)}  run   {run.dag_nsref}  {run.status}  {run.run_id}")
    for label, node in sorted(run.nodes.items(), key=lambda kv: kv[1].started_at or run.started_at):
        if seen.get((run.run_id, label)) != node.status:
            seen[(run.run_id, label)] = node.status
            click.echo(
                f"{when(node.finished_at or node.started_at)}  node  "
                f"{run.dag_nsref}:{label}  {node.status}"
            )
        for child in (node.sub_dags or {}).values():
            _print_changes(child, seen)
