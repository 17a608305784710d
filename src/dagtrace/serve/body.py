"""Request bodies: read within a byte budget, gunzipped member by member.

Every body the server holds (being read, waiting in the write queue, being
written) counts against one `BodyBudget` until its request is answered. A body
whose Content-Length does not fit is refused before a byte of it is read; a
chunked one (no Content-Length) is counted as it arrives, and so is what gunzip
makes of a body. Beyond the budget the request is answered 429 with Retry-After,
so memory held for bodies stays below the budget whatever clients send.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from types import TracebackType

from ..exceptions import BadGzip, OverBudget, TooLarge
from ..settings import DEFAULT_BODY_BUDGET

MAX_GZIP_MEMBERS = 1024
"""Members of one gzip body (each costs a new inflater: a body of tiny members would
otherwise keep the event loop busy)."""


def return_large_buffers_to_the_os(threshold: int = 256 * 1024) -> bool:
    """Have glibc's malloc map every block above `threshold` on its own (and unmap it
    when freed): bodies grown chunk by chunk then move with mremap rather than leave
    copies in the heap, and their memory goes back to the system once answered.
    Without it glibc raises the threshold to the largest block freed so far, so after
    the first large body the next ones fragment the heap (measured: up to twice the
    bytes held). False where there is no glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_mmap_threshold = -3
        return bool(libc.mallopt(m_mmap_threshold, threshold))
    except (OSError, AttributeError):
        return False


class BodyBudget:
    """Bytes of request bodies held at once, across requests (event-loop thread only)."""

    def __init__(self, max_bytes: int = DEFAULT_BODY_BUDGET) -> None:
        self.max_bytes = max_bytes
        self.held = 0

    def hold(self) -> Held:
        return Held(self)


class Held:
    """One request's share of the budget, given back when the `with` block ends."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.bytes = 0

    def ensure(self, size: int) -> None:
        """Grow this share to `size` bytes, or raise `OverBudget` (the share unchanged)."""
        extra = size - self.bytes
        if extra <= 0:
            return
        budget = self._budget
        if budget.held + extra > budget.max_bytes:
            raise OverBudget()
        budget.held += extra
        self.bytes = size

    def release(self) -> None:
        self._budget.held -= self.bytes
        self.bytes = 0

    def __enter__(self) -> Held:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    declared: int | None,
    gzipped: bool,
    limit: int,
    held: Held,
) -> list[bytes]:
    """The body (gunzipped if `gzipped`), at most `limit` bytes on the wire and after
    gunzip, in the pieces it came in: an ingest worker is sent them one after the
    other, and joining them first cost a new copy of the body (and, for a large body,
    fresh pages). `declared` (Content-Length) is taken from the budget before reading.
    Raises `TooLarge`, `OverBudget` or `BadGzip`; a bomb stops unexpanded."""
    if declared is not None:
        if declared > limit:
            raise TooLarge()
        held.ensure(declared)
    gunzip = _Gunzip(limit) if gzipped else None
    received = 0
    parts: list[bytes] = []  # never one growing buffer: that copied it again and again
    out = bytearray()  # what gunzip gives
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise TooLarge()
        if gunzip is None:
            parts.append(chunk)
            held.ensure(received)
        else:
            gunzip.feed(chunk, out)
            held.ensure(len(out))
    if gunzip is not None:
        gunzip.finish()
        return [bytes(out)]
    return parts


class _Gunzip:
    """Every member of a gzip stream, in turn; anything after the last one is refused."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._inflater: zlib._Decompress | None = self._new()
        self._members = 1

    @staticmethod
    def _new() -> zlib._Decompress:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes, out: bytearray) -> None:
        while data:
            if self._inflater is None:  # the previous member ended: another one starts
                self._members += 1
                if self._members > MAX_GZIP_MEMBERS:
                    raise BadGzip(f"more than {MAX_GZIP_MEMBERS} gzip members")
                self._inflater = self._new()
            inflater = self._inflater
            try:
                out += inflater.decompress(data, self._limit + 1 - len(out))
            except zlib.error as e:
                raise BadGzip(
                    "the gzip body is corrupt"
                    if self._members == 1
                    else "bytes after the gzip stream are not another gzip member"
                ) from e
            if len(out) > self._limit or inflater.unconsumed_tail:
                raise TooLarge()
            if not inflater.eof:
                return
            data = inflater.unused_data
            self._inflater = None

    def finish(self) -> None:
        if self._inflater is not None:
            raise BadGzip("the gzip body is truncated")
