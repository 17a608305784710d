"""Threads do not survive a fork: objects that run one say here what a forked child
resets, so that it starts its own (heartbeats of the runs it opens) instead of relying
on its parent's, which do not run in it; and a lock another thread held at the fork
would stay held in the child forever, so such locks are made anew there."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Protocol


class ForkAware(Protocol):
    def after_fork_in_child(self) -> None: ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def reset_in_forked_child(obj: ForkAware) -> None:
    """Call `obj.after_fork_in_child()` in every child forked while `obj` lives."""
    _objects.add(obj)


_lock_owners: weakref.WeakSet[Any] = weakref.WeakSet()


def new_lock_in_forked_child(obj: Any) -> None:
    """Give `obj._lock` (a `threading.Lock`) a new lock in every child forked while `obj`
    lives."""
    _lock_owners.add(obj)


def _after_fork_in_child() -> None:
    for owner in list(_lock_owners):
        owner._lock = threading.Lock()
    for obj in list(_objects):
        obj.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
