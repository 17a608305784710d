"""The OTel bridge with the real SDK and real files: spans in, provenance rows out."""

from __future__ import annotations

import json
import multiprocessing
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from traced_pipeline import WORDS, run_pipeline

import dagtrace
from dagtrace import LiveSpanProcessor
from dagtrace import conventions as c


@pytest.fixture
def provider(db_path: Path) -> Iterator[TracerProvider]:
    p = dagtrace.configure(db_path)
    yield p
    p.shutdown()


def table_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every provenance table, sorted: for row-for-row comparison."""
    with sqlite3.connect(path) as conn:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("dag_runs", "node_executions", "edge_traversals")
        }


def test_live_processor_records_sub_dags_failure_and_restart(
    provider: TracerProvider, db_path: Path
) -> None:
    tracer = dagtrace.DagTracer(provider)
    run_pipeline(tracer, fail_publish=True)
    prov = dagtrace.DagProvenance(db_path)
    run = prov.inspect_run("run-1")
    assert run is not None and run.status == "failed"
    assert run.nodes["publish"].status == "failed"
    assert "ConnectionError: publish endpoint refused" in (run.nodes["publish"].error or "")
    assert "Traceback" in (run.nodes["publish"].error or "")
    assert prov.get_pending_nodes("run-1") == ["publish"]
    shout = run.nodes["shout"]
    assert set(shout.sub_dags or {}) == {"shout[0]", "shout[1]", "shout[2]"}
    sub = (shout.sub_dags or {})["shout[1]"]
    assert sub.dag_nsref == "pipe/shout[1]" and sub.parent_run_id == "run-1"
    assert [e.downstream_label for e in sub.nodes["upper"].edges] == ["explain"]
    grandchild = (sub.nodes["explain"].sub_dags or {})["explain[]"]
    assert grandchild.dag_nsref == "pipe/shout[1]/explain[]"
    assert grandchild.nodes["describe"].status == "completed"
    assert len(prov.get_child_runs("run-1")) == 6
    prov.load_io(run)
    output = run.nodes["load"].io.output_json
    assert output is not None
    assert json.loads(output) == WORDS

    # Restart: attempt 2 of the same run id, completed nodes not executed again.
    done = {n: json.loads(prov.get_node_output("run-1", n) or "null") for n in ("load", "shout")}
    run_pipeline(tracer, attempt=2, done=done)
    run = prov.inspect_run("run-1")
    assert run is not None and run.status == "completed"
    assert run.nodes["publish"].status == "completed" and run.nodes["publish"].error is None
    assert prov.get_pending_nodes("run-1") == []
    assert len(prov.get_child_runs("run-1")) == 6  # no duplicates


def test_trace_and_span_ids_are_stored(provider: TracerProvider, db_path: Path) -> None:
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    run_pipeline(dagtrace.DagTracer(provider))
    spans = {
        s.attributes.get(c.NODE_LABEL) or s.attributes.get(c.RUN_ID): s
        for s in memory.get_finished_spans()
        if s.attributes.get(c.KIND)
        and not s.attributes.get(c.START_MARKER)
        and s.attributes.get(c.RUN_ID) == "run-1"
    }
    with sqlite3.connect(db_path) as conn:
        trace_id, span_id = conn.execute(
            "SELECT trace_id, span_id FROM dag_runs WHERE run_id = 'run-1'"
        ).fetchone()
        node = conn.execute(
            "SELECT trace_id, span_id FROM node_executions "
            "WHERE run_id = 'run-1' AND node_label = 'load'"
        ).fetchone()
    assert trace_id == f"{spans['run-1'].context.trace_id:032x}"
    assert span_id == f"{spans['run-1'].context.span_id:016x}"
    assert node == (trace_id, f"{spans['load'].context.span_id:016x}")


def test_pause_then_restart_same_run_id(provider: TracerProvider, db_path: Path) -> None:
    tracer = dagtrace.DagTracer(provider)
    run_pipeline(tracer, pause_before_publish=True)
    prov = dagtrace.DagProvenance(db_path)
    assert prov.get_run("run-1")["status"] == "paused"
    assert prov.get_recent_runs(status="paused")[0].run_id == "run-1"
    done = {n: json.loads(prov.get_node_output("run-1", n) or "null") for n in ("load", "shout")}
    run_pipeline(tracer, attempt=2, done=done)
    assert prov.get_run("run-1")["status"] == "completed"


def test_five_hundred_downstream_nodes_with_default_limits(
    provider: TracerProvider, db_path: Path
) -> None:
    tracer = dagtrace.DagTracer(provider)
    downstream = [f"d{i}" for i in range(500)]
    with tracer.run("fan", run_id="fan") as run, run.node("src") as node:
        node.set_output(1)
        node.edge(*downstream)
    edges = dagtrace.DagProvenance(db_path).get_edge_traversals("fan")
    assert sorted(e["downstream_label"] for e in edges) == sorted(downstream)


def test_one_event_per_edge_past_the_limit_is_counted(db_path: Path) -> None:
    """Hand instrumentation with one event per edge loses the oldest past 128: say so."""
    provider = dagtrace.configure(db_path)
    processor = cast(LiveSpanProcessor, provider._active_span_processor._span_processors[0])
    tracer = provider.get_tracer("by-hand")
    with (
        tracer.start_as_current_span(
            "dag.run", attributes={c.KIND: "run", c.RUN_ID: "h", c.NSREF: "hand"}
        ),
        tracer.start_as_current_span(
            "dag.node src", attributes={c.KIND: "node", c.RUN_ID: "h", c.NODE_LABEL: "src"}
        ) as span,
    ):
        for i in range(200):
            span.add_event(c.EDGE_EVENT, {c.EDGE_DOWNSTREAM: f"d{i}"})
    provider.shutdown()
    assert processor.stats.spans_with_dropped_events == 1
    assert dagtrace.DagProvenance(db_path).store.get_counters()["spans_with_dropped_events"] == 1
    assert len(dagtrace.DagProvenance(db_path).get_edge_traversals("h")) == 128


def _recorded_spans(fail_first: bool = True) -> list[Any]:
    """Spans of a failing attempt 1 and a completing attempt 2, captured in memory."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = dagtrace.DagTracer(provider)
    run_pipeline(tracer, fail_publish=fail_first)
    run_pipeline(tracer, attempt=2, done={"load": WORDS, "shout": [f"{w}!" for w in WORDS]})
    provider.shutdown()
    return list(memory.get_finished_spans())


