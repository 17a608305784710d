"""One read interface: every reader dagtrace offers is a `ProvenanceReader` (lythonic's
reads), and the store and `RemoteProvenance` (what the CLI reads through) are also
`StoreReader`s; all give the same answers for the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import scenarios
from test_serve import serving

import dagtrace
from dagtrace import ProvenanceReader, StoreReader
from dagtrace.lythonic import TracedProvenance


def _answers(reader: ProvenanceReader, run_id: str) -> dict[str, Any]:
    run = reader.inspect_run(run_id)
    assert run is not None
    reader.load_io(run)
    return {
        "run": reader.get_run(run_id),
        "nodes": reader.get_node_executions(run_id),
        "edges": reader.get_edge_traversals(run_id),
        "pending": reader.get_pending_nodes(run_id),
        "output": [reader.get_node_output(run_id, label) for label in sorted(run.nodes)],
        "tree": run.model_dump(mode="json"),
        "recent": [r.run_id for r in reader.get_recent_runs(5)],
        "children": [r.run_id for r in reader.get_child_runs(run_id)],
        "active": reader.get_active_runs(),
    }


def test_every_reader_gives_the_same_answers(db_path: Path) -> None:
    writer = dagtrace.DagProvenance(db_path)
    run_ids = scenarios.run_all(writer)
    writer.close()
    store = dagtrace.open_store(db_path)
    drop_in = dagtrace.DagProvenance(db_path)
    traced = TracedProvenance(store=store)
    with serving(db_path) as url, dagtrace.RemoteProvenance(url) as remote:
        readers: list[ProvenanceReader] = [store, drop_in, traced, remote]
        store_readers: list[StoreReader] = [store, remote]
        assert all(isinstance(r, ProvenanceReader) for r in readers)
        assert all(isinstance(r, StoreReader) for r in store_readers)
        for run_id in run_ids.values():
            expected = _answers(store, run_id)
            for reader in readers[1:]:
                assert _answers(reader, run_id) == expected, type(reader).__name__
        assert remote.list_runs(10) == store.list_runs(10)
        assert remote.get_run_details(run_ids["linear"]) == store.get_run_details(run_ids["linear"])
    traced.close()
    drop_in.close()
    store.close()
