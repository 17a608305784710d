"""lythonic 0.0.28's own tests of `DagProvenance`, with dagtrace's classes swapped in.

Its sdist's `tests/test_dag_runner.py` and `tests/test_run_initiator.py` run in a
subprocess from the unpacked sdist (`lythonic_suite`), with `lythonic_swap_plugin`
replacing lythonic's `DagProvenance` before collection by `TracedProvenance` or by the
drop-in `DagProvenance`. lythonic itself comes from the environment (pinned 0.0.28),
dagtrace from the same place this process imports it. No sdist and no network: skip
with the reason, except under CI (fail).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import lythonic_suite
import lythonic_swap_plugin as plugin
import pytest
from conftest import IN_CI

import dagtrace

TESTS_DIR = Path(__file__).resolve().parent
RUN_TIMEOUT = 300
"""Seconds for one run of the two files (about 5 s here)."""
TAIL_LINES = 120


@pytest.fixture(scope="module")
def lythonic_root() -> Path:
    try:
        return lythonic_suite.sdist_root()
    except lythonic_suite.Unavailable as e:
        if IN_CI:
            pytest.fail(f"CI is set but lythonic's sdist cannot be obtained: {e}")
        pytest.skip(f"lythonic {lythonic_suite.VERSION} sdist not available (offline?): {e}")


def _env(tmp_path: Path, swap: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    }
    dagtrace_src = Path(dagtrace.__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(TESTS_DIR), str(dagtrace_src), env.get("PYTHONPATH")) if p
    )
    env[plugin.SWAP_ENV] = swap
    env["TMPDIR"] = str(tmp_path)  # lythonic's tests make their databases in tempfile dirs
    return env


@pytest.mark.parametrize(
    ("swap", "expected"),
    [
        ("dropin", "dagtrace._provenance.DagProvenance"),
        ("traced", "dagtrace.lythonic.TracedProvenance"),
    ],
)
def test_lythonic_own_tests_pass_with_dagtrace_swapped_in(
    lythonic_root: Path, tmp_path: Path, swap: str, expected: str
) -> None:
    assert version("lythonic") == lythonic_suite.VERSION
    version("pytest-asyncio")  # lythonic's async tests need it (the `test` extra pins it)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "lythonic_swap_plugin",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",  # theirs asks for --cov and --doctest-modules over src/
        "--import-mode=importlib",  # as theirs: `import tests.test_dag_runner` works
        "-W",
        "error",
        "-q",
        "-rfE",
        "--tb=short",
        *lythonic_suite.TEST_FILES,
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=lythonic_root,
            env=_env(tmp_path, swap),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        pytest.fail(f"lythonic's tests with {swap} did not end in {RUN_TIMEOUT}s:\n{out[-8000:]}")
    output = proc.stdout + proc.stderr
    tail = "\n".join(output.splitlines()[-TAIL_LINES:])
    assert proc.returncode == 0, (
        f"lythonic {lythonic_suite.VERSION}'s own tests with {expected} swapped in "
        f"exit {proc.returncode}:\n{tail}"
    )
    # The swap really happened: the header names the class and where it was installed,
    # and the summary counts the instances the tests made (all closed).
    assert f"lythonic DagProvenance -> {expected} in " in output, tail
    assert "lythonic.compose.dag_runner" in output, tail
    assert " passed" in output and " skipped" not in output, tail
    closed = [line for line in output.splitlines() if line.endswith(" closed")]
    assert closed and int(closed[0].split()[0]) > 0, tail
