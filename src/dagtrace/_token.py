"""The bearer token of `dagtrace serve`, as its clients and the server both check it.

No web framework here: clients (`RemoteProvenance`, the CLI) import it; the server's
check of a request is `serve.auth`."""

from __future__ import annotations


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
