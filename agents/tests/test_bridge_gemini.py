"""Gemini Live bridge against the fake TLS Live server, through the real google-genai SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.bridges import (
    PCM16_16K,
    PCM16_24K,
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
    ToolCallCancelled,
    create_bridge,
)
from agents.testing.events import EventCollector, run_async
from agents.testing.fake_gemini import FakeGeminiLive
from agents.testing.script import AgentTurn, FunctionCall, GoAway, ProviderFailure
from agents.tests.bridges import LOOKUP, bridge_config, open_bridge, refused_key, serving
from voiceplatform.testing import wait_until

PCM_FRAME = b"\x10\x00\xf0\xff" * 160  # 20 ms of 16 kHz PCM16
fake = serving(lambda: FakeGeminiLive(turn_bytes=len(PCM_FRAME) * 2))


def config(fake: FakeGeminiLive, **kw: Any) -> SessionConfig:
    return bridge_config(fake, **{"voice": "Puck", "language": "en-US", **kw})


def test_audio_formats_transcripts_and_setup(fake):
    agent_audio = bytes(range(256)) * 12

    async def main():
        bridge = create_bridge("gemini_live", config(fake, temperature=0.4))
        assert (bridge.input_format, bridge.output_format) == (PCM16_16K, PCM16_24K)
        await bridge.connect()
        events = EventCollector(bridge)
        fake.caller_says("where is my order")
        fake.script(AgentTurn(audio=agent_audio, transcript="It ships today.", chunk_bytes=960))
        await bridge.send_audio(PCM_FRAME)
        await bridge.send_audio(PCM_FRAME)
        await events.wait(SpeechStarted)
        await events.wait(SpeechStopped)
        caller = await events.wait(CallerTranscript, lambda e: e.final)
        agent = await events.wait(AgentTranscript, lambda e: e.final)
        done = await events.wait(ResponseDone)
        await bridge.close()
        return bridge, events, caller, agent, done

    bridge, events, caller, agent, done = run_async(main())
    setup = fake.received_of("setup")[0]["setup"]
    assert setup["model"] == "models/gemini-3.8-live"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Puck"
    assert setup["generationConfig"]["temperature"] == 0.4
    assert setup["systemInstruction"]["parts"][0]["text"] == "You are a test agent."
    assert setup["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == LOOKUP["parameters"]
    assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {"triggerTokens": 25600, "slidingWindow": {"targetTokens": 12800}}
    inputs = fake.received_of("realtimeInput")
    assert {m["realtimeInput"]["audio"]["mimeType"] for m in inputs} == {"audio/pcm;rate=16000"}
    assert fake.audio_received() == PCM_FRAME * 2
    audio = events.of(AgentAudio)
    assert b"".join(a.audio for a in audio) == agent_audio and {a.format for a in audio} == {PCM16_24K}
    assert caller.text == "where is my order"
    assert agent.text == "It ships today."
    assert done.status == "completed" and done.usage["total_token_count"] == 30
    assert bridge.resumption_handle is not None


def test_tool_call_round_trip_and_cancellation(fake):
    async def main():
        bridge, events = await open_bridge("gemini_live", config(fake))
        fake.script(FunctionCall("lookup_order", {"order_id": "A-17"}, call_id="fc1"),
                    AgentTurn(audio=b"\x00\x01" * 480, transcript="Found it."),
                    FunctionCall("lookup_order", {"order_id": "B-2"}, call_id="fc2"))
        await bridge.create_response()
        call = await events.wait(ToolCall)
        await bridge.send_tool_result(call.call_id, {"status": "shipped"})
        await events.wait(AgentTranscript, lambda e: e.final)
        await bridge.create_response()
        second = await events.wait(ToolCall)
        await bridge.send_audio(PCM_FRAME)  # caller talks while the call is pending
        cancelled = await events.wait(ToolCallCancelled)
        with pytest.raises(ProviderError) as info:
            await bridge.send_tool_result(second.call_id, "too late")
        await bridge.close()
        return call, cancelled, info.value

    call, cancelled, late = run_async(main())
    assert call == ToolCall(call_id="fc1", name="lookup_order", arguments={"order_id": "A-17"})
    response = fake.received_of("toolResponse")[0]["toolResponse"]["functionResponses"][0]
    assert response == {"id": "fc1", "name": "lookup_order", "response": {"status": "shipped"}}
    assert cancelled.call_ids == ("fc2",)
    assert late.code == "unknown_call_id"


def test_barge_in_interrupts_and_local_interrupt_mutes_the_rest(fake):
    async def main():
        bridge, events = await open_bridge("gemini_live", config(fake))
        fake.script(AgentTurn(audio=b"\x01\x00" * 9600, chunk_bytes=960, pace=0.01),
                    AgentTurn(audio=b"\x02\x00" * 4800, chunk_bytes=960, pace=0.01))
        await bridge.create_response("Hello from Acme.")
        await events.wait(AgentAudio)
        await bridge.send_audio(PCM_FRAME)  # the provider's VAD hears the caller
        await events.wait(SpeechStarted)
        cut = await events.wait(ResponseDone)
        # Second turn: our own VAD detects the barge-in first.
        await bridge.create_response()
        second = await events.wait(AgentAudio, lambda e: e.audio.startswith(b"\x02"))
        await bridge.interrupt(second.item_id, 40)
        seen_at_interrupt = len(events.of(AgentAudio))
        done = await events.wait(ResponseDone)
        await bridge.close()
        return cut, done, seen_at_interrupt, events

    cut, done, seen_at_interrupt, events = run_async(main())
    assert cut.status == "cancelled"
    assert done.status == "completed"
    # Nothing of the interrupted turn reached the caller after interrupt().
    assert len(events.of(AgentAudio)) == seen_at_interrupt
    greeting = fake.received_of("clientContent")[0]["clientContent"]
    assert "Hello from Acme." in greeting["turns"][0]["parts"][0]["text"] and greeting["turnComplete"]


def test_user_text_is_a_complete_user_turn_that_interrupts_generation(fake):
    async def main():
        bridge, events = await open_bridge("gemini_live", config(fake))
        fake.script(AgentTurn(audio=b"\x01\x00" * 9600, chunk_bytes=960, pace=0.01),
                    AgentTurn(audio=b"\x02\x00" * 960, transcript="Sales it is."))
        await bridge.create_response()
        first = await events.wait(AgentAudio)
        await bridge.interrupt(first.item_id, 20)  # the session barges in before sending
        await bridge.send_user_text("[The caller pressed keypad keys: 1]")
        cut = await events.wait(ResponseDone)
        reply = await events.wait(AgentAudio, lambda e: e.audio.startswith(b"\x02"))
        await events.wait(ResponseDone)
        # A barge-in after a turn completed must not mute the reply that follows.
        fake.script(AgentTurn(audio=b"\x03\x00" * 960, transcript="Anything else?"))
        await bridge.interrupt(reply.item_id, 10)
        await bridge.send_user_text("[The caller pressed keypad keys: 2 #]")
        after = await events.wait(AgentAudio, lambda e: e.audio.startswith(b"\x03"))
        await events.wait(ResponseDone)
        await bridge.close()
        return bridge, events, cut, after

    bridge, events, cut, after = run_async(main())
    assert cut.status == "cancelled"
    assert not events.of(SpeechStarted)  # our own text cut the reply, not the caller's voice
    assert after.item_id != events.of(AgentAudio)[0].item_id
    sent = ["[The caller pressed keypad keys: 1]", "[The caller pressed keypad keys: 2 #]"]
    turns = [m["clientContent"] for m in fake.received_of("clientContent")][1:]
    assert turns == [{"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True} for text in sent]
    assert fake.user_texts()[1:] == sent
    assert bridge.metrics.user_texts == 2


def test_resumes_across_goaway_transparently(fake):
    async def main():
        bridge, events = await open_bridge("gemini_live", config(fake))
        fake.script(AgentTurn(audio=b"\x03\x00" * 480, transcript="first"), GoAway(time_left="1s", delay=0.05))
        await bridge.create_response()
        await events.wait(ResponseDone)
        # the fake sends a fresh handle just after the turn completes: resuming must use it
        await asyncio.to_thread(
            wait_until, lambda: fake.last_handle is not None and bridge.resumption_handle == fake.last_handle,
            "the bridge to hold the fake's fresh resumption handle", timeout=10)
        handle = bridge.resumption_handle
        await bridge.create_response()  # runs the GoAway step
        await fake.async_wait_for("setup", count=2)
        fake.caller_says("are you still there")
        fake.script(AgentTurn(audio=b"\x04\x00" * 480, transcript="still here"))
        await bridge.send_audio(PCM_FRAME)
        await bridge.send_audio(PCM_FRAME)
        caller = await events.wait(CallerTranscript, lambda e: e.final)
        agent = await events.wait(AgentTranscript, lambda e: e.text == "still here")
        await bridge.close()
        return bridge, events, handle, caller, agent

    bridge, events, handle, caller, agent = run_async(main())
    assert [s["handle"] for s in fake.setups] == [None, handle]
    assert bridge.metrics.reconnects == 1
    assert caller.text == "are you still there" and agent.final
    assert not events.of(BridgeError)
    assert fake.audio_received() == PCM_FRAME * 2


def test_retryable_close_resumes_but_policy_close_is_fatal(fake):
    async def main():
        bridge, events = await open_bridge("gemini_live", config(fake))
        fake.script(ProviderFailure("internal error", close_code=1011))
        await bridge.create_response()
        await fake.async_wait_for("setup", count=2)
        fake.script(ProviderFailure("API key not valid. Please pass a valid API key.", close_code=1008))
        await bridge.create_response()
        err = await events.wait(BridgeError)
        await events.wait_finished()
        await bridge.close()
        return bridge, err

    bridge, err = run_async(main())
    assert bridge.metrics.reconnects == 1
    assert err.fatal and isinstance(err.error, ProviderError)
    assert (err.error.code, err.error.retryable) == ("permission_denied", False)
    assert "API key not valid" in err.error.message


def test_bad_key_is_not_retried(fake):
    refused_key("gemini_live", SessionConfig(credentials={"api_key": "wrong"}, base_url=fake.url,
                                             ssl_context=fake.client_ssl_context()))


def test_resumption_retries_a_refused_reconnect(fake):
    async def main():
        bridge = create_bridge("gemini_live", config(fake))
        bridge.retry_backoff = (0.01,)
        await bridge.connect()
        events = EventCollector(bridge)
        fake.reject_connections(503)
        fake.script(GoAway(time_left="0s", delay=0.01), AgentTurn(audio=b"\x05\x00" * 480, transcript="back"))
        await bridge.create_response()
        await fake.async_wait_for("setup", count=2)
        await bridge.create_response()
        agent = await events.wait(AgentTranscript, lambda e: e.final)
        await bridge.close()
        return bridge, events, agent

    bridge, events, agent = run_async(main())
    assert agent.text == "back"
    assert fake.connection_count == 3  # first, refused, resumed
    assert bridge.metrics.reconnects == 2
    assert not events.of(BridgeError)


def test_barge_in_can_be_turned_off_provider_side(fake):
    async def main():
        bridge = create_bridge("gemini_live", config(fake, allow_interruptions=False))
        await bridge.connect()
        await bridge.close()

    run_async(main())
    setup = fake.received_of("setup")[0]["setup"]
    assert setup["realtimeInputConfig"]["activityHandling"] == "NO_INTERRUPTION"


def test_an_aside_is_asked_for_in_a_client_turn_while_a_tool_call_is_pending(fake):
    async def main():
        bridge, events = await open_bridge("gemini_live", config(fake))
        fake.script(FunctionCall("lookup_order", {"order_id": "A-17"}, call_id="fc1"),
                    AgentTurn(audio=b"\x00\x01" * 480, transcript="One moment while I look that up."))
        await bridge.create_response()
        await events.wait(ToolCall)
        await bridge.say_aside("One moment while I look that up.")
        line = await events.wait(AgentTranscript, lambda e: e.final)
        await bridge.close()
        return line

    line = run_async(main())
    assert line.text == "One moment while I look that up."
    asked = fake.user_texts()[-1]
    assert asked.startswith("[A tool you called is still running.") and asked.endswith("One moment while I look that up.]")
    assert not fake.received_of("toolResponse")


def test_a_text_session_answers_in_text_parts_with_no_audio(fake):
    async def main():
        bridge, events = await open_bridge("gemini_live", config(fake, provider_options={"output_modality": "text"}))
        fake.script(AgentTurn(transcript="Hello, Bookings here."),
                    AgentTurn(transcript="Ten chairs, noted.", usage={"total_tokens": 12}))
        await bridge.create_response("Hello, Bookings here.")
        first = await events.wait(AgentTranscript, lambda e: e.final)
        await events.wait(ResponseDone)
        await bridge.send_user_text("I want ten chairs.")
        second = await events.wait(AgentTranscript, lambda e: e.final and e.text != first.text)
        done = await events.wait(ResponseDone, lambda e: e.usage.get("total_token_count") == 12)
        await bridge.close()
        return bridge, events, first, second, done

    bridge, events, first, second, done = run_async(main())
    setup = fake.received_of("setup")[0]["setup"]
    assert setup["generationConfig"]["responseModalities"] == ["TEXT"]
    assert "speechConfig" not in setup["generationConfig"] and "outputAudioTranscription" not in setup
    assert (first.text, second.text) == ("Hello, Bookings here.", "Ten chairs, noted.")
    deltas = [e.text for e in events.of(AgentTranscript) if not e.final]
    assert "".join(deltas) == "Hello, Bookings here.Ten chairs, noted."  # streamed word by word
    assert first.item_id != second.item_id and done.status == "completed"
    assert not events.of(AgentAudio) and bridge.metrics.audio_out_bytes == 0
    assert fake.user_texts()[-1] == "I want ten chairs."
    assert bridge.metrics.responses == 2



def test_a_model_that_answers_only_in_audio_refuses_a_text_session_for_good():
    with FakeGeminiLive(audio_only=True) as fake:
        bridge = create_bridge("gemini_live", config(fake, provider_options={"output_modality": "text"}))
        with pytest.raises(ProviderError) as refused:
            run_async(bridge.connect())
        assert (refused.value.code, refused.value.retryable) == ("invalid_argument", False)
        assert "non-audio request" in refused.value.message
        assert bridge.metrics.connect_attempts == 1  # a configuration error is not retried


def test_images_go_as_realtime_video_input_and_other_providers_refuse_them(fake):
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) + b"\xff\xd9"

    async def main():
        bridge = create_bridge("gemini_live", config(fake))
        await bridge.connect()
        await bridge.send_image(jpeg)
        await bridge.send_image(jpeg[::-1])
        await bridge.send_audio(PCM_FRAME)  # audio after images still flows
        echo = create_bridge("echo", SessionConfig())
        await echo.connect()
        with pytest.raises(ProviderError) as refused:
            await echo.send_image(jpeg)
        await echo.close()
        await asyncio.to_thread(wait_until, lambda: len(fake.images_received()) == 2 and fake.audio_received(),
                                "the fake to receive both images and the audio")
        await bridge.close()
        return bridge, refused.value

    bridge, refused = run_async(main())
    assert fake.images_received() == [("image/jpeg", jpeg), ("image/jpeg", jpeg[::-1])]
    assert bridge.metrics.images == 2
    assert refused.code == "images_unsupported" and not refused.retryable
    assert "echo takes no images" in refused.message
