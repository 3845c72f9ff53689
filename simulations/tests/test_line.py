"""The in-process line (calls.media.inprocess) with no database: a real CallSession and
a real caller bridge, both against the fake OpenAI Realtime server (real SDK), scripted
as one conversation: greeting, the caller's request, the agent's tool call and goodbye."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents.bridges.base import SessionConfig
from agents.bridges.registry import create_bridge
from agents.builtin_tools import BUILTIN_TOOLS
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, FunctionCall
from calls.media.inprocess import (
    ENDED_BY_AGENT,
    ENDED_CALLER,
    ENDED_TURN_LIMIT,
    HANG_UP_TOOL,
    InProcessLine,
    LineLimits,
)
from calls.media.result import END_AGENT_HANGUP, END_CALLER_HANGUP, SessionContext
from calls.media.session import CallSession
from calls.testing.signals import speech_mulaw


def _session(fake: FakeOpenAIRealtime, tmp_path: Path, tools: tuple[str, ...] = ("end_call",)) -> CallSession:
    async def load(call_id: str) -> SessionContext:
        config = SessionConfig(instructions="Be brief.", first_message="Hello", speaks_first="agent",
                               tools=[BUILTIN_TOOLS[n] for n in tools], **fake.session_config_kwargs())
        return SessionContext(call_public_id=call_id, provider="openai_realtime", config=config,
                              recording_path=tmp_path / "rec.wav", mark_interval_ms=100)

    async def finish(call_id: str, result: Any) -> None:
        return None

    return CallSession("sim-test", "sim", load_context=load, on_finish=finish)


def _caller(fake: FakeOpenAIRealtime) -> Any:
    return create_bridge("openai_realtime", SessionConfig(
        instructions="You are a caller.", speaks_first="caller", tools=[HANG_UP_TOOL],
        **fake.session_config_kwargs()))


def test_agent_ends_the_call_after_the_callers_request(tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime(quiet_silence=True, turn_bytes=10**9)
    with fake:
        fake.script(
            AgentTurn(audio=speech_mulaw(0.3), transcript="Hello, how can I help?"),           # agent greets
            AgentTurn(audio=speech_mulaw(0.3, seed=1), transcript="A table for two, please."),  # caller
            FunctionCall("end_call", {}, call_id="c1"),                                         # agent
            AgentTurn(audio=speech_mulaw(0.2, seed=2), transcript="Booked. Goodbye!"),          # agent
        )
        line = InProcessLine(_session(fake, tmp_path), _caller(fake), limits=LineLimits(max_seconds=20))
        outcome = asyncio.run(line.run())
    assert outcome.ended_by == ENDED_BY_AGENT
    assert outcome.session.end_reason == END_AGENT_HANGUP
    texts = [(t.role, t.text) for t in outcome.transcript()]
    assert texts == [("agent", "Hello, how can I help?"), ("caller", "A table for two, please."),
                     ("agent", "Booked. Goodbye!")]
    assert outcome.first_agent_audio_ms is not None and outcome.first_agent_audio_ms < 1000
    assert [e.data["name"] for e in outcome.session.events if e.kind == "tool_call"] == ["end_call"]
    assert Path(outcome.session.recording_path or "").stat().st_size > 0


def test_caller_hangs_up_and_turn_limit(tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime(quiet_silence=True, turn_bytes=10**9)
    with fake:
        fake.script(
            AgentTurn(audio=speech_mulaw(0.3), transcript="Hello?"),
            FunctionCall(HANG_UP_TOOL["name"], {}, call_id="h1"),  # the caller hangs up without a word
        )
        line = InProcessLine(_session(fake, tmp_path), _caller(fake), limits=LineLimits(max_seconds=20))
        outcome = asyncio.run(line.run())
    assert outcome.ended_by == ENDED_CALLER
    assert outcome.session.end_reason == END_CALLER_HANGUP
    fake = FakeOpenAIRealtime(quiet_silence=True, turn_bytes=10**9)
    with fake:
        fake.script(AgentTurn(audio=speech_mulaw(0.3), transcript="Hello?"))
        line = InProcessLine(_session(fake, tmp_path), _caller(fake), limits=LineLimits(max_turns=1))
        outcome = asyncio.run(line.run())
    assert outcome.ended_by == ENDED_TURN_LIMIT


def test_a_gemini_caller_hears_and_speaks_through_the_format_conversions(tmp_path: Path) -> None:
    """The caller's bridge speaks PCM16 (16 kHz in, 24 kHz out), the line µ-law 8 kHz."""
    import numpy as np

    from agents.testing.fake_gemini import FakeGeminiLive
    from calls.testing.signals import speech_like

    agent_fake = FakeOpenAIRealtime(quiet_silence=True, turn_bytes=10**9)
    caller_fake = FakeGeminiLive(quiet_silence=True, turn_bytes=10**9)
    with agent_fake, caller_fake:
        agent_fake.script(
            AgentTurn(audio=speech_mulaw(0.3), transcript="Hello, how can I help?"),
            FunctionCall("end_call", {}, call_id="c1"),
            AgentTurn(audio=speech_mulaw(0.2, seed=2), transcript="Goodbye!"),
        )
        caller_fake.script(AgentTurn(audio=speech_like(0.3, sample_rate=24000, seed=1).astype(np.int16).tobytes(),
                                     transcript="Is the shop open on Sunday?"))
        caller = create_bridge("gemini_live", SessionConfig(
            instructions="You are a caller.", speaks_first="caller", tools=[HANG_UP_TOOL],
            **caller_fake.session_config_kwargs()))
        line = InProcessLine(_session(agent_fake, tmp_path), caller, limits=LineLimits(max_seconds=20))
        outcome = asyncio.run(line.run())
        heard_by_caller = caller_fake.audio_received()
    assert outcome.session.end_reason == END_AGENT_HANGUP, (outcome.ended_by, outcome.caller_error)
    assert [(t.role, t.text) for t in outcome.transcript()] == [
        ("agent", "Hello, how can I help?"), ("caller", "Is the shop open on Sunday?"), ("agent", "Goodbye!")]
    # the caller got the agent's audio as 16 kHz PCM: about twice the µ-law bytes per ms, and not silence
    assert len(heard_by_caller) > 0 and heard_by_caller.strip(b"\x00")
