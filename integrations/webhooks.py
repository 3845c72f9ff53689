"""Outgoing customer webhooks: events from the audit log, signed delivery, retries, disabling.

Flow:
1. A service records an audit entry; after commit ``orgs.signals.audit_recorded`` fires and
   :func:`on_audit_recorded` maps the action to an event type (:data:`AUDIT_EVENTS`) and
   calls :func:`emit`. Code may also call ``emit(org, event_type, payload)`` directly.
2. :func:`emit` stores one ``WebhookEvent`` and one ``WebhookDelivery`` per subscribed,
   enabled endpoint, and (on commit) enqueues a delivery task for each.
3. The task calls :func:`attempt_delivery`: claim the row (``select_for_update``,
   ``skip_locked``; only a due, unleased, unfinished delivery is claimable), sign and POST,
   record the attempt, and either finish or schedule the next try with exponential backoff.
   The database row, not the Celery message, is the truth: a duplicated or redelivered task
   message finds nothing to claim, and :func:`sweep_due` re-enqueues anything whose message
   was lost (e.g. a worker killed while holding it).

Receivers get at-least-once delivery: if a worker dies after the receiver answered but before
the answer was recorded, the lease expires and the delivery is retried with the same
``X-VP-Event-Id``; receivers deduplicate on it (the README says so).
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.apps import apps
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from integrations import conf
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from integrations.targets import check_outbound_url
from integrations.webhooks_signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signature_header
from orgs.models import AuditLog, Membership, Organization, Role
from orgs.services import SYSTEM, record_audit
from voiceplatform import metrics, outbound
from voiceplatform.redaction import PLACEHOLDERS

log = logging.getLogger(__name__)

RESPONSE_EXCERPT_CHARS = 1000
USER_AGENT = "VoicePlatform-Webhooks/1.0"

# audit action → event type sent to customers. Only these leave the platform: internal
# actions (API keys, credentials, members) are not customer events.
AUDIT_EVENTS: dict[str, str] = {
    "call.placed": "call.placed",
    "call.received": "call.received",
    "call.started": "call.started",
    "call.answered": "call.started",
    "call.web_started": "call.started",
    # ``call.ended`` (the carrier's final status) is internal; ``call.finalized`` comes
    # once the session's transcript and recording are stored too, so the customer's
    # call.ended event always carries the transcript.
    "call.finalized": "call.ended",
    "call.transferred": "call.transferred",
    "call.analyzed": "call.analyzed",
    "batch.launched": "batch.started",
    "batch.paused": "batch.paused",
    "batch.resumed": "batch.resumed",
    "batch.completed": "batch.completed",
    "batch.canceled": "batch.canceled",
    "batch.cancelled": "batch.canceled",
    "scheduled_call.fired": "scheduled_call.fired",
    "scheduled_call.missed": "scheduled_call.missed",
    "agent.published": "agent.published",
    "document.added": "knowledge.document_added",
}
# Sent only on request, to one endpoint; never subscribed to.
TEST_EVENT = "webhook.test"
# A call that never connected ends as call.failed rather than call.ended.
FAILED_CALL_STATUSES = frozenset({"busy", "no_answer", "failed"})
EVENT_TYPES: tuple[str, ...] = tuple(sorted({*AUDIT_EVENTS.values(), "call.failed"}))

PayloadBuilder = Callable[[AuditLog], dict[str, Any]]
_PAYLOAD_BUILDERS: dict[str, PayloadBuilder] = {}


def register_payload_builder(target_type: str) -> Callable[[PayloadBuilder], PayloadBuilder]:
    """Apps may enrich events about their objects (``target_type`` is ``app_label.model``)."""

    def decorate(func: PayloadBuilder) -> PayloadBuilder:
        _PAYLOAD_BUILDERS[target_type] = func
        return func

    return decorate


# --------------------------------------------------------------------------- emitting


def event_type_for(entry: AuditLog) -> str | None:
    event_type = AUDIT_EVENTS.get(entry.action)
    if event_type == "call.ended" and (entry.changes or {}).get("status") in FAILED_CALL_STATUSES:
        return "call.failed"
    return event_type


def _agent_allows(entry: AuditLog, event_type: str) -> bool:
    """An agent may narrow which call events its calls send (its ``webhook_events``; empty = all)."""
    if entry.target_type != "calls.call":
        return True
    Call = apps.get_model("calls", "Call")
    call = (Call.objects.for_org(entry.org).filter(public_id=entry.target_id)
            .select_related("agent", "agent_version").first())
    if call is None or call.agent is None:
        return True
    # A version published before agents could narrow their events (None) defers to the agent.
    versioned = call.agent_version.settings.webhook_events if call.agent_version is not None else None
    wanted = (versioned if versioned is not None else call.agent.webhook_events) or []
    return not wanted or event_type in wanted


def on_audit_recorded(sender: Any, entry: AuditLog, **kwargs: Any) -> WebhookEvent | None:
    """Runs after the audit entry's transaction committed. Never raises into the caller's
    request: a failure is logged and the sweeper's backfill creates the event later."""
    try:
        event_type = event_type_for(entry)
        if event_type is None or not _agent_allows(entry, event_type):
            return None
        try:
            payload = payload_for(entry)
        except Exception:  # noqa: BLE001 - a broken enricher must not lose the event
            log.exception("webhook payload builder failed; sending the bare audit payload",
                          extra={"action": entry.action})
            payload = _base_payload(entry)
        return emit(entry.org, event_type, payload, audit_entry=entry)
    except Exception:  # noqa: BLE001
        log.exception("could not create the webhook event; the sweeper will retry",
                      extra={"action": entry.action})
        return None


