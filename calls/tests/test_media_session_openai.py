"""The call session against the fake OpenAI Realtime server (real `openai` SDK,
real bridge), with the test client acting as Twilio/Plivo over a real socket:
barge-in, truncation at the heard position, tools, provider failure mid-call,
carrier hang-up mid-sentence, transcripts and turn latency, keypad input."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.bridges.base import SessionConfig
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, FunctionCall, Until
from calls.audio.mulaw import array_to_mulaw
from calls.audio.vad import VadSettings
from calls.media.dtmf import DtmfSettings
from calls.media.result import SessionContext, SessionResult
from calls.testing.clocks import ManualTimer
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import speech_mulaw, tone

AGENT_SPEECH = array_to_mulaw(tone(3.0, hz=600, level=0.4))  # 3 s of loud agent "speech"


@pytest.fixture(scope="module")
def server() -> Iterator[MediaTestServer]:
    with MediaTestServer() as srv:
        yield srv


@pytest.fixture
def fake() -> Iterator[FakeOpenAIRealtime]:
    # a huge turn size: the fake's byte-count "VAD" must not end turns on its own
    with FakeOpenAIRealtime(turn_bytes=10**9) as f:
        yield f


class Carrier:
    """What the carrier REST side would do, recorded (hang-up, transfer, DTMF)."""

    def __init__(self) -> None:
        self.hangups: list[str] = []
        self.transfers: list[str] = []
        self.dtmf: list[str] = []
        self.seen: list[str] = []  # the session's timeline events, as they happen

    async def on_update(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "event":
            self.seen.append(data["kind"])

    def responses_done(self) -> int:
        return self.seen.count("response_done")

    async def hangup(self, reason: str) -> None:
        self.hangups.append(reason)

    async def transfer(self, target: str) -> None:
        self.transfers.append(target)

    async def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)


def declare(*names: str) -> list[dict[str, Any]]:
    """Function specs offered to the model: the built-ins' own, an open object schema for others
    (the session runs only tools it declared, with arguments checked against the declaration)."""
    from agents.builtin_tools import BUILTIN_TOOLS

    return [BUILTIN_TOOLS.get(n) or {"name": n, "description": n, "parameters": {"type": "object"}}
            for n in names]


def add_call(server: MediaTestServer, transport: str, fake: FakeOpenAIRealtime, carrier: Carrier,
             tmp_path: Path, *, first_message: str | None = "Hello", declared: tuple[str, ...] = (),
             **overrides: Any) -> tuple[str, str]:
    holder: dict[str, str] = {}

    def build() -> SessionContext:
        config = SessionConfig(
            instructions="Be brief.", first_message=first_message,
            speaks_first="agent" if first_message else "caller", tools=declare(*declared),
            **fake.session_config_kwargs(),
        )
        fields: dict[str, Any] = dict(
            call_public_id=holder["id"], provider="openai_realtime", config=config,
            vad=VadSettings(min_silence_ms=300), recording_path=tmp_path / "rec.wav",
            hangup=carrier.hangup, transfer=carrier.transfer, send_dtmf=carrier.send_dtmf,
            mark_interval_ms=200, on_update=carrier.on_update,
        )
        fields.update(overrides)
        return SessionContext(**fields)

    call_id, url = server.add_call(transport, build)
    holder["id"] = call_id
    return call_id, url


def events_of(result: SessionResult, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in result.events if e.kind == kind]


def test_barge_in_clears_the_carrier_and_truncates_at_the_heard_position(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(AgentTurn(audio=AGENT_SPEECH, transcript="Hello, thanks for calling, how can I help you today?"))
    carrier = Carrier()
    call_id, url = add_call(server, "twilio", fake, carrier, tmp_path)

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_for_audio(ms=3000, timeout=25)  # greeting was ready: all sent ahead of playback
            await call.wait_until(lambda: call.played_ms() >= 800, what="0.8 s of the greeting played")
            await call.play(speech_mulaw(1.5, seed=2))  # the caller talks over the agent
            await call.wait_until(lambda: call.log.clears, timeout=20, what="clear")
            await fake.async_wait_for("conversation.item.truncate", timeout=20)
            await call.hang_up()
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    truncate = fake.wait_for("conversation.item.truncate")
    clear = call.log.clears[0]
    heard_by_client_ms = clear.played_bytes / 8
    # the provider is cut where the caller's playback actually was
    assert truncate["content_index"] == 0
    # within the time a clear takes to reach the carrier (client and server
    # share one process here, so a loaded machine stretches it)
    assert abs(truncate["audio_end_ms"] - heard_by_client_ms) <= 250
    assert 800 <= truncate["audio_end_ms"] <= 2000
    assert clear.dropped_bytes > 0  # unheard agent audio was flushed
    barge = events_of(result, "barge_in")
    assert len(barge) == 1 and barge[0]["source"] == "vad"
    assert barge[0]["heard_ms"] == truncate["audio_end_ms"] and barge[0]["item_id"] == truncate["item_id"]
    agent_turns = [t for t in result.transcript if t.role == "agent"]
    assert len(agent_turns) == 1 and agent_turns[0].interrupted
    assert agent_turns[0].end_ms - agent_turns[0].start_ms == truncate["audio_end_ms"]
    assert result.end_reason == "caller_hangup"


def test_provider_failure_mid_call_plays_apology_hangs_up_and_records_reason(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(AgentTurn(audio=AGENT_SPEECH[:4000], transcript="Hi."))
    carrier = Carrier()
    apology = array_to_mulaw(tone(0.3, hz=400))
    call_id, url = add_call(server, "plivo", fake, carrier, tmp_path, apology_audio=apology)

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.plivo(url) as call:
            await call.wait_for_audio(ms=500, timeout=25)
            fake.drop_connections(1011, "internal error")  # the provider dies mid-call
            code = await call.wait_closed(timeout=20)
            assert code == 1000
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "provider_error"
    assert result.error and result.error.startswith("connection_closed")
    assert carrier.hangups == ["provider_error"]  # the billable leg is hung up
    assert events_of(result, "provider_error")[0]["phase"] == "call"
    assert events_of(result, "apology_played") == [{"ms": 300}]
    # the apology reached the caller after the greeting, acknowledged by its checkpoint
    assert len(call.log.received) >= 4000 + 2400 and "apology" in call.log.marks_echoed
    assert result.recording_path and Path(result.recording_path).stat().st_size > 44


def test_provider_connect_failure_ends_call_with_reason(server: MediaTestServer, tmp_path: Path) -> None:
    carrier = Carrier()
    holder: dict[str, str] = {}

    def build() -> SessionContext:
        config = SessionConfig(credentials={"api_key": "sk-x"}, base_url="ws://127.0.0.1:9/v1",
                               connect_timeout=1.0, connect_attempts=1)
        return SessionContext(call_public_id=holder["id"], provider="openai_realtime", config=config,
                              hangup=carrier.hangup)

    call_id, url = server.add_call("twilio", build)
    holder["id"] = call_id

    async def run() -> None:
        async with CarrierMediaClient.twilio(url) as call:
            assert await call.wait_closed(timeout=20) == 1000

    asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "provider_error" and result.error
    assert events_of(result, "provider_error")[0]["phase"] == "connect"
    assert carrier.hangups == ["provider_error"]


def test_carrier_hangup_mid_sentence_keeps_only_what_was_heard(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(AgentTurn(audio=AGENT_SPEECH, transcript="This is a long explanation of our opening hours."))
    carrier = Carrier()
    call_id, url = add_call(server, "twilio", fake, carrier, tmp_path)

    async def run() -> None:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_for_audio(ms=3000, timeout=25)
            await call.wait_until(lambda: call.played_ms() >= 700, what="0.7 s of the agent played")
            await call.hang_up()  # stop + close while 2+ s are still queued

    asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "caller_hangup" and result.error is None
    assert carrier.hangups == []
    cut = events_of(result, "agent_cut_off")
    assert len(cut) == 1 and 500 <= cut[0]["heard_ms"] <= 1500 and cut[0]["sent_ms"] == 3000
    (turn,) = [t for t in result.transcript if t.role == "agent"]
    assert turn.interrupted and turn.end_ms - turn.start_ms == cut[0]["heard_ms"]
    # the bridge was closed: the fake saw the socket go
    assert result.usage["responses"] >= 1


def test_tools_run_while_audio_flows_dtmf_in_band_and_end_call(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(
        FunctionCall(name="send_dtmf", arguments={"digits": "12#"}, call_id="call_dtmf"),
        FunctionCall(name="lookup_order", arguments={"order": "A1"}, call_id="call_slow"),
        FunctionCall(name="end_call", arguments={}, call_id="call_end"),
        AgentTurn(audio=AGENT_SPEECH[:2400], transcript="Your order ships today. Goodbye."),
    )
    carrier = Carrier()

    async def lookup_order(arguments: dict[str, Any], session: Any) -> dict[str, Any]:
        await asyncio.sleep(0.4)  # slow tool: caller audio must keep flowing meanwhile
        return {"status": "shipped", "order": arguments["order"]}

    call_id, url = add_call(server, "plivo", fake, carrier, tmp_path, tools={"lookup_order": lookup_order},
                            declared=("send_dtmf", "lookup_order", "end_call"))

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.plivo(url) as call:
            assert await call.wait_closed(timeout=20) == 1000
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert call.log.dtmf_received == ["12#"]  # Plivo: DTMF goes in-band on the stream
    outputs = {m["item"]["call_id"]: m["item"]["output"] for m in fake.received_of("conversation.item.create")
               if m.get("item", {}).get("type") == "function_call_output"}
    assert '"ok": true' in outputs["call_dtmf"] and "shipped" in outputs["call_slow"]
    results = {e["call_id"]: e for e in events_of(result, "tool_result")}
    assert results["call_slow"]["ok"] and results["call_slow"]["duration_ms"] >= 400
    # caller frames kept reaching the provider while the slow tool ran
    appends = fake.received_of("input_audio_buffer.append")
    assert len(appends) >= 20
    assert result.end_reason == "agent_hangup" and carrier.hangups == ["agent_hangup"]
    # the goodbye was played in full before hanging up
    assert len(call.log.received) >= 2400


def test_end_call_waits_for_the_answer_not_the_end_of_the_response_that_carried_it(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    """The response carrying end_call is finished only after its result was sent back (a
    valid order): that end is not the goodbye, and the next response is asked for once it
    is (the service refuses a response.create while a response is in progress). The
    goodbye is held until the session has read that end, so hanging up on it cannot win."""
    read_the_end = threading.Event()
    fake.script(
        FunctionCall(name="end_call", arguments={}, call_id="call_end", done_late=True),
        Until(read_the_end, "the session to have read the end of the call's response"),
        AgentTurn(audio=AGENT_SPEECH[:2400], transcript="Thanks for calling. Goodbye."),
    )
    carrier = Carrier()
    call_id, url = add_call(server, "twilio", fake, carrier, tmp_path, declared=("end_call",))

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_until(lambda: carrier.responses_done() >= 1, what="the call's response.done")
            read_the_end.set()
            assert await call.wait_closed(timeout=20) == 1000
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "agent_hangup" and carrier.hangups == ["agent_hangup"]
    outputs = [m for m in fake.received_of("conversation.item.create")
               if m.get("item", {}).get("type") == "function_call_output"]
    assert [m["item"]["call_id"] for m in outputs] == ["call_end"]
    assert len(call.log.received) >= 2400, "hung up before the goodbye was played"
    assert len(events_of(result, "response_done")) == 2  # the call's response, then the goodbye


def test_end_call_after_a_goodbye_ends_when_the_silent_answer_ends(
    server: MediaTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The goodbye came first and the answer to end_call's result says nothing: the call
    ends when that answer ends (not at a timeout: the one for an answer that never starts
    is made longer than the client waits)."""
    from calls.media import hangup

    monkeypatch.setattr(hangup, "ANSWER_START_S", 120.0)
    with FakeOpenAIRealtime(turn_bytes=8000, quiet_silence=True) as fake:
        fake.script(
            AgentTurn(audio=AGENT_SPEECH[:2400], transcript="You're welcome. Goodbye."),
            FunctionCall(name="end_call", arguments={}, call_id="call_end", done_late=True),
            AgentTurn(audio=b"", transcript=""),
        )
        carrier = Carrier()
        call_id, url = add_call(server, "twilio", fake, carrier, tmp_path, first_message=None,
                                declared=("end_call",))

        async def run() -> CarrierMediaClient:
            async with CarrierMediaClient.twilio(url) as call:
                await call.play(speech_mulaw(1.0, seed=3))  # "that is all, thanks": the goodbye
                await call.wait_until(lambda: call.played_ms() >= 300, what="the goodbye to be played")
                await call.play(speech_mulaw(1.0, seed=4))  # "bye": the model ends the call
                assert await call.wait_closed(timeout=20) == 1000
            return call

        call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "agent_hangup" and carrier.hangups == ["agent_hangup"]
    assert len(call.log.received) >= 2400
    assert len(events_of(result, "response_done")) == 3  # goodbye, the call's response, the silent answer


