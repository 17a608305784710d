"""Drive lythonic's DagRunner through every scenario against any provenance object."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import lythonic_dags as dags
from lythonic.compose.dag_runner import DagRunner

TEXT = "hello big world of dags"


async def _run_all(provenance: Any) -> dict[str, str]:
    dags.SWITCHES.update(flaky_fails=True, pause_once=True, beta_fails=True)
    run_ids: dict[str, str] = {}
    for name, factory in dags.SCENARIOS.items():
        runner = DagRunner(factory(), provenance=provenance)
        dags.EXTERNAL["runner"] = runner if name == "externally_paused" else None
        result = await runner.run({"load": {"text": TEXT}}, dag_nsref=name)
        run_ids[name] = result.run_id
    # A map with one failed element, fixed and restarted: the map node runs again.
    dags.SWITCHES["beta_fails"] = False
    remapped = await DagRunner(dags.mapped_flaky(), provenance=provenance).restart(
        run_ids["mapped_flaky"]
    )
    assert remapped.status == "completed", remapped
    # An externally paused run, restarted.
    resumed_external = await DagRunner(dags.externally_paused(), provenance=provenance).restart(
        run_ids["externally_paused"]
    )
    assert resumed_external.status == "completed", resumed_external
    # A failed run, fixed and restarted under the same run id.
    dags.SWITCHES["flaky_fails"] = False
    restarted = await DagRunner(dags.failing(), provenance=provenance).restart(run_ids["failing"])
    assert restarted.status == "completed", restarted
    # A paused run, restarted to completion.
    resumed = await DagRunner(dags.pausing_dag(), provenance=provenance).restart(run_ids["pausing"])
    assert resumed.status == "completed", resumed
    # A replay of one node: a new run with the others skipped.
    lineage = getattr(provenance, "replay_lineage", None)
    with lineage(run_ids["linear"]) if lineage else contextlib.nullcontext():
        replayed = await DagRunner(dags.linear(), provenance=provenance).replay(
            run_ids["linear"], {"count"}
        )
    run_ids["replay_of_linear"] = replayed.run_id
    return run_ids


def run_all(provenance: Any) -> dict[str, str]:
    """Run every scenario, restart the failed and paused runs, replay one; name → run id."""
    return asyncio.run(_run_all(provenance))


def snapshot(provenance: Any, run_ids: dict[str, str]) -> dict[str, Any]:
    """Every read of the DagProvenance API, as plain data, for field-by-field comparison."""
    out: dict[str, Any] = {}
    for name, run_id in sorted(run_ids.items()):
        run = provenance.inspect_run(run_id)
        provenance.load_io(run)
        out[name] = {
            "get_run": provenance.get_run(run_id),
            "nodes": sorted(provenance.get_node_executions(run_id), key=lambda n: n["node_label"]),
            "edges": sorted(
                provenance.get_edge_traversals(run_id),
                key=lambda e: (e["traversed_at"], e["upstream_label"], e["downstream_label"]),
            ),
            "pending": sorted(provenance.get_pending_nodes(run_id)),
            "outputs": {
                n["node_label"]: provenance.get_node_output(run_id, n["node_label"])
                for n in provenance.get_node_executions(run_id)
            },
            "inspect_run": _dump(run),
            "child_runs": [_dump(r) for r in provenance.get_child_runs(run_id)],
        }
    out["recent"] = [_dump(r) for r in provenance.get_recent_runs(limit=1000)]
    out["recent_completed"] = [
        _dump(r) for r in provenance.get_recent_runs(limit=5, status="completed")
    ]
    out["active"] = [_dump(r) for r in provenance.get_active_runs()]
    return out


AMBIGUOUS = "mapped_flaky"
"""Its restarted map node leaves two child runs under each expansion key: lythonic shows
whichever its query returns last, dagtrace the latest attempt (tested on its own)."""


def _dump(run: Any) -> dict[str, Any]:
    data: dict[str, Any] = run.model_dump()
    _normalise(data)
    return data


def _normalise(run: dict[str, Any]) -> None:
    """Edges with equal timestamps have no defined order in either library."""
    for node in run["nodes"].values():
        node["edges"].sort(key=lambda e: (e["traversed_at"], e["downstream_label"]))
        if node["sub_dags"] and run["dag_nsref"].startswith(AMBIGUOUS):
            node["sub_dags"] = sorted(node["sub_dags"])
            continue
        for child in (node["sub_dags"] or {}).values():
            _normalise(child)
