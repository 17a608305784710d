"""Who started a run: the same context variable API as lythonic 0.0.28.

`create_run` falls back to `run_initiator`, and, when the program has imported
lythonic, to lythonic's own `run_initiator`, so `lythonic...initiated_by("u1")`
around a run is recorded by dagtrace too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

SCHEDULER = "scheduler"
"""`initiated_by` of runs fired by a trigger's schedule."""

run_initiator: ContextVar[str | None] = ContextVar("dagtrace_run_initiator", default=None)
"""Who is starting runs in the current context."""

_LYTHONIC_MODULE = "lythonic.compose.dag_provenance"


@contextmanager
def initiated_by(initiator: str | None) -> Iterator[None]:
    """Attribute runs started inside the block to `initiator`."""
    token = run_initiator.set(initiator)
    try:
        yield
    finally:
        run_initiator.reset(token)


def current_initiator() -> str | None:
    """dagtrace's initiator if set, else lythonic's (only if lythonic is already imported)."""
    value = run_initiator.get()
    if value is not None:
        return value
    lythonic = sys.modules.get(_LYTHONIC_MODULE)
    if lythonic is None:
        return None
    var = getattr(lythonic, "run_initiator", None)
    return var.get() if isinstance(var, ContextVar) else None
