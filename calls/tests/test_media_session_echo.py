"""The call session end to end over a real WebSocket server with the echo bridge:
a test client plays the carrier (Twilio or Plivo), the consumer and session are
the production code, only the context/result hooks are in memory."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.bridges.base import SessionConfig
from calls.audio.mulaw import mulaw_to_array
from calls.audio.vad import VadSettings
from calls.media.result import SessionContext, SessionResult
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import silence_mulaw, speech_mulaw


@pytest.fixture(scope="module")
def server() -> Iterator[MediaTestServer]:
    with MediaTestServer() as srv:
        yield srv


def echo_context(call_id: str, tmp_path: Path, hangups: list[str], **overrides: Any) -> SessionContext:
    async def hangup(reason: str) -> None:
        hangups.append(reason)

    fields: dict[str, Any] = {
        "call_public_id": call_id,
        "provider": "echo",
        "config": SessionConfig(speaks_first="caller"),
        "vad": VadSettings(min_silence_ms=300),
        "recording_path": tmp_path / f"{call_id}.wav",
        "hangup": hangup,
    }
    fields.update(overrides)
    return SessionContext(**fields)


def add_echo_call(server: MediaTestServer, transport: str, tmp_path: Path, hangups: list[str], **kw: Any) -> tuple[str, str]:
    holder: dict[str, str] = {}

    def build() -> SessionContext:
        return echo_context(holder["id"], tmp_path, hangups, **kw)

    call_id, url = server.add_call(transport, build)
    holder["id"] = call_id
    return call_id, url


def test_twilio_echo_call_with_dtmf_and_caller_hangup(server: MediaTestServer, tmp_path: Path) -> None:
    hangups: list[str] = []
    seen: list[str] = []  # the session's timeline events, as they happen

    async def on_update(kind: str, data: dict[str, Any]) -> None:
        if kind == "event":
            seen.append(data["kind"])

    def entry_said_back() -> bool:
        return "keypad_entry" in seen and "response_done" in seen[seen.index("keypad_entry"):]

    call_id, url = add_echo_call(server, "twilio", tmp_path, hangups, on_update=on_update)

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(url) as call:
            await call.play(silence_mulaw(0.3) + speech_mulaw(1.0, seed=2))
            await call.wait_for_audio(ms=1200, timeout=20)
            await call.send_dtmf("5")
            await call.send_dtmf("#")
            await call.wait_caller_audio_sent()
            await call.wait_until(lambda: "speech_started" in seen, what="the caller's speech heard")
            await call.wait_until(entry_said_back, what="the keypad entry said back")
            await call.hang_up()
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "caller_hangup" and result.error is None
    assert hangups == []  # the caller hung up: nothing to hang up
    kinds = [e.kind for e in result.events]
    assert kinds[:2] == ["bridge_connected", "stream_started"]
    # the timeline says a key was pressed, not which (the agent does not keep keypad digits)
    assert [e.data for e in result.events if e.kind == "dtmf"] == [{}, {}]
    # the keys went to the agent as one entry, and echo said it back (what an agent says is kept)
    assert [e.data for e in result.events if e.kind == "keypad_entry"] == [{"keys": 2, "ended_by": "terminator"}]
    assert [(t.role, t.text) for t in result.transcript if t.text.startswith("[")] == [
        ("caller", "[The caller pressed 2 keypad keys]"), ("agent", "[The caller pressed keypad keys: 5 #]")]
    assert "speech_started" in kinds
    # the echo came back: the caller's speech is in what the carrier received
    received = mulaw_to_array(bytes(call.log.received)).astype(float)
    assert np.max(np.abs(received)) > 8000
    assert call.log.marks_received and set(call.log.marks_echoed) <= set(call.log.marks_received)
    assert result.usage["provider"] == "echo" and result.usage["caller_audio_ms"] >= 1300
    assert 1300 <= result.duration_ms <= 6000
    _assert_stereo_recording(result, min_ms=1300)


def _assert_stereo_recording(result: SessionResult, min_ms: int) -> np.ndarray:
    assert result.recording_path is not None
    with wave.open(result.recording_path) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(frames) >= min_ms * 8
    return frames


def test_plivo_echo_call_agent_side_recorded_and_server_hangs_up_on_max_duration(
    server: MediaTestServer, tmp_path: Path
) -> None:
    hangups: list[str] = []
    call_id, url = add_echo_call(server, "plivo", tmp_path, hangups, max_duration_s=1.5)

    async def run() -> CarrierMediaClient:
        call = CarrierMediaClient.plivo(url, parameters={"callId": "x1"})
        await call.open()
        await call.play(speech_mulaw(0.8, seed=2))
        code = await call.wait_closed(timeout=20)
        await call.close()
        assert code == 1000
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "max_duration"
    assert hangups == ["max_duration"]  # the carrier leg is hung up, not left open
    assert len(call.log.received) > 4000
    frames = _assert_stereo_recording(result, min_ms=1400)
    # caller speech on the left, its echo (what the caller heard) on the right
    assert np.max(np.abs(frames[:6400, 0])) > 8000
    assert np.max(np.abs(frames[:, 1])) > 8000


def test_silence_timeout_ends_the_call(server: MediaTestServer, tmp_path: Path) -> None:
    hangups: list[str] = []
    # echo bridge that echoes nothing audible: VAD hears only silence; the echoed
    # silence still counts as agent audio "playing", so disable VAD-free activity
    call_id, url = add_echo_call(server, "twilio", tmp_path, hangups, silence_timeout_s=0.8,
                                 provider="echo", config=SessionConfig(speaks_first="caller"))

    async def run() -> None:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_closed(timeout=20)

    asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "silence_timeout"
    assert hangups == ["silence_timeout"]


def test_stream_that_stops_carrying_audio_is_ended_and_hung_up(server: MediaTestServer, tmp_path: Path) -> None:
    hangups: list[str] = []
    call_id, url = add_echo_call(server, "twilio", tmp_path, hangups, media_timeout_s=0.6)

    async def run() -> int | None:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_for_audio(ms=200)
            call.pause_media()  # socket open, no audio: a half-dead carrier leg
            return await call.wait_closed(timeout=20)

    assert asyncio.run(run()) == 1000
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "media_timeout"
    assert hangups == ["media_timeout"]  # never leave the billable leg open


def test_plivo_linear_pcm_16k_stream_runs_vad_and_recording_at_16k(server: MediaTestServer, tmp_path: Path) -> None:
    from calls.testing.signals import speech_like

    hangups: list[str] = []
    call_id, url = add_echo_call(server, "plivo", tmp_path, hangups)
    voice = speech_like(1.2, sample_rate=16000, seed=2).tobytes()

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.plivo(url, l16_rate=16000) as call:
            await call.play(bytes(6400) + voice)  # 200 ms of silence, then the voice
            await call.wait_caller_audio_sent()
            await call.wait_for_audio(ms=1400)
            await call.hang_up()
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    # echoed through the µ-law echo bridge and back up to 16 kHz PCM16
    back = np.frombuffer(bytes(call.log.received), dtype="<i2")
    assert np.max(np.abs(back)) > 8000
    assert any(e.kind == "speech_started" for e in result.events)  # VAD ran (at 16 kHz)
    assert [e.data["format"] for e in result.events if e.kind == "stream_started"] == ["pcm16@16000"]
    assert result.recording_path is not None
    with wave.open(result.recording_path) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 16000)


def test_a_send_to_a_socket_the_caller_already_closed_ends_the_call_as_a_hang_up(tmp_path: Path) -> None:
    """The browser (or carrier) closed while the agent talked: the server knows the socket
    is gone before the consumer has read the socket's last messages, so the agent's next
    frame is sent to a closed socket. That is the caller hanging up, not a provider error
    (seen as `provider_error` on a loaded machine: whether it happened depended on speed)."""
    from uvicorn.protocols.utils import ClientDisconnected  # what production's server raises then

    from calls.media.session import CallSession
    from calls.testing.signals import speech_like

    class ClosedByTheCaller:
        """The consumer's side of a socket whose far end has gone away."""

        def __init__(self) -> None:
            self.open = True
            self.sent = asyncio.Event()
            self.refused = asyncio.Event()

        async def send_text(self, text: str) -> None:
            await self.send_bytes(text.encode())

        async def send_bytes(self, data: bytes) -> None:
            if not self.open:
                self.refused.set()
                raise ClientDisconnected()
            self.sent.set()

        async def close(self, code: int = 1000) -> None:
            self.open = False

    hangups: list[str] = []
    results: list[SessionResult] = []
    voice = speech_like(0.4, sample_rate=16000, seed=2).tobytes()

    async def load(call_id: str) -> SessionContext:
        return echo_context(call_id, tmp_path, hangups)

    async def finish(call_id: str, result: SessionResult) -> None:
        results.append(result)

    async def run() -> None:
        session = CallSession("c-gone", "web", load_context=load, on_finish=finish)
        socket = ClosedByTheCaller()
        session.attach(socket)
        await session.handle_text('{"event": "start", "sampleRate": 16000}')
        await session.handle_bytes(voice[:640])
        await asyncio.wait_for(socket.sent.wait(), 30)  # the echo (a generous deadline, not a timing claim)
        socket.open = False  # the caller closes; its last frames are still to be read
        for i in range(640, len(voice), 640):
            await session.handle_bytes(voice[i:i + 640])
        # the echo of those frames goes out before the consumer reads the disconnect
        await asyncio.wait_for(socket.refused.wait(), 30)
        await session.transport_closed()

    asyncio.run(run())
    (result,) = results
    assert (result.end_reason, result.error) == ("caller_hangup", None)
    assert "provider_error" not in [e.kind for e in result.events]
    assert hangups == []  # the caller is gone: nothing to hang up
