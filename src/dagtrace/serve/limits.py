"""What one client may hold of `dagtrace serve`: time, connections, header bytes.

uvicorn bounds only the idle time of a kept-alive connection (and, with
`limit_concurrency`, answers 503 once headers are in, after accepting every
connection). A client that sends its headers or its body slowly, or opens many
connections and sends nothing, holds a connection (a file descriptor) for as long
as it likes. `limited_protocol` returns uvicorn's httptools protocol with:

- a header deadline: from the moment a connection waits for a request (opened, or
  its previous answer sent) until that request's headers are in; past it the
  connection is closed (408 if part of a request had arrived);
- a body deadline: from the end of the headers to the end of the body; past it,
  408 (if no answer was started) and the connection is closed;
- at most `MAX_HEADER_BYTES` of request line and headers (431 and closed above);
- at most `max_connections` open: a new connection beyond it closes the one that
  has waited longest for a request; when every connection is in the middle of a
  request, the new one gets 503 and is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..settings import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT

_log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
"""Request line and headers of one request (uvicorn's httptools parser has no bound)."""
LINGER = 2.0
"""Seconds a connection answered 408 or 431 stays half-open, its input read and
dropped, so that the client reads the answer instead of a reset."""


def default_max_connections() -> int:
    """Half the process's file descriptor limit (the rest is for the store, the ingest
    workers' pipes and the forwarder), at most 1024, at least 16."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1024
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 1024
    return max(16, min(1024, soft // 2))


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """Seconds from waiting for a request to having its headers."""
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """Seconds from a request's headers to the end of its body."""
    max_connections: int = field(default_factory=default_max_connections)
    """Open connections; beyond it the longest-idle one is closed, or the new one refused."""


CLOSE_REASONS = ("header_timeout", "body_timeout", "header_too_large", "idle_evicted", "refused")


class ConnectionCounts:
    """What the protocol did, for /metrics (event-loop thread only)."""

    def __init__(self) -> None:
        self.open = 0
        self.closed = dict.fromkeys(CLOSE_REASONS, 0)
        self._last_warning = -1e9

    def close(self, reason: str) -> None:
        self.closed[reason] += 1

    def warn(self, message: str, *args: Any) -> None:
        """One warning a minute at most: under a flood of connections, not a line each."""
        now = time.monotonic()
        if now - self._last_warning >= 60.0:
            self._last_warning = now
            _log.warning(message, *args)


_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)

BODY_TIMED_OUT = "dagtrace_body_timed_out"
"""Set in a request's `scope["state"]` when its body deadline closed the connection."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines, a header size bound
    and a connection cap (`limited_protocol` makes the class with its limits)."""

    limits: ClassVar[ConnectionLimits]
    counts: ClassVar[ConnectionCounts]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        """When it began to wait for a request; None while a request is being read or answered."""
        self._reading_headers = True
        self._headers_seen = False
        self._header_bytes = 0
        self._counted = False
        self._lingering = False

    # -- connections ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.counts.open += 1
        self._counted = True
        self._wait_for_request()
        if self._open_connections() > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted:
            self.counts.open -= 1
            self._counted = False
        super().connection_lost(exc)

    def _open_connections(self) -> int:
        return sum(
            1 for c in self.connections if isinstance(c, LimitedHttpToolsProtocol) and c._open()
        )

    def _open(self) -> bool:
        return not (self._lingering or self.transport.is_closing())

    def _make_room(self) -> None:
        idle = [
            c
            for c in self.connections
            if isinstance(c, LimitedHttpToolsProtocol)
            and c is not self
            and c._idle_since is not None
            and c._open()
        ]
        if idle:
            victim = min(idle, key=lambda c: c._idle_since or 0.0)
            victim._close("idle_evicted")
            self.counts.warn(
                "%d connections open (--max-connections): closing the ones idle longest",
                self.limits.max_connections,
            )
            return
        self.counts.warn(
            "%d connections open (--max-connections), each in a request: refusing new ones (503)",
            self.limits.max_connections,
        )
        self._close("refused", _503, linger=False)  # it has sent nothing yet

    def _close(self, reason: str, answer: bytes | None = None, *, linger: bool = True) -> None:
        """Close, after `answer` if given: then half-close and drop what the client
        still sends for up to `LINGER` seconds (closing with unread input would reset
        the connection, and the client could lose the answer)."""
        self._disarm()
        if not self._open():
            return
        self.counts.close(reason)
        _log.debug("closing a connection from %s: %s", self.client, reason.replace("_", " "))
        transport = self.transport
        if answer is not None:
            transport.write(answer)
        if answer is None or not linger or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._lingering = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # the app stops waiting
            cycle.disconnected = True
            cycle.message_event.set()
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(LINGER, transport.close)

    # -- deadlines -----------------------------------------------------------------------

    def _arm(self, seconds: float, handler: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _wait_for_request(self) -> None:
        self._idle_since = time.monotonic()
        self._reading_headers = True
        self._header_bytes = 0
        self._arm(self.limits.header_timeout, self._headers_late)

    def _headers_late(self) -> None:
        self._deadline = None
        self._close("header_timeout", _408 if self._header_bytes else None)

    def _body_late(self) -> None:
        self._deadline = None
        cycle = self.cycle
        started = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.scope["state"][BODY_TIMED_OUT] = True
            _log.info(
                "closing a connection from %s: its request body was not complete within %gs",
                self.client,
                self.limits.body_timeout,
            )
        self._close("body_timeout", None if started else _408)

    # -- parser events -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # answered and closing: dropped
        was_reading_headers = self._reading_headers
        self._headers_seen = False
        super().data_received(data)
        # Only bytes that completed no request line and headers count: a chunk holding a
        # whole request (headers, body) ends reading headers again for the next one.
        if (
            was_reading_headers
            and self._reading_headers
            and not self._headers_seen
            and self._open()
        ):
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._close("header_too_large", _431)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._headers_seen = True
        self._idle_since = None
        self._arm(self.limits.body_timeout, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_headers = True  # what follows is the next request's
        self._header_bytes = 0
        super().on_message_complete()
        if self._answered() and not self.transport.is_closing():
            self._wait_for_request()  # answered before its body ended: now it waits

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._answered() and self._reading_headers and not self.transport.is_closing():
            self._wait_for_request()
        # else a pipelined request started, or this one's body is still arriving after
        # an early answer (its body deadline holds)

    def _answered(self) -> bool:
        """The latest request has its answer (no request in hand)."""
        return self.cycle is None or self.cycle.response_complete


def limited_protocol(limits: ConnectionLimits, counts: ConnectionCounts) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class (`uvicorn.Config(http=...)`) with these limits."""
    return type(
        "DagtraceHttpProtocol",
        (LimitedHttpToolsProtocol,),
        {"limits": limits, "counts": counts},
    )
