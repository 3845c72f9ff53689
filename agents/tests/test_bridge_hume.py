"""Hume EVI bridge against the fake EVI server, through the real hume SDK."""

from __future__ import annotations

import json

import pytest

from agents.bridges import (
    PCM16_8K,
    AgentAudio,
    AgentTranscript,
    BridgeClosed,
    BridgeError,
    CallerTranscript,
    ProviderError,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    create_bridge,
)
from agents.bridges.audio import wav_to_pcm16
from agents.testing.events import EventCollector, run_async
from agents.testing.fake_hume import FakeHumeEVI
from agents.testing.script import AgentTurn, Disconnect, FunctionCall, ProviderFailure
from agents.tests.bridges import LOOKUP, bridge_config, open_bridge, refused_key, serving, tool_call_round_trip

PCM_FRAME = b"\x20\x00\xe0\xff" * 80  # 20 ms of 8 kHz PCM16
fake = serving(lambda: FakeHumeEVI(turn_ms=40, output_rate=48000))
config = bridge_config


def test_linear16_in_wav_out_transcripts_and_settings(fake):
    agent_pcm = bytes(range(256)) * 15

    async def main():
        bridge = create_bridge("hume_evi", config(fake, provider_options={"config_id": "cfg-1"}))
        assert bridge.input_format == PCM16_8K and bridge.output_format.encoding == "wav"
        await bridge.connect()
        events = EventCollector(bridge)
        fake.caller_says("where is my order")
        fake.script(AgentTurn(audio=agent_pcm, transcript="It ships today.", chunk_bytes=960))
        await bridge.send_audio(PCM_FRAME)
        await bridge.send_audio(PCM_FRAME)
        await events.wait(SpeechStarted)
        await events.wait(SpeechStopped)
        caller = await events.wait(CallerTranscript, lambda e: e.final)
        agent = await events.wait(AgentTranscript, lambda e: e.final)
        done = await events.wait(ResponseDone)
        await bridge.close()
        return events, caller, agent, done

    events, caller, agent, done = run_async(main())
    assert fake.query()["config_id"] == ["cfg-1"]
    assert fake.handshakes[0].headers["x-hume-api-key"] == fake.api_key
    settings = fake.received_of("session_settings")[0]
    assert settings["audio"] == {"encoding": "linear16", "sample_rate": 8000, "channels": 1}
    assert settings["system_prompt"] == "You are a test agent."
    assert settings["tools"][0]["type"] == "function"
    assert json.loads(settings["tools"][0]["parameters"]) == LOOKUP["parameters"]
    assert fake.audio_received() == PCM_FRAME * 2
    audio = events.of(AgentAudio)
    pcm = [wav_to_pcm16(a.audio) for a in audio]
    assert b"".join(p for p, _ in pcm) == agent_pcm
    assert {rate for _, rate in pcm} == {48000}
    assert {a.format.encoding for a in audio} == {"wav"} and {a.format.sample_rate for a in audio} == {48000}
    assert caller.text == "where is my order"
    assert agent.text == "It ships today."
    assert done.status == "completed"


def test_tool_call_round_trip(fake):
    tool_call_round_trip("hume_evi", config(fake), fake, call_id="tool-1", reply_audio=b"\x01\x00" * 480)
    response = fake.received_of("tool_response")[0]
    assert response["tool_call_id"] == "tool-1" and json.loads(response["content"]) == {"status": "shipped"}


def test_first_message_is_spoken_verbatim_and_user_interruption(fake):
    async def main():
        bridge, events = await open_bridge("hume_evi", config(fake))
        await bridge.create_response("Hello, this is Acme.")
        greeting = await events.wait(AgentTranscript, lambda e: e.final)
        await events.wait(ResponseDone)
        fake.script(AgentTurn(audio=b"\x02\x00" * 48000, transcript="A long answer.", chunk_bytes=960, pace=0.01))
        await bridge.create_response()
        first = await events.wait(AgentAudio)
        await bridge.send_audio(PCM_FRAME)  # the caller talks over the agent
        await events.wait(SpeechStarted)
        await bridge.interrupt(first.item_id, 60)
        audio_after = len(events.of(AgentAudio))
        fake.push({"type": "assistant_end"})
        done = await events.wait(ResponseDone)
        await bridge.close()
        return greeting, done, audio_after, events

    greeting, done, audio_after, events = run_async(main())
    assert fake.received_of("assistant_input")[0]["text"] == "Hello, this is Acme."
    assert greeting.text == "Hello, this is Acme."
    assert done.status == "cancelled"
    assert len(events.of(AgentAudio)) == audio_after
    assert len(fake.received_of("user_input")) == 1


