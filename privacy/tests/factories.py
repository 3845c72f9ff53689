"""Factories for the org-isolation matrix (voiceplatform.testing) and the privacy tests."""
from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile

from calls.models import Call, Recording, TranscriptTurn
from calls.tests.factories import make_call
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from privacy.models import RetentionPolicy
from voiceplatform.testing import register_factory


@register_factory(RetentionPolicy)
def make_retention_policy(org: Any, **values: Any) -> RetentionPolicy:
    values.setdefault("recordings_days", 30)
    return RetentionPolicy.objects.create(org=org, **values)


def make_full_call(org: Any, *, caller: str = "+14155550142", name: str = "Ann Example", **values: Any) -> Call:
    """An ended inbound call from ``caller`` with everything a call leaves behind: two
    transcript turns, a timeline event, an analysis and a recording file in media storage."""
    values.setdefault("direction", "inbound")
    values.setdefault("from_number", caller)
    values.setdefault("to_number", "+14155550100")
    values.setdefault("variables", {"caller_number": caller, "customer_name": name})
    values.setdefault("analysis", {"summary": "Ann asked about her order.", "fields": {}, "success": True})
    call = make_call(org, **values)
    TranscriptTurn.objects.create(call=call, index=0, role="agent", text="Hello, how can I help?",
                                  start_ms=0, end_ms=900)
    TranscriptTurn.objects.create(call=call, index=1, role="caller", text=f"It's {name}, my number is {caller}.",
                                  start_ms=1000, end_ms=2500)
    call.events.create(org=org, kind="status.completed", at=call.created_at)
    recording = Recording(call=call, size_bytes=48, duration_ms=1)
    recording.file.save(f"{call.public_id}.wav", ContentFile(b"RIFF" + bytes(44)), save=True)
    return call


def make_webhook_reply(org: Any, payload: dict[str, Any], excerpt: str) -> WebhookAttempt:
    """A delivered webhook event with ``payload`` whose endpoint answered ``excerpt``."""
    endpoint = WebhookEndpoint.objects.for_org(org).first() or WebhookEndpoint.objects.create(
        org=org, url="http://127.0.0.1:9/hook", events=["call.ended"], secret=WebhookEndpoint.new_secret())
    event = WebhookEvent.objects.create(org=org, type="call.ended", payload=payload)
    delivery = WebhookDelivery.objects.create(org=org, event=event, endpoint=endpoint, status=DeliveryStatus.SUCCEEDED,
                                              attempt_count=1, last_status_code=200)
    return WebhookAttempt.objects.create(delivery=delivery, number=1, status_code=200, response_excerpt=excerpt)
