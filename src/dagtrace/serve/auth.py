"""Who may use `dagtrace serve`: when serving needs a token, and the check of a
request's bearer token (the token's own rules, shared with clients: `_token`)."""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from .._token import token_problem


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address (a name is resolved)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


def exposure_problem(host: str, token: str | None, *, insecure_no_token: bool) -> str | None:
    """Why serving on `host` with this token is refused, or None."""
    if token is not None:
        return token_problem(token)
    if insecure_no_token or is_loopback(host):
        return None
    return (
        f"{host} is not a loopback address and no token is set: anyone who reaches it "
        "could read and write the store. Give --token (or DAGTRACE_TOKEN), or "
        "--insecure-no-token if the network itself is trusted"
    )


def bearer_auth(token: str | None) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: 401 unless `Authorization: Bearer <token>` (when a token is set)."""
    expected = f"Bearer {token}".encode() if token else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        # Starlette decodes header bytes as latin-1: this gives back the bytes sent
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):  # constant time
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    return check
