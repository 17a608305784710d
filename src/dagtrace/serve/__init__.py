"""`dagtrace serve`: the OTLP/HTTP receiver and the query API over one store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ServeConfig, create_app, serve

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    """The public names, imported when first asked for: an ingest worker imports
    `serve.ingest` without the web framework."""
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
