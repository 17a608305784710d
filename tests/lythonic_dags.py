"""lythonic DAGs exercising every shape of run the provenance schema records.

Module-level functions with annotations, because lythonic wires node outputs to
inputs by type and registers callables by their import path.
"""

from typing import Any

from lythonic.compose.dag_runner import DagPause
from lythonic.compose.namespace import Dag


def as_lythonic(provenance: object) -> Any:
    """A dagtrace provenance object, as what lythonic's `DagRunner(provenance=...)` takes.

    lythonic types that argument as its own `DagProvenance | NullProvenance | None`;
    dagtrace's `TracedProvenance` and `DagProvenance` are drop-ins by duck typing (the
    point of dagtrace), not subclasses, so the type checker is told here, once.
    """
    return provenance


SWITCHES = {"flaky_fails": True, "pause_once": True, "beta_fails": True}
"""Toggled by tests: a node that fails until fixed, a node that pauses once."""


class Text(str):
    pass


def load(text: str) -> str:
    return text


def words(text: str) -> list[str]:
    return text.split()


def shout(word: str) -> str:
    return word.upper()


def count(items: list[str]) -> int:
    return len(items)


def left(text: str) -> dict[str, int]:
    return {"left": len(text)}


def right(text: str) -> list[int]:
    return [len(text)]


def join(a: dict[str, int], b: list[int]) -> str:
    return f"{a['left']}+{b[0]}"


def flaky(items: list[str]) -> list[str]:
    if SWITCHES["flaky_fails"]:
        raise RuntimeError("flaky node failed on purpose")
    return items


def pausing(items: list[str]) -> list[str]:
    if SWITCHES["pause_once"]:
        SWITCHES["pause_once"] = False
        raise DagPause()
    return items


def shout_unless_beta(word: str) -> str:
    if SWITCHES["beta_fails"] and word == "big":
        raise ValueError("'big' failed on purpose")
    return word.upper()


EXTERNAL: dict[str, Any] = {"runner": None}
"""The runner of the external-pause scenario, paused from outside its node code."""


def noisy(items: list[str]) -> list[str]:
    runner = EXTERNAL["runner"]
    if runner is not None:
        runner.pause()  # as an operator's request would, between two nodes
        EXTERNAL["runner"] = None
    return items


def route(items: list[str]) -> list[tuple[str, str]]:
    return [("short" if len(w) < 4 else "long", w) for w in items]


def classify(text: str) -> tuple[str, str]:
    return ("short" if len(text) < 8 else "long", text)


def short_branch(word: str) -> str:
    return word.lower()


def long_branch(word: str) -> str:
    return word[::-1]


def by_first_letter(items: list[str]) -> dict[str, str]:
    return {w[0]: w for w in items}


def sub_shout() -> Dag:
    sub = Dag()
    sub.node(shout)
    return sub


def grandchild_dag() -> Dag:
    """A sub-DAG that itself calls a sub-DAG: runs with grandchildren."""
    inner = Dag()
    inner.node(load, label="inner_load") >> inner.node(sub_shout(), label="deep")
    return inner


def sub_flaky() -> Dag:
    sub = Dag()
    sub.node(shout_unless_beta)
    return sub


def mapped_flaky() -> Dag:
    """A map whose element `big` fails until fixed: a restart re-runs the map node."""
    dag = Dag()
    dag.node(load) >> dag.node(words) >> dag.map(sub_flaky(), label="mf")
    return dag


def externally_paused() -> Dag:
    dag = Dag()
    dag.node(load) >> dag.node(words) >> dag.node(noisy) >> dag.node(count)
    return dag


def linear() -> Dag:
    dag = Dag()
    dag.node(load) >> dag.node(words) >> dag.node(count)
    return dag


def fan_out_fan_in() -> Dag:
    dag = Dag()
    src = dag.node(load)
    a = dag.node(left)
    b = dag.node(right)
    j = dag.node(join)
    src >> a
    src >> b
    a >> j
    b >> j
    return dag


def mapped_list() -> Dag:
    dag = Dag()
    dag.node(load) >> dag.node(words) >> dag.map(sub_shout(), label="mapped")
    return dag


def mapped_dict() -> Dag:
    dag = Dag()
    (
        dag.node(load)
        >> dag.node(words)
        >> dag.node(by_first_letter)
        >> dag.map(sub_shout(), label="bykey")
    )
    return dag


def called() -> Dag:
    dag = Dag()
    dag.node(load) >> dag.node(sub_shout(), label="shout")
    return dag


def switched() -> Dag:
    dag = Dag()
    (
        dag.node(load)
        >> dag.node(classify)
        >> dag.switch({"short": short_branch, "long": long_branch}, label="pick")
    )
    return dag


def map_switched() -> Dag:
    dag = Dag()
    (
        dag.node(load)
        >> dag.node(words)
        >> dag.node(route)
        >> dag.map(dag.switch({"short": short_branch, "long": long_branch}, label="sw"), label="m")
    )
    return dag


def nested() -> Dag:
    dag = Dag()
    dag.node(load) >> dag.node(words) >> dag.map(grandchild_dag(), label="outer")
    return dag


def failing() -> Dag:
    dag = Dag()
    dag.node(load) >> dag.node(words) >> dag.node(flaky) >> dag.node(count)
    return dag


def pausing_dag() -> Dag:
    dag = Dag()
    dag.node(load) >> dag.node(words) >> dag.node(pausing) >> dag.node(count)
    return dag


SCENARIOS: dict[str, Any] = {
    "linear": linear,
    "fan_out_fan_in": fan_out_fan_in,
    "mapped_list": mapped_list,
    "mapped_dict": mapped_dict,
    "called": called,
    "switched": switched,
    "map_switched": map_switched,
    "nested": nested,
    "failing": failing,
    "pausing": pausing_dag,
    "mapped_flaky": mapped_flaky,
    "externally_paused": externally_paused,
}
