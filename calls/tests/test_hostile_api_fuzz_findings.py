"""Regressions found by the schema fuzz (voiceplatform/tests/test_hostile_api_fuzz.py).

- Deleting a number that a batch campaign or a schedule still dials from was a 500
  (``ProtectedError``); it is a clear refusal naming what uses it.
- ``dtmf`` and ``transfer`` validated the body before looking the call up, so another
  org's call answered 400 (and a valid body was needed to see the 404): the call is
  looked up first, another org's call is a 404 whatever the body.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from calls.models import PhoneNumber
from calls.tests.factories import make_call
from orgs.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("user", ["batch", "schedule"])
def test_deleting_a_number_in_use_is_refused_and_names_the_user(user: str, org_a: Any, api_key_client: Any) -> None:
    from batches.tests.factories import make_batch, make_scheduled_call

    owner = make_batch(org_a, name="Spring campaign") if user == "batch" else make_scheduled_call(org_a, name="Daily")
    number = owner.from_number
    response = api_key_client(org_a, "admin").delete(reverse("api:phone-number-detail", args=[number.public_id]))
    assert response.status_code == 400, response.content
    assert ("Spring campaign" if user == "batch" else "Daily") in response.json()["error"]["message"]
    assert PhoneNumber.objects.filter(pk=number.pk).exists()
    assert not AuditLog.objects.filter(org=org_a, action="phone_number.deleted").exists()


@pytest.mark.parametrize("action", ["dtmf", "transfer"])
@pytest.mark.parametrize("body", [{}, {"digits": "12#", "to": "+14155550123"}])
def test_call_control_on_another_orgs_call_is_a_404_whatever_the_body(action: str, body: dict[str, str], org_a: Any,
                                                                      org_b: Any, api_key_client: Any) -> None:
    call = make_call(org_b, status="in_progress", carrier="twilio", carrier_call_id="CA" + "0" * 32)
    response = api_key_client(org_a, "admin").post(reverse(f"api:call-{action}", args=[call.public_id]), body,
                                                   format="json")
    assert response.status_code == 404, response.content
    assert str(call.public_id) not in response.content.decode()


def test_dashboard_delete_of_a_number_in_use_shows_why(org_a: Any, owner_a: Any, login: Any) -> None:
    from batches.tests.factories import make_scheduled_call

    number = make_scheduled_call(org_a, name="Daily").from_number
    response = login(owner_a).post("/numbers/", {"delete": "1", "number": str(number.public_id)}, follow=True)
    assert response.status_code == 200
    assert "Daily" in response.content.decode()
    assert PhoneNumber.objects.filter(pk=number.pk).exists()