def _base_payload(entry: AuditLog) -> dict[str, Any]:
    return {
        "action": entry.action,
        "object": {"type": entry.target_type, "id": entry.target_id, "label": entry.target_label},
        "actor": entry.actor_label,
        "changes": entry.changes,
    }


def payload_for(entry: AuditLog) -> dict[str, Any]:
    payload = _base_payload(entry)
    builder = _PAYLOAD_BUILDERS.get(entry.target_type)
    if builder is not None:
        payload.update(builder(entry))
    return payload


#: A transcript the org does not store waits here (cache only, never the database) for the
#: call's ``call.ended`` payload; it expires on its own.
TRANSIENT_TRANSCRIPT_PREFIX = "transient-transcript:"
TRANSIENT_TRANSCRIPT_TTL_S = 6 * 3600


def keep_transient_transcript(call_public_id: str, turns: list[dict[str, Any]]) -> None:
    cache.set(TRANSIENT_TRANSCRIPT_PREFIX + call_public_id, turns, TRANSIENT_TRANSCRIPT_TTL_S)


@register_payload_builder("calls.call")
def _call_payload(entry: AuditLog) -> dict[str, Any]:
    """Calls: the call's facts, and its transcript once it has ended."""
    Call = apps.get_model("calls", "Call")
    call = Call.objects.for_org(entry.org).filter(public_id=entry.target_id).select_related(
        "agent", "agent_version").first()
    if call is None:
        return {}
    # The numbers go out as they are (customers match calls by them) unless the version the
    # call runs redacts them here too; a typed placeholder, so the receiver knows what it hid.
    hide = call.agent_version is not None and call.agent_version.settings.redact_webhook_numbers
    data: dict[str, Any] = {"call": {
        "id": str(call.public_id), "direction": call.direction, "status": call.status,
        "from": PLACEHOLDERS["phone"] if hide and call.from_number else call.from_number,
        "to": PLACEHOLDERS["phone"] if hide and call.to_number else call.to_number,
        "agent": str(call.agent.public_id) if call.agent_id else None,
        "started_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_s": call.duration_s, "end_reason": call.end_reason,
    }}
    if entry.action == "call.finalized":
        # The carrier prices its leg some time after the hang-up, so its part (and
        # so the total) is often still null here; the call's API resource has it later.
        breakdown = call.cost_breakdown if isinstance(call.cost_breakdown, dict) else {}
        provider = breakdown.get("provider") if isinstance(breakdown.get("provider"), dict) else {}
        total = call.total_cost
        data["cost"] = {
            "provider": str(call.provider_cost) if call.provider_cost is not None else None,
            "provider_currency": provider.get("currency") if call.provider_cost is not None else None,
            "carrier": str(call.carrier_cost) if call.carrier_cost is not None else None,
            "carrier_currency": call.cost_currency if call.carrier_cost is not None else None,
            "total": str(total) if total is not None else None,
        }
        data["transcript"] = [
            {"role": t.role, "text": t.text, "start_ms": t.start_ms, "end_ms": t.end_ms}
            for t in call.turns.order_by("index")
        ] or cache.get(TRANSIENT_TRANSCRIPT_PREFIX + str(call.public_id)) or []
    if entry.action == "call.analyzed":
        data["analysis"] = call.analysis
    return data


