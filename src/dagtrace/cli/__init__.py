"""The `dagtrace` command: a thin mirror of the store API.

    common.py       exit codes, shared options, opening a store or a server; store
                    errors become exit code 4 in one place (`DagtraceGroup`)
    reads.py        runs, show, stats, tail
    maintenance.py  close, prune, dead
    serve.py        serve (imports the server stack only when it runs)

Exit codes: 0 ok · 1 the run shown failed · 2 usage error · 3 not found ·
4 store (or server) unreachable.
"""

from __future__ import annotations

import click

from .. import __version__
from . import maintenance, reads, serve
from .common import DagtraceGroup


@click.group(cls=DagtraceGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (
    reads.runs,
    reads.show,
    maintenance.close,
    reads.stats,
    serve.serve,
    reads.tail,
    maintenance.prune,
    maintenance.dead,
):
    main.add_command(command)

__all__ = ["main"]
