"""Deepgram Voice Agent bridge against the fake Voice Agent server, through the real deepgram-sdk."""

from __future__ import annotations

import json
import logging

import pytest

from agents.bridges import (
    PCM16_16K,
    PCMU_8K,
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
from agents.testing.events import EventCollector, run_async
from agents.testing.fake_deepgram import FakeDeepgramAgent
from agents.testing.script import AgentTurn, Disconnect, FunctionCall, ProviderFailure
from agents.tests.bridges import LOOKUP, bridge_config, open_bridge, refused_key, serving, tool_call_round_trip

ULAW_FRAME = b"\x7e\xfe" * 80  # 20 ms of 8 kHz µ-law
PCM16K_FRAME = b"\x20\x00\xe0\xff" * 160  # 20 ms of 16 kHz PCM16
fake = serving(lambda: FakeDeepgramAgent(turn_ms=40))
config = bridge_config


def test_mulaw_8k_in_and_out_transcripts_both_sides_and_settings(fake):
    agent_audio = bytes(range(256)) * 5

    async def main():
        bridge = create_bridge("deepgram_agent", config(
            fake, model="anthropic/claude-3-5-haiku-latest", voice="aura-2-orion-en", language="es",
            temperature=0.4, provider_options={"listen_model": "nova-2"}))
        assert bridge.input_format == PCMU_8K and bridge.output_format == PCMU_8K
        await bridge.connect()
        events = EventCollector(bridge)
        fake.caller_says("where is my order")
        fake.script(AgentTurn(audio=agent_audio, transcript="It ships today.", chunk_bytes=320))
        await bridge.send_audio(ULAW_FRAME)
        await bridge.send_audio(ULAW_FRAME)
        await events.wait(SpeechStarted)
        await events.wait(SpeechStopped)
        caller = await events.wait(CallerTranscript)
        agent = await events.wait(AgentTranscript, lambda e: e.final)
        done = await events.wait(ResponseDone)
        await bridge.close()
        return bridge, events, caller, agent, done

    bridge, events, caller, agent, done = run_async(main())
    assert fake.handshakes[0].headers["authorization"] == f"Token {fake.api_key}"
    assert bridge.request_id == "fake-request-1"
    settings = fake.received_of("Settings")[0]
    assert settings["audio"] == {"input": {"encoding": "mulaw", "sample_rate": 8000},
                                 "output": {"encoding": "mulaw", "sample_rate": 8000, "container": "none"}}
    think = settings["agent"]["think"]
    assert think["provider"] == {"type": "anthropic", "model": "claude-3-5-haiku-latest", "temperature": 0.4}
    assert think["prompt"] == "You are a test agent."
    assert think["functions"] == [LOOKUP]
    assert settings["agent"]["speak"]["provider"] == {"type": "deepgram", "model": "aura-2-orion-en"}
    assert settings["agent"]["listen"]["provider"]["model"] == "nova-2"
    assert settings["agent"]["language"] == "es"
    assert fake.audio_received() == ULAW_FRAME * 2
    audio = events.of(AgentAudio)
    assert b"".join(a.audio for a in audio) == agent_audio
    assert {a.format for a in audio} == {PCMU_8K}
    assert caller.text == "where is my order" and caller.final
    assert agent.text == "It ships today."
    assert done.status == "completed" and done.usage == {}


def test_pcm16_16k_is_negotiated_when_preferred(fake):
    async def main():
        bridge = create_bridge("deepgram_agent", config(fake, input_format=PCM16_16K, output_format=PCM16_16K))
        assert bridge.input_format == PCM16_16K and bridge.output_format == PCM16_16K
        await bridge.connect()
        events = EventCollector(bridge)
        fake.script(AgentTurn(audio=b"\x01\x00" * 320, transcript="Hi."))
        await bridge.send_audio(PCM16K_FRAME)
        await bridge.send_audio(PCM16K_FRAME)
        await bridge.send_audio(PCM16K_FRAME)
        first = await events.wait(AgentAudio)
        await events.wait(ResponseDone)
        await bridge.close()
        return first

    first = run_async(main())
    settings = fake.received_of("Settings")[0]
    assert settings["audio"]["input"] == {"encoding": "linear16", "sample_rate": 16000}
    assert settings["audio"]["output"]["encoding"] == "linear16"
    assert first.format == PCM16_16K


def test_tool_call_round_trip(fake):
    bridge, events = tool_call_round_trip("deepgram_agent", config(fake), fake, call_id="fc-1", reply_audio=b"\xff" * 320)
    response = fake.received_of("FunctionCallResponse")[0]
    assert response["id"] == "fc-1" and response["name"] == "lookup_order"
    assert json.loads(response["content"]) == {"status": "shipped"}
    # The note asking the agent to speak is ours, not the caller's
    assert not events.of(CallerTranscript)
    assert bridge.metrics.tool_calls == 1


def test_greeting_is_spoken_verbatim_and_barge_in_cancels_the_turn(fake):
    async def main():
        bridge, events = await open_bridge("deepgram_agent", config(fake))
        await bridge.create_response("Hello, this is Acme.")
        greeting = await events.wait(AgentTranscript, lambda e: e.final)
        await events.wait(ResponseDone)
        fake.script(AgentTurn(audio=b"\x55" * 80000, transcript="A long answer.", chunk_bytes=160, pace=0.01))
        await bridge.send_user_text("[The caller pressed keypad keys: 2]")
        first = await events.wait(AgentAudio)
        await bridge.send_audio(ULAW_FRAME)  # the caller talks over the agent
        started = await events.wait(SpeechStarted)
        done = await events.wait(ResponseDone)
        await bridge.interrupt(first.item_id, 40)
        fake.caller_says("actually, cancel it")
        fake.script(AgentTurn(audio=b"\x66" * 320, transcript="Cancelled."))
        await bridge.send_audio(ULAW_FRAME)
        caller = await events.wait(CallerTranscript)
        reply = await events.wait(AgentAudio)
        await events.wait(ResponseDone)
        await bridge.close()
        return greeting, started, done, first, caller, reply, events

    greeting, started, done, first, caller, reply, events = run_async(main())
    assert fake.received_of("InjectAgentMessage")[0]["message"] == "Hello, this is Acme."
    assert greeting.text == "Hello, this is Acme."
    assert started.item_id == first.item_id
    assert done.status == "cancelled"
    assert fake.received_of("InjectUserMessage")[0]["content"] == "[The caller pressed keypad keys: 2]"
    assert caller.text == "actually, cancel it"
    # the interrupted turn was cut short and none of its audio follows its cancelled ResponseDone
    cut = [i for i, e in enumerate(events.events) if isinstance(e, AgentAudio) and e.item_id == first.item_id]
    assert 0 < len(cut) < 80000 // 160
    assert max(cut) < events.events.index(done)
    assert reply.item_id != first.item_id and reply.audio == b"\x66" * 320


def test_in_band_errors_are_typed_and_a_drop_is_fatal(fake):
    async def main():
        bridge, events = await open_bridge("deepgram_agent", config(fake))
        fake.script(ProviderFailure("Too many requests", code="RATE_LIMITED"),
                    AgentTurn(audio=b"\xff" * 160, transcript="still here"))
        await bridge.create_response()
        soft = await events.wait(BridgeError)
        await events.wait(AgentTranscript, lambda e: e.final)
        fake.script(Disconnect(close_code=1011, reason="upstream gone"))
        await bridge.create_response()
        hard = await events.wait(BridgeError)
        await events.wait_finished()
        assert not bridge.connected
        with pytest.raises(BridgeClosed):
            await bridge.send_audio(ULAW_FRAME)
        await bridge.close()
        return soft, hard

    soft, hard = run_async(main())
    assert not soft.fatal
    assert (soft.error.code, soft.error.retryable, soft.error.message) == ("RATE_LIMITED", True, "Too many requests")
    assert hard.fatal and hard.error.code == "connection_closed" and hard.error.retryable


def test_bad_key_fails_without_retry_and_the_key_is_not_logged(fake, caplog):
    secret = "dg-secret-never-logged-1234"

    with caplog.at_level(logging.DEBUG):
        err = refused_key("deepgram_agent", SessionConfig(credentials={"api_key": secret}, base_url=fake.url))
    assert secret not in caplog.text and secret not in str(err)
    assert caplog.records  # the handshake was logged (at DEBUG), just without the key


def test_rejected_settings_fail_the_connect_naming_the_reason(fake):
    async def main():
        bridge = create_bridge("deepgram_agent", config(fake, model="gpt-4o-mini"))
        with pytest.raises(ProviderError) as bad_model:
            await bridge.connect()
        return bad_model.value

    bad_model = run_async(main())
    assert bad_model.code == "invalid_model" and "<think provider>/<model>" in bad_model.message
    assert fake.connection_count == 0  # refused before dialling


def test_server_errors_on_connect_are_retryable_then_succeed(fake):
    async def main():
        fake.reject_connections(503)
        bridge = create_bridge("deepgram_agent", config(fake))
        await bridge.connect()
        await bridge.close()
        return bridge

    bridge = run_async(main())
    assert bridge.metrics.connect_attempts == 2 and fake.connection_count == 2


def test_private_base_url_is_refused_by_the_outbound_guard(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False

    async def main():
        bridge = create_bridge("deepgram_agent", SessionConfig(credentials={"api_key": "k"},
                                                               base_url="http://10.1.2.3:8080"))
        with pytest.raises(ProviderError) as info:
            await bridge.connect()
        return info.value

    err = run_async(main())
    assert (err.code, err.retryable) == ("base_url_refused", False)


@pytest.mark.django_db
def test_a_published_deepgram_agent_runs_with_the_orgs_credential_and_base_url(org_a, fake):
    from agents.runtime import build_session_config, ensure_ready
    from agents.services import publish_agent
    from agents.tests.factories import make_agent
    from orgs.services import SYSTEM, set_provider_credential

    agent = make_agent(org_a, provider="deepgram_agent", model="google/gemini-2.5-flash", voice="aura-2-luna-en",
                       system_prompt="Help {{customer_name}}.", provider_options={"listen_model": "nova-3"})
    publish_agent(agent, SYSTEM)
    set_provider_credential(org_a, SYSTEM, "deepgram", {"api_key": fake.api_key}, {"base_url": fake.url})
    cfg = build_session_config(ensure_ready(agent), {"customer_name": "Ana"})
    assert cfg.base_url == fake.url and cfg.credentials["api_key"] == fake.api_key

    async def main():
        bridge = create_bridge("deepgram_agent", cfg)
        await bridge.connect()
        await bridge.close()

    run_async(main())
    think = fake.received_of("Settings")[0]["agent"]["think"]
    assert think["provider"]["type"] == "google" and think["prompt"] == "Help Ana."


def test_deepgram_is_priced_per_minute():
    from decimal import Decimal

    from agents.pricing import estimate_cost, price_table

    estimate = estimate_cost("deepgram_agent", "open_ai/gpt-4.1-mini", {"session_ms": 90_000}, price_table())
    assert estimate.amount == Decimal("0.12") and "deepgram.com/pricing" in estimate.price_source


def test_a_refused_injection_is_reported_not_dropped(fake):
    async def main():
        bridge, events = await open_bridge("deepgram_agent", config(fake))
        fake.script(AgentTurn(audio=b"\x55" * 16000, transcript="Long.", chunk_bytes=160, pace=0.01))
        await bridge.create_response()
        await events.wait(AgentAudio)
        await bridge.create_response("Please hold.")
        err = await events.wait(BridgeError)
        await bridge.close()
        return err

    err = run_async(main())
    assert not err.fatal and (err.error.code, err.error.retryable) == ("injection_refused", True)
    assert "Cannot inject" in err.error.message


def test_an_aside_is_spoken_verbatim_while_a_tool_call_is_pending(fake):
    async def main():
        bridge, events = await open_bridge("deepgram_agent", config(fake))
        fake.script(FunctionCall("lookup_order", {"order_id": "A-17"}, call_id="fn1"))
        await bridge.send_user_text("where is my order?")
        call = await events.wait(ToolCall)
        await bridge.say_aside("One moment while I look that up.")
        line = await events.wait(AgentTranscript, lambda e: e.final)
        await events.wait(ResponseDone)
        await bridge.close()
        return call, line

    call, line = run_async(main())
    assert call.call_id == "fn1" and line.text == "One moment while I look that up."
    assert [m["message"] for m in fake.received_of("InjectAgentMessage")] == ["One moment while I look that up."]
    assert not fake.received_of("FunctionCallResponse")  # the call stays pending for its result
