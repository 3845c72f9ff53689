"""Warm transfer: the caller stays with the agent while a human is dialled, told who is
calling and why, and only then bridged with the caller; the AI leaves. A human who does
not answer, is busy, declines or takes too long never reaches the caller, who is still
talking to the agent, and the agent says so and goes on.

Why this shape (both carriers document it, and it works with media streams):

- The caller's leg runs ``<Connect><Stream>`` (Twilio) / ``<Stream>`` (Plivo) to the
  agent. Neither carrier can add a third party to a media-stream call, and moving the
  caller anywhere ends the stream. So the caller is moved only once there is somebody
  to move them to; until then nothing about the caller's leg changes.
- The human's leg is a separate outbound call through the carrier's REST API
  (Twilio ``Calls.create`` with an answer ``Url`` and a ``StatusCallback``; Plivo
  ``Call.create`` with ``answer_url``/``hangup_url``/``ring_url``), with the
  destination's ring timeout. Its answer webhook (``step=answer``) speaks the whisper
  (the destination's template, or the agent's summary of the call so far, spoken by
  the carrier's TTS) and, if the destination asks for it, waits for the human to press
  1 (``<Gather>``/``<GetDigits>``). Then ``step=join`` puts the human into a
  conference named after the leg and moves the caller into the same conference
  (Twilio: the live call's TwiML replaced by ``<Dial><Conference>``, the pattern
  Twilio's warm-transfer guide uses; Plivo: the A leg redirected to ``<Conference>``
  XML served by the action webhook). Both join with ``endConferenceOnExit`` so nobody
  is left alone in the room.
- Status callbacks of the human's leg (``step=status``) carry its fate: busy,
  no-answer, failed, or hung up before being bridged (declined). The session learns of
  every state change through ``transfer_changes`` (polled off the audio path; a
  cache counter makes an idle poll one Redis read) and, on a failure, has the agent
  tell the caller; on the bridge, it ends as ``transferred`` without hanging up the
  caller's leg. ``expire_transfer`` ends a leg not taken by its deadline (timeout).

Callbacks are verified with the credential of the org whose call the leg belongs to
(the leg's unguessable id in the URL finds it; its carrier call id is claimed once),
are idempotent and tolerate retries and any order: a final state never changes, a
stale Twilio ``SequenceNumber`` is ignored, and a join for a leg that already ended
only says goodbye to the human. Each state change is a ``transfer.*`` ``CallEvent``
on the call's timeline; the bridged leg's duration and, later, its cost are on the
leg and shown with the call.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.builtin_tools import destination_options, find_destination, hours_text, open_now
from calls.agent_link import agent_settings
from calls.carriers import CallStatus, Carrier, CarrierError, StatusUpdate
from calls.carriers.base import TransferLegRequest
from calls.models import (
    TRANSFER_PENDING_STATES,
    Call,
    Direction,
    Status,
    TransferLeg,
    TransferLegState,
)
from calls.services.base import carrier_for
from calls.services.control import _labels, _live_call_with_carrier
from calls.services.errors import CallError, CarrierUnavailable
from calls.services.timeline import add_event, live_updates
from orgs.services import SYSTEM, Actor, record_audit

logger = logging.getLogger(__name__)

DEFAULT_WHISPER = "Transferred call from {caller}. {summary}"
GONE_MESSAGE = "Sorry, the caller is no longer waiting. Goodbye."
DECLINED_MESSAGE = "The call was not taken. Goodbye."
VERSION_PREFIX = "calls:xfer:"
VERSION_TTL_S = 6 * 3600

# A leg's carrier status → its state, while the leg has not been bridged.
_UNBRIDGED: dict[CallStatus, TransferLegState] = {
    CallStatus.BUSY: TransferLegState.BUSY,
    CallStatus.NO_ANSWER: TransferLegState.NO_ANSWER,
    CallStatus.FAILED: TransferLegState.FAILED,
    CallStatus.CANCELED: TransferLegState.CANCELED,
    # hung up after answering but before being bridged, or rejected while ringing
    CallStatus.COMPLETED: TransferLegState.DECLINED,
}


def _bump(call: Call) -> None:
    """Tell the call's session (in whatever process) that a leg changed."""
    key = VERSION_PREFIX + str(call.public_id)
    cache.add(key, 0, VERSION_TTL_S)
    cache.incr(key)


