"""Starting calls: outbound dials (API, batch, schedule) and browser ("web") calls.

Both share the agent/variables checks (``_agent_plan``) and the concurrency-limited
create (``_create_call_within_limit``, under the org's row lock). Every outbound dial
passes the registered do-not-call checks first (the batches app registers its list).
Carrier REST calls are made *outside* database transactions: a slow carrier must not
hold row locks, and a failed dial must still leave a committed, failed Call behind to
explain what happened. What happens to a call after it started is
``calls.services.lifecycle``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from calls.carriers import CarrierError, OutboundCallRequest
from calls.models import LIVE, Call, Direction, PhoneNumber, Status
from calls.services.base import carrier_for, normalize_number
from calls.services.errors import CallError, CarrierUnavailable, ConcurrencyLimitReached, DoNotCall, MissingVariables
from calls.services.lifecycle import WEB_CALL_CONNECT_WINDOW
from calls.services.streams import issue_stream_target
from calls.services.timeline import add_event
from orgs.models import Organization
from orgs.services import Actor, record_audit
from voiceplatform import tracing

logger = logging.getLogger(__name__)


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
    """Remove a check ``register_do_not_call_check`` added (a no-op otherwise)."""
    if check in _DO_NOT_CALL_CHECKS:
        _DO_NOT_CALL_CHECKS.remove(check)


def lock_org_and_count_live(org: Organization) -> int:
    """Lock the org's row until the transaction ends and count its live calls: serialises
    concurrent starts of one org (dials, web calls, inbound calls) so two cannot both
    take the last slot."""
    Organization.objects.select_for_update().filter(pk=org.pk).first()
    return Call.objects.for_org(org).filter(status__in=LIVE).count()


def _agent_plan(org: Organization, agent: Any, variables: Mapping[str, Any] | None,
                caller_key: str) -> tuple[dict[str, Any], Any]:
    """The checks every call the platform starts shares (outbound and web): the agent is
    this org's and usable, the variables are an object and cover what its prompt needs.
    Returns (variables, the agent's outbound plan: the version ``caller_key`` runs)."""
    from calls.agent_link import AgentUnusable, outbound_plan

    if agent is None or agent.org_id != org.pk:
        raise CallError("no such agent in this organisation", field="agent")
    if variables is not None and not isinstance(variables, Mapping):
        raise CallError("must be an object of name → value", field="variables")
    variables = dict(variables or {})
    try:
        return variables, outbound_plan(agent, variables, caller_key)
    except AgentUnusable as exc:
        error = MissingVariables if exc.missing_variables else CallError
        raise error(exc.message, field=exc.field) from exc


def _create_call_within_limit(org: Organization, **fields: Any) -> Call:
    """Create a live-to-be Call if the org has a free concurrent-call slot; call inside a
    transaction (the org row lock serialises concurrent starts until it commits)."""
    live = lock_org_and_count_live(org)
    if live >= org.max_concurrent_calls:
        raise ConcurrencyLimitReached(
            f"the organisation already has {live} live call(s); its limit is {org.max_concurrent_calls}"
        )
    call = Call.objects.create(org=org, **fields)
    tracing.remember_call(str(call.public_id))  # the placing request is the root of the call's trace
    return call


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
        raise CallError("must be an object of name → value", field="variables")
    idempotency_key = (idempotency_key or "").strip()[:100]
    if idempotency_key:
        existing = Call.objects.for_org(org).filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if from_number.org_id != org.pk:
        raise CallError("no such number in this organisation", field="from_number")
    if agent is None or agent.org_id != org.pk:
        raise CallError("no such agent in this organisation", field="agent")
    to_e164 = normalize_number(org, to, "to")
    if to_e164 == from_number.e164:
        raise CallError("cannot call the number the call is placed from", field="to")
    for check in list(_DO_NOT_CALL_CHECKS):
        reason = check(org, to_e164)
        if reason:
            raise DoNotCall(reason, field="to")
    variables, plan = _agent_plan(org, agent, variables, to_e164)
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
                experiment_arm=plan.experiment_arm,
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


# --- web calls ---------------------------------------------------------------------------

WEB_STREAM_PATH = "/ws/web/{call_id}"


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
    from agents.experiments.services import web_caller_key

    variables, plan = _agent_plan(org, agent, variables, web_caller_key(actor))
    now = timezone.now()
    with transaction.atomic():
        call = _create_call_within_limit(
            org, direction=Direction.WEB, agent=agent, agent_version=plan.agent_version,
            experiment_arm=plan.experiment_arm,
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


def _fail_call(call: Call, reason: str, error: str) -> None:
    """Keep a dial the carrier refused as a failed Call that says why."""
    now = timezone.now()
    Call.objects.filter(pk=call.pk).update(status=Status.FAILED, end_reason=reason, error=error[:2000], ended_at=now)
    call.status, call.end_reason, call.error, call.ended_at = Status.FAILED, reason, error, now
    add_event(call, "call.failed", reason=reason, error=error[:500])
