"""Threads do not survive a fork: objects that run one say here what a forked child
resets, so that it starts its own (heartbeats of the runs it opens) instead of relying
on its parent's, which do not run in it."""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def after_fork_in_child(self) -> None: ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def reset_in_forked_child(obj: ForkAware) -> None:
    """Call `obj.after_fork_in_child()` in every child forked while `obj` lives."""
    _objects.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_objects):
        obj.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