def _whisper(template: str, *, caller: str, summary: str, destination: str) -> str:
    values = {"caller": " ".join(caller.lstrip("+")) or "an unknown number", "summary": summary,
              "reason": summary, "destination": destination}
    text = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), ""), template or DEFAULT_WHISPER)
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else text + "."


def _set_state(leg: TransferLeg, state: TransferLegState, **data: Any) -> None:
    """Record a (row-locked) leg's new state on the leg and the call's timeline."""
    now = timezone.now()
    leg.state = state
    if state == TransferLegState.ANSWERED and leg.answered_at is None:
        leg.answered_at = now
    if state == TransferLegState.BRIDGED:
        leg.bridged_at = now
    if leg.is_final and leg.ended_at is None:
        leg.ended_at = now
    leg.save()
    add_event(leg.call, f"transfer.{state}", source=data.pop("source", "carrier"), leg=str(leg.public_id),
              destination=leg.destination, **data)
    _bump(leg.call)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+")


def _speakable(text: str) -> str:
    """The model's summary as the carrier can speak it: control characters (NUL, which
    Postgres cannot store, and the others XML 1.0 markup cannot carry) become spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


def start_warm_transfer(call: Call, to: str, actor: Actor, *, summary: str = "",
                        started_by: str = "agent") -> TransferLeg:
    """Dial the agent's destination named ``to`` while the caller stays with the agent.

    Only a configured destination (by name) can be dialled, only within its hours in
    the org's timezone, and one warm transfer at a time. Returns the leg, dialling."""
    carrier = _live_call_with_carrier(call, "transfer")
    if call.status != Status.IN_PROGRESS:
        raise CallError("cannot transfer: the call has not been answered yet")
    destinations = agent_settings(call).transfer_destinations
    entry = find_destination(destinations, to)
    if entry is None:
        add_event(call, "call.transfer_refused", reason="not a configured transfer destination",
                  by=actor.label[:100])
        raise CallError(f"“{str(to)[:40]}” is not one of this agent's transfer destinations "
                        f"({_labels(destinations)})", field="to")
    label, options = str(entry["label"]), destination_options(entry)
    tz_name = call.org.timezone or "UTC"
    if not open_now(entry, tz_name, timezone.now()):
        add_event(call, "transfer.closed", destination=label, by=actor.label[:100])
        raise CallError(f"{label} takes calls only {hours_text(entry, tz_name)}, and it is closed now: "
                        "tell the caller and offer another way to help", field="to")
    pending = (TransferLeg.objects.for_org(call.org).filter(call=call, state__in=TRANSFER_PENDING_STATES)
               .values_list("destination", flat=True).first())
    if pending is not None:
        raise CallError(f"a transfer to {pending} is already being dialled on this call", field="to")
    our_number = call.to_number if call.direction == Direction.INBOUND else call.from_number
    leg = TransferLeg.objects.create(
        org=call.org, call=call, destination=label, target=str(entry["number"]), carrier=call.carrier,
        whisper=_whisper(options["whisper"], caller=call.counterpart, summary=_speakable(summary)[:500],
                         destination=label),
        confirm=options["confirm"], started_by=started_by[:16],
        deadline=timezone.now() + timedelta(seconds=options["timeout_s"] + 15),
    )
    try:
        placed = carrier.dial_transfer_leg(TransferLegRequest(
            leg_public_id=str(leg.public_id), to=leg.target, from_=our_number, ring_timeout_s=options["timeout_s"]))
    except CarrierError as exc:
        with transaction.atomic():
            _set_state(TransferLeg.objects.select_for_update().get(pk=leg.pk), TransferLegState.FAILED,
                       source="system", error=str(exc)[:300])
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    TransferLeg.objects.filter(pk=leg.pk).update(carrier_call_id=placed.carrier_call_id or "",
                                                 carrier_request_id=placed.carrier_request_id or "")
    leg.refresh_from_db()
    add_event(call, "transfer.dialing", leg=str(leg.public_id), destination=label, by=actor.label[:100],
              timeout_s=options["timeout_s"], confirm=leg.confirm)
    record_audit(call.org, actor, "call.warm_transfer_started", call, {"destination": label})
    _bump(call)
    return leg


