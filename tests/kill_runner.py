"""A runner that SIGKILLs itself at its k-th store write (not after a sleep).

    python kill_runner.py DB KILL_AT MODE LOG

MODE `inside`: dies after the k-th write's statements ran, before its COMMIT;
`before`: before them. KILL_AT 0 never dies. Runs (or continues, as the next attempt) a pipeline of
plain nodes and a map over sub-DAG runs; every node that completed in an earlier
attempt is skipped. After each node has ended, its label is appended to LOG.
"""

import os
import signal
import sys
from collections.abc import Mapping
from typing import Any, cast

import dagtrace
from dagtrace.store import writer as _writer
from dagtrace.store.rows import Rows

db, kill_at, mode, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
_calls = 0
_apply = _writer.Writer.write_rows


def _kill_hook(self: _writer.Writer, rows: Rows) -> None:
    global _calls
    _calls += 1
    if _calls == kill_at:
        if mode == "inside":
            _apply(self, rows)
        os.kill(os.getpid(), signal.SIGKILL)
    _apply(self, rows)


cast(Any, _writer.Writer).write_rows = _kill_hook  # mypy: no assigning to a method

provider = dagtrace.configure(db)
tracer = dagtrace.DagTracer(provider)
prov = dagtrace.DagProvenance(db)
details: Mapping[str, Any] = prov.store.get_run_details("k") or {}
attempt = (details.get("attempt") or 0) + 1
done = {n["node_label"] for n in prov.get_node_executions("k") if n["status"] == "completed"}
log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - kept open until the kill


def ended(label: str) -> None:
    log.write(f"{attempt} {label}\n")
    log.flush()


with tracer.run("killable", run_id="k", attempt=attempt, inputs={"n": 3}) as run:
    for i in range(7):
        label = f"step{i}"
        if label in done:
            continue
        with run.node(label, input=i, is_source=i == 0) as node:
            node.set_output(i)
            node.edge(f"step{i + 1}" if i < 6 else "fan")
        ended(label)
    if "fan" not in done:
        with run.node("fan", input=[0, 1, 2, 3]) as composite:
            for j in range(4):
                with composite.sub_run(f"fan[{j}]", inputs={"j": j}) as sub:
                    with sub.node("leaf", input=j, is_source=True, is_sink=True) as leaf:
                        leaf.set_output(j * j)
            composite.set_output([j * j for j in range(4)])
        ended("fan")
    if "last" not in done:
        with run.node("last", input=[0, 1, 4, 9], is_sink=True) as node:
            node.set_output(14)
        ended("last")
    run.set_outputs({"last": 14})
provider.shutdown()
print(f"completed after {_calls} writes", flush=True)
