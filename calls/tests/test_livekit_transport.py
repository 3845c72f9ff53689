"""The LiveKit transport with the real ``livekit`` SDK against the fake LiveKit
server (aiortc peer: ICE, DTLS, SRTP, Opus at 48 kHz) and the fake OpenAI
Realtime server behind the real OpenAI bridge: the agent joins the room with a
narrow token, the greeting reaches the human through the room, the human's
voice reaches the provider, and the session ends when the human leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit.protocol.models import TrackSource

from agents.bridges.base import SessionConfig
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, ProviderFailure, Until
from calls.audio.mulaw import array_to_mulaw
from calls.audio.vad import VadSettings
from calls.media import result as r
from calls.media.livekit_transport import LiveKitTransport, participant_token
from calls.media.result import SessionContext, SessionResult
from calls.media.session import CallSession
from calls.testing.fake_livekit_rtc import FakeLiveKitServer
from calls.testing.livekit_session import During, run_room_call, server_of
from calls.testing.signals import speech_like, tone
from voiceplatform.testing import wait_until

GREETING = array_to_mulaw(tone(1.5, hz=600, level=0.4))  # what the provider "says", µ-law 8 kHz


@pytest.fixture
def livekit() -> Iterator[FakeLiveKitServer]:
    with FakeLiveKitServer(room="support-1", human_identity="visitor-7") as server:
        yield server


@pytest.fixture
def openai() -> Iterator[FakeOpenAIRealtime]:
    fake = FakeOpenAIRealtime(turn_bytes=8000)  # one second of caller audio makes a turn
    with fake:
        yield fake


def session_of(transport: LiveKitTransport) -> CallSession:
    assert isinstance(transport.session, CallSession)
    return transport.session


def loud_ms(pcm48k: bytes, hz: float) -> float:
    """How much of ``pcm48k`` carries a tone near ``hz`` (20 ms windows, by DFT bin energy)."""
    samples = np.frombuffer(pcm48k, dtype=np.int16).astype(np.float64)
    n = 960
    count = 0
    for start in range(0, len(samples) - n + 1, n):
        spectrum = np.abs(np.fft.rfft(samples[start:start + n]))
        peak = int(np.argmax(spectrum))
        if spectrum[peak] > 50 * n and abs(peak * 50 - hz) <= 50:
            count += 1
    return count * 20.0


async def run_call(livekit: FakeLiveKitServer, openai: FakeOpenAIRealtime, tmp_path: Path,
                   during: During, *, room: str = "support-1", **overrides: Any) -> tuple[SessionResult, LiveKitTransport]:
    async def load(call_id: str) -> SessionContext:
        config = SessionConfig(instructions="Be brief.", first_message="Hello", speaks_first="agent",
                               **openai.session_config_kwargs())
        return SessionContext(call_public_id=call_id, provider="openai_realtime", config=config,
                              vad=VadSettings(min_silence_ms=300), recording_path=tmp_path / "rec.wav",
                              mark_interval_ms=200, **overrides)

    return await run_room_call(livekit, "c-livekit", load, during, room=room, agent_name="Support agent")


def test_agent_greets_listens_and_ends_when_the_human_leaves(
    livekit: FakeLiveKitServer, openai: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                  AgentTurn(audio=GREETING, transcript="Hello, how can I help?"),
                  AgentTurn(audio=GREETING[:4000], transcript="Sure."))
    openai.caller_says("I want to check my order.")
    voice = speech_like(1.5, sample_rate=48000, seed=3).tobytes()

    async def during(transport: LiveKitTransport) -> None:
        # the greeting went provider → session → resampler → Opus → the human
        await asyncio.to_thread(wait_until, lambda: loud_ms(livekit.heard(), 600) >= 1000,
                                "the human to hear a second of the greeting")
        livekit.say(voice)
        book = session_of(transport).book
        await asyncio.to_thread(wait_until, lambda: any(t.text == "Sure." for t in book.turns),
                                "the agent's answer to the human's turn")
        livekit.human_leaves()

    result, transport = asyncio.run(run_call(livekit, openai, tmp_path, during))

    assert result.end_reason == r.END_CALLER_HANGUP
    assert result.transport == "livekit"
    texts = [(t.role, t.text) for t in result.transcript]
    assert ("agent", "Hello, how can I help?") in texts
    assert ("caller", "I want to check my order.") in texts
    assert transport.frames_in > 50 and transport.frames_out > 50
    # the human's microphone reached the provider as µ-law 8 kHz (our resampler, 48 k → 16 k → 8 k)
    appended = sum(len(m.get("audio", "")) for m in openai.received_of("input_audio_buffer.append"))
    assert appended > 8000
    # the agent asked for nothing but this room: join, subscribe, publish its microphone
    claims = livekit.joins[0]
    assert claims.identity == "agent-c-livekit" and claims.name == "Support agent"
    video = claims.video
    assert video is not None and video.room == "support-1" and video.room_join
    assert video.can_publish_sources == ["microphone"] and not video.can_publish_data
    assert not (video.room_admin or video.room_create or video.room_list or video.room_record)
    assert livekit.published[0].source == TrackSource.MICROPHONE
    wait_until(lambda: livekit.connected == 0, "the agent to leave the room")


def test_a_provider_failure_plays_the_apology_in_the_room_and_the_agent_leaves(
    livekit: FakeLiveKitServer, openai: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                  AgentTurn(audio=GREETING[:4000], transcript="Hello."),
                  ProviderFailure(message="upstream overloaded", fatal=True))
    apology = array_to_mulaw(tone(1.0, hz=900, level=0.4))

    async def during(transport: LiveKitTransport) -> None:
        await asyncio.to_thread(wait_until, lambda: loud_ms(livekit.heard(), 600) >= 300, "the greeting")
        livekit.say(speech_like(1.5, sample_rate=48000, seed=4).tobytes())  # the caller's turn fails upstream

    result, _ = asyncio.run(run_call(livekit, openai, tmp_path, during, apology_audio=apology))

    assert result.end_reason == r.END_PROVIDER_ERROR
    # the apology was played to the human through the room before the agent left
    assert loud_ms(livekit.heard(), 900) >= 600
    assert any(e.kind == "apology_played" for e in result.events)
    wait_until(lambda: livekit.connected == 0, "the agent to leave the room")


def test_the_session_ends_when_the_room_closes_under_the_agent(
    livekit: FakeLiveKitServer, openai: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                  AgentTurn(audio=GREETING, transcript="Hello, how can I help?"))

    async def during(transport: LiveKitTransport) -> None:
        await asyncio.to_thread(wait_until, lambda: loud_ms(livekit.heard(), 600) >= 1300, "the greeting")
        livekit.close_room()  # LiveKit tells the agent to leave: the room was deleted

    result, _ = asyncio.run(run_call(livekit, openai, tmp_path, during))

    assert result.end_reason == r.END_ROOM_CLOSED
    assert ("agent", "Hello, how can I help?") in [(t.role, t.text) for t in result.transcript]


def test_a_dropped_connection_ends_the_session_as_connection_lost(
    livekit: FakeLiveKitServer, openai: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                  AgentTurn(audio=GREETING, transcript="Hello, how can I help?"))

    async def during(transport: LiveKitTransport) -> None:
        await asyncio.to_thread(wait_until, lambda: loud_ms(livekit.heard(), 600) >= 300, "the greeting")
        transport.reconnect_window_s = 1.0
        livekit.drop_connection()  # the SDK tries to reconnect and is refused until the window passes

    result, _ = asyncio.run(run_call(livekit, openai, tmp_path, during))

    assert result.end_reason == r.END_CONNECTION_LOST
    assert ("agent", "Hello, how can I help?") in [(t.role, t.text) for t in result.transcript]


def test_a_room_the_agent_cannot_join_ends_the_session_as_a_failed_join(
    livekit: FakeLiveKitServer, openai: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    async def during(transport: LiveKitTransport) -> None:
        return None

    result, _ = asyncio.run(run_call(livekit, openai, tmp_path, during, room="not-this-one"))

    assert result.end_reason == r.END_JOIN_FAILED
    assert result.error is not None and "could not join LiveKit room not-this-one" in result.error
    (failed,) = [e for e in result.events if e.kind == "livekit.join_failed"]
    assert failed.data["room"] == "not-this-one" and failed.data["error"] == result.error
    assert livekit.joins == []


def test_a_token_for_another_room_is_refused(livekit: FakeLiveKitServer) -> None:
    from livekit import rtc

    other = participant_token(server_of(livekit), "someone-elses-room", "agent-x")

    async def join() -> None:
        room = rtc.Room()
        try:
            await room.connect(livekit.url, other, rtc.RoomOptions(connect_timeout=5.0))
        finally:
            await room.disconnect()

    with pytest.raises(rtc.ConnectError):
        asyncio.run(join())
    assert livekit.joins == []
