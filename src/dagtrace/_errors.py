"""Errors raised by dagtrace.

    DagtraceError
    ├── StoreError        the store could not be opened, migrated, read or written
    ├── NotFoundError     no such run (replay, restart of an unknown run id)
    └── NotReusableError  a replay would reuse a payload that was not stored exactly

The OpenTelemetry path (exporter, processor) never raises: it logs and counts.
The drop-in `DagProvenance` raises `StoreError` where lythonic would raise a raw
driver error, so callers catch one type whatever the backend.
"""

from __future__ import annotations


class DagtraceError(Exception):
    """Base class of every error dagtrace raises on purpose."""


class StoreError(DagtraceError):
    """A store operation failed; `location` names the file or database concerned."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{message} ({location})" if location else message)


class NotFoundError(DagtraceError, LookupError):
    """The run (or node) asked for is not in the store."""


class NotReusableError(DagtraceError):
    """A replay would feed downstream nodes an output that was redacted, capped or cut."""
