"""The query API's paths, written once for the server and its client.

`Routes` names every path of `/api/v1`: `serve.api` routes them (`serve.routing`
turns each `{name}` into a raw segment), `RemoteProvenance` requests them with
`path(Routes.X, name=value)`.

Run ids and node labels are any text (`/`, `?`, `#`, `..`, `%`, spaces,
non-ASCII, empty). Clients send each one as one percent-encoded segment
(`segment`); the server routes on the raw path as sent and decodes each segment
once. No web framework here: clients import it.
"""

from __future__ import annotations

from urllib.parse import quote

API = "/api/v1"


class Routes:
    """Every path of the query API (`{name}`: one segment, a run id or a node label)."""

    RUNS = f"{API}/runs"
    ACTIVE_RUNS = f"{RUNS}/active"
    RUN_SUMMARIES = f"{RUNS}/summary"
    CHANGED_RUNS = f"{RUNS}/changed"
    RUN = f"{RUNS}/{{run_id}}"
    RUN_RECORD = f"{RUN}/record"
    RUN_DETAILS = f"{RUN}/details"
    RUN_NODES = f"{RUN}/nodes"
    RUN_EDGES = f"{RUN}/edges"
    RUN_CHILDREN = f"{RUN}/children"
    RUN_PENDING = f"{RUN}/pending"
    NODE_OUTPUT = f"{RUN_NODES}/{{label}}/output"
    STATS = f"{API}/stats"

    @classmethod
    def all(cls) -> list[str]:
        return [value for name, value in vars(cls).items() if name.isupper()]


_RESERVED = frozenset(
    {".", ".."}
    | {
        rest
        for route in Routes.all()
        if (rest := route.removeprefix(f"{Routes.RUNS}/")) != route
        and "/" not in rest
        and "{" not in rest
    }
)
"""Segments a client must not send as they are: dot segments (clients and proxies
remove them) and the fixed routes beside /api/v1/runs/{run_id}."""


def segment(value: str) -> str:
    """`value` as one path segment: every character but unreserved ones
    percent-encoded; a segment that would read as something else, entirely."""
    quoted = quote(value, safe="")
    if quoted in _RESERVED:
        return "".join(f"%{byte:02X}" for byte in value.encode())
    return quoted


def path(route: str, **values: str) -> str:
    """`route` (a `Routes` path) with each `{name}` given as one segment."""
    return route.format(**{name: segment(value) for name, value in values.items()})
