"""A lythonic DagRunner traced through dagtrace: the main job of README.

    python examples/lythonic_pipeline.py [--db PATH] [--forward URL]

1. runs a DAG whose map node fans out over a sub-DAG, and whose `publish` node fails;
2. fixes the cause and restarts the same run id (completed nodes are not run again);
3. replays `publish` alone as a new run, recording which run it replays;
4. prints each run as a tree with statuses, durations and trace ids, and how to open
   them in the web view (`dagtrace serve --db dagtrace.db`, then http://127.0.0.1:4319/).

Every provenance write is an OpenTelemetry span; with `--forward` (or
OTEL_EXPORTER_OTLP_ENDPOINT) the same spans go to Jaeger or a Collector.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from lythonic.compose.dag_runner import DagRunner
from lythonic.compose.namespace import Dag

from dagtrace import render_run_tree
from dagtrace.lythonic import TracedProvenance

BROKEN = {"publish": True}


def fetch(text: str) -> str:
    return text


def split(text: str) -> list[str]:
    return text.split()


def shout(word: str) -> str:
    return word.upper()


def publish(words: list[str]) -> str:
    if BROKEN["publish"]:
        raise ConnectionError("the publishing endpoint refused the connection")
    return " ".join(words)


def build_dag() -> Dag:
    per_word = Dag()
    per_word.node(shout)
    dag = Dag()
    dag.node(fetch) >> dag.node(split) >> dag.map(per_word, label="shout_each") >> dag.node(publish)
    return dag


def show(provenance: TracedProvenance, run_id: str, title: str) -> None:
    run = provenance.inspect_run(run_id)
    assert run is not None
    print(f"\n── {title}")
    print(render_run_tree(run, details=provenance.store.get_run_details))


async def main(db: str, forward: str | None) -> None:
    provenance = TracedProvenance(db, forward=forward)
    inputs = {"fetch": {"text": "spans become provenance"}}

    first = await DagRunner(build_dag(), provenance=provenance).run(inputs, dag_nsref="example")
    show(provenance, first.run_id, f"1. first run: {first.status} at {first.failed_node!r}")

    BROKEN["publish"] = False
    await DagRunner(build_dag(), provenance=provenance).restart(first.run_id)
    show(provenance, first.run_id, "2. restarted: the same run id, a new attempt")

    with provenance.replay_lineage(first.run_id):
        replay = await DagRunner(build_dag(), provenance=provenance).replay(
            first.run_id, {"publish"}
        )
    show(provenance, replay.run_id, f"3. replay of 'publish' (replays {first.run_id})")

    trace_id = (provenance.store.get_run_details(first.run_id) or {}).get("trace_id")
    provenance.close()
    print(f"\nstored in {os.path.abspath(db)}; try: dagtrace show {first.run_id} --db {db}")
    print(
        "To see the same runs in Jaeger: start Jaeger (OTLP on 4318, UI on 16686), run this\n"
        "again with --forward http://localhost:4318/v1/traces, then open\n"
        f"http://localhost:16686/trace/<trace id> (this run's latest attempt: {trace_id})."
    )
    print(
        f"\nTo open these runs in the web view: dagtrace serve --db {db}\n"
        f"then browse http://127.0.0.1:4319/ (this run: http://127.0.0.1:4319/runs/{first.run_id})."
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)  # lythonic logs the planned failure
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("DAGTRACE_DB", "dagtrace.db"))
    parser.add_argument("--forward", default=None, help="an OTLP/HTTP traces endpoint")
    args = parser.parse_args()
    asyncio.run(main(args.db, args.forward))
