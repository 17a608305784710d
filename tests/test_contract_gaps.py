"""Gaps a user instrumenting by hand met in docs/conventions.md: cut stack traces,
sub-runs linked by parent node, explicit parents under sampling, start markers,
RemoteProvenance's URL."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lythonic_dags as dags
import pytest
from lythonic.compose.dag_runner import DagRunner
from lythonic.compose.namespace import Dag
from lythonic_dags import as_lythonic
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from test_serve import serving

import dagtrace
from dagtrace import conventions as c
from dagtrace._mapping import SpanEvent, _error_text
from dagtrace.lythonic import TracedProvenance

# -- 1. stack traces cut by the attribute value length limit --------------------------


def _deep(n: int) -> None:
    """A few frames, so the stack trace is longer than the 200-character limit."""
    if n == 0:
        raise ValueError("boom")
    _deep(n - 1)


def _fail_a_node(provider: TracerProvider, run_id: str = "r") -> None:
    dag = dagtrace.DagTracer(provider)
    with pytest.raises(ValueError), dag.run("etl", run_id=run_id) as run, run.node("parse"):
        _deep(5)


def _error(db: Path, run_id: str = "r", label: str = "parse") -> str:
    run = dagtrace.DagProvenance(db, read_only=True).inspect_run(run_id)
    assert run is not None
    return run.nodes[label].error or ""


def test_cut_trace_of_a_helper_span_is_led_by_type_and_message(db_path: Path) -> None:
    """`dag.error` is cut too (span attributes share the limit): the event decides."""
    provider = dagtrace.configure(db_path, span_limits=SpanLimits(max_attribute_length=200))
    _fail_a_node(provider)
    provider.shutdown()
    error = _error(db_path)
    head, note, trace_text = error.split("\n", 2)
    assert head == "ValueError: boom"
    assert note == "[cut to 200 characters by the attribute value length limit]"
    assert trace_text.startswith("Traceback (most recent call last):")
    assert len(trace_text) == 200


def test_cut_trace_by_hand_under_the_environment_limit(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain OTel API: `record_exception` only, the limit from the environment."""
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "200")
    provider = dagtrace.configure(db_path)
    tracer = provider.get_tracer("by-hand")
    with tracer.start_as_current_span(
        "dag.run", attributes={c.KIND: c.KIND_RUN, c.RUN_ID: "r", c.NSREF: "etl"}
    ):
        with tracer.start_as_current_span(
            "dag.node parse", attributes={c.KIND: c.KIND_NODE, c.RUN_ID: "r", c.NODE_LABEL: "parse"}
        ) as node:
            try:
                _deep(5)
            except ValueError as e:
                node.record_exception(e)
                node.set_status(trace.StatusCode.ERROR)
    provider.shutdown()
    assert _error(db_path).startswith("ValueError: boom\n[cut to 200 characters")


def test_whole_dag_error_beats_the_cut_event(db_path: Path) -> None:
    """Only event attributes are limited: the helpers' `dag.error` arrives whole and is
    stored as is, the whole stack trace."""
    limits = SpanLimits(max_attribute_length=200, max_span_attribute_length=100_000)
    provider = dagtrace.configure(db_path, span_limits=limits)
    _fail_a_node(provider)
    provider.shutdown()
    error = _error(db_path)
    assert error.startswith("Traceback (most recent call last):")
    assert error.endswith("ValueError: boom\n") and len(error) > 400
    assert "[cut to" not in error


def test_whole_trace_is_stored_unchanged(db_path: Path) -> None:
    provider = dagtrace.configure(db_path)
    _fail_a_node(provider)
    provider.shutdown()
    error = _error(db_path)
    assert error.startswith("Traceback (most recent call last):")
    assert error.endswith("ValueError: boom\n")


def test_traced_provenance_under_a_limit_stores_type_and_message_first(db_path: Path) -> None:
    """lythonic hands `fail_node_and_finish_run` a formatted traceback (a string)."""
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=200))
    traced = TracedProvenance(db_path, tracer_provider=provider)
    dag = Dag()
    dag.node(dags.load) >> dag.node(dags.words) >> dag.node(dags.flaky)
    saved = dags.SWITCHES["flaky_fails"]
    dags.SWITCHES["flaky_fails"] = True
    try:
        result = asyncio.run(
            DagRunner(dag, provenance=as_lythonic(traced)).run(
                {"load": {"text": "a b"}}, dag_nsref="f"
            )
        )
    finally:
        dags.SWITCHES["flaky_fails"] = saved
        traced.close()
        provider.shutdown()
    assert result.status == "failed"
    error = _error(db_path, result.run_id, "flaky")
    head = "RuntimeError: flaky node failed on purpose\n[cut to 200 characters"
    assert error.startswith(head), error