def test_user_text_is_user_input_and_its_echo_is_not_caller_speech(fake):
    async def main():
        bridge, events = await open_bridge("hume_evi", config(fake))
        fake.script(AgentTurn(audio=b"\x02\x00" * 4800, transcript="Sales it is."))
        await bridge.send_user_text("[The caller pressed keypad keys: 1 #]")
        reply = await events.wait(AgentTranscript, lambda e: e.final)
        await events.wait(ResponseDone)
        await bridge.close()
        return bridge, events, reply

    bridge, events, reply = run_async(main())
    assert fake.received_of("user_input") == [{"type": "user_input", "text": "[The caller pressed keypad keys: 1 #]"}]
    assert reply.text == "Sales it is."
    # EVI's user_message echo (from_text) is neither speech nor a caller transcript
    assert not events.of(SpeechStarted) and not events.of(SpeechStopped) and not events.of(CallerTranscript)
    assert bridge.metrics.user_texts == 1


def test_provider_errors_are_typed(fake):
    async def main():
        bridge, events = await open_bridge("hume_evi", config(fake))
        fake.script(ProviderFailure("Too many requests", code="E0300_RATE_LIMIT"),
                    AgentTurn(audio=b"\x01\x00" * 480, transcript="still here"))
        await bridge.create_response()
        soft = await events.wait(BridgeError)
        await events.wait(AgentTranscript, lambda e: e.final)
        fake.script(ProviderFailure("Internal failure", code="E0500", fatal=True, close_code=1011))
        await bridge.create_response()
        await events.wait(BridgeError)
        hard = await events.wait(BridgeError)
        await events.wait_finished()
        await bridge.close()
        return soft, hard

    soft, hard = run_async(main())
    assert isinstance(soft.error, ProviderError) and not soft.fatal
    assert (soft.error.code, soft.error.retryable, soft.error.message) == ("E0300_RATE_LIMIT", True, "Too many requests")
    assert hard.fatal and hard.error.code == "connection_closed"


def test_bad_key_fails_without_retry(fake):
    refused_key("hume_evi", SessionConfig(credentials={"api_key": "nope"}, base_url=fake.url))


def test_dropped_connection_ends_the_stream_with_a_fatal_error(fake):
    async def main():
        bridge, events = await open_bridge("hume_evi", config(fake))
        fake.script(Disconnect(close_code=1011, reason="upstream gone"))
        await bridge.create_response()
        err = await events.wait(BridgeError)
        await events.wait_finished()
        assert not bridge.connected
        with pytest.raises(BridgeClosed):
            await bridge.send_audio(PCM_FRAME)
        await bridge.close()
        return err

    err = run_async(main())
    assert err.fatal and err.error.code == "connection_closed" and err.error.retryable


def test_an_aside_is_assistant_input_spoken_verbatim_while_a_tool_call_is_pending(fake):
    async def main():
        bridge, events = await open_bridge("hume_evi", config(fake))
        fake.script(FunctionCall("lookup_order", {"order_id": "A-17"}, call_id="tool-1"))
        await bridge.create_response()
        await events.wait(ToolCall)
        await bridge.say_aside("One moment while I look that up.")
        line = await events.wait(AgentTranscript, lambda e: e.final)
        await events.wait(ResponseDone)
        await bridge.close()
        return line

    line = run_async(main())
    assert line.text == "One moment while I look that up."
    assert [m["text"] for m in fake.received_of("assistant_input")] == ["One moment while I look that up."]
    assert not fake.received_of("tool_response")
