"""Who answered an outbound call: one explicit state machine over three signals.

Outcomes (``Outcome``): a person (``human``), an answering machine (``voicemail``), a
call-screening assistant (``screening``: Google Call Screen, iOS "record your name and
reason"), a phone menu (``ivr``), a fax or modem (``fax``), or nobody (``silence``).

Signals, each stamped with the call's audio clock (ms of caller audio heard, so the
machine is deterministic under test and in the benchmark):
- the line itself, 20 ms at a time (``calls.audio.tones.LineListener``): steady tones
  (fax CNG 1100 Hz / CED 2100 Hz, a voicemail beep) and the shape of the first
  utterance (a short "hello?" followed by a pause, or a long uninterrupted greeting);
- the provider's transcription of the first seconds (``transcript``), matched against
  phrase rules in English, Spanish, French and German (``classify_text``);
- the carrier's own answering-machine detection (``carrier``), which arrives
  asynchronously (Twilio ``AsyncAmd``) and possibly late or twice.

Rules, in the order they can fire:
1. a fax tone (≥ ``TONE_REPORT_MS``) → fax; any other steady tone → voicemail (a beep);
2. a transcript that names a screening service, a menu or a mailbox → that outcome;
   a short greeting word ("hello?", "¿bueno?", "allô") → human;
3. the carrier's verdict: human → human (unless a machine-length greeting is under
   way), machine → voicemail;
4. a short first utterance (≤ ``HUMAN_MAX_UTTERANCE_MS``) then ``HUMAN_PAUSE_MS`` of quiet → human;
5. more than ``MACHINE_UTTERANCE_MS`` of speech without such a pause → a machine: decided
   at once when no transcript is expected, otherwise once it has been quiet for
   ``TRANSCRIPT_WAIT_MS`` (the transcript says which machine), as voicemail if none came;
6. nothing heard for ``silence_ms`` → silence;
7. the deadline (``deadline_ms`` after the first sound) → human. An undecided line is
   treated as a person: hanging up on real people is the failure peers are known for.

The first decision stands, with one exception: a person decided on may be revised to
voicemail or fax within ``revise_ms`` when a beep, a fax tone or a mailbox phrase follows
(the carrier's verdict, a guess from afar, never overturns what the line said) (greetings such as "Hi, this is Dana." [pause] "Leave a
message..." sound like a person at first); ``revised`` says so. Later signals are kept
(``late``) for the timeline.
After a voicemail decision the machine goes on listening for the beep:
``voicemail_ready`` says when to speak (the beep ended, the greeting ended in
``VOICEMAIL_QUIET_MS`` of silence, the carrier reported the message's end, or
``beep_wait_ms`` passed).

Pure: no Django, no I/O, no clock of its own.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from calls.audio.tones import FRAME_MS, LineListener, Sound, Tone


class Outcome(StrEnum):
    HUMAN = "human"
    VOICEMAIL = "voicemail"
    SCREENING = "screening"
    IVR = "ivr"
    FAX = "fax"
    SILENCE = "silence"


HUMAN_MAX_UTTERANCE_MS = 1800
HUMAN_PAUSE_MS = 900
MACHINE_UTTERANCE_MS = 3000
TRANSCRIPT_WAIT_MS = 1500
VOICEMAIL_QUIET_MS = 2500
REVISE_MS = 4000  # the default revision window (AnswerTimings.revise_ms)
_BEEP_HZ = (250.0, 2600.0)


@dataclass(frozen=True, slots=True)
class AnswerTimings:
    """How long to listen (ms of caller audio). All but ``max_listen_ms`` are per-agent
    settings (``agents.models.ANSWER_TIMING_FIELDS``, passed in by ``calls.agent_link``)."""

    silence_ms: int = 8000  # nothing at all heard for this long: nobody is there
    deadline_ms: int = 6000  # after the first sound, undecided means a person
    max_listen_ms: int = 15000  # a machine greeting still undecided by now is voicemail
    beep_wait_ms: int = 20000  # voicemail: speak after this even if no beep came
    revise_ms: int = REVISE_MS  # a person decided on may turn out to be a machine for this long


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    at_ms: int
    #: what decided it, e.g. ("tone:2100Hz",) or ("transcript:voicemail", "carrier:machine")
    signals: tuple[str, ...]


# --- phrase rules ---------------------------------------------------------------------------

def _normalize(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9' ]+", " ", folded.replace("’", "'")).strip()


_RULES: dict[Outcome, tuple[str, ...]] = {
    Outcome.SCREENING: (
        r"screening service", r"screen(s|ing)? (your|this) call", r"say your name and why",
        r"(record|state|say) your name and (the )?reason", r"see if (this|the) person is available",
        r"google assistant", r"person you're calling is using",
    ),
    Outcome.VOICEMAIL: (
        r"leave (me |us )?(a |your )?(brief |short )?message", r"after the (tone|beep)", r"at the (tone|beep)",
        r"(is|am|are) not available", r"can't (come to|take|get to) the phone", r"cannot (take|come to)",
        r"unable to (take|answer)", r"voice ?mail", r"mail ?box", r"record your message",
        r"you('ve| have) reached", r"not (here|in) right now",
        # es / fr / de
        r"deja(r)? (su|tu|un) mensaje", r"despues del (tono|pitido)", r"no (esta|estoy) disponible", r"buzon",
        r"laissez(-| )?(moi |nous )?(un|votre) message", r"apres le (bip|signal)", r"messagerie", r"repondeur",
        r"(hinterlassen|hinterlasse) (sie )?(eine )?nachricht", r"nach dem (signalton|piepton|ton)",
        r"anrufbeantworter", r"mailbox",
    ),
    Outcome.IVR: (
        r"\bpress (\d|one|two|three|four|five|six|seven|eight|nine|zero|star|pound)\b",
        r"\b(for|to) [a-z ]{2,30},? press\b", r"main menu", r"your party's extension", r"dial by name",
        r"please (listen|select|choose) (carefully|from|one)", r"menu options",
        r"\boprim[ae]\b", r"\bmarque (el|uno|dos)\b", r"para espanol",
        r"\btapez\b", r"appuyez sur", r"\bdrucken sie\b", r"\bwahlen sie\b",
    ),
}
_COMPILED = {outcome: tuple(re.compile(p) for p in patterns) for outcome, patterns in _RULES.items()}
_GREETING = re.compile(
    r"^(hello|hi|hey|yes|yeah|yep|speaking|who is (this|it)|hola|bueno|diga|digame|alo|allo|oui|bonjour|"
    r"hallo|ja|pronto|si)\b")
_TIE_ORDER = (Outcome.SCREENING, Outcome.IVR, Outcome.VOICEMAIL)


def classify_text(text: str) -> tuple[Outcome | None, str]:
    """The outcome a transcript's phrases point to, and the rule that matched ("" if none)."""
    norm = _normalize(text)
    if not norm:
        return None, ""
    hits = {outcome: [p.pattern for p in patterns if p.search(norm)] for outcome, patterns in _COMPILED.items()}
    best = max(_TIE_ORDER, key=lambda o: (len(hits[o]), -_TIE_ORDER.index(o)))
    if hits[best]:
        return best, hits[best][0]
    if len(norm.split()) <= 4 and _GREETING.match(norm):
        return Outcome.HUMAN, "greeting"
    return None, ""


