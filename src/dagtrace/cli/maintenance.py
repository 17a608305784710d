"""Commands that change the store: `close`, `prune`, `dead`."""

from __future__ import annotations

from datetime import datetime

import click

from .common import (
    EXIT_NOT_FOUND,
    fail,
    open_local,
    store_option,
)


@click.command()
@store_option
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
    store = open_local(db, read_only=False)
    closed = store.close_interrupted(run_id, reason)
    if not closed:
        fail(f"run {run_id!r} is unknown or not running", EXIT_NOT_FOUND)
    click.echo(f"closed {closed} run(s): {reason}")


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


@click.command()
@store_option
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

    store = open_local(db, read_only=False)
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
    finally:
        store.close()


@click.command()
@store_option
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
    store = open_local(db, read_only=not (close_them or auto))
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
    except KeyboardInterrupt:
        return
    finally:
        store.close()
