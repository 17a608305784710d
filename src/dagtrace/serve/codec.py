"""OTLP/HTTP trace requests (protobuf and OTLP/JSON) → the shared span mapping, and
the answers' bodies (ExportTraceServiceResponse, google.rpc.Status).

OTLP/JSON is not proto3 JSON: trace and span ids are hex (any case), enums are
integers, 64-bit integers may be decimal strings. `json_format.Parse` would accept
hex ids and silently turn them into wrong bytes, so JSON is decoded here by the
OTLP rules, into the same parts a protobuf span gives.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .._mapping import SpanEvent, SpanRecord, record_from_parts
from .._parents import ParentFacts
from ..exceptions import SpanRejected, UndecodableRequest
from ..store.rows import Rows, rows_for

STATUS_CODE_ERROR = 2
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
"""The two content types of OTLP/HTTP."""


@dataclass
class DecodedRequest:
    records: list[SpanRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    """One reason per DAG span that could not be used (reported in partial_success)."""
    ignored: int = 0
    """Spans that are not DAG spans."""
    parents: ParentFacts = field(default_factory=ParentFacts)
    """What the spans tell about sub-run parents (non-DAG spans included)."""

    @property
    def received(self) -> int:
        return len(self.records) + len(self.rejected) + self.ignored


@dataclass(slots=True)
class _Parts:
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[SpanEvent]
    error_status: bool
    status_message: str
    links: list[tuple[bytes, bytes]]
    """(trace id, span id) of each span link."""
    dropped_events: int


def decode_request(body: bytes, *, json_encoded: bool) -> DecodedRequest:
    """Decode and map one request; raises `UndecodableRequest` for a body that is not one."""
    spans = _json_spans(body) if json_encoded else _protobuf_spans(body)
    decoded = DecodedRequest()
    parents = decoded.parents
    for parts in spans:
        try:
            record = _record(parts)
        except SpanRejected as e:
            decoded.rejected.append(str(e))
            continue
        if record is None:
            decoded.ignored += 1
            if len(parts.span_id) == 8 and len(parts.trace_id) == 16:
                parent = parts.parent_span_id
                parents.saw_other(
                    parts.span_id.hex(),
                    parent.hex() if len(parent) == 8 else None,
                    parts.trace_id.hex(),
                )
        else:
            decoded.records.append(record)
            links = parts.links
            parents.saw_record(
                record,
                [t.hex() if len(t) == 16 else None for t, s in links if len(s) == 8]
                if links
                else (),
            )
    return decoded


@dataclass
class DecodedRows:
    """A decoded request as rows to write (what a decoding process sends back)."""

    rows: Rows
    rejected: list[str]
    ignored: int
    received: int
    parents: ParentFacts = field(default_factory=ParentFacts)


def decode_to_rows(body: bytes, *, json_encoded: bool) -> DecodedRows:
    """`decode_request`, then the rows its records write (picklable, for a pool)."""
    decoded = decode_request(body, json_encoded=json_encoded)
    return DecodedRows(
        rows_for(decoded.records),
        decoded.rejected,
        decoded.ignored,
        decoded.received,
        decoded.parents,
    )


def _record(parts: _Parts) -> SpanRecord | None:
    if len(parts.trace_id) != 16 or len(parts.span_id) != 8:
        if parts.attributes.get("dag.kind") is None:
            return None
        raise SpanRejected(
            f"trace id of {len(parts.trace_id)} bytes or span id of {len(parts.span_id)} "
            "bytes (want 16 and 8)"
        )
    return record_from_parts(
        attributes=parts.attributes,
        events=parts.events,
        error_status=parts.error_status,
        status_description=parts.status_message or None,
        trace_id=parts.trace_id.hex(),
        span_id=parts.span_id.hex(),
        parent_span_id=parts.parent_span_id.hex() if len(parts.parent_span_id) == 8 else None,
        start_ns=parts.start_ns,
        end_ns=parts.end_ns or None,
        ended=True,
        dropped_events=parts.dropped_events,
        link_span_ids=[link.hex() for _, link in links if len(link) == 8]
        if (links := parts.links)
        else (),
    )


# -- protobuf -------------------------------------------------------------------------


def _protobuf_spans(body: bytes) -> Iterator[_Parts]:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise UndecodableRequest(f"not an ExportTraceServiceRequest: {e}") from e
    # Repeated fields are sliced before a loop: iterating one goes through the old
    # sequence protocol, which ends each loop with a formatted IndexError (~5 a span,
    # 2,000-3,000 instructions each); a slice is a list made in C.
    for resource_spans in request.resource_spans[:]:
        for scope_spans in resource_spans.scope_spans[:]:
            for span in scope_spans.spans[:]:
                status = span.status
                yield _Parts(  # positionally: this runs once per span received
                    span.trace_id,
                    span.span_id,
                    span.parent_span_id,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    _pb_attributes(span.attributes),
                    [
                        SpanEvent(name, e.time_unix_nano, _pb_attributes(e.attributes))
                        for e in span.events[:]
                        if (name := e.name) in _EVENTS_READ
                    ],
                    status.code == STATUS_CODE_ERROR,
                    status.message,
                    [(link.trace_id, link.span_id) for link in span.links[:]],
                    span.dropped_events_count,
                )


_EVENTS_READ = frozenset({"dag.edge", "exception"})
"""The only events whose attributes the mapping reads; others are skipped undecoded."""
_ATTRIBUTE_PREFIXES = ("dag.", "exception.")


def _pb_attributes(items: Any) -> dict[str, Any]:
    """Only the attributes the mapping reads: a DAG span's, not a library's."""
    out = {}
    for kv in items[:]:  # a list: see _protobuf_spans
        key = kv.key
        if key.startswith(_ATTRIBUTE_PREFIXES):
            value = kv.value
            # A non-empty string_value can only be the oneof's field: no WhichOneof.
            text = value.string_value
            if text:
                out[key] = text
                continue
            number = value.int_value  # a payload's byte length; 0 for any other kind
            if number:
                out[key] = number
                continue
            kind = value.WhichOneof("value")
            if kind == "int_value":  # the payloads' byte lengths
                out[key] = value.int_value
            elif kind is not None:
                out[key] = pb_value(value, kind)
    return out


def pb_value(value: AnyValue, kind: str | None) -> Any:
    if kind is None:
        return None
    if kind == "array_value":
        return [
            text or pb_value(v, v.WhichOneof("value"))
            for v in value.array_value.values[:]
            for text in (v.string_value,)
        ]
    if kind == "kvlist_value":
        return {
            kv.key: pb_value(kv.value, kv.value.WhichOneof("value"))
            for kv in value.kvlist_value.values[:]
        }
    return getattr(value, kind)


# -- OTLP/JSON ------------------------------------------------------------------------


def _field(obj: Mapping[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    """OTLP/JSON uses lowerCamelCase names; proto field names are accepted too."""
    if camel in obj:
        return obj[camel]
    return obj.get(snake, default)


def _json_spans(body: bytes) -> Iterator[_Parts]:
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UndecodableRequest(f"not JSON: {e.__class__.__name__}") from e
    except RecursionError as e:  # nested deeper than any OTLP request: never retryable
        raise UndecodableRequest("not an OTLP/JSON request: nested too deeply") from e
    if not isinstance(request, dict):
        raise UndecodableRequest("an OTLP/JSON request is an object")
    try:
        return iter(list(_walk_json(request)))
    except (TypeError, AttributeError, KeyError) as e:
        raise UndecodableRequest(f"not an OTLP/JSON trace request: {e}") from e
    except (ValueError, RecursionError) as e:  # a doubleValue "abc", 5,000-digit integers
        raise UndecodableRequest(f"not an OTLP/JSON trace request: {type(e).__name__}") from e


def _walk_json(request: Mapping[str, Any]) -> Iterator[_Parts]:
    for resource_spans in _list(_field(request, "resourceSpans", "resource_spans", [])):
        for scope_spans in _list(_field(resource_spans, "scopeSpans", "scope_spans", [])):
            for span in _list(scope_spans.get("spans", [])):
                yield _json_span(span)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _json_span(span: Mapping[str, Any]) -> _Parts:
    status = span.get("status") or {}
    return _Parts(
        trace_id=_hex_id(_field(span, "traceId", "trace_id", "")),
        span_id=_hex_id(_field(span, "spanId", "span_id", "")),
        parent_span_id=_hex_id(_field(span, "parentSpanId", "parent_span_id", "")),
        start_ns=_int(_field(span, "startTimeUnixNano", "start_time_unix_nano", 0)),
        end_ns=_int(_field(span, "endTimeUnixNano", "end_time_unix_nano", 0)),
        attributes=json_attributes(span.get("attributes", [])),
        events=[
            SpanEvent(
                str(e.get("name", "")),
                _int(_field(e, "timeUnixNano", "time_unix_nano", 0)),
                json_attributes(e.get("attributes", [])),
            )
            for e in _list(span.get("events", []))
        ],
        error_status=_int(status.get("code", 0)) == STATUS_CODE_ERROR,
        status_message=str(status.get("message", "")),
        links=[
            (
                _hex_id(_field(link, "traceId", "trace_id", "")),
                _hex_id(_field(link, "spanId", "span_id", "")),
            )
            for link in _list(span.get("links", []))
        ],
        dropped_events=_int(_field(span, "droppedEventsCount", "dropped_events_count", 0)),
    )


def _hex_id(value: Any) -> bytes:
    """OTLP/JSON ids are hex, any case; anything else becomes an id of the wrong length."""
    if not isinstance(value, str):
        raise TypeError("ids are hex strings")
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b"\x00"  # not hex: rejected per span by its length


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise TypeError(f"expected an integer, got {value!r}")


def json_attributes(items: Any) -> dict[str, Any]:
    return {str(kv["key"]): _json_value(kv.get("value") or {}) for kv in _list(items)}


def _json_value(value: Mapping[str, Any]) -> Any:
    if "stringValue" in value or "string_value" in value:
        return str(_field(value, "stringValue", "string_value"))
    if "boolValue" in value or "bool_value" in value:
        return bool(_field(value, "boolValue", "bool_value"))
    if "intValue" in value or "int_value" in value:
        return _int(_field(value, "intValue", "int_value"))
    if "doubleValue" in value or "double_value" in value:
        return float(_field(value, "doubleValue", "double_value"))
    if "arrayValue" in value or "array_value" in value:
        array = _field(value, "arrayValue", "array_value") or {}
        return [_json_value(v) for v in _list(array.get("values", []))]
    if "kvlistValue" in value or "kvlist_value" in value:
        kvlist = _field(value, "kvlistValue", "kvlist_value") or {}
        return json_attributes(kvlist.get("values", []))
    if "bytesValue" in value or "bytes_value" in value:
        try:
            return base64.b64decode(_field(value, "bytesValue", "bytes_value"), validate=True)
        except (binascii.Error, ValueError) as e:
            raise TypeError("bytesValue is base64") from e
    return None


# -- responses -------------------------------------------------------------------------


def export_response(rejected: list[str], *, json_encoded: bool) -> bytes:
    """An ExportTraceServiceResponse, with partial_success when spans were rejected."""
    message = _rejection_message(rejected)
    if json_encoded:
        body: dict[str, Any] = {}
        if rejected:
            body["partialSuccess"] = {"rejectedSpans": str(len(rejected)), "errorMessage": message}
        return json.dumps(body).encode()
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = len(rejected)
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())


def _rejection_message(rejected: list[str]) -> str:
    if not rejected:
        return ""
    distinct = list(dict.fromkeys(rejected))
    shown = "; ".join(distinct[:5])
    more = f" (and {len(distinct) - 5} more reasons)" if len(distinct) > 5 else ""
    return f"{len(rejected)} span(s) rejected: {shown}{more}"


def status_body(code: int, message: str, *, json_encoded: bool) -> bytes:
    """A google.rpc.Status error body in the request's encoding (never echoing input)."""
    if json_encoded:
        return json.dumps({"code": code, "message": message}).encode()
    return bytes(Status(code=code, message=message).SerializeToString())
