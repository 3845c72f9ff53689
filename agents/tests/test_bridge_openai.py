"""OpenAI Realtime bridge against the fake GA server, through the real openai SDK."""

from __future__ import annotations

from typing import Any

import pytest

from agents.bridges import (
    PCMU_8K,
    AgentAudio,
    AgentTranscript,
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
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, FunctionCall, ProviderFailure
from agents.tests.bridges import LOOKUP, bridge_config, open_bridge, refused_key, serving, tool_call_round_trip

ULAW_FRAME = bytes(range(0, 160))  # 20 ms of µ-law; distinct bytes prove no transcoding
LOOKUP_TOOL = {**LOOKUP, "parameters": {**LOOKUP["parameters"], "required": ["order_id"]}}
fake = serving(lambda: FakeOpenAIRealtime(turn_bytes=1600))


def config(fake: FakeOpenAIRealtime, **kw: Any) -> SessionConfig:
    return bridge_config(fake, **{"voice": "cedar", "language": "en-US", "tools": [LOOKUP_TOOL], **kw})


def test_pcmu_passes_through_both_ways_with_transcripts(fake):
    agent_audio = bytes(range(256)) * 10

    async def main():
        bridge = create_bridge("openai_realtime", config(fake))
        assert bridge.input_format == PCMU_8K and bridge.output_format == PCMU_8K
        await bridge.connect()
        events = EventCollector(bridge)
        fake.caller_says("where is my order")
        fake.script(AgentTurn(audio=agent_audio, transcript="It ships today.", chunk_bytes=400))
        for _ in range(10):
            await bridge.send_audio(ULAW_FRAME)
        assert (await events.wait(SpeechStarted)).item_id
        await events.wait(SpeechStopped)
        assert (await events.wait(CallerTranscript, lambda e: e.final)).text == "where is my order"
        final = await events.wait(AgentTranscript, lambda e: e.final)
        done = await events.wait(ResponseDone)
        await bridge.close()
        return bridge, events, final, done

    bridge, events, final, done = run_async(main())
    session = fake.received_of("session.update")[0]["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"]["language"] == "en"
    assert session["tools"][0]["name"] == "lookup_order"
    assert fake.audio_received() == ULAW_FRAME * 10
    audio = events.of(AgentAudio)
    assert b"".join(a.audio for a in audio) == agent_audio
    assert {a.format for a in audio} == {PCMU_8K}
    assert final.text == "It ships today."
    assert "".join(t.text for t in events.of(AgentTranscript) if not t.final) == "It ships today."
    assert done.status == "completed" and done.usage["total_tokens"] == 30
    assert bridge.metrics.audio_in_bytes == 1600
    assert bridge.metrics.audio_out_bytes == len(agent_audio)
    assert bridge.metrics.usage["total_tokens"] == 30
    assert len(bridge.metrics.response_latencies_ms) == 1


def test_tool_call_round_trip(fake):
    bridge, _ = tool_call_round_trip("openai_realtime", config(fake), fake, call_id="call_9",
                                     reply_audio=b"\x7f" * 160)
    output = fake.received_of("conversation.item.create")[0]["item"]
    assert output == {"type": "function_call_output", "call_id": "call_9", "output": '{"status": "shipped"}'}
    assert len(fake.received_of("response.create")) == 2
    assert bridge.metrics.tool_calls == 1


def test_a_result_sent_while_its_response_is_in_progress_asks_for_the_answer_once_that_is_done(fake):
    """The service refuses a response.create while a response is in progress (the fake does
    too), and the response carrying a call may finish after the client sent the result: the
    bridge asks for the answer once it has."""

    async def main() -> EventCollector:
        bridge, events = await open_bridge("openai_realtime", config(fake))
        fake.script(FunctionCall("lookup_order", {"order_id": "A-17"}, call_id="call_5", done_late=True),
                    AgentTurn(audio=b"\x7f" * 160, transcript="Found it."))
        await bridge.create_response()
        call = await events.wait(ToolCall)
        await bridge.send_tool_result(call.call_id, {"status": "shipped"})
        assert not events.of(ResponseDone)  # the call's response is still in progress
        await bridge.send_audio(ULAW_FRAME)  # the client's next message: then the server finishes it
        await events.wait(AgentTranscript, lambda e: e.final)
        await bridge.close()
        return events

    events = run_async(main())
    assert [e.text for e in events.of(AgentTranscript) if e.final] == ["Found it."]
    assert not events.of(BridgeError)  # nothing refused
    asked = [m["type"] for m in fake.received if m["type"] in ("conversation.item.create", "response.create")]
    assert asked == ["response.create", "conversation.item.create", "response.create"]
    assert len(events.of(ResponseDone)) == 2


def test_barge_in_truncates_at_heard_position(fake):
    async def main():
        bridge, events = await open_bridge("openai_realtime", config(fake))
        fake.script(AgentTurn(audio=b"\x55" * 16000, transcript="a long answer " * 20, chunk_bytes=160, pace=0.01))
        await bridge.create_response("Hello, this is Acme.")
        first = await events.wait(AgentAudio)
        await bridge.send_audio(ULAW_FRAME)  # caller talks over the agent
        await events.wait(SpeechStarted)
        done = await events.wait(ResponseDone)
        await bridge.interrupt(first.item_id, 120)
        truncate = await fake.async_wait_for("conversation.item.truncate")
        await bridge.close()
        return first, done, truncate

    first, done, truncate = run_async(main())
    assert done.status == "cancelled"
    assert truncate == {"type": "conversation.item.truncate", "item_id": first.item_id,
                        "content_index": 0, "audio_end_ms": 120}
    greeting = fake.received_of("response.create")[0]
    assert "Hello, this is Acme." in greeting["response"]["instructions"]


def test_user_text_is_a_user_message_that_supersedes_the_reply_in_progress(fake):
    async def main():
        bridge, events = await open_bridge("openai_realtime", config(fake))
        fake.script(AgentTurn(audio=b"\x55" * 16000, transcript="For sales press one " * 10,
                              chunk_bytes=160, pace=0.01),
                    AgentTurn(audio=b"\x66" * 320, transcript="Connecting you to sales."))
        await bridge.create_response()
        await events.wait(AgentAudio)
        with pytest.raises(ValueError):
            await bridge.send_user_text("  ")
        await bridge.send_user_text("[The caller pressed keypad keys: 1]")
        cut = await events.wait(ResponseDone)
        reply = await events.wait(AgentTranscript, lambda e: e.final)
        await events.wait(ResponseDone)
        # With no reply in progress the cancel is refused; that must not surface.
        fake.script(AgentTurn(audio=b"\x66" * 160, transcript="Anything else?"))
        await bridge.send_user_text("[The caller pressed keypad keys: 2 #]")
        await events.wait(AgentTranscript, lambda e: e.final and e.text == "Anything else?")
        await bridge.close()
        return bridge, events, cut, reply

    bridge, events, cut, reply = run_async(main())
    assert cut.status == "cancelled" and reply.text == "Connecting you to sales."
    assert not events.of(BridgeError)
    kinds = [m["type"] for m in fake.received if m["type"] != "session.update"]
    assert kinds == ["response.create",
                     "response.cancel", "conversation.item.create", "response.create",
                     "response.cancel", "conversation.item.create", "response.create"]
    assert fake.received_of("conversation.item.create")[0]["item"] == {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "[The caller pressed keypad keys: 1]"}]}
    assert fake.user_texts() == ["[The caller pressed keypad keys: 1]", "[The caller pressed keypad keys: 2 #]"]
    assert bridge.metrics.user_texts == 2


