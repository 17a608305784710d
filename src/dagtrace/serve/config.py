"""`ServeConfig`: what the operator chose for one server (the CLI's `serve` options)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._redact import Redaction
from .._token import token_problem
from ..settings import (
    DEFAULT_BODY_BUDGET,
    DEFAULT_FORWARD_BUFFER,
    DEFAULT_MAX_BODY,
    DEFAULT_QUEUE,
)
from .limits import ConnectionLimits
from .readiness import PROBE_INTERVAL


@dataclass(frozen=True)
class ServeConfig:
    max_body: int = DEFAULT_MAX_BODY
    """Bytes accepted per request, before and after decompression."""
    queue_size: int = DEFAULT_QUEUE
    """Requests waiting to be written; beyond it, 429."""
    token: str | None = None
    forward: str | None = None
    forward_buffer: int = DEFAULT_FORWARD_BUFFER
    """Bytes of requests waiting for the forward target; beyond it the oldest are dropped."""
    retry_after: int = 1
    redaction: Redaction = field(default_factory=Redaction)
    """Applied to what is forwarded and what the query API returns, not to the store."""
    decoders: int = 0
    """Ingest workers: processes that decode requests and commit their rows (0: a
    thread of the server does both)."""
    body_budget: int = DEFAULT_BODY_BUDGET
    """Bytes of request bodies held at once (as received, and after gunzip) until their
    requests are answered; beyond it, 429."""
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    read_only: bool = False
    """Answer queries only: no /v1/traces, nothing written (no migration either: the
    caller opens the store read-only)."""
    insecure_no_token: bool = False
    """Serve on a non-loopback address without a token (refused otherwise)."""
    probe_interval: float = PROBE_INTERVAL
    """/readyz writes a probe when no write happened for this long."""
    jaeger_url: str | None = None
    """Jaeger UI base URL: the web view links runs and nodes to their traces there."""

    def __post_init__(self) -> None:
        if self.token is not None and (problem := token_problem(self.token)):
            raise ValueError(f"unusable token: {problem}")
        if self.body_budget < self.max_body:
            raise ValueError("the body budget must be at least max_body")


DEFAULT_CONFIG = ServeConfig()
