"""A bug on serve's ingest path is told from a store failure: logged with its
traceback, counted (`bugs` in /api/v1/stats) and answered 500 (never a retryable 503;
in strict mode, `DAGTRACE_STRICT`, raised as a 500 by the server itself)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from otlp_helpers import protobuf_request
from test_serve import PB, recorded_spans

import dagtrace
from dagtrace.serve import ServeConfig, create_app
from dagtrace.serve.bugs import Bugs
from dagtrace.serve.forward import Forwarder


async def _ingest_then_stats(app: FastAPI, body: bytes) -> tuple[int, dict[str, int]]:
    """POST one request to the app in this process, then GET /api/v1/stats."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        answer = await client.post("/v1/traces", content=body, headers=PB)
        stats = await client.get("/api/v1/stats")
    return answer.status_code, stats.json()


class _FailingStore(dagtrace.SqliteStore):
    """Our own SQLite store, whose writes raise `failure`."""

    failure: Exception = RuntimeError("a bug in write_rows")

    def write_rows(self, *args: Any, **kwargs: Any) -> None:
        raise self.failure


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize(
    "failure", [RuntimeError("a bug in write_rows"), dagtrace.StoreError("disk full")]
)
def test_a_bug_is_logged_with_its_traceback_and_counted_apart_from_store_failures(
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    strict: bool,
    failure: Exception,
) -> None:
    monkeypatch.setenv("DAGTRACE_STRICT", "1" if strict else "0")
    bug = not isinstance(failure, dagtrace.StoreError)
    store = _FailingStore(db_path)
    store.failure = failure
    app = create_app(store, ServeConfig())
    try:
        with caplog.at_level(logging.ERROR, logger="dagtrace"):
            code, stats = asyncio.run(_ingest_then_stats(app, protobuf_request(recorded_spans())))
        assert code == (500 if bug else 503)
        assert stats["bugs"] == (1 if bug else 0)
    finally:
        app.state.shutdown()
        store.close()
    logged = [r for r in caplog.records if r.name == "dagtrace.serve.bugs"]
    if bug:
        assert len(logged) == 1 and logged[0].exc_info is not None
        assert logged[0].exc_info[1] is failure
        assert "Traceback" in caplog.text and "in write_rows" in caplog.text
    else:
        assert not logged
        assert "write failed: disk full" in caplog.text


def test_a_forwarder_bug_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lenient mode (in strict mode the bug ends the forwarder's thread)."""
    monkeypatch.setenv("DAGTRACE_STRICT", "0")

    def broken_redaction(body: bytes, content_type: str) -> bytes:
        raise ValueError("a bug in the redaction")

    with socket.socket() as nobody:
        nobody.bind(("127.0.0.1", 0))
        bugs = Bugs()
        forwarder = Forwarder(
            f"http://127.0.0.1:{nobody.getsockname()[1]}/v1/traces",
            prepare=broken_redaction,
            bugs=bugs,
        )
        with caplog.at_level(logging.ERROR, logger="dagtrace"):
            forwarder.submit(b"\x0a\x00", "application/x-protobuf")
            deadline = time.monotonic() + 10
            while forwarder.dropped == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        forwarder.stop()
    assert bugs.count == 1 and forwarder.dropped == 1 and forwarder.forwarded == 0
    assert "a bug in the redaction" in caplog.text and "Traceback" in caplog.text
