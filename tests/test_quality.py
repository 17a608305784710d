"""The cheap gates: ruff (lint and format), mypy --strict on the package, and mypy at a
relaxed level on the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
CODE = ["src", "tests", "benchmarks", "examples"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint() -> None:
    done = _run("ruff", "check", *CODE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format() -> None:
    done = _run("ruff", "format", "--check", *CODE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


TESTS_MYPY_FLAGS = (
    # Tests need not be fully annotated: unannotated helpers and fixtures, calls into them
    # and into untyped code (grpc), bare generics, and Any returned from json/yaml/pytest.
    "--allow-untyped-defs",
    "--allow-incomplete-defs",
    "--allow-untyped-calls",
    "--allow-any-generics",
    "--no-warn-return-any",
    # `index`: e.g. reads that a test made the row for return Optional (`get_run`,
    # `get_run_details` -> `... | None`), as do the SDK's `span.attributes`/`events`;
    # `union-attr`: likewise `inspect_run(...).nodes`, `span.parent`/`context`,
    # `Popen.stdout`, and attribute values (`AnyValue` unions) the test knows are str.
    # Narrowing each would add an assert per line; a None there fails the test anyway
    # (TypeError / AttributeError on that very line), so nothing is lost.
    "--disable-error-code=index",
    "--disable-error-code=union-attr",
    # dagtrace is read for its types but checked by test_mypy_strict alone: under these
    # flags some of its ignore comments (needed under the strict ones) would be reported unused.
    "--follow-imports=silent",
    # Its own cache: the strict run and this one would otherwise invalidate each other's.
    "--cache-dir=.mypy_cache/tests",
)


def test_mypy_tests() -> None:
    """mypy on `tests/` (top-level modules, as pytest imports them) at a relaxed level:
    pyproject's `[tool.mypy]` (strict, `mypy_path = src`, the per-module overrides)
    with `TESTS_MYPY_FLAGS` on top. By hand, from the repository root:

        mypy tests --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls \
            --allow-any-generics --no-warn-return-any --disable-error-code=index \
            --disable-error-code=union-attr --follow-imports=silent \
            --cache-dir=.mypy_cache/tests
    """
    done = _run("mypy", "tests", *TESTS_MYPY_FLAGS)
    assert done.returncode == 0, done.stdout + done.stderr
