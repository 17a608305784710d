"""The examples run end to end, as README's main job does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagtrace

EXAMPLES = Path(__file__).parent.parent / "examples"


def _run(script: str, db: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def test_lythonic_example_fails_restarts_and_replays(db_path: Path) -> None:
    output = _run("lythonic_pipeline.py", db_path)
    assert "1. first run: failed at 'publish'" in output
    assert "ConnectionError: the publishing endpoint refused" in output
    assert "attempt 2" in output and "↷ fetch  [skipped]" in output
    assert f"dagtrace serve --db {db_path}" in output  # how to open the runs in the web view
    assert "http://127.0.0.1:4319/runs/" in output
    prov = dagtrace.DagProvenance(db_path)
    top = prov.get_recent_runs(limit=10, status="completed")
    first = next(
        r for r in top if r.parent_run_id is None and r.nodes["fetch"].status == "completed"
    )
    replays = prov.store.get_replays(first.run_id)
    assert len(replays) == 1
    assert prov.get_run(replays[0])["status"] == "completed"
    assert len(first.nodes["shout_each"].sub_dags or {}) == 3


def test_asyncio_example(db_path: Path) -> None:
    output = _run("asyncio_pipeline.py", db_path)
    assert "attempt 1: failed" in output and "attempt 2: completed" in output
    assert output.count("scores/score[") == 4
    assert "↷ score  [skipped]" in output