def _event(trace_text: str, kind: str, message: str) -> list[SpanEvent]:
    attributes = {
        c.EXCEPTION_STACKTRACE: trace_text,
        c.EXCEPTION_TYPE: kind,
        c.EXCEPTION_MESSAGE: message,
    }
    return [SpanEvent(c.EXCEPTION_EVENT, 0, attributes)]


class Custom(Exception):
    pass


def _formatted(error: BaseException) -> str:
    try:
        raise error
    except BaseException as e:  # noqa: BLE001 - formatting whatever was raised
        return "".join(traceback.format_exception(e))


@pytest.mark.parametrize(
    ("trace_text", "kind", "message"),
    [
        (_formatted(ValueError("boom")), "ValueError", "boom"),
        (_formatted(KeyError("k")), "KeyError", "'k'"),
        (_formatted(ValueError()), "ValueError", ""),
        (_formatted(Custom("two\nlines")), f"{__name__}.Custom", "two\nlines"),
        # a script's exception: the SDK says `__main__.Custom`, the traceback `Custom`
        (_formatted(Custom("x")).replace(f"{__name__}.Custom", "Custom"), "__main__.Custom", "x"),
        (_formatted(ExceptionGroup("eg", [ValueError("inner")])), "ExceptionGroup", "eg"),
        (
            "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)",
            "java.lang.IllegalStateException",
            "boom",
        ),
    ],
)
def test_whole_traces_are_recognised(trace_text: str, kind: str, message: str) -> None:
    assert _error_text(_event(trace_text, kind, message), None) == trace_text


def test_a_note_after_the_type_line_is_not_a_cut() -> None:
    error = ValueError("boom")
    error.add_note("while parsing row 7")
    text = _formatted(error)
    assert _error_text(_event(text, "ValueError", "boom"), None) == text


@pytest.mark.parametrize("cut_at", [40, -10, -19])
def test_traces_cut_anywhere_are_recognised(cut_at: int) -> None:
    """Inside the frames, inside the type line's message, inside the type name."""
    text = _formatted(ValueError("a long message"))
    cut = text[:cut_at] if cut_at > 0 else text.rstrip("\n")[:cut_at]
    stored = _error_text(_event(cut, "ValueError", "a long message"), None)
    assert stored == (
        "ValueError: a long message\n"
        f"[cut to {len(cut)} characters by the attribute value length limit]\n{cut}"
    )


def test_dag_error_rules() -> None:
    whole = _formatted(ValueError("boom"))
    events = _event(whole[:50], "ValueError", "boom")
    length = c.ERROR + c.LENGTH_SUFFIX
    # whole dag.error wins over the event
    assert _error_text(events, "x", {c.ERROR: whole, length: len(whole)}) == whole
    # cut dag.error: the event decides
    cut_both = {c.ERROR: whole[:60], length: len(whole)}
    assert _error_text(events, "x", cut_both).startswith("ValueError: boom\n[cut to 50 ")
    # no event: the cut dag.error, marked, led by the status description
    assert _error_text([], "ValueError: boom", cut_both) == (
        "ValueError: boom\n[cut to 60 characters by the attribute value length limit]\n"
        + whole[:60]
    )
    # dag.error without a length: only when there is no event
    assert _error_text([], "x", {c.ERROR: "it broke"}) == "it broke"
    assert _error_text(events, "x", {c.ERROR: "it broke"}).startswith("ValueError: boom\n")


# -- 3. sub-runs linked to a composite node whose nsref does not say so ----------------


@pytest.fixture
def tracer(store_url: str) -> Iterator[tuple[dagtrace.DagTracer, dagtrace.DagProvenance]]:
    prov = dagtrace.DagProvenance(store_url)
    provider = dagtrace.configure(prov.store)
    yield dagtrace.DagTracer(provider), prov
    provider.shutdown()
    prov.close()


def _keys(prov: dagtrace.DagProvenance, label: str) -> dict[str, str]:
    run = prov.inspect_run("p")
    assert run is not None
    return {key: sub.run_id for key, sub in (run.nodes[label].sub_dags or {}).items()}


