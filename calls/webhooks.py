"""Carrier webhooks in: verified, strict, idempotent and quick (DESIGN.md convention 7).

Each handler takes a framework-free ``WebhookRequest`` and returns a ``WebhookReply``;
``calls.views`` adapts Django requests to them. The order of checks is always:

1. find what the request is about (the number called, or the call named by the
   unguessable ``?call=`` id / the carrier's call id) — unknown → 404, or for an
   unknown number the polite spoken rejection;
2. verify the signature with *that org's* carrier credential — bad/missing → 403;
3. parse strictly — a missing or unknown field → 400 naming it;
4. apply the change under a row lock, so a repeated callback changes nothing.

A callback carries an identity only as far as its signature (DESIGN.md convention
11): it touches only calls of the org whose credential verified it, and only calls of
the carrier whose endpoint it reached. Callbacks about a call are checked against
*that call's* org, so another org's signature is a 403. The inbound webhook is found
by the number called, so its signature proves only the number's org: a carrier call
id it names is taken as a retry only when that call belongs to the same org and the
same number; any other holder makes it a 409 ``webhook.call_id_conflict`` — no stream
markup, no token rotation, nothing of the holder changed. The same refusal meets a
callback that would give an org's call an id another call already holds.

Carrier call ids (Twilio ``CallSid``, Plivo ``CallUUID``) are unique at the carrier,
and the database keeps at most one call per (carrier, id) (constraint
``call_carrier_call_id``). So an id names one call, held by the org whose verified
callback recorded it first; a second org naming it is refused, never given a second
row. (A later genuine call cannot be pre-empted this way: the ids are random and
issued by the carrier when the call starts, so nobody can claim one ahead of it.)

Every refusal is recorded as a ``CallEvent`` (kind ``webhook.*``) and logged
without phone numbers. Refusals of requests that prove no identity (unknown number
or call, bad or missing signature, no credential) can be sent by anyone at any rate:
they are stored at most ``WEBHOOK_REFUSALS_RECORDED_PER_MINUTE`` times a minute per
carrier, kind and org, then one ``webhook.refusals_suppressed`` event says the rest of
that minute is only counted; the reply is the same either way.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from calls.carriers import (
    CARRIERS,
    AnsweredBy,
    Carrier,
    CarrierError,
    InboundCall,
    MachineResult,
    WebhookParseError,
    WebhookRequest,
)
from calls.models import Call, Direction, PhoneNumber, Status, TransferLegState
from calls.services.base import carrier_for
from calls.services.control import APOLOGY_MESSAGE
from calls.services.errors import CallError
from calls.services.lifecycle import transition
from calls.services.placement import lock_org_and_count_live
from calls.services.streams import issue_stream_target
from calls.services.timeline import add_event
from orgs.models import Organization
from orgs.services import SYSTEM, record_audit
from voiceplatform import tracing

logger = logging.getLogger(__name__)

BUSY_MESSAGE = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."


@dataclass(frozen=True)
class WebhookReply:
    status: int
    body: str = ""
    content_type: str = "text/plain"
    # (call public id, transport) whose provider session may be opened right away.
    prepare: tuple[str, str] | None = None


def _xml(carrier_name: str, body: str, *, prepare: Call | None = None) -> WebhookReply:
    return WebhookReply(200, body, "text/xml" if carrier_name == "twilio" else "application/xml",
                        prepare=(str(prepare.public_id), carrier_name) if prepare is not None else None)


# Refusals of requests that prove nobody's identity: anyone can send them, at any rate.
UNPROVEN_REFUSALS = frozenset({
    "webhook.unknown_number", "webhook.unknown_call", "webhook.bad_signature", "webhook.no_credential",
})
REFUSAL_WINDOW_S = 60


def refusal_counter_key(carrier_name: str, kind: str, org: Organization | None, window: int) -> str:
    return f"webhooks:refused:{carrier_name}:{kind}:{org.public_id if org else '-'}:{window}"


def _record_refusal(kind: str, carrier_name: str, request: WebhookRequest, *, status: int,
                    call: Call | None = None, org: Organization | None = None, **data: object) -> None:
    """Store a refusal as a ``CallEvent`` (and a log line) — for unproven requests only
    the first ``WEBHOOK_REFUSALS_RECORDED_PER_MINUTE`` of each carrier/kind/org and
    minute, then one ``webhook.refusals_suppressed`` marker; the rest are counted in
    the cache only, so a flood cannot grow the table or the log without bound."""
    org = call.org if call is not None else org
    if kind in UNPROVEN_REFUSALS:
        window = int(timezone.now().timestamp()) // REFUSAL_WINDOW_S
        key = refusal_counter_key(carrier_name, kind, org, window)
        cache.add(key, 0, timeout=REFUSAL_WINDOW_S * 2)
        seen = cache.incr(key)
        limit = settings.WEBHOOK_REFUSALS_RECORDED_PER_MINUTE
        if seen > limit:
            if seen == limit + 1:
                add_event(None, "webhook.refusals_suppressed", source="carrier", org=org,
                          carrier=carrier_name, refused_kind=kind, limit=limit,
                          window_start=datetime.fromtimestamp(window * REFUSAL_WINDOW_S, tz=UTC).isoformat())
                logger.warning("webhook.refusals_suppressed", extra={"kind": kind, "carrier": carrier_name,
                                                                    "limit": limit})
            return
    add_event(call, kind, source="carrier", org=org, carrier=carrier_name, path=request.path, **data)
    logger.warning("webhook.refused", extra={"kind": kind, "carrier": carrier_name, "status": status,
                                             "call": str(call.public_id) if call else None})


def _refuse(status: int, kind: str, carrier_name: str, request: WebhookRequest, *, call: Call | None = None,
            org: Organization | None = None, **data: object) -> WebhookReply:
    _record_refusal(kind, carrier_name, request, status=status, call=call, org=org, **data)
    return WebhookReply(status, kind)


def _refuse_call_id_conflict(carrier_name: str, request: WebhookRequest, org: Organization, holder: Call, *,
                             call: Call | None = None) -> WebhookReply:
    """A verified request of ``org`` names a carrier call id that ``holder`` — a call of
    another org, or another number or call of ``org`` — already has: refused, recorded
    in ``org`` (the one whose credential signed it), ``holder`` left as it was."""
    # Nothing about the holder goes into the requester's event or audit entry.
    record_audit(org, SYSTEM, "webhook.call_id_conflict", call, {"carrier": carrier_name, "path": request.path},
                 target_label=None if call is not None else f"{carrier_name} webhook")
    logger.warning("webhook.call_id_conflict", extra={
        "carrier": carrier_name, "org": str(org.public_id), "holder_org": str(holder.org.public_id),
        "holder_call": str(holder.public_id), "call": str(call.public_id) if call else None})
    return _refuse(409, "webhook.call_id_conflict", carrier_name, request, call=call, org=org,
                   reason="this carrier call id belongs to another call")


def _claim_carrier_call_id(call: Call, carrier_call_id: str) -> Call | None:
    """Record the carrier's id on a row-locked ``call`` that has none yet. Returns the
    call already holding that id (nothing is changed then), or None once recorded."""
    holder = (Call.objects.select_related("org").filter(carrier=call.carrier, carrier_call_id=carrier_call_id)
              .exclude(pk=call.pk).first())
    if holder is not None:
        return holder
    try:
        with transaction.atomic():  # a savepoint: a racing claim must not break the caller's transaction
            Call.objects.filter(pk=call.pk).update(carrier_call_id=carrier_call_id, updated_at=timezone.now())
    except IntegrityError:
        return Call.objects.select_related("org").get(carrier=call.carrier, carrier_call_id=carrier_call_id)
    call.carrier_call_id = carrier_call_id
    return None


def _call_from_query(request: WebhookRequest) -> tuple[bool, Call | None]:
    """(named, call): ``named`` says the URL carried a ``call`` id at all."""
    values = parse_qs(request.query_string).get("call")
    if not values:
        return False, None
    try:
        public_id = uuid.UUID(values[0])
    except ValueError:
        return True, None
    return True, Call.objects.select_related("org").filter(public_id=public_id).first()


def _find_call(carrier_name: str, request: WebhookRequest, id_field: str) -> Call | None:
    """The call a callback names — only ever a call of this carrier (a Plivo callback
    never touches a Twilio call, nor a browser call)."""
    named, call = _call_from_query(request)
    if named:
        return call if call is not None and call.carrier == carrier_name else None
    carrier_call_id = (request.form.get(id_field) or [""])[0]
    if not carrier_call_id:
        return None
    return Call.objects.select_related("org").filter(carrier=carrier_name, carrier_call_id=carrier_call_id).first()


def _verified_carrier(carrier_name: str, request: WebhookRequest, call: Call) -> Carrier | WebhookReply:
    try:
        carrier = carrier_for(call.org, carrier_name)
    except CallError:
        return _refuse(403, "webhook.no_credential", carrier_name, request, call=call)
    if not carrier.verify_webhook(request):
        return _refuse(403, "webhook.bad_signature", carrier_name, request, call=call,
                       reason=_signature_problem(carrier_name, request))
    return carrier


def _signature_problem(carrier_name: str, request: WebhookRequest) -> str:
    header = "X-Twilio-Signature" if carrier_name == "twilio" else "X-Plivo-Signature-V3"
    return "invalid" if request.headers.get(header) else "missing"


_ID_FIELD = {"twilio": "CallSid", "plivo": "CallUUID"}


def _verified_call(carrier_name: str, request: WebhookRequest) -> tuple[Call, Carrier] | WebhookReply:
    """The call a callback is about, and its org's carrier once the signature checks out."""
    call = _find_call(carrier_name, request, _ID_FIELD[carrier_name])
    if call is None:
        return _refuse(404, "webhook.unknown_call", carrier_name, request)
    carrier = _verified_carrier(carrier_name, request, call)
    if isinstance(carrier, WebhookReply):
        return carrier
    return call, carrier