def _export_each(location: str, spans: list[Any]) -> None:
    exporter = dagtrace.DagtraceSpanExporter(location)
    for span in spans:
        assert exporter.export([span]).name == "SUCCESS"
    exporter.shutdown()


def store_rows(location: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every provenance table of any store, sorted."""
    store = dagtrace.open_store(location)
    try:
        with store._read() as cur:
            rows = {}
            for table in ("dag_runs", "node_executions", "edge_traversals"):
                cur.execute(f"SELECT * FROM {table}")
                rows[table] = sorted((tuple(r) for r in cur.fetchall()), key=repr)
            return rows
    finally:
        store.close()


def test_exporter_is_idempotent_and_order_independent(new_store_url: Any) -> None:
    spans = _recorded_spans()
    in_order = new_store_url()
    _export_each(in_order, spans)
    expected = store_rows(in_order)
    assert expected["dag_runs"] and expected["node_executions"] and expected["edge_traversals"]

    rng = random.Random(20261128)
    shuffled = spans * 2
    rng.shuffle(shuffled)
    shuffled_store = new_store_url()
    _export_each(shuffled_store, shuffled)
    assert store_rows(shuffled_store) == expected

    attempt_two_first = sorted(spans, key=lambda s: -s.attributes.get(c.ATTEMPT, 1))
    reversed_store = new_store_url()
    _export_each(reversed_store, list(reversed(spans)) + attempt_two_first)
    assert store_rows(reversed_store) == expected

    batch_store = new_store_url()
    one_batch = dagtrace.DagtraceSpanExporter(batch_store)
    assert one_batch.export(list(reversed(spans))).name == "SUCCESS"
    one_batch.shutdown()
    assert store_rows(batch_store) == expected

    # one big batch with every duplicate and disorder above (PostgreSQL stages it: COPY)
    big_batch_store = new_store_url()
    big_batch = dagtrace.DagtraceSpanExporter(big_batch_store)
    everything = shuffled * 2 + (list(reversed(spans)) + attempt_two_first) * 2
    assert big_batch.export(everything).name == "SUCCESS"
    big_batch.shutdown()
    assert store_rows(big_batch_store) == expected

    prov = dagtrace.DagProvenance(shuffled_store)
    assert prov.get_run("run-1")["status"] == "completed"
    assert prov.inspect_run("run-1").nodes["publish"].error is None
    prov.close()


def node_row(
    label: str, output: str, attempt: int, phase: int, written_ns: int = 2_000_000_000
) -> tuple[Any, ...]:
    """A node row of run "r" as `rows_for` makes it: a start (phase 0) or a completed end."""
    from dagtrace._mapping import SpanRecord
    from dagtrace.store.rows import rows_for

    record = SpanRecord(
        kind="node",
        run_id="r",
        attempt=attempt,
        phase=phase,
        status="completed" if phase else "running",
        started_at=1.0,
        finished_at=2.0 if phase else None,
        trace_id="t",
        span_id="5" * 16,
        parent_span_id=None,
        label=label,
        input_json="{}",
        output_json=output,
        started_ns=1_000_000_000,
        written_ns=written_ns,
    )
    return rows_for([record]).nodes[0]


def test_a_big_batch_of_duplicate_keys_leaves_what_rows_one_by_one_leave(
    new_store_url: Any,
) -> None:
    """Per key: a node row keeps the output of its newest write (highest attempt, then
    an end before a start, then the later end; a start's output is none), an edge its
    latest time, whether the rows come one by one or in one batch (which the PostgreSQL
    store stages through COPY)."""
    from dagtrace.store.rows import Rows

    rng = random.Random(5)
    versions = [rng.choice([(1, 0), (1, 1), (2, 0), (2, 1)]) for _ in range(80)]
    order = list(range(80))
    rng.shuffle(order)  # when each write was made, apart from the order it arrives in
    nodes = [
        node_row(f"n{i % 4}", f'"{a}.{p}.{i}"', a, p, written_ns=2_000_000_000 + order[i])
        for i, (a, p) in enumerate(versions)
    ]
    edges = [("r", f"n{i % 4}", "m", rng.uniform(1, 9)) for i in range(80)]
    one_by_one, batched = new_store_url(), new_store_url()
    store = dagtrace.open_store(one_by_one)
    for node in nodes:
        store.write_rows(Rows(nodes=[node]))
    for edge in edges:
        store.write_rows(Rows(edges=[edge]))
    store.close()
    store = dagtrace.open_store(batched)
    store.write_rows(Rows(nodes=list(nodes), edges=list(edges)))
    store.close()
    assert store_rows(batched) == store_rows(one_by_one)
    labels = {n[1] for n in nodes}
    newest = {}
    for label in labels:
        i = max(
            (i for i, n in enumerate(nodes) if n[1] == label),
            key=lambda i: (versions[i][0], versions[i][1], order[i] if versions[i][1] else 0),
        )
        newest[label] = nodes[i][6]
    rows = store_rows(batched)
    assert {r[1]: r[6] for r in rows["node_executions"]} == newest
    latest = {label: max(e[3] for e in edges if e[1] == label) for label in labels}
    assert {r[1]: r[3] for r in rows["edge_traversals"]} == latest


def test_a_second_big_batch_in_one_transaction_keeps_its_own_newer_rows(
    new_store_url: Any,
) -> None:
    """Deferred records and a request's rows are two batches of one transaction (the
    PostgreSQL store stages each through COPY): the second batch's newer writes win
    there as they would in a transaction of their own."""
    from dagtrace.store.rows import Rows

    older = [node_row(f"n{i}", '"older"', 1, 1) for i in range(40)]
    others = [node_row(f"m{i}", '"other"', 1, 1) for i in range(40)]
    newer = [node_row(f"n{i}", '"newer"', 2, 1) for i in range(40)]
    store = dagtrace.open_store(new_store_url())
    with store.transaction() as writer:
        writer.write_rows(Rows(nodes=older))
        writer.write_rows(Rows(nodes=others + newer))
    outputs = {n["node_label"]: n["output_json"] for n in store.get_node_executions("r")}
    store.close()
    assert outputs == {f"n{i}": '"newer"' for i in range(40)} | {
        f"m{i}": '"other"' for i in range(40)
    }


def test_big_batches_over_stored_keys_leave_what_rows_one_by_one_leave(
    new_store_url: Any,
) -> None:
    """PostgreSQL copies a big batch straight into its tables when none of its keys is
    stored, and upserts it when one is: batches of new keys, of stored keys older and
    newer, and of new keys again after those end as the same rows one by one do."""
    from dagtrace.store.rows import Rows

    def batch(labels: range, attempt: int, traversed_at: float) -> Rows:
        return Rows(
            nodes=[node_row(f"n{i}", f'"{attempt}.{i}"', attempt, 1) for i in labels],
            edges=[("r", f"n{i}", "m", traversed_at + i) for i in labels],
        )

    batches = [
        batch(range(0, 40), 2, 10.0),  # all new
        batch(range(20, 60), 1, 5.0),  # half stored (older: they stay), half new
        batch(range(50, 90), 3, 20.0),  # ten stored (newer: they win), thirty new
        *(batch(range(100 + 40 * k, 140 + 40 * k), 1, 1.0) for k in range(3)),  # new again
    ]
    one_by_one, batched = new_store_url(), new_store_url()
    store = dagtrace.open_store(one_by_one)
    for rows in batches:
        for node in rows.nodes:
            store.write_rows(Rows(nodes=[node]))
        for edge in rows.edges:
            store.write_rows(Rows(edges=[edge]))
    store.close()
    store = dagtrace.open_store(batched)
    for rows in batches:
        store.write_rows(rows)
    outputs = {n["node_label"]: n["output_json"] for n in store.get_node_executions("r")}
    store.close()
    assert store_rows(batched) == store_rows(one_by_one)
    assert len(outputs) == 210
    assert (outputs["n0"], outputs["n25"], outputs["n45"], outputs["n55"]) == (
        '"2.0"',
        '"2.25"',
        '"1.45"',
        '"3.55"',
    )


def test_a_schema_9_postgres_store_compares_text_bytewise_as_sqlite_does(
    pg_schema_url: Any, tmp_path: Path
) -> None:
    """Schema 10 puts PostgreSQL's text columns in the "C" collation: a schema 9 store
    (the database's collation) keeps its rows and lists node labels in SQLite's order."""
    import psycopg

    from dagtrace.store.rows import Rows
    from dagtrace.store.schema import TABLES

    labels = ["b", "B", "ä", "a", "Z", "a b", "a-b", "é", "10", "9"]
    rows = Rows(
        nodes=[node_row(label, f'"{label}"', 1, 1) for label in labels],
        edges=[("r", label, "m", 1.0) for label in labels],
    )
    url, reference = pg_schema_url(), str(tmp_path / "reference.db")
    for location in (url, reference):
        store = dagtrace.open_store(location)
        store.write_rows(Rows(nodes=list(rows.nodes), edges=list(rows.edges)))
        store.close()

    def collations(conn: Any) -> set[Any]:
        found = conn.execute(
            "SELECT DISTINCT collation_name FROM information_schema.columns WHERE "
            "table_schema = current_schema() AND data_type = 'text' AND table_name = ANY(%s)",
            (list(TABLES),),
        )
        return {row[0] for row in found.fetchall()}

    with psycopg.connect(url, autocommit=True) as conn:
        assert collations(conn) == {"C"}
        for table in TABLES:  # back to what schema 9 made: the database's collation
            columns = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND table_schema = current_schema() AND data_type = 'text'",
                (table,),
            ).fetchall()
            retyped = ", ".join(
                f"ALTER COLUMN {c} TYPE TEXT COLLATE pg_catalog.default" for (c,) in columns
            )
            conn.execute(f"ALTER TABLE {table} {retyped}")
        conn.execute("UPDATE dagtrace_meta SET value = '9' WHERE key = 'schema_version'")
        assert collations(conn) == {None}
    before = store_rows(url)

    store = dagtrace.open_store(url)
    listed = [n["node_label"] for n in store.get_node_executions("r")]
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        assert collations(conn) == {"C"}
        version = conn.execute("SELECT value FROM dagtrace_meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == "10"
    assert store_rows(url) == before
    sqlite = dagtrace.open_store(reference)
    assert listed == [n["node_label"] for n in sqlite.get_node_executions("r")]
    sqlite.close()
    assert listed == sorted(labels)


def test_postgres_vacuum_runs_and_size_counts_every_table(pg_schema_url: Any) -> None:
    """`dagtrace vacuum` and `dagtrace stats` on PostgreSQL: every provenance table."""
    import psycopg

    from dagtrace.store.rows import Rows
    from dagtrace.store.schema import TABLES

    url = pg_schema_url()
    store = dagtrace.open_store(url)
    empty = store.size_bytes()
    store.write_rows(Rows(nodes=[node_row(f"n{i}", '"x"', 1, 1) for i in range(200)]))
    store.vacuum()
    size = store.size_bytes()
    store.close()
    with psycopg.connect(url) as conn:
        each = conn.execute(
            "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(%s::text[]) AS t",
            (list(TABLES),),
        ).fetchone()[0]
        analyzed = conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
        ).fetchone()[0]
    assert size > empty
    assert size == each
    assert analyzed == len(TABLES)


def test_a_big_batch_refused_after_its_stage_was_made_leaves_the_next_one_whole(
    pg_schema_url: Any,
) -> None:
    """A PostgreSQL session creates its stage tables once; a transaction that made them
    and failed took them with it, so the next big batch on that connection makes them
    again instead of failing on a table that is not there."""
    from dagtrace.store.postgres import PostgresStore
    from dagtrace.store.rows import Rows

    store = PostgresStore(pg_schema_url(), pool_size=1)  # every write on one connection
    stored = [node_row(f"s{i}", '"s"', 1, 1) for i in range(40)]
    store.write_rows(Rows(nodes=stored))
    store.write_rows(Rows(nodes=stored))  # keys stored: the next node batches are staged
    refused = [node_row(f"n{i}", '"x"', 1, 1) for i in range(40)]
    refused[-1] = (*refused[-1][:6], '"NUL \x00"', *refused[-1][7:])  # PostgreSQL refuses
    with pytest.raises(dagtrace.StoreError):
        store.write_rows(Rows(nodes=refused))
    store.write_rows(Rows(nodes=[node_row(f"m{i}", '"y"', 1, 1) for i in range(40)]))
    store.write_rows(Rows(nodes=[node_row(f"k{i}", '"z"', 1, 1) for i in range(40)]))
    labels = {n["node_label"] for n in store.get_node_executions("r")}
    store.close()
    assert labels == {f"{prefix}{i}" for prefix in "smk" for i in range(40)}


def test_keys_another_writer_inserts_meanwhile_are_upserted_not_refused(
    pg_schema_url: Any,
) -> None:
    """PostgreSQL inserts a big batch's new keys plainly: when another transaction
    inserts the same keys meanwhile, the write waits for it, upserts them instead in
    the same transaction (a drop-in call's, which is never tried again), and the
    newer rows win as they would one by one (nothing refused, nothing lost)."""
    import threading
    import time

    import psycopg

    from dagtrace.store.postgres import PostgresStore
    from dagtrace.store.rows import Rows

    url = pg_schema_url()
    first, second = PostgresStore(url), PostgresStore(url)
    holding, release = threading.Event(), threading.Event()

    def hold_older_rows_uncommitted() -> None:
        with first.transaction() as writer:
            writer.write_rows(
                Rows(
                    nodes=[node_row(f"n{i}", '"older"', 1, 1) for i in range(40)],
                    edges=[("r", f"n{i}", "m", 1.0) for i in range(40)],
                )
            )
            holding.set()
            release.wait(60)

    errors: list[BaseException] = []

    def write_newer_rows() -> None:
        try:
            with second.transaction() as transaction:
                transaction.write_rows(
                    Rows(
                        nodes=[node_row(f"n{i}", '"newer"', 2, 1) for i in range(40)],
                        edges=[("r", f"n{i}", "m", 2.0) for i in range(40)],
                    )
                )
        except BaseException as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    holder = threading.Thread(target=hold_older_rows_uncommitted)
    holder.start()
    assert holding.wait(60)
    writer = threading.Thread(target=write_newer_rows)
    writer.start()
    with psycopg.connect(url, autocommit=True) as watch:  # the newer write waits on a lock
        deadline = time.monotonic() + 60
        while not watch.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the second write never waited"
    release.set()
    holder.join()
    writer.join()
    outputs = {n["node_label"]: n["output_json"] for n in second.get_node_executions("r")}
    edges = {e["upstream_label"]: e["traversed_at"] for e in second.get_edge_traversals("r")}
    first.close()
    second.close()
    assert errors == []
    assert outputs == {f"n{i}": '"newer"' for i in range(40)}
    assert edges == {f"n{i}": 2.0 for i in range(40)}


def test_text_that_copy_escapes_round_trips_in_a_big_batch(new_store_url: Any) -> None:
    from dagtrace.store.rows import Rows

    texts = ["a\tb", "c\nd", "e\\f", "\\N", "\\.", "ünï😀", "x\r\ny", "'q\"", " "] * 4
    nodes = [
        ("r", f"{t}|{i}", "failed", 0, 0, t, t, 1.0, 2.0, t, "t", "s", 1, 1, None, *[b"v"] * 5)
        for i, t in enumerate(texts)
    ]
    edges = [("r", f"{t}|{i}", f"{t}→", 2.0) for i, t in enumerate(texts)]
    store = dagtrace.open_store(new_store_url())
    store.write_rows(Rows(nodes=nodes, edges=edges))
    stored = {n["node_label"]: n for n in store.get_node_executions("r")}
    assert {
        label: (n["input_json"], n["output_json"], n["error"]) for label, n in stored.items()
    } == {n[1]: (n[5], n[6], n[9]) for n in nodes}
    traversed = {
        (e["upstream_label"], e["downstream_label"]) for e in store.get_edge_traversals("r")
    }
    assert traversed == {e[1:3] for e in edges}
    store.close()


def test_exports_from_other_processes_in_shuffled_order(new_store_url: Any) -> None:
    """Each delivery in its own export call in another process: the same rows."""
    spans = _recorded_spans()
    expected_store = new_store_url()
    _export_each(expected_store, spans)
    target = new_store_url()
    rng = random.Random(7)
    order = list(range(len(spans))) * 2
    rng.shuffle(order)
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_export_each, args=(target, [spans[i] for i in order[k::4]]))
        for k in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 4
    assert store_rows(target) == store_rows(expected_store)


def test_exporter_and_live_processor_store_the_same_rows(tmp_path: Path) -> None:
    live = dagtrace.configure(tmp_path / "live.db")
    run_pipeline(dagtrace.DagTracer(live), fail_publish=True)
    live.shutdown()
    exported = TracerProvider()
    exported.add_span_processor(
        SimpleSpanProcessor(dagtrace.DagtraceSpanExporter(tmp_path / "ex.db"))
    )
    run_pipeline(dagtrace.DagTracer(exported), fail_publish=True)
    exported.shutdown()

    def shape(path: Path) -> Any:
        prov = dagtrace.DagProvenance(path)
        return {
            (r["dag_nsref"], n["node_label"], n["status"], n["output_json"], n["error"] is None)
            for r in [prov.get_run(x.run_id) for x in prov.get_recent_runs(100)]
            for n in prov.get_node_executions(r["run_id"])
        }

    assert shape(tmp_path / "live.db") == shape(tmp_path / "ex.db")


def test_non_dag_spans_are_ignored_and_do_not_break_parentage(
    provider: TracerProvider, db_path: Path
) -> None:
    """A sub-DAG run span without explicit parent attributes, under an HTTP span inside
    the composite node: parentage falls back to the OTel parent chain."""
    tracer = provider.get_tracer("by-hand")
    with (
        tracer.start_as_current_span(
            "dag.run", attributes={c.KIND: "run", c.RUN_ID: "p", c.NSREF: "outer"}
        ),
        tracer.start_as_current_span(
            "dag.node fetch", attributes={c.KIND: "node", c.RUN_ID: "p", c.NODE_LABEL: "fetch"}
        ),
        tracer.start_as_current_span("GET /data"),
    ):  # not a DAG span
        with tracer.start_as_current_span(
            "dag.run",
            attributes={c.KIND: "run", c.RUN_ID: "child", c.NSREF: "outer/fetch[]"},
        ):
            pass
    prov = dagtrace.DagProvenance(db_path)
    assert prov.get_run("child")["parent_run_id"] == "p"
    run = prov.inspect_run("p")
    assert run is not None and set(run.nodes) == {"fetch"}
    assert set(run.nodes["fetch"].sub_dags or {}) == {"fetch[]"}


def test_sampler_ratio_zero_still_stores_dag_spans(db_path: Path) -> None:
    forwarded = InMemorySpanExporter()
    provider = dagtrace.configure(db_path, sampler=TraceIdRatioBased(0.0))
    provider.add_span_processor(SimpleSpanProcessor(forwarded))
    run_pipeline(dagtrace.DagTracer(provider))
    with provider.get_tracer("t").start_as_current_span("not a dag span"):
        pass
    provider.shutdown()
    prov = dagtrace.DagProvenance(db_path)
    assert prov.get_run("run-1")["status"] == "completed"
    assert len(prov.get_child_runs("run-1")) == 6
    assert forwarded.get_finished_spans() == ()  # recorded, not sampled: not forwarded


def test_always_off_sampler_keeps_provenance(db_path: Path) -> None:
    provider = dagtrace.configure(db_path, sampler=ALWAYS_OFF)
    run_pipeline(dagtrace.DagTracer(provider))
    provider.shutdown()
    assert dagtrace.DagProvenance(db_path).get_run("run-1")["status"] == "completed"


def test_truncated_payload_is_detected_not_stored_as_whole(db_path: Path) -> None:
    provider = dagtrace.configure(db_path, span_limits=SpanLimits(max_span_attribute_length=32))
    tracer = dagtrace.DagTracer(provider)
    with tracer.run("cut", run_id="cut") as run:
        with run.node("big") as node:
            node.set_output({"rows": list(range(100))})
        with run.node("small") as node:
            node.set_output([1])
    provider.shutdown()
    prov = dagtrace.DagProvenance(db_path)
    nodes = {n["node_label"]: n for n in prov.get_node_executions("cut")}
    assert nodes["big"]["output_json"] is None  # restart will re-execute it
    assert nodes["small"]["output_json"] == "[1]"
    with sqlite3.connect(db_path) as conn:
        note = conn.execute(
            "SELECT payload_error FROM node_executions WHERE node_label = 'big'"
        ).fetchone()[0]
    assert "dag.node.output cut to 32 of" in note


def test_rejected_spans_are_counted_not_raised(provider: TracerProvider, db_path: Path) -> None:
    tracer = provider.get_tracer("by-hand")
    with tracer.start_as_current_span("dag.run", attributes={c.KIND: "run", c.NSREF: "x"}):
        pass  # no run id
    with tracer.start_as_current_span(
        "dag.node", attributes={c.KIND: "node", c.RUN_ID: "r", c.NODE_LABEL: "bad\x00label"}
    ):
        pass
    processor = cast(LiveSpanProcessor, provider._active_span_processor._span_processors[0])
    assert processor.stats.spans_rejected >= 2
    assert dagtrace.DagProvenance(db_path).get_recent_runs() == []


def test_store_failure_never_raises_into_the_program(db_path: Path) -> None:
    provider = dagtrace.configure(db_path)
    tracer = dagtrace.DagTracer(provider)
    processor = cast(LiveSpanProcessor, provider._active_span_processor._span_processors[0])
    with sqlite3.connect(db_path) as conn:  # make every write fail: a trigger that aborts
        conn.execute(
            "CREATE TRIGGER no_nodes BEFORE INSERT ON node_executions "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    run_pipeline(tracer)  # must not raise
    assert processor.stats.store_failures > 0
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TRIGGER no_nodes")
    provider.force_flush()  # the failed writes were kept and now go in
    prov = dagtrace.DagProvenance(db_path)
    assert prov.get_node_output("run-1", "publish") == '"ok"'
    assert prov.store.get_counters()["store_failures"] == processor.stats.store_failures
    provider.shutdown()
    provider.shutdown()  # idempotent


def test_exporter_failure_returns_failure_and_shutdown_is_idempotent(db_path: Path) -> None:
    exporter = dagtrace.DagtraceSpanExporter(db_path)
    spans = _recorded_spans()
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER no_runs BEFORE INSERT ON dag_runs "
            "BEGIN SELECT RAISE(ABORT, 'nope'); END"
        )
    assert exporter.export(spans).name == "FAILURE"
    assert exporter.stats.store_failures == 1
    assert dagtrace.DagProvenance(db_path).store.table_counts()["node_executions"] == 0
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export(spans).name == "FAILURE"


def test_close_interrupted_cascades_and_late_spans_do_not_reopen(tmp_path: Path) -> None:
    spans = [s for s in _recorded_spans(fail_first=True) if s.attributes.get(c.ATTEMPT, 1) == 1]
    starts = [s for s in spans if s.attributes.get(c.START_MARKER)]
    ends = [s for s in spans if not s.attributes.get(c.START_MARKER)]
    db = tmp_path / "killed.db"
    exporter = dagtrace.DagtraceSpanExporter(db)
    exporter.export(starts)  # the runner died: only its start markers arrived
    prov = dagtrace.DagProvenance(db)
    assert prov.get_run("run-1")["status"] == "running"
    assert prov.close_interrupted("run-1", "interrupted: runner died") == 7
    run = prov.inspect_run("run-1")
    assert run is not None and run.status == "failed"
    assert {n.status for n in run.nodes.values()} == {"failed"}
    assert all(r.status == "failed" for r in prov.get_child_runs("run-1"))
    exporter.export(ends)  # late spans of the dead attempt
    assert prov.get_run("run-1")["status"] == "failed"
    assert prov.close_interrupted("run-1") == 0  # not running any more
    assert prov.close_interrupted("unknown") == 0
