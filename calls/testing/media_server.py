"""Serve the media consumers on 127.0.0.1 for tests and the benchmark.

Runs the real consumers and call sessions (calls.routing.media_urlpatterns)
under uvicorn in a background thread with its own event loop, with the
database-backed hooks replaced by in-memory ones: calls are registered with
`add_call(context)` (which returns the stream URL and the call's fresh token), results
land in `results` (`wait_result(call_id)`). Everything on the media path is the
production code; only where a context comes from and where a result goes differ.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

from calls.audio.vad import VadBatcher
from calls.media.registry import SessionRegistry
from calls.media.result import STREAM_BUSY, STREAM_GRANTED, STREAM_REFUSED, SessionContext, SessionResult


class StreamUrl(str):
    """A media-stream URL (no secret in it) that also carries the call's token, which
    a client sends in its `start` message (`CarrierMediaClient` does so by itself)."""

    token: str

    def __new__(cls, url: str, token: str) -> StreamUrl:
        value = super().__new__(cls, url)
        value.token = token
        return value


class InMemoryCalls:
    """The hooks the consumers need, backed by dicts (thread-safe): the stream gate
    (one live socket per call, as `calls.services.streams.claim_stream` does in the
    database), the context loader and the result sink."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.contexts: dict[str, SessionContext | Callable[[], SessionContext]] = {}
        self.tokens: dict[str, str] = {}
        self.results: dict[str, SessionResult] = {}
        self.authorize_calls: list[tuple[str, bool]] = []
        self.claims: dict[str, str] = {}
        self.duplicates: list[str] = []

    def add_call(self, context: SessionContext | Callable[[], SessionContext], call_id: str | None = None) -> tuple[str, str]:
        call_id = call_id or str(uuid.uuid4())
        token = secrets.token_hex(24)  # letters and digits, as Plivo's extraHeaders need
        with self._lock:
            self.contexts[call_id] = context
            self.tokens[call_id] = token
        return call_id, token

    async def claim(self, call_id: str, token: str, transport: str, claim_id: str) -> str:
        with self._lock:
            expected = self.tokens.get(call_id)
            ok = expected is not None and secrets.compare_digest(expected, token)
            self.authorize_calls.append((call_id, ok))
            if not ok:
                return STREAM_REFUSED
            if call_id in self.claims:
                self.duplicates.append(call_id)
                return STREAM_BUSY
            self.claims[call_id] = claim_id
            return STREAM_GRANTED

    async def renew_claim(self, call_id: str, claim_id: str) -> bool:
        with self._lock:
            return self.claims.get(call_id) == claim_id

    async def release_claim(self, call_id: str, claim_id: str) -> None:
        with self._lock:
            if self.claims.get(call_id) == claim_id:
                del self.claims[call_id]

    async def load_context(self, call_id: str) -> SessionContext:
        with self._lock:
            ctx = self.contexts[call_id]
        return ctx() if callable(ctx) else ctx

    async def on_finish(self, call_id: str, result: SessionResult) -> None:
        with self._lock:
            self.results[call_id] = result
            self._lock.notify_all()

    def wait_result(self, call_id: str, timeout: float = 20.0) -> SessionResult:
        with self._lock:
            if not self._lock.wait_for(lambda: call_id in self.results, timeout):
                raise TimeoutError(f"call {call_id} did not finish within {timeout}s")
            return self.results[call_id]

    def hooks(self) -> dict[str, Any]:
        return {"claim": self.claim, "renew_claim": self.renew_claim, "release_claim": self.release_claim,
                "load_context": self.load_context, "on_finish": self.on_finish}


def ensure_django_settings() -> None:
    """Configure a minimal Django when nothing has (standalone benchmark, or
    pytest with -p no:django): the media path needs URL routing and
    import_string, not the database or any app."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(DATABASES={}, INSTALLED_APPS=["channels"], CHANNEL_LAYERS={}, USE_TZ=True,
                           LOGGING_CONFIG=None)
        import django

        django.setup()


def build_media_app(calls: InMemoryCalls, **extra: Any) -> Any:
    """The ASGI app: websocket routes of calls.routing with in-memory hooks."""
    ensure_django_settings()
    from channels.routing import ProtocolTypeRouter, URLRouter

    from calls.routing import media_urlpatterns

    return ProtocolTypeRouter({"websocket": URLRouter(media_urlpatterns(**calls.hooks(), **extra))})


class MediaTestServer:
    """uvicorn (websockets implementation) serving `build_media_app` on an ephemeral port."""

    def __init__(self, calls: InMemoryCalls | None = None, *, vad_batcher: VadBatcher | None = None) -> None:
        self.calls = calls or InMemoryCalls()
        self._vad_batcher = vad_batcher
        self.sessions = SessionRegistry()
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None

    def url(self, transport: str, call_id: str, token: str) -> StreamUrl:
        return StreamUrl(f"ws://127.0.0.1:{self.port}/ws/{transport}/{call_id}", token)

    def add_call(self, transport: str, context: SessionContext | Callable[[], SessionContext]) -> tuple[str, StreamUrl]:
        """Register a call; returns (call_id, stream URL, which carries the token to send)."""
        call_id, token = self.calls.add_call(context)
        return call_id, self.url(transport, call_id, token)

    def prepare(self, transport: str, call_id: str) -> None:
        """Open the call's provider session now, before its stream connects
        (what the answer webhook does in production)."""
        assert self.loop is not None

        async def run() -> None:
            hooks = self.calls.hooks()
            self.sessions.prepare(call_id, transport, load_context=hooks["load_context"],
                                  on_finish=hooks["on_finish"])

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def start(self) -> None:
        import uvicorn

        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            extra = {"vad_batcher": self._vad_batcher or VadBatcher(), "sessions": self.sessions}
            app = build_media_app(self.calls, **extra)
            config = uvicorn.Config(app, host="127.0.0.1", port=0, ws="websockets-sansio", lifespan="off",
                                    log_level="warning", ws_max_size=1 << 20)
            server = uvicorn.Server(config)
            self._server = server

            async def serve() -> None:
                task = asyncio.ensure_future(server.serve())
                while not server.started:
                    if task.done():
                        task.result()
                        return
                    await asyncio.sleep(0.01)
                self.port = server.servers[0].sockets[0].getsockname()[1]
                ready.set()
                await task

            try:
                loop.run_until_complete(serve())
            except BaseException as exc:
                errors.append(exc)
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name="MediaTestServer", daemon=True)
        self._thread.start()
        ready.wait(15)
        if errors:
            raise errors[0]
        if not self.port:
            raise RuntimeError("media test server did not start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> MediaTestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
