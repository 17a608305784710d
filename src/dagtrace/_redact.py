"""Redaction and payload caps for what leaves the store: forwarded spans, the query API,
the CLI; and, only when asked, for what the store keeps.

Keys (attribute keys, or keys anywhere inside a JSON payload) matching a pattern get
their value replaced by `[REDACTED]`; a payload longer than the cap is replaced by a
short note. The store keeps payloads exact for restart and replay unless a store
policy is given, in which case a node whose output the policy changed is stored
without it and marked not reusable (restart re-executes it, replay refuses it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import conventions as c
from ._mapping import SpanRecord, mark_not_reusable

REDACTED = "[REDACTED]"
DEFAULT_PATTERNS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "credential",
    "private_key",
)
"""Case-insensitive substrings of keys whose values are never shown or forwarded."""

PAYLOAD_KEYS = (c.RUN_INPUTS, c.RUN_OUTPUTS, c.NODE_INPUT, c.NODE_OUTPUT)


@dataclass(frozen=True)
class Redaction:
    """A redaction policy: key patterns (regular expressions, case-insensitive) and an
    optional cap in bytes for each JSON payload."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    max_payload_bytes: int | None = None
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.max_payload_bytes is not None and self.max_payload_bytes < 16:
            raise ValueError("max_payload_bytes must be at least 16")
        regex = (
            re.compile("|".join(f"(?:{p})" for p in self.patterns), re.IGNORECASE)
            if (self.patterns)
            else None
        )
        object.__setattr__(self, "_regex", regex)

    def secret_key(self, key: str) -> bool:
        return self._regex is not None and self._regex.search(key) is not None

    def payload(self, text: str | None) -> str | None:
        """A JSON payload with secret keys redacted and the cap applied."""
        if text is None:
            return None
        if self._regex is not None:
            try:
                text = json.dumps(self._walk(json.loads(text)))
            except (ValueError, RecursionError):
                pass  # not JSON: only the cap applies
        cap = self.max_payload_bytes
        if cap is not None and len(text.encode("utf-8")) > cap:
            return json.dumps(f"[{len(text.encode('utf-8'))} bytes, over the {cap}-byte cap]")
        return text

    def _walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: REDACTED if self.secret_key(str(k)) else self._walk(v) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value

    def attributes(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Span attributes as they may leave: secret keys and payloads redacted. Changed
        payloads lose their `.length` and carry `dag.redacted`, so a dagtrace receiver
        downstream stores them as not reusable."""
        out: dict[str, Any] = {}
        changed = False
        for key, value in attributes.items():
            if key.endswith(c.LENGTH_SUFFIX) and key[: -len(c.LENGTH_SUFFIX)] in PAYLOAD_KEYS:
                continue
            if key in PAYLOAD_KEYS and isinstance(value, str):
                new = self.payload(value)
                changed |= new != value
                out[key] = new
            elif not key.startswith("dag.") and self.secret_key(key):
                out[key], changed = REDACTED, True
            else:
                out[key] = value
        for key in PAYLOAD_KEYS:  # untouched payloads keep their length attribute
            length = key + c.LENGTH_SUFFIX
            if length in attributes and out.get(key) == attributes.get(key):
                out[length] = attributes[length]
        if changed:
            out[c.REDACTED] = True
        return out

    def node_rows(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """`get_node_executions` rows with their payloads redacted."""
        return [
            {
                **r,
                "input_json": self.payload(r["input_json"]),
                "output_json": self.payload(r["output_json"]),
            }
            for r in rows
        ]

    def apply_to_record(self, record: SpanRecord) -> None:
        """A store policy: payloads this policy changes are not kept as if exact."""
        if record.kind == c.KIND_NODE:
            record.input_json = self.payload(record.input_json)
            if self.payload(record.output_json) != record.output_json:
                mark_not_reusable(record, "output redacted or capped by the store policy")
        else:
            record.outputs_json = self.payload(record.outputs_json)
            if self.payload(record.inputs_json) != record.inputs_json:
                mark_not_reusable(record, "inputs redacted or capped by the store policy")


NO_REDACTION = Redaction(patterns=(), max_payload_bytes=None)
