"""The call session: joins one media stream (Twilio, Plivo or a browser) to one
AI-provider bridge for the life of a call.

Lifecycle::

    session = CallSession(call_id, "twilio", load_context=..., on_finish=...)
    await session.prepare()        # may run while the phone rings: loads the
                                   # context, connects the bridge, asks for the
                                   # greeting (its audio waits for the stream)
    session.attach(transport)      # the consumer's send/close
    await session.handle_text(msg) # every carrier message, in order
    await session.transport_closed()   # the socket went away
    await session.wait()           # → on_finish(call_id, SessionResult) done

Hot path (one 20 ms caller frame, `_on_media`): parse, decode/resample as the
bridge needs, feed VAD and the recorder, `bridge.send_audio`. No database, no
Channels layer, no per-frame task or timer; the frame counts and timings go to the
session's own `FrameTally` (plain ints) and reach Prometheus once a second from
the watchdog (calls.media.metrics). Agent audio comes back on the
bridge's event task (`_pump`) and goes straight to the carrier with periodic
marks; `PlaybackTracker` models what the caller has heard for barge-in.
Everything slower (tools, hang-up, persistence, dashboard updates) runs in
separate tasks so audio keeps flowing.

Far-end updates (only the browser transport has them, `TransportCodec.update`): JSON
text frames next to the audio for the live call screen, never per frame —
``transcript``/``transcript_delta`` lines, timeline ``event``s, ``speaking``
({"who": "caller"|"agent", "speaking": bool}, sent on transitions only) and, last
before the socket closes, ``ended`` ({"reason", "error"}). Updates produced before
the stream starts (the greeting's transcript) wait and go out right after `start`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import numpy as np

from agents.bridges.base import (
    PCMU_8K,
    AgentAudio,
    AgentTranscript,
    AudioFormat,
    Bridge,
    BridgeError,
    BridgeEvent,
    CallerTranscript,
    ProviderError,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCallCancelled,
)
from agents.bridges.registry import create_bridge
from calls.audio.mulaw import mulaw_is_audible, mulaw_quiet_codes
from calls.audio.recorder import TwoChannelRecorder
from calls.audio.vad import VadBatcher, VadEvent, VadStream
from calls.media import metrics
from calls.media import result as r
from calls.media.answer_gate import AnswerGate
from calls.media.audio_path import InboundPath, OutboundPath
from calls.media.codecs import TransportCodec, codec_for
from calls.media.dtmf import KeypadEntry, KeypadInput
from calls.media.filler import FillerLine
from calls.media.frames import (
    ClearedAck,
    Connected,
    DtmfIn,
    FrameError,
    Ignored,
    InboundFrame,
    MarkPlayed,
    MediaIn,
    StreamStarted,
    StreamStopped,
)
from calls.media.hangup import hang_up_after_answer
from calls.media.playback import PlaybackTracker
from calls.media.tools import current_tool_call, run_tool
from calls.media.transcript import Transcript
from calls.media.transfer import end_transfers, watch_transfers

logger = logging.getLogger("calls.media")

BridgeFactory = Callable[[str, SessionConfig], Bridge]

_HANGUP_TIMEOUT_S = 10.0
_MAX_PROTOCOL_ERRORS = 20  # recorded individually; past this the stream is broken
_AUDIBLE = 300  # peak |sample| below this is silence/comfort noise (about -40 dBFS)
_MAX_EARLY_UPDATES = 50  # far-end updates kept while the stream has not started yet
_ENDED_FLUSH_S = 1.0  # how long the last updates may take before the socket closes


class Transport(Protocol):
    """What the consumer gives the session to talk back to the far end."""

    async def send_text(self, text: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = 1000) -> None: ...


def _preferred_formats(transport: str) -> AudioFormat:
    # What the far end speaks before its `start` arrives; the bridge is created
    # earlier than that, so this is what we ask it for (no transcoding if it
    # accepts telephony µ-law, as OpenAI does).
    return PCMU_8K if transport in ("twilio", "plivo") else AudioFormat("pcm16", 16000)


class CallSession:
    def __init__(
        self,
        call_public_id: str,
        transport: str,
        *,
        load_context: r.ContextLoader,
        on_finish: r.FinishCallback,
        bridge_factory: BridgeFactory = create_bridge,
        vad_batcher: VadBatcher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call_public_id = call_public_id
        self.transport_kind = transport
        self.codec: TransportCodec = codec_for(transport)
        self._load_context = load_context
        self._on_finish = on_finish
        self._bridge_factory = bridge_factory
        self._vad_batcher = vad_batcher
        self._clock = clock
        self.context: r.SessionContext | None = None
        self.bridge: Bridge | None = None
        self._transport: Transport | None = None
        self._transport_open = False
        self._prepare_task: asyncio.Task[None] | None = None
        self._startup_error: ProviderError | None = None
        self._setup_error: str | None = None
        self._created_at = clock()
        self._t0: float | None = None  # call clock zero: stream start
        self.streaming = False
        # audio path, built at stream start
        self._inbound: InboundPath | None = None
        self._outbound: OutboundPath | None = None
        self._analysis_rate = 8000
        self._vad: VadStream | None = None
        self._recorder: TwoChannelRecorder | None = None
        self._record_raw = False  # the recorder takes the carrier's bytes as they are
        self._caller_samples = 0
        self._analyse = True
        self._quiet_codes: bytes | None = None  # µ-law codes below the VAD floor (fast path)
        self._preroll: list[AgentAudio] = []
        self.playback = PlaybackTracker()
        self._interrupted_items: set[str | None] = set()
        # conversation bookkeeping
        self.book = Transcript()
        self.events: list[r.SessionEvent] = []
        self.latencies_ms: list[float] = []
        self._turn_end_at: float | None = None  # monotonic; caller stopped speaking
        self._last_activity: float = clock()
        self._agent_audible_until = 0.0
        self._last_media_at = 0.0
        self._caller_audio_ms = 0.0
        self._agent_audio_ms = 0.0
        self._dropped_before_start = 0
        self._protocol_errors = 0
        # frame counts, moved into Prometheus about once a second (calls.media.metrics)
        self._tally = metrics.FrameTally(transport)
        self._counted_live = False
        self._keypad: KeypadInput | None = None
        self._keypad_lock = asyncio.Lock()  # entries reach the agent in the order typed
        self._answer: AnswerGate | None = None  # outbound answer classification (calls.media.answer_gate)
        #: the agent is collecting sensitive keypad input (begin_sensitive_input)
        self.sensitive_input = False
        self.responses_done = 0
        self._response_done = asyncio.Event()
        # for telling the answer to a tool result from earlier responses (calls.media.hangup):
        # a tool call arrived since the last response ended; the latest agent audio item
        # the far end was sent (PlayItem.seq) and responses_done when it began
        self.call_response_open = False
        self.agent_item_seq = 0
        self.agent_item_opened_at = 0
        self._hangups: dict[str | None, str] = {}  # tool call id -> end reason once answered (end_after_answer)
        # far-end updates (browser): who speaks now, and what came before the stream
        self._speaking = {"caller": False, "agent": False}
        self._early_updates: list[str] = []
        self._update_tasks: set[asyncio.Task[Any]] = set()
        # tasks
        self._pump_task: asyncio.Task[None] | None = None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._tool_tasks: dict[str, asyncio.Task[None]] = {}
        self.filler: FillerLine | None = None  # the one filler line pending or playing
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._end_task: asyncio.Task[None] | None = None
        self._apology_mark: str | None = None
        self._apology_played = asyncio.Event()
        self.ending = False
        self.end_reason: str | None = None
        self.error: str | None = None
        self.result: r.SessionResult | None = None
        self._finished = asyncio.Event()

    # ------------------------------------------------------------- clock/log

    def clock_ms(self) -> int:
        if self._t0 is None:
            return 0
        return int((self._clock() - self._t0) * 1000)

    def record(self, kind: str, **data: Any) -> None:
        """Add a timeline event (and push it to live listeners)."""
        if self._t0 is None:
            data.setdefault("before_stream_ms", int((self._clock() - self._created_at) * 1000))
        event = r.SessionEvent(kind=kind, at_ms=self.clock_ms(), data=data)
        self.events.append(event)
        self._notify("event", {"kind": kind, "at_ms": event.at_ms, "data": data})

    def _notify(self, kind: str, data: dict[str, Any]) -> None:
        ctx = self.context
        if ctx is not None and ctx.on_update is not None:
            self._spawn(ctx.on_update(kind, data), "on_update")
        self._tell_far_end(kind, data)

    def _tell_far_end(self, kind: str, data: dict[str, Any]) -> None:
        """Send an update to the far end if its transport takes updates (the browser); before
        the stream has started it waits (bounded) and goes out right after `start`."""
        update = self.codec.update(kind, data)
        if update is None or self.ending:
            return
        if self.streaming:
            if self._transport_open:
                self._send_update(update)
        elif len(self._early_updates) < _MAX_EARLY_UPDATES:
            self._early_updates.append(update)

    def _send_update(self, update: str) -> None:
        task = self._spawn(self._send(update), "update")
        self._update_tasks.add(task)
        task.add_done_callback(self._update_tasks.discard)

    def _set_speaking(self, who: str, speaking: bool) -> None:
        """Who is speaking now, for the far end's screen: sent on a change only."""
        if self._speaking[who] is not speaking:
            self._speaking[who] = speaking
            self._tell_far_end("speaking", {"who": who, "speaking": speaking})

    def _spawn(self, coro: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._side_tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.warning(
                    "call session side task failed",
                    extra={"call": self.call_public_id, "task": what, "error": repr(t.exception())},
                )

        task.add_done_callback(done)
        return task

    # -------------------------------------------------------------- prepare

    def prepare(self) -> asyncio.Task[None]:
        """Start loading the context and connecting the bridge (idempotent).

        Returns the task so callers may await it; the stream's `start` awaits it
        too, so it does not matter whether the stream or `prepare` comes first.
        """
        if self._prepare_task is None:
            self._prepare_task = asyncio.ensure_future(self._prepare())
        return self._prepare_task

    async def _prepare(self) -> None:
        try:
            ctx = await self._load_context(self.call_public_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # e.g. the call already ended, or its agent is unusable: the stream
            # is refused at `start` and the reason recorded.
            self._setup_error = f"{exc.__class__.__name__}: {exc}"[:500]
            logger.warning("call session context failed", extra={"call": self.call_public_id,
                                                                 "error": exc.__class__.__name__})
            self.record("setup_error", error=self._setup_error)
            return
        self.context = ctx
        config = ctx.config
        preferred = _preferred_formats(self.transport_kind)
        if config.input_format is None:
            config.input_format = preferred
        if config.output_format is None:
            config.output_format = preferred
        if ctx.answer is not None:
            config.hold_responses = True  # the provider session opens held (calls.media.answer_gate)
        try:
            self.bridge = self._bridge_factory(ctx.provider, config)
            await self.bridge.connect()
        except ProviderError as exc:
            self._startup_error = exc
            self.record("provider_error", code=exc.code, retryable=exc.retryable, phase="connect")
            metrics.provider_error(ctx.provider, "connect")
            logger.warning(
                "bridge connect failed for call",
                extra={"call": self.call_public_id, "provider": ctx.provider, "code": exc.code},
            )
            return
        metrics.provider_connected(ctx.provider, (self.bridge.metrics.connect_latency_ms or 0.0) / 1000.0)
        self.record(
            "bridge_connected",
            provider=ctx.provider,
            connect_ms=round(self.bridge.metrics.connect_latency_ms or 0.0, 1),
            input_format=str(self.bridge.input_format),
            output_format=str(self.bridge.output_format),
        )
        self._pump_task = asyncio.ensure_future(self._pump())
        if config.speaks_first == "agent" and ctx.answer is None:
            try:
                # Asked now, so the greeting is ready when the stream starts.
                await self.bridge.create_response(config.first_message)
            except ProviderError as exc:
                self._startup_error = exc
                self.record("provider_error", code=exc.code, retryable=exc.retryable, phase="greeting")
                metrics.provider_error(ctx.provider, "greeting")
                return
        loop = asyncio.get_running_loop()
        loop.call_later(ctx.stream_wait_s, self._stream_wait_expired)

    def _stream_wait_expired(self) -> None:
        if self._t0 is None and not self.ending:
            self._spawn(self._end_unused(), "stream_wait")

    async def _end_unused(self) -> None:
        # With several `web` processes the carrier's socket may have landed on
        # another one, whose own session runs the call: hanging up here would end
        # that call, and a result from here would replace its transcript.
        ctx = self.context
        elsewhere = False
        if ctx is not None and ctx.stream_elsewhere is not None:
            try:
                elsewhere = await ctx.stream_elsewhere()
            except Exception as exc:  # noqa: BLE001 - unknown: treat as a stream that never came
                logger.warning("stream ownership check failed", extra={"call": self.call_public_id,
                                                                      "error": repr(exc)})
        if self._t0 is None and not self.ending:
            self.request_end(r.END_STREAM_ELSEWHERE if elsewhere else r.END_STREAM_TIMEOUT)

    # --------------------------------------------------------- transport in

    def attach(self, transport: Transport) -> None:
        self._transport = transport
        self._transport_open = True

    async def handle_text(self, text: str) -> None:
        try:
            frame = self.codec.parse_text(text)
        except FrameError as exc:
            await self._protocol_error(exc)
            return
        await self.handle_frame(frame)

    async def handle_bytes(self, data: bytes) -> None:
        try:
            frame = self.codec.parse_bytes(data)
        except FrameError as exc:
            await self._protocol_error(exc)
            return
        await self.handle_frame(frame)

    async def handle_frame(self, frame: InboundFrame) -> None:
        # media first: it is 50 messages a second, everything else is rare
        if type(frame) is MediaIn:
            if self.streaming:
                started = time.perf_counter()
                await self._on_media(frame)
                self._tally.timed(started, time.perf_counter())
            else:
                self._dropped_before_start += 1
                self._tally.lost_in += 1
            return
        if self.ending:
            return
        if isinstance(frame, MarkPlayed):
            self._on_mark(frame.name)
        elif isinstance(frame, StreamStarted):
            await self._on_start(frame)
        elif isinstance(frame, DtmfIn):
            await self._on_dtmf(frame.digit)
        elif isinstance(frame, StreamStopped):
            self.request_end(r.END_CALLER_HANGUP)
        elif isinstance(frame, (Connected, ClearedAck, Ignored)):
            pass

    async def transport_closed(self) -> None:
        """The socket closed (carrier hung up, or we closed it). Waits for the end."""
        self._transport_open = False
        self.request_end(r.END_CALLER_HANGUP)
        await self.wait()

    async def send_image(self, jpeg: bytes) -> None:
        """Show the agent a still frame of the caller's camera (video transports, e.g. LiveKit).

        Dropped while the provider is not connected; a provider without image input raises
        ``ProviderError`` (``images_unsupported``) for the transport to stop forwarding.
        """
        bridge = self.bridge
        if bridge is None or not bridge.connected or self._finished.is_set():
            return
        await bridge.send_image(jpeg)

    async def _protocol_error(self, exc: FrameError) -> None:
        self._protocol_errors += 1
        if self._protocol_errors <= _MAX_PROTOCOL_ERRORS:
            self.record("protocol_error", message=str(exc))
        if not self.streaming or self._protocol_errors > _MAX_PROTOCOL_ERRORS:
            self.request_end(r.END_PROTOCOL_ERROR, error=str(exc))

    # --------------------------------------------------------- stream start

    async def _on_start(self, frame: StreamStarted) -> None:
        if self._t0 is not None:
            self.record("protocol_error", message=f"{self.codec.kind}: duplicate start message")
            return
        try:
            self.codec.bind(frame)
        except FrameError as exc:
            self.record("protocol_error", message=str(exc))
            self.request_end(r.END_PROTOCOL_ERROR, error=str(exc))
            return
        await self.prepare()
        ctx = self.context
        if ctx is None:
            self.request_end(r.END_SETUP_ERROR, error=self._setup_error or "no session context")
            return
        self._t0 = self._clock()
        self._last_activity = self._t0
        self._last_media_at = self._t0
        self.record("stream_started", transport=self.codec.kind, format=str(self.codec.audio_format),
                    wait_ms=int((self._t0 - self._created_at) * 1000))
        if self._startup_error is not None or self.bridge is None:
            err = self._startup_error
            self.request_end(r.END_PROVIDER_ERROR, error=f"{err.code}: {err.message}" if err else "no bridge")
            return
        carrier = self.codec.audio_format
        self._analysis_rate = 8000 if carrier.sample_rate <= 8000 else 16000
        # the bridge was opened asking for the carrier's format (see prepare), so
        # this is a passthrough whenever the provider accepts telephony audio
        self._inbound = InboundPath(carrier, self.bridge.input_format, self._analysis_rate)
        self._outbound = OutboundPath(self.bridge.output_format, carrier, self._analysis_rate)
        if ctx.vad_enabled:
            vad_settings = dataclasses.replace(ctx.vad, sample_rate=self._analysis_rate)
            self._vad = VadStream(vad_settings, batcher=self._vad_batcher, on_event=self._on_vad)
        # The recorder keeps the line's own bytes whenever they are at the
        # analysis rate (every carrier format we accept), so recording needs
        # no per-frame decoding; it decodes once a second.
        self._record_raw = carrier.sample_rate == self._analysis_rate
        if ctx.recording_path:
            try:
                self._recorder = TwoChannelRecorder(
                    ctx.recording_path, sample_rate=self._analysis_rate,
                    encoding=carrier.encoding if self._record_raw else "pcm16",
                )
            except OSError as exc:
                # a full or unwritable disk loses the recording, not the call
                logger.error("cannot open call recording", extra={"call": self.call_public_id, "error": repr(exc)})
                self.record("recording_failed", error=exc.__class__.__name__)
        self.streaming = True
        metrics.call_started(self.transport_kind)
        self._counted_live = True
        # caller samples are needed only by VAD and a recorder that cannot take the line's bytes
        raw_recorder = self._recorder is None or self._record_raw
        self._analyse = self._vad is not None or not raw_recorder
        if (self._vad is not None and self._vad.floor is not None and raw_recorder
                and self._inbound.passthrough and carrier.encoding == "pcmu"):
            self._quiet_codes = mulaw_quiet_codes(math.ceil(self._vad.floor))
        self._watchdog_task = asyncio.ensure_future(self._watchdog())
        if ctx.transfer_changes is not None:
            self._spawn(watch_transfers(self, ctx.transfer_changes, ctx.transfer_poll_s), "transfers")
        if ctx.answer is not None:
            self._answer = AnswerGate(self, ctx.answer, holds_responses=self.bridge.holds_responses)
            self._answer.start(listen=carrier == PCMU_8K)
        early, self._early_updates = self._early_updates, []
        if self._transport_open:
            for update in early:
                self._send_update(update)
        # The greeting (asked for while the phone rang) goes out first; audio
        # arriving meanwhile queues behind it so the order is kept.
        while self._preroll:
            await self._on_agent_audio(self._preroll.pop(0), preroll=True)

    # ------------------------------------------------------------- hot path

    async def _on_media(self, frame: MediaIn) -> None:
        assert self._inbound is not None and self.bridge is not None
        self._last_media_at = self._clock()
        if self._answer is not None and self._answer.hear(frame.audio):
            # withheld from the provider until the answer is known; VAD's clock keeps pace
            self._caller_samples += len(frame.audio)
            if self._vad is not None:
                if self._vad.floor is not None:
                    self._vad.feed_quiet(len(frame.audio))
                else:
                    self._vad.feed(np.zeros(len(frame.audio), dtype=np.int16))
            if self._recorder is not None:
                self._recorder.write_caller(frame.audio)
            return
        quiet = self._quiet_codes
        if quiet is not None and not frame.audio.translate(None, quiet):
            # a quiet µ-law frame (the usual case while the agent talks): VAD
            # learns it is silence from the codes alone, nothing is decoded
            self._caller_samples += len(frame.audio)
            self._vad.feed_quiet(len(frame.audio))  # type: ignore[union-attr]
            if self._recorder is not None:
                self._recorder.write_caller(frame.audio)
            if self.ending:
                self._tally.lost_in += 1
                return
            try:
                await self.bridge.send_audio(frame.audio)
            except ProviderError as exc:
                self._tally.lost_in += 1
                self._provider_failed(exc)
            return
        to_bridge, samples = self._inbound.process(frame.audio, self._analyse)
        if samples is not None:
            self._caller_samples += len(samples)
            if self._vad is not None:
                self._vad.feed(samples)  # events arrive through _on_vad
        else:
            fmt = self._inbound.carrier
            self._caller_samples += int(fmt.duration_ms(len(frame.audio)) * self._analysis_rate / 1000)
        if self._recorder is not None:
            self._recorder.write_caller(frame.audio if self._record_raw else samples)  # type: ignore[arg-type]
        if self.ending:
            self._tally.lost_in += 1
            return
        try:
            await self.bridge.send_audio(to_bridge)
        except ProviderError as exc:
            self._tally.lost_in += 1
            self._provider_failed(exc)

    def _caller_ms(self) -> float:
        return 1000.0 * self._caller_samples / self._analysis_rate

    def _on_vad(self, event: VadEvent, at_ms: float) -> None:
        if self.ending:
            return
        now = self._clock()
        self._last_activity = now
        if event is VadEvent.SPEECH_START:
            self.book.speech_start_ms = int(at_ms)
            self._turn_end_at = None
            self.record("speech_started", source="vad")
            self._set_speaking("caller", True)
            if self.playback.playing(now):
                self._spawn(self.barge_in("vad"), "barge_in")
        else:
            self.book.speech_end_ms = int(at_ms)
            # the caller stopped `caller_ms - at_ms` ago (VAD needs trailing silence)
            self._turn_end_at = now - (self._caller_ms() - at_ms) / 1000.0
            self.record("speech_stopped", source="vad")
            self._set_speaking("caller", False)

    # ---------------------------------------------------------- agent audio

    async def _pump(self) -> None:
        assert self.bridge is not None
        try:
            async for event in self.bridge.events():
                await self._on_bridge_event(event)
        except ProviderError as exc:
            self._provider_failed(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug must still end the call cleanly
            logger.exception("bridge event loop crashed", extra={"call": self.call_public_id})
            self._provider_failed(ProviderError(f"bridge crashed: {exc!r}", retryable=False, code="bridge_crash"))
            return
        if not self.ending:
            self._provider_failed(
                ProviderError("provider session ended unexpectedly", retryable=True, code="provider_closed")
            )

    async def _on_bridge_event(self, event: BridgeEvent) -> None:
        if type(event) is AgentAudio:
            await self._on_agent_audio(event)
        elif isinstance(event, AgentTranscript):
            self._on_agent_transcript(event)
        elif isinstance(event, CallerTranscript):
            self._on_caller_transcript(event)
        elif isinstance(event, SpeechStarted):
            self._last_activity = self._clock()
            self._turn_end_at = None
            if self._vad is None or not self._vad.speaking:
                self.book.speech_start_ms = self.clock_ms()
            if self._vad is None:
                self._set_speaking("caller", True)
            # With our own VAD on, it decides barge-in (tunable, and it hears
            # the line exactly as the carrier delivers it); the provider's
            # detection only confirms it. Without VAD the provider decides.
            if self.playback.playing(self._clock()) and (self._vad is None or self._vad.speaking):
                await self.barge_in("provider")
        elif isinstance(event, SpeechStopped):
            if self._turn_end_at is None:
                self._turn_end_at = self._clock()
                self.book.speech_end_ms = self.clock_ms()
            if self._vad is None:
                self._set_speaking("caller", False)
        elif isinstance(event, ToolCall):
            self.call_response_open = True
            self._start_tool(event)
        elif isinstance(event, ToolCallCancelled):
            for call_id in event.call_ids:
                task = self._tool_tasks.pop(call_id, None)
                if task is not None:
                    task.cancel()
                    self.record("tool_cancelled", call_id=call_id)
        elif isinstance(event, ResponseDone):
            self._on_response_done(event)
        elif isinstance(event, BridgeError):
            if event.fatal:
                self._provider_failed(event.error)
            else:
                self.record("provider_warning", code=event.error.code, message=event.error.message[:200])

    async def _on_agent_audio(self, event: AgentAudio, preroll: bool = False) -> None:
        if event.item_id in self._interrupted_items or self.ending:
            return
        if self._answer is not None and self._answer.muted:
            return  # greeted a "person" that turned out to be a machine (calls.media.answer_gate)
        if not self.streaming or (self._preroll and not preroll):
            self._preroll.append(event)
            return
        assert self._outbound is not None and self.context is not None
        # Decoding is skipped when nothing needs the samples (the recorder
        # takes the line's bytes): audibility is checked on the bytes directly.
        out, samples = self._outbound.process(event.audio, self._recorder is not None and not self._record_raw)
        if samples is not None:
            n = len(samples)
            audible = n > 0 and int(np.abs(samples).max()) > _AUDIBLE
        else:
            fmt = self.codec.audio_format
            n = int(fmt.duration_ms(len(out)) * self._analysis_rate / 1000)
            if self.codec.audio_format.encoding == "pcmu":
                audible = mulaw_is_audible(out)
            else:
                audible = int(np.abs(np.frombuffer(out, dtype="<i2")).max(initial=0)) > _AUDIBLE
        if not n:
            return
        now = self._clock()
        if self._turn_end_at is not None:
            self.latencies_ms.append(round((now - self._turn_end_at) * 1000.0, 1))
            self._turn_end_at = None
        duration_ms = 1000.0 * n / self._analysis_rate
        item = self.playback.on_sent(event.item_id, duration_ms, now, self.clock_ms())
        if item.seq != self.agent_item_seq:  # the first audio of a new item
            self.agent_item_seq, self.agent_item_opened_at = item.seq, self.responses_done
        await self._send_media(out)
        if self._recorder is not None:
            self._recorder.write_agent(out if self._record_raw else samples)  # type: ignore[arg-type]
        self._agent_audio_ms += duration_ms
        # Only audible agent audio counts against the silence timeout (the
        # echo bridge, or a provider's comfort noise, streams silence too).
        if audible:
            self._agent_audible_until = max(now, self._agent_audible_until) + duration_ms / 1000.0
            if not self._speaking["agent"]:
                self._set_speaking("agent", True)  # the watchdog sees it end
        if item.since_mark_ms >= self.context.mark_interval_ms:
            await self._send(self.codec.mark(self.playback.new_mark(item)))

    async def _send_media(self, audio: bytes) -> None:
        message = self.codec.media(audio)
        if isinstance(message, bytes):
            await self._send_binary(message)
        else:
            await self._send(message)
        if self._transport_open:
            self._tally.frames_out += 1
        else:
            self._tally.lost_out += 1

    async def _send(self, text: str) -> None:
        if self._transport is not None and self._transport_open:
            try:
                await self._transport.send_text(text)
            except OSError:
                self._far_end_gone()

    async def _send_binary(self, data: bytes) -> None:
        if self._transport is not None and self._transport_open:
            try:
                await self._transport.send_bytes(data)
            except OSError:
                self._far_end_gone()

    def _far_end_gone(self) -> None:
        """A send found the socket closed by the far end (uvicorn's ClientDisconnected is an
        OSError) before the consumer read its disconnect: the caller hung up, whatever was
        being sent (not a provider error; how often the race is lost depends on load)."""
        self._transport_open = False
        self.request_end(r.END_CALLER_HANGUP)

    def _on_mark(self, name: str) -> None:
        if name == self._apology_mark:
            self._apology_played.set()
            return
        self.playback.on_mark(name, self._clock())

    def _on_response_done(self, event: ResponseDone) -> None:
        self.responses_done += 1
        self.call_response_open = False
        self._response_done.set()
        self._response_done = asyncio.Event()
        self.record("response_done", status=event.status)
        item = self.playback.current
        # a closing mark tells us when the whole reply has been heard
        if item is not None and not item.interrupted and item.since_mark_ms > 0 and self.streaming:
            self._spawn(self._send(self.codec.mark(self.playback.new_mark(item))), "mark")

    # -------------------------------------------------------------- barge-in

    async def barge_in(self, source: str) -> None:
        """The caller talks over the agent: flush the carrier, truncate the provider."""
        ctx = self.context
        if ctx is None or not ctx.barge_in or self.ending or self.bridge is None:
            return
        now = self._clock()
        item = self.playback.current
        if item is None or item.interrupted or not self.playback.playing(now):
            return
        self._interrupted_items.add(item.item_id)
        await self._send(self.codec.clear())
        # measured once the clear is on its way: the caller heard audio until then
        now = self._clock()
        heard = self.playback.heard_ms(item, now)
        self.playback.clear(now)
        if self._recorder is not None:
            self._recorder.clear_agent()
        if self._outbound is not None:
            self._outbound.reset()
        self.record("barge_in", source=source, item_id=item.item_id, heard_ms=heard, sent_ms=int(item.sent_ms))
        self._set_speaking("agent", False)
        self.book.cut(item, heard)
        try:
            await self.bridge.interrupt(item.item_id, heard)
        except ProviderError as exc:
            self._provider_failed(exc)

    # ----------------------------------------------------------- transcript

    def _on_caller_transcript(self, event: CallerTranscript) -> None:
        if not event.final:
            self._notify("transcript_delta", {"role": "caller", "text": event.text})
            return
        if self._answer is not None:
            self._answer.transcript(event.text)
        self._turn_added(self.book.caller_final(event.text, self.clock_ms()))

    def _on_agent_transcript(self, event: AgentTranscript) -> None:
        if not event.final:
            self._notify("transcript_delta", {"role": "agent", "text": event.text})
            return
        self._turn_added(self.book.agent_final(event.text, event.item_id, self.playback, self._clock(),
                                               self.clock_ms(), self._interrupted_items))

    def _turn_added(self, turn: r.TranscriptTurn) -> None:
        self._notify("transcript", {"role": turn.role, "text": turn.text, "start_ms": turn.start_ms,
                                    "end_ms": turn.end_ms, "interrupted": turn.interrupted})

    # ----------------------------------------------------------------- dtmf

    async def _on_dtmf(self, digit: str) -> None:
        self._last_activity = self._clock()
        ctx = self.context
        # Keys may be a PIN or a card number: stored only if the agent keeps them.
        if ctx is not None and ctx.keep_keypad_digits and not self.sensitive_input:
            self.record("dtmf", digit=digit)
        else:
            self.record("dtmf")
        if self._keypad is None and ctx is not None and ctx.dtmf.enabled:
            self._keypad = KeypadInput(ctx.dtmf, self._on_keypad_entry, self.clock_ms, ctx.keypad_timer)
        if self._keypad is not None:
            self._keypad.press(digit)

    def _on_keypad_entry(self, entry: KeypadEntry) -> None:
        if self.ending or self.bridge is None:
            return
        self.record("keypad_entry", keys=len(entry.keys), ended_by=entry.ended_by)
        sensitive = self.sensitive_input
        self._end_sensitive_input()
        self._spawn(self._send_keypad_entry(entry, sensitive), "keypad_entry")

    def begin_sensitive_input(self) -> None:
        """PCI-style pause until the caller's next keypad entry ends: its keys are not
        stored (whatever ``keep_keypad_digits`` says) and the recording's caller channel
        is silent, so keys spoken aloud or their tones are not kept either."""
        if not self.sensitive_input:
            self.sensitive_input = True
            if self._recorder is not None:
                self._recorder.caller_muted = True
            self.record("sensitive_input_started")

    def _end_sensitive_input(self) -> None:
        if self.sensitive_input:
            self.sensitive_input = False
            if self._recorder is not None:
                self._recorder.caller_muted = False
            self.record("sensitive_input_ended")

    async def _send_keypad_entry(self, entry: KeypadEntry, sensitive: bool = False) -> None:
        async with self._keypad_lock:
            # One barge-in for the whole entry, never one per key; with barge-in
            # off the entry waits until the agent has finished speaking.
            await self.barge_in("dtmf")
            await self.wait_for_playback()
            if self.ending or self.bridge is None or not self.bridge.connected:
                return
            keep = self.context is not None and self.context.keep_keypad_digits and not sensitive
            stored = entry.text if keep else entry.redacted_text  # the model gets the keys either way
            self._turn_added(self.book.caller_keypad(stored, entry.started_ms, self.clock_ms()))
            try:
                ctx = self.context
                await self.bridge.send_user_text(ctx.model_text(entry.text) if ctx and ctx.model_text else entry.text)
            except ProviderError as exc:
                self._provider_failed(exc)
                return
            self._turn_end_at = self._clock()

    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF to the far end: in-band where the stream allows, else REST."""
        ctx = self.context
        if self.codec.inband_dtmf and self.streaming:
            await self._send(self.codec.dtmf(digits))
        elif ctx is not None and ctx.send_dtmf is not None:
            await ctx.send_dtmf(digits)
        else:
            raise r.ToolError(f"sending DTMF is not supported on a {self.codec.kind} call")
        self.record("dtmf_sent", count=len(digits))

    # ----------------------------------------------------------------- tools

    def _start_tool(self, call: ToolCall) -> None:
        self._tool_tasks[call.call_id] = asyncio.ensure_future(self._run_tool(call))

    async def _run_tool(self, call: ToolCall) -> None:
        assert self.context is not None and self.bridge is not None
        filler = FillerLine.for_call(self, call)
        try:
            output = await run_tool(self, call, self.context, self._clock)
            if filler is not None:
                await filler.settle()  # the answer follows the line, never races it
        finally:
            if filler is not None:
                filler.cancel()
        self._tool_tasks.pop(call.call_id, None)
        try:
            if not self.ending and self.bridge.connected:
                await self.bridge.send_tool_result(call.call_id, output)
        except ProviderError as exc:
            self._provider_failed(exc)
        self.after_tool_result(call.call_id)

    def end_after_answer(self, reason: str) -> None:
        """From a tool: end the call with ``reason`` once the caller has heard the agent's
        answer to the tool's result (calls.media.hangup), watched from when it is sent."""
        self._hangups[current_tool_call.get()] = reason

    def after_tool_result(self, call_id: str) -> None:
        """The result of tool call ``call_id`` was sent to the provider (or could not be):
        start what waits for the answer to it."""
        reason = self._hangups.pop(call_id, None)
        if reason is not None and not self.ending:
            self._spawn(hang_up_after_answer(self, reason), "end_call")

    def line_clear(self) -> bool:
        """Nobody is speaking: the caller is silent and no agent audio is playing (an aside
        such as a filler line may start)."""
        return self.streaming and not self._speaking["caller"] and not self.playback.playing(self._clock())

    @property
    def agent_audio_ms(self) -> float:
        """Agent audio sent to the far end so far, in milliseconds."""
        return self._agent_audio_ms

    async def wait_for_next_response(self, timeout_s: float = 5.0) -> bool:
        """Until the provider finishes its next response (e.g. the goodbye that
        follows a tool result); False if none came in time."""
        try:
            await asyncio.wait_for(self._response_done.wait(), timeout_s)
            return True
        except (TimeoutError, asyncio.TimeoutError):
            return False

    async def wait_for_playback(self, max_wait_s: float = 15.0) -> None:
        """Until the caller has heard every queued agent byte (bounded)."""
        deadline = self._clock() + max_wait_s
        while self.streaming and not self.ending and self._clock() < deadline:
            if not self.playback.playing(self._clock()):
                return
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------ watchdog

    async def _watchdog(self) -> None:
        ctx = self.context
        assert ctx is not None and self._t0 is not None
        while not self.ending:
            await asyncio.sleep(0.25)
            if self._tally.due(time.monotonic()):
                self._tally.flush()
            now = self._clock()
            if now - self._t0 >= ctx.max_duration_s:
                self.request_end(r.END_MAX_DURATION)
                return
            if now - self._last_media_at >= ctx.media_timeout_s:
                self.request_end(r.END_MEDIA_TIMEOUT)
                return
            if now < self._agent_audible_until or (self._vad is not None and self._vad.speaking):
                self._last_activity = now
            if self._speaking["agent"] and now >= self._agent_audible_until:
                self._set_speaking("agent", False)
            if now - self._last_activity >= ctx.silence_timeout_s:
                self.request_end(r.END_SILENCE_TIMEOUT)
                return

    # ------------------------------------------------------------------ end

    def _provider_failed(self, exc: ProviderError) -> None:
        if self.ending:
            return
        self.record("provider_error", code=exc.code, retryable=exc.retryable, phase="call")
        metrics.provider_error(self.context.provider if self.context is not None else None, "call")
        self.request_end(r.END_PROVIDER_ERROR, error=f"{exc.code}: {exc.message}")

    def request_end(self, reason: str, error: str | None = None) -> None:
        """End the call (idempotent; the first reason wins). Returns at once."""
        if self._end_task is None:
            self.ending = True
            self.end_reason = reason
            self.error = error
            self._end_task = asyncio.ensure_future(self._end())

    async def end(self, reason: str, error: str | None = None) -> r.SessionResult:
        self.request_end(reason, error)
        return await self.wait()

    async def wait(self) -> r.SessionResult:
        await self._finished.wait()
        assert self.result is not None
        return self.result

    async def _end(self) -> None:
        reason = self.end_reason or r.END_CALLER_HANGUP
        ctx = self.context
        try:
            if self._watchdog_task is not None and self._watchdog_task is not asyncio.current_task():
                self._watchdog_task.cancel()
            self._note_cut_off()
            self.record("ended", reason=reason)
            if (reason == r.END_PROVIDER_ERROR and ctx is not None and ctx.apology_audio
                    and self.streaming and self._transport_open):
                await self._play_apology(ctx.apology_audio)
            # Never leave a billable leg open: every ending we initiate hangs up
            # the carrier side, except a transfer (the leg lives on elsewhere)
            # and the far end hanging up itself.
            if ctx is not None and ctx.hangup is not None and reason not in (
                    r.END_CALLER_HANGUP, r.END_TRANSFERRED, r.END_STREAM_ELSEWHERE):
                try:
                    await asyncio.wait_for(ctx.hangup(reason), _HANGUP_TIMEOUT_S)
                    self.record("hangup_requested", reason=reason)
                except Exception as exc:
                    logger.error("carrier hang-up failed", extra={"call": self.call_public_id, "error": repr(exc)})
                    self.record("hangup_failed", error=exc.__class__.__name__)
            if self._transport is not None and self._transport_open:
                await self._say_ended(reason)
                self._transport_open = False
                try:
                    await self._transport.close(1000)
                except Exception as exc:
                    logger.info("closing media socket failed", extra={"call": self.call_public_id, "error": repr(exc)})
            if self._answer is not None:
                self._answer.close()
            if self._keypad is not None:
                self._keypad.cancel()  # keys of an unfinished entry are on the timeline already
            await end_transfers(self)
            for task in list(self._tool_tasks.values()):
                task.cancel()
            if self._prepare_task is not None and not self._prepare_task.done():
                self._prepare_task.cancel()
            if self.bridge is not None:
                await self.bridge.close()
            if self._pump_task is not None and self._pump_task is not asyncio.current_task():
                self._pump_task.cancel()
            if self._vad is not None:
                self._vad.close()
            if self._recorder is not None:
                self._recorder.close()
        finally:
            self._tally.flush()
            metrics.call_ended(self.transport_kind, reason, streamed=self._counted_live)
            self._counted_live = False
            self.result = self._build_result(reason)
            try:
                await self._on_finish(self.call_public_id, self.result)
            except Exception:
                logger.exception("persisting the session result failed", extra={"call": self.call_public_id})
            finally:
                self._finished.set()
        logger.info(
            "call session ended",
            extra={"call": self.call_public_id, "reason": reason, "duration_ms": self.result.duration_ms,
                   "turns": len(self.book.turns), "transport": self.codec.kind},
        )

    async def _say_ended(self, reason: str) -> None:
        """Tell the far end (the browser) how the call ended, after the updates still on
        their way (bounded), so its screen shows the real outcome rather than guessing
        from the socket closing."""
        ended = self.codec.update("ended", {"reason": reason, "error": self.error})
        if ended is None:
            return
        pending = [task for task in self._update_tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=_ENDED_FLUSH_S)
        await self._send(ended)

    def _note_cut_off(self) -> None:
        # The call ended while the agent was mid-sentence: the transcript keeps
        # only what the caller heard.
        now = self._clock()
        item = self.playback.current
        if item is None or item.interrupted or not self.playback.playing(now):
            return
        heard = self.playback.heard_ms(item, now)
        self.book.cut(item, heard)
        self.record("agent_cut_off", item_id=item.item_id, heard_ms=heard, sent_ms=int(item.sent_ms))

    async def _play_apology(self, audio: bytes) -> None:
        assert self._outbound is not None
        self.playback.clear(self._clock())
        await self._send(self.codec.clear())
        self._apology_mark = "apology"
        await self._send_media(audio if self.codec.audio_format == PCMU_8K else self._convert_apology(audio))
        await self._send(self.codec.mark(self._apology_mark))
        try:
            await asyncio.wait_for(self._apology_played.wait(), len(audio) / 8000 + 2.0)
        except (TimeoutError, asyncio.TimeoutError):
            pass
        self.record("apology_played", ms=len(audio) // 8)

    def _convert_apology(self, audio: bytes) -> bytes:
        return OutboundPath(PCMU_8K, self.codec.audio_format, self._analysis_rate).process(audio)[0]

    def _build_result(self, reason: str) -> r.SessionResult:
        usage: dict[str, Any] = {
            "caller_audio_ms": int(self._caller_ms()),
            "agent_audio_ms": int(self._agent_audio_ms),
        }
        if self.bridge is not None:
            m = self.bridge.metrics
            usage.update(m.usage)
            usage.update({
                "provider": self.bridge.provider,
                "responses": m.responses,
                "tool_calls": m.tool_calls,
                "provider_errors": m.errors,
                "connect_ms": round(m.connect_latency_ms, 1) if m.connect_latency_ms is not None else None,
            })
        if self._dropped_before_start:
            usage["media_before_start"] = self._dropped_before_start
        duration = int((self._clock() - self._t0) * 1000) if self._t0 is not None else 0
        return r.SessionResult(
            call_public_id=self.call_public_id,
            transport=self.codec.kind,
            transcript=list(self.book.turns),
            events=list(self.events),
            latencies_ms=list(self.latencies_ms),
            recording_path=str(self._recorder.path) if self._recorder is not None else None,
            end_reason=reason,
            error=self.error,
            usage=usage,
            duration_ms=duration,
        )