# --- inbound -----------------------------------------------------------------------------

def handle_inbound_webhook(carrier_name: str, request: WebhookRequest) -> WebhookReply:
    """A call to one of our numbers: answer with the media-stream markup."""
    carrier_cls = CARRIERS[carrier_name]
    raw_to = (request.form.get("To") or [""])[0].strip()
    to = raw_to if raw_to.startswith("+") else f"+{raw_to}"
    number = PhoneNumber.objects.select_related("org", "inbound_agent").filter(carrier=carrier_name, e164=to).first()
    if number is None:
        # No org, so no credential to check a signature with: the reply is a fixed,
        # harmless message and nothing else happens (the event is rate-bounded).
        _record_refusal("webhook.unknown_number", carrier_name, request, status=200)
        return _xml(carrier_name, carrier_cls.reject_markup())
    org = number.org
    try:
        carrier = carrier_for(org, carrier_name)
    except CallError:
        return _refuse(403, "webhook.no_credential", carrier_name, request, org=org)
    if not carrier.verify_webhook(request):
        return _refuse(403, "webhook.bad_signature", carrier_name, request, org=org,
                       reason=_signature_problem(carrier_name, request))
    try:
        inbound = carrier.parse_inbound(request.form)
    except WebhookParseError as exc:
        return _refuse(400, "webhook.malformed", carrier_name, request, org=org, error=str(exc))

    existing = (Call.objects.select_related("org")
                .filter(carrier=carrier_name, carrier_call_id=inbound.carrier_call_id).first())
    if existing is not None:
        return _answer_repeat(carrier_name, request, carrier, number, existing)

    agent = number.inbound_agent
    if agent is None:
        add_event(None, "call.rejected_no_agent", source="carrier", org=org,
                  number=str(number.public_id))
        return _xml(carrier_name, carrier_cls.reject_markup())
    from calls.agent_link import AgentUnusable, inbound_variables, inbound_version

    variables = inbound_variables(inbound.from_, number.e164)
    try:
        version, arm = inbound_version(agent, variables, inbound.from_)
    except AgentUnusable as exc:
        add_event(None, "call.rejected_agent_not_ready", source="carrier", org=org,
                  agent=str(agent.public_id), reason=str(exc)[:500])
        return _xml(carrier_name, carrier_cls.reject_markup())

    try:
        call, over_limit = _create_inbound_call(org, number, agent, version, arm, variables, carrier_name, inbound)
    except IntegrityError:
        # A concurrent webhook recorded this carrier call id first: a retry racing its
        # original is answered as a retry; anyone else's is refused.
        holder = Call.objects.select_related("org").filter(carrier=carrier_name,
                                                             carrier_call_id=inbound.carrier_call_id).first()
        if holder is None:
            raise
        return _answer_repeat(carrier_name, request, carrier, number, holder)
    if over_limit:
        return _xml(carrier_name, carrier_cls.say_and_hangup_markup(BUSY_MESSAGE))
    return _xml(carrier_name, carrier.stream_markup(issue_stream_target(call, direction="inbound")),
                prepare=call)


