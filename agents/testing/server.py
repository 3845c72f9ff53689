"""Runtime shared by the fake provider servers: a WebSocket server on 127.0.0.1.

The server always runs on its own event loop in a background thread, so the
same fake works from sync pytest tests (``with``) and from async code
(``async with``) without blocking the test's loop. Everything a test calls on a
fake is thread-safe.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import json
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from agents.testing.script import Disconnect, Step, Until

logger = logging.getLogger("agents.testing")

Matcher = str | Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Handshake:
    """One accepted or rejected WebSocket upgrade, as the server saw it."""

    path: str
    headers: dict[str, str]


class FakeServer(abc.ABC):
    """Base class: lifecycle, recording of client messages, the step script.

    Subclasses implement :meth:`handle` (one client connection) and
    :meth:`message_type` (how to name a client message for :meth:`wait_for`).
    """

    #: how long :meth:`wait_for` waits by default (seconds)
    default_timeout = 5.0

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._lock = threading.Condition()
        self._received: list[dict[str, Any]] = []
        self._steps: collections.deque[Step] = collections.deque()
        self._reject: collections.deque[int] = collections.deque()
        self._caller_texts: collections.deque[str] = collections.deque()
        self.handshakes: list[Handshake] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._connections: set[ServerConnection] = set()
        self.port = 0

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_server())
            except BaseException as exc:  # surface bind errors to the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_server())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    async def _start_server(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=self._ssl_context,
            process_request=self._process_request,
            max_size=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_server(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- scripting and inspection (thread-safe) --------------------------------

    def script(self, *steps: Step) -> None:
        """Append steps to what the fake will do on its next triggers."""
        with self._lock:
            self._steps.extend(steps)

    def caller_says(self, *texts: str) -> None:
        """Queue transcripts for the next caller turns the fake's VAD detects."""
        with self._lock:
            self._caller_texts.extend(texts)

    def next_caller_text(self) -> str | None:
        with self._lock:
            return self._caller_texts.popleft() if self._caller_texts else None

    def pending_steps(self) -> int:
        with self._lock:
            return len(self._steps)

    def reject_connections(self, *statuses: int) -> None:
        """Answer the next upgrade requests with these HTTP statuses (e.g. 503, 401)."""
        with self._lock:
            self._reject.extend(statuses)

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every client message so far, decoded, in arrival order."""
        with self._lock:
            return list(self._received)

    def received_of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if self.message_type(m) == kind]

    def wait_for(self, match: Matcher, *, count: int = 1, timeout: float | None = None) -> dict[str, Any]:
        """Block until ``count`` client messages match; return the last of them.

        ``match`` is a message type (see :meth:`message_type`) or a predicate.
        Raises ``TimeoutError`` naming what was awaited and what did arrive.
        """
        pred = match if callable(match) else (lambda m: self.message_type(m) == match)
        deadline = timeout if timeout is not None else self.default_timeout
        with self._lock:
            hits: list[dict[str, Any]] = []

            def enough() -> bool:
                hits[:] = [m for m in self._received if pred(m)]
                return len(hits) >= count

            if not self._lock.wait_for(enough, timeout=deadline):
                seen = [self.message_type(m) for m in self._received]
                raise TimeoutError(f"{type(self).__name__}: waited for {count}× {match!r}; received {seen}")
            return hits[count - 1]

    async def async_wait_for(
        self, match: Matcher, *, count: int = 1, timeout: float | None = None
    ) -> dict[str, Any]:
        """:meth:`wait_for` for async tests (does not block the caller's loop)."""
        return await asyncio.to_thread(self.wait_for, match, count=count, timeout=timeout)

    def push(self, message: dict[str, Any]) -> None:
        """Send a raw server message to every connected client (a wire-level escape hatch)."""
        self._call(self._broadcast(message))

    def drop_connections(self, code: int = 1011, reason: str = "dropped") -> None:
        """Close every client connection now."""
        self._call(self._close_all(code, reason))

    @property
    def connection_count(self) -> int:
        return len(self.handshakes)

    @property
    def open_connections(self) -> int:
        """Client connections open right now (a session the platform has not closed)."""
        return len(self._connections)

    # -- subclass API ----------------------------------------------------------

    @abc.abstractmethod
    def message_type(self, message: dict[str, Any]) -> str:
        """The protocol's name for a client message (for ``received_of``)."""

    def authorize(self, request: Request) -> int | None:
        """Return an HTTP status to reject the upgrade (e.g. 401), or None to accept."""
        return None

    @abc.abstractmethod
    async def handle(self, conn: ServerConnection) -> None:
        """Serve one client connection with the vendor's protocol."""

    async def run_script(self, st: ConnState, run: Callable[[Step], Awaitable[bool]]) -> None:
        """Run steps until one produced a model turn (``run`` returned True).

        :class:`Disconnect` and :class:`Until` are handled here for every fake; ``run`` gets the rest.
        """
        while (step := self._next_step()) is not None:
            if isinstance(step, Disconnect):
                await st.conn.close(step.close_code, step.reason)
                return
            if isinstance(step, Until):
                if not await asyncio.to_thread(step.event.wait, step.timeout):
                    raise TimeoutError(f"{type(self).__name__}: {step.what} did not happen within {step.timeout}s")
                continue
            if await run(step):
                return

    def _record(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._received.append(message)
            self._lock.notify_all()

    def _next_step(self) -> Step | None:
        with self._lock:
            return self._steps.popleft() if self._steps else None

    async def send_json(self, conn: ServerConnection, message: dict[str, Any]) -> None:
        await conn.send(json.dumps(message))

    # -- internals -------------------------------------------------------------

    def _call(self, coro: Any) -> None:
        if self._loop is None:
            coro.close()
            raise RuntimeError(f"{type(self).__name__} is not running")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _broadcast(self, message: dict[str, Any]) -> None:
        for conn in list(self._connections):
            await self.send_json(conn, message)

    async def _close_all(self, code: int, reason: str) -> None:
        for conn in list(self._connections):
            await conn.close(code, reason)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        with self._lock:
            self.handshakes.append(Handshake(request.path, {k.lower(): v for k, v in request.headers.raw_items()}))
            status = self._reject.popleft() if self._reject else None
        if status is None:
            status = self.authorize(request)
        if status is not None:
            return conn.respond(HTTPStatus(status), f"rejected by test script ({status})\n")
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        self._connections.add(conn)
        try:
            await self.handle(conn)
        except Exception:
            # A fake that crashes must say why, or tests fail with a bare close.
            logger.exception("fake server handler crashed")
            raise
        finally:
            self._connections.discard(conn)


class ConnState:
    """Per-connection state common to the fakes: the agent turn being streamed."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.in_speech = False
        self.pending_bytes = 0
        self.audio_ms = 0
        self.turn_task: asyncio.Task[None] | None = None

    def speaking(self) -> bool:
        return self.turn_task is not None and not self.turn_task.done()

    async def start_turn(self, speak: Awaitable[None], *, paced: bool) -> None:
        """Stream a turn; a paced one runs in the background so caller audio can barge in."""
        self.turn_task = asyncio.ensure_future(speak)
        if not paced:
            await self.turn_task

    async def stop_turn(self) -> bool:
        """Cancel a streaming turn; True if one was running."""
        task = self.turn_task
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return True