def _caller_so_far(call: Call) -> str:
    """What the caller said last (the live view's transcript), for the whisper of a transfer
    a person started: the agent is not asked for a summary then."""
    said = [str(u["data"].get("text") or "") for u in live_updates(str(call.public_id))
            if u.get("kind") == "transcript" and u["data"].get("role") == "caller"][-2:]
    return f"They said: {' '.join(said)}"[:300] if said else ""


def request_transfer(call: Call, to: str, actor: Actor, *, mode: str = "", any_number: bool = False) -> Call:
    """A person (dashboard, API) transfers a live call: warm when asked (``mode``) or, with
    no mode given, when the destination is set up for it; cold otherwise. A warm
    transfer goes only to one of the agent's destinations, by name."""
    from calls.services.control import transfer_call

    entry = find_destination(agent_settings(call).transfer_destinations, to)
    if mode == "warm" or (not mode and entry is not None and destination_options(entry)["mode"] == "warm"):
        if entry is None:
            raise CallError(f"a warm transfer goes only to one of this agent's transfer destinations, by name "
                            f"({_labels(agent_settings(call).transfer_destinations)})", field="to")
        start_warm_transfer(call, to, actor, summary=_caller_so_far(call), started_by="operator")
        return call
    return transfer_call(call, to, actor, any_number=any_number)


# --- the human's leg: callbacks -----------------------------------------------------------

def _claim_leg_id(leg: TransferLeg, carrier_call_id: str) -> bool:
    """Record the carrier's id of a (row-locked) leg; False when the id is not this leg's."""
    if not carrier_call_id:
        return True
    if leg.carrier_call_id:
        return leg.carrier_call_id == carrier_call_id
    try:
        with transaction.atomic():
            TransferLeg.objects.filter(pk=leg.pk).update(carrier_call_id=carrier_call_id)
    except IntegrityError:
        return False
    leg.carrier_call_id = carrier_call_id
    return True


def _locked(leg: TransferLeg) -> TransferLeg:
    return TransferLeg.objects.select_for_update(of=("self",)).select_related("call", "call__org").get(pk=leg.pk)


def answer_leg(leg: TransferLeg, carrier: Carrier, carrier_call_id: str) -> str | None:
    """The human answered: the markup that whispers (None: the id is another call's)."""
    with transaction.atomic():
        leg = _locked(leg)
        if not _claim_leg_id(leg, carrier_call_id):
            return None
        if leg.state not in TRANSFER_PENDING_STATES or leg.call.is_final:
            return carrier.say_and_hangup_markup(GONE_MESSAGE)
        if leg.state != TransferLegState.ANSWERED:
            _set_state(leg, TransferLegState.ANSWERED)
    return carrier.whisper_markup(leg.whisper, leg_public_id=str(leg.public_id), confirm=leg.confirm)


def join_leg(leg: TransferLeg, carrier: Carrier, carrier_call_id: str, digits: str) -> str | None:
    """After the whisper (and the key press, if asked): bridge the caller and the human."""
    with transaction.atomic():
        leg = _locked(leg)
        if not _claim_leg_id(leg, carrier_call_id):
            return None
        if leg.state == TransferLegState.BRIDGED:  # a retried join: same answer, nothing moves twice
            return carrier.conference_markup(leg.conference)
        if leg.state != TransferLegState.ANSWERED or leg.call.is_final:
            return carrier.say_and_hangup_markup(GONE_MESSAGE)
        if leg.confirm and digits != "1":
            # Which key, only where the agent keeps keypad digits (as for the caller's keys).
            pressed = (digits[:1] if agent_settings(leg.call).keep_keypad_digits else "another key") if digits else "none"
            _set_state(leg, TransferLegState.DECLINED, key=pressed)
            return carrier.say_and_hangup_markup(DECLINED_MESSAGE)
        _set_state(leg, TransferLegState.BRIDGED)
        call = leg.call
        Call.objects.filter(pk=call.pk).update(end_reason="transferred", transfer_to=leg.target)
    try:
        carrier.move_to_conference(call.carrier_call_id, call_public_id=str(call.public_id), conference=leg.conference)
    except CarrierError as exc:
        with transaction.atomic():
            leg = _locked(leg)
            _set_state(leg, TransferLegState.FAILED, source="system", error=str(exc)[:300])
            Call.objects.filter(pk=call.pk, end_reason="transferred").update(end_reason="", transfer_to="")
        return carrier.say_and_hangup_markup(GONE_MESSAGE)
    add_event(call, "call.transferred", to=leg.target, destination=leg.destination, mode="warm")
    record_audit(call.org, SYSTEM, "call.transferred", call, {"to": leg.target, "destination": leg.destination,
                                                            "mode": "warm"})
    return carrier.conference_markup(leg.conference)