def emit(org: Organization, event_type: str, payload: dict[str, Any], *,
         audit_entry: AuditLog | None = None, endpoints: list[WebhookEndpoint] | None = None) -> WebhookEvent:
    """Store an event and queue its deliveries. Idempotent per audit entry.

    ``endpoints`` overrides subscription matching (a test event goes to exactly one endpoint).
    """
    with transaction.atomic():
        if audit_entry is not None:
            event, created = WebhookEvent.objects.get_or_create(
                audit_entry=audit_entry, defaults={"org": org, "type": event_type, "payload": payload})
            if not created:
                return event
        else:
            event = WebhookEvent.objects.create(org=org, type=event_type, payload=payload)
        if endpoints is None:
            endpoints = [e for e in WebhookEndpoint.objects.for_org(org).filter(enabled=True) if e.wants(event_type)]
        elif any(e.org_id != org.pk for e in endpoints):
            raise ValueError("an event can only go to its own organisation's endpoints")
        now = timezone.now()
        deliveries = WebhookDelivery.objects.bulk_create([
            WebhookDelivery(org=org, event=event, endpoint=endpoint, next_attempt_at=now) for endpoint in endpoints
        ])
        for delivery in deliveries:
            _enqueue(delivery)
    log.info("webhook event emitted", extra={"event_type": event_type, "deliveries": len(deliveries)})
    return event


def _enqueue(delivery: WebhookDelivery, *, countdown: float = 0, manual: bool = False) -> None:
    from integrations.tasks import deliver_webhook

    org_id, delivery_id = str(delivery.org.public_id), str(delivery.public_id)
    transaction.on_commit(lambda: deliver_webhook.apply_async(
        (org_id, delivery_id), {"manual": manual}, countdown=max(0.0, countdown)))


# --------------------------------------------------------------------------- delivering


def backoff_delay(attempt_number: int) -> float | None:
    """Seconds before the try after ``attempt_number`` failed tries; None = give up."""
    delays = conf.retry_delays()
    if attempt_number > len(delays):
        return None
    base = delays[attempt_number - 1]
    # Up to 10% jitter so endpoints that failed together do not retry in lockstep.
    return base + random.uniform(0, base * 0.1)  # noqa: S311 - not security relevant


def _claim(delivery_id: int, *, manual: bool) -> tuple[WebhookDelivery, WebhookAttempt] | None:
    now = timezone.now()
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("endpoint", "event", "org").filter(pk=delivery_id).first())
        if delivery is None:
            return None  # another worker holds it right now
        leased = delivery.status == DeliveryStatus.SENDING and delivery.lease_until and delivery.lease_until > now
        if leased:
            return None
        if delivery.status == DeliveryStatus.SENDING:
            # The worker that claimed it died mid-send: close its attempt honestly.
            WebhookAttempt.objects.filter(delivery=delivery, finished_at__isnull=True).update(
                error="worker stopped before the response was recorded", finished_at=now)
        elif not manual:
            if delivery.status not in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
                return None  # finished already: a duplicate task message
            if delivery.next_attempt_at and delivery.next_attempt_at > now:
                return None  # an early message; the real one (or the sweeper) comes later
        if not delivery.endpoint.enabled and not manual and delivery.event.type != TEST_EVENT:
            delivery.status = DeliveryStatus.CANCELLED
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "next_attempt_at", "updated_at"])
            return None
        delivery.attempt_count += 1
        delivery.status = DeliveryStatus.SENDING
        delivery.lease_until = now + timedelta(seconds=conf.lease_s())
        delivery.save(update_fields=["attempt_count", "status", "lease_until", "updated_at"])
        attempt = WebhookAttempt.objects.create(delivery=delivery, number=delivery.attempt_count, manual=manual)
    return delivery, attempt


