"""Dashboard pages: create with preview, live progress partial, actions, results,
do-not-call, schedules with next-runs preview; org scoping and roles."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches.models import Batch, DoNotCallNumber, ScheduledCall
from batches.tests.factories import make_batch, make_scheduled_call
from calls.tests.factories import make_phone_number, make_ready_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def parts(org_a: Any) -> dict[str, Any]:
    return {"agent": make_ready_agent(org_a), "number": make_phone_number(org_a, e164="+14155550100")}


def form(parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "Spring", "agent": str(parts["agent"].public_id), "from_number": str(parts["number"].public_id),
            "concurrency": 5, "calls_per_second": 1, "max_attempts": 3, "retry_delay_s": 600,
            "retry_on": ["busy", "no_answer"], **extra}


def test_preview_then_create_without_uploading_twice(login: Any, editor_a: Any, parts: dict[str, Any]) -> None:
    client = login(editor_a)
    assert client.get("/batches/new/").status_code == 200
    text = b"Name;Phone\nAnn;+12125551000\nBob;oops\nCy;+1 212 555 1000\n"
    response = client.post("/batches/new/", form(parts, action="preview",
                                                file=SimpleUploadedFile("list.csv", text)))
    assert response.status_code == 200
    page = response.content.decode()
    assert "separated by semicolons" in page and "not a phone number" in page and "same number as row 1" in page
    token = response.context["token"]
    assert not Batch.objects.exists()
    created = client.post("/batches/new/", form(parts, action="create", upload_token=token, filename="list.csv",
                                                window_days=["mon", "tue"], window_start="09:00", window_end="17:00"))
    assert created.status_code == 302
    batch = Batch.objects.get()
    assert (batch.total_rows, batch.valid_rows, batch.source_delimiter) == (3, 1, ";")
    assert batch.calling_window == {"days": ["mon", "tue"], "start": "09:00", "end": "17:00"}
    detail = client.get(created["Location"])
    assert detail.status_code == 200 and "Download results" in detail.content.decode()


def test_create_errors_are_shown_on_the_form(login: Any, editor_a: Any, parts: dict[str, Any]) -> None:
    client = login(editor_a)
    response = client.post("/batches/new/", form(parts, action="create",
                                                 file=SimpleUploadedFile("x.csv", b"name\nAnn\n")))
    assert response.status_code == 400 and "no phone column found" in response.content.decode()
    response = client.post("/batches/new/", form(parts, action="create", window_days=["mon"], window_start="9",
                                                 file=SimpleUploadedFile("x.csv", b"phone\n+12125551000\n")))
    assert response.status_code == 400 and "HH:MM" in response.content.decode()
    assert not Batch.objects.exists()


def test_progress_polls_while_running_and_actions(login: Any, owner_a: Any, viewer_a: Any, org_a: Any,
                                                  twilio_org: Any) -> None:
    batch = make_batch(org_a)
    client = login(owner_a)
    partial = client.get(f"/batches/{batch.public_id}/progress/").content.decode()
    assert "hx-trigger" not in partial  # not live: no polling
    assert login(viewer_a).post(f"/batches/{batch.public_id}/launch/").status_code == 403
    assert client.post(f"/batches/{batch.public_id}/launch/").status_code == 302
    partial = client.get(f"/batches/{batch.public_id}/progress/").content.decode()
    assert 'hx-trigger="every 2s"' in partial and "0 of 2 dialable rows" in partial
    client.post(f"/batches/{batch.public_id}/cancel/")
    batch.refresh_from_db()
    assert batch.status == "canceled"
    csv_text = b"".join(client.get(f"/batches/{batch.public_id}/results.csv").streaming_content).decode("utf-8-sig")
    assert csv_text.count("\r\n") == 4  # header + 3 rows


def test_pages_are_scoped(login: Any, outsider: Any, org_a: Any) -> None:
    batch = make_batch(org_a)
    sc = make_scheduled_call(org_a)
    other = login(outsider)
    for url in (f"/batches/{batch.public_id}/", f"/batches/{batch.public_id}/progress/",
                f"/batches/{batch.public_id}/results.csv", f"/schedules/{sc.public_id}/"):
        assert other.get(url).status_code == 404, url
    assert other.post(f"/batches/{batch.public_id}/cancel/").status_code == 404
    assert batch.name not in other.get("/batches/").content.decode()


def test_do_not_call_page(login: Any, editor_a: Any, org_a: Any) -> None:
    client = login(editor_a)
    bad = client.post("/batches/do-not-call/", {"action": "add", "e164": "nope"})
    assert bad.status_code == 400 and "not a phone number" in bad.content.decode()
    assert client.post("/batches/do-not-call/", {"action": "add", "e164": "+1 212 555 1000"}).status_code == 302
    imported = client.post("/batches/do-not-call/", {"action": "import",
                                                     "file": SimpleUploadedFile("d.csv", b"phone\n+12125551001\nxx\n")})
    assert "Added 1" in imported.content.decode() and "row 2: not a phone number" in imported.content.decode()
    entry = DoNotCallNumber.objects.for_org(org_a).get(e164="+12125551000")
    assert client.post("/batches/do-not-call/", {"action": "remove", "id": str(entry.public_id)}).status_code == 302
    assert DoNotCallNumber.objects.for_org(org_a).count() == 1


def test_schedule_pages(login: Any, editor_a: Any, org_a: Any, parts: dict[str, Any]) -> None:
    client = login(editor_a)
    preview = client.post("/schedules/preview/", {"kind": "cron", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"})
    assert preview.status_code == 200 and preview.content.decode().count("<li>") == 5
    bad = client.post("/schedules/preview/", {"kind": "cron", "cron": "0 9 * *", "timezone": "Europe/Paris"})
    assert "has 4" in bad.content.decode()
    data = {"name": "Daily", "agent": str(parts["agent"].public_id), "from_number": str(parts["number"].public_id),
            "to": "+12125551000", "kind": "cron", "cron": "0 9 * * *", "timezone": "Europe/Paris",
            "variables": "{}", "enabled": "on", "max_attempts": 1, "retry_delay_s": 300,
            "missed_run_policy": "run_once"}
    invalid = client.post("/schedules/new/", {**data, "kind": "one_time", "run_at": "2020-01-01T10:00"})
    assert invalid.status_code == 400 and "is in the past" in invalid.content.decode()
    saved = client.post("/schedules/new/", data)
    assert saved.status_code == 302
    sc = ScheduledCall.objects.for_org(org_a).get()
    listing = client.get("/schedules/").content.decode()
    assert "Daily" in listing and "0 9 * * *" in listing
    assert client.get(f"/schedules/{sc.public_id}/").status_code == 200
    assert client.post(f"/schedules/{sc.public_id}/", {"action": "delete"}).status_code == 302
    assert not ScheduledCall.objects.exists()


def test_previewed_uploads_are_purged_after_a_day(login: Any, editor_a: Any, parts: dict[str, Any],
                                                  settings: Any, tmp_path: Any) -> None:
    import os
    from datetime import timedelta

    from django.core.files.storage import default_storage
    from django.utils import timezone

    from batches.tasks import purge_stale_uploads

    settings.MEDIA_ROOT = str(tmp_path)  # only this test's uploads
    response = login(editor_a).post("/batches/new/", form(parts, action="preview",
                                                          file=SimpleUploadedFile("l.csv", b"phone\n+12125551000\n")))
    token = response.context["token"]
    path = f"batch-uploads/{parts['agent'].org.public_id}/{token}.upload"
    assert default_storage.exists(path)
    # The upload's age is an input: stamped at the app's "now" (which a test run
    # may have moved), not whatever the file system's clock said.
    stamp = timezone.now().timestamp()
    os.utime(default_storage.path(path), (stamp, stamp))
    assert purge_stale_uploads() == 0
    assert purge_stale_uploads(now=timezone.now() + timedelta(hours=25)) == 1
    assert not default_storage.exists(path)
