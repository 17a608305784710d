"""A bug on the OTel path is told apart from a store failure: counted as `bugs`, logged
with its traceback, and re-raised in strict mode (which this suite runs in), so that it
fails a test instead of passing for a store failure."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from journal_backend import JournalStore
from test_bridge import _recorded_spans

import dagtrace
from dagtrace.store import Rows


class StoreWithABug(JournalStore):
    """A backend whose write has a bug: it raises a plain error, not a StoreError."""

    def write_rows(self, rows: Rows, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug in a backend")


def test_a_bug_is_counted_apart_and_logged_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("DAGTRACE_STRICT")  # as in production: nothing raised
    exporter = dagtrace.DagtraceSpanExporter(StoreWithABug(str(tmp_path / "bug.db")))
    with caplog.at_level(logging.ERROR, logger="dagtrace"):
        assert exporter.export(_recorded_spans()).name == "FAILURE"
    assert (exporter.stats.bugs, exporter.stats.store_failures) == (1, 0)
    [record] = [r for r in caplog.records if "bug while" in r.getMessage()]
    assert record.name == "dagtrace.bridge.problems"
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert "a bug in a backend" in caplog.text and "Traceback" in caplog.text


def test_strict_mode_re_raises_a_bug(tmp_path: Path) -> None:
    exporter = dagtrace.DagtraceSpanExporter(StoreWithABug(str(tmp_path / "bug.db")))
    with pytest.raises(ZeroDivisionError, match="a bug in a backend"):
        exporter.export(_recorded_spans())
    assert exporter.stats.bugs == 1


def test_a_store_failure_is_no_bug_even_in_strict_mode(db_path: Path) -> None:
    exporter = dagtrace.DagtraceSpanExporter(db_path)
    exporter.store.close()  # every write now fails with StoreError
    assert exporter.export(_recorded_spans()).name == "FAILURE"
    assert (exporter.stats.bugs, exporter.stats.store_failures) == (0, 1)
