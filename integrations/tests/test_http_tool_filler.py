"""A slow custom HTTP tool's filler line, end to end: a Twilio media stream (the test acts as
Twilio), the call session, the real ``openai`` SDK against the Realtime fake, and a
customer endpoint that answers only when the test lets it (so no clock decides the
outcome). The line is said once, through an out-of-band response, reaches the carrier
before the tool's answer, and is never said for a tool that answers in time."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from agents.bridges.base import SessionConfig
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, FunctionCall, Until
from calls.audio.vad import VadSettings
from calls.media.result import SessionContext, SessionResult, ToolError
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import speech_mulaw
from integrations import http_tools
from integrations.testing.tool_endpoint import FakeToolEndpoint
from integrations.tests.factories import make_http_tool

pytestmark = pytest.mark.django_db

SECRET = "htsec_filler-secret"
FILLER = "One moment while I look that up."
FILLER_AUDIO = b"\x22" * 1600  # 200 ms of µ-law the fake voices the line with
ANSWER_AUDIO = b"\x33" * 1600  # the reply that follows the tool's result
SENTENCE = speech_mulaw(1.2)  # 1.2 s the session's VAD hears as speech from start to end


@pytest.fixture
def endpoint() -> Iterator[FakeToolEndpoint]:
    with FakeToolEndpoint(secret=SECRET) as fake:
        yield cast(FakeToolEndpoint, fake)


def run_call(org: Any, endpoint: FakeToolEndpoint, tmp_path: Path, *, path: str, filler_after_s: float,
             release_when_heard: bool, filler_audio: bytes = FILLER_AUDIO,
             barge_in: bool = False, talk_over_the_call: bool = False
             ) -> tuple[SessionResult, CarrierMediaClient, FakeOpenAIRealtime]:
    """One call in which the model calls ``lookup_order`` (endpoint ``path``) right after the
    greeting, then answers; returns the session result, the Twilio side (what it received and
    cleared) and the provider fake. ``barge_in``: the caller talks once the line is heard;
    ``talk_over_the_call``: the caller talks from the start, the model calls the tool only once
    the session's VAD has heard the caller (the fake holds its script until then), and the caller
    stops only once the session has the tool call: ordered by events, not by timing."""
    tool = make_http_tool(org, url=f"{endpoint.url}/{path}", signing_secret=SECRET, filler_text=FILLER)
    caller_started = threading.Event()
    seen: list[str] = []  # the session's timeline events as they happen

    async def on_update(kind: str, data: dict[str, Any]) -> None:
        if kind == "event":
            seen.append(data["kind"])
            if data["kind"] == "speech_started":
                caller_started.set()

    with FakeOpenAIRealtime(turn_bytes=10**9, aside_audio=filler_audio) as fake_server, MediaTestServer() as server:
        fake = cast(FakeOpenAIRealtime, fake_server)
        if talk_over_the_call:
            fake.script(Until(caller_started, what="the caller's speech (session VAD)"))
        fake.script(FunctionCall(name="lookup_order", arguments={"order": "A1"}, call_id="c1"),
                    AgentTurn(audio=ANSWER_AUDIO, transcript="It shipped on Friday."))
        holder: dict[str, str] = {}

        def build() -> SessionContext:
            cid = holder["id"]
            config = SessionConfig(instructions="Be brief.", first_message="Hello", speaks_first="agent",
                                   tools=[http_tools.function_spec(tool)], **fake.session_config_kwargs())
            handler = http_tools.session_handler(http_tools.spec_of(tool), call_id=cid, variables={},
                                                 error_cls=ToolError)
            return SessionContext(call_public_id=cid, provider="openai_realtime", config=config,
                                  vad=VadSettings(min_silence_ms=300), recording_path=tmp_path / "rec.wav",
                                  tools=cast(Any, {tool.name: handler}), fillers={tool.name: tool.filler_text},
                                  filler_after_s=filler_after_s, mark_interval_ms=100, on_update=on_update)

        call_id, url = server.add_call("twilio", build)
        holder["id"] = call_id

        async def run() -> CarrierMediaClient:
            async with CarrierMediaClient.twilio(url) as call:
                # Between speech the caller's frames are silence, as on a real line.
                while talk_over_the_call and "tool_call" not in seen:
                    # the caller goes on talking (the same sentence again) until the session has the tool call
                    await call.play(SENTENCE)
                    await call.wait_until(lambda: call.caller_audio_pending_ms() < 400 or "tool_call" in seen,
                                          what="room in the caller's speech queue")
                if release_when_heard:
                    await call.wait_until(lambda: filler_audio[:160] in call.log.received, what="the filler line")
                    if barge_in:
                        await call.play(speech_mulaw(0.8))
                        await call.wait_until(lambda: call.log.clears, what="the carrier told to stop the line")
                    endpoint.release()
                await call.wait_until(lambda: ANSWER_AUDIO in call.log.received, what="the answer after the tool")
                await call.hang_up()
                return call

        call = asyncio.run(run())
        result = server.calls.wait_result(call_id)
    return result, call, fake


def test_a_slow_tool_gets_its_filler_line_once_before_its_answer(org_a: Any, endpoint: Any, tmp_path: Path) -> None:
    result, call, fake = run_call(org_a, endpoint, tmp_path, path="slow", filler_after_s=0.3,
                                  release_when_heard=True)
    received = bytes(call.log.received)

    # the whole line reached the carrier, once, and before any of the answer
    assert received.count(b"\x22") == len(FILLER_AUDIO)
    assert received.rindex(b"\x22") < received.index(b"\x33")
    # through one out-of-band response (not a conversation turn), the line as the admin wrote it
    creates = [m for m in fake.received if m.get("type") == "response.create"]
    asides = [m for m in creates if (m.get("response") or {}).get("conversation") == "none"]
    assert len(asides) == 1 and asides[0]["response"]["input"] == []
    assert asides[0]["response"]["instructions"].endswith(FILLER)
    # the tool's result was given to the model only after the line was asked for
    kinds = [(m.get("type"), (m.get("item") or {}).get("type")) for m in fake.received]
    assert kinds.index(("response.create", None)) < kinds.index(("conversation.item.create", "function_call_output"))
    assert fake.received.index(asides[0]) < kinds.index(("conversation.item.create", "function_call_output"))
    output = next(m["item"]["output"] for m in fake.received_of("conversation.item.create")
                  if (m.get("item") or {}).get("call_id") == "c1")
    assert json.loads(output)["received"] == {"order": "A1"}
    # the timeline says it was said; the transcript has the line as the agent's
    spoken = [e.data for e in result.events if e.kind == "filler_spoken"]
    assert spoken == [{"name": "lookup_order", "call_id": "c1"}]
    assert any(t.role == "agent" and t.text == FILLER for t in result.transcript)
    assert not [e for e in result.events if e.kind == "provider_warning"]


def test_a_tool_that_answers_in_time_gets_no_filler(org_a: Any, endpoint: Any, tmp_path: Path) -> None:
    # /echo answers at once; a minute is far longer than any run of this test takes
    result, call, fake = run_call(org_a, endpoint, tmp_path, path="echo", filler_after_s=60.0,
                                  release_when_heard=False)
    received = bytes(call.log.received)

    assert b"\x22" not in received and ANSWER_AUDIO in received
    assert not [m for m in fake.received if (m.get("response") or {}).get("conversation") == "none"]
    assert not [e for e in result.events if e.kind == "filler_spoken"]


def test_the_caller_cuts_the_line_off_like_any_reply(org_a: Any, endpoint: Any, tmp_path: Path) -> None:
    long_line = b"\x22" * 16000  # two seconds, so the caller talks while it plays
    result, call, fake = run_call(org_a, endpoint, tmp_path, path="slow", filler_after_s=0.3,
                                  release_when_heard=True, filler_audio=long_line, barge_in=True)

    # the carrier dropped what the caller had not heard yet
    assert len(call.log.clears) == 1 and 0 < call.log.clears[0].dropped_bytes < len(long_line)
    assert [e.data["source"] for e in result.events if e.kind == "barge_in"] == ["vad"]
    # the aside is not in the conversation: cancelled by its response id, nothing truncated
    created = [m for m in fake.received if (m.get("response") or {}).get("conversation") == "none"]
    assert len(created) == 1
    assert [m for m in fake.received_of("response.cancel") if m.get("response_id")]
    assert not fake.received_of("conversation.item.truncate")
    # and the tool's answer still comes
    assert ANSWER_AUDIO in bytes(call.log.received)


def test_the_line_waits_while_the_caller_is_speaking(org_a: Any, endpoint: Any, tmp_path: Path) -> None:
    # The tool is slow from the start and its line is due at once (filler_after_s=0), while the
    # caller is still talking: the model calls the tool only after the caller started, and the
    # caller stops only after the tool call, so the line is due mid-speech on any machine.
    result, call, fake = run_call(org_a, endpoint, tmp_path, path="slow", filler_after_s=0.0,
                                  release_when_heard=True, talk_over_the_call=True)

    kinds = [e.kind for e in result.events]
    called = kinds.index("tool_call")
    # the caller was speaking when the tool was called (the VAD's last word before it was "started")
    assert [k for k in kinds[:called] if k.startswith("speech_")][-1] == "speech_started"
    # and the line was said only after the caller stopped
    stopped = kinds.index("speech_stopped", called)
    assert stopped < kinds.index("filler_spoken")
    assert bytes(call.log.received).count(b"\x22") == len(FILLER_AUDIO)
