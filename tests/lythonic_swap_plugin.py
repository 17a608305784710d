# mypy: allow-subclassing-any
# (`Swapped` subclasses a class chosen at run time, which mypy sees as `Any`.)
"""pytest plugin: lythonic's `DagProvenance` replaced by a dagtrace class, before collection.

Load it with `-p lythonic_swap_plugin` (this directory on PYTHONPATH) and choose the
class with `DAGTRACE_LYTHONIC_SWAP`:

- `traced`: `dagtrace.lythonic.TracedProvenance` (writes as OTel spans);
- `dropin`: `dagtrace.DagProvenance` (lythonic's API and schema, direct writes).

The replacement is a subclass that remembers its instances: each is closed when the
session ends (a TracedProvenance owns a TracerProvider, with its store and threads).
It is installed in `lythonic.compose.dag_provenance` and in every imported `lythonic`
module holding the original name: in 0.0.28 only `dag_runner` imports it at module
level (`trigger` only under TYPE_CHECKING; `namespace` and `lyth` import it inside
functions, so they get it from `dag_provenance`), and so do the test modules, which are
imported after this. After collection no lythonic or test module may still hold the
original class; at the end, no instance of it may have been made, no instance may fail
to close and no thread started during the run may still be running.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from typing import Any, cast

import pytest

SWAP_ENV = "DAGTRACE_LYTHONIC_SWAP"
CHOICES = ("traced", "dropin")

_original: type | None = None
_replacement: type | None = None
_instances: list[Any] = []
_threads_before: set[threading.Thread] = set()
_originals_made: list[str] = []
"""db paths given to lythonic's own class: some reference to it escaped the swap."""
_report: list[tuple[str, bool]] = []
"""(line, is a problem) for the terminal summary."""
_holders_key = pytest.StashKey[list[str]]()


def _guard_original(cls: Any) -> None:
    """Record (and let through) any construction of lythonic's class after the swap.

    `cls` is typed `Any`: its `__init__` is read and replaced in place.
    """
    init = cls.__init__

    def __init__(self: Any, db_path: Any, *args: Any, **kwargs: Any) -> None:
        _originals_made.append(str(db_path))
        init(self, db_path, *args, **kwargs)

    cls.__init__ = __init__


def _choose() -> type:
    choice = os.environ.get(SWAP_ENV, "")
    if choice == "traced":
        from dagtrace.lythonic import TracedProvenance

        base: type = TracedProvenance
    elif choice == "dropin":
        from dagtrace import DagProvenance

        base = DagProvenance
    else:
        raise pytest.UsageError(f"{SWAP_ENV} must be one of {CHOICES}, not {choice!r}")

    class Swapped(base):
        __doc__ = base.__doc__

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _instances.append(self)

    Swapped.__name__ = Swapped.__qualname__ = f"Swapped{base.__name__}"
    Swapped.__module__ = __name__
    return Swapped


def _holders_of(cls: type) -> list[str]:
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if (name == "lythonic" or name.startswith("lythonic."))
        and module is not None
        and getattr(module, "DagProvenance", None) is cls
    )


def _install() -> list[str]:
    assert _original is not None and _replacement is not None
    patched = []
    for name in _holders_of(_original):
        cast(Any, sys.modules[name]).DagProvenance = _replacement
        patched.append(name)
    return patched


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    global _original, _replacement
    _threads_before.update(threading.enumerate())
    provenance_module = importlib.import_module("lythonic.compose.dag_provenance")
    _original = provenance_module.DagProvenance
    _replacement = _choose()
    _guard_original(_original)
    _install()
    # The modules that take the name at import time (grep of the sdist), imported now:
    # those imported before the swap are patched by the second pass.
    for name in ("lythonic.compose.dag_runner", "lythonic.compose.trigger"):
        importlib.import_module(name)
    _install()
    holders = _holders_of(_replacement)
    assert "lythonic.compose.dag_provenance" in holders, holders
    assert "lythonic.compose.dag_runner" in holders, holders
    config.stash[_holders_key] = holders


def _swap_line(config: pytest.Config) -> str:
    assert _replacement is not None
    base = _replacement.__mro__[1]
    patched: list[str] = config.stash.get(_holders_key, [])
    holders = ", ".join(patched)
    return f"lythonic DagProvenance -> {base.__module__}.{base.__name__} in {holders}"


def pytest_report_header(config: pytest.Config) -> str:
    return _swap_line(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Test modules are imported now: one that kept the original class is an error."""
    assert _original is not None
    stale = _holders_of(_original)
    stale += [
        getattr(item.module, "__name__", "?")
        for item in session.items
        if isinstance(item, pytest.Function)
        and item.module is not None
        and getattr(item.module, "DagProvenance", None) is _original
    ]
    if stale:
        raise pytest.UsageError(f"lythonic's DagProvenance not replaced in {sorted(set(stale))}")


def _store_open(prov: Any) -> bool:
    store = getattr(prov, "store", None)
    return store is not None and not getattr(store, "_closed", True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Close every instance, then report what was swapped, stores `close()` left open
    (closed here), and fail the run on a close error, a thread still running, or an
    instance of lythonic's own class."""
    problems: list[str] = []
    notes: list[str] = []
    left_open = 0
    for prov in _instances:
        try:
            prov.close()
            if _store_open(prov):
                left_open += 1
                prov.store.close()
        except Exception as e:  # noqa: BLE001 (reported below, fails the run)
            problems.append(f"{type(prov).__name__}.close(): {type(e).__name__}: {e}")
    name = _replacement.__name__ if _replacement is not None else "?"
    notes.append(f"{len(_instances)} {name} closed")
    if left_open:
        notes.append(f"{left_open} of them left their store open after close(): closed here")
    _instances.clear()
    deadline = time.monotonic() + 5.0
    new = [t for t in threading.enumerate() if t not in _threads_before]
    for t in new:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    problems += [f"thread still running: {t.name}" for t in new if t.is_alive()]
    if _originals_made:
        problems.append(
            f"{len(_originals_made)} instance(s) of lythonic's own DagProvenance were made "
            f"(e.g. {_originals_made[:3]}): the swap missed a reference"
        )
    _report[:] = [
        (_swap_line(session.config), False),
        *((line, False) for line in notes),
        *((line, True) for line in problems),
    ]
    if problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _report:
        terminalreporter.section("lythonic swap")
        for line, bad in _report:
            terminalreporter.write_line(line, red=bad)
