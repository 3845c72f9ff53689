"""Channels consumers that terminate media streams: I/O and lifecycle only.

`/ws/twilio/<call_id>`, `/ws/plivo/<call_id>`, `/ws/web/<call_id>`. The URL carries
no secret: servers log request paths (uvicorn and Daphne at INFO), so the call's
stream token arrives inside the stream, in the first `start` message (Twilio
`customParameters.token`, Plivo `extra_headers` `token=…`, the browser's
`{"event": "start", "token": …}`). A URL that still carries a token (a path
segment or `?token=`) is refused at the upgrade.

The socket is accepted, then nothing reaches a call session until `start` has
been authenticated: `claim(call_id, token, transport, claim_id)`
(`calls.services.streams.claim_stream`) checks the token and takes the call's one stream
claim, in the database, so it holds across `web` processes. Only then is a
session taken (one prepared while the phone rang, `calls.media.registry`) or
built. A second socket with the same token while the first lives is closed with
4403 and recorded on the call's timeline; the first is not touched. The claim is
a lease renewed every `STREAM_CLAIM_RENEW_S` off the audio path and released when
the session has ended (recording and result stored), so a later socket with a
valid token may connect again; if the process dies the lease simply lapses. A
socket that sends no `start` within `START_TIMEOUT_S` (or too many messages
before it) is closed with 4403.

Two deliberate departures from a stock `AsyncWebsocketConsumer`, both for the
20 ms hot path (measured in bench/RESULTS.md):
- no Channels layer: media sockets never join Redis (frames must not go
  through it, and a per-socket layer receive loop costs a Redis round trip
  stream per call);
- no `aclose_old_connections()` per message: stock `dispatch` hops to a
  thread for every frame to close stale DB connections, but nothing on the
  media path uses the database; `connect` (which does) still gets it.

Dependencies are injected with `as_asgi(...)` keyword arguments; by default they
are resolved lazily from `calls.services`: `streams.claim_stream`,
`streams.renew_stream_claim`, `streams.release_stream_claim`,
`session.load_session_context`, `lifecycle.record_session_result`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import uuid
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

from channels.db import aclose_old_connections
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.utils.module_loading import import_string

from calls.audio.vad import VadBatcher
from calls.media.codecs import TransportCodec, codec_for
from calls.media.drain import PROCESS_TAG, live_sessions
from calls.media.frames import FrameError, StreamStarted
from calls.media.registry import SessionRegistry, prepared_sessions
from calls.media.result import (
    END_INTERNAL_ERROR,
    STREAM_GRANTED,
    ContextLoader,
    FinishCallback,
    StreamClaimer,
    StreamClaimReleaser,
    StreamClaimRenewer,
)
from calls.media.session import BridgeFactory, CallSession

logger = logging.getLogger("calls.media")

DEFAULT_CLAIM = "calls.services.streams.claim_stream"
DEFAULT_RENEW_CLAIM = "calls.services.streams.renew_stream_claim"
DEFAULT_RELEASE_CLAIM = "calls.services.streams.release_stream_claim"
DEFAULT_CONTEXT_LOADER = "calls.services.session.load_session_context"
DEFAULT_ON_FINISH = "calls.services.lifecycle.record_session_result"

# Sent before accept, a close code becomes an HTTP 403 on the upgrade; after it,
# the client sees the code itself.
CLOSE_FORBIDDEN = 4403
CLOSE_SERVER_ERROR = 1011

# Carriers send `start` at once (Twilio after `connected`); the browser sends it
# on open. Anything slower, or chattier, is not a stream we serve.
START_TIMEOUT_S = 10.0
MAX_MESSAGES_BEFORE_START = 50
# Well inside calls.services.streams.STREAM_CLAIM_LEASE (30 s).
STREAM_CLAIM_RENEW_S = 10.0

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


def _same_call(claimed: str, call_id: str) -> bool:
    # Plivo's extraHeaders carry the id without dashes; uuid.UUID reads both forms.
    try:
        return uuid.UUID(claimed) == uuid.UUID(call_id)
    except ValueError:
        return claimed == call_id


class MediaStreamConsumer(AsyncWebsocketConsumer):
    transport: ClassVar[str] = ""

    # Injected through as_asgi(**initkwargs); None = resolve from calls.services.
    claim: StreamClaimer | None = None
    renew_claim: StreamClaimRenewer | None = None
    release_claim: StreamClaimReleaser | None = None
    load_context: ContextLoader | None = None
    on_finish: FinishCallback | None = None
    bridge_factory: BridgeFactory | None = None
    vad_batcher: VadBatcher | None = None
    sessions: SessionRegistry = prepared_sessions

    _INJECTABLE = frozenset({"claim", "renew_claim", "release_claim", "load_context", "on_finish",
                             "bridge_factory", "vad_batcher", "sessions"})

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
        self.call_id = ""
        self._codec: TransportCodec | None = None
        self._messages_before_start = 0
        self._authenticating = False
        self._refused = False
        self._socket_gone = False
        self._start_timer: asyncio.TimerHandle | None = None
        self._claim_id: str | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._refuse_task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

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
                        await self._before_start(message)
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
            try:
                if self.session is not None:
                    self.session.request_end(END_INTERNAL_ERROR, error=f"{exc.__class__.__name__}: {exc}"[:500])
                    await self.session.wait()
            finally:
                await self._release()
            raise

    # --------------------------------------------------------------- Transport

    async def send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self.base_send({"type": "websocket.send", "bytes": data})

    # --------------------------------------------------------------- lifecycle

    def _token_in_url(self) -> bool:
        if self.scope.get("url_route", {}).get("kwargs", {}).get("extra"):
            return True
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return "token" in query

    async def connect(self) -> None:
        self.call_id = str(self.scope["url_route"]["kwargs"]["call_id"])
        self._codec = codec_for(self.transport)
        if self._token_in_url():
            # The token is in some access log now; it must not also work.
            logger.warning("media stream refused: token in the URL (send it in the start message)",
                           extra={"transport": self.transport, "call": self.call_id})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        self._start_timer = asyncio.get_running_loop().call_later(START_TIMEOUT_S, self._start_timed_out)

    def _start_timed_out(self) -> None:
        self._start_timer = None
        if self.session is None and not self._authenticating and not self._socket_gone:
            self._refuse_task = asyncio.ensure_future(self._refuse("no start message in time"))

    async def _refuse(self, reason: str) -> None:
        if self._refused:
            return
        self._refused = True
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None
        logger.warning("media stream refused", extra={"transport": self.transport, "call": self.call_id,
                                                      "reason": reason})
        if not self._socket_gone:
            await self.close(code=CLOSE_FORBIDDEN)

    async def _before_start(self, message: dict[str, Any]) -> None:
        """A message on a socket that has not authenticated yet: wait for `start`."""
        if self._refused or self._authenticating:
            return
        self._messages_before_start += 1
        if self._messages_before_start > MAX_MESSAGES_BEFORE_START:
            await self._refuse("too many messages before start")
            return
        text = message.get("text")
        if text is None:
            return  # audio before start is dropped, as the session would
        assert self._codec is not None
        try:
            frame = self._codec.parse_text(text)
        except FrameError:
            # Not logged with its text: it may hold the token of a malformed start.
            await self._refuse("unreadable message before start")
            return
        if isinstance(frame, StreamStarted):
            await self._authenticate(frame)

    async def _authenticate(self, frame: StreamStarted) -> None:
        self._authenticating = True
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None
        params = dict(frame.parameters)
        token = params.pop("token", "")
        claimed = params.get("call_id") or params.get("callid") or ""
        if not token or (claimed and not _same_call(claimed, self.call_id)):
            self._authenticating = False
            await self._refuse("no token, or the start names another call")
            return
        claim_id = PROCESS_TAG + secrets.token_hex(12)
        try:
            outcome = await _resolve(self.claim, DEFAULT_CLAIM)(self.call_id, token, self.transport, claim_id)
        except Exception:
            logger.exception("stream authorization failed", extra={"transport": self.transport, "call": self.call_id})
            self._refused = True
            if not self._socket_gone:
                await self.close(code=CLOSE_SERVER_ERROR)
            return
        if outcome != STREAM_GRANTED:
            self._authenticating = False
            await self._refuse(f"stream {outcome}")
            return
        self._claim_id = claim_id
        if self._socket_gone:  # it closed while we looked the token up
            await self._release()
            return
        session = self.sessions.take(self.call_id, self.transport)
        if session is None:
            try:
                session = CallSession(
                    self.call_id,
                    self.transport,
                    load_context=_resolve(self.load_context, DEFAULT_CONTEXT_LOADER),
                    on_finish=_resolve(self.on_finish, DEFAULT_ON_FINISH),
                    bridge_factory=_resolve(self.bridge_factory, "agents.bridges.registry.create_bridge"),
                    vad_batcher=self.vad_batcher or shared_vad_batcher(),
                )
            except Exception:
                logger.exception("cannot build call session", extra={"transport": self.transport})
                await self._release()
                self._refused = True
                await self.close(code=CLOSE_SERVER_ERROR)
                return
            session.prepare()
        session.attach(self)
        live_sessions.track(session)
        self.session = session
        self._authenticating = False
        self._renew_task = asyncio.ensure_future(self._keep_claim(claim_id))
        # The session sees the start without the token (it has no use for it).
        await session.handle_frame(dataclasses.replace(frame, parameters=params))

    async def _keep_claim(self, claim_id: str) -> None:
        renew = _resolve(self.renew_claim, DEFAULT_RENEW_CLAIM)
        while True:
            await asyncio.sleep(STREAM_CLAIM_RENEW_S)
            try:
                held = await renew(self.call_id, claim_id)
            except Exception as exc:  # noqa: BLE001 - the lease outlives a few failed renewals
                logger.warning("stream claim renewal failed", extra={"call": self.call_id, "error": repr(exc)})
                continue
            if not held:
                logger.warning("stream claim lost", extra={"call": self.call_id, "transport": self.transport})
                return

    async def _release(self) -> None:
        claim_id, self._claim_id = self._claim_id, None
        if self._renew_task is not None:
            self._renew_task.cancel()
            self._renew_task = None
        if claim_id is None:
            return
        try:
            await _resolve(self.release_claim, DEFAULT_RELEASE_CLAIM)(self.call_id, claim_id)
        except Exception as exc:  # noqa: BLE001 - the lease lapses on its own
            logger.warning("stream claim release failed", extra={"call": self.call_id, "error": repr(exc)})

    async def disconnect(self, code: int) -> None:
        self._socket_gone = True
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None
        try:
            if self.session is not None:
                # Released only once the session has ended and handed over its
                # result: a new socket must never reopen a recording still in use.
                await self.session.transport_closed()
        finally:
            await self._release()


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
    comes ends the session after `SessionContext.stream_wait_s` — quietly (no hang-up,
    no result) if a socket in another process took the call's stream meanwhile."""
    return prepared_sessions.prepare(
        call_public_id,
        transport,
        load_context=import_string(DEFAULT_CONTEXT_LOADER),
        on_finish=import_string(DEFAULT_ON_FINISH),
        vad_batcher=shared_vad_batcher(),
    )
