"""The web view's computations, without a server: critical path, root cause, map
aggregation, the compare diff, and the login cookie."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dagtrace._models import DagRun, EdgeTraversal, NodeExecution
from dagtrace.serve.view import model as vm
from dagtrace.serve.view import tree as view_tree
from dagtrace.serve.view.auth import CookieSigner, safe_next


def _t(seconds: float) -> datetime:
    return datetime.fromtimestamp(1_800_000_000 + seconds, UTC)


def _run(
    nodes: dict[str, tuple[str, float, float | None]],
    edges: list[tuple[str, str]],
    *,
    run_id: str = "r",
    subs: dict[str, dict[str, DagRun]] | None = None,
    error: dict[str, str] | None = None,
) -> DagRun:
    """A run from label → (status, start, finish) and traversed edges."""
    made = {}
    for label, (status, start, end) in nodes.items():
        made[label] = NodeExecution(
            node_label=label,
            status=status,
            started_at=_t(start),
            finished_at=None if end is None else _t(end),
            edges=[
                EdgeTraversal(downstream_label=d, traversed_at=_t(end or start))
                for u, d in edges
                if u == label
            ],
            sub_dags=(subs or {}).get(label),
            error=(error or {}).get(label),
        )
    ends = [e for _, _, e in nodes.values() if e is not None]
    status = "failed" if any(s == "failed" for s, _, _ in nodes.values()) else "completed"
    return DagRun(
        run_id=run_id,
        dag_nsref=run_id,
        status=status,
        started_at=_t(0),
        finished_at=_t(max(ends)) if ends else None,
        nodes=made,
    )


def _data(run: DagRun) -> dict[str, Any]:
    return view_tree.page_tree(view_tree.rows_of(run), run.run_id)


def test_critical_path_steps_to_the_upstream_node_that_finished_last() -> None:
    run = _run(
        {
            "a": ("completed", 0, 1),
            "slow": ("completed", 1, 5),
            "fast": ("completed", 1, 2),
            "untraversed": ("completed", 0, 9.5),
            "join": ("completed", 5, 6),
            "after": ("completed", 6, 10),
        },
        [("a", "slow"), ("a", "fast"), ("slow", "join"), ("fast", "join"), ("join", "after")],
    )
    path, edges = vm.critical_path(_data(run))
    assert path == ["a", "slow", "join", "after"]  # "untraversed" has no edge into it
    assert edges == [["a", "slow"], ["slow", "join"], ["join", "after"]]


def test_critical_path_ties_go_by_label() -> None:
    run = _run(
        {"s": ("completed", 0, 1), "b": ("completed", 1, 3), "a": ("completed", 1, 3)},
        [("s", "a"), ("s", "b")],
    )
    assert vm.critical_path(_data(run))[0] == ["s", "a"]


def test_critical_path_enters_the_sub_run_that_finished_last() -> None:
    early = _run({"x": ("completed", 1, 2)}, [], run_id="early")
    late = _run({"x": ("completed", 1, 2), "y": ("completed", 2, 4)}, [("x", "y")], run_id="late")
    run = _run(
        {"m": ("completed", 1, 5), "end": ("completed", 5, 6)},
        [("m", "end")],
        subs={"m": {"m[0]": early, "m[1]": late}},
    )
    assert vm.critical_path(_data(run))[0] == ["m[1]/x", "m[1]/y", "m", "end"]


def test_root_cause_is_the_earliest_failed_node_at_the_deepest_sub_run() -> None:
    deep = _run(
        {"p": ("completed", 1, 2), "q": ("failed", 2, 3), "r": ("failed", 3, 4)},
        [("p", "q")],
        run_id="deep",
    )
    later = _run({"z": ("failed", 1, 3.5)}, [], run_id="later")
    run = _run(
        {"m": ("failed", 1, 5), "after": ("failed", 5, 6), "skip": ("skipped", 0, 0)},
        [("m", "after")],
        subs={"m": {"m[0]": later, "m[1]": deep}},
    )
    data = _data(run)
    assert vm.root_cause(data) == "m[1]/q"
    assert vm.root_cause(_data(_run({"a": ("completed", 0, 1)}, []))) is None
    only_top = _run({"a": ("failed", 0, 2), "b": ("failed", 0, 1)}, [])
    assert vm.root_cause(_data(only_top)) == "b"


def test_a_map_over_more_than_20_sub_runs_is_aggregated_and_big_trees_start_collapsed() -> None:
    subs = {
        f"m[{i}]": _run({"x": ("failed" if i < 2 else "completed", 1, 2)}, [], run_id=f"s{i}")
        for i in range(200)
    }
    run = _run({"m": ("failed", 0, 3)}, [], subs={"m": subs})
    page = vm.page_data(_data(run))
    (m,) = page["run"]["nodes"]
    assert m["aggregate"] == {"completed": 198, "failed": 2}
    assert page["node_count"] == 201 and page["collapsed"]
    few = _run({"m": ("completed", 0, 3)}, [], subs={"m": dict(list(subs.items())[2:22])})
    assert vm.page_data(_data(few))["run"]["nodes"][0]["aggregate"] is None
    assert not vm.page_data(_data(few))["collapsed"]


def test_compare_names_changes_durations_outputs_and_the_replayed_node() -> None:
    a = _run(
        {"load": ("completed", 0, 1), "work": ("completed", 1, 5), "gone": ("completed", 0, 1)},
        [("load", "work")],
        run_id="A",
    )
    b = _run(
        {"load": ("skipped", 0, 0), "work": ("completed", 1, 2), "new": ("completed", 2, 3)},
        [("load", "work")],
        run_id="B",
    )
    outputs: dict[tuple[str, str], str | None] = {
        ("A", "load"): '{"a": 1, "b": 2}',
        ("B", "load"): '{"b": 2,  "a": 1}',
        ("A", "work"): "1",
        ("B", "work"): "2",
    }
    diff = vm.compare(_data(a), _data(b), outputs, replayed_side="b")
    assert diff["added"] == ["new"] and diff["removed"] == ["gone"]
    assert diff["status_changes"] == [{"path": "load", "a": "completed", "b": "skipped"}]
    assert [d["path"] for d in diff["durations"]] == ["work", "load"]
    assert diff["durations"][0]["delta"] == -3
    assert {o["path"]: o["changed"] for o in diff["outputs"]} == {"load": False, "work": True}
    assert diff["replayed"] == ["new", "work"]


def test_side_by_side_pairs_lines() -> None:
    rows = vm.side_by_side('{"a": 1, "b": [1, 2]}', '{"a": 2, "b": [1, 2]}')
    assert {"op": "replace", "a": '  "a": 1,', "b": '  "a": 2,'} in rows
    assert rows[0] == {"op": "equal", "a": "{", "b": "{"}
    assert vm.side_by_side(None, "not json") == [{"op": "insert", "a": None, "b": "not json"}]


def test_cookie_is_signed_with_the_token_and_expires() -> None:
    signer = CookieSigner("token-1")
    cookie = signer.make(now=1000, lifetime=60)
    assert signer.valid(cookie, now=1059)
    assert not signer.valid(cookie, now=1061)
    assert CookieSigner("token-1").valid(cookie, now=1000)  # another server, same token
    assert not CookieSigner("token-2").valid(cookie, now=1000)
    expires, mac = cookie.split(".")
    assert not signer.valid(f"{int(expires) + 999}.{mac}", now=1000)  # expiry tampered
    for bad in ("", "x", "1.2.3", "abc.def", None):
        assert not signer.valid(bad, now=1000)
    assert signer.token_matches("token-1") and not signer.token_matches("token-")


def test_login_redirects_only_to_this_server() -> None:
    assert safe_next("/runs/x?tab=timeline") == "/runs/x?tab=timeline"
    for bad in ("//evil.example", "https://evil.example", "/\\evil", "", None, "runs"):
        assert safe_next(bad) == "/"


def test_a_node_whose_payload_was_not_stored_exactly_is_marked_not_reusable() -> None:
    rows = view_tree.rows_of(_run({"a": ("completed", 0, 1), "b": ("completed", 1, 2)}, []))
    rows.nodes[0]["payload_error"] = "dag.node.output cut to 32 of 410 bytes"
    rows.nodes[1]["started_at"] = float("nan")  # an odd stored time: no NaN in JSON
    data = view_tree.page_tree(rows, "r")
    marks = {n["label"]: n["not_reusable"] for n in data["nodes"]}
    assert marks == {"a": True, "b": False}
    assert data["nodes"][1]["started_at"] is None
