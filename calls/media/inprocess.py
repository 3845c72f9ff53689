"""The in-process phone line of a simulated call: one agent `CallSession` and one
simulated caller (a second provider `Bridge`, instructed with a persona) joined in
one event loop, with no carrier and no socket.

Contract:

- The agent runs exactly as on a phone call: the line is the session's `Transport`
  (agent audio, marks, clears, in-band DTMF come back through it) and hands it
  carrier frames directly (`StreamStarted`, 20 ms `MediaIn`, `MarkPlayed`,
  `StreamStopped`) through `CallSession.handle_frame`, the same entry the carrier
  serializers feed. Tools, knowledge, barge-in, silence handling and turn latency are
  the session's own.
- The line behaves like a carrier: it streams one 20 ms caller frame every 20 ms for
  the whole call (the caller's speech, else line silence), plays the agent's audio to
  the caller in real time (so a mark is echoed only once the audio before it has been
  heard, and `clear` drops what was not heard yet), and paces on its clock. Real time
  matters: barge-in and latency are only meaningful if the caller hears the agent at
  the speed a person would.
- The simulated caller hears the agent's audio (converted to its bridge's format) and
  its speech goes to the agent. It ends the call by calling the `hang_up` function
  (declared to it here); the line also hangs up at the scenario's turn or time limit,
  and when the caller's provider fails. Every ending reaches the session as the far end
  hanging up (`StreamStopped`), unless the session ended the call itself.
- Text mode (``text_mode=True``; both bridges opened for text replies): no audio at all.
  The caller's words reach the agent as a user text turn on the session's bridge, the
  agent's replies (its transcript turns, from the session's ``on_update`` feed, which the
  runner points at `on_session_update`) reach the caller the same way. Tools, transcript and
  endings are the session's; audio checks (latency, barge-in) do not apply.
- What the caller said is taken from its own bridge (its transcript of its speech),
  placed on the session's call clock, so the stored transcript quotes the persona's
  words rather than the agent provider's transcription of them.

Django-free like the rest of `calls.media`: the simulation runner builds the session
(with its real context loader) and the caller bridge, and persists the outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.bridges.base import (
    PCMU_8K,
    AgentAudio,
    AgentTranscript,
    AudioFormat,
    Bridge,
    BridgeError,
    ProviderError,
    SpeechStarted,
    ToolCall,
)
from calls.media.audio_path import InboundPath, OutboundPath
from calls.media.frames import MarkPlayed, MediaIn, StreamStarted, StreamStopped
from calls.media.result import SessionResult, TranscriptTurn
from calls.media.session import CallSession

logger = logging.getLogger("calls.media")

FRAME_MS = 20
#: the function the simulated caller calls to end the call (declared to its bridge)
HANG_UP_TOOL: dict[str, Any] = {
    "name": "hang_up",
    "description": "Hang up the phone: call this once your goal is reached or you give up.",
    "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
}
#: after the caller's hang_up, how long its goodbye may take to start (frames)
_GOODBYE_GRACE_FRAMES = 50

# Why the line stopped, when the session did not end the call itself first.
ENDED_CALLER = "caller_hung_up"
ENDED_TURN_LIMIT = "turn_limit"
ENDED_TIME_LIMIT = "time_limit"
ENDED_CALLER_ERROR = "caller_error"
ENDED_BY_AGENT = "agent_side"  # the session ended it (agent hang-up, transfer, timeout, error)


@dataclass(frozen=True, slots=True)
class LineLimits:
    max_seconds: float = 120.0
    max_turns: int = 20


@dataclass(slots=True)
class LineOutcome:
    """What the line observed; ``session`` is the agent session's own result."""

    session: SessionResult
    caller_turns: list[TranscriptTurn]
    ended_by: str
    caller_error: str | None = None
    caller_usage: dict[str, Any] = field(default_factory=dict)
    #: call-clock ms of the first agent audio the caller heard (None: never)
    first_agent_audio_ms: int | None = None
    agent_audio_ms: int = 0
    caller_audio_ms: int = 0
    dtmf_sent: list[str] = field(default_factory=list)

    def transcript(self) -> list[TranscriptTurn]:
        """Both sides in call-clock order (the agent's turns as the session stored them)."""
        agent = [t for t in self.session.transcript if t.role == "agent"]
        return sorted([*agent, *self.caller_turns], key=lambda t: (t.start_ms, t.end_ms))


class _Playback:
    """Agent audio queued on the line, played one frame per tick; marks echo once played."""

    def __init__(self, frame_bytes: int, silence: bytes) -> None:
        self.frame_bytes = frame_bytes
        self.silence = silence
        self.buffer = bytearray()
        self.queued = 0
        self.played = 0
        self.marks: list[tuple[int, str]] = []

    def add(self, audio: bytes) -> None:
        self.buffer += audio
        self.queued += len(audio)

    def mark(self, name: str) -> None:
        self.marks.append((self.queued, name))

    def clear(self) -> None:
        self.buffer.clear()
        self.played = self.queued
        self.marks.clear()  # the session treats outstanding marks as cancelled

    def take(self) -> tuple[bytes, list[str], bool]:
        """The next frame, the marks it completes, and whether it carried agent audio."""
        if not self.buffer:
            return self.silence, [], False
        frame = bytes(self.buffer[:self.frame_bytes])
        del self.buffer[:self.frame_bytes]
        self.played += len(frame)
        if len(frame) < self.frame_bytes:
            frame += self.silence[: self.frame_bytes - len(frame)]
        done = [name for pos, name in self.marks if pos <= self.played]
        self.marks = [(pos, name) for pos, name in self.marks if pos > self.played]
        return frame, done, True