def leg_status(leg: TransferLeg, update: StatusUpdate) -> bool:
    """A status callback of the human's leg; False when its id is not this leg's."""
    with transaction.atomic():
        leg = _locked(leg)
        if not _claim_leg_id(leg, update.carrier_call_id):
            return False
        if update.sequence is not None and leg.status_sequence is not None and update.sequence <= leg.status_sequence:
            return True  # overtaken by a later callback
        if update.sequence is not None:
            TransferLeg.objects.filter(pk=leg.pk).update(status_sequence=update.sequence)
            leg.status_sequence = update.sequence
        if leg.is_final:
            return True
        if update.status == CallStatus.RINGING and leg.state == TransferLegState.DIALING:
            _set_state(leg, TransferLegState.RINGING)
        elif update.status.is_final and leg.state == TransferLegState.BRIDGED:
            leg.duration_s = update.duration_s if update.duration_s is not None else leg.duration_s
            _set_state(leg, TransferLegState.COMPLETED, duration_s=leg.duration_s)
        elif update.status.is_final:
            _set_state(leg, _UNBRIDGED[update.status], carrier_status=update.status.value)
    return True


# --- the session's side ------------------------------------------------------------------

def expire_transfer(leg: TransferLeg) -> bool:
    """End a leg nobody took by its deadline: hung up at the carrier, the agent goes on."""
    with transaction.atomic():
        leg = _locked(leg)
        if leg.state not in TRANSFER_PENDING_STATES or timezone.now() < leg.deadline:
            return False
        _set_state(leg, TransferLegState.TIMEOUT, source="system")
    _hang_up_leg(leg)
    return True


def cancel_pending_transfers(call: Call) -> None:
    """The caller's call ended while a leg was still being dialled: never leave it open."""
    for leg in TransferLeg.objects.for_org(call.org).filter(call=call, state__in=TRANSFER_PENDING_STATES):
        with transaction.atomic():
            leg = _locked(leg)
            if leg.state not in TRANSFER_PENDING_STATES:
                continue
            _set_state(leg, TransferLegState.CANCELED, source="system", reason="caller left")
        _hang_up_leg(leg)


def _hang_up_leg(leg: TransferLeg) -> None:
    try:
        carrier = carrier_for(leg.org, leg.carrier)
        if leg.carrier_call_id:
            carrier.hangup(leg.carrier_call_id)
        elif leg.carrier_request_id:
            carrier.cancel_request(leg.carrier_request_id)
    except (CarrierError, CallError) as exc:
        if not getattr(exc, "gone", False):
            add_event(leg.call, "carrier.transfer_hangup_failed", leg=str(leg.public_id), error=str(exc)[:300])


class TransferFeed:
    """What the session of one call polls: leg state changes it has not seen yet.

    An idle poll is one cache read (the counter ``_bump`` moves); the database is read
    only when a leg changed or a pending leg's deadline has passed."""

    def __init__(self, call_public_id: str) -> None:
        self.call_public_id = call_public_id
        self._version: int | None = None
        self._seen: dict[str, str] = {}
        self._deadline: datetime | None = None

    def changes(self) -> list[dict[str, str]]:
        """``{"leg", "destination", "state", "started_by"}`` for each leg whose state is new to
        the session (expiring legs past their deadline first)."""
        version = cache.get(VERSION_PREFIX + self.call_public_id)
        due = self._deadline is not None and timezone.now() >= self._deadline
        if version == self._version and not due:
            return []
        self._version = version
        legs = list(TransferLeg.objects.filter(call__public_id=self.call_public_id).select_related("call", "org"))
        for leg in legs:
            if leg.state in TRANSFER_PENDING_STATES and timezone.now() >= leg.deadline and expire_transfer(leg):
                leg.refresh_from_db()
        pending = [leg.deadline for leg in legs if leg.state in TRANSFER_PENDING_STATES]
        self._deadline = min(pending) if pending else None
        out = []
        for leg in legs:
            key = str(leg.public_id)
            if self._seen.get(key) != leg.state:
                self._seen[key] = leg.state
                out.append({"leg": key, "destination": leg.destination, "state": str(leg.state),
                            "started_by": leg.started_by})
        return out
