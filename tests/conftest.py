"""Shared fixtures: real SQLite files in tmp_path, real PostgreSQL schemas, a clean
environment per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from dagtrace.store import BACKENDS

BACKENDS["journal"] = "journal_backend:JournalStore"  # the third backend: one line

PG_URL_ENV = "DAGTRACE_TEST_POSTGRES_URL"
PG_BASE_URL = os.environ.get(PG_URL_ENV)
"""Read at import: the per-test environment cleaning below removes DAGTRACE_* variables."""
IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DAGTRACE_* or OTEL_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("DAGTRACE_", "OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DAGTRACE_STRICT", "1")  # a bug on the OTel path fails the test
    yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "provenance.db"


@contextmanager
def receiver_process(script: str, out: Path, *args: str) -> Iterator[str]:
    """A real OTLP receiver (`otlp_receiver.py` or `otlp_grpc_receiver.py`) in its own
    process, standing in for Jaeger (which cannot run here); yields `http://host:port`
    once it printed READY. It appends one JSON line per received span to `out`."""
    out.touch()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / script), str(out), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().split()
    assert ready[0] == "READY"
    try:
        yield f"http://127.0.0.1:{ready[1]}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An OTLP/HTTP receiver process: its traces URL and the file it writes."""
    out = tmp_path / "received.jsonl"
    with receiver_process("otlp_receiver.py", out) as url:
        yield f"{url}/v1/traces", out


def _postgres_or_skip() -> str:
    """The server's URL; skip with a reason when there is none, fail in CI."""
    if not PG_BASE_URL:
        if IN_CI:
            pytest.fail(f"CI is set but {PG_URL_ENV} is not: .ci/run must set it")
        pytest.skip(f"PostgreSQL tests need {PG_URL_ENV}=postgresql://user@host:port/db")
    try:
        import psycopg

        with psycopg.connect(PG_BASE_URL, connect_timeout=5):
            pass
    except Exception as e:  # noqa: BLE001 - any reason to not reach it
        if IN_CI:
            pytest.fail(f"no PostgreSQL server at {PG_BASE_URL}: {e}")
        pytest.skip(f"no PostgreSQL server at {PG_BASE_URL}: {e}")
    return PG_BASE_URL


@pytest.fixture
def pg_schema_url() -> Iterator[Callable[[], str]]:
    """Makes URLs of fresh, empty schemas of the test database; drops them afterwards."""
    import psycopg

    base = _postgres_or_skip()
    made: list[str] = []

    def make() -> str:
        schema = f"dagtrace_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        made.append(schema)
        separator = "&" if "?" in base else "?"
        return f"{base}{separator}options={quote(f'-csearch_path={schema}')}"

    yield make
    with psycopg.connect(base, autocommit=True) as conn:
        for schema in made:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres", "journal"])
def new_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes locations of fresh stores of one backend: the store suite runs on each,
    the third being `journal_backend.py`, a backend written as a user would."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_schema_url")
    counter = iter(range(1_000_000))
    prefix = "journal://" if request.param == "journal" else ""
    return lambda: f"{prefix}{tmp_path / f'store-{next(counter)}.db'}"


@pytest.fixture
def store_url(new_store_url: Callable[[], str]) -> str:
    return new_store_url()
