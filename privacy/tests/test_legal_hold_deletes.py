"""A legal hold stops every delete, not only the purge: a held call or campaign is refused
(409 ``legal_hold``, naming the hold) over the API and in the admin (one row and "delete
selected") and is still there with its recording and transcript; once released it can be
deleted. A subject erasure keeps what a hold covers and says how much it kept."""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from batches.models import Batch, BatchCallAttempt, BatchEntry
from batches.tests.factories import make_batch
from calls.models import Call, Recording
from orgs.models import AuditLog
from orgs.services import SYSTEM
from privacy.services import set_legal_hold
from privacy.subjects import Subject, erase_subject
from privacy.tests.factories import make_full_call

pytestmark = pytest.mark.django_db

ANN = "+14155550142"


def _intact(call: Call) -> None:
    """The call is there with its transcript and its recording file in storage."""
    assert Call.objects.filter(pk=call.pk).exists()
    assert call.turns.count() == 2
    recording = Recording.objects.get(call=call)
    assert recording.file.name and recording.file.storage.exists(recording.file.name)


def test_a_held_call_is_refused_over_the_api_until_the_hold_is_released(org_a: Any, api_key_client: Any) -> None:
    call = make_full_call(org_a)
    set_legal_hold(call, SYSTEM, True)
    admin = api_key_client(org_a, "admin")
    refused = admin.delete(f"/api/v1/calls/{call.public_id}/")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "legal_hold" and "under legal hold" in error["message"]
    assert str(call.public_id) in error["message"]
    _intact(call)
    assert not AuditLog.objects.filter(org=org_a, action="call.deleted").exists()
    set_legal_hold(call, SYSTEM, False)
    assert admin.delete(f"/api/v1/calls/{call.public_id}/").status_code == 204
    assert not Call.objects.filter(pk=call.pk).exists() and not Recording.objects.exists()


def test_a_call_of_a_held_campaign_is_held_too(org_a: Any, owner_a: Any, api_key_client: Any, login: Any) -> None:
    batch = make_batch(org_a, name="Spring recall")
    call = make_full_call(org_a)
    entry = BatchEntry.objects.filter(batch=batch).order_by("row_number").first()
    BatchCallAttempt.objects.create(entry=entry, number=1, call=call)
    url = reverse("calls:detail", args=[call.public_id])
    assert "Legal hold" not in login(owner_a).get(url).content.decode()
    set_legal_hold(batch, SYSTEM, True)
    refused = api_key_client(org_a, "admin").delete(f"/api/v1/calls/{call.public_id}/")
    assert refused.status_code == 409 and "“Spring recall”" in refused.json()["error"]["message"]
    _intact(call)
    # the call's page says so before anyone tries to delete it
    shown = login(owner_a).get(url).content.decode()
    assert "<dt>Legal hold</dt>" in shown and "placed by the campaign “Spring recall”" in shown


def test_the_admin_refuses_a_held_call_one_row_and_in_bulk(org_a: Any, owner_a: Any, login: Any) -> None:
    held, free = make_full_call(org_a), make_full_call(org_a, caller="+14155550177")
    set_legal_hold(held, SYSTEM, True)
    client = login(owner_a)
    single = client.post(f"/admin/calls/call/{held.pk}/delete/", {"post": "yes"}, follow=True)
    assert single.status_code == 200
    assert "Not deleted: " in single.content.decode() and "under legal hold" in single.content.decode()
    _intact(held)
    bulk = client.post("/admin/calls/call/", {"action": "delete_selected", "post": "yes",
                                              "_selected_action": [held.pk, free.pk]}, follow=True)
    page = bulk.content.decode()
    assert "Deleted 1 call." in page and "under legal hold; release the hold" in page
    _intact(held)
    assert not Call.objects.filter(pk=free.pk).exists()
    set_legal_hold(held, SYSTEM, False)
    client.post(f"/admin/calls/call/{held.pk}/delete/", {"post": "yes"})
    assert not Call.objects.filter(pk=held.pk).exists()


def test_a_held_campaign_is_refused_over_the_api_and_in_the_admin(org_a: Any, owner_a: Any, login: Any,
                                                                   api_key_client: Any) -> None:
    batch = make_batch(org_a, name="Spring recall")
    set_legal_hold(batch, SYSTEM, True)
    admin = api_key_client(org_a, "admin")
    refused = admin.delete(f"/api/v1/batches/{batch.public_id}/")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "legal_hold"
    assert "campaign “Spring recall” is under legal hold" in refused.json()["error"]["message"]
    client = login(owner_a)
    single = client.post(f"/admin/batches/batch/{batch.pk}/delete/", {"post": "yes"}, follow=True)
    assert "under legal hold" in single.content.decode()
    bulk = client.post("/admin/batches/batch/", {"action": "delete_selected", "post": "yes",
                                                 "_selected_action": [batch.pk]}, follow=True)
    assert "Not deleted: " in bulk.content.decode() and "under legal hold" in bulk.content.decode()
    assert Batch.objects.filter(pk=batch.pk).exists() and BatchEntry.objects.filter(batch=batch).count() == 3
    set_legal_hold(batch, SYSTEM, False)
    assert admin.delete(f"/api/v1/batches/{batch.public_id}/").status_code == 204
    assert not Batch.objects.filter(pk=batch.pk).exists()


