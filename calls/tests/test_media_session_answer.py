"""Answer classification in a real call session: the Twilio media client streams the
synthesized labelled audio (calls/testing/answer_corpus.json) over a real socket into
the session, which talks to the fake OpenAI Realtime server through the real SDK.

Checked per outcome: what the session decided and from which signals, whether and
when the provider was asked to speak (nothing before the outcome allows it), what it
said, and how the call ended (hang-up reason given to the carrier)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.bridges.base import SessionConfig
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn
from calls.audio.mulaw import array_to_mulaw
from calls.media.answer import AnswerTimings
from calls.media.answer_gate import AnswerPolicy
from calls.media.result import SessionContext, SessionResult
from calls.testing.answer_corpus import Clip, load_corpus, missing_tools
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import silence_mulaw, tone

GREETING_AUDIO = array_to_mulaw(tone(0.6, hz=600, level=0.4))
VOICEMAIL_AUDIO = array_to_mulaw(tone(1.0, hz=500, level=0.4))
POLICY = AnswerPolicy(on_voicemail="leave_message", voicemail_message="Hi, this is Acme. Please call us back.",
                      screening_identity="Sam from Acme Dental", screening_reason="about tomorrow's appointment",
                      ivr_goal="reach the billing department", carrier_poll_s=0.1, late_window_s=5.0)


@pytest.fixture(scope="module")
def clips() -> dict[str, Clip]:
    problem = missing_tools()
    if problem:
        pytest.skip(problem)
    return {clip.key: clip for clip in load_corpus()}


@pytest.fixture(scope="module")
def server() -> Iterator[MediaTestServer]:
    with MediaTestServer() as srv:
        yield srv


@pytest.fixture
def fake() -> Iterator[FakeOpenAIRealtime]:
    f = FakeOpenAIRealtime(turn_bytes=10**9)
    with f:
        yield f


class Carrier:
    def __init__(self) -> None:
        self.hangups: list[str] = []
        self.verdicts: list[str | None] = []  # what the AMD webhook has stored so far, as polled
        self.verdict: str | None = None
        self.seen: list[str] = []  # the kinds of the session's timeline events, as they happen

    async def hangup(self, reason: str) -> None:
        self.hangups.append(reason)

    async def carrier_verdict(self) -> str | None:
        self.verdicts.append(self.verdict)
        return self.verdict

    async def on_update(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "event":
            self.seen.append(data["kind"])


def add_call(server: MediaTestServer, fake: FakeOpenAIRealtime | None, carrier: Carrier, tmp_path: Path,
             policy: AnswerPolicy = POLICY, transport: str = "twilio") -> tuple[str, str]:
    """A classified outbound call to the OpenAI fake, or (``fake`` None) to the echo agent."""
    holder: dict[str, str] = {}

    def build() -> SessionContext:
        if fake is None:
            provider, config = "echo", SessionConfig(first_message="Hello", speaks_first="agent")
        else:
            provider = "openai_realtime"
            config = SessionConfig(instructions="Be brief.", first_message="Hi, this is Sam from Acme.",
                                   speaks_first="agent", **fake.session_config_kwargs())
        return SessionContext(call_public_id=holder["id"], provider=provider, config=config,
                              recording_path=tmp_path / "rec.wav", hangup=carrier.hangup, answer=policy,
                              carrier_verdict=carrier.carrier_verdict, on_update=carrier.on_update,
                              mark_interval_ms=200)

    call_id, url = server.add_call(transport, build)
    holder["id"] = call_id
    return call_id, url


Talk = Callable[[CarrierMediaClient], Awaitable[None]]


class Dial:
    """Places one classified call against the provider fake and returns the session's result:
    ``talk`` acts as the callee's line (it gets the carrier's media client)."""

    def __init__(self, server: MediaTestServer, tmp_path: Path) -> None:
        self.server = server
        self.tmp_path = tmp_path

    def __call__(self, fake: FakeOpenAIRealtime, talk: Talk, *, carrier: Carrier | None = None,
                 policy: AnswerPolicy = POLICY, transport: str = "twilio", l16_rate: int | None = None,
                 ) -> tuple[SessionResult, Carrier]:
        carrier = carrier or Carrier()
        call_id, url = add_call(self.server, fake, carrier, self.tmp_path, policy, transport)

        async def run() -> None:
            client = CarrierMediaClient.twilio(url) if transport == "twilio" \
                else CarrierMediaClient.plivo(url, l16_rate=l16_rate)
            async with client as call:
                await talk(call)

        asyncio.run(run())
        return self.server.calls.wait_result(call_id), carrier


@pytest.fixture
def dial(server: MediaTestServer, tmp_path: Path) -> Dial:
    return Dial(server, tmp_path)


def playing(audio: bytes, timeout: float = 20) -> Talk:
    """The line plays ``audio`` and waits for the session to hang up."""

    async def talk(call: CarrierMediaClient) -> None:
        await call.play(audio)
        await call.wait_closed(timeout=timeout)

    return talk


def greeted(audio: bytes, timeout: float = 30) -> Talk:
    """The line plays ``audio``, hears 600 ms of the agent, and hangs up."""

    async def talk(call: CarrierMediaClient) -> None:
        await call.play(audio)
        await call.wait_for_audio(ms=600, timeout=timeout)
        await call.hang_up()

    return talk


def events_of(result: SessionResult, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in result.events if e.kind == kind]


def decided(result: SessionResult) -> dict[str, Any]:
    found = events_of(result, "answer.decided")
    assert len(found) == 1, found
    return found[0]


def response_creates(fake: FakeOpenAIRealtime) -> list[dict[str, Any]]:
    return fake.received_of("response.create")


def test_a_person_who_says_hello_after_three_seconds_of_silence_gets_the_greeting(
    dial: Dial, fake: FakeOpenAIRealtime, clips: dict[str, Clip]
) -> None:
    fake.script(AgentTurn(audio=GREETING_AUDIO, transcript="Hi, this is Sam from Acme."))

    async def talk(call: CarrierMediaClient) -> None:
        await call.play(clips["hello_late/en-us"].mulaw[:int(3.5 * 8000)])  # 3 s of silence, "Hello?"
        await call.wait_caller_audio_sent()
        assert not response_creates(fake)  # nothing asked of the provider while it is undecided
        await call.play(silence_mulaw(3.0))
        await call.wait_for_audio(ms=600, timeout=20)
        await call.hang_up()

    result, carrier = dial(fake, talk)
    outcome = decided(result)
    assert outcome["outcome"] == "human" and outcome["signals"][-1].startswith("speech:short greeting")
    assert 3500 <= outcome["audio_ms"] <= 5200
    creates = response_creates(fake)
    assert len(creates) == 1 and "Hi, this is Sam from Acme." in creates[0]["response"]["instructions"]
    # the held session was released: the person's next turns are answered by the provider itself
    updates = fake.received_of("session.update")
    assert updates[0]["session"]["audio"]["input"]["turn_detection"]["create_response"] is False
    assert updates[-1]["session"]["audio"]["input"]["turn_detection"]["create_response"] is True
    assert result.end_reason == "caller_hangup" and carrier.hangups == []


def test_voicemail_waits_for_the_beep_then_leaves_the_message_and_hangs_up(
    dial: Dial, fake: FakeOpenAIRealtime, clips: dict[str, Clip]
) -> None:
    fake.script(AgentTurn(audio=VOICEMAIL_AUDIO, transcript="Hi, this is Acme. Please call us back."))

    async def talk(call: CarrierMediaClient) -> None:
        await call.play(clips["reached_beep_1000/en-us"].mulaw)
        await call.wait_for_audio(ms=1000, timeout=30)
        await call.wait_closed(timeout=20)

    result, carrier = dial(fake, talk)
    outcome = decided(result)
    assert outcome["outcome"] == "voicemail"
    (ready,) = events_of(result, "answer.voicemail_ready")
    # the beep ends about 8.2 s into the clip: not a word before it (counted in line audio, which
    # a busy machine cannot shift as it does the session's wall clock)
    assert ready["reason"] == "beep" and ready["audio_ms"] >= 8000
    creates = response_creates(fake)
    assert len(creates) == 1 and POLICY.voicemail_message in creates[0]["response"]["instructions"]
    assert result.end_reason == "voicemail_left" and carrier.hangups == ["voicemail_left"]


def test_voicemail_set_to_hang_up_hangs_up_without_a_word(
    dial: Dial, fake: FakeOpenAIRealtime, clips: dict[str, Clip]
) -> None:
    result, carrier = dial(fake, playing(clips["beep_only"].mulaw), policy=AnswerPolicy(on_voicemail="hang_up"))
    assert decided(result)["outcome"] == "voicemail"
    assert result.end_reason == "voicemail_hangup" and carrier.hangups == ["voicemail_hangup"]
    assert not response_creates(fake)


def test_a_fax_is_hung_up_on_and_the_provider_never_speaks(
    dial: Dial, fake: FakeOpenAIRealtime, clips: dict[str, Clip]
) -> None:
    result, carrier = dial(fake, playing(clips["ced_2100"].mulaw))
    outcome = decided(result)
    assert outcome["outcome"] == "fax" and outcome["signals"] == ["tone:2100Hz"]
    assert outcome["audio_ms"] <= 700
    assert result.end_reason == "fax" and carrier.hangups == ["fax"]
    assert not response_creates(fake) and result.usage.get("responses", 0) == 0


def test_an_empty_line_is_hung_up_after_the_configured_silence(dial: Dial, fake: FakeOpenAIRealtime) -> None:
    policy = AnswerPolicy(timings=AnswerTimings(silence_ms=2000), carrier_poll_s=0.1)
    result, carrier = dial(fake, playing(silence_mulaw(4.0)), policy=policy)
    assert decided(result)["outcome"] == "silence"
    assert result.end_reason == "answered_silence" and carrier.hangups == ["answered_silence"]
    assert not response_creates(fake)


def test_call_screening_hears_who_is_calling_and_why_then_the_call_goes_on(
    dial: Dial, clips: dict[str, Clip]
) -> None:
    clip = clips["google_call_screen/en-us"]
    # the fake's "VAD" ends a turn after this much audio and transcribes it as scripted
    fake = FakeOpenAIRealtime(turn_bytes=clip.transcripts[0][0] * 8)  # its turn ends 0.5 s after the prompt
    with fake:
        fake.caller_says(clip.transcripts[0][1])
        fake.script(AgentTurn(audio=GREETING_AUDIO, transcript="Sam from Acme Dental."))
        result, carrier = dial(fake, greeted(clip.mulaw))
        outcome = decided(result)
        assert outcome["outcome"] == "screening" and outcome["signals"][-1].startswith("transcript:screening")
        creates = response_creates(fake)
        assert len(creates) == 1
        assert "Sam from Acme Dental. about tomorrow's appointment." in creates[0]["response"]["instructions"]
        assert fake.received_of("session.update")[-1]["session"]["audio"]["input"]["turn_detection"][
            "create_response"] is True
        assert carrier.hangups == []


def test_a_late_and_repeated_carrier_verdict_does_not_undo_the_decision(
    dial: Dial, fake: FakeOpenAIRealtime, clips: dict[str, Clip]
) -> None:
    fake.script(AgentTurn(audio=GREETING_AUDIO, transcript="Hi, this is Sam from Acme."))
    carrier = Carrier()

    async def talk(call: CarrierMediaClient) -> None:
        await call.play(clips["hello/en-us"].mulaw[:int(1.5 * 8000)])
        await call.play(silence_mulaw(1.5))
        await call.wait_for_audio(ms=600, timeout=20)
        # the carrier's AMD arrives after the session decided; the session reads the stored
        # verdict again on every poll, so it sees it repeated
        carrier.verdict = "machine_end"
        await call.wait_until(lambda: "answer.late_signal" in carrier.seen, what="the late signal")
        await call.wait_until(lambda: carrier.verdicts.count("machine_end") >= 2, what="the verdict read again")
        await call.hang_up()

    result, _ = dial(fake, talk, carrier=carrier)
    assert decided(result)["outcome"] == "human"
    assert events_of(result, "answer.late_signal") == [
        {"signal": "carrier:machine_end", "audio_ms": events_of(result, "answer.late_signal")[0]["audio_ms"]}]
    assert result.end_reason == "caller_hangup" and carrier.hangups == []
    assert len(response_creates(fake)) == 1


def test_the_carriers_human_verdict_decides_before_the_line_does(dial: Dial, fake: FakeOpenAIRealtime) -> None:
    fake.script(AgentTurn(audio=GREETING_AUDIO, transcript="Hi, this is Sam from Acme."))
    carrier = Carrier()
    carrier.verdict = "human"
    result, _ = dial(fake, greeted(silence_mulaw(2.0), timeout=20), carrier=carrier)
    outcome = decided(result)
    assert outcome["outcome"] == "human" and outcome["signals"] == ["carrier:human"]
    assert outcome["audio_ms"] <= 1000


def test_a_phone_menu_is_handed_to_the_model_with_the_agents_goal(dial: Dial, clips: dict[str, Clip]) -> None:
    clip = clips["press_menu/en-us"]
    fake = FakeOpenAIRealtime(turn_bytes=clip.transcripts[0][0] * 8)
    with fake:
        fake.caller_says(clip.transcripts[0][1])
        fake.script(AgentTurn(audio=GREETING_AUDIO, transcript="(presses 2)"))
        result, carrier = dial(fake, greeted(clip.mulaw))
        assert decided(result)["outcome"] == "ivr"
        (instruction,) = fake.user_texts()
        assert "automated phone menu" in instruction and "reach the billing department" in instruction
        assert carrier.hangups == []


def test_a_provider_that_cannot_be_held_hears_nothing_until_a_person_is_known(
    server: MediaTestServer, clips: dict[str, Clip], tmp_path: Path
) -> None:
    """The echo agent says back every byte it is sent: whatever comes back was sent to the provider."""
    carrier = Carrier()
    fax_id, fax_url = add_call(server, None, carrier, tmp_path / "fax")
    (tmp_path / "fax").mkdir()
    (tmp_path / "person").mkdir()
    person_id, person_url = add_call(server, None, Carrier(), tmp_path / "person")
    clip = clips["hello/en-us"]

    async def run() -> tuple[int, int]:
        async with CarrierMediaClient.twilio(fax_url) as fax:
            await fax.play(clips["ced_2100"].mulaw)
            await fax.wait_closed(timeout=20)
        async with CarrierMediaClient.twilio(person_url) as person:
            await person.play(clip.mulaw[:int(2.5 * 8000)])  # "Hello?" at 0.4 s, decided about 1.8 s in
            await person.play(silence_mulaw(1.0))
            await person.wait_caller_audio_sent()
            await person.wait_until(lambda: len(person.log.received) >= 8000, timeout=10, what="echo")
            await person.hang_up()
        return len(fax.log.received), len(person.log.received)

    fax_back, person_back = asyncio.run(run())
    assert server.calls.wait_result(fax_id).end_reason == "fax" and fax_back == 0
    result = server.calls.wait_result(person_id)
    outcome = decided(result)
    assert outcome["outcome"] == "human"
    # only what the person said after the decision went to the provider (and came back)
    sent_after_ms = 3500 - outcome["audio_ms"]
    assert 0 < person_back <= (sent_after_ms + 200) * 8


def test_plivo_fax_is_classified_on_the_same_line_analysis(
    dial: Dial, fake: FakeOpenAIRealtime, clips: dict[str, Clip]
) -> None:
    result, carrier = dial(fake, playing(clips["cng_1100"].mulaw), transport="plivo")
    assert decided(result)["outcome"] == "fax" and carrier.hangups == ["fax"]
    assert not response_creates(fake)


def test_a_line_format_the_detectors_do_not_read_is_treated_as_a_person_at_once(
    dial: Dial, fake: FakeOpenAIRealtime
) -> None:
    """Plivo linear PCM at 16 kHz: no classification, and never a session left held and silent."""
    fake.script(AgentTurn(audio=array_to_mulaw(tone(0.3, hz=600)), transcript="Hi, this is Sam from Acme."))

    async def talk(call: CarrierMediaClient) -> None:
        await call.play(bytes(32000))
        await call.wait_until(lambda: response_creates(fake), timeout=10, what="greeting")
        await call.hang_up()

    result, _ = dial(fake, talk, transport="plivo", l16_rate=16000)
    assert events_of(result, "answer.skipped") == [{"reason": "line format not classified"}]
    assert not events_of(result, "answer.decided")
    assert "Hi, this is Sam from Acme." in response_creates(fake)[0]["response"]["instructions"]
    assert fake.received_of("session.update")[-1]["session"]["audio"]["input"]["turn_detection"][
        "create_response"] is True


def test_a_greeting_that_sounded_like_a_person_is_revised_when_the_beep_comes(
    dial: Dial, fake: FakeOpenAIRealtime, clips: dict[str, Clip]
) -> None:
    """"Hi, this is Dana." [1.2 s] "Leave a message after the beep." [beep]: greeted as a person
    at first, then the greeting is cut and the voicemail message is left after the beep."""
    slow_greeting = array_to_mulaw(tone(4.0, hz=600, level=0.4))
    fake.script(AgentTurn(audio=slow_greeting, transcript="Hi, this is Sam from Acme.", chunk_bytes=800, pace=0.1),
                AgentTurn(audio=VOICEMAIL_AUDIO, transcript="Hi, this is Acme. Please call us back."))
    result, carrier = dial(fake, playing(clips["name_pause_beep/en-us"].mulaw, timeout=30))
    assert decided(result)["outcome"] == "human"
    (revised,) = events_of(result, "answer.revised")
    assert revised["outcome"] == "voicemail" and "revised from human" in revised["signals"]
    assert [e["reason"] for e in events_of(result, "answer.voicemail_ready")] == ["beep"]
    creates = response_creates(fake)
    assert len(creates) == 2 and POLICY.voicemail_message in creates[1]["response"]["instructions"]
    assert result.end_reason == "voicemail_left" and carrier.hangups == ["voicemail_left"]