def _answer_repeat(carrier_name: str, request: WebhookRequest, carrier: Carrier, number: PhoneNumber,
                   existing: Call) -> WebhookReply:
    """An inbound webhook, verified for ``number``'s org, names a carrier call id that
    ``existing`` already holds. The signature proves only the number's org, so it is a
    retry (the carrier timed out on us: same call, fresh stream token) only for that
    org's inbound call to that number; anything else names a call that is not theirs."""
    if (existing.org_id != number.org_id or existing.phone_number_id != number.pk
            or existing.direction != Direction.INBOUND):
        return _refuse_call_id_conflict(carrier_name, request, number.org, existing)
    if existing.is_final or existing.status == Status.FAILED:
        return _xml(carrier_name, CARRIERS[carrier_name].say_and_hangup_markup(BUSY_MESSAGE))
    add_event(existing, "webhook.repeated", source="carrier")
    return _xml(carrier_name, carrier.stream_markup(issue_stream_target(existing, direction="inbound")))


def _create_inbound_call(org: Organization, number: PhoneNumber, agent: Any, version: Any, arm: Any,
                         variables: dict[str, Any], carrier_name: str, inbound: InboundCall) -> tuple[Call, bool]:
    """Create the inbound Call (failed at once when the org is at its concurrency
    limit). Raises IntegrityError when another call already holds the carrier id."""
    now = timezone.now()
    with transaction.atomic():
        live = lock_org_and_count_live(org)
        over_limit = live >= org.max_concurrent_calls
        call = Call.objects.create(
            org=org, direction=Direction.INBOUND, from_number=inbound.from_, to_number=number.e164,
            agent=agent, agent_version=version, experiment_arm=arm, phone_number=number, carrier=carrier_name, variables=variables,
            carrier_call_id=inbound.carrier_call_id,
            status=Status.FAILED if over_limit else Status.RINGING,
            queued_at=now, ringing_at=now, ended_at=now if over_limit else None,
            end_reason="concurrency_limit" if over_limit else "",
        )
        add_event(call, "call.inbound", source="carrier")
        record_audit(org, SYSTEM, "call.received", call, {"carrier": carrier_name})
        if over_limit:
            add_event(call, "call.rejected_concurrency_limit", limit=org.max_concurrent_calls)
        else:
            # Answering with stream markup answers the call; carriers send no separate
            # "answered" callback for inbound calls.
            transition(call, Status.IN_PROGRESS)
    tracing.remember_call(str(call.public_id))  # this webhook's request is the root of the call's trace
    return call, over_limit