def _post(delivery: WebhookDelivery, attempt: WebhookAttempt) -> tuple[int | None, str, str, int]:
    """Send; returns (status code, response excerpt, error, duration ms). Never raises."""
    event = delivery.event
    body = json.dumps(event.envelope(), separators=(",", ":"), sort_keys=True, default=str).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event.event_id,
        EVENT_TYPE_HEADER: event.type,
        "X-VP-Delivery-Attempt": str(attempt.number),
        SIGNATURE_HEADER: signature_header(delivery.endpoint.secret, body),
    }
    started = time.monotonic()
    # The endpoint was checked when saved; the guard checks it again (DNS may have changed),
    # connects to the address it checked, and bounds the whole attempt by the timeout.
    policy = outbound.Policy(total_timeout_s=conf.request_timeout_s(), max_response_bytes=None)
    try:
        with outbound.sync_client(policy, timeout=conf.request_timeout_s()) as client:
            with client.stream("POST", delivery.endpoint.url, content=body, headers=headers) as response:
                excerpt = _read_excerpt(response)
        return response.status_code, excerpt, "", int((time.monotonic() - started) * 1000)
    except outbound.OutboundRefused as exc:
        error = f"refused by the outbound policy: {exc.message}"[:500]
    except (httpx.TimeoutException, outbound.OutboundDeadline):
        error = f"no response within {conf.request_timeout_s():g}s"
    except httpx.ConnectError as exc:
        error = f"could not connect: {exc}"[:500]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return None, "", error, int((time.monotonic() - started) * 1000)


def _read_excerpt(response: httpx.Response) -> str:
    """The start of the receiver's answer; the rest is never read (a huge body costs nothing)."""
    received = bytearray()
    for chunk in response.iter_bytes():
        received.extend(chunk)
        if len(received) >= RESPONSE_EXCERPT_CHARS * 4:
            break
    return received.decode(response.encoding or "utf-8", errors="replace")[:RESPONSE_EXCERPT_CHARS]


def attempt_delivery(delivery_id: int, *, manual: bool = False) -> datetime | None:
    """Claim, send and record one attempt. Returns when to try next (None: finished or not ours)."""
    claimed = _claim(delivery_id, manual=manual)
    if claimed is None:
        return None
    delivery, attempt = claimed
    status_code, excerpt, error, duration_ms = _post(delivery, attempt)
    ok = status_code is not None and 200 <= status_code < 300
    log.info("webhook attempt", extra={"event_type": delivery.event.type, "attempt": attempt.number,
                                       "status_code": status_code, "duration_ms": duration_ms, "ok": ok})
    return _record(delivery.pk, attempt.pk, status_code=status_code, excerpt=excerpt, error=error,
                   duration_ms=duration_ms, manual=manual)


def _record(delivery_id: int, attempt_id: int, *, status_code: int | None, excerpt: str, error: str,
            duration_ms: int, manual: bool) -> datetime | None:
    now = timezone.now()
    ok = status_code is not None and 200 <= status_code < 300
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("org").get(pk=delivery_id)
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        WebhookAttempt.objects.filter(pk=attempt_id).update(
            status_code=status_code, response_excerpt=excerpt, error=error or (
                "" if ok else f"HTTP {status_code}"), duration_ms=duration_ms, finished_at=now)
        delivery.lease_until = None
        delivery.last_status_code = status_code
        next_at: datetime | None = None
        if ok:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                endpoint.save(update_fields=["failing_since", "updated_at"])
        else:
            if endpoint.failing_since is None:
                endpoint.failing_since = now
                endpoint.save(update_fields=["failing_since", "updated_at"])
            delay = None if manual and delivery.next_attempt_at is None else backoff_delay(delivery.attempt_count)
            if manual and delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
                next_at = delivery.next_attempt_at  # a manual try leaves the retry schedule alone
                delivery.status = DeliveryStatus.RETRYING
            elif delay is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
            else:
                next_at = now + timedelta(seconds=delay)
                delivery.status = DeliveryStatus.RETRYING
                delivery.next_attempt_at = next_at
            if endpoint.enabled and now - endpoint.failing_since >= conf.disable_after():
                disable_endpoint(endpoint, reason=f"failing since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
                                                  f"(last: {error or f'HTTP {status_code}'})"[:300])
                if delivery.status == DeliveryStatus.RETRYING:
                    delivery.status = DeliveryStatus.CANCELLED
                    delivery.next_attempt_at = None
                    next_at = None
        delivery.save()
        metrics.webhook_attempt_recorded(str(delivery.status))
        if next_at is not None and not manual:
            _enqueue(delivery, countdown=(next_at - now).total_seconds())
    return next_at


