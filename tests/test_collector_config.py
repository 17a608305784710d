"""collector-config/: component types, pipeline references, batch cap, ports.

No Collector binary installs here (see collector-config/README.md), so these checks
stand in for `otelcol-contrib validate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dagtrace.settings import DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT

CONFIGS = Path(__file__).parent.parent / "collector-config"
COLLECTOR_CONFIGS = ["collector.yaml", "collector-scale-out.yaml"]

CONTRIB_V0_144_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch"},
    "exporters": {"otlp_grpc", "otlp_http", "debug"},
    "extensions": {"health_check"},
}
"""Component types of otelcol-contrib ≥ v0.144 these configs may use (pinned)."""

MAX_SPAN_BYTES = 8 * 1024
"""The span size the batch cap is sized for (docs/conventions.md payloads included)."""


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / name).read_text())


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_component_types_are_known_contrib_types(name: str) -> None:
    config = load(name)
    for kind, known in CONTRIB_V0_144_TYPES.items():
        for component in config.get(kind, {}) or {}:
            assert component.split("/")[0] in known, f"{name}: unknown {kind} {component}"


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_pipelines_reference_defined_components_and_use_them_all(name: str) -> None:
    config = load(name)
    used: dict[str, set[str]] = {k: set() for k in ("receivers", "processors", "exporters")}
    for pipeline_name, pipeline in config["service"]["pipelines"].items():
        assert pipeline_name.split("/")[0] == "traces"
        for kind in used:
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {component} is not defined"
                used[kind].add(component)
        assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must come first"
        assert "batch" in pipeline["processors"]
        assert any(e.startswith("otlp_http/dagtrace") for e in pipeline["exporters"])
        assert any(e.startswith("otlp_grpc/jaeger") for e in pipeline["exporters"])
    for kind, components in used.items():
        assert set(config[kind]) == components, f"{name}: unused {kind}"
    assert set(config["service"].get("extensions", [])) == set(config.get("extensions", {}))


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_batch_cap_stays_below_serve_body_limit(name: str) -> None:
    batch = load(name)["processors"]["batch"]
    assert batch["send_batch_max_size"] >= batch["send_batch_size"]
    assert batch["send_batch_max_size"] * MAX_SPAN_BYTES <= DEFAULT_MAX_BODY // 2


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_dagtrace_exporter_retries_queues_and_compresses(name: str) -> None:
    exporter = load(name)["exporters"]["otlp_http/dagtrace"]
    assert exporter["retry_on_failure"]["enabled"] is True
    assert exporter["sending_queue"]["enabled"] is True
    assert exporter["compression"] == "gzip"
    assert exporter["endpoint"].endswith(f":{DEFAULT_PORT}")
    assert "/v1/traces" not in exporter["endpoint"]  # otlp_http appends it


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/")[0])


def test_one_host_endpoints_match_serve_and_do_not_clash() -> None:
    collector, jaeger = load("collector.yaml"), load("jaeger.yaml")
    dagtrace_endpoint = collector["exporters"]["otlp_http/dagtrace"]["endpoint"]
    assert dagtrace_endpoint == f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    jaeger_otlp = jaeger["receivers"]["otlp"]["protocols"]
    assert collector["exporters"]["otlp_grpc/jaeger"]["endpoint"] == jaeger_otlp["grpc"]["endpoint"]
    listening = [
        *(p["endpoint"] for p in collector["receivers"]["otlp"]["protocols"].values()),
        collector["extensions"]["health_check"]["endpoint"],
        *(p["endpoint"] for p in jaeger_otlp.values()),
        jaeger["extensions"]["jaeger_query"]["http"]["endpoint"],
        f"{DEFAULT_HOST}:{DEFAULT_PORT}",
    ]
    ports = [_port(e) for e in listening]
    assert len(ports) == len(set(ports)), f"a port is used twice: {sorted(ports)}"
    assert {4317, 4318, 4319, 16686} <= set(ports)
