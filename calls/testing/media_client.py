"""A carrier media-stream client for tests: acts as Twilio's or Plivo's side of a
bidirectional media stream against a real server URL.

    async with CarrierMediaClient.twilio(url, parameters={"token": t}) as call:
        # (a `calls.testing.media_server.StreamUrl` brings its own token)
        await call.play(mulaw_audio)          # caller speaks (paced, 20 ms frames)
        await call.wait_for_audio(ms=500)     # agent audio arrived
        await call.send_dtmf("5")
        await call.hang_up()                  # `stop` + close (Plivo: close)

What it does, as protocols.md §1.2–1.3 / §2.2–2.3 / §8 describe the carriers:
- Twilio: `connected`, then `start` (streamSid, callSid, customParameters,
  µ-law 8 kHz); Plivo: `start` first (numeric sequenceNumber, extra_headers).
- One 160-byte µ-law `media` message every 20 ms on an absolute clock: queued
  caller audio first, µ-law silence otherwise. Plivo may instead be asked for
  linear PCM (`l16_rate=16000`: `<Stream contentType="audio/x-l16;rate=16000">`),
  then frames are 640 bytes of PCM16 and agent audio is PCM16 too.
- Models playback of received agent audio (8 bytes per ms); a `mark`
  (`checkpoint`) is echoed (`playedStream`) when the audio queued before it
  has "played"; `clear` (`clearAudio`) empties the playback queue — Twilio
  then returns pending marks at once, Plivo answers `clearedAudio`.
- Records everything: audio received, audio actually played, clears (with how
  much had played when they came), marks, DTMF the server sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from calls.audio.mulaw import MULAW_SILENCE

FRAME_S = 0.020


@dataclass
class ClearRecord:
    at: float
    played_bytes: int  # total agent bytes played when the clear arrived
    dropped_bytes: int  # queued agent bytes the clear discarded


@dataclass
class ClientLog:
    received: bytearray = field(default_factory=bytearray)
    played_bytes: int = 0
    clears: list[ClearRecord] = field(default_factory=list)
    marks_received: list[str] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    dtmf_received: list[str] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)
    first_audio_at: float | None = None
    close_code: int | None = None


class CarrierMediaClient:
    def __init__(
        self,
        url: str,
        carrier: str,
        *,
        parameters: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        send_connected: bool | None = None,
        l16_rate: int | None = None,
    ) -> None:
        if carrier not in ("twilio", "plivo"):
            raise ValueError(f"carrier must be 'twilio' or 'plivo', got {carrier!r}")
        if l16_rate is not None and (carrier != "plivo" or l16_rate not in (8000, 16000)):
            raise ValueError("linear PCM streams are Plivo's audio/x-l16 at 8000 or 16000 Hz")
        # Plivo's <Stream contentType="audio/x-l16;rate=…">: PCM16 both ways
        self.l16_rate = l16_rate
        self.bytes_per_ms = l16_rate * 2 / 1000 if l16_rate else 8.0
        self.frame_bytes = int(self.bytes_per_ms * 20)
        self.silence_byte = 0 if l16_rate else MULAW_SILENCE
        self.carrier = carrier
        self.parameters = dict(parameters or {})
        # The token goes in `start` (customParameters / extra_headers), never in the URL.
        if "token" not in self.parameters and getattr(url, "token", ""):
            self.parameters["token"] = url.token  # type: ignore[attr-defined]
        self.url = str(url)
        self.headers = dict(headers or {})
        self.send_connected = carrier == "twilio" if send_connected is None else send_connected
        self.stream_id = ("MZ" + uuid.uuid4().hex) if carrier == "twilio" else str(uuid.uuid4())
        self.call_id = ("CA" + uuid.uuid4().hex) if carrier == "twilio" else str(uuid.uuid4())
        self.log = ClientLog()
        self._ws: ClientConnection | None = None
        self._seq = 0
        self._chunk = 0
        self._outgoing = bytearray()
        self._outgoing_drained = asyncio.Event()  # set while _outgoing is empty
        self._outgoing_drained.set()
        self._playback_end = 0.0  # monotonic time the modelled playback queue drains
        self._queued_bytes = 0  # bytes in the modelled playback queue at _playback_end reference
        self._dropped_bytes = 0  # agent bytes clears discarded unplayed
        self._pending_marks: list[tuple[float, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._stream_started_at = 0.0
        self.stopped = False
        self.media_paused = False

    @classmethod
    def twilio(cls, url: str, **kwargs: Any) -> CarrierMediaClient:
        return cls(url, "twilio", **kwargs)

    @classmethod
    def plivo(cls, url: str, **kwargs: Any) -> CarrierMediaClient:
        return cls(url, "plivo", **kwargs)

    # ----------------------------------------------------------- lifecycle

    async def __aenter__(self) -> CarrierMediaClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self._ws = await connect(self.url, additional_headers=self.headers, max_size=None, compression=None)
        if self.send_connected:
            await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(self._start_message())
        self._stream_started_at = time.monotonic()
        self._tasks = [asyncio.create_task(self._pace()), asyncio.create_task(self._receive())]

    async def hang_up(self) -> None:
        """Caller hangs up: Twilio sends `stop` then closes; Plivo just closes."""
        if self.stopped:
            return
        self.stopped = True
        if self.carrier == "twilio" and self._ws is not None:
            try:
                await self._send({"event": "stop", "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_id}})
            except ConnectionClosed:
                pass
        await self.close()

    async def close(self) -> None:
        self.stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, ConnectionClosed):
                pass
        if self._ws is not None:
            await self._ws.close()
            if self.log.close_code is None:
                self.log.close_code = self._ws.close_code
        self._closed.set()

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the socket; returns the close code."""
        assert self._ws is not None
        await asyncio.wait_for(self._ws.wait_closed(), timeout)
        self.log.close_code = self._ws.close_code
        return self._ws.close_code

    # ------------------------------------------------------------- caller

    async def play(self, mulaw: bytes) -> None:
        """Queue caller audio; it goes out in 20 ms frames ahead of silence."""
        self._outgoing.extend(mulaw)
        if self._outgoing:
            self._outgoing_drained.clear()

    def pause_media(self, paused: bool = True) -> None:
        """Stop (or resume) sending media frames while keeping the socket open,
        like a carrier whose media path broke."""
        self.media_paused = paused

    @property
    def frames_sent(self) -> int:
        """Media frames sent so far (caller audio and the silence between it)."""
        return self._chunk

    def caller_audio_pending_ms(self) -> float:
        return len(self._outgoing) / self.bytes_per_ms

    async def wait_caller_audio_sent(self, timeout: float = 30.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outgoing_drained.wait(), timeout)

    async def send_dtmf(self, digit: str) -> None:
        if self.carrier == "twilio":
            await self._send({"event": "dtmf", "streamSid": self.stream_id,
                              "dtmf": {"track": "inbound_track", "digit": digit}})
        else:
            await self._send({"event": "dtmf", "streamId": self.stream_id, "dtmf": {"digit": digit}})

    async def send_raw(self, text: str) -> None:
        assert self._ws is not None
        await self._ws.send(text)

    # -------------------------------------------------------------- agent

    def queued_playback_ms(self) -> float:
        return max(0.0, self._playback_end - time.monotonic()) * 1000

    def played_ms(self) -> float:
        """Agent audio the modelled playback has played so far: the caller heard it."""
        return (len(self.log.received) - self._dropped_bytes) / self.bytes_per_ms - self.queued_playback_ms()

    def heard_out(self) -> bool:
        """All agent audio received has played, and every mark was echoed (the server knows)."""
        return self.queued_playback_ms() == 0 and len(self.log.marks_echoed) == len(self.log.marks_received)

    async def wait_for_audio(self, ms: float, timeout: float = 20.0) -> None:
        """Until at least `ms` of agent audio has been received."""
        deadline = time.monotonic() + timeout
        while len(self.log.received) < ms * self.bytes_per_ms:
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {len(self.log.received) / self.bytes_per_ms:.0f} ms of agent audio, wanted {ms:.0f} ms")
            await asyncio.sleep(0.01)

    async def wait_until(self, predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    # ----------------------------------------------------------- internals

    def _start_message(self) -> dict[str, Any]:
        self._seq += 1
        if self.carrier == "twilio":
            return {
                "event": "start", "sequenceNumber": str(self._seq), "streamSid": self.stream_id,
                "start": {
                    "accountSid": "AC" + "0" * 32, "streamSid": self.stream_id, "callSid": self.call_id,
                    "tracks": ["inbound"], "customParameters": self.parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        return {
            "event": "start", "sequenceNumber": self._seq,
            "start": {"callId": self.call_id, "streamId": self.stream_id, "accountId": "MA" + "0" * 18,
                      "tracks": ["inbound"],
                      "mediaFormat": ({"encoding": "audio/x-l16", "sampleRate": self.l16_rate} if self.l16_rate
                                      else {"encoding": "audio/x-mulaw", "sampleRate": 8000})},
            "extra_headers": ",".join(f"{k}={v}" for k, v in self.parameters.items()),
        }

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        if message.get("event") != "start" and "sequenceNumber" not in message:
            self._seq += 1
            message["sequenceNumber"] = str(self._seq) if self.carrier == "twilio" else self._seq
        await self._ws.send(json.dumps(message))

    async def _pace(self) -> None:
        start = time.monotonic()
        n = 0
        fb = self.frame_bytes
        silence = bytes([self.silence_byte]) * fb
        while not self.stopped:
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.monotonic()))
            if self.media_paused:
                await self._flush_marks()
                continue
            if self._outgoing:
                frame = bytes(self._outgoing[:fb]).ljust(fb, bytes([self.silence_byte]))
                del self._outgoing[:fb]
                if not self._outgoing:
                    self._outgoing_drained.set()
            else:
                frame = silence
            self._chunk += 1
            media: dict[str, Any] = {"track": "inbound", "payload": base64.b64encode(frame).decode()}
            if self.carrier == "twilio":
                media.update(chunk=str(self._chunk), timestamp=str(int((time.monotonic() - start) * 1000)))
                msg = {"event": "media", "streamSid": self.stream_id, "media": media}
            else:
                media.update(chunk=self._chunk, timestamp=str(int(time.time() * 1000)))
                msg = {"event": "media", "streamId": self.stream_id, "media": media}
            try:
                await self._send(msg)
            except ConnectionClosed:
                return
            await self._flush_marks()

    async def _flush_marks(self) -> None:
        now = time.monotonic()
        due = [name for at, name in self._pending_marks if at <= now]
        if not due:
            return
        self._pending_marks = [(at, name) for at, name in self._pending_marks if at > now]
        for name in due:
            await self._echo_mark(name)

    async def _echo_mark(self, name: str) -> None:
        self.log.marks_echoed.append(name)
        if self.carrier == "twilio":
            await self._send({"event": "mark", "streamSid": self.stream_id, "mark": {"name": name}})
        else:
            await self._send({"event": "playedStream", "streamId": self.stream_id, "name": name})

    async def _receive(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            msg = json.loads(raw)
            event = msg.get("event")
            now = time.monotonic()
            if event in ("media", "playAudio"):
                audio = base64.b64decode(msg["media"]["payload"])
                if self.log.first_audio_at is None:
                    self.log.first_audio_at = now
                self.log.received.extend(audio)
                self._playback_end = max(now, self._playback_end) + len(audio) / self.bytes_per_ms / 1000
            elif event in ("mark", "checkpoint"):
                name = msg["mark"]["name"] if event == "mark" else msg["name"]
                self.log.marks_received.append(name)
                self._pending_marks.append((max(now, self._playback_end), name))
            elif event in ("clear", "clearAudio"):
                queued = int(max(0.0, self._playback_end - now) * self.bytes_per_ms * 1000)
                self._dropped_bytes += queued
                played = len(self.log.received) - self._dropped_bytes
                self.log.clears.append(ClearRecord(at=now, played_bytes=played, dropped_bytes=queued))
                self._playback_end = now
                pending = [name for _, name in self._pending_marks]
                self._pending_marks = []
                if self.carrier == "twilio":
                    for name in pending:  # Twilio returns pending marks on clear
                        await self._echo_mark(name)
                else:
                    await self._send({"event": "clearedAudio", "streamId": self.stream_id})
            elif event == "sendDTMF":
                self.log.dtmf_received.append(str(msg.get("dtmf", "")))
            else:
                self.log.other.append(msg)
            self.log.played_bytes = len(self.log.received) - self._dropped_bytes - int(
                max(0.0, self._playback_end - now) * self.bytes_per_ms * 1000)
        self.log.close_code = self._ws.close_code
