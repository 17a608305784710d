"""Text rendering of a run tree, shared by the examples and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ._models import DagRun, NodeExecution

_MARKS = {"completed": "✓", "failed": "✗", "running": "…", "paused": "‖", "skipped": "↷"}


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f" {seconds * 1000:.1f}ms" if seconds < 1 else f" {seconds:.2f}s"


def _first_line(error: str | None) -> str:
    if not error:
        return ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return f"  ← {lines[-1].strip()}" if lines else ""


def render_run_tree(
    run: DagRun,
    indent: str = "",
    *,
    details: Callable[[str], dict[str, Any] | None] | None = None,
) -> str:
    """A run, its nodes (start order) and their sub-DAG runs as an indented tree.

    `details` (e.g. `store.get_run_details`) adds each run's attempt and trace id.
    """
    mark = _MARKS.get(run.status, "?")
    duration = _duration(run.started_at, run.finished_at)
    head = f"{indent}{mark} {run.dag_nsref}  [{run.status}]{duration}  run {run.run_id}"
    extra = details(run.run_id) if details else None
    if extra:
        if (extra.get("attempt") or 1) > 1:
            head += f"  attempt {extra['attempt']}"
        if extra.get("trace_id"):
            head += f"  trace {extra['trace_id']}"
    lines = [head]
    nodes = sorted(run.nodes.values(), key=_node_order)
    for node in nodes:
        lines.append(_render_node(node, indent + "    "))
        for key, child in sorted((node.sub_dags or {}).items()):
            lines.append(f"{indent}        {key}:")
            lines.append(render_run_tree(child, indent + "          ", details=details))
    return "\n".join(lines)


def _node_order(node: NodeExecution) -> tuple[float, str]:
    return (node.started_at.timestamp() if node.started_at else float("inf"), node.node_label)


def _render_node(node: NodeExecution, indent: str) -> str:
    mark = _MARKS.get(node.status, "?")
    return (
        f"{indent}{mark} {node.node_label}  [{node.status}]"
        f"{_duration(node.started_at, node.finished_at)}{_first_line(node.error)}"
    )
