"""Encode spans as OTLP requests (protobuf, and OTLP/JSON by its rules) for raw clients."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan


def protobuf_request(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def json_request(spans: list[ReadableSpan], *, uppercase: bool = True) -> bytes:
    """OTLP/JSON: hex ids (uppercase here, which receivers must accept), integer enums."""
    data = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)

    def hexify(obj: Any) -> None:
        if isinstance(obj, dict):
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in obj:
                    text = base64.b64decode(obj[key]).hex()
                    obj[key] = text.upper() if uppercase else text
            for value in obj.values():
                hexify(value)
        elif isinstance(obj, list):
            for value in obj:
                hexify(value)

    hexify(data)
    return json.dumps(data).encode()
