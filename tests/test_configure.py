"""configure(): forwarding over OTLP/HTTP or OTLP/gRPC, and the configuration order
(explicit argument → OTEL_* variable → default; bad variables logged, not fatal)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import receiver_process
from traced_pipeline import run_pipeline

import dagtrace
from dagtrace._configure import _protocol


@pytest.fixture
def grpc_receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An OTLP/gRPC receiver process (Jaeger's 4317 cannot run here)."""
    out = tmp_path / "received-grpc.jsonl"
    with receiver_process("otlp_grpc_receiver.py", out) as url:
        yield url, out


def test_forwarding_over_grpc(db_path: Path, grpc_receiver: tuple[str, Path]) -> None:
    url, out = grpc_receiver
    provider = dagtrace.configure(db_path, forward=url, forward_protocol="grpc")
    run_pipeline(dagtrace.DagTracer(provider))
    provider.shutdown()
    received = [json.loads(line) for line in out.read_text().splitlines()]
    details = dagtrace.DagProvenance(db_path).store.get_run_details("run-1")
    assert details is not None
    run_span = next(r for r in received if r["span_id"] == details["span_id"])
    assert run_span["trace_id"] == details["trace_id"] and run_span["name"] == "dag.run"


def test_grpc_chosen_by_the_standard_variable(
    db_path: Path, grpc_receiver: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, out = grpc_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    provider = dagtrace.configure(db_path)  # forwards because the endpoint is set
    run_pipeline(dagtrace.DagTracer(provider))
    provider.shutdown()
    assert out.read_text().count('"dag.run"') >= 1


@pytest.mark.parametrize(
    ("explicit", "traces_env", "generic_env", "expected"),
    [
        (None, None, None, "http/protobuf"),
        (None, None, "grpc", "grpc"),
        (None, "http/protobuf", "grpc", "http/protobuf"),
        ("grpc", "http/protobuf", None, "grpc"),
        (None, "carrier-pigeon", None, "http/protobuf"),  # logged, default used
    ],
)
def test_protocol_order(
    monkeypatch: pytest.MonkeyPatch,
    explicit: str | None,
    traces_env: str | None,
    generic_env: str | None,
    expected: str,
) -> None:
    for name, value in (
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", traces_env),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", generic_env),
    ):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert _protocol(explicit) == expected


def test_a_bad_explicit_protocol_raises() -> None:
    with pytest.raises(ValueError, match="forward_protocol must be one of"):
        _protocol("smoke-signals")


def test_db_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGTRACE_DB", str(tmp_path / "from-env.db"))
    provider = dagtrace.configure()
    run_pipeline(dagtrace.DagTracer(provider))
    provider.shutdown()
    assert dagtrace.DagProvenance(tmp_path / "from-env.db").get_run("run-1") is not None


def test_service_name_from_otel_service_name(
    monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-runner")
    provider = dagtrace.configure(db_path)
    assert provider.resource.attributes["service.name"] == "my-runner"
    provider.shutdown()
    assert (
        dagtrace.configure(db_path, service_name="explicit").resource.attributes["service.name"]
        == "explicit"
    )
