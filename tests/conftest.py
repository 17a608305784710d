"""Shared fixtures: real SQLite files in tmp_path, a clean environment per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DAGTRACE_* or OTEL_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("DAGTRACE_", "OTEL_")):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "provenance.db"
