"""A fake LiveKit server for the official ``livekit`` (rtc, Rust FFI) SDK.

Contract (what the real SDK 1.2 needs, found by running it against this):

* Signalling: the SDK opens ``ws://HOST/rtc/v1?join_request=…``, a base64url
  ``WrappedJoinRequest`` (gzip-compressed ``JoinRequest``) that already carries
  the client's *publisher offer*: LiveKit's single-peer-connection mode
  (``client_protocol`` 2), one ``RTCPeerConnection`` for both directions with
  three audio and three video ``recvonly`` transceivers plus the data channel.
  Messages on the socket are binary protobuf ``SignalRequest`` /
  ``SignalResponse`` from ``livekit-protocol``.
* The server answers with ``JoinResponse`` (room, the agent's participant, the
  human already in the room with one published microphone track) and then an
  ``answer`` whose ``mid_to_track_id`` maps the first audio mid to the human's
  track sid; the SDK then emits ``track_subscribed`` for it.
* Trickled ICE candidates (``TrickleRequest.candidateInit``, JSON) are added to
  the server peer; the server's own candidates are in its SDP (aiortc gathers
  before answering), so it never trickles.
* ``AddTrackRequest`` → ``TrackPublishedResponse``; the SDK renegotiates with an
  ``offer`` that adds a ``sendonly`` audio section; the server answers.
* ``ping_req`` → ``pong_resp``; ``leave`` closes the peer.
* :meth:`close_room` drops every connection and refuses new ones (the SDK's
  reconnection attempts fail and it reports the room disconnected).

The server-side WebRTC peer is ``aiortc`` (ICE on loopback, DTLS, SRTP, Opus),
so the audio really goes through Opus at 48 kHz both ways, as with a real
LiveKit SFU. The "human" is simulated by the server: :meth:`say` queues 48 kHz
PCM16 mono that the human's microphone track sends (silence otherwise),
:meth:`heard` returns what the agent's published track delivered, decoded, and
:meth:`human_leaves` announces the human's departure (``ParticipantUpdate`` with
state DISCONNECTED), as LiveKit does when a browser tab closes.

Access tokens are verified with ``livekit-api``'s ``TokenVerifier`` against the
fake's key and secret; the claims of every join are kept in :attr:`joins` so
tests can check the grants an agent asked for.

Browser relay (``relay_browser=True``, for the "talk to this agent" page's
livekit-client): a join whose ``ClientInfo.sdk`` is JS is the human, a real
browser, not the simulated one. livekit-client 2.x in Chromium joins the same way
(``/rtc/v1``, publisher offer in the join, one peer connection). The fake
announces to it an agent participant (``PA_agent``, one microphone track) and
sends it, on that track, what the agent's published track delivered; the
browser's microphone is relayed into the simulated human's microphone, so the
agent hears the browser. The agent's join waits for the browser's (so the human
identity the agent is told is the browser's); ``room=None`` accepts the room the
first token names. When the browser leaves, the agents are told the human left;
when the agent leaves, the browser is told the agent left.

With ``camera=True`` the human also publishes a camera track (the first video
mid of the answer maps to it): :class:`HumanCamera`, an aiortc video track
sending a generated colour pattern (VP8 over SRTP, as a browser would).

Not modelled: more than one subscriber, simulcast, data packets, reconnection,
room-level webhooks.
"""

from __future__ import annotations

import asyncio
import base64
import fractions
import gzip
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp
from livekit import api as lkapi
from livekit.api.access_token import Claims
from livekit.protocol import models, rtc
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
HUMAN_SID = "PA_human"
HUMAN_TRACK_SID = "TR_human_mic"
AGENT_SID = "PA_agent"
AGENT_TRACK_SID = "TR_agent_mic"
HUMAN_CAMERA_SID = "TR_human_cam"


