"""The session's conversion paths with providers that do not speak µ-law:
Gemini Live (fake server, real google-genai SDK) takes PCM16 16 kHz and answers
PCM16 24 kHz, so caller audio is decoded and resampled 8→16 kHz and agent audio
resampled 24→8 kHz and µ-law encoded on the way to Twilio; Hume EVI takes PCM16
8 kHz and answers WAV-framed 48 kHz chunks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from agents.bridges.base import SessionConfig
from agents.testing.fake_gemini import FakeGeminiLive
from agents.testing.script import AgentTurn
from calls.audio.mulaw import mulaw_to_array
from calls.media.result import SessionContext
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import speech_mulaw, tone


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_gemini_call_resamples_both_ways(tmp_path: Path) -> None:
    greeting = tone(1.0, hz=600, sample_rate=24000, level=0.4).tobytes()
    with FakeGeminiLive(turn_bytes=10**9) as fake, MediaTestServer() as server:
        fake.script(AgentTurn(audio=greeting, transcript="Hello from Gemini.", chunk_bytes=4800))
        holder: dict[str, str] = {}

        def build() -> SessionContext:
            config = SessionConfig(first_message="Hello", speaks_first="agent", **fake.session_config_kwargs())
            fields: dict[str, Any] = dict(call_public_id=holder["id"], provider="gemini_live", config=config,
                                          recording_path=tmp_path / "g.wav")
            return SessionContext(**fields)

        call_id, url = server.add_call("twilio", build)
        holder["id"] = call_id

        async def run() -> CarrierMediaClient:
            async with CarrierMediaClient.twilio(url) as call:
                await call.wait_for_audio(ms=950, timeout=25)
                await call.play(speech_mulaw(1.0, seed=2))
                await call.wait_caller_audio_sent()
                # every frame sent reaches the provider as 20 ms of 16 kHz PCM16 (640 bytes)
                spoken = (call.frames_sent - 2) * 640
                await call.wait_until(lambda: len(fake.audio_received()) >= spoken,
                                      what="the caller's speech at the provider")
                await call.hang_up()
            return call

        call = asyncio.run(run())
        result = server.calls.wait_result(call_id)
        sent_to_provider = fake.audio_received()
    # agent side: 1 s of 24 kHz PCM arrives as ~1 s of 8 kHz µ-law, still a 600 Hz tone
    received = mulaw_to_array(bytes(call.log.received[:8000])).astype(float)
    assert 7800 <= len(call.log.received) <= 8200
    assert abs(_dominant_hz(received[400:7600], 8000) - 600) < 10
    # caller side: the provider got PCM16 at 16 kHz: two bytes per sample, twice the rate
    caller_ms = result.usage["caller_audio_ms"]
    assert abs(len(sent_to_provider) / 32 - caller_ms) <= 40
    pcm = np.frombuffer(sent_to_provider, dtype="<i2")
    assert np.max(np.abs(pcm)) > 8000  # the caller's voice made it through
    assert [e.data["output_format"] for e in result.events if e.kind == "bridge_connected"] == ["pcm16@24000"]
    assert any(t.role == "agent" and t.text == "Hello from Gemini." for t in result.transcript)


def test_hume_call_decodes_wav_chunks_and_sends_pcm16(tmp_path: Path) -> None:
    from agents.testing.fake_hume import FakeHumeEVI

    greeting = tone(0.5, hz=800, sample_rate=48000, level=0.4).tobytes()
    with FakeHumeEVI(turn_ms=10**6, tts_audio=greeting) as fake, MediaTestServer() as server:
        holder: dict[str, str] = {}

        def build() -> SessionContext:
            config = SessionConfig(first_message="Welcome", speaks_first="agent", **fake.session_config_kwargs())
            return SessionContext(call_public_id=holder["id"], provider="hume_evi", config=config)

        call_id, url = server.add_call("plivo", build)
        holder["id"] = call_id

        async def run() -> CarrierMediaClient:
            async with CarrierMediaClient.plivo(url) as call:
                await call.wait_for_audio(ms=450, timeout=25)
                await call.play(speech_mulaw(0.5, seed=2))
                await call.wait_caller_audio_sent()
                await call.hang_up()
            return call

        call = asyncio.run(run())
        result = server.calls.wait_result(call_id)
        sent_to_provider = fake.audio_received()
    # 0.5 s of 48 kHz WAV-framed PCM → 0.5 s of 8 kHz µ-law, still 800 Hz
    assert 3900 <= len(call.log.received) <= 4100
    received = mulaw_to_array(bytes(call.log.received[:4000])).astype(float)
    assert abs(_dominant_hz(received[200:3800], 8000) - 800) < 10
    # the caller's µ-law was decoded to PCM16 at 8 kHz for Hume (no resampling)
    assert abs(len(sent_to_provider) / 16 - result.usage["caller_audio_ms"]) <= 40
    assert np.max(np.abs(np.frombuffer(sent_to_provider, dtype="<i2"))) > 8000
