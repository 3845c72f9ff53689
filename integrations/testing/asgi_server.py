"""Run any ASGI app under uvicorn on 127.0.0.1 with an ephemeral port.

Usable from sync tests (``with serve_asgi(app) as url``) and from async code
(``async with aserve_asgi(app) as url``). The server runs in a background thread with its
own event loop in both cases, so an async test's loop is never blocked by the fake and a
sync test can drive it from plain code.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

_START_TIMEOUT_S = 10.0


class ThreadedAsgiServer:
    """A uvicorn server bound to 127.0.0.1:<ephemeral> running in a daemon thread."""

    def __init__(self, app: Any, *, port: int = 0, ssl_certfile: str | None = None,
                 ssl_keyfile: str | None = None) -> None:
        self.app = app
        self.scheme = "https" if ssl_certfile else "http"
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="auto",
                           ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=f"asgi-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"ASGI test server on port {self.port} exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ASGI test server on port {self.port} did not start in {_START_TIMEOUT_S}s")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=_START_TIMEOUT_S)
        self._sock.close()


@contextlib.contextmanager
def serve_asgi(app: Any, *, port: int = 0, ssl_certfile: str | None = None,
               ssl_keyfile: str | None = None) -> Iterator[str]:
    """Serve ``app`` for the duration of the block; yields its base URL (no trailing slash).

    With a certificate and key it serves https (e.g. a self-signed one to test TLS errors).
    """
    server = ThreadedAsgiServer(app, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def aserve_asgi(app: Any, *, port: int = 0) -> AsyncIterator[str]:
    """Async flavour of :func:`serve_asgi`; startup/shutdown block only briefly."""
    import asyncio

    server = ThreadedAsgiServer(app, port=port)
    await asyncio.to_thread(server.start)
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


class FakeServer:
    """Base for fakes: subclass builds ``self.app``; use as a sync or async context manager.

    ``with FakeTelegram() as tg: tg.url`` — state (received requests, queued data) lives on
    the instance so tests can both seed it and inspect what our code sent.
    """

    app: Any

    def __init__(self) -> None:
        self._server: ThreadedAsgiServer | None = None
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use it as a context manager")
        return self._server.url

    def __enter__(self) -> "FakeServer":
        self._server = ThreadedAsgiServer(self.app)
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def __aenter__(self) -> "FakeServer":
        import asyncio

        self._server = ThreadedAsgiServer(self.app)
        await asyncio.to_thread(self._server.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None