def test_a_subject_erasure_keeps_held_rows_and_reports_them(org_a: Any) -> None:
    held, free = make_full_call(org_a, caller=ANN), make_full_call(org_a, caller=ANN)
    set_legal_hold(held, SYSTEM, True)
    batch = make_batch(org_a, name="Held campaign")
    BatchEntry.objects.filter(batch=batch, row_number=1).update(e164=ANN, variables={"customer_name": "Ann"})
    set_legal_hold(batch, SYSTEM, True)
    counts = erase_subject(org_a, SYSTEM, Subject("phone", ANN))
    assert counts["calls"] == 1 and counts["calls_held"] == 1
    assert counts["batch_rows"] == 0 and counts["batch_rows_held"] == 1
    _intact(held)
    held.refresh_from_db()
    assert held.from_number == ANN and held.variables["customer_name"] == "Ann Example"
    assert held.events.exists()
    assert BatchEntry.objects.get(batch=batch, row_number=1).e164 == ANN
    free.refresh_from_db()
    assert free.from_number == "" and not free.turns.exists() and not Recording.objects.filter(call=free).exists()
    audit = AuditLog.objects.get(org=org_a, action="privacy.subject_erased")
    assert audit.changes["calls_held"] == 1 and audit.changes["batch_rows_held"] == 1


def test_the_settings_page_says_what_the_hold_kept(org_a: Any, owner_a: Any, login: Any) -> None:
    set_legal_hold(make_full_call(org_a, caller=ANN), SYSTEM, True)
    page = login(owner_a).post(reverse("privacy:settings"), {"action": "erase", "phone": ANN, "confirm": "on"}, follow=True)
    assert "Kept under legal hold: 1 call and 0 campaign rows" in page.content.decode()


def test_the_call_admin_offers_no_way_to_delete_a_recording_alone(org_a: Any, django_user_model: Any,
                                                                   login: Any) -> None:
    """A recording goes with its call (the delete service, which checks the hold), the purge
    or an erasure, never from the call's change form, not even a superuser's."""
    call = make_full_call(org_a)
    root = django_user_model.objects.create_superuser(username="root", email="root@x.test", password="pw-Secret-123")
    page = login(root).get(f"/admin/calls/call/{call.pk}/change/").content.decode()
    assert 'name="recording-0-id"' in page and 'name="recording-0-DELETE"' not in page


def test_the_dashboard_refuses_a_held_call_and_deletes_it_once_released(org_a: Any, owner_a: Any, editor_a: Any,
                                                                         login: Any) -> None:
    call = make_full_call(org_a)
    set_legal_hold(call, SYSTEM, True)
    url = reverse("calls:detail", args=[call.public_id])
    owner = login(owner_a)
    shown = owner.get(url).content.decode()
    assert "Held: never purged" in shown and 'value="delete"' in shown
    assert 'value="delete"' not in login(editor_a).get(url).content.decode()
    refused = owner.post(url, {"action": "delete"}, follow=True)
    assert refused.redirect_chain[-1][0] == url
    assert f"call {call.public_id} is under legal hold; release the hold" in refused.content.decode()
    _intact(call)
    assert login(editor_a).post(url, {"action": "delete"}).status_code == 302
    _intact(call)
    set_legal_hold(call, SYSTEM, False)
    deleted = owner.post(url, {"action": "delete"})
    assert deleted.status_code == 302 and deleted["Location"] == reverse("calls:list")
    assert not Call.objects.filter(pk=call.pk).exists() and not Recording.objects.exists()


def test_the_dashboard_refuses_a_held_campaign_and_deletes_it_once_released(org_a: Any, owner_a: Any,
                                                                             login: Any) -> None:
    batch = make_batch(org_a, name="Spring recall")
    set_legal_hold(batch, SYSTEM, True)
    detail = reverse("batches:detail", args=[batch.public_id])
    delete = reverse("batches:action", args=[batch.public_id, "delete"])
    owner = login(owner_a)
    assert f'action="{delete}"' in owner.get(detail).content.decode()
    refused = owner.post(delete, follow=True)
    assert refused.redirect_chain[-1][0] == detail
    assert "the campaign “Spring recall” is under legal hold; release the hold" in refused.content.decode()
    assert BatchEntry.objects.filter(batch=batch).count() == 3
    set_legal_hold(batch, SYSTEM, False)
    deleted = owner.post(delete)
    assert deleted.status_code == 302 and deleted["Location"] == reverse("batches:list")
    assert not Batch.objects.filter(pk=batch.pk).exists()
