"""Sub-DAG runs naming no parent (`dag.run.parent_id`) get it from their OTel parent or
a span link through `dagtrace serve` and the exporter, as in process: whatever order,
request and (PostgreSQL) server the spans come in."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_helpers import json_request, protobuf_request
from test_serve import serving

import dagtrace
from dagtrace import conventions as c
from dagtrace._parents import KEEP_SECONDS
from dagtrace.cli import main
from dagtrace.serve.codec import decode_to_rows
from dagtrace.store import parent_search as _parents

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def chain(
    tag: str = "",
    *,
    http: bool = True,
    explicit: tuple[str, str] | None = None,
    link: bool = False,
) -> dict[str, ReadableSpan]:
    """Spans of a parent run `p{tag}` whose node `chunks` calls a service (a non-DAG
    `GET` span) that runs the sub-DAG run `child{tag}` (node `work`), naming no parent
    unless `explicit`; with `link`, the sub-run is a root span of its own trace that
    links to the node span. By name: run, node, http, sub, sub_node."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("by-hand")
    with tracer.start_as_current_span(
        "dag.run", attributes={c.KIND: "run", c.RUN_ID: f"p{tag}", c.NSREF: "outer"}
    ):
        with tracer.start_as_current_span(
            "dag.node chunks",
            attributes={c.KIND: "node", c.RUN_ID: f"p{tag}", c.NODE_LABEL: "chunks"},
        ) as node:
            sub_attributes: dict[str, Any] = {
                c.KIND: "run",
                c.RUN_ID: f"child{tag}",
                c.NSREF: "outer/chunks[0]",
            }
            if explicit:
                sub_attributes[c.PARENT_RUN_ID], sub_attributes[c.PARENT_NODE] = explicit
            with tracer.start_as_current_span("GET") if http else _nothing():
                links = [trace.Link(node.get_span_context())] if link else []
                context = trace.set_span_in_context(trace.INVALID_SPAN) if link else None
                with tracer.start_as_current_span(
                    "dag.run", context=context, attributes=sub_attributes, links=links
                ):
                    with tracer.start_as_current_span(
                        "dag.node work",
                        attributes={c.KIND: "node", c.RUN_ID: f"child{tag}", c.NODE_LABEL: "work"},
                    ):
                        pass
    provider.shutdown()
    by_name: dict[str, ReadableSpan] = {}
    for span in memory.get_finished_spans():
        if span.name == "dag.run":
            sub = (span.attributes or {}).get(c.RUN_ID) == f"child{tag}"
            by_name["sub" if sub else "run"] = span
        else:
            by_name[
                {"dag.node chunks": "node", "dag.node work": "sub_node", "GET": "http"}[span.name]
            ] = span
    return by_name


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def post(url: str, spans: list[ReadableSpan], *, json_encoded: bool = False) -> None:
    body = json_request(spans) if json_encoded else protobuf_request(spans)
    answer = httpx.post(f"{url}/v1/traces", content=body, headers=JS if json_encoded else PB)
    assert answer.status_code == 200, answer.text


def parent_of(db: Path | str, run_id: str) -> tuple[str | None, str | None]:
    store = dagtrace.open_store(db, read_only=True)
    try:
        with store._read() as cur:
            cur.execute(
                "SELECT parent_run_id, parent_node_label FROM dag_runs WHERE run_id = ?",
                (run_id,),
            )
            row = cur.fetchone()
        return (row[0], row[1]) if row else (None, None)
    finally:
        store.close()


def search_rows(db: Path | str) -> tuple[list[tuple[Any, ...]], int]:
    """The parent-search rows (run, preference, look_for) and the count of span pairs."""
    store = dagtrace.open_store(db, read_only=True)
    try:
        with store._read() as cur:
            cur.execute(
                "SELECT run_id, preference, look_for FROM dagtrace_parent_search "
                "ORDER BY run_id, preference"
            )
            searches = [tuple(r) for r in cur.fetchall()]
            cur.execute("SELECT count(*) FROM dagtrace_span_parents")
            return searches, int(cur.fetchone()[0])
    finally:
        store.close()


def hex_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


