"""Error answers that repeat no input: `safe_message`, and the app's exception handlers
(FastAPI's 422 without the values sent; a store failure as 503)."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..exceptions import StoreError

_log = logging.getLogger(__name__)

_QUOTED = re.compile(r"""'[^']*'|"[^"]*\"""")
_MAX_MESSAGE = 200


def safe_message(text: str) -> str:
    """An error message fit to answer with: quoted values (the repr of what was sent)
    elided, at most 200 characters. Error answers repeat no input."""
    text = _QUOTED.sub("\x00", text)
    for quote in ("'", '"'):  # an unterminated quote (a cut repr): drop what follows it
        if (i := text.find(quote)) >= 0:
            text = text[:i] + "…"
    text = text.replace("\x00", "'…'")
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, without the `input` (and `ctx`) it would repeat."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "type": str(error.get("type", "")),
            "loc": [str(part)[:100] for part in error.get("loc", ())],
            "msg": safe_message(str(error.get("msg", ""))),
        }
        for error in exc.errors()[:20]
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _store_unreachable(request: Request, exc: Exception) -> Response:
    _log.error("store error on %s: %s", request.url.path, exc)
    return JSONResponse({"detail": "the store is unreachable"}, status_code=503)


def install_error_answers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StoreError, _store_unreachable)
