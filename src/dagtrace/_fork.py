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


_locks: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def new_lock_in_forked_child(owner: Any, name: str = "_lock") -> None:
    """Give `owner.<name>` (a `threading.Lock`; `owner` an object or a module) a new
    lock in every child forked while `owner` lives."""
    _locks.setdefault(owner, set()).add(name)


def _after_fork_in_child() -> None:
    for owner, names in list(_locks.items()):
        for name in names:
            setattr(owner, name, threading.Lock())
    for obj in list(_objects):
        obj.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
