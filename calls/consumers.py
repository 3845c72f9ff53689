"""Channels consumers that terminate media streams: I/O and lifecycle only.

`/ws/twilio/<call_id>/<token>`, `/ws/plivo/<call_id>/<token>`, `/ws/web/<call_id>/<token>`
(the token may also come as `?token=` in the query string). Each upgrade is
authorized by `authorize_stream(call_public_id, token)` before it is accepted;
the consumer then hands every message to the call's `CallSession`.

Two deliberate departures from a stock `AsyncWebsocketConsumer`, both for the
20 ms hot path (measured in bench/RESULTS.md):
- no Channels layer: media sockets never join Redis (frames must not go
  through it, and a per-socket layer receive loop costs a Redis round trip
  stream per call);
- no `aclose_old_connections()` per message: stock `dispatch` hops to a
  thread for every frame to close stale DB connections, but nothing on the
  media path uses the database; `connect` (which does) still gets it.

Dependencies are injected with `as_asgi(...)` keyword arguments; by default they
are resolved lazily from `calls.services` (the carrier half of the app):
`authorize_stream`, `load_session_context`, `record_session_result`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

from channels.db import aclose_old_connections
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.utils.module_loading import import_string

from calls.audio.vad import VadBatcher
from calls.media.registry import SessionRegistry, prepared_sessions
from calls.media.result import END_INTERNAL_ERROR, ContextLoader, FinishCallback
from calls.media.session import BridgeFactory, CallSession

logger = logging.getLogger("calls.media")

Authorizer = Callable[[str, str], Awaitable[bool]]

DEFAULT_AUTHORIZER = "calls.services.authorize_stream"
DEFAULT_CONTEXT_LOADER = "calls.services.load_session_context"
DEFAULT_ON_FINISH = "calls.services.record_session_result"

# WebSocket close codes sent before accept become an HTTP 403 on the upgrade.
CLOSE_FORBIDDEN = 4403
CLOSE_SERVER_ERROR = 1011

_shared_batcher: VadBatcher | None = None


def shared_vad_batcher() -> VadBatcher:
    """One VAD batcher per process (it runs on the event loop that serves sockets)."""
    global _shared_batcher
    if _shared_batcher is None:
        _shared_batcher = VadBatcher()
    return _shared_batcher


def _resolve(value: Any, default_path: str) -> Any:
    if value is not None:
        return value
    return import_string(default_path)


class MediaStreamConsumer(AsyncWebsocketConsumer):
    transport: ClassVar[str] = ""

    # Injected through as_asgi(**initkwargs); None = resolve from calls.services.
    authorize: Authorizer | None = None
    load_context: ContextLoader | None = None
    on_finish: FinishCallback | None = None
    bridge_factory: BridgeFactory | None = None
    vad_batcher: VadBatcher | None = None
    sessions: SessionRegistry = prepared_sessions

    _INJECTABLE = frozenset({"authorize", "load_context", "on_finish", "bridge_factory", "vad_batcher", "sessions"})

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__()
        # Channels passes as_asgi() kwargs to the constructor but the stock
        # consumer ignores them; we take exactly the injectable dependencies.
        unknown = set(initkwargs) - self._INJECTABLE
        if unknown:
            raise TypeError(f"unexpected consumer arguments: {', '.join(sorted(unknown))}")
        for name, value in initkwargs.items():
            setattr(self, name, value)
        self.session: CallSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Lean replacement of AsyncConsumer.__call__ (see module docstring).
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    session = self.session
                    if session is None:
                        continue
                    text = message.get("text")
                    if text is not None:
                        await session.handle_text(text)
                    else:
                        data = message.get("bytes")
                        if data is not None:
                            await session.handle_bytes(data)
                elif kind == "websocket.connect":
                    await aclose_old_connections()
                    await self.websocket_connect(message)
                elif kind == "websocket.disconnect":
                    await self.websocket_disconnect(message)
        except StopConsumer:
            pass
        except Exception as exc:
            # A bug must still end the call cleanly: hang up the carrier leg,
            # close the provider session and hand over what we have.
            logger.exception("media consumer crashed", extra={"transport": self.transport})
            if self.session is not None:
                self.session.request_end(END_INTERNAL_ERROR, error=f"{exc.__class__.__name__}: {exc}"[:500])
                await self.session.wait()
            raise

    # --------------------------------------------------------------- Transport

    async def send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self.base_send({"type": "websocket.send", "bytes": data})

    # --------------------------------------------------------------- lifecycle

    def _token(self) -> str:
        kwargs = self.scope.get("url_route", {}).get("kwargs", {})
        token = kwargs.get("token") or ""
        if not token:
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
            token = (query.get("token") or [""])[0]
        return token

    async def connect(self) -> None:
        call_id = str(self.scope["url_route"]["kwargs"]["call_id"])
        token = self._token()
        try:
            authorize = _resolve(self.authorize, DEFAULT_AUTHORIZER)
            allowed = bool(token) and await authorize(call_id, token)
        except Exception:
            logger.exception("stream authorization failed", extra={"transport": self.transport})
            await self.close(code=CLOSE_SERVER_ERROR)
            return
        if not allowed:
            logger.warning("media stream refused: bad or missing token",
                           extra={"transport": self.transport, "call": call_id})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        session = self.sessions.take(call_id, self.transport)
        if session is None:
            try:
                session = CallSession(
                    call_id,
                    self.transport,
                    load_context=_resolve(self.load_context, DEFAULT_CONTEXT_LOADER),
                    on_finish=_resolve(self.on_finish, DEFAULT_ON_FINISH),
                    bridge_factory=_resolve(self.bridge_factory, "agents.bridges.registry.create_bridge"),
                    vad_batcher=self.vad_batcher or shared_vad_batcher(),
                )
            except Exception:
                logger.exception("cannot build call session", extra={"transport": self.transport})
                await self.close(code=CLOSE_SERVER_ERROR)
                return
            # Starts the provider connection now, in parallel with the
            # carrier's handshake and `start` message.
            session.prepare()
        session.attach(self)
        self.session = session
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.session is not None:
            await self.session.transport_closed()


class TwilioMediaConsumer(MediaStreamConsumer):
    transport = "twilio"


class PlivoMediaConsumer(MediaStreamConsumer):
    transport = "plivo"


class WebMediaConsumer(MediaStreamConsumer):
    """Browser microphone calls ("talk to this agent"): PCM16 binary frames.

    Besides the per-call token, the upgrade must come from an allowed page
    (`web_origin_allowed`): a token leaked into another site cannot be used
    from a visitor's browser there. Browsers always send `Origin`; other
    clients must set it.
    """

    transport = "web"

    async def connect(self) -> None:
        origin = _header(self.scope, b"origin")
        if not web_origin_allowed(origin):
            logger.warning("web call refused: origin not allowed",
                           extra={"transport": self.transport, "origin": (origin or "")[:200]})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await super().connect()


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def web_origin_allowed(origin: str | None) -> bool:
    """Whether a browser page at `origin` may open a web call: the matching of
    Channels' `OriginValidator` (what `voiceplatform.asgi.browser_socket` uses for
    the other browser sockets) against ALLOWED_HOSTS (the dashboard) plus
    WEB_CALL_ALLOWED_ORIGINS, read per connection so a settings change applies."""
    from django.conf import settings

    validator = OriginValidator(None, [*settings.ALLOWED_HOSTS, *settings.WEB_CALL_ALLOWED_ORIGINS])
    try:
        parsed = urlparse(origin) if origin else None
        if parsed is not None:
            parsed.port  # noqa: B018 (raises for a port that is not a number)
        return validator.valid_origin(parsed)
    except ValueError:  # e.g. "http://[::1" or a non-numeric port: not a page we serve
        return False


async def prepare_call_session(call_public_id: str, transport: str) -> CallSession:
    """Open the provider session before the stream arrives (called by the webhook
    or the outbound dialer in this process); the consumer picks it up.

    Must run on the server's event loop: from a sync Django view use
    `asgiref.sync.async_to_sync(prepare_call_session)(call_id, "twilio")`, which
    schedules it back onto the loop that serves the sockets. A stream that never
    comes ends the session after `SessionContext.stream_wait_s`."""
    return prepared_sessions.prepare(
        call_public_id,
        transport,
        load_context=import_string(DEFAULT_CONTEXT_LOADER),
        on_finish=import_string(DEFAULT_ON_FINISH),
        vad_batcher=shared_vad_batcher(),
    )
