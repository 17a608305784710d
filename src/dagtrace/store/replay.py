"""Replay planning: what a replay of a finished run reuses and what it reruns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import NotFoundError, NotReusableError
from .reads import StoreReads


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay of `replay_of` reuses and what it must execute.

    A runner executes every node of its DAG that is not in `reuse`; `reuse` holds
    the outputs (JSON) of the old run's completed or skipped nodes that were not
    asked to rerun and whose output is whole.
    """

    replay_of: str
    replay_root: str
    """The first run of the replay chain (Dagster's root run)."""
    dag_nsref: str
    source_inputs_json: str | None
    reuse: dict[str, str]
    rerun: frozenset[str]
    """Nodes asked to rerun, plus the old run's nodes that did not complete."""
    node_spans: dict[str, tuple[str, str]]
    """label → (trace id, span id) of the old node spans, for span links."""


def plan_replay(
    store: StoreReads, run_id: str, rerun_nodes: Iterable[str] = (), *, from_failure: bool = False
) -> ReplayPlan:
    """Plan a replay of a finished run: rerun `rerun_nodes` (and, with `from_failure`,
    every node that did not complete), reuse the other outputs."""
    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id!r} not found in {store.location}")
    details: Mapping[str, Any] = store.get_run_details(run_id) or {}
    with store._read() as cur:
        cur.execute(
            "SELECT node_label, status, output_json, trace_id, span_id, payload_error "
            "FROM node_executions WHERE run_id = ?",
            (run_id,),
        )
        rows = cur.fetchall()
    if details.get("payload_error"):
        raise NotReusableError(
            f"run {run_id!r} cannot be replayed: its source inputs were not stored "
            f"exactly ({details['payload_error']})"
        )
    rerun = set(rerun_nodes)
    reuse: dict[str, str] = {}
    altered = []
    for label, status, output, _, _, payload_error in rows:
        if label in rerun:
            continue
        if payload_error and status in ("completed", "skipped"):
            altered.append(label)
        elif status in ("completed", "skipped") and output is not None:
            reuse[label] = output
        else:
            rerun.add(label)
    if altered:
        raise NotReusableError(
            f"run {run_id!r}: the outputs of {', '.join(sorted(altered))} were not stored "
            "exactly (redacted, capped or cut on the way) and cannot be reused; "
            "replay them too (add them to the nodes to rerun)"
        )
    return ReplayPlan(
        replay_of=run_id,
        replay_root=details.get("replay_root_run_id") or run_id,
        dag_nsref=run["dag_nsref"],
        source_inputs_json=run["source_inputs_json"],
        reuse=reuse,
        rerun=frozenset(rerun),
        node_spans={r[0]: (r[3], r[4]) for r in rows if r[3] and r[4]},
    )