def test_fake_refuses_items_the_api_would_refuse(fake):
    async def main():
        bridge, events = await open_bridge("openai_realtime", config(fake))
        # a user message may not carry model output
        await bridge._conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "output_text", "text": "hi"}]})
        err = await events.wait(BridgeError)
        await bridge.close()
        return err

    err = run_async(main())
    assert err.error.code == "invalid_value" and not err.fatal
    assert fake.user_texts() == []


def test_provider_errors_mid_session_are_typed(fake):
    async def main():
        bridge, events = await open_bridge("openai_realtime", config(fake))
        fake.script(ProviderFailure(message="Rate limit reached", code="rate_limit_exceeded"),
                    AgentTurn(audio=b"\x01" * 160, transcript="still here"))
        await bridge.create_response()
        soft = await events.wait(BridgeError)
        await events.wait(AgentTranscript, lambda e: e.final)  # the session survived
        fake.script(ProviderFailure(message="The server had an error", code="server_error", fatal=True))
        await bridge.create_response()
        hard = [await events.wait(BridgeError), await events.wait(BridgeError)]
        await events.wait_finished()
        await bridge.close()
        return soft, hard

    soft, hard = run_async(main())
    assert isinstance(soft.error, ProviderError)
    assert (soft.fatal, soft.error.retryable, soft.error.code) == (False, True, "rate_limit_exceeded")
    assert soft.error.provider == "openai_realtime"
    assert hard[0].error.code == "server_error" and not hard[0].fatal
    assert hard[1].fatal and hard[1].error.code == "connection_closed" and hard[1].error.retryable