@pytest.fixture(scope="module")
def one_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One `dagtrace serve` (default ingest workers) for the tests that each use run ids
    of their own."""
    db = tmp_path_factory.mktemp("serve") / "serve.db"
    with serving(db) as url:
        yield url, db


@pytest.mark.parametrize("json_encoded", [False, True], ids=["protobuf", "json"])
@pytest.mark.parametrize("http", [False, True], ids=["direct-child", "through-http"])
def test_sub_run_under_its_composite_node_in_one_request(
    one_server: tuple[str, Path], json_encoded: bool, http: bool
) -> None:
    url, db = one_server
    tag = f"-one-{json_encoded}-{http}"
    spans = chain(tag, http=http)
    post(url, list(spans.values()), json_encoded=json_encoded)
    assert parent_of(db, f"child{tag}") == (f"p{tag}", "chunks")
    run = dagtrace.DagProvenance(db, read_only=True).inspect_run(f"p{tag}")
    assert run is not None and set(run.nodes["chunks"].sub_dags or {}) == {"chunks[0]"}
    searches, _ = search_rows(db)
    assert (f"child{tag}", 0, None) in searches  # inferred (an explicit parent would win)
    assert not [s for s in searches if s[0] == f"child{tag}" and s[2] is not None]


def test_child_before_parent_in_separate_requests(one_server: tuple[str, Path]) -> None:
    url, db = one_server
    spans = chain("-late-node", http=False)
    post(url, [spans["sub"], spans["sub_node"]])
    assert parent_of(db, "child-late-node") == (None, None)
    assert ("child-late-node", 0, hex_id(spans["node"])) in search_rows(db)[0]  # waiting
    post(url, [spans["run"]])
    assert parent_of(db, "child-late-node") == (None, None)
    post(url, [spans["node"]], json_encoded=True)  # the late node span resolves it
    assert parent_of(db, "child-late-node") == ("p-late-node", "chunks")
    assert ("child-late-node", 0, None) in search_rows(db)[0]


def test_through_a_non_dag_span_arriving_last(one_server: tuple[str, Path]) -> None:
    url, db = one_server
    spans = chain("-late-http")
    post(url, [spans["sub"]])
    post(url, [spans["run"], spans["node"], spans["sub_node"]])
    assert parent_of(db, "child-late-http") == (None, None)
    assert ("child-late-http", 0, hex_id(spans["http"])) in search_rows(db)[0]
    post(url, [spans["http"]])  # completes the chain
    assert parent_of(db, "child-late-http") == ("p-late-http", "chunks")


def test_non_dag_span_between_arrives_first(one_server: tuple[str, Path]) -> None:
    url, db = one_server
    spans = chain("-early-http")
    post(url, [spans["http"]])
    post(url, [spans["sub"]], json_encoded=True)
    assert ("child-early-http", 0, hex_id(spans["node"])) in search_rows(db)[0]  # moved up
    post(url, [spans["node"], spans["run"]])
    assert parent_of(db, "child-early-http") == ("p-early-http", "chunks")


@pytest.mark.parametrize("node_first", [False, True], ids=["sub-run first", "node first"])
def test_a_span_link_to_the_composite_node(one_server: tuple[str, Path], node_first: bool) -> None:
    """The linked node span is in another trace: found waiting, or in the store
    through the link's own trace id."""
    url, db = one_server
    tag = f"-link-{node_first}"
    spans = chain(tag, http=False, link=True)
    assert spans["sub"].parent is None and spans["sub"].links
    assert spans["sub"].context.trace_id != spans["node"].context.trace_id
    requests = [([spans["sub"]], True), ([spans["node"], spans["run"]], False)]
    for batch, json_encoded in requests[::-1] if node_first else requests:
        post(url, batch, json_encoded=json_encoded)
    assert parent_of(db, f"child{tag}") == (f"p{tag}", "chunks")


def test_explicit_parent_beats_inferred(one_server: tuple[str, Path]) -> None:
    """Two spans of one sub-run (say two attempts): one names another parent explicitly,
    the other does not; whichever comes first, the explicit parent stays."""
    url, db = one_server
    for explicit_first in (True, False):
        tag = f"-explicit-{explicit_first}"
        inferred = chain(tag)
        named = chain(tag, explicit=("elsewhere", "remote"))
        post(url, [inferred["run"], inferred["node"], inferred["http"]])
        if explicit_first:
            post(url, [named["sub"]])
            post(url, [inferred["sub"]])  # never overwrites the explicit parent
        else:
            post(url, [inferred["sub"]])
            assert parent_of(db, f"child{tag}") == (f"p{tag}", "chunks")  # inferred so far
            post(url, [named["sub"]])  # replaces the inferred parent
        assert parent_of(db, f"child{tag}") == ("elsewhere", "remote")
        assert not [s for s in search_rows(db)[0] if s[0] == f"child{tag}"]
        post(url, [inferred["sub"], inferred["http"], inferred["node"]])  # all again, at once
        assert parent_of(db, f"child{tag}") == ("elsewhere", "remote")


