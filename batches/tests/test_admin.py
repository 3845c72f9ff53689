"""The admin goes through the services: validation, audit, beat sync."""

from __future__ import annotations

from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from batches.models import Batch, DoNotCallNumber, ScheduledCall
from batches.tests.factories import make_batch
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.models import AuditLog

pytestmark = pytest.mark.django_db


def test_batch_actions_and_settings(login: Any, owner_a: Any, org_a: Any, twilio_org: Any) -> None:
    batch = make_batch(org_a)
    client = login(owner_a)
    response = client.post("/admin/batches/batch/", {"action": "launch_batches", "_selected_action": [batch.pk]})
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.status == "running"
    response = client.post(f"/admin/batches/batch/{batch.pk}/change/", {
        "name": "Renamed", "concurrency": 2, "calls_per_second": 0.5, "max_attempts": 2, "retry_delay_s": 60,
        "retry_on": '["busy"]', "calling_window": "null"})
    assert response.status_code == 302, response.content[:2000]
    batch.refresh_from_db()
    assert (batch.name, batch.concurrency, batch.retry_on) == ("Renamed", 2, ["busy"])
    assert AuditLog.objects.for_org(org_a).filter(action="batch.updated").exists()
    assert client.get("/admin/batches/batch/add/").status_code == 403


def test_do_not_call_and_schedule_in_admin(login: Any, owner_a: Any, org_a: Any) -> None:
    client = login(owner_a)
    bad = client.post("/admin/batches/donotcallnumber/add/", {"e164": "nope", "reason": ""})
    assert bad.status_code == 200 and b"not a phone number" in bad.content
    assert client.post("/admin/batches/donotcallnumber/add/", {"e164": "+1 212 555 1000", "reason": "x"}).status_code == 302
    assert DoNotCallNumber.objects.for_org(org_a).get().e164 == "+12125551000"

    agent, number = make_ready_agent(org_a), make_phone_number(org_a)
    form = {"name": "Daily", "agent": agent.pk, "from_number": number.pk, "to": "+12125550100", "variables": "{}",
            "kind": "cron", "cron": "0 25 * * *", "timezone": "Europe/Paris", "enabled": "on",
            "max_attempts": 1, "retry_delay_s": 300, "missed_run_policy": "skip",
            "runs-TOTAL_FORMS": 0, "runs-INITIAL_FORMS": 0}
    invalid = client.post("/admin/batches/scheduledcall/add/", form)
    assert invalid.status_code == 200 and b"hour field allows 0-23" in invalid.content
    saved = client.post("/admin/batches/scheduledcall/add/", {**form, "cron": "0 8 * * *"})
    assert saved.status_code == 302
    sc = ScheduledCall.objects.for_org(org_a).get()
    assert PeriodicTask.objects.get(pk=sc.periodic_task_id).crontab.timezone.key == "Europe/Paris"
    assert Batch.objects.count() == 0
