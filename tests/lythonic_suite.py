"""lythonic 0.0.28's own test files, from its sdist, for `test_lythonic_own_suite.py`.

The sdist is obtained with pip (`pip download --no-binary :all:`, so from whatever
index pip is configured with), checked against `SDIST_SHA256` and unpacked into a
cache directory outside the repo: `$DAGTRACE_TEST_CACHE` if set, else
`$XDG_CACHE_HOME/dagtrace-tests` (default `~/.cache/dagtrace-tests`). Once unpacked,
no network is needed. Nothing of lythonic's is copied into this repository.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

VERSION = "0.0.28"
SDIST_NAME = f"lythonic-{VERSION}.tar.gz"
SDIST_SHA256 = "5cc3afdf88ab7505ea82ebf8216641e975f0aec8c3ce4bb91c07beb9c1021f55"
TEST_FILES = ("tests/test_dag_runner.py", "tests/test_run_initiator.py")
"""The two files of the sdist that exercise `DagProvenance`, relative to its root."""

CACHE_ENV = "DAGTRACE_TEST_CACHE"
DOWNLOAD_TIMEOUT = 600
"""pip prepares the sdist's metadata (building it in isolation): about a minute, once."""

_CACHE_AT_IMPORT = os.environ.get(CACHE_ENV)
"""Read at import: conftest's per-test cleaning removes DAGTRACE_* variables."""


class Unavailable(Exception):
    """The sdist cannot be obtained (offline, no index): the caller skips, or fails in CI."""


def cache_dir() -> Path:
    if _CACHE_AT_IMPORT:
        return Path(_CACHE_AT_IMPORT)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dagtrace-tests"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(into: Path) -> Path:
    """The sdist, fetched with pip into `into`; raises `Unavailable` if pip cannot."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        f"lythonic=={VERSION}",
        "-d",
        str(into),
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise Unavailable(f"pip download lythonic=={VERSION} timed out after {e.timeout}s") from e
    sdist = into / SDIST_NAME
    if proc.returncode != 0 or not sdist.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise Unavailable(
            f"pip download lythonic=={VERSION} (sdist) failed, exit {proc.returncode}:\n{tail}"
        )
    return sdist


def _safe_members(tar: tarfile.TarFile, root: str) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        parts = Path(m.name).parts
        if not parts or parts[0] != root or ".." in parts or Path(m.name).is_absolute():
            raise RuntimeError(f"unexpected path in {SDIST_NAME}: {m.name!r}")
        if not (m.isfile() or m.isdir()):
            raise RuntimeError(f"unexpected member type in {SDIST_NAME}: {m.name!r}")
    return members


def sdist_root() -> Path:
    """The unpacked sdist's root (it holds `TEST_FILES`), fetching and unpacking it into
    the cache on first use. Raises `Unavailable` when pip cannot obtain it, and
    `RuntimeError` when what it obtained is not the pinned file (that never skips)."""
    cache = cache_dir()
    root = cache / f"lythonic-{VERSION}-{SDIST_SHA256[:12]}"
    if (root / ".complete").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / SDIST_NAME
    if not sdist.is_file() or _sha256(sdist) != SDIST_SHA256:
        with tempfile.TemporaryDirectory(dir=cache, prefix="download-") as tmp:
            fetched = _download(Path(tmp))
            got = _sha256(fetched)
            if got != SDIST_SHA256:
                raise RuntimeError(
                    f"{SDIST_NAME}: sha256 {got}, expected {SDIST_SHA256}: refusing to run it"
                )
            os.replace(fetched, sdist)
    # Unpack beside the final place, then rename: concurrent runs never see half a tree.
    with tempfile.TemporaryDirectory(dir=cache, prefix="unpack-") as tmp:
        top = f"lythonic-{VERSION}"
        with tarfile.open(sdist, "r:gz") as tar:
            # "data" filter where this Python has it (3.11.4+; 3.12+ warns without one).
            safe: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=_safe_members(tar, top), **safe)
        unpacked = Path(tmp) / top
        missing = [f for f in TEST_FILES if not (unpacked / f).is_file()]
        if missing:
            raise RuntimeError(f"{SDIST_NAME} lacks {missing}")
        (unpacked / ".complete").write_text(SDIST_SHA256 + "\n")
        try:
            os.rename(unpacked, root)
        except OSError:
            if not (root / ".complete").is_file():  # else another run unpacked it first
                raise
    return root