class InProcessLine:
    """See the module docstring. ``run()`` once; it returns when the call has ended."""

    def __init__(
        self,
        session: CallSession,
        caller: Bridge,
        *,
        limits: LineLimits,
        opening_line: str | None = None,
        audio_format: AudioFormat = PCMU_8K,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
        text_mode: bool = False,
    ) -> None:
        if audio_format.encoding not in ("pcmu", "pcm16"):
            raise ValueError(f"the line carries pcmu or pcm16 audio, not {audio_format}")
        self.session = session
        self.caller = caller
        self.limits = limits
        self.opening_line = opening_line
        self.format = audio_format
        self.text_mode = text_mode
        self._clock = clock
        self._sleep = sleep
        self.frame_bytes = int(audio_format.bytes_per_ms * FRAME_MS)
        self.silence = (b"\xff" if audio_format.encoding == "pcmu" else b"\x00") * self.frame_bytes
        self._agent = _Playback(self.frame_bytes, self.silence)
        self._caller_out = bytearray()
        self._closed = False
        self._ended_by: str | None = None
        self._caller_error: str | None = None
        self._caller_turns: list[TranscriptTurn] = []
        self._caller_item_start: dict[str | None, int] = {}
        self._caller_item_ms: dict[str | None, float] = {}
        self._hangup_after: int | None = None
        self._first_agent_audio_ms: int | None = None
        self._agent_frames = 0
        self._caller_frames = 0
        self._dtmf: list[str] = []
        self._caller_ready = asyncio.Event()
        self._to_caller: InboundPath | None = None
        self._from_caller: OutboundPath | None = None

    # ------------------------------------------------------- session transport

    async def send_text(self, text: str) -> None:
        message = json.loads(text)
        event = message.get("event")
        if event == "mark":
            self._agent.mark(str(message.get("name", "")))
        elif event == "clear":
            self._agent.clear()
        elif event == "dtmf":
            self._dtmf.append(str(message.get("digits", "")))

    async def send_bytes(self, data: bytes) -> None:
        if self._first_agent_audio_ms is None and data.strip(self.silence[:1]):
            self._first_agent_audio_ms = self.session.clock_ms()
        self._agent.add(data)

    async def close(self, code: int = 1000) -> None:
        self._closed = True

    async def on_session_update(self, kind: str, data: dict[str, Any]) -> None:
        """The session's live feed; in text mode the agent's turns go to the caller from here."""
        text = str(data.get("text") or "").strip()
        if not self.text_mode or kind != "transcript" or data.get("role") != "agent" or not text:
            return
        await self._caller_ready.wait()  # the greeting may come before the caller has connected
        if self._ended_by is None and self.caller.connected:
            try:
                await self.caller.send_user_text(text)
            except ProviderError as exc:
                self._caller_failed(exc)

    # ------------------------------------------------------------------ run

    async def run(self) -> LineOutcome:
        session = self.session
        session.attach(self)
        session.prepare()
        caller_task: asyncio.Task[None] | None = None
        try:
            await self.caller.connect()
        except ProviderError as exc:
            self._caller_failed(exc)
        finally:
            self._caller_ready.set()
        if self._ended_by is None:
            self._to_caller = InboundPath(self.format, self.caller.input_format, self.format.sample_rate)
            self._from_caller = OutboundPath(self.caller.output_format, self.format, self.format.sample_rate)
            caller_task = asyncio.ensure_future(self._caller_events())
        await session.handle_frame(StreamStarted(stream_id=f"sim-{uuid.uuid4().hex[:12]}",
                                                 encoding=self.format.encoding,
                                                 sample_rate=self.format.sample_rate))
        if self._ended_by is None and self.opening_line:
            try:
                await self.caller.create_response(self.opening_line)
            except ProviderError as exc:
                self._caller_failed(exc)
        try:
            await self._tick_until_ended()
        finally:
            if not session.ending:
                await session.handle_frame(StreamStopped(reason=self._ended_by or ENDED_CALLER))
            result = await session.wait()
            if caller_task is not None:
                caller_task.cancel()
            await self.caller.close()
        return LineOutcome(
            session=result,
            caller_turns=self._caller_turns,
            ended_by=self._ended_by or ENDED_BY_AGENT,
            caller_error=self._caller_error,
            caller_usage=dict(self.caller.metrics.usage),
            first_agent_audio_ms=self._first_agent_audio_ms,
            agent_audio_ms=self._agent_frames * FRAME_MS,
            caller_audio_ms=self._caller_frames * FRAME_MS,
            dtmf_sent=list(self._dtmf),
        )

    async def _tick_until_ended(self) -> None:
        session = self.session
        started = self._clock()
        tick = 0
        while not session.ending and not self._closed and self._ended_by is None:
            if not self.text_mode:
                await self._one_frame()
            tick += 1
            self._check_limits(tick, started)
            delay = started + tick * FRAME_MS / 1000 - self._clock()
            if delay > 0:
                await self._sleep(delay)

    async def _one_frame(self) -> None:
        # caller → agent
        if self._caller_out:
            frame = bytes(self._caller_out[:self.frame_bytes])
            del self._caller_out[:self.frame_bytes]
            frame += self.silence[: self.frame_bytes - len(frame)]
            self._caller_frames += 1
        else:
            frame = self.silence
        await self.session.handle_frame(MediaIn(frame))
        # agent → caller, as it plays
        heard, marks, audible = self._agent.take()
        if audible:
            self._agent_frames += 1
        for name in marks:
            await self.session.handle_frame(MarkPlayed(name))
        if self._ended_by is None and self.caller.connected and self._to_caller is not None:
            try:
                await self.caller.send_audio(self._to_caller.process(heard, False)[0])
            except ProviderError as exc:
                self._caller_failed(exc)

    def _check_limits(self, tick: int, started: float) -> None:
        if self._ended_by is not None:
            return
        if self._clock() - started >= self.limits.max_seconds:
            self._ended_by = ENDED_TIME_LIMIT
            return
        quiet = not self._caller_out and not self._agent.buffer
        turns = len(self._caller_turns) + sum(1 for t in self.session.book.turns if t.role == "agent")
        if turns >= self.limits.max_turns and quiet:
            self._ended_by = ENDED_TURN_LIMIT
        elif self._hangup_after is not None and not self._caller_out:
            self._hangup_after -= 1
            if self._hangup_after <= 0:
                self._ended_by = ENDED_CALLER

    # --------------------------------------------------------- caller events

    async def _caller_events(self) -> None:
        try:
            async for event in self.caller.events():
                await self._on_caller_event(event)
        except ProviderError as exc:
            self._caller_failed(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken caller ends the run, not the worker
            logger.exception("simulated caller crashed", extra={"call": self.session.call_public_id})
            self._caller_failed(ProviderError(f"caller crashed: {exc!r}", retryable=False, code="caller_crash"))
            return
        if self._ended_by is None and not self.session.ending:
            self._caller_failed(ProviderError("the caller's provider session ended", retryable=True,
                                              code="provider_closed"))

    async def _on_caller_event(self, event: Any) -> None:
        if type(event) is AgentAudio:
            assert self._from_caller is not None
            audio = self._from_caller.process(event.audio, False)[0]
            if event.item_id not in self._caller_item_start:
                queued_ms = len(self._caller_out) / self.format.bytes_per_ms
                self._caller_item_start[event.item_id] = self.session.clock_ms() + int(queued_ms)
            self._caller_item_ms[event.item_id] = (self._caller_item_ms.get(event.item_id, 0.0)
                                                   + len(audio) / self.format.bytes_per_ms)
            self._caller_out += audio
            if self._hangup_after is not None:
                self._hangup_after = _GOODBYE_GRACE_FRAMES
        elif isinstance(event, AgentTranscript) and event.final and event.text.strip():
            start = self._caller_item_start.get(event.item_id, self.session.clock_ms())
            end = start + int(self._caller_item_ms.get(event.item_id, 0.0))
            self._caller_turns.append(TranscriptTurn(role="caller", text=event.text.strip(),
                                                     start_ms=start, end_ms=max(end, start)))
            if self.text_mode:
                await self._tell_agent(event.text.strip())
        elif isinstance(event, SpeechStarted):
            # the caller's provider heard the agent talk over it and stopped its reply
            self._caller_out.clear()
        elif isinstance(event, ToolCall):
            if event.name == HANG_UP_TOOL["name"]:
                self._hangup_after = _GOODBYE_GRACE_FRAMES
                output: dict[str, Any] = {"ok": True}
            else:
                output = {"error": f"unknown function {event.name!r}"}
            try:
                await self.caller.send_tool_result(event.call_id, output)
            except ProviderError as exc:
                self._caller_failed(exc)
        elif isinstance(event, BridgeError) and event.fatal:
            self._caller_failed(event.error)

    async def _tell_agent(self, text: str) -> None:
        bridge = self.session.bridge
        if bridge is None or not bridge.connected or self.session.ending:
            return
        try:
            await bridge.send_user_text(text)
        except ProviderError as exc:
            self._caller_failed(ProviderError(f"the agent did not take the caller's words: {exc.message}",
                                              retryable=exc.retryable, code=exc.code))
        if self._hangup_after is not None:
            self._hangup_after = _GOODBYE_GRACE_FRAMES

    def _caller_failed(self, exc: ProviderError) -> None:
        if self._ended_by is None:
            self._ended_by = ENDED_CALLER_ERROR
            self._caller_error = f"{exc.code}: {exc.message}"[:500]
