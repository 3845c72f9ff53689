"""State changes of calls and phone numbers (DESIGN.md convention 1).

Views, API viewsets, admin actions, Celery tasks, the carrier webhooks
(``calls.webhooks``) and the media consumer (through ``calls.session_link``) all go
through these functions; each records an audit entry or a timeline event.

Carrier REST calls are made *outside* database transactions: a slow carrier must
not hold row locks, and a failed dial must still leave a committed, failed Call
behind to explain what happened.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.builtin_tools import find_destination, normalize_target
from calls.carriers import (
    Carrier,
    CarrierError,
    CarrierNumber,
    OutboundCallRequest,
    StreamTarget,
    get_carrier,
)
from calls.carriers.base import validate_dtmf
from calls.models import (
    LIVE,
    STATUS_RANK,
    Call,
    CallEvent,
    Direction,
    PhoneNumber,
    Status,
    hash_stream_token,
)
from orgs.credentials import MissingCredential, get_credential
from orgs.models import Organization
from orgs.services import SYSTEM, Actor, record_audit
from voiceplatform.models import delete_unless_in_use
from voiceplatform.phones import PhoneNumberError, normalize_phone

logger = logging.getLogger(__name__)

APOLOGY_MESSAGE = "Sorry, we are having technical difficulties. Please call again later. Goodbye."


class CallError(Exception):
    """A call operation was refused; ``field`` names the input at fault, if any."""

    code = "call_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class MissingVariables(CallError):
    code = "missing_variables"


class ConcurrencyLimitReached(CallError):
    code = "concurrency_limit"


class DoNotCall(CallError):
    code = "do_not_call"


class CarrierUnavailable(CallError):
    code = "carrier_error"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


# --- do-not-call hook ---------------------------------------------------------------

DoNotCallCheck = Callable[[Organization, str], str | None]
_DO_NOT_CALL_CHECKS: list[DoNotCallCheck] = []


def register_do_not_call_check(check: DoNotCallCheck) -> DoNotCallCheck:
    """Register ``check(org, e164) -> reason | None``; any reason blocks the dial.

    The batches app registers its do-not-call list here, so every outbound path
    (API, batch, schedule) is covered by the one check in ``place_outbound_call``.
    """
    if check not in _DO_NOT_CALL_CHECKS:
        _DO_NOT_CALL_CHECKS.append(check)
    return check


def unregister_do_not_call_check(check: DoNotCallCheck) -> None:
    if check in _DO_NOT_CALL_CHECKS:
        _DO_NOT_CALL_CHECKS.remove(check)


# --- helpers ---------------------------------------------------------------------------

def carrier_for(org: Organization, carrier_name: str) -> Carrier:
    """The org's carrier adapter, with its decrypted credential (never logged)."""
    try:
        credentials = get_credential(org, carrier_name)
    except MissingCredential as exc:
        raise CallError(str(exc), field="from_number") from exc
    try:
        return get_carrier(carrier_name, credentials, public_base_url=settings.PUBLIC_BASE_URL)
    except CarrierError as exc:
        raise CallError(str(exc)) from exc


def normalize_number(org: Organization, raw: str, field: str) -> str:
    try:
        return normalize_phone(str(raw), org.default_country or None).e164
    except PhoneNumberError as exc:
        raise CallError(f"{field}: {exc.reason}", field=field) from exc


def new_stream_token() -> str:
    # Hex so it fits Plivo's letters-and-digits-only extraHeaders.
    return secrets.token_hex(24)


def issue_stream_target(call: Call, *, replaces_stream: bool = False, **parameters: str) -> StreamTarget:
    """Rotate the call's media-stream token and return where the carrier should connect.

    Only the hash is stored; every markup we hand out carries a fresh token, so a
    token seen in an old TwiML document is worthless. The token is never part of a
    URL (see calls.carriers.base.STREAM_PATH): it travels in the stream's ``start``
    message. Rotating does not touch the call's stream claim: a socket already in
    keeps the stream until it ends (calls.session_link.claim_stream) — except with
    ``replaces_stream``, for markup that itself ends the current stream and opens this
    one (Twilio's DTMF resume), whose socket must not wait for the old one's release.
    """
    token = new_stream_token()
    call.stream_token_hash = hash_stream_token(token)
    changes: dict[str, Any] = {"stream_token_hash": call.stream_token_hash}
    if replaces_stream:
        changes.update(stream_claim="", stream_claim_expires_at=None)
    Call.objects.filter(pk=call.pk).update(**changes)
    return StreamTarget(call_public_id=str(call.public_id), token=token, parameters=parameters)


