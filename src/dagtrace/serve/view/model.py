"""What the web view computes, as plain typed functions over a run tree: the page's
graph data, the critical path, the root cause, map aggregation and the compare diff.

Kept apart from the routes so each is unit-tested without a server or a browser,
and computed once on the server rather than in the page (jaeger-ui's critical path
got slow on large traces in the browser).

Node paths name a node uniquely on a page: a top-level node is its label, a node
of a sub-DAG run is `{sub-run path}/{label}`, a sub-run's path being its composite
node's run prefix plus its key (`shout_each[0]/shout`).
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

COLLAPSE_ABOVE = 150
"""Sub-DAG clusters start collapsed when the tree holds more nodes than this: dagre
lays out ~1,000 nodes per second on this machine's cores (bench_view.py)."""


def critical_path(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The critical path, first node to last, and its edges (as node path pairs): from
    the node that finished last, step to the upstream node (over a traversed edge)
    that finished last, and so on, ties by label. A composite node on it continues
    into its sub-run that finished last, whose own critical path comes before it."""
    finished = {n["label"]: n for n in data["nodes"] if n["finished_at"] is not None}
    upstream: dict[str, list[str]] = {}
    for up, down in data["edges"]:
        upstream.setdefault(down, []).append(up)
    seen: set[str] = set()

    def latest(labels: list[str]) -> str | None:
        known = [label for label in labels if label in finished and label not in seen]
        return min(known, key=lambda lb: (-finished[lb]["finished_at"], lb), default=None)

    chain: list[str] = []
    current = latest(list(finished))
    while current is not None:
        seen.add(current)
        chain.append(current)
        current = latest(upstream.get(current, []))
    chain.reverse()
    path: list[str] = []
    edges = [[finished[u]["path"], finished[d]["path"]] for u, d in itertools.pairwise(chain)]
    for label in chain:
        node = finished[label]
        ended = [s for s in node["subs"] if s["run"]["finished_at"] is not None]
        if ended:
            last = min(ended, key=lambda s: (-s["run"]["finished_at"], s["key"]))
            inner, inner_edges = critical_path(last["run"])
            path += inner
            edges += inner_edges
        path.append(node["path"])
    return path, edges


def root_cause(data: dict[str, Any]) -> str | None:
    """The path of the failed node that failed first where the failure began: the
    earliest-finished failed node of the run; if it is a composite node whose sub-runs
    hold failed nodes, the root cause found in those instead (the earliest-finished of
    theirs), down to the deepest sub-run. None when nothing failed."""
    failed = [n for n in data["nodes"] if n["status"] == "failed"]
    if not failed:
        return None
    first = min(failed, key=lambda n: (n["finished_at"] or math.inf, n["label"]))
    inner = [c for s in first["subs"] if (c := _deepest_failure(s["run"])) is not None]
    if inner:
        return min(inner)[2]
    return str(first["path"])


def _deepest_failure(data: dict[str, Any]) -> tuple[float, str, str] | None:
    """(finished, label, path) of the root cause inside a sub-run, if any failed."""
    path = root_cause(data)
    if path is None:
        return None
    node = next(iter(find_nodes(data, {path})))
    return (node["finished_at"] or math.inf, node["label"], path)


def walk(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of the tree, depth first."""
    for node in data["nodes"]:
        yield node
        for sub in node["subs"]:
            yield from walk(sub["run"])


def find_nodes(data: dict[str, Any], paths: set[str]) -> Iterator[dict[str, Any]]:
    return (n for n in walk(data) if n["path"] in paths)


def page_data(data: dict[str, Any]) -> dict[str, Any]:
    """Everything the run page draws: the tree (`tree.page_tree`), critical
    path, root cause, and whether clusters start collapsed."""
    total = sum(1 for _ in walk(data))
    critical, critical_edges = critical_path(data)
    return {
        "run": data,
        "critical": critical,
        "critical_edges": critical_edges,
        "root_cause": root_cause(data),
        "node_count": total,
        "collapsed": total > COLLAPSE_ABOVE,
    }


# -- compare -------------------------------------------------------------------------


def flat_nodes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """path → node, for the whole tree."""
    return {n["path"]: n for n in walk(data)}


def duration(node: dict[str, Any]) -> float | None:
    start, end = node["started_at"], node["finished_at"]
    return None if start is None or end is None else float(end - start)


def _same_json(a: str | None, b: str | None) -> bool:
    """Whether two payloads hold the same value (whitespace and key order aside)."""
    if a is None or b is None:
        return a == b
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return a == b


def compare(
    a: dict[str, Any],
    b: dict[str, Any],
    outputs: dict[tuple[str, str], str | None],
    *,
    replayed_side: str | None = None,
) -> dict[str, Any]:
    """The difference from run `a` to run `b` (both `tree.page_tree`): nodes added and
    removed, status changes, duration changes largest first, outputs changed or not,
    and, when one replays the other (`replayed_side` "a" or "b"), the nodes the
    replay executed again (not skipped)."""
    na, nb = flat_nodes(a), flat_nodes(b)
    both = sorted(set(na) & set(nb))
    changes = []
    for path in both:
        da, db = duration(na[path]), duration(nb[path])
        if da is not None and db is not None:
            changes.append((db - da, path, da, db))
    changes.sort(key=lambda c: (-abs(c[0]), c[1]))
    durations = [{"path": p, "a": da, "b": db, "delta": d} for d, p, da, db in changes]
    outputs_changed = []
    for path in both:
        out_a = outputs.get((na[path]["run_id"], na[path]["label"]))
        out_b = outputs.get((nb[path]["run_id"], nb[path]["label"]))
        outputs_changed.append({"path": path, "changed": not _same_json(out_a, out_b)})
    replay = {"a": na, "b": nb}.get(replayed_side or "")
    return {
        "added": sorted(set(nb) - set(na)),
        "removed": sorted(set(na) - set(nb)),
        "status_changes": [
            {"path": p, "a": na[p]["status"], "b": nb[p]["status"]}
            for p in both
            if na[p]["status"] != nb[p]["status"]
        ],
        "durations": durations,
        "outputs": outputs_changed,
        "replayed": sorted(p for p, n in (replay or {}).items() if n["status"] != "skipped"),
    }


def pretty_json(text: str | None) -> str:
    """A payload indented for reading; as stored when it is not JSON."""
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        return text


def side_by_side(a: str | None, b: str | None) -> list[dict[str, Any]]:
    """Rows of a side-by-side line diff of two payloads: op (equal, replace, delete,
    insert) with the left and right lines."""
    left, right = pretty_json(a).splitlines(), pretty_json(b).splitlines()
    rows: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        span = max(i2 - i1, j2 - j1)
        for k in range(span):
            rows.append(
                {
                    "op": op,
                    "a": left[i1 + k] if i1 + k < i2 else None,
                    "b": right[j1 + k] if j1 + k < j2 else None,
                }
            )
    return rows
