"""The bearer token of `dagtrace serve` and its clients, and when serving needs one
(the check itself: `_server._bearer_auth`). No web framework here: clients import it."""

from __future__ import annotations

import ipaddress
import socket

"""A bearer token required by ingestion and queries when set."""


def token_problem(token: str) -> str | None:
    """Why `token` cannot be a bearer token, or None.

    Only visible ASCII: HTTP clients disagree on how to send other characters in a
    header (latin-1, UTF-8, or not at all), so such a token would work with some
    clients and lock others out; whitespace is lost or added by shells and files."""
    if token == "":
        return "the token is empty"
    if not all("!" <= ch <= "~" for ch in token):
        return "the token must be visible ASCII characters only (no spaces, no accents)"
    return None


def client_token(token: str | None) -> str | None:
    """A client's token: an empty one is no token; an unusable one raises ValueError."""
    if not token:
        return None
    problem = token_problem(token)
    if problem:
        raise ValueError(problem)
    return token


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
