"""The web view's login: a token exchanged for a signed, stateless cookie.

A browser cannot send `Authorization: Bearer` on a link, so with `--token` the view
offers a form that exchanges the token for a cookie: HttpOnly, SameSite=Strict, with
an expiry, signed by HMAC with a key derived from the token (so N servers sharing a
token accept each other's cookies, and changing the token logs everyone out). The
cookie is accepted by the view's GET routes only: never by /v1/traces, /metrics or
the JSON API, which keep the bearer token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

COOKIE = "dagtrace_view"
LIFETIME = 12 * 3600
"""Seconds a login lasts."""
_CONTEXT = b"dagtrace web view cookie v1"


@dataclass(frozen=True)
class CookieSigner:
    """Makes and checks view cookies for one token."""

    token: str = field(repr=False)  # never in a log line or a traceback

    def _key(self) -> bytes:
        return hmac.new(self.token.encode(), _CONTEXT, hashlib.sha256).digest()

    def _mac(self, expires: int) -> str:
        digest = hmac.new(self._key(), f"v1.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def make(self, *, now: float | None = None, lifetime: int = LIFETIME) -> str:
        """A cookie value valid for `lifetime` seconds."""
        expires = int(now if now is not None else time.time()) + lifetime
        return f"{expires}.{self._mac(expires)}"

    def valid(self, value: str | None, *, now: float | None = None) -> bool:
        """Whether the cookie was made with this token and has not expired."""
        if not value or value.count(".") != 1:
            return False
        expires_text, mac = value.split(".")
        if not (expires_text.isascii() and expires_text.isdigit()) or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        if expires < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(mac.encode(), self._mac(expires).encode())

    def token_matches(self, given: str) -> bool:
        """The login form's check, in constant time."""
        return hmac.compare_digest(given.encode(), self.token.encode())


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
