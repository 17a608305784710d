"""Input that can never be written is the client's fault: 400, or its spans rejected one
by one in partial_success while the rest of the request is stored; never 503 ("cannot
be written now"), which a Collector retries forever (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve import serve_process

import dagtrace


def _span(span_id: str, run_id: str, attrs: list[dict[str, Any]] | None = None, **times: str):
    return {
        "traceId": "a" * 32,
        "spanId": span_id,
        "name": "dag.run",
        "startTimeUnixNano": times.get("start", "1700000000000000000"),
        "endTimeUnixNano": times.get("end", "1700000001000000000"),
        "attributes": [
            {"key": "dag.kind", "value": {"stringValue": "run"}},
            {"key": "dag.run.id", "value": {"stringValue": run_id}},
            {"key": "dag.nsref", "value": {"stringValue": "etl"}},
            *(attrs or []),
        ],
    }


def _request(*spans: dict[str, Any]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}).encode()


GOOD = _span("c" * 16, "good")
UNDECODABLE = {
    "nested 100,000 levels": b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "doubleValue abc": _request(
        _span("b" * 16, "p", [{"key": "x", "value": {"doubleValue": "abc"}}]), GOOD
    ),
    "an integer of 5,000 digits": _request(
        _span("b" * 16, "p", [{"key": "x", "value": {"intValue": "9" * 5000}}]), GOOD
    ),
}
REJECTED = {
    "a time of 10^400 ns": _request(_span("b" * 16, "p", start="1" + "0" * 400), GOOD),
    "dag.attempt 2^63": _request(
        _span("b" * 16, "p", [{"key": "dag.attempt", "value": {"intValue": str(2**63)}}]), GOOD
    ),
    "dag.attempt 2^31": _request(
        _span("b" * 16, "p", [{"key": "dag.attempt", "value": {"intValue": str(2**31)}}]), GOOD
    ),
}


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_poison_is_400_or_rejected_never_503(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    db: Any = tmp_path / "runs.db"
    if store == "postgres":
        db = request.getfixturevalue("pg_schema_url")()
    headers = {"Content-Type": "application/json"}
    with serve_process(db) as (_, url), httpx.Client(base_url=url, timeout=60) as client:
        for name, body in UNDECODABLE.items():
            answer = client.post("/v1/traces", content=body, headers=headers)
            assert answer.status_code == 400, (name, answer.status_code, answer.text[:200])
        for name, body in REJECTED.items():
            answer = client.post("/v1/traces", content=body, headers=headers)
            assert answer.status_code == 200, (name, answer.status_code, answer.text[:200])
            assert answer.json()["partialSuccess"]["rejectedSpans"] in (1, "1"), name
        assert client.get("/readyz").status_code == 200
    reader = dagtrace.DagProvenance(db)
    try:
        assert reader.get_run("good") is not None and reader.get_run("p") is None
    finally:
        reader.close()
