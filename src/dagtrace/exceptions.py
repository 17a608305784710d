"""Every exception dagtrace defines, in one place.

    Exception
    ├── DagtraceError             base of every error dagtrace raises on purpose
    │   ├── StoreError            the store could not be opened, migrated, read or written
    │   ├── NotFoundError         no such run (replay, restart of an unknown run id)
    │   ├── NotReusableError      a replay would reuse a payload that was not stored exactly
    │   ├── SpanRejected          a DAG span that cannot be stored (reason in the message)
    │   └── UndecodableRequest    a body that is not an OTLP trace request (HTTP 400)
    ├── DagPaused                 control flow, not an error: ends a traced run as `paused`
    ├── QueueFull                 serve's write queue is full (HTTP 429, Retry-After)
    └── body limits (HTTP):
        ├── TooLarge              above the per-request limit, on the wire or after gunzip (413)
        ├── OverBudget            the bodies already held leave no room for this one (429)
        └── BadGzip               a corrupt or truncated gzip body (400)

The OpenTelemetry path (exporter, processor, serve's ingestion) never raises into the
traced program: it logs with the traceback and counts. A `StoreError` or a
`SpanRejected` counts as what it is; any other exception counts as a bug, and is
re-raised when `DAGTRACE_STRICT` is set (the test suite sets it) so a mapping bug
fails a test instead of passing as a store failure. The drop-in `DagProvenance`
raises `StoreError` where lythonic would raise a raw driver error, so callers catch
one type whatever the backend.
"""

from __future__ import annotations

__all__ = [
    "BadGzip",
    "DagPaused",
    "DagtraceError",
    "NotFoundError",
    "NotReusableError",
    "OverBudget",
    "QueueFull",
    "SpanRejected",
    "StoreError",
    "TooLarge",
    "UndecodableRequest",
    "is_bug",
]


def is_bug(error: BaseException) -> bool:
    """Whether an exception the OTel path swallows is a bug: neither a store failure nor
    a rejected span (nor a decoder's refusal of a whole request)."""
    return not isinstance(error, StoreError | SpanRejected | UndecodableRequest)


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


class SpanRejected(DagtraceError):
    """A span claims to be a DAG span but cannot be stored; the reason says why."""


class UndecodableRequest(DagtraceError):
    """The body is not an OTLP trace request at all (answered with 400)."""


class DagPaused(Exception):
    """Raise inside a `run` block to end the run as `paused` (restartable)."""


class QueueFull(Exception):
    """The write queue is full: answer 429 with Retry-After."""


class TooLarge(Exception):
    """Above the per-request limit, on the wire or after gunzip: 413."""


class OverBudget(Exception):
    """The bodies already held leave no room for this one: 429 with Retry-After."""


class BadGzip(Exception):
    """A corrupt or truncated gzip body, or bytes after its last member: 400."""
