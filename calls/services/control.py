"""Acting on a live call: hang up (with or without an apology), transfer, send keypad
tones, text the other party; and deleting a finished call.

Each action goes to the call's carrier (a web call has no phone leg: refused), records
a timeline event and an audit entry. The final status still arrives with the carrier's
callback (``calls.services.lifecycle.transition``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction

from agents.builtin_tools import find_destination, normalize_target
from calls.agent_link import agent_settings
from calls.carriers import Carrier, CarrierError
from calls.carriers.base import validate_dtmf
from calls.models import NO_PHONE_LEG, Call, Direction, Status
from calls.observers import call_deleting
from calls.privacy_hooks import refuse_if_held
from calls.services.base import carrier_for
from calls.services.errors import CallError, CarrierUnavailable
from calls.services.streams import issue_stream_target
from calls.services.timeline import add_event
from orgs.services import SYSTEM, Actor, record_audit

APOLOGY_MESSAGE = "Sorry, we are having technical difficulties. Please call again later. Goodbye."


def _live_call_with_carrier(call: Call, action: str) -> Carrier:
    if call.is_final:
        raise CallError(f"cannot {action}: the call has already ended ({call.get_status_display()})")
    if call.direction in NO_PHONE_LEG or not call.carrier:
        raise CallError(f"cannot {action}: this call has no phone leg")
    return carrier_for(call.org, call.carrier)


def hangup_call(call: Call, actor: Actor, *, reason: str = "hangup_requested") -> Call:
    """End the carrier leg. The final status arrives with the carrier's callback."""
    carrier = _live_call_with_carrier(call, "hang up")
    try:
        if call.carrier_call_id:
            carrier.hangup(call.carrier_call_id)
        elif call.carrier_request_id:
            carrier.cancel_request(call.carrier_request_id)
        else:
            raise CallError("cannot hang up: the carrier has not acknowledged this call yet")
    except CarrierError as exc:
        if not exc.gone:
            add_event(call, "carrier.hangup_failed", error=str(exc)[:500])
            raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
        # It ended on its own meanwhile (the caller hung up first): nothing left to do.
        add_event(call, "carrier.already_ended", reason=reason)
    Call.objects.filter(pk=call.pk, end_reason="").update(end_reason=reason)
    call.refresh_from_db(fields=["end_reason"])
    add_event(call, "call.hangup_requested", reason=reason)
    record_audit(call.org, actor, "call.hung_up", call, {"reason": reason})
    return call


def hangup_with_apology(call: Call, *, reason: str, message: str = APOLOGY_MESSAGE) -> None:
    """Speak ``message`` to the caller, then hang up (a provider failure mid-call)."""
    carrier = _live_call_with_carrier(call, "hang up")
    Call.objects.filter(pk=call.pk).update(pending_message=message)
    Call.objects.filter(pk=call.pk, end_reason="").update(end_reason=reason)
    try:
        carrier.leave_message_and_hangup(call.carrier_call_id, call_public_id=str(call.public_id), message=message)
    except CarrierError as exc:
        if exc.gone:
            add_event(call, "carrier.already_ended", reason=reason)
            return
        add_event(call, "carrier.apology_failed", error=str(exc)[:500])
        # Never leave a billable call open: fall back to a plain hang-up.
        hangup_call(call, SYSTEM, reason=reason)
        return
    add_event(call, "call.apology_and_hangup", reason=reason)
    record_audit(call.org, SYSTEM, "call.hung_up", call, {"reason": reason})


