"""Run any ASGI app under uvicorn on 127.0.0.1 with an ephemeral port.

Usable from sync tests (``with serve_asgi(app) as url``) and from async code
(``async with aserve_asgi(app) as url``). The server runs in a background thread with its
own event loop in both cases, so an async test's loop is never blocked by the fake and a
sync test can drive it from plain code.

A :class:`FakeServer` keeps every exception its handlers raise in ``handler_errors`` and
answers that request with a complete 500, keeping the connection. Left to uvicorn, the
exception would close the connection right after the 500 was written, and a client that
had already taken that keep-alive connection from its pool for the next request got a
transport error (``ReadError``) instead of an answer, depending on which thread the CPU
ran first: a crash in a fake showed up as a flaky network failure of a later request.
Recorded, it is one list a test can assert is empty.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

logger = logging.getLogger(__name__)

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


def recording_errors(app: Any, errors: list[BaseException]) -> Any:
    """``app`` whose HTTP handler exceptions are appended to ``errors`` and answered with a
    complete 500 (a vendor's own server error), never escaping to the server (see the module doc)."""

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        state = {"started": False, "complete": False}

        async def tracking(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True
            await send(message)

        try:
            await app(scope, receive, tracking)
        except Exception as exc:
            errors.append(exc)
            logger.error("fake server handler raised on %s %s", scope.get("method"), scope.get("path"),
                         exc_info=exc)
            if state["complete"]:  # Starlette's ServerErrorMiddleware already answered 500
                return
            if state["started"]:  # half a response: only closing the connection can end it
                raise
            body = f"fake server handler raised {type(exc).__name__}".encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

    return recorded


class FakeServer:
    """Base for fakes: subclass builds ``self.app``; use as a sync or async context manager.

    ``with FakeTelegram() as tg: tg.url`` — state (received requests, queued data) lives on
    the instance so tests can both seed it and inspect what our code sent. ``handler_errors``
    holds what the fake's own handlers raised: a fake that crashed is a test defect.
    """

    app: Any

    def __init__(self) -> None:
        self._server: ThreadedAsgiServer | None = None
        self.requests: list[dict[str, Any]] = []
        self.handler_errors: list[BaseException] = []

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use it as a context manager")
        return self._server.url

    def __enter__(self) -> "FakeServer":
        self._server = ThreadedAsgiServer(recording_errors(self.app, self.handler_errors))
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def __aenter__(self) -> "FakeServer":
        import asyncio

        self._server = ThreadedAsgiServer(recording_errors(self.app, self.handler_errors))
        await asyncio.to_thread(self._server.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None