class HumanMicrophone(MediaStreamTrack):
    """The simulated human's microphone: queued PCM, then silence, paced at 20 ms."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self._lock = threading.Lock()
        self._pts = 0
        self._start: float | None = None
        #: (monotonic time handed to the encoder, offset of that frame's first sample)
        self.sent_at: list[tuple[float, int]] = []

    def queue(self, pcm: bytes) -> None:
        with self._lock:
            self._pending += pcm

    async def recv(self) -> av.AudioFrame:
        # real-time pacing of a media source, as a microphone delivers frames
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        with self._lock:
            chunk = bytes(self._pending[: FRAME * 2])
            del self._pending[: FRAME * 2]
        samples = np.zeros(FRAME, dtype=np.int16)
        if chunk:
            samples[: len(chunk) // 2] = np.frombuffer(chunk, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent_at.append((time.monotonic(), self._pts))
        self._pts += FRAME
        return frame


class HumanCamera(VideoStreamTrack):
    """The simulated human's camera: a colour pattern (four quadrants, a moving bar) at ``fps``."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 10) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.sent = 0

    async def next_timestamp(self) -> tuple[int, fractions.Fraction]:
        # the base class paces at 30 fps; a camera at `fps` is enough here and cheaper to encode
        if self.sent:
            wait = self._start + self.sent / self.fps - time.time()  # type: ignore[has-type]
            await asyncio.sleep(max(0.0, wait))
        else:
            self._start = time.time()
        return int(self.sent * VIDEO_CLOCK_RATE / self.fps), VIDEO_TIME_BASE

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        h, w = self.height, self.width
        image = np.zeros((h, w, 3), dtype=np.uint8)
        image[: h // 2, : w // 2] = (220, 40, 40)
        image[: h // 2, w // 2:] = (40, 200, 40)
        image[h // 2:, : w // 2] = (40, 40, 220)
        image[h // 2:, w // 2:] = (230, 230, 230)
        bar = (self.sent * 8) % w
        image[:, bar:bar + 8] = 0
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


@dataclass
class _Peer:
    ws: ServerConnection
    pc: RTCPeerConnection
    identity: str
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    browser: bool = False
    mids: dict[str, str] = field(default_factory=dict)  # answer mid → track sid (mid_to_track_id)


async def _decoded(track: MediaStreamTrack) -> AsyncIterator[bytes]:
    """A received audio track's frames as PCM16 (first channel, 48 kHz), until it ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        assert isinstance(frame, av.AudioFrame)
        samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
        yield samples.astype(np.int16).tobytes()


def parse_join_request(path: str) -> rtc.JoinRequest:
    """The ``JoinRequest`` the SDK packs into the ``join_request`` query parameter."""
    query = parse_qs(urlsplit(path).query)
    raw = query["join_request"][0]
    wrapped = rtc.WrappedJoinRequest()
    wrapped.ParseFromString(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    data = gzip.decompress(wrapped.join_request) if wrapped.compression else wrapped.join_request
    join = rtc.JoinRequest()
    join.ParseFromString(data)
    return join


class FakeLiveKitServer:
    """See module docstring. Runs its own event loop in a thread; use as a context manager."""

    def __init__(self, *, room: str | None = "room-1", human_identity: str = "human-1",
                 api_key: str = "APIfake", api_secret: str = "fake-secret-" + "x" * 32,
                 relay_browser: bool = False, camera: bool = False) -> None:
        self.room = room
        self.relay_browser = relay_browser
        #: what the agent said, for the browser (relay mode)
        self.agent_voice = HumanMicrophone()
        #: PCM16 48 kHz frames relayed from the browser's microphone (relay mode)
        self.browser_frames = 0
        self._browser_joined = asyncio.Event()
        self.human_identity = human_identity
        self.api_key = api_key
        self.api_secret = api_secret
        self.port = 0
        self.joins: list[Claims] = []
        self.requests: list[str] = []  # SignalRequest kinds, in order
        self.published: list[rtc.AddTrackRequest] = []
        self.subscriptions: list[rtc.UpdateSubscription] = []  # the agent's explicit (un)subscribes
        self.microphone = HumanMicrophone()
        self.camera = HumanCamera() if camera else None
        self._heard = bytearray()
        #: (monotonic arrival time, offset in :meth:`heard` of that frame's first sample)
        self.heard_at: list[tuple[float, int]] = []
        self._heard_lock = threading.Lock()
        #: set once the agent's published audio track is negotiated (the renegotiation that adds it
        #: answered): audio the agent sends from then on reaches :meth:`heard`. A test's provider
        #: script holds its greeting on it (``Until``) so the greeting is not spoken into a track
        #: that does not flow yet, which a busy machine can make last longer than the greeting.
        self.agent_track_answered = threading.Event()
        self._peers: list[_Peer] = []
        self.refusing = False
        #: (HTTP status, message): every join is refused at the WebSocket upgrade, as LiveKit
        #: refuses a token it does not accept or a room it will not open (see :meth:`refuse_joins`)
        self.refusal: tuple[int, str] | None = None
        #: paths of the requests refused that way (joins, and the SDK's ``/rtc/validate`` look-ups)
        self.refused: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeLiveKitServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def start() -> None:
                self._server = await serve(self._handle, "127.0.0.1", 0, max_size=None,
                                           process_request=self._refuse)
                self.port = next(iter(self._server.sockets)).getsockname()[1]

            loop.run_until_complete(start())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-livekit", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is None:
            return

        async def stop() -> None:
            for peer in list(self._peers):
                await self._close_peer(peer)
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- test API ------------------------------------------------------------------

    def say(self, pcm48k: bytes) -> None:
        """Queue PCM16 mono 48 kHz for the human's microphone track."""
        self.microphone.queue(pcm48k)

    def heard(self) -> bytes:
        """What the agent's published track delivered so far: PCM16 mono 48 kHz."""
        with self._heard_lock:
            return bytes(self._heard)

    def human_leaves(self) -> None:
        """Announce the human's departure to every connected agent."""
        left = self._human(models.ParticipantInfo.DISCONNECTED)
        update = rtc.SignalResponse(update=rtc.ParticipantUpdate(participants=[left]))
        data = update.SerializeToString()

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._tell_agents(data), self._loop).result(10)

    async def _tell_agents(self, data: bytes) -> None:
        for peer in list(self._peers):
            if not peer.browser:
                await peer.ws.send(data)

    def close_room(self) -> None:
        """The room is deleted: LiveKit tells every agent to leave (``LeaveRequest``, reason
        ROOM_DELETED, no reconnect), closes their signalling and media, and refuses rejoins."""
        self._drop(announce=True)

    def drop_connection(self) -> None:
        """The connection drops (server gone, network lost) without a word: signalling and
        media close and rejoining is refused, so the SDK's reconnection gives up."""
        self._drop(announce=False)

    def _drop(self, *, announce: bool) -> None:
        self.refusing = True
        leave = rtc.SignalResponse(leave=rtc.LeaveRequest(
            can_reconnect=False, reason=models.DisconnectReason.ROOM_DELETED,
            action=rtc.LeaveRequest.DISCONNECT)).SerializeToString()

        async def drop() -> None:
            for peer in list(self._peers):
                if announce:
                    await peer.ws.send(leave)
                await peer.ws.close(1001, "room closed")
                await self._close_peer(peer)

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(10)

    def refuse_joins(self, status: int = 401, message: str = "invalid token: signature is invalid") -> None:
        """Refuse every join from now on with an HTTP error at the upgrade (LiveKit's answer to
        a token it does not accept, or a room it will not create), and the SDK's validation
        request after it with the same error and message."""
        self.refusal = (status, message)

    def _refuse(self, connection: ServerConnection, request: Any) -> Any:
        if self.refusal is None:
            return None
        self.refused.append(urlsplit(request.path).path)
        status, message = self.refusal
        return connection.respond(status, message + "\n")

    @property
    def connected(self) -> int:
        return len(self._peers)

    # -- server --------------------------------------------------------------------

    def _human(self, state: int) -> models.ParticipantInfo:
        track = models.TrackInfo(
            sid=HUMAN_TRACK_SID, type=models.TrackType.AUDIO, name="microphone",
            source=models.TrackSource.MICROPHONE, mime_type="audio/opus",
        )
        tracks = [track]
        if self.camera is not None:
            tracks.append(models.TrackInfo(
                sid=HUMAN_CAMERA_SID, type=models.TrackType.VIDEO, name="camera", source=models.TrackSource.CAMERA,
                mime_type="video/VP8", width=self.camera.width, height=self.camera.height,
            ))
        return models.ParticipantInfo(
            sid=HUMAN_SID, identity=self.human_identity, state=state,  # type: ignore[arg-type]
            tracks=tracks, is_publisher=True,
        )

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path = ws.request.path
        if self.refusing:
            await ws.close(4004, "room not found")
            return
        try:
            # the SDK sends the token as a bearer header (older ones: ?access_token=)
            bearer = ws.request.headers.get("Authorization", "")
            token = bearer.removeprefix("Bearer ") or parse_qs(urlsplit(path).query).get("access_token", [""])[0]
            claims = lkapi.TokenVerifier(self.api_key, self.api_secret).verify(token)
            join = parse_join_request(path)
        except Exception:  # noqa: BLE001 - any bad join is refused like the server does
            await ws.close(4001, "invalid join")
            return
        grants = claims.video
        if self.room is None and grants is not None:
            self.room = grants.room
        if grants is None or not grants.room_join or grants.room != self.room:
            await ws.close(4003, "token does not grant joining this room")
            return
        if self.relay_browser and join.client_info.sdk == models.ClientInfo.JS:
            await self._serve_browser(ws, claims, join)
            return
        if self.relay_browser:
            try:
                await asyncio.wait_for(self._browser_joined.wait(), 60)
            except TimeoutError:
                await ws.close(4004, "no browser joined the room")
                return
        self.joins.append(claims)
        me = models.ParticipantInfo(sid=f"PA_agent{len(self.joins)}", identity=claims.identity,
                                    state=models.ParticipantInfo.JOINED)
        response = rtc.JoinResponse(
            room=models.Room(sid="RM_fake", name=self.room), participant=me,
            other_participants=[self._human(models.ParticipantInfo.ACTIVE)],
            server_version="1.9.0", ping_interval=5, ping_timeout=15,
        )
        await ws.send(rtc.SignalResponse(join=response).SerializeToString())
        peer = _Peer(ws=ws, pc=RTCPeerConnection(), identity=claims.identity)
        self._peers.append(peer)
        peer.pc.on("track", lambda track: peer.tasks.append(asyncio.ensure_future(self._listen(track))))
        await self._serve(peer, join.publisher_offer)

    async def _serve(self, peer: _Peer, offer: rtc.SessionDescription) -> None:
        """Answer the join's publisher offer, then serve the peer's requests until it leaves."""
        try:
            await self._answer(peer, offer, first=True)
            async for message in peer.ws:
                if isinstance(message, bytes):
                    await self._on_request(peer, message)
        except ConnectionClosed:
            pass
        finally:
            await self._close_peer(peer)

    async def _serve_browser(self, ws: ServerConnection, claims: Claims, join: rtc.JoinRequest) -> None:
        """A real browser joins as the human (relay mode; see the module docstring)."""
        self.human_identity = claims.identity
        self.joins.append(claims)
        grants = claims.video
        assert grants is not None
        # livekit-client checks its permissions (from the token's grants) before publishing
        sources = {"microphone": models.TrackSource.MICROPHONE, "camera": models.TrackSource.CAMERA}
        permission = models.ParticipantPermission(
            can_subscribe=bool(grants.can_subscribe), can_publish=bool(grants.can_publish),
            can_publish_data=bool(grants.can_publish_data),
            can_publish_sources=[sources[s] for s in grants.can_publish_sources or [] if s in sources])
        me = models.ParticipantInfo(sid=HUMAN_SID, identity=claims.identity, state=models.ParticipantInfo.JOINED,
                                    permission=permission)
        response = rtc.JoinResponse(
            room=models.Room(sid="RM_fake", name=self.room), participant=me,
            other_participants=[self._agent(models.ParticipantInfo.ACTIVE)],
            server_version="1.9.0", ping_interval=5, ping_timeout=15,
        )
        await ws.send(rtc.SignalResponse(join=response).SerializeToString())
        peer = _Peer(ws=ws, pc=RTCPeerConnection(), identity=claims.identity, browser=True)
        self._peers.append(peer)
        peer.pc.on("track", lambda track: peer.tasks.append(asyncio.ensure_future(self._relay(track))))
        self._browser_joined.set()
        await self._serve(peer, join.publisher_offer)
        left = rtc.SignalResponse(update=rtc.ParticipantUpdate(
            participants=[self._human(models.ParticipantInfo.DISCONNECTED)]))
        await self._tell_agents(left.SerializeToString())

    def _agent(self, state: int) -> models.ParticipantInfo:
        track = models.TrackInfo(
            sid=AGENT_TRACK_SID, type=models.TrackType.AUDIO, name="agent",
            source=models.TrackSource.MICROPHONE, mime_type="audio/opus",
        )
        return models.ParticipantInfo(
            sid=AGENT_SID, identity="agent", name="Agent", state=state,  # type: ignore[arg-type]
            tracks=[track], is_publisher=True,
        )

    async def _relay(self, track: MediaStreamTrack) -> None:
        """The browser's microphone becomes the simulated human's (first channel, 48 kHz)."""
        async for pcm in _decoded(track):
            self.microphone.queue(pcm)
            self.browser_frames += 1

    async def _answer(self, peer: _Peer, offer: rtc.SessionDescription, *, first: bool = False) -> None:
        await peer.pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        sid, track_sid = (AGENT_SID, AGENT_TRACK_SID) if peer.browser else (HUMAN_SID, HUMAN_TRACK_SID)
        if first:
            transceiver = next(t for t in peer.pc.getTransceivers() if t.kind == "audio")
            transceiver.sender.replaceTrack(self.agent_voice if peer.browser else self.microphone)
            transceiver.direction = "sendonly"
            # msid "<participant sid>|<track sid>", as LiveKit's SFU writes it
            transceiver.sender._stream_id = f"{sid}|{track_sid}"
            transceiver.sender._track_id = track_sid
            peer.mids = {transceiver.mid or "0": track_sid}
            if self.camera is not None and not peer.browser:
                video = next(t for t in peer.pc.getTransceivers() if t.kind == "video")
                video.sender.replaceTrack(self.camera)
                video.direction = "sendonly"
                video.sender._stream_id = f"{HUMAN_SID}|{HUMAN_CAMERA_SID}"
                video.sender._track_id = HUMAN_CAMERA_SID
                peer.mids[video.mid or "1"] = HUMAN_CAMERA_SID
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        answer = rtc.SessionDescription(type="answer", sdp=peer.pc.localDescription.sdp, id=offer.id,
                                        mid_to_track_id=peer.mids)
        await peer.ws.send(rtc.SignalResponse(answer=answer).SerializeToString())
        if not first and not peer.browser and self.published:
            self.agent_track_answered.set()

    async def _on_request(self, peer: _Peer, message: bytes) -> None:
        request = rtc.SignalRequest()
        request.ParseFromString(message)
        kind = request.WhichOneof("message") or ""
        self.requests.append(kind)
        if kind == "trickle":
            init = json.loads(request.trickle.candidateInit)
            if init.get("candidate"):
                candidate = candidate_from_sdp(init["candidate"].split(":", 1)[1])
                candidate.sdpMid = init.get("sdpMid")
                candidate.sdpMLineIndex = init.get("sdpMLineIndex")
                await peer.pc.addIceCandidate(candidate)
        elif kind == "add_track":
            add = request.add_track
            self.published.append(add)
            info = models.TrackInfo(sid=f"TR_agent{len(self.published)}", type=add.type, name=add.name,
                                    source=add.source, mime_type="audio/opus")
            published = rtc.TrackPublishedResponse(cid=add.cid, track=info)
            await peer.ws.send(rtc.SignalResponse(track_published=published).SerializeToString())
        elif kind == "subscription":
            self.subscriptions.append(request.subscription)
        elif kind == "offer":
            await self._answer(peer, request.offer)
        elif kind == "ping_req":
            pong = rtc.Pong(last_ping_timestamp=request.ping_req.timestamp, timestamp=int(time.time() * 1000))
            await peer.ws.send(rtc.SignalResponse(pong_resp=pong).SerializeToString())
        elif kind == "leave":
            await peer.ws.close()

    async def _listen(self, track: MediaStreamTrack) -> None:
        """Decode the agent's published audio into :attr:`heard` (first channel, 48 kHz)."""
        async for pcm in _decoded(track):
            with self._heard_lock:
                self.heard_at.append((time.monotonic(), len(self._heard) // 2))
                self._heard += pcm
            if self.relay_browser:
                self.agent_voice.queue(pcm)

    async def _close_peer(self, peer: _Peer) -> None:
        if peer in self._peers:
            self._peers.remove(peer)
            if self.relay_browser and not peer.browser:  # the agent left: tell the browser
                left = rtc.SignalResponse(update=rtc.ParticipantUpdate(
                    participants=[self._agent(models.ParticipantInfo.DISCONNECTED)]))
                for other in [p for p in self._peers if p.browser]:
                    try:
                        await other.ws.send(left.SerializeToString())
                    except ConnectionClosed:
                        pass
        for task in peer.tasks:
            task.cancel()
        await peer.pc.close()