def test_linked_sub_run_with_another_nsref_hangs_off_its_node(
    tracer: tuple[dagtrace.DagTracer, dagtrace.DagProvenance],
) -> None:
    dag, prov = tracer
    with dag.run("etl", run_id="p") as run:
        with run.node("summarise") as node:  # one sub-DAG, registered elsewhere
            with dag.run("lib/summary", run_id="s1", parent=node):
                pass
        with run.node("chunks") as node:  # a map over a DAG of its own nsref
            for i in range(2):
                with dag.run(f"lib/chunks[{i}]", run_id=f"c{i}", parent=node):
                    pass
        with run.node("both") as node:  # two different sub-DAGs
            with dag.run("lib/a", run_id="a", parent=node):
                pass
            with dag.run("lib/b", run_id="b", parent=node):
                pass
        with run.node("pattern") as node:  # lythonic's own pattern: keys unchanged
            with node.sub_run("pattern[x]", run_id="x"):
                pass
        # a sub-run naming its parent by attributes only, no OTel parent
        with run.node("late"):
            pass
        with dag.run("elsewhere", run_id="l", parent_run_id="p", parent_node="late"):
            pass
    assert {r.run_id for r in prov.get_child_runs("p")} == {"s1", "c0", "c1", "a", "b", "x", "l"}
    assert _keys(prov, "summarise") == {"summarise[]": "s1"}
    assert _keys(prov, "chunks") == {"chunks[0]": "c0", "chunks[1]": "c1"}
    assert _keys(prov, "both") == {"a": "a", "b": "b"}
    assert _keys(prov, "pattern") == {"pattern[x]": "x"}
    assert _keys(prov, "late") == {"late[]": "l"}
    # the same through the tree of recent runs
    top = next(r for r in prov.get_recent_runs() if r.run_id == "p")
    assert set(top.nodes["summarise"].sub_dags or {}) == {"summarise[]"}


def test_restarted_linked_sub_run_replaces_the_earlier_one(
    tracer: tuple[dagtrace.DagTracer, dagtrace.DagProvenance],
) -> None:
    dag, prov = tracer
    for attempt, sub_id in ((1, "s1"), (2, "s2")):
        with dag.run("etl", run_id="p", attempt=attempt) as run, run.node("summarise") as node:
            with dag.run("lib/summary", run_id=sub_id, parent=node):
                pass
    assert _keys(prov, "summarise") == {"summarise[]": "s2"}


# -- 4. explicit parents when a sampler drops the span in between ----------------------


def test_explicit_parent_survives_a_dropping_sampler(db_path: Path) -> None:
    """configure() records DAG spans a sampler drops, but not the HTTP span between a
    node and its sub-run: only explicit parent attributes link the sub-run then."""
    provider = dagtrace.configure(db_path, sampler=ALWAYS_OFF)
    dag = dagtrace.DagTracer(provider)
    http = provider.get_tracer("http")
    with dag.run("etl", run_id="p") as run, run.node("remote"):
        with http.start_as_current_span("POST /sub"):
            with dag.run("svc", run_id="implicit"):
                pass
            with dag.run("svc", run_id="explicit", parent_run_id="p", parent_node="remote"):
                pass
    provider.shutdown()
    prov = dagtrace.DagProvenance(db_path, read_only=True)
    assert prov.get_run("implicit")["parent_run_id"] is None
    assert prov.get_run("explicit")["parent_run_id"] == "p"
    recorded = prov.inspect_run("p")
    assert recorded is not None and set(recorded.nodes["remote"].sub_dags or {}) == {"remote[]"}


# -- 5. what start markers repeat ------------------------------------------------------


def test_start_markers_repeat_the_start_attributes_at_the_start_time() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    dag = dagtrace.DagTracer(provider, start_markers=True)
    with dag.run("etl", run_id="r", inputs={"a": 1}) as run:
        with run.node("n", input={"x": 2}, is_source=True) as node:
            node.set_output(3)
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    markers = [s for s in spans if s.name == c.START_MARKER_SPAN_NAME]
    assert len(markers) == 2
    for marker in markers:
        assert marker.parent is not None
        parent_id = marker.parent.span_id
        described = next(
            s
            for s in spans
            if s.name != c.START_MARKER_SPAN_NAME and s.context.span_id == parent_id
        )
        assert marker.start_time == marker.end_time == described.start_time
        attributes = dict(marker.attributes or {})
        assert attributes.pop(c.START_MARKER) is True
        started = {
            k: v for k, v in (described.attributes or {}).items() if not k.startswith(c.NODE_OUTPUT)
        }
        assert attributes == started  # payloads (inputs) too; no output yet
    inputs = {m.attributes[c.KIND]: m.attributes for m in markers}
    assert inputs["run"][c.RUN_INPUTS] == '{"a": 1}'
    assert inputs["node"][c.NODE_INPUT] == '{"x": 2}'


# -- 7. RemoteProvenance takes the base URL or the API's -------------------------------


def test_remote_provenance_accepts_the_base_url_and_the_api_url(db_path: Path) -> None:
    provider = dagtrace.configure(db_path)
    dag = dagtrace.DagTracer(provider)
    with dag.run("etl", run_id="r") as run, run.node("n") as node:
        node.set_output(1)
    provider.shutdown()
    with serving(db_path) as url:
        expected: Any = None
        for form in (url, f"{url}/", f"{url}/api/v1", f"{url}/api/v1/"):
            with dagtrace.RemoteProvenance(form) as remote:
                got = (
                    remote.get_run("r"),
                    remote.get_node_output("r", "n"),
                    [r.run_id for r in remote.get_recent_runs()],
                    remote.stats()["dag_runs"],
                )
                assert remote.url == url
            assert got[0] is not None and got[0]["status"] == "completed", form
            expected = expected or got
            assert got == expected, form
