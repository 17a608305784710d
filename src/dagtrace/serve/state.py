"""`Served`: what the routes of one app share, kept on `app.state` by `create_app` and
handed to a route by a parameter `Annotated[Served, Depends(served)]`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..store.base import Store
from .body import BodyBudget
from .bugs import Bugs
from .config import ServeConfig
from .ingest import Ingestion
from .metrics import Metrics
from .readiness import Readiness


@dataclass(frozen=True)
class Served:
    store: Store
    config: ServeConfig
    readiness: Readiness
    metrics: Metrics
    budget: BodyBudget
    """Bytes of request bodies held, across requests (`config.body_budget`)."""
    bugs: Bugs
    ingestion: Ingestion | None
    """None when read-only."""


async def served(request: Request) -> Served:
    """The route dependency (a coroutine: FastAPI runs a plain function in its thread
    pool, a thread hop per request for an attribute read)."""
    return request.app.state.served  # type: ignore[no-any-return]
