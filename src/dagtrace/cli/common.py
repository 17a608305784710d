"""What every command shares: exit codes, options, opening a store or a server, and
the one place a store error becomes exit code 4 (`DagtraceGroup`)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any, NoReturn

import click

from .._remote import RemoteProvenance
from .._token import client_token
from ..exceptions import StoreError
from ..settings import (
    DB_ENV,
    DEFAULT_DB,
    TOKEN_ENV,
)
from ..store import open_store
from ..store.base import Store

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


db_option = click.option(
    "--db",
    envvar=DB_ENV,
    default=DEFAULT_DB,
    show_default=True,
    show_envvar=True,
    help="The store: a SQLite file path, a sqlite:/// or postgresql:// URL, or the URL of "
    "a dagtrace server (http://host:4319) to read through its API.",
)
store_option = click.option(
    "--db",
    envvar=DB_ENV,
    default=DEFAULT_DB,
    show_default=True,
    show_envvar=True,
    help="The store itself: a SQLite file path, a sqlite:/// or postgresql:// URL.",
)
token_option = click.option(
    "--token",
    envvar=TOKEN_ENV,
    show_envvar=True,
    default=None,
    help="Bearer token of the server (with an http:// --db); empty: none.",
)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"dagtrace: {message}", err=True)
    sys.exit(code)


def open_reader(db: str, token: str | None) -> Store | RemoteProvenance:
    """A local store, or a server's query API when `db` is an http(s) URL."""
    if db.startswith(("http://", "https://")):
        try:
            return RemoteProvenance(db, token=client_token(token))
        except ValueError as e:
            fail(f"--token: {e}", EXIT_USAGE)
    return open_local(db)


def open_local(db: str, *, read_only: bool = True, batched_writes: bool = False) -> Store:
    if db.startswith(("http://", "https://")):
        fail("this command needs the store itself, not a server URL", EXIT_USAGE)
    if read_only and "://" not in db and not os.path.exists(db):
        fail(f"no store at {db} (set --db or {DB_ENV})", EXIT_UNREACHABLE)
    return open_store(db, read_only=read_only, batched_writes=batched_writes)


def when(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


class DagtraceGroup(click.Group):
    """Maps a `StoreError` from any command to its message and exit code 4, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreError as e:
            fail(str(e), EXIT_UNREACHABLE)
