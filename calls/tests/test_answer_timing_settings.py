"""An agent's answer classification timings reach the state machine of its outbound
calls: the published version's seconds become ``AnswerTimings`` (``answer_policy``), and
each one moves the point where the machine decides. The machine's clock is the line's
own audio (ms of frames fed), so the test plays synthetic audio and never waits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from calls.media.answer import AnswerClassifier, AnswerTimings, Outcome
from calls.testing.signals import speech_like, tone
from calls.tests.factories import make_call, make_ready_agent

pytestmark = pytest.mark.django_db


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000), dtype=np.int16)


def classifier_of(org: Any, **settings: Any) -> AnswerClassifier:
    """The state machine an outbound call of an agent with ``settings`` runs."""
    from calls.agent_link import answer_policy

    agent = make_ready_agent(org, answer_detection=True, **settings)
    call = make_call(org, carrier="twilio", agent=agent, agent_version=agent.published_version,
                     status="in_progress")
    policy = answer_policy(call)
    assert policy is not None
    return AnswerClassifier(policy.timings, expect_transcript=False)


def play(machine: AnswerClassifier, samples: np.ndarray) -> None:
    for start in range(0, len(samples) - 159, 160):
        machine.feed(samples[start:start + 160])


def test_the_published_seconds_become_the_machines_milliseconds(org_a: Any) -> None:
    machine = classifier_of(org_a, answer_silence_s=4.5, answer_deadline_s=3, answer_revise_s=0,
                            answer_beep_wait_s=12.5)
    assert machine.timings == AnswerTimings(silence_ms=4500, deadline_ms=3000, revise_ms=0, beep_wait_ms=12500)
    assert classifier_of(org_a).timings == AnswerTimings()  # the defaults are the old constants


# A 2.2 s utterance from 0.4 s, then quiet: too long for a "hello?", too short for a machine's
# greeting; undecided until the deadline, counted from the first sound.
UNDECIDED = np.concatenate([quiet(0.4), speech_like(2.2, seed=11), quiet(10)])


@pytest.mark.parametrize(("deadline_s", "decided_at_ms"), [(None, 6400), (3, 3400), (10, 10400)])
def test_the_deadline_moves_when_an_undecided_line_is_taken_for_a_person(org_a: Any, deadline_s: float | None,
                                                                         decided_at_ms: int) -> None:
    machine = classifier_of(org_a, **({} if deadline_s is None else {"answer_deadline_s": deadline_s}))
    play(machine, UNDECIDED)
    assert machine.decision is not None and machine.decision.outcome is Outcome.HUMAN
    assert machine.decision.at_ms == decided_at_ms
    assert machine.decision.signals == ("deadline: undecided is treated as a person",)


@pytest.mark.parametrize(("silence_s", "decided_at_ms"), [(None, 8000), (2.5, 2500)])
def test_the_silence_wait_moves_when_an_empty_line_is_given_up(org_a: Any, silence_s: float | None,
                                                                decided_at_ms: int) -> None:
    machine = classifier_of(org_a, **({} if silence_s is None else {"answer_silence_s": silence_s}))
    play(machine, quiet(9))
    assert machine.decision is not None and machine.decision.outcome is Outcome.SILENCE
    assert machine.decision.at_ms == decided_at_ms


# "Hi, this is Dana." [pause] — a person — then, 2.2 s after that decision, a beep.
DANA_THEN_BEEP = (np.concatenate([quiet(0.4), speech_like(0.8, seed=8), quiet(1.2)]),
                  np.concatenate([speech_like(1.5, seed=9), quiet(0.3), tone(0.4, hz=1000), quiet(0.2)]))


@pytest.mark.parametrize(("revise_s", "revised"), [(None, True), (0, False), (2, False), (5, True)])
def test_the_revision_window_decides_whether_a_beep_takes_back_a_person(org_a: Any, revise_s: float | None,
                                                                        revised: bool) -> None:
    machine = classifier_of(org_a, **({} if revise_s is None else {"answer_revise_s": revise_s}))
    play(machine, DANA_THEN_BEEP[0])
    assert machine.decision is not None and machine.decision.outcome is Outcome.HUMAN
    person_at = machine.decision.at_ms
    play(machine, DANA_THEN_BEEP[1])
    assert machine.revised is revised
    assert machine.decision.outcome is (Outcome.VOICEMAIL if revised else Outcome.HUMAN)
    if revised:
        assert machine.decision.at_ms - person_at <= (revise_s or 4) * 1000


@pytest.mark.parametrize(("beep_wait_s", "ready_after_ms"), [(None, 20000), (6, 6000)])
def test_the_beep_wait_moves_when_the_message_is_left_without_a_beep(org_a: Any, beep_wait_s: float | None,
                                                                      ready_after_ms: int) -> None:
    machine = classifier_of(org_a, **({} if beep_wait_s is None else {"answer_beep_wait_s": beep_wait_s}))
    # a long greeting (a machine: no transcript is expected), that goes on talking, never beeping
    play(machine, speech_like(3.2, seed=7))
    assert machine.decision is not None and machine.decision.outcome is Outcome.VOICEMAIL
    decided_at = machine.decision.at_ms
    chatter = speech_like(0.6, seed=12)
    while machine.voicemail_ready() is None and machine.at_ms < 70000:
        play(machine, chatter)
    assert machine.voicemail_ready() == "beep_wait_expired"
    assert ready_after_ms <= machine.at_ms - decided_at < ready_after_ms + 600
