"""Environment variables and defaults: the only module that reads `os.environ`.

Every other module asks here, so an operator finds every knob in one file and a test
can see what a process will do from its environment. Values are read when asked for
(not at import), because tests and `configure()` callers set them at run time.

| variable | used by | meaning |
|---|---|---|
| `DAGTRACE_DB` | configure, exporter, drop-in, CLI | store: a path or a postgresql:// URL |
| `DAGTRACE_FORWARD` | configure | OTLP endpoint to forward spans to |
| `DAGTRACE_TOKEN` | serve, CLI clients | bearer token for serve's API |
| `DAGTRACE_JAEGER_URL` | CLI, serve | Jaeger UI for trace links |
| `DAGTRACE_STRICT` | OTel path | re-raise bugs instead of logging them (the test suite sets it) |
| `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` | configure | forward when set, as the SDK does |
| `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` | configure | `http/protobuf` (default) or `grpc` |
"""

from __future__ import annotations

import os

DB_ENV = "DAGTRACE_DB"
DEFAULT_DB = "dagtrace.db"
FORWARD_ENV = "DAGTRACE_FORWARD"
TOKEN_ENV = "DAGTRACE_TOKEN"
JAEGER_URL_ENV = "DAGTRACE_JAEGER_URL"
DEFAULT_JAEGER_URL = "http://localhost:16686"
STRICT_ENV = "DAGTRACE_STRICT"

# serve
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4319
DEFAULT_MAX_BODY = 32 * 1024 * 1024
DEFAULT_QUEUE = 64
DEFAULT_BODY_BUDGET = 256 * 1024 * 1024
"""Request bytes held at once across requests (wire and gunzipped)."""
DEFAULT_FORWARD_BUFFER = 256 * 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0

OTLP_PROTOCOLS = ("http/protobuf", "grpc")
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


def env(name: str) -> str | None:
    """The variable's value, or None when unset or empty (as the OTel SDK treats them)."""
    return os.environ.get(name) or None


def is_set_but_empty(name: str) -> bool:
    return os.environ.get(name) == ""


def db_location(explicit: str | os.PathLike[str] | None = None) -> str:
    """Where the store is: the argument, else `DAGTRACE_DB`, else `dagtrace.db`."""
    return os.fspath(explicit) if explicit else env(DB_ENV) or DEFAULT_DB


def forward_endpoint() -> str | None:
    return env(FORWARD_ENV)


def otlp_endpoint() -> str | None:
    """The SDK's own endpoint variables: when set, configure() forwards by default."""
    return next((v for v in map(env, _ENDPOINT_VARS) if v), None)


def otlp_protocol_setting() -> tuple[str, str] | None:
    """The first protocol variable that is set, as (name, value), unchecked."""
    return next(((name, v) for name in _PROTOCOL_VARS if (v := env(name))), None)


def strict() -> bool:
    """Bugs on the OTel path re-raise instead of being logged and counted."""
    return (env(STRICT_ENV) or "0").lower() not in ("0", "false", "no", "off")
