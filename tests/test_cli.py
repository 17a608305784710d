"""The dagtrace command: output, exit codes, help texts."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from traced_pipeline import run_pipeline

import dagtrace
from dagtrace.cli import main


@pytest.fixture
def recorded(db_path: Path) -> Path:
    provider = dagtrace.configure(db_path)
    tracer = dagtrace.DagTracer(provider)
    run_pipeline(tracer, run_id="ok-run")
    run_pipeline(tracer, run_id="bad-run", fail_publish=True)
    provider.shutdown()
    return db_path


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_runs_lists_top_level_runs_newest_first(recorded: Path) -> None:
    result = invoke("runs", "--db", str(recorded))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("RUN ID")
    assert [line.split()[0] for line in lines[1:]] == ["bad-run", "ok-run"]
    assert invoke("runs", "--db", str(recorded), "--failed").output.count("bad-run") == 1
    every = invoke("runs", "--db", str(recorded), "--all", "--limit", "100").output
    assert "pipe/shout[0]/explain[]" in every and len(every.splitlines()) == 1 + 14


def test_show_prints_the_tree_and_exits_1_for_a_failed_run(recorded: Path) -> None:
    ok = invoke("show", "ok-run", "--db", str(recorded), "--jaeger-url", "http://j:16686/")
    assert ok.exit_code == 0
    assert "pipe/shout[2]/explain[]" in ok.output and "describe" in ok.output
    trace_id = dagtrace.DagProvenance(recorded).store.get_run_details("ok-run")["trace_id"]
    assert f"trace: http://j:16686/trace/{trace_id}" in ok.output
    bad = invoke("show", "bad-run", "--db", str(recorded))
    assert bad.exit_code == 1
    assert "✗ publish  [failed]" in bad.output and "ConnectionError" in bad.output


def test_not_found_unreachable_and_usage_exit_codes(recorded: Path, tmp_path: Path) -> None:
    assert invoke("show", "nope", "--db", str(recorded)).exit_code == 3
    assert invoke("close", "ok-run", "--db", str(recorded)).exit_code == 3  # not running
    assert invoke("runs", "--db", str(tmp_path / "missing.db")).exit_code == 4
    (tmp_path / "junk.db").write_text("not sqlite at all" * 100)
    assert invoke("stats", "--db", str(tmp_path / "junk.db")).exit_code == 4
    assert invoke("runs", "--limit", "0", "--db", str(recorded)).exit_code == 2
    assert invoke("frobnicate").exit_code == 2


def test_close_a_running_run(db_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("stuck", "ns", {})
    prov.record_node_start("stuck", "n", "{}")
    result = invoke("close", "stuck", "--db", str(db_path), "--reason", "host lost")
    assert result.exit_code == 0 and "closed 1 run(s): host lost" in result.output
    assert prov.get_run("stuck")["status"] == "failed"
    assert prov.get_node_executions("stuck")[0]["error"] == "host lost"


def test_db_from_environment(recorded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGTRACE_DB", str(recorded))
    assert "ok-run" in invoke("runs").output


def test_stats_shows_counts(recorded: Path) -> None:
    result = invoke("stats", "--db", str(recorded))
    assert result.exit_code == 0
    assert "dag_runs" in result.output and "14" in result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output, f"dagtrace {command} --help has no example"


def test_console_script_is_installed(recorded: Path) -> None:
    exe = Path(sys.executable).parent / "dagtrace"
    out = subprocess.run(
        [str(exe), "show", "bad-run", "--db", str(recorded)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and "publish" in out.stdout


def test_tail_prints_changes_as_they_happen_until_the_run_ends(db_path: Path) -> None:
    prov = dagtrace.DagProvenance(db_path)
    prov.create_run("live", "etl", {})
    tail = subprocess.Popen(
        [sys.executable, "-m", "dagtrace", "tail", "--db", str(db_path), "--until", "live"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert tail.stdout is not None
    deadline = threading.Timer(60, tail.kill)  # a line that never comes ends the loop below
    deadline.start()
    try:

        def next_line_with(text: str) -> str:
            for line in tail.stdout:
                if text in line:
                    return line
            raise AssertionError(f"tail ended before printing {text!r}")

        assert "live" in next_line_with("run   etl  running")
        prov.record_node_start("live", "extract", "{}", is_source=True)
        next_line_with("etl:extract  running")
        prov.complete_node_with_edges("live", "extract", "[1]", [("extract", "load")])
        next_line_with("etl:extract  completed")
        prov.finish_run("live", "completed")
        next_line_with("run   etl  completed")
        assert tail.wait(timeout=30) == 0
    finally:
        deadline.cancel()
        tail.kill()
        tail.wait()
        tail.stdout.close()
