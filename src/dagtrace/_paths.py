"""Run ids and node labels as URL path segments (clients; the server: `_routing`).

Ids and labels are any text (`/`, `?`, `#`, `..`, `%`, spaces, non-ASCII, empty).
Clients send each one as one percent-encoded segment; the server routes on the raw
path as sent and decodes each segment once.
"""

from __future__ import annotations

from urllib.parse import quote

_RESERVED = frozenset({".", "..", "active", "summary", "changed"})
"""Segments a client must not send as they are: dot segments (clients and proxies
remove them) and the fixed routes beside /api/v1/runs/{run_id}."""


def segment(value: str) -> str:
    """`value` as one path segment: every character but unreserved ones
    percent-encoded; a segment that would read as something else, entirely."""
    quoted = quote(value, safe="")
    if quoted in _RESERVED:
        return "".join(f"%{byte:02X}" for byte in value.encode())
    return quoted
