"""Text no store keeps as given (NUL, an unpaired surrogate) is an argument error.

`DagProvenance` and `TracedProvenance` raise `ValueError` before anything is written
("never raises" covers store failures only); over OTLP such spans are rejected one by
one (tests/test_serve.py). Before: `create_run("x\\x00y")` succeeded and `get_run`
found it, but `get_recent_runs` and `get_active_runs` left it out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dagtrace
from dagtrace.lythonic import TracedProvenance

BAD = ["x\x00y", "lone \ud800 surrogate"]

CALLS: list[tuple[str, Callable[[Any, str], None]]] = [
    ("create_run id", lambda p, bad: p.create_run(bad, "etl", {})),
    ("create_run nsref", lambda p, bad: p.create_run("new", bad, {})),
    ("update_run_status", lambda p, bad: p.update_run_status("r", bad)),
    ("finish_run outputs", lambda p, bad: p.finish_run("r", "completed", bad)),
    ("record_node_start label", lambda p, bad: p.record_node_start("r", bad, "{}")),
    ("record_node_start input", lambda p, bad: p.record_node_start("r", "n", bad)),
    ("record_node_skipped", lambda p, bad: p.record_node_skipped("r", bad, "{}")),
    ("complete edges", lambda p, bad: p.complete_node_with_edges("r", "a", "1", [("a", bad)])),
    ("fail error", lambda p, bad: p.fail_node_and_finish_run("r", "a", bad)),
]


@pytest.mark.parametrize("bad", BAD, ids=["nul", "surrogate"])
@pytest.mark.parametrize("make", ["drop-in", "traced"])
def test_bad_text_raises_before_any_write(tmp_path: Path, make: str, bad: str) -> None:
    db = tmp_path / "runs.db"
    prov: Any = dagtrace.DagProvenance(db) if make == "drop-in" else TracedProvenance(db)
    try:
        prov.create_run("r", "etl", {})
        prov.record_node_start("r", "a", "{}")
        before = (prov.get_run("r"), prov.get_node_executions("r"), prov.get_edge_traversals("r"))
        for name, call in CALLS:
            with pytest.raises(ValueError, match="NUL or unpaired surrogates"):
                call(prov, bad)
            after = (
                prov.get_run("r"),
                prov.get_node_executions("r"),
                prov.get_edge_traversals("r"),
            )
            assert after == before, name
        with pytest.raises(ValueError, match=r"^edges\[1\]\[0\] must be text"):
            prov.complete_node_with_edges("r", "a", "1", [("a", "b"), (bad, "c")])
        assert prov.get_edge_traversals("r") == before[2]
        assert [r.run_id for r in prov.get_recent_runs()] == ["r"]
    finally:
        prov.close()