def test_two_servers_sharing_postgres(pg_schema_url: Callable[[], str]) -> None:
    db = pg_schema_url()
    with serving(db, "--decoders", "1") as first, serving(db, "--decoders", "0") as second:
        spans = chain("-pg")
        post(first, [spans["sub"], spans["sub_node"]])  # the child to one server
        post(second, [spans["run"], spans["node"]])  # its parent to the other
        assert parent_of(db, "child-pg") == (None, None)  # the span between is missing
        post(first, [spans["http"]], json_encoded=True)
        assert parent_of(db, "child-pg") == ("p-pg", "chunks")

        # Many chains, their spans split at random over both servers and sent at once
        # by several senders: every sub-run finds its parent (the searches and the spans
        # they wait for meet, whichever commits first).
        chains = [chain(f"-many{i}") for i in range(16)]
        pieces = [
            (random.Random(i).choice([first, second]), [span])
            for i, spans in enumerate(chains)
            for span in spans.values()
        ]
        random.Random(7).shuffle(pieces)
        senders = [threading.Thread(target=_send_all, args=(pieces[n::6],)) for n in range(6)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        for i in range(len(chains)):
            assert parent_of(db, f"child-many{i}") == (f"p-many{i}", "chunks")
        waiting = [s for s in search_rows(db)[0] if s[2] is not None]
        assert waiting == []


def _send_all(pieces: list[tuple[str, list[ReadableSpan]]]) -> None:
    for url, spans in pieces:
        post(url, spans)


@pytest.mark.parametrize("first", ["child", "parent"])
def test_child_and_parent_committed_at_once_on_postgres(
    pg_schema_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """Two servers' transactions, one with the sub-run, one with its composite node: the
    `first` one is held just before its commit while the other runs. Neither sees the
    other's uncommitted rows: the other must wait for it (the advisory locks), or the
    search waits for a node already stored, or the node misses the search."""
    db = pg_schema_url()
    spans = chain("-race", http=False)
    batches = {
        "child": decode_to_rows(protobuf_request([spans["sub"]]), json_encoded=False),
        "parent": decode_to_rows(
            protobuf_request([spans["run"], spans["node"]]), json_encoded=False
        ),
    }
    held, release = threading.Event(), threading.Event()
    holding = threading.local()
    after_rows = _parents.ParentSearch.after_rows

    def hold_then_write(search: _parents.ParentSearch) -> None:
        after_rows(search)
        if getattr(holding, "on", False):
            held.set()
            assert release.wait(60)

    monkeypatch.setattr(_parents.ParentSearch, "after_rows", hold_then_write)
    stores = {name: dagtrace.open_store(db) for name in batches}
    second = "parent" if first == "child" else "child"
    done = threading.Event()

    def write(name: str, hold: bool) -> None:
        holding.on = hold
        stores[name].write_rows(batches[name].rows, parents=batches[name].parents)
        if not hold:
            done.set()

    try:
        holder = threading.Thread(target=write, args=(first, True))
        holder.start()
        assert held.wait(60)
        other = threading.Thread(target=write, args=(second, False))
        other.start()
        trace_id = f"{spans['sub'].context.trace_id:032x}"
        while not done.is_set() and not _waits_for_its_lock(db, trace_id):
            done.wait(0.01)  # until the other committed or waits for the held one
        release.set()
        holder.join(60)
        other.join(60)
    finally:
        release.set()
        for store in stores.values():
            store.close()
    assert parent_of(db, "child-race") == ("p-race", "chunks")
    assert search_rows(db)[0] == [("child-race", 0, None)]


def _waits_for_its_lock(db: str, trace_id: str) -> bool:
    """Whether a transaction waits for the advisory lock of this trace."""
    import psycopg

    key = _parents._fine_key(trace_id)
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s AND objid = %s AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (key >> 32, key & 0xFFFFFFFF),
        ).fetchone()
    return bool(row and row[0])


def test_prune_and_age_remove_parent_search_rows(tmp_path: Path) -> None:
    db = tmp_path / "prune.db"
    spans = chain("-prune")
    orphan = chain("-orphan")
    with serving(db, "--decoders", "0") as url:
        post(url, [spans["http"]])  # a span pair kept
        post(url, [orphan["sub"]])  # a search waiting for a span that never comes
        assert search_rows(db) == ([("child-orphan", 0, hex_id(orphan["http"]))], 1)
    result = CliRunner().invoke(main, ["prune", "--db", str(db), "--older-than", "1h"])
    assert result.exit_code == 0, result.output
    assert search_rows(db) == ([("child-orphan", 0, hex_id(orphan["http"]))], 1)  # recent
    result = CliRunner().invoke(main, ["prune", "--db", str(db), "--older-than", "0s"])
    assert result.exit_code == 0, result.output
    assert "pruned 1 run(s)" in result.output  # the orphan sub-run (a top-level run so far)
    assert search_rows(db) == ([], 0)

    # Entries older than a day go on the way, with a write (the first of a process).
    with serving(db, "--decoders", "0") as url:
        post(url, [spans["http"]])
        post(url, [orphan["sub"]])
    store = dagtrace.open_store(db)
    with store.transaction() as writer:
        old = KEEP_SECONDS + 60
        writer._cur.execute("UPDATE dagtrace_span_parents SET seen_at = seen_at - ?", (old,))
        writer._cur.execute("UPDATE dagtrace_parent_search SET seen_at = seen_at - ?", (old,))
    store.close()
    with serving(db, "--decoders", "0") as url:
        post(url, [spans["run"], spans["node"]])
    assert search_rows(db) == ([], 0)


def test_exporter_resolves_across_export_calls(new_store_url: Callable[[], str]) -> None:
    location = new_store_url()
    exporter = dagtrace.DagtraceSpanExporter(location)
    try:
        spans = chain("-ex")
        for batch in ([spans["sub"], spans["sub_node"]], [spans["node"], spans["run"]]):
            assert exporter.export(batch).name == "SUCCESS"
        assert parent_of(location, "child-ex") == (None, None)
        assert exporter.export([spans["http"]]).name == "SUCCESS"  # a batch of one non-DAG span
        assert parent_of(location, "child-ex") == ("p-ex", "chunks")
        linked = chain("-ex-link", http=False, link=True)
        exporter.export([linked["sub"]])
        exporter.export([linked["node"], linked["run"]])
        assert parent_of(location, "child-ex-link") == ("p-ex-link", "chunks")
    finally:
        exporter.shutdown()


def _lookup_plan(db: Path) -> str:
    """How SQLite finds the node of a span id in the store (the parent search's lookup)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        return " ".join(
            str(row)
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT run_id FROM node_executions WHERE trace_id IN "
                "(SELECT value FROM json_each('[\"t\"]')) AND span_id IN "
                "(SELECT value FROM json_each('[\"a\"]'))"
            )
        )


def _schema_version(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM dagtrace_meta WHERE key = 'schema_version'")
        return int(row.fetchone()[0])


def _as_version(db: Path, version: int, *statements: str) -> None:
    """A new store's file, turned back into what schema `version` left by `statements`."""
    import sqlite3

    dagtrace.DagProvenance(db).close()
    with sqlite3.connect(db, isolation_level=None) as conn:
        for sql in statements:
            conn.execute(sql)
        conn.execute(
            "UPDATE dagtrace_meta SET value = ? WHERE key = 'schema_version'", (str(version),)
        )


def test_a_schema_5_file_gets_the_parent_search_tables(tmp_path: Path) -> None:
    db = tmp_path / "five.db"
    _as_version(
        db,
        5,
        "DROP TABLE dagtrace_span_parents",
        "DROP TABLE dagtrace_parent_search",
        "DROP INDEX dagtrace_nodes_trace_span",
    )
    exporter = dagtrace.DagtraceSpanExporter(db)
    spans = chain("-five")
    exporter.export([spans["sub"], spans["http"]])
    exporter.export([spans["node"], spans["run"]])
    exporter.shutdown()
    assert parent_of(db, "child-five") == ("p-five", "chunks")
    assert _schema_version(db) >= 6
    assert "dagtrace_nodes_trace_span" in _lookup_plan(db)


def test_a_schema_8_file_finds_stored_nodes_by_trace_and_span(tmp_path: Path) -> None:
    """Schema 9 indexes node spans by (trace id, span id), in place of span id alone:
    the old index goes, and a node span stored earlier is still found from its trace."""
    import sqlite3

    db = tmp_path / "eight.db"
    _as_version(
        db,
        8,
        "DROP INDEX dagtrace_nodes_trace_span",
        "CREATE INDEX dagtrace_nodes_span ON node_executions (span_id)",
    )
    exporter = dagtrace.DagtraceSpanExporter(db)
    spans = chain("-eight")
    exporter.export([spans["node"], spans["run"]])  # the node span is in the store
    exporter.export([spans["sub"], spans["http"]])  # before the sub-run looks for it
    exporter.shutdown()
    assert parent_of(db, "child-eight") == ("p-eight", "chunks")
    assert _schema_version(db) >= 9
    with sqlite3.connect(db) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(node_executions)")}
    assert "dagtrace_nodes_span" not in indexes
    assert "dagtrace_nodes_trace_span" in _lookup_plan(db)
