"""Hostile input: random and mutated OTLP bodies, hostile labels, deep nesting.

Derandomised (a fixed example sequence) so CI is deterministic; for a long run:
DAGTRACE_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_helpers import json_request, protobuf_request
from traced_pipeline import run_pipeline

import dagtrace
from dagtrace import LiveSpanProcessor
from dagtrace.exceptions import UndecodableRequest
from dagtrace.serve.codec import decode_request

EXAMPLES = int(os.environ.get("DAGTRACE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _spans() -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    run_pipeline(dagtrace.DagTracer(provider), fail_publish=True)
    provider.shutdown()
    return list(memory.get_finished_spans())


VALID_PB = protobuf_request(_spans())
VALID_JSON = json_request(_spans())

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "'",
            '"',
            "\x00",
            "a\x00b",
            "\ud800",
            "'; DROP TABLE dag_runs; --",
            "Robert'); DELETE FROM node_executions; --",
            "🚀" * 5,
            "\u202e",
            "[",
            "]",
            "a/b[c]",
            "%s",
            "?",
            "x" * 10_000,
        ]
    ),
)


def _decode_and_store(store: dagtrace.Store, body: bytes, *, json_encoded: bool) -> None:
    """What the receiver does: decodable → every usable span stored, atomically."""
    before = store.table_counts()
    try:
        decoded = decode_request(body, json_encoded=json_encoded)
    except UndecodableRequest:
        assert store.table_counts() == before  # nothing written from it
        return
    assert decoded.received >= len(decoded.records)
    if decoded.records:
        store.write_records(decoded.records)  # must not fail on anything the mapping let in


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = dagtrace.SqliteStore(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    yield s
    s.close()


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_as_protobuf(store: dagtrace.Store, data: bytes) -> None:
    _decode_and_store(store, data, json_encoded=False)


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(VALID_PB) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.integers(0, len(VALID_PB)),
)
def test_mutated_protobuf(store: dagtrace.Store, flips: list[tuple[int, int]], cut: int) -> None:
    body = bytearray(VALID_PB)
    for position, value in flips:
        body[position] = value
    _decode_and_store(store, bytes(body[:cut] if cut % 3 == 0 else body), json_encoded=False)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(value=json_values)
def test_random_json(store: dagtrace.Store, value: Any) -> None:
    _decode_and_store(store, json.dumps(value).encode(), json_encoded=True)


def _json_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _json_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _json_paths(value, (*path, index))
    return found


VALID_JSON_TREE = json.loads(VALID_JSON)
JSON_PATHS = [p for p in _json_paths(VALID_JSON_TREE) if p]


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(JSON_PATHS), json_values), min_size=1, max_size=4))
def test_mutated_otlp_json(store: dagtrace.Store, edits: list[tuple[tuple[Any, ...], Any]]) -> None:
    tree = json.loads(VALID_JSON)
    for path, value in edits:
        node = tree
        try:
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    _decode_and_store(store, json.dumps(tree).encode(), json_encoded=True)


@FUZZ
@given(
    label=hostile_text,
    nsref=hostile_text,
    run_id=hostile_text,
    payload=st.text(max_size=3000),
    depth=st.integers(0, 30),
)
def test_hostile_labels_and_deep_nesting_through_the_live_processor(
    tmp_path_factory: pytest.TempPathFactory,
    label: str,
    nsref: str,
    run_id: str,
    payload: str,
    depth: int,
) -> None:
    db = tmp_path_factory.mktemp("live") / "live.db"
    provider = dagtrace.configure(db)
    processor = cast(LiveSpanProcessor, provider._active_span_processor._span_processors[0])
    tracer = dagtrace.DagTracer(provider)
    with ExitStack() as stack:
        handle = stack.enter_context(
            tracer.run(nsref or "n", run_id=run_id or None, inputs={"p": payload})
        )
        for level in range(depth):  # sub-DAG runs nested `depth` deep
            node = stack.enter_context(handle.node(label or "x", input=payload))
            node.set_output(payload)
            handle = stack.enter_context(node.sub_run(f"{label}[{level}]"))
        with handle.node(label or "x", input=payload) as leaf:
            leaf.set_output({"label": label})
            leaf.edge(label, "next")
    provider.shutdown()  # never raises, whatever the labels
    prov = dagtrace.DagProvenance(db)
    stored = prov.get_recent_runs(limit=1000)
    if processor.stats.spans_rejected == 0 and run_id and "\x00" not in run_id:
        assert any(r.run_id == run_id for r in stored)
    for r in stored:
        assert prov.inspect_run(r.run_id) is not None
    with prov.store._read() as cur:
        cur.execute("PRAGMA integrity_check")
        assert cur.fetchone() == ("ok",)
    prov.close()


def test_huge_attribute_values_are_stored_whole(tmp_path: Path) -> None:
    provider = dagtrace.configure(tmp_path / "huge.db")
    tracer = dagtrace.DagTracer(provider)
    huge = "x" * (8 * 1024 * 1024)
    with tracer.run("huge", run_id="h") as run, run.node("n") as node:
        node.set_output(huge)
    provider.shutdown()
    out = dagtrace.DagProvenance(tmp_path / "huge.db").get_node_output("h", "n")
    assert out is not None and json.loads(out) == huge
