"""The retention purge with the clock moved forward (time_machine): exactly what expired
goes, nothing under legal hold, and "do not store" keeps recordings and transcripts from
ever being written."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from agents.tests.factories import make_agent
from batches.models import BatchEntry, BatchStatus
from batches.tests.factories import make_batch
from calls.models import Call, CallEvent, Recording, TranscriptTurn
from calls.privacy_hooks import storage_policy
from orgs.models import AuditLog
from privacy.models import RetentionPolicy
from privacy.retention import purge_org
from privacy.tasks import purge_expired
from privacy.tests.factories import make_full_call, make_webhook_reply

pytestmark = pytest.mark.django_db


def _files(call: Call) -> Path:
    return Path(call.recording.file.path)


def test_a_purge_deletes_exactly_what_expired_and_nothing_under_hold(org_a: Any, org_b: Any) -> None:
    start = timezone.now()
    RetentionPolicy.objects.create(org=org_a, recordings_days=30, transcripts_days=90, analysis_days=90,
                                   events_days=365)
    with time_machine.travel(start, tick=False):
        old = make_full_call(org_a)
        held = make_full_call(org_a, legal_hold=True)
        other_org = make_full_call(org_b)  # org B has no policy: never purged
    with time_machine.travel(start + timedelta(days=20), tick=False):
        young = make_full_call(org_a)
    old_file, held_file, young_file = _files(old), _files(held), _files(young)

    with time_machine.travel(start + timedelta(days=31), tick=False):
        result = purge_org(org_a)
    assert result.deleted == {"recordings_days": 1, "transcripts_days": 0, "analysis_days": 0,
                              "events_days": 0, "batch_rows_days": 0, "webhook_responses": 0}
    assert not Recording.objects.filter(call=old).exists() and not old_file.exists()
    assert held_file.exists() and young_file.exists() and _files(other_org).exists()
    assert TranscriptTurn.objects.filter(call=old).count() == 2  # transcripts live 90 days

    with time_machine.travel(start + timedelta(days=91), tick=False):
        result = purge_org(org_a)
    assert result.deleted["transcripts_days"] == 1 and result.deleted["analysis_days"] == 1
    assert result.deleted["recordings_days"] == 1 and not young_file.exists()  # 71 days old: past 30
    old.refresh_from_db()
    assert old.analysis == {} and not old.turns.exists() and old.events.exists()
    held.refresh_from_db()
    assert held.turns.count() == 2 and held.analysis and Recording.objects.filter(call=held).exists()
    assert young.turns.count() == 2  # created at day 20: 71 days old
    assert TranscriptTurn.objects.filter(call=other_org).count() == 2

    entry = AuditLog.objects.filter(org=org_a, action="retention.purged").order_by("-id").first()
    assert entry is not None and entry.changes == {"transcripts": 1, "analysis": 1, "recordings": 1}
    with time_machine.travel(start + timedelta(days=91), tick=False):
        assert not any(purge_org(org_a).deleted.values())  # idempotent


def test_an_agent_policy_replaces_the_org_policy(org_a: Any) -> None:
    start = timezone.now()
    strict = make_agent(org_a, name="Strict")
    RetentionPolicy.objects.create(org=org_a, events_days=100)
    RetentionPolicy.objects.create(org=org_a, agent=strict, events_days=1)
    with time_machine.travel(start, tick=False):
        of_strict = make_full_call(org_a, agent=strict)
        of_other = make_full_call(org_a)
    with time_machine.travel(start + timedelta(days=2), tick=False):
        assert purge_org(org_a).deleted["events_days"] == 1
    assert not CallEvent.objects.filter(call=of_strict).exists()
    assert CallEvent.objects.filter(call=of_other).exists()


def test_purges_run_in_bounded_batches_and_say_when_more_is_left(org_a: Any) -> None:
    start = timezone.now()
    RetentionPolicy.objects.create(org=org_a, recordings_days=0)
    with time_machine.travel(start, tick=False):
        calls = [make_full_call(org_a) for _ in range(5)]
    first = purge_org(org_a, batch_size=2, max_batches=2)
    assert first.deleted["recordings_days"] == 4 and first.more
    second = purge_org(org_a, batch_size=2, max_batches=2)
    assert second.deleted["recordings_days"] == 1 and not second.more
    assert not Recording.objects.filter(call__in=calls).exists()


def test_a_campaign_under_legal_hold_keeps_its_rows_and_calls(org_a: Any) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        held = make_batch(org_a, name="Held")
        free = make_batch(org_a, name="Free")
    Batch = type(held)
    Batch.objects.filter(pk__in=[held.pk, free.pk]).update(status=BatchStatus.COMPLETED)
    Batch.objects.filter(pk=held.pk).update(legal_hold=True)
    RetentionPolicy.objects.create(org=org_a, batch_rows_days=10)
    with time_machine.travel(start + timedelta(days=5), tick=False):
        assert purge_org(org_a).deleted["batch_rows_days"] == 0
    with time_machine.travel(start + timedelta(days=11), tick=False):
        assert purge_org(org_a).deleted["batch_rows_days"] == 3
    assert BatchEntry.objects.filter(batch=held).count() == 3
    assert not BatchEntry.objects.filter(batch=free).exists()


def test_do_not_store_reaches_the_calls_layer(org_a: Any) -> None:
    call = make_full_call(org_a)
    assert storage_policy(call).keep_recording and storage_policy(call).keep_transcript
    RetentionPolicy.objects.create(org=org_a, recordings_days=0, transcripts_days=0)
    policy = storage_policy(call)
    assert not policy.keep_recording and not policy.keep_transcript


def test_the_beat_task_is_registered_and_queues_each_org_with_a_policy(org_a: Any, org_b: Any) -> None:
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.get(task="privacy.purge_expired").enabled
    RetentionPolicy.objects.create(org=org_a, events_days=1)
    assert purge_expired.apply().get() == 1


def test_a_transcript_never_stored_leaves_the_webhook_event_once_delivered(org_a: Any) -> None:
    from integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

    RetentionPolicy.objects.create(org=org_a, transcripts_days=0)
    call = make_full_call(org_a)
    call.turns.all().delete()  # "do not store": the transcript went out only in the webhook
    event = WebhookEvent.objects.create(org=org_a, type="call.ended", payload={
        "call": {"id": str(call.public_id)}, "transcript": [{"role": "caller", "text": "hi"}]})
    endpoint = WebhookEndpoint.objects.create(org=org_a, url="http://127.0.0.1:9/hook", events=["call.ended"],
                                              secret=WebhookEndpoint.new_secret())
    delivery = WebhookDelivery.objects.create(org=org_a, event=event, endpoint=endpoint)
    purge_org(org_a)
    event.refresh_from_db()
    assert "transcript" in event.payload  # still to be delivered
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SUCCEEDED)
    purge_org(org_a)
    event.refresh_from_db()
    assert event.payload == {"call": {"id": str(call.public_id)}}


def test_webhook_replies_are_wiped_on_the_clock_of_their_event_in_bounded_audited_batches(org_a: Any,
                                                                                          org_b: Any) -> None:
    start = timezone.now()
    RetentionPolicy.objects.create(org=org_a, transcripts_days=90, analysis_days=30)
    RetentionPolicy.objects.create(org=org_b, transcripts_days=90, analysis_days=30)

    def reply(org: Any, call: Call) -> Any:
        return make_webhook_reply(org, {"call": {"id": str(call.public_id)}, "analysis": call.analysis},
                                  f'{{"echo": "{call.from_number}"}}')

    with time_machine.travel(start, tick=False):
        old = [reply(org_a, make_full_call(org_a)) for _ in range(3)]
        held = reply(org_a, make_full_call(org_a, legal_hold=True))
        other_org = reply(org_b, make_full_call(org_b))
    with time_machine.travel(start + timedelta(days=20), tick=False):
        young = reply(org_a, make_full_call(org_a))
    unrelated = make_webhook_reply(org_a, {"batch": {"id": "x"}}, "ok")  # not about a call: no clock

    with time_machine.travel(start + timedelta(days=29), tick=False):
        assert purge_org(org_a).deleted["webhook_responses"] == 0
    with time_machine.travel(start + timedelta(days=31), tick=False):  # the analysis expired: the earlier clock
        first = purge_org(org_a, batch_size=2, max_batches=1)
        second = purge_org(org_a, batch_size=2, max_batches=1)
        third = purge_org(org_a, batch_size=2, max_batches=1)
    assert first.deleted["webhook_responses"] == 2 and first.more
    assert second.deleted["webhook_responses"] == 1 and not second.more
    assert third.deleted["webhook_responses"] == 0  # idempotent
    for attempt in old:
        attempt.refresh_from_db()
        assert attempt.response_excerpt == "" and attempt.status_code == 200  # the attempt itself stays
    for attempt in (held, other_org, young, unrelated):
        attempt.refresh_from_db()
        assert attempt.response_excerpt
    audited = [e.changes.get("webhook responses", 0) for e in AuditLog.objects.filter(org=org_a,
                                                                                        action="retention.purged")]
    assert sum(audited) == 3