def test_unknown_tool_and_timeout_are_reported_to_the_agent(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(
        FunctionCall(name="no_such_tool", arguments={}, call_id="c1"),
        FunctionCall(name="hang_forever", arguments={}, call_id="c2"),
    )
    carrier = Carrier()

    async def hang_forever(arguments: dict[str, Any], session: Any) -> str:
        await asyncio.sleep(60)
        return "never"

    call_id, url = add_call(server, "twilio", fake, carrier, tmp_path, tools={"hang_forever": hang_forever},
                            tool_timeout_s=0.3, declared=("hang_forever",))

    async def run() -> None:
        async with CarrierMediaClient.twilio(url) as call:
            await asyncio.to_thread(fake.wait_for, lambda m: m.get("item", {}).get("call_id") == "c2", timeout=20)
            await call.hang_up()

    asyncio.run(run())
    result = server.calls.wait_result(call_id)
    outputs = {m["item"]["call_id"]: m["item"]["output"] for m in fake.received_of("conversation.item.create")
               if m.get("item", {}).get("type") == "function_call_output"}
    assert "unknown tool" in outputs["c1"] and "timed out" in outputs["c2"]
    assert [e["ok"] for e in events_of(result, "tool_result")] == [False, False]


def test_caller_turn_transcripts_and_latency(tmp_path: Path) -> None:
    with FakeOpenAIRealtime(turn_bytes=8000) as fake, MediaTestServer() as server:
        fake.caller_says("I need help with my order")
        fake.script(AgentTurn(audio=AGENT_SPEECH[:1600], transcript="Sure, what is the order number?"))
        carrier = Carrier()
        call_id, url = add_call(server, "twilio", fake, carrier, tmp_path,
                                first_message=None, recording_path=None)

        async def run() -> None:
            async with CarrierMediaClient.twilio(url) as call:
                await call.wait_for_audio(ms=200, timeout=20)
                await call.wait_until(lambda: carrier.responses_done() >= 1, what="the reply's response.done")
                await call.hang_up()

        asyncio.run(run())
        result = server.calls.wait_result(call_id)
    roles = [(t.role, t.text) for t in result.transcript]
    assert roles == [("caller", "I need help with my order"), ("agent", "Sure, what is the order number?")]
    caller, agent = result.transcript
    assert caller.start_ms <= caller.end_ms <= agent.start_ms
    assert len(result.latencies_ms) == 1 and result.latencies_ms[0] >= 0
    assert result.recording_path is None
    assert result.usage["total_tokens"] == 30  # the provider's usage report is summed


def test_keys_pressed_while_the_agent_speaks_reach_it_as_one_user_turn_with_one_barge_in(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(AgentTurn(audio=AGENT_SPEECH, transcript="Enter your account number, then press pound."),
                AgentTurn(audio=AGENT_SPEECH[:1600], transcript="Thanks, I found your account."))
    carrier = Carrier()
    call_id, url = add_call(server, "twilio", fake, carrier, tmp_path)

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_for_audio(ms=3000, timeout=25)
            await call.wait_until(lambda: call.played_ms() >= 500, what="the greeting playing")
            for key in "123#":
                await call.send_dtmf(key)
                await asyncio.sleep(0.1)
            await call.wait_for_audio(ms=3200, timeout=20)  # the reply to the entry
            await call.wait_until(lambda: carrier.responses_done() >= 2 and call.heard_out(),
                                  what="the reply done and played out")
            await call.hang_up()
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert events_of(result, "dtmf") == [{}] * 4  # the timeline has each key press, not the key
    assert events_of(result, "keypad_entry") == [{"keys": 4, "ended_by": "terminator"}]
    # one model turn for the entry, not one per key
    assert fake.user_texts() == ["[The caller pressed keypad keys: 1 2 3 #]"]
    kinds = [m["type"] for m in fake.received if m["type"] != "input_audio_buffer.append"]
    entry_at = kinds.index("conversation.item.create")
    assert kinds[entry_at + 1] == "response.create" and kinds.count("response.create") == 2
    # the agent was cut once, for the whole entry, before the entry was sent
    barge = events_of(result, "barge_in")
    assert len(barge) == 1 and barge[0]["source"] == "dtmf" and len(call.log.clears) == 1
    assert kinds.index("conversation.item.truncate") < entry_at
    turns = [(t.role, t.text, t.interrupted) for t in result.transcript]
    assert turns == [("agent", "Enter your account number, then press pound.", True),
                     ("caller", "[The caller pressed 4 keypad keys]", False),  # what the model heard is not kept
                     ("agent", "Thanks, I found your account.", False)]
    assert len(result.latencies_ms) == 1  # entry sent → first audio of the reply
    assert result.usage["responses"] >= 2 and result.end_reason == "caller_hangup"


INTER_KEY_TIMEOUT_S = 2.0


def test_a_keypad_entry_without_terminator_ends_after_the_inter_key_timeout_on_plivo(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(AgentTurn(audio=AGENT_SPEECH[:1600], transcript="Sales, one moment."))
    carrier = Carrier()
    timer = ManualTimer()  # the keypad's time moves only when the test says
    call_id, url = add_call(server, "plivo", fake, carrier, tmp_path, first_message=None,
                            dtmf=DtmfSettings(timeout_s=INTER_KEY_TIMEOUT_S), keypad_timer=timer)

    async def run() -> None:
        async with CarrierMediaClient.plivo(url) as call:
            await call.wait_until(lambda: "stream_started" in carrier.seen, what="the stream to start")
            await call.send_dtmf("4")
            await asyncio.to_thread(timer.wait_armed, 1)
            timer.advance(INTER_KEY_TIMEOUT_S - 0.1)  # a slow typist, still inside the timeout
            await call.send_dtmf("2")
            await asyncio.to_thread(timer.wait_armed, 2)  # the second key re-armed the timer
            timer.advance(INTER_KEY_TIMEOUT_S - 0.1)
            # 3.8 s after the first key, 1.9 s after the last: the entry is still open
            assert timer.pending == 1 and fake.user_texts() == []
            timer.advance(0.1)
            await asyncio.to_thread(fake.wait_for, "response.create", timeout=20)
            await call.wait_for_audio(ms=200, timeout=20)
            await call.hang_up()

    asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert fake.user_texts() == ["[The caller pressed keypad keys: 4 2]"]
    assert events_of(result, "keypad_entry") == [{"keys": 2, "ended_by": "timeout"}]
    assert events_of(result, "barge_in") == []  # nothing was playing
    assert [t.role for t in result.transcript] == ["caller", "agent"]


def test_with_barge_in_off_a_keypad_entry_waits_until_the_agent_has_finished(
    server: MediaTestServer, fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(AgentTurn(audio=AGENT_SPEECH[:12000], transcript="Please listen to all the options."),
                AgentTurn(audio=AGENT_SPEECH[:1600], transcript="Option five."))
    carrier = Carrier()
    call_id, url = add_call(server, "twilio", fake, carrier, tmp_path, barge_in=False)

    async def run() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_for_audio(ms=1500, timeout=25)
            await call.send_dtmf("5")
            await call.send_dtmf("#")
            await call.wait_for_audio(ms=1700, timeout=20)
            await call.wait_until(lambda: carrier.responses_done() >= 2, what="the reply's response.done")
            await call.hang_up()
        return call

    call = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    assert call.log.clears == [] and events_of(result, "barge_in") == []
    assert fake.user_texts() == ["[The caller pressed keypad keys: 5 #]"]
    greeting, entry, reply = result.transcript
    assert not greeting.interrupted and entry.role == "caller" and reply.text == "Option five."
    # sent once the greeting had played out, not when the keys were pressed
    assert entry.end_ms >= greeting.end_ms - 100
