"""What operators and orchestrators ask: `/healthz` and `/readyz` (`probes`, open to
all), `/metrics` and the API's docs (`router`, behind the token like the API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from ..exceptions import StoreError
from .metrics import CONTENT_TYPE
from .state import Served, served

probes = APIRouter()
router = APIRouter()

Ops = Annotated[Served, Depends(served)]


@probes.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@probes.get("/readyz", include_in_schema=False)
def readyz(served: Ops) -> Response:
    """Ready when the store is reachable and takes writes (`readiness`)."""
    try:
        problem = served.readiness.problem()
    except StoreError:
        return JSONResponse({"status": "store unreachable"}, status_code=503)
    if problem is not None:
        return JSONResponse({"status": "store cannot be written"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
def prometheus(served: Ops) -> Response:
    return Response(served.metrics.exposition(), media_type=CONTENT_TYPE)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
def swagger() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="dagtrace - Swagger UI")


@router.get("/redoc", include_in_schema=False)
def redoc() -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title="dagtrace - ReDoc")