def handle_plivo_answer(request: WebhookRequest) -> WebhookReply:
    """Plivo's answer URL: inbound calls, or (with ``?call=``) our outbound call answered."""
    named, _ = _call_from_query(request)
    if not named:
        return handle_inbound_webhook("plivo", request)
    found = _verified_call("plivo", request)
    if isinstance(found, WebhookReply):
        return found
    call, carrier = found
    try:
        answered = carrier.parse_inbound(request.form)
    except WebhookParseError as exc:
        return _refuse(400, "webhook.malformed", "plivo", request, call=call, error=str(exc))
    with transaction.atomic():
        call = Call.objects.select_for_update(of=("self",)).select_related("org").get(pk=call.pk)
        if not call.carrier_call_id:
            holder = _claim_carrier_call_id(call, answered.carrier_call_id)
            if holder is not None:
                return _refuse_call_id_conflict("plivo", request, call.org, holder, call=call)
        elif answered.carrier_call_id != call.carrier_call_id:
            return _refuse(400, "webhook.call_id_mismatch", "plivo", request, call=call)
        transition(call, Status.IN_PROGRESS)
    if call.is_final:
        # Cancelled while it rang: end the leg rather than start a stream.
        return _xml("plivo", carrier.say_and_hangup_markup("Goodbye."))
    return _xml("plivo", carrier.stream_markup(issue_stream_target(call, direction="outbound")),
                prepare=call)


