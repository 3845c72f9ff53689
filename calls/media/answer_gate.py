"""The answer gate: what a call session does between an outbound call being answered
and the agent being allowed to speak.

Contract:
- Nothing is said before the outcome allows it. The session skips its pre-connect
  greeting; a bridge that ``holds_responses`` (OpenAI Realtime) transcribes the caller
  without answering on its own; for other bridges the caller's audio is withheld from
  the provider until the outcome is known (``hear`` returns True), so no provider output
  is produced, or billed, for a voicemail, a fax or an empty line.
- Signals (``calls.media.answer.AnswerClassifier``): every caller frame while listening
  (µ-law table decode plus one small FFT: no database, no Channels layer), the
  provider's final caller transcripts, and the carrier's asynchronous AMD verdict,
  polled off the audio path through ``SessionContext.carrier_verdict`` (it arrives on a
  webhook that may be served by another process, late or twice).
- One decision, then one action: human → the greeting; voicemail → wait for the beep
  (or the greeting's end, or ``beep_wait_ms``) then speak the agent's voicemail message
  and hang up, or hang up at once, per agent; screening → say who is calling and why,
  then carry on as a person's call; IVR → the model navigates toward the agent's goal
  (keys through the send_dtmf tool); fax → hang up; silence → hang up.
- A person may turn out to be a machine within ``timings.revise_ms`` (``answer.revised``): the
  greeting is cut off (as a barge-in), the provider hears no more of the line and its
  audio is dropped, and the voicemail action runs.
- The timeline gets ``answer.decided`` (outcome and the signals that decided it), any
  ``answer.revised`` and ``answer.late_signal``, ``answer.voicemail_ready`` (with the line
  audio heard so far, ``audio_ms``) and the action taken.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agents.bridges.base import ProviderError
from calls.audio.mulaw import mulaw_to_array
from calls.media.answer import AnswerClassifier, AnswerTimings, Decision, Outcome

if TYPE_CHECKING:
    from calls.media.session import CallSession

logger = logging.getLogger("calls.media")

END_VOICEMAIL_LEFT = "voicemail_left"
END_VOICEMAIL_HANGUP = "voicemail_hangup"
END_FAX = "fax"
END_ANSWERED_SILENCE = "answered_silence"
_LATE_SIGNALS_KEPT = 5


@dataclass(frozen=True)
class AnswerPolicy:
    """What the agent wants done per outcome (from its settings; texts already rendered)."""

    on_voicemail: str = "leave_message"  # or "hang_up"
    voicemail_message: str = ""
    screening_identity: str = ""
    screening_reason: str = ""
    ivr_goal: str = ""
    timings: AnswerTimings = field(default_factory=AnswerTimings)
    carrier_poll_s: float = 1.0
    #: after the decision the carrier is still polled this long, for the timeline
    late_window_s: float = 10.0

    def screening_reply(self) -> str:
        parts = [p.strip().rstrip(".") for p in (self.screening_identity, self.screening_reason) if p.strip()]
        return ". ".join(parts) + "." if parts else "Calling on behalf of a business, about your account."


class AnswerGate:
    def __init__(self, session: CallSession, policy: AnswerPolicy, *, holds_responses: bool) -> None:
        self.session = session
        self.policy = policy
        self.machine = AnswerClassifier(policy.timings, expect_transcript=holds_responses)
        self.withhold = not holds_responses
        self.listening = True
        self.open = False
        self.muted = False  # agent audio is dropped (a "person" turned out to be a machine)
        self._poll_task: asyncio.Task[None] | None = None
        self._carrier_seen = ""
        self._late_reported = 0

    def start(self, *, listen: bool = True) -> None:
        """Begin listening. ``listen=False`` (a line format the detectors do not read; every
        carrier stream is 8 kHz µ-law): treated as a person at once, never left held."""
        if not listen:
            self.listening = False
            self.session.record("answer.skipped", reason="line format not classified")
            self.session._spawn(self._converse(Outcome.HUMAN), "answer.human")
            return
        ctx = self.session.context
        if ctx is not None and ctx.carrier_verdict is not None:
            self._poll_task = asyncio.ensure_future(self._poll_carrier())

    def close(self) -> None:
        self.listening = False
        if self._poll_task is not None and self._poll_task is not asyncio.current_task():
            self._poll_task.cancel()

    # -- signals --------------------------------------------------------------------

    def hear(self, mulaw: bytes) -> bool:
        """One caller frame (hot path). True: withhold it from the provider."""
        if not self.listening:
            return self.withhold and not self.open
        machine = self.machine
        decision = machine.feed(mulaw_to_array(mulaw))
        if decision is not None:
            self._decided(decision)
        elif machine.decision is not None and machine.decision.outcome is Outcome.VOICEMAIL:
            ready = machine.voicemail_ready()
            if ready is not None:
                self.listening = False
                self.session.record("answer.voicemail_ready", reason=ready, audio_ms=machine.at_ms)
                self.session._spawn(self._leave_voicemail(), "answer.voicemail")
        elif machine.decision is not None and machine.at_ms > machine.decision.at_ms + machine.timings.revise_ms:
            self.listening = False  # a person, for good
        self._report_late()
        return self.withhold and not self.open

    def transcript(self, text: str) -> None:
        if self.machine.decision is not None and not self.listening:
            return
        decision = self.machine.transcript(text)
        if decision is not None:
            self._decided(decision)
        self._report_late()

    async def _poll_carrier(self) -> None:
        ctx = self.session.context
        assert ctx is not None and ctx.carrier_verdict is not None
        decided_at: float | None = None
        while not self.session.ending:
            try:
                verdict = await ctx.carrier_verdict()
            except Exception as exc:  # noqa: BLE001 - the line and transcript still decide
                logger.warning("carrier verdict lookup failed", extra={"call": self.session.call_public_id,
                                                                       "error": repr(exc)})
                verdict = None
            if verdict and verdict != self._carrier_seen:
                self._carrier_seen = verdict
                decision = self.machine.carrier(verdict)
                if decision is not None:
                    self._decided(decision)
                self._report_late()
            if self.machine.decision is not None:
                loop = asyncio.get_running_loop()
                decided_at = decided_at or loop.time()
                if loop.time() - decided_at >= self.policy.late_window_s:
                    return
            await asyncio.sleep(self.policy.carrier_poll_s)

    def _report_late(self) -> None:
        late = self.machine.late
        while self._late_reported < min(len(late), _LATE_SIGNALS_KEPT):
            at_ms, signal = late[self._late_reported]
            self._late_reported += 1
            self.session.record("answer.late_signal", signal=signal, audio_ms=at_ms)

    # -- actions --------------------------------------------------------------------

    def _decided(self, decision: Decision) -> None:
        session = self.session
        revised = self.machine.revised
        session.record("answer.revised" if revised else "answer.decided", outcome=decision.outcome.value,
                       signals=list(decision.signals), audio_ms=decision.at_ms)
        outcome = decision.outcome
        if revised:
            # Greeted as a person, but a machine after all: stop the greeting, hear the machine
            # out without the provider (no audio to answer, nothing of its reply played).
            self.open, self.withhold, self.muted = False, True, True
            session._spawn(session.barge_in("answer_revised"), "answer.revised")
        if outcome is Outcome.VOICEMAIL:
            if self.policy.on_voicemail != "leave_message" or not self.policy.voicemail_message.strip():
                self.listening = False
                session.request_end(END_VOICEMAIL_HANGUP)
            return  # listening on for the beep (hear)
        # a person: listening on for the revision window (hear), in case the "person" was a machine's greeting
        self.listening = outcome is Outcome.HUMAN
        if outcome is Outcome.FAX:
            session.request_end(END_FAX)
        elif outcome is Outcome.SILENCE:
            session.request_end(END_ANSWERED_SILENCE)
        else:
            session._spawn(self._converse(outcome), f"answer.{outcome.value}")

    async def _converse(self, outcome: Outcome) -> None:
        """Human, screening or IVR: the provider may answer from now on."""
        bridge, ctx = self.session.bridge, self.session.context
        if bridge is None or ctx is None or self.session.ending:
            return
        self.open = True
        try:
            await bridge.release_responses()
            if outcome is Outcome.HUMAN:
                greeting = ctx.config.first_message if ctx.config.speaks_first == "agent" else None
                await bridge.create_response(greeting or None)
            elif outcome is Outcome.SCREENING:
                await bridge.create_response(self.policy.screening_reply())
            else:
                goal = self.policy.ivr_goal.strip() or "reach a person who can help with the reason for this call"
                await bridge.send_user_text(
                    "(An automated phone menu answered, not a person. Navigate it toward this goal: "
                    f"{goal}. Press keys with the send_dtmf tool; speak only when the menu asks you to.)")
        except ProviderError as exc:
            self.session._provider_failed(exc)
            return
        self.session.record("answer.action", action=f"{outcome.value}_conversation")

    async def _leave_voicemail(self) -> None:
        session, bridge = self.session, self.session.bridge
        if bridge is None or session.ending:
            return
        # The machine's audio stays withheld / unanswered: only our message is spoken.
        self.muted = False
        try:
            await bridge.create_response(self.policy.voicemail_message)
        except ProviderError as exc:
            session._provider_failed(exc)
            return
        await session.wait_for_next_response(timeout_s=30.0)
        await session.wait_for_playback(max_wait_s=60.0)
        session.record("answer.action", action="voicemail_left")
        session.request_end(END_VOICEMAIL_LEFT)


__all__ = ["END_ANSWERED_SILENCE", "END_FAX", "END_VOICEMAIL_HANGUP", "END_VOICEMAIL_LEFT", "AnswerGate",
           "AnswerPolicy"]
