"""A run tree as the run page draws it, built straight from rows (`TreeRows`).

`inspect_run` builds pydantic models with datetimes for every node, most of the time
of a 2,000-node page; the page needs plain numbers. Sub-DAG runs are placed under
their composite node by the rule `inspect_run` uses (`dagtrace._subruns`): by the
nsref `{parent nsref}/{label}[{key}]`, else by the stored parent node, a later run
under the same key replacing an earlier one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from ..._models import DagRun
from ..._subruns import Linked, Place, nsref_place, parent_node_places
from ...store.view_reads import TreeRows

AGGREGATE_ABOVE = 20
"""A composite node with more sub-runs than this is drawn aggregated (the issue's 20)."""


def number(value: Any) -> float | None:
    """A stored time as a finite float, or None (JSON has no NaN; odd files hold text)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def places(rows: TreeRows, root_id: str) -> dict[str, Place]:
    """run id → where it hangs in its parent, for every placed sub-run of `root_id`, in
    start order (as `inspect_run` nests them: a later run under the same key wins)."""
    runs = {r["run_id"]: r for r in rows.runs}
    labels: dict[str, set[str]] = {}
    for node in rows.nodes:
        labels.setdefault(node["run_id"], set()).add(node["label"])
    found: dict[str, Place] = {}
    linked: list[Linked] = []
    for run in rows.runs:
        parent = runs.get(run["parent_run_id"] or "")
        if parent is None or parent is run or run["run_id"] == root_id:
            continue
        parent_labels = labels.get(parent["run_id"], set())
        place = nsref_place(run["dag_nsref"], parent["dag_nsref"], parent_labels)
        label = run["parent_node"]
        if place is not None:
            found[run["run_id"]] = place
        elif label and label in parent_labels:
            linked.append(Linked(run["run_id"], run["dag_nsref"], parent["run_id"], label))
    found.update(parent_node_places(linked))
    return {r["run_id"]: found[r["run_id"]] for r in rows.runs if r["run_id"] in found}


def page_tree(rows: TreeRows, root_id: str) -> dict[str, Any]:
    """The run `root_id` with its nodes, edges and placed sub-runs, nested."""
    nodes: dict[str, list[dict[str, Any]]] = {}
    for node in rows.nodes:
        nodes.setdefault(node["run_id"], []).append(node)
    edges: dict[str, list[tuple[str, str]]] = {}
    for run_id, up, down in rows.edges:
        edges.setdefault(run_id, []).append((up, down))
    subs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    runs = {r["run_id"]: r for r in rows.runs}
    for run_id, (label, key) in places(rows, root_id).items():  # start order: later ones win
        subs.setdefault((runs[run_id]["parent_run_id"], label), {})[key] = runs[run_id]
    return _run_data(runs[root_id], "", nodes, edges, subs)


def _run_data(
    run: dict[str, Any],
    prefix: str,
    nodes: dict[str, list[dict[str, Any]]],
    edges: dict[str, list[tuple[str, str]]],
    subs: dict[tuple[str, str], dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    run_id = run["run_id"]
    own = sorted(
        nodes.get(run_id, []), key=lambda n: (number(n["started_at"]) or math.inf, n["label"])
    )
    labels = {n["label"] for n in own}
    drawn = []
    for node in own:
        data = _node_data(run_id, node, prefix)
        under = subs.get((run_id, node["label"]), {})
        for key, sub in sorted(
            under.items(), key=lambda kv: (number(kv[1]["started_at"]) or math.inf, kv[1]["run_id"])
        ):
            inner = _run_data(sub, prefix + key + "/", nodes, edges, subs)
            data["subs"].append({"key": key, "path": prefix + key, "run": inner})
        if len(data["subs"]) > AGGREGATE_ABOVE:
            data["aggregate"] = counts(s["run"]["status"] for s in data["subs"])
        drawn.append(data)
    return {
        "run_id": run_id,
        "prefix": prefix,
        "nsref": run["dag_nsref"],
        "status": run["status"],
        "started_at": number(run["started_at"]),
        "finished_at": number(run["finished_at"]),
        "attempt": run["attempt"],
        "trace_id": run["trace_id"],
        "nodes": drawn,
        "edges": [[u, d] for u, d in edges.get(run_id, []) if u in labels and d in labels],
    }


def _node_data(run_id: str, node: dict[str, Any], prefix: str) -> dict[str, Any]:
    error = (node["error"] or "").strip()
    return {
        "label": node["label"],
        "path": prefix + node["label"],
        "run_id": run_id,
        "status": node["status"],
        "started_at": number(node["started_at"]),
        "finished_at": number(node["finished_at"]),
        "attempt": node["attempt"],
        "error_line": error.splitlines()[-1][:300] if error else None,
        "not_reusable": bool(node["payload_error"]),
        "subs": [],
        "aggregate": None,
    }


def counts(statuses: Iterator[str] | list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for status in statuses:
        found[status] = found.get(status, 0) + 1
    return found


def rows_of(run: DagRun) -> TreeRows:
    """The rows of a DagRun tree (tests build trees as models): each sub-run's nsref
    `{parent nsref}/{key}`, so it is placed where the model has it."""
    rows = TreeRows()

    def add(r: DagRun, nsref: str, parent: str | None) -> None:
        rows.runs.append(
            {
                "run_id": r.run_id,
                "dag_nsref": nsref,
                "parent_run_id": parent,
                "status": r.status,
                "started_at": r.started_at.timestamp(),
                "finished_at": r.finished_at.timestamp() if r.finished_at else None,
                "parent_node": None,
                "attempt": None,
                "trace_id": None,
            }
        )
        for node in r.nodes.values():
            rows.nodes.append(
                {
                    "run_id": r.run_id,
                    "label": node.node_label,
                    "status": node.status,
                    "started_at": node.started_at.timestamp() if node.started_at else None,
                    "finished_at": node.finished_at.timestamp() if node.finished_at else None,
                    "error": node.error,
                    "attempt": None,
                    "payload_error": None,
                }
            )
            rows.edges += [(r.run_id, node.node_label, e.downstream_label) for e in node.edges]
            for key, sub in (node.sub_dags or {}).items():
                add(sub, f"{nsref}/{key}", r.run_id)

    add(run, run.dag_nsref, None)
    rows.runs.sort(key=lambda r: (r["started_at"], r["run_id"]))
    return rows
