"""LiveKit rooms as a media transport for the call session.

The agent joins a LiveKit room as a participant with the official ``livekit``
SDK, subscribes to the human participant's microphone, publishes its own audio
track, and drives the *same* `CallSession` as a phone call through the same
seam a carrier socket uses: it feeds the session `StreamStarted`, `MediaIn`,
`MarkPlayed` and `StreamStopped` frames, and is the session's `Transport`
(``send_bytes`` agent audio, ``send_text`` marks and clears).

Contract and reasons:

* Audio format towards the session is PCM16 mono 16 kHz (the codec ``livekit``
  is the browser codec without far-end updates). The room carries 48 kHz; both
  directions go through the project's `StreamResampler` (about 1 ms of group
  delay, stateful, no edge clicks), not the SDK's resampler, so the latency and
  quality figures of ``bench/`` hold for this transport too.
* Marks: LiveKit has no playback acknowledgements, so the transport acks a mark
  when the audio queued before it has left the `AudioSource`'s queue (its
  ``queued_duration`` when the mark was queued). A clear empties the source's
  queue and acks every pending mark at once, as Twilio does after ``clear``, so
  barge-in truncation sees what the human really heard.
* A join the server refuses (a token or room it does not accept) or does not answer
  within the SDK's attempts (``JOIN_ATTEMPT_TIMEOUT_S`` each) ends the session at once
  as ``livekit_join_failed`` with the server's own error, recorded on the timeline
  (``livekit.join_failed``); the call is then failed, not completed. ``on_room_joined`` is
  awaited once the agent is in the room, before its wait for the human's audio (the
  caller's backstop expiry counts from there, so a slow join is not taken for a dead
  agent); ``on_joined`` once the human's audio is in (the caller marks the call connected
  there: a room the human never joins stays unconnected, so its slot expires).
* The session ends (``StreamStopped``, caller_hangup) when the human participant
  leaves; ``room_closed`` when LiveKit removes the agent because the room closed (or
  the agent was removed), ``connection_lost`` when the connection dropped and did not come back within
  ``RECONNECT_WINDOW_S`` (the SDK reconnects by itself meanwhile); the agent leaves the room when the session
  closes the transport. Nothing on the 20 ms path touches Django, the database
  or the Channels layer (this module imports no Django).
* Subscriptions are explicit (``auto_subscribe`` off): the agent subscribes to
  the human's microphone, and to the human's camera only when the agent's
  video setting is on (:class:`VideoSampling`); nobody else's media reaches it.
* Video (``calls.media.video_frames``): frames of the human's camera are
  sampled at the setting's rate by their media timestamps (a frame not due is
  dropped unconverted; a sample that comes due while the previous one is still
  being encoded is dropped too: never a queue), downscaled to the max edge and
  JPEG-encoded in a worker thread, and handed to the session's
  ``send_image``. The audio path never waits for video work, and a provider
  refusing images stops the video forwarder, not the call.
* Tokens are minted with ``livekit-api`` with the narrowest grants: the agent
  may join exactly one room, subscribe, and publish only a microphone track; no
  data, no room administration. A browser participant gets the same, plus
  nothing else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson
from livekit import api, rtc

from agents.bridges.base import ProviderError
from calls.audio.resample import StreamResampler
from calls.media.frames import InboundFrame, MarkPlayed, MediaIn, StreamStarted, StreamStopped
from calls.media.result import END_CONNECTION_LOST, END_JOIN_FAILED, END_ROOM_CLOSED, END_SETUP_ERROR
from calls.media.video_frames import FrameSampler, VideoSampling, encode_jpeg

logger = logging.getLogger(__name__)

ROOM_RATE = 48000
SESSION_RATE = 16000
_ROOM_FRAME = ROOM_RATE // 50  # 20 ms
TOKEN_TTL = dt.timedelta(hours=1)
RECONNECT_WINDOW_S = 8.0
#: each of the SDK's (three) signalling attempts of a join gives up after this long: a server
#: that refuses answers at once; one that never answers must not hold the call for half a minute
JOIN_ATTEMPT_TIMEOUT_S = 3.0
_ROOM_GONE = frozenset({rtc.DisconnectReason.ROOM_DELETED, rtc.DisconnectReason.ROOM_CLOSED,
                        rtc.DisconnectReason.PARTICIPANT_REMOVED})


@dataclass(frozen=True)
class LiveKitServer:
    """Where a LiveKit deployment is and how to sign for it (the org's credential)."""

    url: str
    api_key: str
    api_secret: str

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"LiveKitServer(url={self.url!r}, api_key={self.api_key!r})"


def participant_token(server: LiveKitServer, room: str, identity: str, *, name: str = "",
                      ttl: dt.timedelta = TOKEN_TTL) -> str:
    """A join token for one room: subscribe, publish the microphone only, nothing else."""
    grants = api.VideoGrants(
        room_join=True, room=room, can_subscribe=True, can_publish=True,
        can_publish_data=False, can_publish_sources=["microphone"],
    )
    token = api.AccessToken(server.api_key, server.api_secret).with_identity(identity).with_ttl(ttl)
    if name:
        token = token.with_name(name)
    return token.with_grants(grants).to_jwt()


class SessionPort(Protocol):
    """The part of `CallSession` a transport drives."""

    def attach(self, transport: Any) -> None: ...  # noqa: ANN401 - CallSession takes its Transport protocol

    async def handle_frame(self, frame: InboundFrame) -> None: ...

    async def transport_closed(self) -> None: ...

    async def send_image(self, jpeg: bytes) -> None: ...

    def request_end(self, reason: str, error: str | None = None) -> None: ...

    def record(self, kind: str, **data: Any) -> None: ...  # noqa: ANN401 - timeline event data


class LiveKitTransport:
    """One agent in one LiveKit room for one call session. See module docstring.

    ``human_identity``: the participant whose microphone the agent listens to;
    empty means the first remote participant that publishes audio. ``video``:
    forward the human's camera to the agent (None: never subscribe to it).
    """

    def __init__(self, session: SessionPort, server: LiveKitServer, room: str, identity: str, *,
                 human_identity: str = "", agent_name: str = "", video: VideoSampling | None = None,
                 on_joined: Callable[[], Awaitable[None]] | None = None,
                 on_room_joined: Callable[[], Awaitable[object]] | None = None) -> None:
        self.session = session
        #: awaited once the human's audio is in, before the session starts (the caller's
        #: "socket connected" moment: calls.services.livekit marks the call with it)
        self.on_joined = on_joined
        #: awaited once the agent is in the room, before it waits for the human's audio
        #: (the caller's sign of life: its backstop expiry counts from there)
        self.on_room_joined = on_room_joined
        self.server = server
        self.room_name = room
        self.identity = identity
        self.human_identity = human_identity
        self.agent_name = agent_name
        self.join_attempt_timeout_s = JOIN_ATTEMPT_TIMEOUT_S
        self.room = rtc.Room()
        self.source = rtc.AudioSource(ROOM_RATE, 1)
        self._down = StreamResampler(ROOM_RATE, SESSION_RATE)
        self._up = StreamResampler(SESSION_RATE, ROOM_RATE)
        self._marks: dict[str, asyncio.TimerHandle] = {}
        self._acks: set[asyncio.Task[None]] = set()
        self._human_track: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()
        self._gone = asyncio.Event()
        self._closed = False
        self._disconnected: object = None  # the SDK's DisconnectReason when the room dropped the agent
        #: how long the SDK may try to reconnect before the call ends as connection_lost (the
        #: SDK's own attempts outlast the session's media timeout, which would end it less clearly)
        self.reconnect_window_s = RECONNECT_WINDOW_S
        self._reconnect_deadline: asyncio.TimerHandle | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.video = video
        self._video_task: asyncio.Task[None] | None = None
        #: media timestamps (µs) of the camera frames sent to the agent; frames seen / dropped
        self.images_sent: list[int] = []
        self.video_frames_seen = 0
        self.video_frames_dropped = 0

    # -- room events -----------------------------------------------------------------

    def _is_human(self, participant: rtc.RemoteParticipant) -> bool:
        return not self.human_identity or participant.identity == self.human_identity

    def _wanted(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> bool:
        if not self._is_human(participant):
            return False
        if pub.kind == rtc.TrackKind.KIND_AUDIO:
            return True
        return (self.video is not None and pub.kind == rtc.TrackKind.KIND_VIDEO
                and pub.source == rtc.TrackSource.SOURCE_CAMERA)

    def _on_published(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if self._wanted(pub, participant):
            pub.set_subscribed(True)

    def _on_track(self, track: rtc.Track, pub: rtc.RemoteTrackPublication,
                  participant: rtc.RemoteParticipant) -> None:
        if not self._wanted(pub, participant):
            return
        if track.kind == rtc.TrackKind.KIND_AUDIO and not self._human_track.done():
            self.human_identity = participant.identity
            self._human_track.set_result(track)
        elif track.kind == rtc.TrackKind.KIND_VIDEO and self.video is not None and self._video_task is None:
            self._video_task = asyncio.ensure_future(self._watch(track, self.video))

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        # while the agent's own connection is down, the SDK drops every remote participant:
        # that is not the human leaving (the reconnection, or its failure, decides)
        if participant.identity == self.human_identity and \
                self.room.connection_state == rtc.ConnectionState.CONN_CONNECTED:
            self._gone.set()

    def _on_reconnecting(self) -> None:
        if self._reconnect_deadline is None:
            loop = asyncio.get_running_loop()
            self._reconnect_deadline = loop.call_later(self.reconnect_window_s, self._on_disconnected)

    def _on_reconnected(self) -> None:
        if self._reconnect_deadline is not None:
            self._reconnect_deadline.cancel()
            self._reconnect_deadline = None

    def _on_disconnected(self, reason: object = None) -> None:
        self._disconnected = reason if reason is not None else rtc.DisconnectReason.UNKNOWN_REASON
        self._gone.set()

    # -- run -------------------------------------------------------------------------

    async def run(self, *, join_timeout_s: float = 30.0) -> None:
        """Join, wait for the human's audio, run the session until the human leaves."""
        self.room.on("track_published", self._on_published)
        self.room.on("track_subscribed", self._on_track)
        self.room.on("participant_disconnected", self._on_left)
        self.room.on("disconnected", self._on_disconnected)
        self.room.on("reconnecting", self._on_reconnecting)
        self.room.on("reconnected", self._on_reconnected)
        token = participant_token(self.server, self.room_name, self.identity, name=self.agent_name)
        try:
            # a room that cannot be joined, or a human who never publishes, is a setup error
            try:
                await self.room.connect(self.server.url, token, rtc.RoomOptions(
                    auto_subscribe=False, connect_timeout=self.join_attempt_timeout_s))
            except rtc.ConnectError as exc:
                error = f"could not join LiveKit room {self.room_name}: {exc.message}".strip()
                self.session.record("livekit.join_failed", room=self.room_name, error=error[:500])
                self.session.request_end(END_JOIN_FAILED, error=error)
                return
            if self.on_room_joined is not None:
                await self.on_room_joined()
            for participant in self.room.remote_participants.values():
                for pub in participant.track_publications.values():
                    self._on_published(pub, participant)
            try:
                track = await asyncio.wait_for(self._human_track, join_timeout_s)
            except TimeoutError:
                self.session.request_end(END_SETUP_ERROR, error=f"{self.human_identity or 'no participant'} "
                                         f"published no audio in room {self.room_name} within {join_timeout_s:g} s")
                return
            if self.on_joined is not None:
                await self.on_joined()
            local = rtc.LocalAudioTrack.create_audio_track("agent-voice", self.source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await self.room.local_participant.publish_track(local, options)
            self.session.attach(self)
            await self.session.handle_frame(StreamStarted(
                stream_id=self.room.name or self.room_name, encoding="pcm16", sample_rate=SESSION_RATE,
                parameters={"room": self.room_name, "participant": self.human_identity, "agent": self.identity},
            ))
            listen = asyncio.ensure_future(self._listen(track))
            await self._gone.wait()
            listen.cancel()
            if self._video_task is not None:
                self._video_task.cancel()
            if not self._closed and self._disconnected is not None:
                # the room closed (deleted by its owner, or emptied) or the connection dropped
                # and LiveKit's reconnection window passed: not the human hanging up
                closed = self._disconnected in _ROOM_GONE
                self.session.request_end(END_ROOM_CLOSED if closed else END_CONNECTION_LOST)
            elif not self._closed:
                await self.session.handle_frame(StreamStopped(reason="participant_left"))
        finally:
            await self.session.transport_closed()
            await self._leave()

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=ROOM_RATE, num_channels=1)
        try:
            async for event in stream:
                pcm = np.frombuffer(event.frame.data, dtype=np.int16)
                self.frames_in += 1
                await self.session.handle_frame(MediaIn(audio=self._down.process_array(pcm).tobytes()))
        finally:
            await stream.aclose()

    async def _watch(self, track: rtc.Track, video: VideoSampling) -> None:
        """Sample the human's camera at ``video.fps`` and show the frames to the agent (see module docstring)."""
        stream = rtc.VideoStream(track, capacity=1)  # the SDK keeps only the newest frame
        encoding: asyncio.Future[bytes] | None = None
        sampler = FrameSampler(video.fps)
        loop = asyncio.get_running_loop()
        try:
            async for event in stream:
                self.video_frames_seen += 1
                # the frame's capture time (µs); a frame without one is stamped on arrival
                ts = event.timestamp_us or int(loop.time() * 1_000_000)
                if not sampler.due(ts):
                    continue  # not due: dropped before any conversion
                if encoding is not None and not encoding.done():
                    self.video_frames_dropped += 1  # the last sample is still encoding: drop, never queue
                    continue
                sampler.take(ts)
                encoding = asyncio.ensure_future(asyncio.to_thread(encode_jpeg, event.frame, video.max_edge))
                encoding.add_done_callback(functools.partial(self._show, timestamp_us=ts))
        finally:
            await stream.aclose()

    def _show(self, done: asyncio.Future[bytes], *, timestamp_us: int) -> None:
        if done.cancelled() or self._closed:
            return
        if (error := done.exception()) is not None:
            logger.warning("livekit video frame could not be encoded: %s", type(error).__name__)
            return
        self.images_sent.append(timestamp_us)
        task = asyncio.ensure_future(self._send_image(done.result()))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _send_image(self, jpeg: bytes) -> None:
        try:
            await self.session.send_image(jpeg)
        except ProviderError as exc:
            if exc.retryable:  # the provider is reconnecting: this frame is lost, the next one may pass
                self.video_frames_dropped += 1
                return
            # a provider refusing images stops video, never the call
            logger.warning("livekit video forwarding stopped: %s (%s)", exc.code, exc.provider)
            if self._video_task is not None:
                self._video_task.cancel()

    # -- the session's Transport -------------------------------------------------------

    async def send_bytes(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionError("the agent left the LiveKit room")
        samples = self._up.process_array(np.frombuffer(data, dtype="<i2"))
        for start in range(0, len(samples), _ROOM_FRAME):
            chunk = samples[start:start + _ROOM_FRAME]
            frame = rtc.AudioFrame(chunk.tobytes(), ROOM_RATE, 1, len(chunk))
            await self.source.capture_frame(frame)
            self.frames_out += 1

    async def send_text(self, text: str) -> None:
        message = orjson.loads(text)
        event = message.get("event")
        if event == "mark":
            name = str(message["name"])
            loop = asyncio.get_running_loop()
            self._marks[name] = loop.call_later(self.source.queued_duration, self._ack, name)
        elif event == "clear":
            self.source.clear_queue()
            self._up.reset()
            for name, handle in list(self._marks.items()):
                handle.cancel()
                self._ack(name)

    def _ack(self, name: str) -> None:
        if self._marks.pop(name, None) is not None and not self._closed:
            task = asyncio.ensure_future(self.session.handle_frame(MarkPlayed(name=name)))
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)

    async def close(self, code: int = 1000) -> None:
        self._gone.set()
        self._closed = True

    async def _leave(self) -> None:
        self._closed = True
        self._on_reconnected()  # no deadline outlives the call
        for handle in self._marks.values():
            handle.cancel()
        self._marks.clear()
        await self.room.disconnect()
        await self.source.aclose()