# --- status / hangup ---------------------------------------------------------------------

def apply_status_callback(carrier_name: str, request: WebhookRequest) -> WebhookReply:
    """Twilio status callback or Plivo ring/hangup callback. Idempotent."""
    found = _verified_call(carrier_name, request)
    if isinstance(found, WebhookReply):
        return found
    call, carrier = found
    try:
        update = carrier.parse_status(request.form)
    except WebhookParseError as exc:
        return _refuse(400, "webhook.malformed", carrier_name, request, call=call, error=str(exc))
    with transaction.atomic():
        locked = Call.objects.select_for_update(of=("self",)).select_related("org").get(pk=call.pk)
        if not locked.carrier_call_id and update.carrier_call_id:
            holder = _claim_carrier_call_id(locked, update.carrier_call_id)
            if holder is not None:
                return _refuse_call_id_conflict(carrier_name, request, locked.org, holder, call=locked)
        elif locked.carrier_call_id and update.carrier_call_id != locked.carrier_call_id:
            return _refuse(400, "webhook.call_id_mismatch", carrier_name, request, call=locked)
        transition(
            locked, update.status.value, duration_s=update.duration_s, end_reason=update.end_reason,
            answered_by=update.answered_by.value if update.answered_by else "", sequence=update.sequence,
        )
    return WebhookReply(204)


# --- answering-machine detection ---------------------------------------------------------

def _verdict(result: MachineResult) -> str:
    """The verdict as the answer gate reads it: human, machine (greeting under way),
    machine_end (greeting over), fax, unknown."""
    if result.raw == "fax":
        return "fax"
    if result.answered_by is AnsweredBy.MACHINE:
        return "machine_end" if result.message_ended else "machine"
    return result.answered_by.value


