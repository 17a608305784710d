"""A linear lythonic DAG whose node can SIGKILL its own process: a runner killed mid-node
at a chosen point (not after a sleep). Each node appends its label to a log first."""

import os
import signal

from lythonic.compose.namespace import Dag

_STATE = {"log": "", "kill_at": ""}


def setup(log: str, kill_at: str) -> None:
    _STATE.update(log=log, kill_at=kill_at)


def _step(label: str, n: int) -> int:
    with open(_STATE["log"], "a", encoding="utf-8") as out:
        out.write(label + "\n")
    if label == _STATE["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return n + 1


def step0(n: int) -> int:
    return _step("step0", n)


def step1(n: int) -> int:
    return _step("step1", n)


def step2(n: int) -> int:
    return _step("step2", n)


def step3(n: int) -> int:
    return _step("step3", n)


def step4(n: int) -> int:
    return _step("step4", n)


def dag() -> Dag:
    d = Dag()
    d.node(step0) >> d.node(step1) >> d.node(step2) >> d.node(step3) >> d.node(step4)
    return d
