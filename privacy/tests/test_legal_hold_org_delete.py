"""Deleting an organisation cascades its calls, recordings and campaigns: while a legal hold
covers any of them the delete is refused (409 ``legal_hold``, naming the holds), whoever asks
(a superuser in the admin, one row or "delete selected"; an owner over the API or in the
dashboard's settings), and everything held is still there; once released, the org goes."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from batches.models import Batch, BatchEntry
from batches.tests.factories import make_batch
from calls.models import Call, Recording
from orgs.models import Organization
from orgs.services import SYSTEM
from privacy.retention import NAMED_HOLDS
from privacy.services import set_legal_hold
from privacy.tests.factories import make_full_call

pytestmark = pytest.mark.django_db


def _superuser() -> Any:
    return get_user_model().objects.create_superuser("root@platform.test", "root@platform.test", "pw-Root-123")


def _held_world(org: Organization) -> tuple[Call, Batch]:
    call = make_full_call(org)
    batch = make_batch(org, name="Spring recall")
    set_legal_hold(call, SYSTEM, True)
    set_legal_hold(batch, SYSTEM, True)
    return call, batch


def _intact(org: Organization, call: Call, batch: Batch) -> None:
    assert Organization.objects.filter(pk=org.pk).exists()
    assert Call.objects.filter(pk=call.pk).exists() and call.turns.count() == 2
    recording = Recording.objects.get(call=call)
    assert recording.file.name and recording.file.storage.exists(recording.file.name)
    assert BatchEntry.objects.filter(batch=batch).count() == 3


def test_a_superuser_cannot_delete_an_org_with_held_data_in_the_admin(org_a: Any, org_b: Any, login: Any) -> None:
    call, batch = _held_world(org_a)
    client = login(_superuser())
    single = client.post(reverse("admin:orgs_organization_delete", args=[org_a.pk]), {"post": "yes"}, follow=True)
    page = single.content.decode()
    assert single.status_code == 200
    assert "Not deleted: " in page and "“Org A” has data under legal hold" in page
    assert "the campaign “Spring recall”" in page and f"call {call.public_id}" in page
    _intact(org_a, call, batch)
    bulk = client.post(reverse("admin:orgs_organization_changelist"),
                       {"action": "delete_selected", "post": "yes", "_selected_action": [org_a.pk, org_b.pk]},
                       follow=True)
    page = bulk.content.decode()
    assert "Deleted 1 organization." in page and "release the holds before deleting it" in page
    _intact(org_a, call, batch)
    assert not Organization.objects.filter(pk=org_b.pk).exists()  # the org without holds went


def test_an_owner_cannot_delete_an_org_with_held_data_over_the_api_or_the_dashboard(
        org_a: Any, owner_a: Any, api: Any, login: Any) -> None:
    call, batch = _held_world(org_a)
    refused = api(owner_a).delete("/api/v1/organization/")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "legal_hold" and "“Spring recall”" in error["message"]
    _intact(org_a, call, batch)
    settings_page = reverse("orgs:settings")
    page = login(owner_a).post(settings_page, {"action": "delete", "confirm": org_a.slug}, follow=True)
    assert page.redirect_chain[-1][0] == settings_page
    assert "has data under legal hold" in page.content.decode()
    _intact(org_a, call, batch)


def test_a_call_held_alone_is_enough_and_the_refusal_counts_what_it_does_not_name(org_a: Any, api: Any,
                                                                                   owner_a: Any) -> None:
    calls = [make_full_call(org_a) for _ in range(NAMED_HOLDS + 2)]
    for call in calls:
        set_legal_hold(call, SYSTEM, True)
    message = api(owner_a).delete("/api/v1/organization/").json()["error"]["message"]
    assert f"call {calls[0].public_id}" in message and " and 2 more)" in message
    assert Call.objects.filter(org=org_a).count() == len(calls)


def test_once_every_hold_is_released_the_org_is_deleted_with_its_data(org_a: Any, owner_a: Any, api: Any) -> None:
    call, batch = _held_world(org_a)
    set_legal_hold(call, SYSTEM, False)
    assert api(owner_a).delete("/api/v1/organization/").status_code == 409  # the campaign still holds
    set_legal_hold(batch, SYSTEM, False)
    assert api(owner_a).delete("/api/v1/organization/").status_code == 204
    assert not Organization.objects.filter(pk=org_a.pk).exists()
    assert not Call.objects.filter(pk=call.pk).exists() and not Batch.objects.filter(pk=batch.pk).exists()
