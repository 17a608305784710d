"""A lythonic DagRunner recording into dagtrace: a map over a sub-DAG and a failing node.

Run:  python examples/lythonic_pipeline.py [--db PATH]   (default ./dagtrace.db)

The run fails at `publish`; the example then fixes the cause and restarts the
same run id, which skips every node that had completed, and prints the tree.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from lythonic.compose.dag_runner import DagRunner
from lythonic.compose.namespace import Dag

import dagtrace
from dagtrace._render import render_run_tree

PUBLISH_IS_BROKEN = True


def fetch(text: str) -> str:
    return text


def split(text: str) -> list[str]:
    return text.split()


def shout(word: str) -> str:
    return word.upper()


def publish(words: list[str]) -> str:
    if PUBLISH_IS_BROKEN:
        raise ConnectionError("the publishing endpoint refused the connection")
    return " ".join(words)


def build_dag() -> Dag:
    per_word = Dag()
    per_word.node(shout)
    dag = Dag()
    dag.node(fetch) >> dag.node(split) >> dag.map(per_word, label="shout_each") >> dag.node(publish)
    return dag


def _inspect(provenance: dagtrace.DagProvenance, run_id: str) -> dagtrace.DagRun:
    run = provenance.inspect_run(run_id)
    assert run is not None
    return run


async def main(db: str) -> None:
    global PUBLISH_IS_BROKEN
    provenance = dagtrace.DagProvenance(db)
    runner = DagRunner(build_dag(), provenance=provenance)
    first = await runner.run({"fetch": {"text": "spans become provenance"}}, dag_nsref="example")
    print(f"first attempt: {first.status} at {first.failed_node!r}: {first.error}\n")
    print(render_run_tree(_inspect(provenance, first.run_id)))
    PUBLISH_IS_BROKEN = False
    second = await runner.restart(first.run_id)
    print(f"\nafter restart of the same run id: {second.status}, output {second.outputs}\n")
    print(render_run_tree(_inspect(provenance, first.run_id)))
    print(f"\nstored in {os.path.abspath(db)}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)  # lythonic logs the expected failure
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("DAGTRACE_DB", "dagtrace.db"))
    asyncio.run(main(parser.parse_args().db))
