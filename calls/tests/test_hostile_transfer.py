"""Manual transfers (API and dashboard): who may send a live call where.

Policy: anyone who may act on a call (editor and up) transfers it to one of the
destinations configured on the call's agent version, by name. Org admins and owners
(authenticated people, not the model) may also type an E.164 number or SIP URI.
Another organisation's call is a 404 and is never touched. The agent's own tool is
limited to the configured destinations (see test_tool_contracts).
"""

from __future__ import annotations

from typing import Any

import pytest

from calls import services
from calls.carriers.plivo_carrier import PlivoCarrier
from calls.carriers.twilio_carrier import TwilioCarrier
from calls.models import Call, CallEvent
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.factories import make_ready_agent
from orgs.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)

DESTINATIONS = [{"label": "Sales", "number": "+1 415 555 0142", "description": "Orders"},
                {"label": "Front desk", "number": "sip:desk@pbx.example.com"}]


@pytest.fixture
def live_call(twilio_number: Any, owner_a: Any) -> Any:
    def make() -> Call:
        agent = make_ready_agent(twilio_number.org, name=f"Transfers {Call.objects.count()}",
                                 builtin_tools=["transfer_call"], transfer_destinations=DESTINATIONS)
        call = services.place_outbound_call(twilio_number.org, agent, "+14155557777", twilio_number, {},
                                            Actor(user=owner_a))
        Call.objects.filter(pk=call.pk).update(status="in_progress")
        call.refresh_from_db()
        return call

    return make


def url(call: Call) -> str:
    return f"/api/v1/calls/{call.public_id}/transfer/"


def test_an_editor_transfers_only_to_configured_destinations_by_name(live_call: Any, editor_a: Any, api: Any,
                                                                    fake_twilio: Any) -> None:
    call = live_call()
    client = api(editor_a)
    twiml_before = list(fake_twilio.calls[call.carrier_call_id]["twiml"])
    refused = client.post(url(call), {"to": "+14155550123"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["to"] == [
        "“+14155550123” is not one of this agent's transfer destinations (Sales, Front desk)"]
    assert fake_twilio.calls[call.carrier_call_id]["twiml"] == twiml_before
    assert CallEvent.objects.get(call=call, kind="call.transfer_refused").data == {
        "reason": "not a configured transfer destination", "by": "editor@a.test"}

    done = client.post(url(call), {"to": "front DESK"}, format="json")
    assert done.status_code == 200, done.json()
    assert done.json()["transfer_to"] == "sip:desk@pbx.example.com"
    assert "<Sip>sip:desk@pbx.example.com</Sip>" in fake_twilio.calls[call.carrier_call_id]["twiml"][-1]


def test_an_admin_may_also_type_a_number_or_sip_uri_checked_for_shape(live_call: Any, admin_a: Any, api: Any,
                                                                      fake_twilio: Any) -> None:
    client = api(admin_a)
    call = live_call()
    bad = client.post(url(call), {"to": "sip:nobody"}, format="json")
    assert bad.status_code == 400 and "is not a SIP URI" in bad.json()["error"]["fields"]["to"][0]
    national = client.post(url(call), {"to": "020 7183 8750"}, format="json")  # org A's default country: GB
    assert national.status_code == 200 and national.json()["transfer_to"] == "+442071838750"
    assert "<Number>+442071838750</Number>" in fake_twilio.calls[call.carrier_call_id]["twiml"][-1]


def test_another_org_cannot_transfer_a_call(live_call: Any, outsider: Any, api: Any, api_key_client: Any,
                                            org_b: Any, fake_twilio: Any) -> None:
    call = live_call()
    twiml_before = list(fake_twilio.calls[call.carrier_call_id]["twiml"])
    assert api(outsider).post(url(call), {"to": "+14155550123"}, format="json").status_code == 404
    assert api_key_client(org_b, "admin").post(url(call), {"to": "Sales"}, format="json").status_code == 404
    assert fake_twilio.calls[call.carrier_call_id]["twiml"] == twiml_before
    assert Call.objects.get(pk=call.pk).transfer_to == ""


def test_dashboard_transfer_follows_the_same_policy(live_call: Any, editor_a: Any, admin_a: Any, login: Any,
                                                    fake_twilio: Any) -> None:
    call = live_call()
    page = login(editor_a).get(f"/calls/{call.public_id}/").content.decode()
    assert '<option value="Sales">Orders</option>' in page  # the destinations are offered by name
    response = login(editor_a).post(f"/calls/{call.public_id}/", {"action": "transfer", "to": "+14155550123"},
                                    follow=True)
    assert "is not one of this agent&#x27;s transfer destinations" in response.content.decode()
    assert Call.objects.get(pk=call.pk).transfer_to == ""
    login(admin_a).post(f"/calls/{call.public_id}/", {"action": "transfer", "to": "+14155550123"})
    assert Call.objects.get(pk=call.pk).transfer_to == "+14155550123"


def test_both_carriers_dial_sip_destinations_as_sip() -> None:
    assert "<Sip>sip:desk@pbx.example.com</Sip>" in TwilioCarrier.dial_markup("sip:desk@pbx.example.com", "+1")
    assert "<User>sip:desk@pbx.example.com</User>" in PlivoCarrier.dial_markup("sip:desk@pbx.example.com", "1")
    assert "<Number>14155550142</Number>" in PlivoCarrier.dial_markup("+14155550142", "1")
