"""Redaction and payload caps: forwarded spans, the query API and the CLI hide secrets;
the store keeps payloads exact unless a store policy says otherwise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from otlp_helpers import protobuf_request
from test_serve import serving

import dagtrace
from dagtrace import Redaction

TESTS = Path(__file__).parent
SECRET_INPUT = {"user": "ada", "password": "hunter2", "nested": [{"api_token": "t0k3n"}]}


def _record_secret_run(provider: TracerProvider, run_id: str = "s", inputs: object = None) -> None:
    tracer = dagtrace.DagTracer(provider)
    inputs = inputs if inputs is not None else {"login": SECRET_INPUT}
    with tracer.run("secrets", run_id=run_id, inputs=inputs) as run:
        with run.node("login", input=SECRET_INPUT, is_source=True) as node:
            node.set_output({"session": "abc", "Authorization": "Bearer xyz"})
        with run.node("plain", input=[1, 2]) as node:
            node.set_output([3])


def test_payload_redaction_and_cap() -> None:
    policy = Redaction(max_payload_bytes=64)
    out = json.loads(Redaction().payload(json.dumps(SECRET_INPUT)) or "")
    assert out == {"user": "ada", "password": "[REDACTED]", "nested": [{"api_token": "[REDACTED]"}]}
    assert "over the 64-byte cap" in (policy.payload(json.dumps(list(range(100)))) or "")
    assert Redaction().payload("not json, password=x") == "not json, password=x"
    assert Redaction(patterns=("^user$",)).payload('{"user": 1, "username": 2}') == (
        '{"user": "[REDACTED]", "username": 2}'
    )


def test_payloads_without_secrets_leave_byte_for_byte_and_stay_reusable() -> None:
    compact = '{"a":1,"b":[true,null]}'
    assert Redaction().payload(compact) == compact
    attributes = {"dag.node.output": compact, "dag.node.output.length": len(compact)}
    assert Redaction().attributes(attributes) == attributes  # no dag.redacted
    lone_surrogate = '{"a": "\ud800"}'  # not UTF-8: the store refuses it, a forward may not
    assert Redaction().payload(lone_surrogate) == lone_surrogate


@pytest.mark.parametrize(
    "key",
    [
        "PASSWORD",
        "pass\\u0077ord",  # a JSON escape spelling the w
        "pa\u017f\u017fword",  # ſ, which a case-insensitive pattern takes for s
        "api_\u212aey",  # the Kelvin sign, taken for k
        "pr\u0131vate_key",  # dotless ı, taken for i
        "PR\u0130VATE_KEY",  # İ, taken for I
    ],
)
def test_secret_keys_however_spelt_are_redacted(key: str) -> None:
    payload = '{"' + key + '": "hunter2", "x": 1}'
    assert "hunter2" not in (Redaction().payload(payload) or "")


def test_the_folds_to_ascii_are_all_there() -> None:
    """Every non-ASCII character a case-insensitive word pattern matches is listed."""
    from dagtrace._redact import FOLDS_TO_ASCII

    word = re.compile(r"[a-z0-9_]", re.IGNORECASE)
    found = {chr(cp) for cp in range(128, 0x110000) if word.fullmatch(chr(cp))}
    assert found == set(FOLDS_TO_ASCII)


def test_a_request_without_secrets_is_forwarded_as_received() -> None:
    from test_serve import recorded_spans

    from dagtrace.serve.forward import redact_request

    body = protobuf_request(recorded_spans())
    assert redact_request(body, json_encoded=False, redaction=Redaction()) is body
    capped = redact_request(body, json_encoded=False, redaction=Redaction(max_payload_bytes=16))
    assert capped != body


def test_forwarded_spans_are_redacted_and_the_store_is_exact(
    db_path: Path, receiver: tuple[str, Path]
) -> None:
    url, received = receiver
    provider = dagtrace.configure(db_path, forward=url)
    _record_secret_run(provider)
    provider.shutdown()
    text = received.read_text()
    assert "hunter2" not in text and "t0k3n" not in text and "xyz" not in text
    assert "[REDACTED]" in text and "ada" in text  # only the secrets are hidden
    spans = [json.loads(line) for line in text.splitlines()]
    login = next(
        s
        for s in spans
        if s["attributes"].get("dag.node.label") == "login" and "dag.node.output" in s["attributes"]
    )
    assert login["attributes"].get("dag.redacted") is True
    plain = next(
        s
        for s in spans
        if s["attributes"].get("dag.node.label") == "plain" and "dag.node.output" in s["attributes"]
    )
    assert "dag.redacted" not in plain["attributes"]
    prov = dagtrace.DagProvenance(db_path)
    stored_input = prov.get_node_executions("s")[0]["input_json"]
    assert stored_input is not None
    assert json.loads(stored_input) == SECRET_INPUT  # exact
    assert "xyz" in (prov.get_node_output("s", "login") or "")


def test_query_api_and_forwarding_of_serve_are_redacted(
    db_path: Path, receiver: tuple[str, Path]
) -> None:
    url, received = receiver
    memory_spans = _spans_with_secrets()
    with serving(db_path, "--forward", url) as server:
        assert (
            httpx.post(
                f"{server}/v1/traces",
                content=protobuf_request(memory_spans),
                headers={"Content-Type": "application/x-protobuf"},
            ).status_code
            == 200
        )
        answers = [
            httpx.get(f"{server}{path}").text
            for path in (
                "/api/v1/runs/s?io=true",
                "/api/v1/runs/s/nodes",
                "/api/v1/runs/s/record",
                "/api/v1/runs/s/nodes/login/output",
            )
        ]
        import time

        deadline = time.monotonic() + 10
        while len(received.read_text().splitlines()) < len(memory_spans):
            assert time.monotonic() < deadline
            time.sleep(0.02)  # the forwarder works in the background: wait for its delivery
    for answer in answers:
        assert "hunter2" not in answer and "t0k3n" not in answer and "xyz" not in answer
        assert "[REDACTED]" in answer
    assert "hunter2" not in received.read_text()
    prov = dagtrace.DagProvenance(db_path)
    inputs = prov.get_run("s")["source_inputs_json"]
    assert inputs is not None
    assert json.loads(inputs) == {"login": SECRET_INPUT}


def _spans_with_secrets() -> list[ReadableSpan]:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _record_secret_run(provider)
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_store_policy_marks_changed_outputs_not_reusable(db_path: Path) -> None:
    provider = dagtrace.configure(db_path, store_policy=Redaction())
    _record_secret_run(provider)
    _record_secret_run(provider, run_id="plain-inputs", inputs={"day": 1})
    provider.shutdown()
    prov = dagtrace.DagProvenance(db_path)
    login = next(n for n in prov.get_node_executions("s") if n["node_label"] == "login")
    assert login["output_json"] is None  # restart re-executes it rather than reuse it
    stored_input = login["input_json"]
    assert stored_input is not None
    assert "hunter2" not in stored_input and "[REDACTED]" in stored_input
    assert prov.get_node_output("s", "plain") == "[3]"  # untouched output stays reusable
    with pytest.raises(dagtrace.NotReusableError, match="source inputs were not stored exactly"):
        prov.store.plan_replay("s", {"login"})  # secret run inputs: no replay at all
    assert prov.get_run("s")["source_inputs_json"] is None
    with pytest.raises(dagtrace.NotReusableError, match=r"login.*cannot be reused"):
        prov.store.plan_replay("plain-inputs", {"plain"})
    plan = prov.store.plan_replay("plain-inputs", {"login", "plain"})
    assert plan.rerun == {"login", "plain"} and plan.reuse == {}


def test_cli_show_io_is_redacted(db_path: Path) -> None:
    provider = dagtrace.configure(db_path)
    _record_secret_run(provider)
    provider.shutdown()
    shown = subprocess.run(
        [sys.executable, "-m", "dagtrace", "show", "s", "--db", str(db_path), "--io"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0
    assert "hunter2" not in shown.stdout and "[REDACTED]" in shown.stdout
    assert '"ada"' in shown.stdout
