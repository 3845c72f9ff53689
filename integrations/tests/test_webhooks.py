"""Outgoing webhooks in-process: events from the audit log, signatures, retries, attempts,
redelivery, disabling with admins told. (Worker restarts: test_webhooks_worker.py.)"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from integrations import webhooks
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from integrations.services import create_webhook_endpoint, redeliver_delivery, send_test_event
from integrations.testing.webhook_receiver import WebhookReceiver
from orgs.models import AuditLog
from orgs.services import SYSTEM, record_audit
from voiceplatform import outbound

pytestmark = pytest.mark.django_db
# Every logger at DEBUG; no record may show an endpoint's signing secret (conftest; issue 11).
LOG_SECRET_PATTERNS = (r"whsec_[A-Za-z0-9_-]{8,}",)


@pytest.fixture
def receiver():
    with WebhookReceiver() as r:
        yield r


def endpoint_for(org, receiver: WebhookReceiver, events=("batch.completed",)):
    endpoint = create_webhook_endpoint(org, SYSTEM, url=receiver.hook_url, events=list(events))
    receiver.secret = endpoint.secret
    return endpoint


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_audit_entry_becomes_signed_event(org_a, org_b, receiver, eager_celery, django_capture_on_commit_callbacks):
    endpoint = endpoint_for(org_a, receiver)
    # Another org's endpoint (same URL even) never hears org A's events.
    create_webhook_endpoint(org_b, SYSTEM, url=receiver.hook_url, events=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        record_audit(org_a, SYSTEM, "batch.completed", None, {"entries": 10}, target_label="Spring campaign")
        record_audit(org_a, SYSTEM, "api_key.created", None)  # internal: no event
    events = list(WebhookEvent.objects.for_org(org_a))
    assert [e.type for e in events] == ["batch.completed"]
    assert [(r.event_type, r.signature_ok, r.status) for r in receiver.received] == [("batch.completed", True, 200)]
    body = receiver.received[0].body
    assert body["id"] == events[0].event_id and body["org"] == str(org_a.public_id)
    assert body["data"]["changes"] == {"entries": 10} and body["data"]["object"]["label"] == "Spring campaign"
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    attempt = delivery.attempts.get()
    assert attempt.status_code == 200 and attempt.response_excerpt == "ok" and attempt.duration_ms is not None
    assert WebhookEvent.objects.for_org(org_b).count() == 0


def test_same_audit_entry_never_makes_two_events(org_a, receiver, eager_celery, django_capture_on_commit_callbacks):
    endpoint_for(org_a, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        entry = record_audit(org_a, SYSTEM, "batch.completed", None)
    webhooks.on_audit_recorded(AuditLog, entry=entry)  # the signal firing again
    assert WebhookEvent.objects.for_org(org_a).count() == 1
    assert sum(receiver.accepted().values()) == 1


def test_retries_with_backoff_after_500_then_succeeds(org_a, receiver, eager_celery,
                                                     django_capture_on_commit_callbacks):
    receiver.fail_first = 2
    endpoint = endpoint_for(org_a, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        event = webhooks.emit(org_a, "batch.completed", {"n": 1})
    delivery = WebhookDelivery.objects.get(event=event)
    # First try failed; the eager retry message came early and was refused by the claim.
    assert delivery.status == DeliveryStatus.RETRYING and delivery.attempt_count == 1
    first_delay = (delivery.next_attempt_at - delivery.attempts.get().finished_at).total_seconds()
    assert 30 <= first_delay <= 33
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    for _ in range(2):
        make_due(delivery)
        with django_capture_on_commit_callbacks(execute=True):
            assert webhooks.sweep_due() == 1
        delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [a.status_code for a in delivery.attempts.all()] == [500, 500, 200]
    assert [r.attempt for r in receiver.received] == [1, 2, 3]
    assert len({r.event_id for r in receiver.received}) == 1  # same event id on every retry
    assert all(r.signature_ok for r in receiver.received)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert webhooks.sweep_due() == 0  # nothing left to send


def test_gives_up_after_last_delay(org_a, receiver, eager_celery, django_capture_on_commit_callbacks, settings):
    settings.WEBHOOK_RETRY_DELAYS = (1.0, 1.0)
    receiver.down = True
    endpoint_for(org_a, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        event = webhooks.emit(org_a, "batch.completed", {})
    delivery = WebhookDelivery.objects.get(event=event)
    for _ in range(2):
        make_due(delivery)
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.sweep_due()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == 3
    assert delivery.next_attempt_at is None
    assert webhooks.sweep_due() == 0


def test_unreachable_endpoint_attempt_names_the_error(org_a, eager_celery, django_capture_on_commit_callbacks):
    endpoint = create_webhook_endpoint(org_a, SYSTEM, url="http://127.0.0.1:1/hook", events=["batch.completed"])
    with django_capture_on_commit_callbacks(execute=True):
        event = webhooks.emit(org_a, "batch.completed", {})
    attempt = WebhookDelivery.objects.get(event=event, endpoint=endpoint).attempts.get()
    assert attempt.status_code is None and attempt.error.startswith("could not connect")


def test_failing_for_a_day_disables_and_tells_admins(org_a, owner_a, admin_a, viewer_a, receiver, eager_celery,
                                                     django_capture_on_commit_callbacks):
    receiver.down = True
    endpoint = endpoint_for(org_a, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        first = webhooks.emit(org_a, "batch.completed", {})
    endpoint.refresh_from_db()
    endpoint.failing_since = timezone.now() - timedelta(hours=24, minutes=1)
    endpoint.save()
    with django_capture_on_commit_callbacks(execute=True):
        second = webhooks.emit(org_a, "batch.completed", {})
    endpoint.refresh_from_db()
    assert endpoint.enabled is False and "failing since" in endpoint.disabled_reason
    statuses = {d.event_id: d.status for d in WebhookDelivery.objects.filter(endpoint=endpoint)}
    assert statuses == {first.pk: DeliveryStatus.CANCELLED, second.pk: DeliveryStatus.CANCELLED}
    assert AuditLog.objects.for_org(org_a).filter(action="webhook_endpoint.disabled").count() == 1
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["admin@a.test", "owner@a.test"]  # not the viewer
    assert endpoint.url in mail.outbox[0].body
    # A disabled endpoint gets no new events.
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.emit(org_a, "batch.completed", {})
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2


def test_manual_redelivery_of_a_succeeded_delivery(org_a, owner_a, receiver, eager_celery,
                                                   django_capture_on_commit_callbacks):
    endpoint_for(org_a, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        event = webhooks.emit(org_a, "batch.completed", {})
    delivery = WebhookDelivery.objects.get(event=event)
    with django_capture_on_commit_callbacks(execute=True):
        redeliver_delivery(delivery, SYSTEM)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [(a.number, a.manual, a.status_code) for a in delivery.attempts.all()] == [(1, False, 200), (2, True, 200)]
    assert AuditLog.objects.for_org(org_a).filter(action="webhook_delivery.redelivered").exists()


def test_test_event_goes_to_one_endpoint(org_a, receiver, eager_celery, django_capture_on_commit_callbacks):
    endpoint = endpoint_for(org_a, receiver, events=["*"])
    other = WebhookReceiver()
    with other:
        endpoint_for(org_a, other, events=["*"])
        with django_capture_on_commit_callbacks(execute=True):
            send_test_event(endpoint, SYSTEM)
        assert other.received == []
    receiver.secret = endpoint.secret
    assert [r.event_type for r in receiver.received] == ["webhook.test"]


def test_endpoint_validation_names_the_problem(org_a, settings):
    with pytest.raises(ValidationError, match="Unknown event type"):
        create_webhook_endpoint(org_a, SYSTEM, url="https://example.com/h", events=["call.exploded"])
    with pytest.raises(ValidationError, match="at least one event"):
        create_webhook_endpoint(org_a, SYSTEM, url="https://example.com/h", events=[])
    with pytest.raises(ValidationError, match="absolute http"):
        create_webhook_endpoint(org_a, SYSTEM, url="ftp://example.com/h", events=["call.ended"])
    settings.OUTBOUND_ALLOW_PRIVATE = False
    with pytest.raises(ValidationError, match="private address"):
        create_webhook_endpoint(org_a, SYSTEM, url="http://10.0.0.5/h", events=["call.ended"])
    with outbound.using_resolver(lambda host, port: ["93.184.215.14"]):  # offline: example.com is public
        ok = create_webhook_endpoint(org_a, SYSTEM, url="https://example.com/h", events=["call.ended", "call.ended"])
    assert ok.events == ["call.ended"] and ok.secret.startswith("whsec_")


def test_event_whose_signal_was_lost_is_backfilled(org_a, receiver, eager_celery, django_capture_on_commit_callbacks):
    endpoint_for(org_a, receiver)
    # The audit entry committed but the process died before on_commit ran: no callbacks executed.
    entry = record_audit(org_a, SYSTEM, "batch.completed", None, {"n": 1})
    assert not WebhookEvent.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.sweep_due() == 0  # too young: the signal may still be on its way
    AuditLog.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.sweep_due()
    assert WebhookEvent.objects.get().audit_entry_id == entry.pk
    assert sum(receiver.accepted().values()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.sweep_due()  # idempotent
    assert WebhookEvent.objects.count() == 1 and sum(receiver.accepted().values()) == 1


def test_call_ended_event_carries_the_transcript(org_a, receiver, eager_celery, django_capture_on_commit_callbacks):
    from calls.models import TranscriptTurn
    from calls.tests.factories import make_call

    endpoint_for(org_a, receiver, events=["call.ended"])
    call = make_call(org_a, duration_s=42, end_reason="completed")
    TranscriptTurn.objects.create(call=call, index=0, role="agent", text="Hello, how can I help?", start_ms=0,
                                  end_ms=1500)
    TranscriptTurn.objects.create(call=call, index=1, role="caller", text="Where is my order?", start_ms=1800,
                                  end_ms=3000)
    with django_capture_on_commit_callbacks(execute=True):
        record_audit(org_a, SYSTEM, "call.finalized", call, {"status": "completed"})
    data = receiver.received[0].body["data"]
    assert data["call"]["id"] == str(call.public_id) and data["call"]["duration_s"] == 42
    assert [(t["role"], t["text"]) for t in data["transcript"]] == [
        ("agent", "Hello, how can I help?"), ("caller", "Where is my order?")]
    assert receiver.received[0].signature_ok


def test_failed_calls_and_agent_event_choice(org_a, receiver, eager_celery, django_capture_on_commit_callbacks):
    from agents.tests.factories import make_agent
    from calls.tests.factories import make_call

    endpoint_for(org_a, receiver, events=["*"])
    quiet_agent = make_agent(org_a, webhook_events=["call.failed"])
    chatty_call = make_call(org_a, status="busy")
    quiet_call = make_call(org_a, agent=quiet_agent)
    with django_capture_on_commit_callbacks(execute=True):
        record_audit(org_a, SYSTEM, "call.finalized", chatty_call, {"status": "busy"})
        record_audit(org_a, SYSTEM, "call.finalized", quiet_call, {"status": "completed"})  # agent opted out
        record_audit(org_a, SYSTEM, "call.finalized", quiet_call, {"status": "no_answer"})
    assert [r.event_type for r in receiver.received] == ["call.failed", "call.failed"]


def test_an_agent_may_redact_the_call_numbers_in_webhooks_per_published_version(
        org_a, receiver, eager_celery, django_capture_on_commit_callbacks):
    from agents.services import publish_agent, update_agent
    from agents.tests.factories import make_agent
    from calls.models import TranscriptTurn
    from calls.tests.factories import make_call

    endpoint_for(org_a, receiver, events=["call.ended"])
    agent = make_agent(org_a, redact_pii=["phone"])
    keeping = publish_agent(agent, SYSTEM)  # the default: numbers go out as they are
    update_agent(agent, SYSTEM, redact_webhook_numbers=True)
    draft_only = make_call(org_a, agent=agent, agent_version=keeping)  # the draft changed, the version did not
    redacting = publish_agent(agent, SYSTEM)
    redacted = make_call(org_a, agent=agent, agent_version=redacting, direction="inbound",
                         from_number="+14155550142", to_number="+14155550100")
    TranscriptTurn.objects.create(call=redacted, index=0, role="caller", text="Call me on [PHONE].", start_ms=0,
                                  end_ms=900)
    no_version = make_call(org_a)  # e.g. a call placed before agents had versions: every default
    with django_capture_on_commit_callbacks(execute=True):
        for call in (draft_only, redacted, no_version):
            record_audit(org_a, SYSTEM, "call.finalized", call, {"status": "completed"})
    sent = {r.body["data"]["call"]["id"]: r.body["data"] for r in receiver.received}
    assert all(r.signature_ok for r in receiver.received) and len(sent) == 3
    assert (sent[str(draft_only.public_id)]["call"]["from"], sent[str(draft_only.public_id)]["call"]["to"]) == (
        "+14155550100", "+14155550199")
    assert (sent[str(redacted.public_id)]["call"]["from"], sent[str(redacted.public_id)]["call"]["to"]) == (
        "[PHONE]", "[PHONE]")
    assert sent[str(redacted.public_id)]["transcript"][0]["text"] == "Call me on [PHONE]."
    assert "14155550142" not in json.dumps(sent[str(redacted.public_id)])  # nowhere in the body
    assert sent[str(no_version.public_id)]["call"]["from"] == "+14155550100"
    # the stored event is what went out; the call row keeps its numbers (usage, subject requests)
    stored = WebhookEvent.objects.get(payload__call__id=str(redacted.public_id)).payload
    assert stored["call"]["from"] == stored["call"]["to"] == "[PHONE]"
    redacted.refresh_from_db()
    assert redacted.from_number == "+14155550142"