def disable_endpoint(endpoint: WebhookEndpoint, *, reason: str) -> None:
    """Stop sending to an endpoint that keeps failing; cancel its queue; tell the org's admins."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    WebhookDelivery.objects.filter(endpoint=endpoint, status__in=[
        DeliveryStatus.PENDING, DeliveryStatus.RETRYING]).update(status=DeliveryStatus.CANCELLED, next_attempt_at=None)
    record_audit(endpoint.org, SYSTEM, "webhook_endpoint.disabled", endpoint, {"reason": reason})
    recipients = list(Membership.objects.filter(org=endpoint.org, role__in=[Role.OWNER, Role.ADMIN])
                      .exclude(user__email="").values_list("user__email", flat=True))
    org_name, url = endpoint.org.name, endpoint.url
    if recipients:
        def notify() -> None:
            try:
                send_mail(
                    subject=f"[{org_name}] Webhook endpoint disabled after failing",
                    message=(f"Deliveries to {url} kept failing, so the endpoint was disabled.\n\nReason: {reason}"
                             "\n\nFix the receiver, then re-enable the endpoint in Webhooks and redeliver missed "
                             "events."),
                    from_email=None, recipient_list=recipients)
            except Exception:  # noqa: BLE001 - the audit entry stands; the mail failure must be visible
                log.exception("could not email org admins about a disabled webhook endpoint",
                              extra={"endpoint": str(endpoint.public_id)})

        transaction.on_commit(notify)
    log.warning("webhook endpoint disabled", extra={"endpoint": str(endpoint.public_id)})


def redeliver(delivery: WebhookDelivery) -> None:
    """A person asked to send this delivery again now (whatever its state)."""
    _enqueue(delivery, manual=True)


# Audit entries younger than this are left to the on-commit signal; older ones without an
# event are backfilled (the process died between the commit and the signal).
BACKFILL_GRACE = timedelta(seconds=60)
BACKFILL_WINDOW = timedelta(hours=1)


def backfill_events(limit: int = 500) -> int:
    """Create the events whose audit entry committed but whose signal never ran."""
    now = timezone.now()
    missing = (AuditLog.objects.select_related("org")
               .filter(action__in=list(AUDIT_EVENTS), created_at__gte=now - BACKFILL_WINDOW,
                       created_at__lte=now - BACKFILL_GRACE)
               .exclude(pk__in=WebhookEvent.objects.filter(audit_entry__isnull=False).values("audit_entry_id"))
               .order_by("created_at")[:limit])
    count = 0
    for entry in missing:
        # Entries an agent opted out of produce no event; they are re-checked until they age out.
        if on_audit_recorded(AuditLog, entry=entry) is not None:
            count += 1
    if count:
        log.warning("webhook events backfilled from the audit log", extra={"count": count})
    return count


def sweep_due(limit: int = 500) -> int:
    """Enqueue deliveries that are due but whose task message is gone (lost, or its worker died),
    after backfilling events whose audit signal was lost."""
    backfill_events(limit)
    now = timezone.now()
    due = list(WebhookDelivery.objects.select_related("org").filter(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], next_attempt_at__lte=now,
    ).order_by("next_attempt_at")[:limit])
    orphaned = list(WebhookDelivery.objects.select_related("org").filter(
        status=DeliveryStatus.SENDING, lease_until__lt=now)[:limit])
    from integrations.tasks import deliver_webhook

    for delivery in due + orphaned:
        deliver_webhook.delay(str(delivery.org.public_id), str(delivery.public_id))
    return len(due) + len(orphaned)


# --------------------------------------------------------------------------- endpoints


def validate_target_url(url: str) -> None:
    """Webhook URLs: absolute http(s) to a public address (see :mod:`voiceplatform.outbound`)."""
    check_outbound_url(url, what="The webhook URL")


def validate_events(events: list[str]) -> list[str]:
    if not isinstance(events, list) or not events:
        raise ValidationError({"events": "Choose at least one event type (or \"*\" for all)."})
    unknown = [e for e in events if e != "*" and e not in EVENT_TYPES]
    if unknown:
        raise ValidationError({"events": f"Unknown event type(s): {', '.join(map(str, unknown))}. "
                                         f"Known: {', '.join(EVENT_TYPES)}."})
    return sorted(set(events))