def apply_machine_detection(carrier_name: str, request: WebhookRequest) -> WebhookReply:
    """The carrier's verdict on who answered; on a machine, leave the agent's message
    or hang up, as the agent is configured. A repeated verdict changes nothing."""
    from calls.agent_link import answer_policy, voicemail_policy

    found = _verified_call(carrier_name, request)
    if isinstance(found, WebhookReply):
        return found
    call, carrier = found
    try:
        result = carrier.parse_machine_detection(request.form)
    except WebhookParseError as exc:
        return _refuse(400, "webhook.malformed", carrier_name, request, call=call, error=str(exc))
    with transaction.atomic():
        locked = Call.objects.select_for_update(of=("self",)).select_related("org", "agent_version").get(pk=call.pk)
        if not locked.carrier_call_id:
            # The verdict overtook the answer callback (Plivo reveals the id late).
            holder = _claim_carrier_call_id(locked, result.carrier_call_id)
            if holder is not None:
                return _refuse_call_id_conflict(carrier_name, request, locked.org, holder, call=locked)
        elif result.carrier_call_id != locked.carrier_call_id:
            return _refuse(400, "webhook.call_id_mismatch", carrier_name, request, call=locked)
        if locked.answered_by:
            return WebhookReply(204)
        locked.answered_by = result.answered_by.value
        locked.save(update_fields=["answered_by", "updated_at"])
        # With answer classification on, the live session reads this verdict as one of its
        # signals and acts itself (calls.media.answer_gate); the carrier is not told anything here.
        session_decides = answer_policy(locked) is not None
        add_event(locked, "amd.result", source="carrier", answered_by=result.answered_by.value,
                  detail=result.raw, verdict=_verdict(result), session_decides=session_decides)
        action, message = "none", ""
        if (result.answered_by is AnsweredBy.MACHINE and not locked.is_final and result.message_ended
                and not session_decides):
            action, message = voicemail_policy(locked)
            if action == "leave_message":
                locked.pending_message = message
                locked.end_reason = "voicemail_left"
            else:
                locked.end_reason = "voicemail_hangup"
            locked.save(update_fields=["pending_message", "end_reason", "updated_at"])
    if action == "none":
        return WebhookReply(204)
    try:
        if action == "leave_message":
            carrier.leave_message_and_hangup(locked.carrier_call_id, call_public_id=str(locked.public_id),
                                             message=message)
        else:
            carrier.hangup(locked.carrier_call_id)
    except CarrierError as exc:
        add_event(locked, "carrier.voicemail_failed", error=str(exc)[:500])
        return WebhookReply(204)
    add_event(locked, f"voicemail.{action}")
    record_audit(locked.org, SYSTEM, f"call.voicemail_{action}", locked, {})
    return WebhookReply(204)


# --- Plivo redirect target ---------------------------------------------------------------

def handle_plivo_action(request: WebhookRequest) -> WebhookReply:
    """XML for a live Plivo call we redirected (transfer, voicemail, apology)."""
    named, call = _call_from_query(request)
    if call is None or call.carrier != "plivo":
        return _refuse(404, "webhook.unknown_call", "plivo", request)
    carrier = _verified_carrier("plivo", request, call)
    if isinstance(carrier, WebhookReply):
        return carrier
    uuid_sent = (request.form.get("CallUUID") or [""])[0]
    if call.carrier_call_id and uuid_sent != call.carrier_call_id:
        return _refuse(400, "webhook.call_id_mismatch", "plivo", request, call=call)
    action = (parse_qs(request.query_string).get("action") or [""])[0]
    if action == "transfer" and call.transfer_to:
        caller_id = call.to_number if call.direction == Direction.INBOUND else call.from_number
        return _xml("plivo", carrier.dial_markup(call.transfer_to, caller_id.lstrip("+")))
    if action == "message":
        return _xml("plivo", carrier.say_and_hangup_markup(call.pending_message or APOLOGY_MESSAGE))
    if action == "warm":
        leg = call.transfer_legs.filter(state=TransferLegState.BRIDGED).order_by("-bridged_at").first()
        if leg is not None:
            return _xml("plivo", carrier.conference_markup(leg.conference))
    return _refuse(400, "webhook.unknown_action", "plivo", request, call=call, action=action[:32])


__all__ = [
    "WebhookReply",
    "apply_machine_detection",
    "apply_status_callback",
    "handle_inbound_webhook",
    "handle_plivo_action",
    "handle_plivo_answer",
]
