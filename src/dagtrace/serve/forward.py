"""The forwarder: received requests re-sent to another OTLP/HTTP endpoint (Jaeger, a
Collector), redacted on the way (`redact_request`), best effort: the store has them.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .. import settings
from .._redact import Redaction
from ..settings import DEFAULT_FORWARD_BUFFER
from .bugs import Bugs
from .codec import JSON, json_attributes, pb_value

_log = logging.getLogger(__name__)


class Forwarder:
    """Re-sends received requests to another OTLP/HTTP endpoint (Jaeger, a Collector).

    Bounded in bytes: when the target is down or slow and `max_bytes` of requests
    wait, the oldest are dropped and counted; ingestion into the store never waits.
    """

    RETRYABLE = frozenset({429, 502, 503, 504})

    def __init__(
        self,
        url: str,
        *,
        prepare: Callable[[bytes, str], bytes] | None = None,
        max_bytes: int = DEFAULT_FORWARD_BUFFER,
        max_attempts: int = 5,
        timeout: float = 5.0,
        bugs: Bugs | None = None,
    ) -> None:
        """`prepare(body, content_type)` turns a received body into the one sent (the
        redaction): it runs on the forwarding thread, not on the request's path. `bugs`:
        where an exception other than the target's failure is counted."""
        self.url = url
        self._bugs = bugs or Bugs()
        self.forwarded = 0
        self.dropped = 0
        self._prepare = prepare
        self._max_bytes = max_bytes
        self._pending: deque[tuple[bytes, str]] = deque()
        self._pending_bytes = 0
        self._changed = threading.Condition()
        self._max_attempts = max_attempts
        self._client = httpx.Client(timeout=timeout)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dagtrace-forward", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not counting the one being sent)."""
        return len(self._pending)

    def submit(self, body: bytes, content_type: str) -> None:
        with self._changed:
            self._pending.append((body, content_type))
            self._pending_bytes += len(body)
            while self._pending_bytes > self._max_bytes:
                oldest, _ = self._pending.popleft()
                self._pending_bytes -= len(oldest)
                self.dropped += 1
            self._changed.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what waits, without retries, for at most `timeout` seconds; drop the rest."""
        self._stopping.set()
        with self._changed:
            self._changed.notify()
        self._thread.join(timeout)
        with self._changed:
            left = len(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self.dropped += left
        if left:
            _log.warning("stopping: %d request(s) not forwarded to %s", left, self.url)
        self._client.close()

    def _next(self) -> tuple[bytes, str] | None:
        with self._changed:
            while not self._pending and not self._stopping.is_set():
                self._changed.wait()
            if not self._pending:
                return None
            body, content_type = self._pending.popleft()
            self._pending_bytes -= len(body)
            return body, content_type

    def _run(self) -> None:
        while (item := self._next()) is not None:
            body, content_type = item
            sent = False
            try:
                if self._prepare is not None:
                    body = self._prepare(body, content_type)
                sent = self._send(body, content_type)
            except httpx.InvalidURL as e:  # the --forward URL: not a bug
                _log.warning("not forwarded: %s", e)
            except Exception:  # stored already: forwarding is best effort
                if not self._stopping.is_set():  # else stop() closed the client: it counts
                    self._bugs.met("forwarding a request")
                    if settings.strict():
                        raise
            finally:
                with self._changed:
                    if sent:
                        self.forwarded += 1
                    else:
                        self.dropped += 1

    def _send(self, body: bytes, content_type: str) -> bool:
        """Up to `max_attempts` tries; between two, the target's Retry-After if it gave
        one, else an exponential backoff. Cut short by stop()."""
        backoff = 0.1
        for attempt in range(1, self._max_attempts + 1):
            wait = backoff
            try:
                response = self._client.post(
                    self.url, content=body, headers={"Content-Type": content_type}
                )
            except httpx.HTTPError as e:
                problem = str(e) or e.__class__.__name__
            else:
                if response.status_code < 300:
                    return True
                if response.status_code not in self.RETRYABLE:
                    _log.warning("forward to %s refused: HTTP %d", self.url, response.status_code)
                    return False
                problem = f"HTTP {response.status_code}"
                asked = _retry_after(response.headers.get("retry-after"))
                wait = backoff if asked is None else asked
            if attempt == self._max_attempts:
                _log.warning(
                    "forward to %s failed %d times, dropped: %s", self.url, attempt, problem
                )
                return False
            if self._stopping.wait(wait):
                return False
            backoff = min(backoff * 2, 5.0)
        return False


_MAX_RETRY_AFTER = 60.0


def _retry_after(header: str | None) -> float | None:
    """Retry-After in seconds (the OTLP spec asks clients to honour it), at most a
    minute; None when absent or given as a date."""
    if header is None or not header.strip().isdigit():
        return None
    return min(float(header), _MAX_RETRY_AFTER)


# -- redaction of forwarded requests ----------------------------------------------------


def redactor(redaction: Redaction) -> Callable[[bytes, str], bytes]:
    """A forwarder's `prepare`: `redact_request` by the body's content type."""

    def redacted(body: bytes, content_type: str) -> bytes:
        return redact_request(body, json_encoded=content_type == JSON, redaction=redaction)

    return redacted


def redact_request(body: bytes, *, json_encoded: bool, redaction: Redaction) -> bytes:
    """The request with every span's attributes (and its events') redacted: the same
    bytes when nothing in it is to be redacted (the common case, found without
    decoding when the policy has no payload cap)."""
    if redaction.changes_nothing or (
        redaction.max_payload_bytes is None and not redaction.may_find_secret_keys(body)
    ):
        return body
    changed = False
    if json_encoded:
        tree = json.loads(body)
        for resource_spans in tree.get("resourceSpans", []):
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    for holder in (span, *span.get("events", [])):
                        attributes = json_attributes(holder.get("attributes", []))
                        redacted = redaction.attributes(attributes)
                        if redacted != attributes:
                            holder["attributes"] = _json_attribute_list(redacted)
                            changed = True
        return json.dumps(tree).encode() if changed else body
    request = ExportTraceServiceRequest.FromString(body)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for holder in (span, *span.events):
                    attributes = {
                        kv.key: pb_value(kv.value, kv.value.WhichOneof("value"))
                        for kv in holder.attributes
                    }
                    redacted = redaction.attributes(attributes)
                    if redacted == attributes:
                        continue
                    changed = True
                    del holder.attributes[:]
                    for key, value in redacted.items():
                        holder.attributes.add(key=key).value.CopyFrom(_to_any_value(value))
    return bytes(request.SerializeToString()) if changed else body


def _to_any_value(value: Any) -> AnyValue:
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(_to_any_value(v) for v in value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.kvlist_value.values.add(key=key).value.CopyFrom(_to_any_value(item))
    elif value is not None:
        out.string_value = str(value)
    return out


def _json_attribute_list(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _to_json_value(value)} for key, value in attributes.items()]


def _to_json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_to_json_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _json_attribute_list(value)}}
    return {"stringValue": "" if value is None else str(value)}
