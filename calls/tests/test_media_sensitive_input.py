"""The keypad PCI pause (``collect_sensitive_input``): the agent asks for a card number,
the caller's entry reaches the model but is stored nowhere, and the recording's caller
channel is silent from the tool call until the entry is finished. Real OpenAI SDK against
the fake Realtime server; the test client is Twilio over a real socket."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, FunctionCall
from calls.audio.mulaw import array_to_mulaw
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import tone
from calls.tests.test_media_session_openai import Carrier, add_call, events_of

CALLER_TONE = array_to_mulaw(tone(0.6, hz=440, level=0.5))


@pytest.fixture
def fake() -> Iterator[FakeOpenAIRealtime]:
    server = FakeOpenAIRealtime(turn_bytes=10**9)
    with server:
        yield server


def test_sensitive_keypad_entry_is_not_stored_and_the_caller_channel_is_muted(
    fake: FakeOpenAIRealtime, tmp_path: Path
) -> None:
    fake.script(
        FunctionCall(name="collect_sensitive_input", arguments={}, call_id="pci"),
        AgentTurn(audio=array_to_mulaw(tone(0.2, hz=600, level=0.3)), transcript="Type your card number."),
        AgentTurn(audio=array_to_mulaw(tone(0.2, hz=600, level=0.3)), transcript="Thanks."),
    )
    with MediaTestServer() as server:
        # keep_keypad_digits on: even so, the entry typed during the pause is not kept
        call_id, url = add_call(server, "twilio", fake, Carrier(), tmp_path,
                                declared=("collect_sensitive_input",), keep_keypad_digits=True, barge_in=False)

        async def run() -> None:
            async with CarrierMediaClient.twilio(url) as call:
                await asyncio.to_thread(
                    fake.wait_for, lambda m: m.get("item", {}).get("call_id") == "pci", timeout=20)
                await call.play(CALLER_TONE)  # the caller reads the number aloud: muted
                await call.wait_caller_audio_sent()
                for key in "4111#":
                    await call.send_dtmf(key)
                await call.wait_until(lambda: fake.user_texts(), timeout=20, what="the entry reached the model")
                await call.play(CALLER_TONE)  # after the entry: recorded again
                await call.wait_caller_audio_sent()
                await call.hang_up()

        asyncio.run(run())
        result = server.calls.wait_result(call_id)
    assert fake.user_texts() == ["[The caller pressed keypad keys: 4 1 1 1 #]"]  # the model got the keys
    assert events_of(result, "dtmf") == [{}] * 5  # the timeline has the presses, never the keys
    stored = [t.text for t in result.transcript if t.role == "caller"]
    assert stored == ["[The caller pressed 5 keypad keys]"]
    kinds = [e.kind for e in result.events]
    assert kinds.index("sensitive_input_started") < kinds.index("keypad_entry") < kinds.index("sensitive_input_ended")
    started = next(e.at_ms for e in result.events if e.kind == "sensitive_input_started")
    ended = next(e.at_ms for e in result.events if e.kind == "sensitive_input_ended")

    assert result.recording_path is not None
    with wave.open(result.recording_path) as wav:
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    caller = frames[:, 0]
    paused = caller[started * 8:ended * 8]
    after = caller[ended * 8:]
    assert len(paused) > 0 and not paused.any()  # the pause is in the file's clock, as silence
    assert np.abs(after).max() > 1000  # and the caller is recorded again afterwards
    # Counted on the whole file, so no timestamp alignment (a busy machine's) decides it: one
    # 0.6 s tone's worth of caller audio is there (the one after the entry), not two.
    loud = int(np.count_nonzero(np.abs(caller) > 1000))
    assert 8 * 300 < loud < 8 * 900, loud
