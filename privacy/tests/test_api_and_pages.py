"""The privacy API and settings page: roles, org scoping, and that both call the services."""
from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from django.urls import reverse

from agents.tests.factories import make_agent
from orgs.models import AuditLog
from privacy.models import RetentionPolicy
from privacy.tests.factories import make_full_call

pytestmark = pytest.mark.django_db

ANN = "+14155550142"


def test_subject_export_and_erasure_need_an_admin(org_a: Any, api_key_client: Any) -> None:
    make_full_call(org_a, caller=ANN)
    for role in ("viewer", "editor"):
        client = api_key_client(org_a, role)
        assert client.post("/api/v1/privacy/subject-exports/", {"phone": ANN}, format="json").status_code == 403
        assert client.post("/api/v1/privacy/subject-erasures/", {"phone": ANN}, format="json").status_code == 403
    admin = api_key_client(org_a, "admin")
    response = admin.post("/api/v1/privacy/subject-exports/", {"phone": ANN}, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "calls.json" in zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    refused = admin.post("/api/v1/privacy/subject-erasures/", {"phone": "12"}, format="json")
    assert refused.status_code == 400 and "phone" in refused.json()["error"]["fields"]
    erased = admin.post("/api/v1/privacy/subject-erasures/", {"phone": ANN}, format="json")
    assert erased.status_code == 200 and erased.json()["calls"] == 1


def test_erasure_through_the_api_touches_only_the_callers_org(org_a: Any, org_b: Any, api_key_client: Any) -> None:
    theirs = make_full_call(org_b, caller=ANN)
    answer = api_key_client(org_a, "admin").post("/api/v1/privacy/subject-erasures/", {"phone": ANN}, format="json")
    assert answer.json()["calls"] == 0
    assert theirs.turns.count() == 2


def test_retention_policies_are_admin_written_and_org_scoped(org_a: Any, org_b: Any, api_key_client: Any) -> None:
    admin = api_key_client(org_a, "admin")
    theirs = make_agent(org_b, name="Theirs")
    refused = admin.post("/api/v1/privacy/retention-policies/", {"agent": str(theirs.public_id), "events_days": 3},
                         format="json")
    assert refused.status_code == 400
    assert api_key_client(org_a, "editor").post("/api/v1/privacy/retention-policies/", {"events_days": 3},
                                                format="json").status_code == 403
    created = admin.post("/api/v1/privacy/retention-policies/", {"recordings_days": 0, "events_days": 3},
                         format="json")
    assert created.status_code == 201 and created.json()["agent"] is None
    policy_id = created.json()["id"]
    changed = admin.patch(f"/api/v1/privacy/retention-policies/{policy_id}/", {"events_days": None}, format="json")
    assert changed.status_code == 200
    policy = RetentionPolicy.objects.get(public_id=policy_id)
    assert policy.recordings_days == 0 and policy.events_days is None
    assert AuditLog.objects.filter(org=org_a, action="retention.updated").count() == 2
    assert api_key_client(org_b, "admin").get(f"/api/v1/privacy/retention-policies/{policy_id}/").status_code == 404
    assert admin.delete(f"/api/v1/privacy/retention-policies/{policy_id}/").status_code == 204
    storage = api_key_client(org_a, "viewer").get("/api/v1/privacy/storage/")
    assert storage.status_code == 200 and storage.json()["calls"] == 0


def test_the_settings_page_shows_storage_and_runs_requests(org_a: Any, admin_a: Any, viewer_a: Any,
                                                           login: Any) -> None:
    make_full_call(org_a, caller=ANN)
    url = reverse("privacy:settings")
    viewer = login(viewer_a)
    page = viewer.get(url)
    assert page.status_code == 200 and b"Storage used" in page.content and b"Data-subject requests" not in page.content
    assert viewer.post(url, {"action": "retention", "events_days": "3"}).status_code == 403

    admin = login(admin_a)
    assert admin.post(url, {"action": "retention", "agent": "", "transcripts_days": "30"}).status_code == 302
    assert RetentionPolicy.objects.get(org=org_a, agent=None).transcripts_days == 30
    export = admin.post(url, {"action": "export", "phone": ANN})
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"
    unconfirmed = admin.post(url, {"action": "erase", "phone": ANN})
    assert unconfirmed.status_code == 400 and b"cannot be undone" in unconfirmed.content
    assert admin.post(url, {"action": "erase", "phone": ANN, "confirm": "on"}).status_code == 302
    assert AuditLog.objects.filter(org=org_a, action="privacy.subject_erased").exists()


def test_admin_actions_on_calls_export_and_erase_the_caller(org_a: Any, owner_a: Any, editor_a: Any,
                                                            login: Any) -> None:
    from calls.models import Call

    call = make_full_call(org_a, caller=ANN)
    other = make_full_call(org_a, caller="+14155550177", name="Bob Example")
    changelist = "/admin/calls/call/"
    admin = login(owner_a)
    export = admin.post(changelist, {"action": "export_caller", "_selected_action": [call.pk]})
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"
    both = admin.post(changelist, {"action": "export_caller", "_selected_action": [call.pk, other.pk]}, follow=True)
    assert b"exactly one caller" in both.content
    # an editor may not erase; an admin confirms first
    refused = login(editor_a).post(changelist, {"action": "erase_callers", "_selected_action": [call.pk]},
                                   follow=True)
    assert b"Only an organisation admin" in refused.content and call.turns.exists()
    confirm = admin.post(changelist, {"action": "erase_callers", "_selected_action": [call.pk]})
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content and call.turns.exists()
    done = admin.post(changelist, {"action": "erase_callers", "_selected_action": [call.pk], "post": "yes"},
                      follow=True)
    assert done.status_code == 200 and not call.turns.exists()
    assert Call.objects.get(pk=call.pk).from_number == "" and other.turns.count() == 2
    assert AuditLog.objects.filter(org=org_a, action="privacy.subject_erased").count() == 1


def test_retention_policies_in_the_admin_are_saved_through_the_service(org_a: Any, owner_a: Any,
                                                                       login: Any) -> None:
    admin = login(owner_a)
    response = admin.post("/admin/privacy/retentionpolicy/add/", {"agent": "", "recordings_days": "7"})
    assert response.status_code == 302
    assert RetentionPolicy.objects.get(org=org_a, agent=None).recordings_days == 7
    assert AuditLog.objects.filter(org=org_a, action="retention.updated").exists()


def test_legal_holds_through_the_api_and_the_admin(org_a: Any, org_b: Any, owner_a: Any, api_key_client: Any,
                                                   login: Any) -> None:
    from calls.models import Call

    call = make_full_call(org_a)
    theirs = make_full_call(org_b)
    admin = api_key_client(org_a, "admin")
    assert api_key_client(org_a, "editor").post("/api/v1/privacy/legal-holds/", {
        "call": str(call.public_id), "hold": True}, format="json").status_code == 403
    foreign = admin.post("/api/v1/privacy/legal-holds/", {"call": str(theirs.public_id), "hold": True}, format="json")
    assert foreign.status_code == 400 and not Call.objects.get(pk=theirs.pk).legal_hold
    placed = admin.post("/api/v1/privacy/legal-holds/", {"call": str(call.public_id), "hold": True}, format="json")
    assert placed.status_code == 200 and placed.json() == {"legal_hold": True}
    assert Call.objects.get(pk=call.pk).legal_hold
    assert AuditLog.objects.filter(org=org_a, action="legal_hold.placed").count() == 1
    released = login(owner_a).post("/admin/calls/call/", {"action": "release_legal_hold",
                                                          "_selected_action": [call.pk]}, follow=True)
    assert released.status_code == 200 and not Call.objects.get(pk=call.pk).legal_hold
