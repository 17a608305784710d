"""The server's side of `_paths`: route on the path as sent, decode each segment once.

uvicorn gives the app a percent-decoded `path`, in which `a%2Fb` is two segments
and `%2E%2E` a dot segment. `RawPathRouting` routes on `raw_path` instead, and a
`{name:segment}` route parameter (`SegmentConvertor`) percent-decodes its segment:
`route(Routes.X)` is the path to declare a route of the `_paths.Routes` table with.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

from .._paths import segment


class SegmentConvertor(Convertor[str]):
    """One raw path segment, maybe empty, percent-decoded (UTF-8)."""

    regex: ClassVar[str] = "[^/]*"

    def convert(self, value: str) -> str:
        return unquote(value)  # invalid UTF-8 becomes U+FFFD: no such run

    def to_string(self, value: str) -> str:
        return segment(value)


register_url_convertor("segment", SegmentConvertor())

_PARAMETER = re.compile(r"\{(\w+)\}")


def route(path: str) -> str:
    """A `_paths.Routes` path as a route: each `{name}` one raw segment, decoded."""
    return _PARAMETER.sub(r"{\1:segment}", path)


class RawPathRouting:
    """ASGI middleware: route on the path as the client sent it (percent-encoded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: Any = scope.get("raw_path")
        if scope["type"] == "http" and raw and b"%" in raw and not scope.get("root_path"):
            scope = {**scope, "path": raw.decode("latin-1")}
        await self.app(scope, receive, send)
