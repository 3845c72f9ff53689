"""Answer classification as pure code: the line listener's tones and utterances, the
phrase rules, and the state machine over the labelled synthesized set
(calls/testing/answer_corpus.json, rendered with espeak-ng and sox)."""

from __future__ import annotations

import numpy as np
import pytest

from calls.audio.mulaw import mulaw_to_array
from calls.audio.tones import LineListener, Sound, Tone
from calls.media.answer import REVISE_MS, AnswerClassifier, AnswerTimings, Outcome, classify_text
from calls.testing.answer_corpus import load_corpus, missing_tools
from calls.testing.signals import speech_like, tone

SILENT = np.zeros(160, dtype=np.int16)


def play(machine: AnswerClassifier, samples: np.ndarray) -> None:
    for start in range(0, len(samples) - 159, 160):
        machine.feed(samples[start:start + 160])


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000), dtype=np.int16)


def test_listener_reports_a_steady_tone_early_and_at_its_end_with_its_frequency() -> None:
    listener = LineListener()
    events = []
    audio = np.concatenate([quiet(0.2), tone(0.6, hz=1400), quiet(0.5)])
    for start in range(0, len(audio) - 159, 160):
        events += listener.feed(audio[start:start + 160])
    tones = [e for e in events if isinstance(e, Tone)]
    assert [t.ended for t in tones] == [False, True]
    assert all(abs(t.hz - 1400) < 15 for t in tones)
    assert 580 <= tones[1].ms <= 620 and tones[0].start_ms == 200
    assert not [e for e in events if isinstance(e, Sound)]  # the tone's edges are no utterance


def test_listener_hears_speech_as_sound_and_white_noise_as_quiet() -> None:
    listener = LineListener()
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(16000) * 600).astype(np.int16)
    events = []
    audio = np.concatenate([noise, speech_like(1.0, seed=3), quiet(0.6)])
    for start in range(0, len(audio) - 159, 160):
        events += listener.feed(audio[start:start + 160])
    sounds = [e for e in events if isinstance(e, Sound)]
    assert len(sounds) == 1
    assert 1900 <= sounds[0].start_ms <= 2100 and 800 <= sounds[0].ms <= 1000


@pytest.mark.parametrize(("text", "outcome"), [
    ("Please leave a message after the tone.", Outcome.VOICEMAIL),
    ("Hola, no estoy disponible, deja tu mensaje después del tono.", Outcome.VOICEMAIL),
    ("Bonjour, laissez un message après le bip.", Outcome.VOICEMAIL),
    ("Bitte hinterlassen Sie eine Nachricht nach dem Signalton.", Outcome.VOICEMAIL),
    ("The person you're calling is using a screening service from Google.", Outcome.SCREENING),
    ("If you record your name and reason for calling, I'll see if this person is available.", Outcome.SCREENING),
    ("For billing, press 2. For claims, press 1.", Outcome.IVR),
    ("Para español, oprima el nueve.", Outcome.IVR),
    ("Hello?", Outcome.HUMAN),
    ("¿Bueno?", Outcome.HUMAN),
    ("Allô, oui?", Outcome.HUMAN),
    ("I was just about to call you about the invoice", None),
])
def test_phrase_rules(text: str, outcome: Outcome | None) -> None:
    assert classify_text(text)[0] is outcome


def test_a_fax_tone_decides_fax_within_a_fraction_of_a_second() -> None:
    machine = AnswerClassifier()
    play(machine, np.concatenate([quiet(0.3), tone(3.0, hz=2100)]))
    assert machine.decision is not None and machine.decision.outcome is Outcome.FAX
    assert machine.decision.at_ms <= 500
    assert machine.decision.signals[-1] == "tone:2100Hz"


def test_a_beep_after_a_greeting_is_voicemail_and_its_end_is_when_to_speak() -> None:
    machine = AnswerClassifier(expect_transcript=False)
    play(machine, np.concatenate([quiet(0.4), speech_like(1.2, seed=4), quiet(0.4), tone(0.15, hz=1000)]))
    assert machine.decision is not None and machine.decision.outcome is Outcome.VOICEMAIL
    assert machine.voicemail_ready() is None  # the beep is still sounding
    play(machine, quiet(0.1))
    assert machine.voicemail_ready() == "beep"


def test_a_person_who_says_hello_after_three_seconds_of_silence_is_a_person() -> None:
    machine = AnswerClassifier()
    play(machine, np.concatenate([quiet(3.0), speech_like(0.6, seed=5), quiet(2.0)]))
    assert machine.decision is not None and machine.decision.outcome is Outcome.HUMAN
    assert 3600 <= machine.decision.at_ms <= 5000


