"""`serve()`: the app on uvicorn, with serve's connection limits, until SIGINT/SIGTERM.

`_Server` is uvicorn's server with two changes: it says when it accepts requests
(`on_ready`), and a signal stops it without being re-raised, so the requests in hand
are written and the store closed before the process exits.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn

from ..settings import DEFAULT_HOST, DEFAULT_PORT
from ..store.base import Store
from .app import create_app
from .auth import exposure_problem
from .body import return_large_buffers_to_the_os
from .config import DEFAULT_CONFIG, ServeConfig
from .limits import ConnectionCounts, limited_protocol

_log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, url: str, on_ready: Callable[[str], None] | None
    ) -> None:
        super().__init__(config)
        self._url = url
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._on_ready and not self.should_exit:
            self._on_ready(self._url)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, minus re-raising the signal once the server stopped: that would
        kill this process before it drains the write queue, stops its decoding
        processes and closes the store."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(
    store: Store,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: ServeConfig = DEFAULT_CONFIG,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the server until SIGINT / SIGTERM; `on_ready(url)` once it accepts requests.

    Port 0 picks a free port; the URL passed to `on_ready` has the real one. Raises
    ValueError, before binding, for a non-loopback `host` without a token (unless
    `config.insecure_no_token`).
    """
    problem = exposure_problem(host, config.token, insecure_no_token=config.insecure_no_token)
    if problem:
        raise ValueError(problem)
    return_large_buffers_to_the_os()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound}"
    counts = ConnectionCounts()
    app = create_app(store, config, connections=counts)
    server = _Server(
        uvicorn.Config(
            app,
            http=limited_protocol(config.limits, counts),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=10,
        ),
        url,
        on_ready,
    )
    _log_start(store, url, config)
    try:
        server.run(sockets=[sock])
    finally:
        _log.info("stopping: finishing the requests in hand")
        app.state.shutdown()
        sock.close()
        _log.info("stopped")


def _log_start(store: Store, url: str, config: ServeConfig) -> None:
    limits = config.limits
    _log.info(
        "serving %s on %s: %s, queue %d, body budget %d bytes, %d connections, "
        "header/body timeouts %g/%gs%s%s",
        store.location,
        url,
        "read-only"
        if config.read_only
        else f"{config.decoders} ingest worker(s)"
        if config.decoders
        else "ingest on a thread",
        config.queue_size,
        config.body_budget,
        limits.max_connections,
        limits.header_timeout,
        limits.body_timeout,
        ", no token" if config.token is None else "",
        f", forwarding to {config.forward}" if config.forward else "",
    )
