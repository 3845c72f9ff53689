"""The batches API: uploads (multipart and JSON), lifecycle, rows, results CSV,
do-not-call and scheduled calls, with roles and org scoping."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from batches.models import Batch, BatchEntry, DoNotCallNumber, ScheduledCall
from batches.tests.factories import make_batch, make_scheduled_call
from calls.tests.factories import make_phone_number, make_ready_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def parts(org_a: Any) -> dict[str, Any]:
    return {"agent": make_ready_agent(org_a), "number": make_phone_number(org_a, e164="+14155550100")}


def upload(text: str, name: str = "list.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_create_from_multipart_upload(api: Any, owner_a: Any, parts: dict[str, Any]) -> None:
    text = "Mobile;First name;Order\n+12125551000;Ann;=1+1\n+1 212 555 1000;Dup;x\nbad;Cy;y\n"
    response = api(owner_a).post("/api/v1/batches/", {
        "name": "Spring", "agent": str(parts["agent"].public_id), "from_number": "+14155550100",
        "file": upload(text), "phone_column": "mobile", "variables": '{"First name": "customer_name"}',
        "concurrency": "3", "retry_on": "busy,no_answer", "calling_window": '{"days": ["mon"], "start": "09:00", "end": "17:00"}',
    }, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["total_rows"], body["valid_rows"], body["duplicate_rows"], body["invalid_rows"]) == (3, 1, 1, 1)
    assert body["source_delimiter"] == ";" and body["phone_column"] == "Mobile"
    assert body["variable_columns"] == {"First name": "customer_name"}
    assert body["retry_on"] == ["busy", "no_answer"] and body["concurrency"] == 3
    assert body["progress"]["counts"]["pending"] == 1
    batch = Batch.objects.get(public_id=body["id"])
    assert BatchEntry.objects.get(batch=batch, row_number=1).variables == {"customer_name": "Ann"}


def test_create_from_json_rows(api: Any, editor_a: Any, parts: dict[str, Any]) -> None:
    response = api(editor_a).post("/api/v1/batches/", {
        "name": "API", "agent": str(parts["agent"].public_id), "from_number": str(parts["number"].public_id),
        "rows": [{"phone": "+12125551000", "customer_name": "Ann"}, {"phone": "12"}],
    }, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["valid_rows"], response.json()["invalid_rows"]) == (1, 1)


@pytest.mark.parametrize(("text", "code", "needle"), [
    ("phone,name\n", "header_only", "no data rows"),
    ("", "empty_file", "empty"),
    ("name,city\nAnn,Rome\n", "missing_phone_column", "no phone column"),
])
def test_bad_uploads_are_clear_errors(api: Any, owner_a: Any, parts: dict[str, Any], text: str, code: str,
                                      needle: str) -> None:
    response = api(owner_a).post("/api/v1/batches/", {
        "name": "x", "agent": str(parts["agent"].public_id), "from_number": "+14155550100", "file": upload(text),
    }, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and needle in error["message"]
    assert not Batch.objects.exists()


def test_settings_errors_name_the_field(api: Any, owner_a: Any, parts: dict[str, Any], org_b: Any) -> None:
    foreign_agent = make_ready_agent(org_b)
    response = api(owner_a).post("/api/v1/batches/", {
        "name": "x", "agent": str(foreign_agent.public_id), "from_number": "+14155550100",
        "rows": [{"phone": "+12125551000"}]}, format="json")
    assert response.status_code == 400 and "agent" in response.json()["error"]["fields"]
    response = api(owner_a).post("/api/v1/batches/", {
        "name": "x", "agent": str(parts["agent"].public_id), "from_number": "+14155550100",
        "rows": [{"phone": "+12125551000"}], "calls_per_second": 500}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["calls_per_second"] == ["must be a number from 0.01 to 50, got 500.0"]


def test_preview_shows_first_rows_and_problems(api: Any, viewer_a: Any, owner_a: Any, org_a: Any) -> None:
    from batches.services import add_do_not_call
    from orgs.services import SYSTEM

    add_do_not_call(org_a, SYSTEM, "+12125551002")
    text = "phone,name\n+12125551000,a\nxx,b\n+12125551000,c\n+12125551002,d\n"
    response = api(owner_a).post("/api/v1/batches/preview/", {"file": upload(text), "first_rows": 2},
                                 format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["summary"]["rows"] == 4 and len(body["first_rows"]) == 2
    assert [(p["row"], p["status"]) for p in body["problems"]] == [(2, "invalid"), (3, "duplicate"), (4, "do_not_call")]
    assert not Batch.objects.exists()
    assert api(viewer_a).post("/api/v1/batches/preview/", {"file": upload(text)}, format="multipart").status_code == 403


def test_lifecycle_and_roles(api: Any, owner_a: Any, viewer_a: Any, org_a: Any, twilio_org: Any) -> None:
    batch = make_batch(org_a)
    url = f"/api/v1/batches/{batch.public_id}/"
    assert api(viewer_a).post(url + "launch/").status_code == 403
    refusal = api(owner_a).post(url + "pause/")
    assert refusal.status_code == 400 and refusal.json()["error"] == {
        "code": "batch_error", "message": "only a running batch can be paused; this one is ready", "fields": {}}
    assert api(owner_a).post(url + "launch/").json()["status"] == "running"
    assert api(owner_a).post(url + "pause/").json()["status"] == "paused"
    assert api(owner_a).patch(url, {"concurrency": 7}, format="json").json()["concurrency"] == 7
    assert api(owner_a).post(url + "resume/").json()["status"] == "running"
    assert api(owner_a).delete(url).status_code == 400
    body = api(owner_a).post(url + "cancel/").json()
    assert body["status"] == "canceled" and body["progress"]["counts"]["canceled"] == 2
    assert api(owner_a).patch(url, {"concurrency": 2}, format="json").status_code == 400
    assert api(owner_a).delete(url).status_code == 204


def test_results_csv_escapes_formulas(api: Any, owner_a: Any, org_a: Any, parts: dict[str, Any]) -> None:
    text = 'phone,name\n+12125551000,"=HYPERLINK(""http://evil"",""x"")"\nbad,@SUM(A1)\n'
    response = api(owner_a).post("/api/v1/batches/", {
        "name": "x", "agent": str(parts["agent"].public_id), "from_number": "+14155550100", "file": upload(text),
    }, format="multipart")
    batch_id = response.json()["id"]
    result = api(owner_a).get(f"/api/v1/batches/{batch_id}/results/")
    assert result.status_code == 200 and result["Content-Type"].startswith("text/csv")
    content = b"".join(result.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0][:4] == ["row", "phone", "e164", "state"] and rows[0][-1] == "var:name"
    assert rows[1][1] == "+12125551000" and rows[1][-1] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert rows[2][3] == "invalid" and rows[2][-1] == "'@SUM(A1)"
    assert len(rows) == 3


def test_entries_are_listed_per_batch_and_scoped(api: Any, owner_a: Any, outsider: Any, org_a: Any) -> None:
    batch = make_batch(org_a)
    response = api(owner_a).get(f"/api/v1/batch-entries/?batch={batch.public_id}")
    assert [e["row_number"] for e in response.json()["results"]] == [1, 2, 3]
    invalid = api(owner_a).get(f"/api/v1/batch-entries/?batch={batch.public_id}&state=invalid").json()["results"]
    assert [(e["row_number"], e["reason"]) for e in invalid] == [(3, "not a phone number")]
    assert api(owner_a).get("/api/v1/batch-entries/").status_code == 400
    assert api(outsider).get(f"/api/v1/batch-entries/?batch={batch.public_id}").json()["results"] == []
    assert api(outsider).get(f"/api/v1/batches/{batch.public_id}/results/").status_code == 404


def test_do_not_call_api(api: Any, owner_a: Any, viewer_a: Any, outsider: Any, org_a: Any) -> None:
    client = api(owner_a)
    created = client.post("/api/v1/do-not-call/", {"e164": "+1 (212) 555-1000", "reason": "asked"}, format="json")
    assert created.status_code == 201 and created.json()["e164"] == "+12125551000"
    bad = client.post("/api/v1/do-not-call/", {"e164": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["e164"] == ["not a phone number"]
    imported = client.post("/api/v1/do-not-call/import/", {"file": upload("phone\n+12125551001\nxx\n")},
                           format="multipart")
    assert imported.json() == {"added": 1, "already_listed": 0, "invalid": [{"row": 2, "reason": "not a phone number"}]}
    assert api(viewer_a).post("/api/v1/do-not-call/", {"e164": "+12125551003"}, format="json").status_code == 403
    assert api(outsider).get("/api/v1/do-not-call/").json()["results"] == []
    entry_id = created.json()["id"]
    assert client.delete(f"/api/v1/do-not-call/{entry_id}/").status_code == 204
    assert DoNotCallNumber.objects.for_org(org_a).count() == 1


def test_scheduled_call_api(api: Any, owner_a: Any, parts: dict[str, Any]) -> None:
    client = api(owner_a)
    base = {"name": "Weekly", "agent": str(parts["agent"].public_id), "from_number": "+14155550100",
            "to": "+1 212 555 1000", "timezone": "America/New_York"}
    response = client.post("/api/v1/scheduled-calls/", {**base, "kind": "cron", "cron": "30 9 * * mon"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cron"] == "30 9 * * 1" and body["to"] == "+12125551000" and len(body["next_runs"]) == 5
    assert all(r.endswith(("-05:00", "-04:00")) and "T09:30" in r for r in body["next_runs"])
    sc = ScheduledCall.objects.get(public_id=body["id"])
    task = PeriodicTask.objects.get(pk=sc.periodic_task_id)
    assert task.task == "batches.tasks.fire_scheduled_call" and task.crontab.timezone.key == "America/New_York"
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "9", "1")

    bad = client.post("/api/v1/scheduled-calls/", {**base, "kind": "cron", "cron": "61 * * * *"}, format="json")
    assert bad.status_code == 400 and "minute field allows 0-59" in bad.json()["error"]["fields"]["cron"][0]
    past = client.post("/api/v1/scheduled-calls/", {**base, "kind": "one_time", "run_at": "2020-01-01T09:00"},
                       format="json")
    assert past.status_code == 400 and "is in the past" in past.json()["error"]["fields"]["run_at"][0]
    when = (timezone.now() + timedelta(days=2)).astimezone().strftime("%Y-%m-%dT%H:%M")
    one = client.post("/api/v1/scheduled-calls/", {**base, "kind": "one_time", "run_at": when}, format="json")
    assert one.status_code == 201, one.content
    one_task = PeriodicTask.objects.get(pk=ScheduledCall.objects.get(public_id=one.json()["id"]).periodic_task_id)
    assert one_task.one_off and one_task.clocked is not None

    preview = client.post("/api/v1/scheduled-calls/preview/", {"kind": "cron", "cron": "0 8 1 * *",
                                                               "timezone": "Europe/Paris", "count": 3}, format="json")
    assert preview.status_code == 200 and len(preview.json()["next_runs"]) == 3
    assert client.post("/api/v1/scheduled-calls/preview/", {"kind": "cron", "cron": "0 8 L * *",
                                                           "timezone": "Europe/Paris"}, format="json").status_code == 400

    url = f"/api/v1/scheduled-calls/{sc.public_id}/"
    assert client.patch(url, {"enabled": False}, format="json").json()["next_runs"] == []
    task.refresh_from_db()
    assert task.enabled is False
    changed = client.patch(url, {"cron": "0 18 * * *"}, format="json")
    assert changed.status_code == 200 and changed.json()["cron"] == "0 18 * * *"
    task.refresh_from_db()
    assert task.crontab.hour == "18"
    assert client.get(url + "runs/").json() == []
    assert client.delete(url).status_code == 204
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_scheduled_calls_are_scoped(api: Any, outsider: Any, viewer_a: Any, org_a: Any) -> None:
    sc = make_scheduled_call(org_a)
    assert api(outsider).get(f"/api/v1/scheduled-calls/{sc.public_id}/").status_code == 404
    assert api(outsider).post("/api/v1/scheduled-calls/preview/", {"kind": "cron", "cron": "* * * * *",
                                                                   "timezone": "UTC"}, format="json").status_code == 200
    assert api(viewer_a).patch(f"/api/v1/scheduled-calls/{sc.public_id}/", {"enabled": False},
                               format="json").status_code == 403


def test_calls_api_refuses_numbers_on_the_do_not_call_list(api: Any, owner_a: Any, twilio_org: Any, agent_a: Any,
                                                            twilio_number: Any, fake_twilio: Any) -> None:
    client = api(owner_a)
    client.post("/api/v1/do-not-call/", {"e164": "+12125550199"}, format="json")
    response = client.post("/api/v1/calls/", {"agent": str(agent_a.public_id), "from_number": twilio_number.e164,
                                              "to": "+1 212 555 0199"}, format="json")
    assert response.status_code == 400
    assert "do-not-call" in response.json()["error"]["message"]
    assert fake_twilio.requests_to("POST", r"/2010-04-01/Accounts/AC\w+/Calls\.json") == []