def test_bad_api_key_fails_fast_without_retry(fake):
    refused_key("openai_realtime", SessionConfig(credentials={"api_key": "sk-wrong"}, base_url=fake.url,
                                                 connect_attempts=3))


def test_connect_retries_a_retryable_refusal(fake):
    fake.reject_connections(503)

    async def main():
        bridge = create_bridge("openai_realtime", config(fake, connect_attempts=3))
        await bridge.connect()
        await bridge.close()
        return bridge

    bridge = run_async(main())
    assert bridge.metrics.connect_attempts == 2
    assert bridge.metrics.connect_latency_ms is not None
    assert fake.connection_count == 2
    assert fake.handshakes[1].path == "/v1/realtime?model=gpt-realtime"


def test_missing_credentials_is_a_clear_error():
    async def main():
        with pytest.raises(ProviderError) as info:
            await create_bridge("openai_realtime", SessionConfig()).connect()
        return info.value

    err = run_async(main())
    assert err.code == "missing_credentials" and not err.retryable


def test_barge_in_can_be_turned_off_provider_side():
    from agents.bridges.openai_realtime import OpenAIRealtimeBridge

    payload = OpenAIRealtimeBridge(SessionConfig(allow_interruptions=False, vad_threshold=0.7,
                                                 silence_duration_ms=800)).session_payload()
    detection = payload["audio"]["input"]["turn_detection"]
    assert detection["interrupt_response"] is False
    assert (detection["threshold"], detection["silence_duration_ms"]) == (0.7, 800)


def test_wideband_pcm_session_when_asked(fake):
    from agents.bridges import PCM16_24K

    async def main():
        bridge = create_bridge("openai_realtime", config(fake, input_format=PCM16_24K, output_format=PCM16_24K))
        assert bridge.capabilities.input_formats[0] == PCM16_24K and bridge.output_format == PCM16_24K
        await bridge.connect()
        events = EventCollector(bridge)
        fake.script(AgentTurn(audio=b"\x01\x00" * 480))
        await bridge.create_response()
        audio = await events.wait(AgentAudio)
        await bridge.close()
        return audio

    audio = run_async(main())
    session = fake.received_of("session.update")[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio.format == PCM16_24K


def test_azure_openai_deployment_through_the_credentials_endpoint_and_api_version():
    with FakeOpenAIRealtime(api_key="azure-key-1", azure_api_version="2025-04-01-preview",
                            azure_deployment="rt-prod") as fake:
        fake.script(AgentTurn(audio=b"\xff" * 800, transcript="Hello from Azure."))
        creds = {"api_key": "azure-key-1", "api_version": "2025-04-01-preview", "azure_deployment": "rt-prod",
                 "base_url": fake.azure_endpoint}

        async def main():
            bridge, events = await open_bridge("openai_realtime", SessionConfig(instructions="x", credentials=creds))
            await bridge.create_response()
            final = await events.wait(AgentTranscript, lambda e: e.final)
            await bridge.close()
            return final

        final = run_async(main())
        assert final.text == "Hello from Azure."
        (handshake,) = fake.handshakes
        assert handshake.path.startswith("/openai/realtime?")
        assert handshake.headers["api-key"] == "azure-key-1" and "authorization" not in handshake.headers

        async def wrong(**change):
            bridge = create_bridge("openai_realtime", SessionConfig(credentials={**creds, **change},
                                                                    connect_attempts=1))
            with pytest.raises(ProviderError) as info:
                await bridge.connect()
            return info.value

        assert run_async(wrong(azure_deployment="other")).code == "http_404"
        bad_version = run_async(wrong(api_version="latest"))
        assert bad_version.code == "invalid_azure_settings" and "api_version 'latest'" in bad_version.message
        no_endpoint = run_async(wrong(base_url=""))
        assert no_endpoint.code == "invalid_azure_settings" and "needs a base_url" in no_endpoint.message
        assert len(fake.handshakes) == 2  # the malformed settings never dialled


def test_azure_endpoint_goes_through_the_outbound_guard(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False

    async def main():
        bridge = create_bridge("openai_realtime", SessionConfig(credentials={
            "api_key": "k", "api_version": "2025-04-01-preview", "base_url": "https://10.0.0.7"}))
        with pytest.raises(ProviderError) as info:
            await bridge.connect()
        return info.value

    err = run_async(main())
    assert (err.code, err.retryable) == ("base_url_refused", False)