# --- the state machine ----------------------------------------------------------------------

@dataclass
class AnswerClassifier:
    """Feed it the line's frames, transcripts and the carrier's verdict; read ``decision``."""

    timings: AnswerTimings = field(default_factory=AnswerTimings)
    expect_transcript: bool = True
    sample_rate: int = 8000

    def __post_init__(self) -> None:
        self.listener = LineListener(self.sample_rate)
        self.decision: Decision | None = None
        self.late: list[tuple[int, str]] = []  # (at_ms, signal) after the decision
        self.signals: list[str] = []  # evidence gathered before the decision
        self._first_sound_ms: int | None = None
        self._utterances: list[Sound] = []
        self._machine_since: int | None = None  # a machine-length greeting was heard
        self._beep_done = False
        self._carrier_ended = False
        self._decided_vm_at = 0
        self.revised = False

    @property
    def at_ms(self) -> int:
        return self.listener.at_ms

    # -- inputs ------------------------------------------------------------------------

    def feed(self, samples: npt.NDArray[np.int16]) -> Decision | None:
        """One 20 ms frame of caller audio; returns the decision if this frame made it."""
        events = self.listener.feed(samples)
        for event in events:
            if isinstance(event, Tone):
                self._on_tone(event)
            else:
                self._on_sound(event)
        if self._first_sound_ms is None and (self.listener.in_sound or self.listener.heard_tone_ms):
            self._first_sound_ms = self.at_ms - FRAME_MS
        if self.decision is None:
            self._on_time()
        return self.decision if self.decision is not None and self.decision.at_ms == self.at_ms else None

    def transcript(self, text: str) -> Decision | None:
        outcome, rule = classify_text(text)
        if outcome is None:
            self._note(f"transcript:unclassified({len(text.split())} words)")
            return None
        if outcome is Outcome.HUMAN and (self._machine_since is not None or self.listener.sound_ms
                                         > HUMAN_MAX_UTTERANCE_MS):
            self._note("transcript:greeting (ignored: machine-length speech)")
            return None
        if outcome is Outcome.VOICEMAIL and self.decision is not None and self.decision.outcome is Outcome.VOICEMAIL:
            return None  # the mailbox's own words after the decision: nothing new
        return self._decide(outcome, f"transcript:{outcome.value} ({rule})")

    def carrier(self, verdict: str) -> Decision | None:
        """The carrier's AMD: "human", "machine", "machine_end" (the greeting is over), "fax", "unknown"."""
        if verdict == "machine_end":
            self._carrier_ended = True
        if verdict == "human":
            if self._machine_since is not None or self.listener.sound_ms > HUMAN_MAX_UTTERANCE_MS:
                self._note("carrier:human (ignored: machine-length speech)")
                return None
            return self._decide(Outcome.HUMAN, "carrier:human")
        # The carrier's verdict is a guess from afar: it decides an open question, but never
        # overturns a person the line and transcript already heard (only they revise).
        if verdict in ("machine", "machine_end"):
            return self._decide(Outcome.VOICEMAIL, f"carrier:{verdict}", revises=False)
        if verdict == "fax":
            return self._decide(Outcome.FAX, "carrier:fax", revises=False)
        self._note(f"carrier:{verdict}")
        return None

    # -- voicemail ---------------------------------------------------------------------

    def voicemail_ready(self) -> str | None:
        """After a voicemail decision: why it is time to leave the message, or None (wait)."""
        if self.decision is None or self.decision.outcome is not Outcome.VOICEMAIL:
            return None
        if self.listener.last_kind == "tone":
            return None  # never over the beep
        if self._beep_done:
            return "beep"
        if self._carrier_ended:
            return "carrier_message_end"
        if (self.listener.heard_sound_ms and not self.listener.in_sound
                and self.listener.quiet_for_ms >= VOICEMAIL_QUIET_MS):
            return "greeting_ended"
        if self.at_ms - self._decided_vm_at >= self.timings.beep_wait_ms:
            return "beep_wait_expired"
        return None

    # -- rules -------------------------------------------------------------------------

    def _on_tone(self, tone: Tone) -> None:
        if tone.is_fax:
            if not tone.ended:
                self._decide(Outcome.FAX, f"tone:{tone.hz:.0f}Hz")
            return
        if not _BEEP_HZ[0] <= tone.hz <= _BEEP_HZ[1]:
            return
        if tone.ended:
            self._beep_done = True
            self._note(f"beep:{tone.hz:.0f}Hz {tone.ms}ms")
        else:
            self._decide(Outcome.VOICEMAIL, f"beep:{tone.hz:.0f}Hz")

    def _on_sound(self, sound: Sound) -> None:
        self._utterances.append(sound)

    def _on_time(self) -> None:
        now, listener = self.at_ms, self.listener
        if listener.heard_sound_ms >= MACHINE_UTTERANCE_MS and self._machine_since is None:
            self._machine_since = now
            self._note(f"speech:greeting over {MACHINE_UTTERANCE_MS}ms")
            if not self.expect_transcript:
                self._decide(Outcome.VOICEMAIL, "speech:long greeting")
                return
        if self._machine_since is not None:
            if not listener.in_sound and listener.quiet_for_ms >= TRANSCRIPT_WAIT_MS:
                self._decide(Outcome.VOICEMAIL, "speech:long greeting ended, no transcript named it")
            elif now >= self.timings.max_listen_ms:
                self._decide(Outcome.VOICEMAIL, "speech:long greeting, listened long enough")
            return
        if (self._utterances and not listener.in_sound and listener.quiet_for_ms >= HUMAN_PAUSE_MS
                and self._utterances[0].ms <= HUMAN_MAX_UTTERANCE_MS
                and sum(u.ms for u in self._utterances) <= 2 * HUMAN_MAX_UTTERANCE_MS):
            self._decide(Outcome.HUMAN, f"speech:short greeting ({self._utterances[0].ms}ms) then pause")
            return
        if self._first_sound_ms is None:
            if now >= self.timings.silence_ms:
                self._decide(Outcome.SILENCE, f"silence:{now}ms")
            return
        if now - self._first_sound_ms >= self.timings.deadline_ms:
            self._decide(Outcome.HUMAN, "deadline: undecided is treated as a person")

    def _note(self, signal: str) -> None:
        if self.decision is None:
            self.signals.append(signal)
        else:
            self.late.append((self.at_ms, signal))

    def _decide(self, outcome: Outcome, signal: str, *, revises: bool = True) -> Decision | None:
        if self.decision is not None:
            previous = self.decision
            if (revises and previous.outcome is Outcome.HUMAN and outcome in (Outcome.VOICEMAIL, Outcome.FAX)
                    and not self.revised and self.at_ms <= previous.at_ms + self.timings.revise_ms):
                # "Hi, this is Dana." [pause] "Leave a message...": a person, until the machine shows
                self.revised = True
                self.decision = Decision(outcome, self.at_ms, (*previous.signals[-2:], "revised from human", signal))
                self._decided_vm_at = self.at_ms
                return self.decision
            self.late.append((self.at_ms, signal))
            return None
        self.signals.append(signal)
        self.decision = Decision(outcome, self.at_ms, tuple(self.signals[-4:]))
        if outcome is Outcome.VOICEMAIL:
            self._decided_vm_at = self.at_ms
        return self.decision


__all__ = [
    "REVISE_MS", "AnswerClassifier", "AnswerTimings", "Decision", "Outcome", "classify_text",
]
