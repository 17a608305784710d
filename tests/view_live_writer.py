"""A runner in its own process for the live-update test: starts run `live-run` with
node `first` running, prints STARTED, then on each line read from stdin takes one
more step: `first` completes, `second` runs and completes, the run completes."""

from __future__ import annotations

import sys

import dagtrace


def main(db: str) -> None:
    provider = dagtrace.configure(db)
    tracer = dagtrace.DagTracer(provider)
    with tracer.run("live/dag", run_id="live-run", inputs={"first": 1}) as run:
        with run.node("first", input=1, is_source=True) as node:
            provider.force_flush()
            print("STARTED", flush=True)
            sys.stdin.readline()
            node.set_output(2)
            node.edge("second")
        with run.node("second", input=2, is_sink=True) as node:
            node.set_output(3)
        run.set_outputs({"second": 3})
    provider.shutdown()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
