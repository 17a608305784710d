"""A hand-written asyncio pipeline instrumented with dagtrace's helpers (no lythonic).

    python examples/asyncio_pipeline.py [--db PATH] [--forward URL]

fetch → split → score (a map: one sub-DAG run per chunk, concurrently) → report.
`report` fails on the first run; the pipeline restarts the same run id as attempt 2,
skipping what completed (read back from the store), then replays `report` alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import dagtrace
from dagtrace import render_run_tree

FAIL_REPORT = {"on": True}


async def fetch() -> str:
    await asyncio.sleep(0)
    return "alpha beta gamma delta"


async def score(word: str) -> int:
    await asyncio.sleep(0)
    return sum(map(ord, word)) % 100


async def report(scores: list[int]) -> str:
    if FAIL_REPORT["on"]:
        raise TimeoutError("the report service timed out")
    return f"mean score {sum(scores) / len(scores):.1f}"


async def pipeline(
    dag: dagtrace.DagTracer, prov: dagtrace.DagProvenance, run_id: str, attempt: int
) -> None:
    """Runs every node not completed in an earlier attempt of `run_id`."""
    done = {
        n["node_label"]: json.loads(n["output_json"])
        for n in prov.get_node_executions(run_id)
        if n["status"] in ("completed", "skipped") and n["output_json"]
    }
    try:
        with dag.run("scores", run_id=run_id, attempt=attempt, inputs={}) as run:
            text = done.get("fetch") or await _node(run, "fetch", {}, fetch(), ["split"], True)
            words = done.get("split") or await _node(run, "split", text, _split(text), ["score"])
            if "score" in done:
                scores = done["score"]
            else:
                with run.node("score", input=words) as composite:
                    scores = await asyncio.gather(
                        *(_score_one(composite, i, w) for i, w in enumerate(words))
                    )
                    composite.set_output(scores)
                    composite.edge("report")
            result = await _node(run, "report", scores, report(scores), [], is_sink=True)
            run.set_outputs({"report": result})
    except TimeoutError:
        pass  # recorded as the failure of `report` and of the run


async def _split(text: str) -> list[str]:
    return text.split()


async def _node(
    run: dagtrace.RunHandle,
    label: str,
    inp: Any,
    work: Any,
    edges: list[str],
    is_source: bool = False,
    is_sink: bool = False,
) -> Any:
    with run.node(label, input=inp, is_source=is_source, is_sink=is_sink) as node:
        value = await work
        node.set_output(value)
        node.edge(*edges)
    return value


async def _score_one(composite: dagtrace.NodeHandle, i: int, word: str) -> int:
    with composite.sub_run(f"score[{i}]", inputs={"word": word}) as sub:
        with sub.node("score_word", input=word, is_source=True, is_sink=True) as node:
            value = await score(word)
            node.set_output(value)
        sub.set_outputs({"score_word": value})
    return value


async def main(db: str, forward: str | None) -> None:
    provider = dagtrace.configure(db, forward=forward, service_name="asyncio-example")
    dag = dagtrace.DagTracer(provider)
    prov = dagtrace.DagProvenance(db)
    run_id = "scores-" + os.urandom(4).hex()

    await pipeline(dag, prov, run_id, attempt=1)
    print(f"attempt 1: {prov.get_run(run_id)['status']}")  # type: ignore[index]
    FAIL_REPORT["on"] = False
    await pipeline(dag, prov, run_id, attempt=2)
    print(f"attempt 2: {prov.get_run(run_id)['status']}")  # type: ignore[index]

    plan = prov.store.plan_replay(run_id, {"report"})
    with dag.replay(plan) as run:  # reused nodes are recorded as skipped
        with run.node("report", input=json.loads(plan.reuse["score"])) as node:
            node.set_output(await report(json.loads(plan.reuse["score"])))
        replay_id = run.run_id
    provider.shutdown()

    for shown in (run_id, replay_id):
        tree = prov.inspect_run(shown)
        assert tree is not None
        print()
        print(render_run_tree(tree, details=prov.store.get_run_details))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("DAGTRACE_DB", "dagtrace.db"))
    parser.add_argument("--forward", default=None, help="an OTLP/HTTP traces endpoint")
    args = parser.parse_args()
    asyncio.run(main(args.db, args.forward))