def add_event(call: Call | None, kind: str, *, source: str = "system", org: Organization | None = None,
              offset_ms: int | None = None, **data: Any) -> CallEvent:
    return CallEvent.objects.create(
        org=call.org if call is not None else org,
        call=call,
        kind=kind,
        source=source,
        at=timezone.now(),
        offset_ms=offset_ms,
        data=data,
    )


def _lock_org_and_count_live(org: Organization) -> int:
    # Serialises concurrent dials of one org so two requests cannot both take the last slot.
    Organization.objects.select_for_update().filter(pk=org.pk).first()
    return Call.objects.for_org(org).filter(status__in=LIVE).count()


def _agent_plan(org: Organization, agent: Any, variables: Mapping[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """The checks every call the platform starts shares (outbound and web): the agent is
    this org's and usable, the variables are an object and cover what its prompt needs.
    Returns (variables, the agent's outbound plan)."""
    from calls.agent_link import AgentUnusable, outbound_plan

    if agent is None or agent.org_id != org.pk:
        raise CallError("agent: no such agent in this organisation", field="agent")
    if variables is not None and not isinstance(variables, Mapping):
        raise CallError("variables: must be an object of name → value", field="variables")
    variables = dict(variables or {})
    try:
        return variables, outbound_plan(agent, variables)
    except AgentUnusable as exc:
        error = MissingVariables if exc.missing_variables else CallError
        raise error(f"{exc.field}: {exc}", field=exc.field) from exc


def _create_call_within_limit(org: Organization, **fields: Any) -> Call:
    """Create a live-to-be Call if the org has a free concurrent-call slot; call inside a
    transaction (the org row lock serialises concurrent starts until it commits)."""
    live = _lock_org_and_count_live(org)
    if live >= org.max_concurrent_calls:
        raise ConcurrencyLimitReached(
            f"the organisation already has {live} live call(s); its limit is {org.max_concurrent_calls}"
        )
    return Call.objects.create(org=org, **fields)


# --- outbound ------------------------------------------------------------------------------

def place_outbound_call(
    org: Organization,
    agent: Any,
    to: str,
    from_number: PhoneNumber,
    variables: Mapping[str, Any] | None,
    actor: Actor,
    *,
    idempotency_key: str = "",
    ring_timeout_s: int = 45,
    source: str = "api",
) -> Call:
    """Create an outbound Call and ask the carrier to dial it.

    Idempotent per ``idempotency_key``: a repeat returns the first call untouched.
    ``source`` names the caller on the timeline (``api``, ``batch``, ``schedule``).
    Raises ``CallError`` (bad input, do-not-call, missing variables, no credential),
    ``ConcurrencyLimitReached`` or ``CarrierUnavailable`` (the Call is then kept as
    failed with the carrier's reason).
    """
    if variables is not None and not isinstance(variables, Mapping):
        raise CallError("variables: must be an object of name → value", field="variables")
    idempotency_key = (idempotency_key or "").strip()[:100]
    if idempotency_key:
        existing = Call.objects.for_org(org).filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if from_number.org_id != org.pk:
        raise CallError("from_number: no such number in this organisation", field="from_number")
    if agent is None or agent.org_id != org.pk:
        raise CallError("agent: no such agent in this organisation", field="agent")
    to_e164 = normalize_number(org, to, "to")
    if to_e164 == from_number.e164:
        raise CallError("to: cannot call the number the call is placed from", field="to")
    for check in list(_DO_NOT_CALL_CHECKS):
        reason = check(org, to_e164)
        if reason:
            raise DoNotCall(f"to: {reason}", field="to")
    variables, plan = _agent_plan(org, agent, variables)
    carrier = carrier_for(org, from_number.carrier)

    try:
        with transaction.atomic():
            call = _create_call_within_limit(
                org,
                direction=Direction.OUTBOUND,
                from_number=from_number.e164,
                to_number=to_e164,
                agent=agent,
                agent_version=plan.agent_version,
                phone_number=from_number,
                carrier=from_number.carrier,
                status=Status.QUEUED,
                queued_at=timezone.now(),
                variables=variables,
                idempotency_key=idempotency_key,
            )
            add_event(call, "call.created", source=source, direction="outbound")
            record_audit(org, actor, "call.placed", call, {"agent": str(agent.public_id), "carrier": call.carrier})
    except IntegrityError:
        # A concurrent request with the same idempotency key won the race.
        existing = Call.objects.for_org(org).filter(idempotency_key=idempotency_key).first()
        if idempotency_key and existing is not None:
            return existing
        raise

    target = issue_stream_target(call, direction="outbound")
    request = OutboundCallRequest(
        call_public_id=str(call.public_id),
        to=to_e164,
        from_=from_number.e164,
        stream=target,
        ring_timeout_s=ring_timeout_s,
        time_limit_s=plan.max_duration_s,
        machine_detection=plan.machine_detection,
    )
    try:
        placed = carrier.place_call(request)
    except CarrierError as exc:
        _fail_call(call, "carrier_rejected", str(exc))
        logger.warning("call.place_failed", extra={"call": str(call.public_id), "retryable": exc.retryable})
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    Call.objects.filter(pk=call.pk).update(
        carrier_call_id=placed.carrier_call_id or "", carrier_request_id=placed.carrier_request_id or ""
    )
    call.carrier_call_id = placed.carrier_call_id or ""
    call.carrier_request_id = placed.carrier_request_id or ""
    add_event(call, "carrier.dialed", source="carrier", carrier=call.carrier)
    logger.info("call.placed", extra={"call": str(call.public_id), "carrier": call.carrier})
    return call


WEB_STREAM_PATH = "/ws/web/{call_id}"
# A web call whose browser has not opened (and authenticated) its socket by then is
# abandoned: it is ended so it stops holding one of the org's concurrent-call slots.
WEB_CALL_CONNECT_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class WebCallStart:
    """A started browser call: the socket path (no secret in it) and the one-call token
    the browser sends in its first message, ``{"event": "start", "token": …}``."""

    call: Call
    websocket_path: str
    stream_token: str


def start_web_call(org: Organization, agent: Any, actor: Actor,
                   variables: Mapping[str, Any] | None = None) -> WebCallStart:
    """A browser call to ``agent`` ("talk to this agent"). If no socket authenticates
    within ``WEB_CALL_CONNECT_WINDOW`` the call is ended (``expire_unconnected_web_call``)."""
    variables, plan = _agent_plan(org, agent, variables)
    now = timezone.now()
    with transaction.atomic():
        call = _create_call_within_limit(
            org, direction=Direction.WEB, agent=agent, agent_version=plan.agent_version,
            status=Status.IN_PROGRESS, queued_at=now, answered_at=now, variables=variables,
        )
        add_event(call, "call.created", source="web", direction="web")
        record_audit(org, actor, "call.web_started", call, {"agent": str(agent.public_id)})
        from calls.tasks import expire_unconnected_web_call_task

        org_id, call_id = str(org.public_id), str(call.public_id)
        transaction.on_commit(lambda: expire_unconnected_web_call_task.apply_async(
            (org_id, call_id), countdown=int(WEB_CALL_CONNECT_WINDOW.total_seconds())))
    target = issue_stream_target(call)
    return WebCallStart(call, WEB_STREAM_PATH.format(call_id=call.public_id), target.token)


def expire_unconnected_web_call(call: Call, now: Any = None) -> bool:
    """End a web call whose socket never connected within ``WEB_CALL_CONNECT_WINDOW`` of
    its start (the page was closed, the microphone refused…), freeing its slot. False
    (nothing changed) if a socket did connect, the call already ended, or it is younger."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Call.objects.select_for_update(of=("self",)).select_related("org").filter(pk=call.pk).first()
        if (locked is None or locked.is_final or locked.direction != Direction.WEB
                or locked.stream_connected_at is not None or locked.created_at > now - WEB_CALL_CONNECT_WINDOW):
            return False
        locked.end_reason = "web_never_connected"
        if not transition(locked, Status.FAILED, duration_s=0, source="system"):
            return False
        finalize_call(locked)  # no session will ever report for it
    logger.info("call.web_expired", extra={"call": str(locked.public_id)})
    return True


# A call is stale when the carrier has told us nothing that ends it for this long
# past what it could legitimately take (ringing, or its agent's maximum duration).
STALE_RINGING = timedelta(minutes=10)
STALE_GRACE = timedelta(minutes=10)


def expire_stale_calls(now: Any = None) -> int:
    """End calls whose final callback never came, so they stop counting against the
    org's concurrent-call limit. A still-open carrier leg is hung up (best effort).
    Returns how many calls were ended."""
    now = now or timezone.now()
    expired = 0
    # Web calls whose browser never connected: their per-call expiry task is the prompt
    # path; this catches one that was lost.
    abandoned = Call.objects.filter(status__in=LIVE, direction=Direction.WEB, stream_connected_at__isnull=True,
                                    created_at__lt=now - WEB_CALL_CONNECT_WINDOW)
    for call in abandoned.iterator():
        expired += expire_unconnected_web_call(call, now)
    candidates = Call.objects.filter(status__in=LIVE).select_related("org", "agent_version")
    for call in candidates.filter(created_at__lt=now - STALE_RINGING).iterator():
        limit_s = int((call.agent_version.config if call.agent_version else {}).get("max_call_duration_s") or 3600)
        started = call.answered_at or call.created_at
        if call.status == Status.IN_PROGRESS and started > now - timedelta(seconds=limit_s) - STALE_GRACE:
            continue  # answered calls may last up to their agent's maximum duration
        if call.carrier and (call.carrier_call_id or call.carrier_request_id):
            try:
                hangup_call(call, SYSTEM, reason="stale")
            except CallError as exc:
                add_event(call, "call.stale_hangup_failed", error=exc.message[:500])
        with transaction.atomic():
            locked = Call.objects.select_for_update(of=("self",)).get(pk=call.pk)
            if locked.is_final:
                continue
            locked.end_reason = "stale"
            if transition(locked, Status.FAILED if locked.answered_at is None else Status.COMPLETED,
                          source="system"):
                expired += 1
    if expired:
        logger.warning("calls.expired_stale", extra={"count": expired})
    return expired


def _fail_call(call: Call, reason: str, error: str) -> None:
    now = timezone.now()
    Call.objects.filter(pk=call.pk).update(status=Status.FAILED, end_reason=reason, error=error[:2000], ended_at=now)
    call.status, call.end_reason, call.error, call.ended_at = Status.FAILED, reason, error, now
    add_event(call, "call.failed", reason=reason, error=error[:500])


# --- status lifecycle ------------------------------------------------------------------

# What carriers report for any normal hang-up; a more specific reason replaces them.
GENERIC_END_REASONS = frozenset({"completed", "normal_clearing"})

TIMESTAMP_FOR: dict[str, str] = {
    Status.QUEUED: "queued_at",
    Status.RINGING: "ringing_at",
    Status.IN_PROGRESS: "answered_at",
}


def transition(
    call: Call,
    status: str,
    *,
    duration_s: int | None = None,
    end_reason: str = "",
    answered_by: str = "",
    sequence: int | None = None,
    source: str = "carrier",
) -> bool:
    """Move a (row-locked) call forward in its lifecycle. Returns False for a stale or
    repeated update, which then changes nothing at all."""
    if sequence is not None and call.status_sequence is not None and sequence <= call.status_sequence:
        return False
    if call.is_final or STATUS_RANK[status] <= STATUS_RANK[call.status]:
        return False
    now = timezone.now()
    previous = call.status
    call.status = status
    if sequence is not None:
        call.status_sequence = sequence
    if status in TIMESTAMP_FOR and getattr(call, TIMESTAMP_FOR[status]) is None:
        setattr(call, TIMESTAMP_FOR[status], now)
    if call.is_final:
        call.ended_at = now
        if duration_s is not None:
            call.duration_s = duration_s
        elif call.answered_at is not None:
            call.duration_s = int((now - call.answered_at).total_seconds())
        # The session's or an operator's reason (agent_hangup, transferred…) wins.
        if not call.end_reason:
            call.end_reason = end_reason or ("completed" if status == Status.COMPLETED else status)
    if answered_by and not call.answered_by:
        call.answered_by = answered_by
    call.save()
    add_event(call, f"status.{status}", source=source, previous=previous)
    if status == Status.IN_PROGRESS:
        record_audit(call.org, Actor(), "call.answered", call, {"answered_by": call.answered_by})
    if call.is_final:
        record_audit(call.org, Actor(), "call.ended", call,
                     {"status": status, "end_reason": call.end_reason, "duration_s": call.duration_s})
        if call.answered_at is None or session_recorded(call):
            finalize_call(call)
        else:
            # The session normally reports within seconds of the hang-up; if it never
            # does (the stream never connected, the process died), finalize anyway.
            from calls.tasks import finalize_call_task

            org_id, call_id = str(call.org.public_id), str(call.public_id)
            transaction.on_commit(lambda: finalize_call_task.apply_async((org_id, call_id),
                                                                         countdown=FINALIZE_GRACE_S))
        if call.carrier and call.carrier_call_id and call.answered_at is not None:
            from calls.tasks import fetch_call_cost

            org_id, call_id = str(call.org.public_id), str(call.public_id)
            # Carriers price a call a little after it ends.
            transaction.on_commit(lambda: fetch_call_cost.apply_async((org_id, call_id), countdown=30))
    return True


FINALIZE_GRACE_S = 120


def session_recorded(call: Call) -> bool:
    return CallEvent.objects.filter(call=call, kind="session.ended").exists()


def finalize_call(call: Call) -> bool:
    """Record ``call.finalized`` exactly once for an ended call (the ``call.ended``
    webhook, sent with the transcript). Safe to call from every path that may be last."""
    if not call.is_final:
        return False
    now = timezone.now()
    if not Call.objects.filter(pk=call.pk, finalized_at__isnull=True).update(finalized_at=now):
        return False
    call.finalized_at = now
    record_audit(call.org, Actor(), "call.finalized", call,
                 {"status": call.status, "end_reason": call.end_reason, "duration_s": call.duration_s})
    return True


def record_carrier_cost(call: Call) -> bool:
    """Store what the carrier billed for ``call``. False while it is not priced yet."""
    if not call.carrier or not call.carrier_call_id:
        return True
    try:
        cost = carrier_for(call.org, call.carrier).fetch_cost(call.carrier_call_id)
    except CarrierError as exc:
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    if cost is None:
        return False
    Call.objects.filter(pk=call.pk).update(carrier_cost=cost.amount, cost_currency=cost.currency)
    call.carrier_cost, call.cost_currency = cost.amount, cost.currency
    add_event(call, "cost.recorded", source="carrier", amount=str(cost.amount), currency=cost.currency)
    return True


PROVIDER_COST_PLACES = Decimal("0.00001")  # Call.provider_cost's decimal_places


def session_provider_model(call: Call) -> tuple[str, str]:
    """The AI provider and model the call's session ran with: what the session
    reported, else what its agent version configures (the bridge's default model
    when the version names none)."""
    from agents.providers import PROVIDERS

    usage = call.usage if isinstance(call.usage, dict) else {}
    cfg = call.agent_version.config if call.agent_version is not None else {}
    provider = str(usage.get("provider") or cfg.get("provider") or "")
    model = usage.get("model") or cfg.get("model") or ""
    if not model and provider in PROVIDERS:
        model = PROVIDERS[provider].default_model
    return provider, str(model)


def record_provider_cost(call: Call) -> Decimal | None:
    """Price the AI provider session from ``call.usage`` and store the amount, its
    breakdown and a ``cost.provider`` timeline event. None (with the reason in the
    breakdown and event) when the session cannot be priced; recomputing, e.g. after a
    price change, replaces the previous figures."""
    from agents.pricing import estimate_cost, price_table

    provider, model = session_provider_model(call)
    estimate = estimate_cost(provider, model, call.usage or {}, price_table(settings.PROVIDER_PRICES))
    amount = estimate.amount.quantize(PROVIDER_COST_PLACES, ROUND_HALF_UP) if estimate.amount is not None else None
    priced = {**estimate.as_dict(), "priced_at": timezone.now().isoformat()}
    breakdown = {**(call.cost_breakdown or {}), "provider": priced}
    Call.objects.filter(pk=call.pk).update(provider_cost=amount, cost_breakdown=breakdown)
    call.provider_cost, call.cost_breakdown = amount, breakdown
    if amount is None:
        add_event(call, "cost.provider", provider=provider, model=model, amount=None, reason=estimate.reason)
    else:
        add_event(call, "cost.provider", provider=provider, model=model, amount=str(amount),
                  currency=estimate.currency)
    logger.info("call.provider_cost", extra={"call": str(call.public_id), "provider": provider, "model": model,
                                             "priced": amount is not None})
    return amount


# --- control: hang up, transfer, DTMF, SMS ---------------------------------------------

def _live_call_with_carrier(call: Call, action: str) -> Carrier:
    if call.is_final:
        raise CallError(f"cannot {action}: the call has already ended ({call.get_status_display()})")
    if call.direction == Direction.WEB or not call.carrier:
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


def _agent_entries(call: Call, field: str) -> list[dict[str, Any]]:
    """The named numbers (``transfer_destinations`` / ``sms_recipients``) of the version the call runs."""
    version = call.agent_version
    entries = (version.config.get(field) if version is not None else None) or []
    return [e for e in entries if isinstance(e, dict)]


def _labels(entries: list[dict[str, Any]]) -> str:
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
    destinations = _agent_entries(call, "transfer_destinations")
    entry = find_destination(destinations, to)
    label = ""
    if entry is not None:
        target, label = str(entry["number"]), str(entry["label"])
    elif any_number:
        try:
            target = normalize_target(to, allow_sip=True, default_region=call.org.default_country or None)
        except ValueError as exc:
            raise CallError(f"to: {exc}", field="to") from exc
    else:
        add_event(call, "call.transfer_refused", reason="not a configured transfer destination",
                  by=actor.label[:100])
        raise CallError(f"to: “{str(to)[:40]}” is not one of this agent's transfer destinations "
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
    carrier = _live_call_with_carrier(call, "send DTMF")
    if call.status != Status.IN_PROGRESS:
        raise CallError("cannot send DTMF: the call has not been answered yet")
    try:
        validate_dtmf(digits)
    except CarrierError as exc:
        raise CallError(f"digits: {exc}", field="digits") from exc
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
        raise CallError("body: the message is empty", field="body")
    number = call.phone_number
    assert number is not None
    recipient = call.counterpart
    if to:
        recipients = _agent_entries(call, "sms_recipients")
        entry = find_destination(recipients, to)
        if entry is None:
            add_event(call, "sms.refused", reason="not a configured SMS recipient", by=actor.label[:100])
            raise CallError(f"to: “{str(to)[:40]}” is not one of this agent's SMS recipients "
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
    (removed from storage by the Recording post_delete handler)."""
    if not call.is_final:
        raise CallError("cannot delete a call that is still live; hang it up first")
    record_audit(call.org, actor, "call.deleted", call, {"direction": call.direction})
    call.delete()


# --- numbers ---------------------------------------------------------------------------

def held_carrier_number(org: Organization, carrier_name: str, e164: str) -> CarrierNumber:
    """The org's carrier account's own record of ``e164``, asked of the carrier's API
    (the list ``import_carrier_numbers`` reads). A number the account does not hold is
    a ``CallError`` on ``e164``; a missing credential one on ``carrier``; an
    unreachable or refusing carrier API a ``CarrierUnavailable`` — never a yes."""
    try:
        carrier = carrier_for(org, carrier_name)
    except CallError as exc:
        raise CallError(f"carrier: cannot check that the organisation's {carrier_name} account holds this "
                        f"number: {exc.message}", field="carrier") from exc
    try:
        owned = carrier.list_numbers()
    except CarrierError as exc:
        raise CarrierUnavailable(f"cannot check that the organisation's {carrier_name} account holds this "
                                 f"number: {exc}", retryable=exc.retryable) from exc
    match = next((item for item in owned if item.e164 == e164), None)
    if match is None:
        raise CallError(f"e164: {e164} is not a number of this organisation's {carrier_name} account; "
                        "buy or port it there first", field="e164")
    return match


def check_new_phone_number(org: Organization, *, e164: str, carrier: str,
                           inbound_agent: Any = None) -> tuple[str, CarrierNumber]:
    """Everything ``create_phone_number`` checks before it writes (forms call it to show
    errors on the right field): the E.164 form of ``e164`` and the carrier's record of it."""
    number = normalize_number(org, e164, "e164")
    if carrier not in ("twilio", "plivo"):
        raise CallError(f"carrier: must be twilio or plivo, not {carrier!r}", field="carrier")
    if inbound_agent is not None and inbound_agent.org_id != org.pk:
        raise CallError("inbound_agent: no such agent in this organisation", field="inbound_agent")
    if PhoneNumber.objects.filter(carrier=carrier, e164=number).exists():
        raise CallError(f"e164: {number} is already registered on {carrier}", field="e164")
    return number, held_carrier_number(org, carrier, number)


def create_phone_number(org: Organization, actor: Actor, *, e164: str, carrier: str, label: str = "",
                        inbound_agent: Any = None) -> PhoneNumber:
    """Add one number by hand. Only a number the org's carrier account holds, as the
    carrier's API says (``held_carrier_number``): numbers are unique per carrier, so a
    number registered on someone's say-so would block its real owner's import and take
    its calls. The carrier's id for it comes from the carrier, too."""
    number, held = check_new_phone_number(org, e164=e164, carrier=carrier, inbound_agent=inbound_agent)
    try:
        with transaction.atomic():
            phone = PhoneNumber.objects.create(org=org, e164=number, carrier=carrier, label=label,
                                               carrier_number_id=held.carrier_number_id, inbound_agent=inbound_agent)
    except IntegrityError as exc:  # registered meanwhile, while the carrier was asked
        raise CallError(f"e164: {number} is already registered on {carrier}", field="e164") from exc
    record_audit(org, actor, "phone_number.created", phone, {"carrier": carrier})
    return phone


def update_phone_number(phone: PhoneNumber, actor: Actor, **values: Any) -> PhoneNumber:
    from orgs.services import diff_fields

    agent = values.get("inbound_agent")
    if agent is not None and agent.org_id != phone.org_id:
        raise CallError("inbound_agent: no such agent in this organisation", field="inbound_agent")
    allowed = {k: v for k, v in values.items() if k in ("label", "inbound_agent")}
    changes = diff_fields(phone, allowed)
    if changes:
        phone.save()
        record_audit(phone.org, actor, "phone_number.updated", phone, changes)
    return phone


def delete_phone_number(phone: PhoneNumber, actor: Actor) -> None:
    with transaction.atomic():
        record_audit(phone.org, actor, "phone_number.deleted", phone, {"carrier": phone.carrier})
        delete_unless_in_use(phone)


@dataclass(frozen=True)
class ImportResult:
    created: list[PhoneNumber]
    updated: list[PhoneNumber]
    skipped: list[tuple[str, str]]  # (number, why)


def import_carrier_numbers(org: Organization, carrier_name: str, actor: Actor, *,
                           configure_webhooks: bool = True) -> ImportResult:
    """Bring in every number the org's carrier account owns and point its voice
    webhooks at this platform. Re-running updates what is there."""
    carrier = carrier_for(org, carrier_name)
    try:
        owned = carrier.list_numbers()
    except CarrierError as exc:
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    created: list[PhoneNumber] = []
    updated: list[PhoneNumber] = []
    skipped: list[tuple[str, str]] = []
    for item in owned:
        existing = PhoneNumber.objects.filter(carrier=carrier_name, e164=item.e164).first()
        if existing is not None and existing.org_id != org.pk:
            skipped.append((item.e164, "registered by another organisation"))
            continue
        if configure_webhooks:
            try:
                carrier.configure_number(item)
            except CarrierError as exc:
                skipped.append((item.e164, str(exc)))
                continue
        with transaction.atomic():
            if existing is None:
                phone = PhoneNumber.objects.create(
                    org=org, e164=item.e164, carrier=carrier_name, carrier_number_id=item.carrier_number_id,
                    label=item.label[:100],
                )
                created.append(phone)
            else:
                phone = existing
                phone.carrier_number_id = item.carrier_number_id
                updated.append(phone)
            if configure_webhooks:
                phone.webhooks_configured_at = timezone.now()
            phone.save()
    record_audit(org, actor, "phone_number.imported", None,
                 {"carrier": carrier_name, "created": len(created), "updated": len(updated), "skipped": len(skipped)},
                 target_label=f"{carrier_name} numbers")
    return ImportResult(created=created, updated=updated, skipped=skipped)


# The media consumer resolves these by dotted path ("calls.services.…"); they live in
# calls.session_link to keep this module to the carrier side.
from calls.session_link import (  # noqa: E402 - after the names session_link imports
    authorize_stream,
    claim_stream,
    load_session_context,
    record_session_result,
    release_stream_claim,
    renew_stream_claim,
)

__all__ = ["authorize_stream", "claim_stream", "load_session_context", "record_session_result",
           "release_stream_claim", "renew_stream_claim"]
