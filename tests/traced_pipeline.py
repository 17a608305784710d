"""A DAG run instrumented with dagtrace's helpers: map and call sub-DAGs two levels deep,
a failing node, a pause and a restart of the same run id. Used by several tests and by
processes the tests start."""

from __future__ import annotations

from typing import Any

import dagtrace

WORDS = ["alpha", "beta", "gamma"]


def run_pipeline(
    tracer: dagtrace.DagTracer,
    *,
    run_id: str = "run-1",
    attempt: int = 1,
    fail_publish: bool = False,
    pause_before_publish: bool = False,
    done: dict[str, Any] | None = None,
) -> None:
    """The same pipeline for every attempt; `done` holds outputs of nodes completed before
    (a restart skips them, as a runner reading the store would)."""
    done = done or {}
    try:
        with tracer.run("pipe", run_id=run_id, inputs={"load": {"n": 3}}, attempt=attempt) as run:
            words = _node(run, "load", {"n": 3}, lambda: WORDS, ["shout"], done, is_source=True)
            if "shout" not in done:
                with run.node("shout", input=words) as composite:
                    out = []
                    for i, w in enumerate(words):
                        with composite.sub_run(f"shout[{i}]", inputs={"w": w}) as sub:
                            with sub.node("upper", input=w, is_source=True) as n:
                                n.set_output(w.upper())
                                n.edge("explain")
                            with sub.node("explain", input=w.upper(), is_sink=True) as n:
                                # a call sub-DAG inside a map sub-DAG: grandchildren
                                with n.sub_run("explain[]", inputs=w) as inner:
                                    with inner.node("describe", input=w, is_source=True) as d:
                                        d.set_output(f"{w}!")
                                    inner.set_outputs({"describe": f"{w}!"})
                                n.set_output(f"{w}!")
                            sub.set_outputs({"explain": f"{w}!"})
                            out.append(f"{w}!")
                    composite.set_output(out)
                    composite.edge("publish")
            if pause_before_publish:
                raise dagtrace.DagPaused()
            with run.node(
                "publish",
                input=done["shout"] if "shout" in done else out,  # noqa: SIM401 - out unset then
                is_sink=True,
            ) as n:
                if fail_publish:
                    raise ConnectionError("publish endpoint refused")
                n.set_output("ok")
            run.set_outputs({"publish": "ok"})
    except ConnectionError:
        pass


def _node(
    run: Any, label: str, inp: Any, fn: Any, edges: list[str], done: dict[str, Any], **flags: Any
) -> Any:
    if label in done:
        return done[label]
    with run.node(label, input=inp, **flags) as n:
        value = fn()
        n.set_output(value)
        n.edge(*edges)
    return value
