"""Campaigns and schedules say before they run whether their calls can work (issue 13, point 2).

Readiness (``batches.readiness``) is one service used by launch, the dashboard and the API;
a finished campaign with failures is shown as such, never as a green "Completed".
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from agents.tests.factories import make_agent
from batches import services
from batches.models import Batch, BatchEntry, BatchStatus, DoNotCallNumber, EntryState
from batches.readiness import batch_readiness, schedule_readiness
from batches.tests.factories import make_scheduled_call
from batches.tests.helpers import make_batch
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.models import ProviderCredential
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db

CSV = "phone,customer_name\n+12125551000,Ann\n+12125551001,Bob\n+12125551002,Cy\n"
# Monday 7 Dec 2026, 03:00 in New York (08:00 UTC): a 09:00–17:00 weekday window is closed.
NIGHT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}


@pytest.fixture
def no_carrier_batch(org_a: Any) -> Batch:
    return make_batch(org_a, make_ready_agent(org_a), make_phone_number(org_a, carrier="twilio"), CSV)


def test_launch_is_refused_without_the_carrier_credential(no_carrier_batch: Batch) -> None:
    readiness = batch_readiness(no_carrier_batch)
    assert [i.code for i in readiness.blocking] == ["carrier_credential_missing"]
    with pytest.raises(services.BatchNotReady) as refused:
        services.launch_batch(no_carrier_batch, SYSTEM)
    assert refused.value.code == "not_ready" and "no Twilio credential" in refused.value.message
    no_carrier_batch.refresh_from_db()
    assert no_carrier_batch.status == BatchStatus.READY and no_carrier_batch.launched_at is None


def test_unpublished_agent_and_removed_credential_block(org_a: Any, twilio_org: Any) -> None:
    draft = make_agent(org_a, name="Draft desk", provider="echo")
    batch = make_batch(org_a, draft, make_phone_number(org_a), CSV)
    codes = [i.code for i in batch_readiness(batch).blocking]
    assert codes == ["not_published"]
    ProviderCredential.objects.filter(org=org_a, provider="twilio").delete()
    assert [i.code for i in batch_readiness(batch).blocking] == ["not_published", "carrier_credential_missing"]


def test_closed_window_warns_with_the_start_time_in_the_org_zone(org_a: Any, twilio_org: Any) -> None:
    org_a.timezone = "Europe/Paris"
    org_a.save()
    batch = make_batch(org_a, make_ready_agent(org_a), make_phone_number(org_a), CSV, calling_window=WINDOW)
    with time_machine.travel(NIGHT, tick=False):
        readiness = batch_readiness(batch)
        assert readiness.ready and [w.code for w in readiness.warnings] == ["window_closed"]
        # 09:00 in New York is 14:00 UTC, 15:00 in Paris.
        assert readiness.starts_at == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
        assert "calls will start at Mon 7 Dec 2026, 15:00 (Europe/Paris)" in readiness.warnings[0].message
        services.launch_batch(batch, SYSTEM)  # a warning does not stop it
    batch.refresh_from_db()
    assert batch.status == BatchStatus.RUNNING
    with time_machine.travel(datetime(2026, 12, 7, 15, 0, tzinfo=UTC), tick=False):
        assert batch_readiness(batch).warnings == []


def test_rows_listed_after_import_warn_and_all_listed_blocks(org_a: Any, twilio_org: Any) -> None:
    batch = make_batch(org_a, make_ready_agent(org_a), make_phone_number(org_a), CSV)
    services.add_do_not_call(org_a, SYSTEM, "+12125551000")
    readiness = batch_readiness(batch)
    assert readiness.ready and [w.code for w in readiness.warnings] == ["do_not_call"]
    assert "1 row(s) are now on the do-not-call list" in readiness.warnings[0].message
    for number in ("+12125551001", "+12125551002"):
        services.add_do_not_call(org_a, SYSTEM, number)
    assert [i.code for i in batch_readiness(batch).blocking] == ["nothing_to_dial"]


def test_dashboard_shows_why_before_launch_and_refuses(login: Any, owner_a: Any, no_carrier_batch: Batch) -> None:
    client = login(owner_a)
    page = client.get(f"/batches/{no_carrier_batch.public_id}/").content.decode()
    assert "Will fail:" in page and "no Twilio credential" in page and 'href="/settings/credentials/"' in page
    response = client.post(f"/batches/{no_carrier_batch.public_id}/launch/", follow=True)
    text = response.content.decode()
    assert "Calls cannot start:" in text and "Batch launched." not in text
    assert Batch.objects.get(pk=no_carrier_batch.pk).status == BatchStatus.READY


def test_dashboard_launch_with_closed_window_says_when(login: Any, owner_a: Any, org_a: Any,
                                                       twilio_org: Any) -> None:
    batch = make_batch(org_a, make_ready_agent(org_a), make_phone_number(org_a), CSV, calling_window=WINDOW)
    with time_machine.travel(NIGHT, tick=False):
        text = login(owner_a).post(f"/batches/{batch.public_id}/launch/", follow=True).content.decode()
    assert "Batch launched." in text and "The calling window is closed now; calls will start at" in text


def test_api_launch_is_409_not_ready_and_readiness_lists_why(api: Any, owner_a: Any, outsider: Any,
                                                             no_carrier_batch: Batch) -> None:
    url = f"/api/v1/batches/{no_carrier_batch.public_id}/"
    response = api(owner_a).post(url + "launch/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "not_ready" and "no Twilio credential" in error["message"]
    body = api(owner_a).get(url + "readiness/").json()
    assert body["ready"] is False and body["starts_at"] is None
    assert [p["code"] for p in body["problems"]] == ["carrier_credential_missing"]
    assert api(outsider).get(url + "readiness/").status_code == 404


def _finish(batch: Batch, done: int, failed: int) -> None:
    rows = list(BatchEntry.objects.filter(batch=batch, state=EntryState.PENDING).order_by("row_number"))
    for entry in rows[:done]:
        entry.state = EntryState.DONE
        entry.save()
    for entry in rows[done:done + failed]:
        entry.state, entry.reason = EntryState.FAILED, "carrier: no credential"
        entry.save()
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.COMPLETED)
    batch.refresh_from_db()


def test_resume_is_refused_once_the_credential_is_gone(org_a: Any, twilio_org: Any) -> None:
    batch = make_batch(org_a, make_ready_agent(org_a), make_phone_number(org_a), CSV)
    services.launch_batch(batch, SYSTEM)
    services.pause_batch(batch, SYSTEM)
    ProviderCredential.objects.filter(org=org_a, provider="twilio").delete()
    with pytest.raises(services.BatchNotReady, match="no Twilio credential"):
        services.resume_batch(batch, SYSTEM)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAUSED


def test_completed_with_failures_is_not_green(login: Any, api: Any, owner_a: Any, no_carrier_batch: Batch) -> None:
    _finish(no_carrier_batch, done=0, failed=3)
    body = api(owner_a).get(f"/api/v1/batches/{no_carrier_batch.public_id}/").json()
    assert (body["status"], body["progress"]["failed"], body["progress"]["health"]) == ("completed", 3, "bad")
    progress = services.progress(no_carrier_batch)
    assert progress["failed"] == 3 and progress["health"] == "bad" and progress["percent"] == 100
    assert {s["key"]: s["count"] for s in progress["segments"]} == {
        "succeeded": 0, "failed": 3, "do_not_call": 0, "canceled": 0, "pending": 0}
    client = login(owner_a)
    for page in (client.get("/batches/").content.decode(),
                 client.get(f"/batches/{no_carrier_batch.public_id}/").content.decode()):
        assert '<span class="badge bad batch-status">Completed · 3 failed</span>' in page
        assert 'class="seg seg-failed" style="width: 100.00%"' in page
        assert "seg-succeeded" not in page.split("Completed · 3 failed")[1].split("</div>")[0]
        assert "badge ok" not in page


def test_bar_segments_show_each_outcome(no_carrier_batch: Batch, org_a: Any) -> None:
    rows = list(BatchEntry.objects.filter(batch=no_carrier_batch).order_by("row_number"))
    rows[0].state = EntryState.DONE
    rows[1].state = EntryState.FAILED
    rows[2].state = EntryState.DO_NOT_CALL  # listed while the batch ran
    for row in rows:
        row.save()
    progress = services.progress(no_carrier_batch)
    assert [s["label"] for s in progress["segments"]][2] == "do-not-call"
    assert [(s["key"], s["count"], s["percent"]) for s in progress["segments"]] == [
        ("succeeded", 1, 33.33), ("failed", 1, 33.33), ("do_not_call", 1, 33.33), ("canceled", 0, 0),
        ("pending", 0, 0)]
    assert progress["health"] == "warn"  # still ready/running: failures so far, never "ok"


def test_completed_without_failures_is_green(login: Any, owner_a: Any, no_carrier_batch: Batch) -> None:
    _finish(no_carrier_batch, done=3, failed=0)
    assert services.progress(no_carrier_batch)["health"] == "ok"
    page = login(owner_a).get(f"/batches/{no_carrier_batch.public_id}/").content.decode()
    assert '<span class="badge ok batch-status">Completed</span>' in page


def test_schedule_that_will_fail_says_why(login: Any, api: Any, owner_a: Any, org_a: Any) -> None:
    sc = make_scheduled_call(org_a, name="Morning call")
    readiness = schedule_readiness(sc)
    assert [i.code for i in readiness.blocking] == ["carrier_credential_missing"]
    DoNotCallNumber.objects.create(org=org_a, e164=sc.to, reason="asked")
    assert [i.code for i in schedule_readiness(sc).blocking] == ["carrier_credential_missing", "do_not_call"]
    client = login(owner_a)
    listing = client.get("/schedules/").content.decode()
    assert "will fail" in listing and "no Twilio credential" in listing and "do-not-call list" in listing
    form = client.get(f"/schedules/{sc.public_id}/").content.decode()
    assert "Will fail:" in form and "no Twilio credential" in form
    body = api(owner_a).get(f"/api/v1/scheduled-calls/{sc.public_id}/readiness/").json()
    assert body["ready"] is False
    assert [p["code"] for p in body["problems"]] == ["carrier_credential_missing", "do_not_call"]


def test_schedule_with_everything_in_place_is_ready(login: Any, owner_a: Any, org_a: Any, twilio_org: Any) -> None:
    sc = make_scheduled_call(org_a)
    assert schedule_readiness(sc).ready and schedule_readiness(sc).issues == []
    listing = login(owner_a).get("/schedules/").content.decode()
    assert '<span class="badge ok">ready</span>' in listing and "will fail" not in listing
    sc.agent.published_version = None
    sc.agent.save()
    assert [i.code for i in schedule_readiness(sc).blocking] == ["not_published"]


def test_new_schedule_form_preview_checks_the_agent_and_number(login: Any, owner_a: Any, org_a: Any) -> None:
    agent, number = make_ready_agent(org_a), make_phone_number(org_a)
    client = login(owner_a)
    data = {"kind": "cron", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "agent": str(agent.public_id),
            "from_number": str(number.public_id)}
    page = client.post("/schedules/preview/", data).content.decode()
    assert page.count("<li>") == 5 and "Will fail:" in page and "no Twilio credential" in page
    assert "Will fail:" not in client.post("/schedules/preview/", {**data, "agent": "not-a-uuid"}).content.decode()


def test_new_schedule_form_preview_says_ready(login: Any, owner_a: Any, org_a: Any, twilio_org: Any) -> None:
    data = {"kind": "cron", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris",
            "agent": str(make_ready_agent(org_a).public_id), "from_number": str(make_phone_number(org_a).public_id)}
    page = login(owner_a).post("/schedules/preview/", data).content.decode()
    assert '<span class="badge ok">ready</span>' in page and "Will fail:" not in page
