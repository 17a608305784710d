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

FOLDS_TO_ASCII = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
"""The characters a case-insensitive pattern matches to an ASCII letter or digit (İ ı ſ
K): a key written with them matches without that letter in the text."""
_FOLDS_UTF8 = tuple((ch.encode(), ascii.encode()) for ch, ascii in FOLDS_TO_ASCII.items())
_ESCAPES_OF_WORD_CHARACTERS = (b"\\u00", b"\\u013", b"\\u017f", b"\\u212a")
"""JSON `\\u` escapes that can spell a letter, digit or underscore (or a fold of one),
lowercased."""
_WORD = re.compile(r"\w+", re.ASCII)


@dataclass(frozen=True)
class Redaction:
    """A redaction policy: key patterns (regular expressions, case-insensitive) and an
    optional cap in bytes for each JSON payload."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    max_payload_bytes: int | None = None
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)
    _words: tuple[bytes, ...] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.max_payload_bytes is not None and self.max_payload_bytes < 16:
            raise ValueError("max_payload_bytes must be at least 16")
        either = "|".join(f"(?:{p})" for p in self.patterns)
        regex = re.compile(either, re.IGNORECASE) if self.patterns else None
        object.__setattr__(self, "_regex", regex)
        if regex is not None and all(_WORD.fullmatch(p) for p in self.patterns):
            # Plain words (the defaults): a key holding one shows it in any text around.
            words = tuple(p.lower().encode() for p in self.patterns)
            object.__setattr__(self, "_words", words)

    @property
    def changes_nothing(self) -> bool:
        return self._regex is None and self.max_payload_bytes is None

    def secret_key(self, key: str) -> bool:
        return self._regex is not None and self._regex.search(key) is not None

    def may_find_secret_keys(self, data: bytes) -> bool:
        """False only if no key anywhere in `data` (a JSON text, an OTLP body) can match:
        with plain-word patterns, none occurs in it, nor a JSON `\\u` escape, nor a
        character that folds to an ASCII letter. Spares parsing what has no secret."""
        if self._regex is None:
            return False
        if self._words is None:
            return True  # regular expressions: only parsing tells
        text = data.lower()  # ASCII only, as the folds below are not ASCII
        if b"\\u" in text and any(escape in text for escape in _ESCAPES_OF_WORD_CHARACTERS):
            return True
        for fold, letter in _FOLDS_UTF8:
            if fold in text:
                text = text.replace(fold, letter)
        return any(word in text for word in self._words)

    def payload(self, text: str | None) -> str | None:
        """A JSON payload with secret keys redacted and the cap applied; unchanged,
        byte for byte, when it has no secret key and fits."""
        if text is None:
            return None
        if self._regex is not None and self.may_find_secret_keys(
            text.encode(errors="surrogatepass")
        ):
            try:
                walked, redacted = self._walk(json.loads(text))
            except (ValueError, RecursionError):
                redacted = False  # not JSON: only the cap applies
            if redacted:
                text = json.dumps(walked)
        cap = self.max_payload_bytes
        if cap is not None and len(text.encode("utf-8")) > cap:
            return json.dumps(f"[{len(text.encode('utf-8'))} bytes, over the {cap}-byte cap]")
        return text

    def _walk(self, value: Any) -> tuple[Any, bool]:
        """The value with secret keys' values replaced, and whether any was."""
        if isinstance(value, dict):
            out, redacted = {}, False
            for k, v in value.items():
                if self.secret_key(str(k)):
                    out[k], redacted = REDACTED, True
                else:
                    out[k], inner = self._walk(v)
                    redacted |= inner
            return out, redacted
        if isinstance(value, list):
            walked = [self._walk(v) for v in value]
            return [v for v, _ in walked], any(r for _, r in walked)
        return value, False

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

    def node_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
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