def _labels(entries: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(str(e.get("label")) for e in entries) or "none are configured"


def transfer_call(call: Call, to: str, actor: Actor, *, any_number: bool = False) -> Call:
    """Cold transfer: the caller leaves the agent and is dialled through to ``to``.

    ``to`` names one of the transfer destinations of the agent version the call runs
    (``transfer_destinations``, matched ignoring case). Only with ``any_number`` (an
    org admin or owner typing a target in the dashboard or API) may ``to`` also be an
    E.164 number or SIP URI that is not configured. The agent's tool never passes
    ``any_number``: a number the model makes up is refused, with a
    ``call.transfer_refused`` event on the call.
    """
    carrier = _live_call_with_carrier(call, "transfer")
    if call.status != Status.IN_PROGRESS:
        raise CallError("cannot transfer: the call has not been answered yet")
    destinations = agent_settings(call).transfer_destinations
    entry = find_destination(destinations, to)
    label = ""
    if entry is not None:
        target, label = str(entry["number"]), str(entry["label"])
    elif any_number:
        try:
            target = normalize_target(to, allow_sip=True, default_region=call.org.default_country or None)
        except ValueError as exc:
            raise CallError(str(exc), field="to") from exc
    else:
        add_event(call, "call.transfer_refused", reason="not a configured transfer destination",
                  by=actor.label[:100])
        raise CallError(f"“{str(to)[:40]}” is not one of this agent's transfer destinations "
                        f"({_labels(destinations)})", field="to")
    Call.objects.filter(pk=call.pk).update(transfer_to=target)
    call.transfer_to = target
    # Caller ID: our own number on the call, so the target sees who is transferring.
    caller_id = call.to_number if call.direction == Direction.INBOUND else call.from_number
    try:
        carrier.transfer(call.carrier_call_id, call_public_id=str(call.public_id), to=target, caller_id=caller_id)
    except CarrierError as exc:
        add_event(call, "carrier.transfer_failed", error=str(exc)[:500])
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    Call.objects.filter(pk=call.pk).update(end_reason="transferred")
    call.end_reason = "transferred"
    add_event(call, "call.transferred", to=target, destination=label)
    record_audit(call.org, actor, "call.transferred", call, {"to": target, "destination": label})
    return call


def send_call_dtmf(call: Call, digits: str, actor: Actor) -> None:
    """Play keypad tones to the other party; the media stream resumes right after."""
    carrier = _live_call_with_carrier(call, "send DTMF")
    if call.status != Status.IN_PROGRESS:
        raise CallError("cannot send DTMF: the call has not been answered yet")
    try:
        validate_dtmf(digits)
    except CarrierError as exc:
        raise CallError(str(exc), field="digits") from exc
    resume = issue_stream_target(call, replaces_stream=True, direction=call.direction, resumed="1")
    try:
        carrier.send_dtmf(call.carrier_call_id, digits, resume=resume)
    except CarrierError as exc:
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    add_event(call, "dtmf.sent", digits=len(digits))
    record_audit(call.org, actor, "call.dtmf_sent", call, {"digits": len(digits)})


def send_call_sms(call: Call, text: str, actor: Actor, *, to: str | None = None) -> str:
    """Text the other party of the call from the call's own number; returns the message id.

    ``to``, when given, names one of the agent version's ``sms_recipients`` (matched
    ignoring case); anything else is refused with an ``sms.refused`` event, so the
    agent can never text a number it was not configured with.
    """
    if not call.phone_number_id or not call.carrier:
        raise CallError("cannot send SMS: this call has no phone number to send from")
    if not text.strip():
        raise CallError("the message is empty", field="body")
    number = call.phone_number
    assert number is not None
    recipient = call.counterpart
    if to:
        recipients = agent_settings(call).sms_recipients
        entry = find_destination(recipients, to)
        if entry is None:
            add_event(call, "sms.refused", reason="not a configured SMS recipient", by=actor.label[:100])
            raise CallError(f"“{str(to)[:40]}” is not one of this agent's SMS recipients "
                            f"({_labels(recipients)}); leave it out to text the caller", field="to")
        recipient = str(entry["number"])
    carrier = carrier_for(call.org, call.carrier)
    try:
        message_id = carrier.send_sms(from_=number.e164, to=recipient, text=text)
    except CarrierError as exc:
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    add_event(call, "sms.sent", length=len(text), recipient=to or "caller")
    record_audit(call.org, actor, "call.sms_sent", call, {"length": len(text), "recipient": to or "caller"})
    return message_id


def delete_call(call: Call, actor: Actor) -> None:
    """Erase a finished call: its transcript, timeline and the recording file
    (removed from storage by the Recording post_delete handler). A call under legal hold
    is refused (409 ``legal_hold``, see ``calls.privacy_hooks``); the row is locked so a
    hold placed meanwhile is seen."""
    if not call.is_final:
        raise CallError("cannot delete a call that is still live; hang it up first")
    with transaction.atomic():
        Call.objects.select_for_update().filter(pk=call.pk).first()
        refuse_if_held(call, CallError)
        record_audit(call.org, actor, "call.deleted", call, {"direction": call.direction})
        call_deleting(call)  # an erased call no longer counts in the org's analytics
        call.delete()