def test_nothing_heard_is_silence_only_after_the_configured_wait() -> None:
    machine = AnswerClassifier(AnswerTimings(silence_ms=5000))
    play(machine, quiet(4.9))
    assert machine.decision is None
    play(machine, quiet(0.2))
    assert machine.decision is not None and machine.decision.outcome is Outcome.SILENCE


def test_the_first_decision_stands_and_late_or_repeated_carrier_verdicts_are_kept_as_late_signals() -> None:
    machine = AnswerClassifier()
    play(machine, np.concatenate([quiet(0.5), speech_like(0.5, seed=6)]))
    assert machine.carrier("human") is not None
    assert machine.decision is not None and machine.decision.outcome is Outcome.HUMAN
    assert machine.carrier("machine_end") is None
    assert machine.carrier("machine_end") is None
    assert machine.decision.outcome is Outcome.HUMAN
    assert [signal for _, signal in machine.late] == ["carrier:machine_end", "carrier:machine_end"]


def test_a_carrier_human_verdict_does_not_override_a_machine_length_greeting() -> None:
    machine = AnswerClassifier(expect_transcript=True)
    play(machine, speech_like(4.0, seed=7))
    assert machine.carrier("human") is None
    assert machine.decision is None
    assert machine.transcript("For sales, press 1. For support, press 2.") is not None
    assert machine.decision is not None and machine.decision.outcome is Outcome.IVR


@pytest.fixture(scope="module")
def corpus() -> list:
    problem = missing_tools()
    if problem:
        pytest.skip(problem)
    return load_corpus()


def run_clip(clip, *, transcripts: bool) -> AnswerClassifier:  # type: ignore[no-untyped-def]
    machine = AnswerClassifier(expect_transcript=transcripts)
    pending = list(clip.transcripts) if transcripts else []
    pcm = mulaw_to_array(clip.mulaw)
    for start in range(0, len(pcm) - 159, 160):
        machine.feed(pcm[start:start + 160])
        while pending and pending[0][0] <= machine.at_ms:
            machine.transcript(pending.pop(0)[1])
    while machine.decision is None and machine.at_ms < 30000:
        machine.feed(SILENT)
    return machine


def test_every_labelled_clip_is_classified_as_labelled_with_transcripts(corpus: list) -> None:
    wrong = []
    for clip in corpus:
        machine = run_clip(clip, transcripts=True)
        got = machine.decision.outcome.value if machine.decision else None
        if got != clip.label:
            wrong.append((clip.key, clip.label, got))
    assert not wrong


def test_audio_alone_never_takes_a_person_for_a_machine(corpus: list) -> None:
    """Without a transcript screening and menus read as voicemail (documented); a person
    must still never be hung up on."""
    for clip in corpus:
        machine = run_clip(clip, transcripts=False)
        assert machine.decision is not None
        if clip.label == "human":
            assert machine.decision.outcome is Outcome.HUMAN, clip.key
        if clip.label in ("fax", "silence", "voicemail"):
            assert machine.decision.outcome.value == clip.label, clip.key


def test_a_person_is_revised_to_voicemail_by_a_beep_within_the_window_but_not_by_the_carrier() -> None:
    machine = AnswerClassifier(expect_transcript=False)
    play(machine, np.concatenate([quiet(0.4), speech_like(0.8, seed=8), quiet(1.2)]))
    assert machine.decision is not None and machine.decision.outcome is Outcome.HUMAN
    assert machine.carrier("machine_end") is None  # a guess from afar: the person stands
    play(machine, np.concatenate([speech_like(1.5, seed=9), quiet(0.3), tone(0.4, hz=1000), quiet(0.2)]))
    assert machine.revised and machine.decision.outcome is Outcome.VOICEMAIL
    assert "revised from human" in machine.decision.signals
    assert machine.voicemail_ready() == "beep"


def test_after_the_window_a_person_stays_a_person() -> None:
    machine = AnswerClassifier(expect_transcript=False)
    play(machine, np.concatenate([quiet(0.4), speech_like(0.8, seed=8), quiet(1.2)]))
    decided_at = machine.decision.at_ms if machine.decision else 0
    play(machine, quiet((REVISE_MS + 200) / 1000))
    play(machine, tone(0.4, hz=1000))
    assert machine.decision is not None and machine.decision.outcome is Outcome.HUMAN
    assert machine.decision.at_ms == decided_at and not machine.revised
