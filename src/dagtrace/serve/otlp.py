"""The OTLP/HTTP receiver: `POST /v1/traces`, answered by the OTLP rules.

Protobuf or OTLP/JSON, gzip or not. 200 + ExportTraceServiceResponse once the rows
are committed (partial_success for unusable spans); 400 undecodable; 413 too large,
also after gunzip; 415 another content type or encoding; 429 with Retry-After when
the write queue or the body budget is full; 503 with Retry-After when the store
fails. Error bodies are google.rpc.Status, in the request's encoding, and repeat no
input. The body is read within `ServeConfig.max_body` and the shared `BodyBudget`;
`Ingestion` does the rest.
"""

from __future__ import annotations

import logging
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.requests import ClientDisconnect

from .. import settings
from ..exceptions import (
    BadGzip,
    OverBudget,
    QueueFull,
    TooLarge,
    UndecodableRequest,
    is_bug,
)
from .body import read_body
from .codec import JSON, PROTOBUF, export_response, status_body
from .errors import safe_message
from .ingest import Ingested
from .limits import BODY_TIMED_OUT
from .state import Served, served

_log = logging.getLogger(__name__)

TRACES = "/v1/traces"

_GRPC_UNAVAILABLE, _GRPC_INVALID_ARGUMENT, _GRPC_RESOURCE_EXHAUSTED = 14, 3, 8
_GRPC_INTERNAL = 13
_GRPC_CODES = {400: _GRPC_INVALID_ARGUMENT, 429: _GRPC_RESOURCE_EXHAUSTED, 500: _GRPC_INTERNAL}

router = APIRouter()


@router.post(TRACES, include_in_schema=False)
async def ingest(request: Request, served: Annotated[Served, Depends(served)]) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    answer = _Answers(served, json_encoded=content_type == JSON)
    if content_type not in (PROTOBUF, JSON):
        return answer.error(415, "use application/x-protobuf or application/json")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        return answer.error(415, "this content-encoding is not supported; use gzip or none")
    ingestion = served.ingestion
    assert ingestion is not None, "no /v1/traces on a read-only server"
    if ingestion.full:  # before reading a body that would only wait
        return answer.error(429, "write queue full, retry later", retry=True)
    limit = served.config.max_body
    with served.budget.hold() as held:
        try:
            pieces = await read_body(
                request.stream(),
                declared=_content_length(request),
                gzipped=encoding == "gzip",
                limit=limit,
                held=held,
            )
        except TooLarge:
            return answer.error(413, f"request body above {limit} bytes")
        except OverBudget:
            return answer.error(429, "too many request bodies in hand, retry later", retry=True)
        except BadGzip as e:
            return answer.error(400, str(e))
        except ClientDisconnect:
            timed_out = request.scope.get("state", {}).get(BODY_TIMED_OUT)
            if not timed_out:  # (else the protocol logged why)
                _log.info("a client went away before the end of its request body")
            return Response(status_code=400)  # nobody to answer
        try:
            ingested = await ingestion.ingest(pieces, json_encoded=answer.json_encoded)
        except UndecodableRequest as e:
            return answer.error(400, safe_message(str(e)))
        except QueueFull:
            return answer.error(429, "write queue full, retry later", retry=True)
        except BrokenProcessPool:  # a worker died (the next request starts another): retry
            return answer.error(503, "cannot ingest now, retry later", retry=True)
        except Exception as e:
            if not is_bug(e):
                return answer.error(503, "the store cannot be written now, retry later", retry=True)
            if settings.strict():
                raise  # logged and counted by `ingest`; the test fails on the 500
            # Never retryable: the same request would meet the same bug again.
            return answer.error(500, "internal error, logged as a bug; do not retry")
        return answer.ok(ingested, content_type)


def _content_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "").strip()
    return int(declared) if declared.isdigit() else None


@dataclass(frozen=True)
class _Answers:
    """The answers to one request, counted by code in `/metrics`."""

    served: Served
    json_encoded: bool
    """The request is OTLP/JSON (else protobuf, or an unknown type: answered protobuf)."""

    def ok(self, ingested: Ingested, content_type: str) -> Response:
        self.served.metrics.requests.labels("200").inc()
        rejected = [safe_message(reason) for reason in ingested.rejected]
        body = export_response(rejected, json_encoded=self.json_encoded)
        return Response(body, media_type=content_type)

    def error(self, code: int, message: str, *, retry: bool = False) -> Response:
        self.served.metrics.requests.labels(str(code)).inc()
        headers = {"Retry-After": str(self.served.config.retry_after)} if retry else None
        return Response(
            status_body(
                _GRPC_CODES.get(code, _GRPC_UNAVAILABLE), message, json_encoded=self.json_encoded
            ),
            status_code=code,
            media_type=JSON if self.json_encoded else PROTOBUF,
            headers=headers,
        )
