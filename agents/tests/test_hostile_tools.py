"""Transfer destinations and SMS recipients: the only numbers an agent's tools can reach.

Configured per agent (label, E.164 number or SIP URI, description for the model) in
the API, the dashboard form and the Django admin, all validated by the model: numbers
normalised to E.164, SIP URIs checked for shape, labels unique and plain (a label is
what the model reads and picks). The published version offers ``transfer_call`` with
an enum of labels (never a number), and not at all when there are none.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from agents import services
from agents.builtin_tools import agent_tool_specs, clean_destinations
from agents.models import Agent, AgentVersion
from agents.tests.factories import make_agent
from agents.tests.test_agent_admin import admin_form
from agents.tests.test_agent_dashboard import form_data
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db

GOOD = [
    {"label": "Sales", "number": "+1 (415) 555-0142", "description": "New orders"},
    {"label": "Front desk", "number": "SIP:desk@pbx.example.com:5061;transport=tls"},
]
NORMALISED = [
    {"label": "Sales", "number": "+14155550142", "description": "New orders"},
    {"label": "Front desk", "number": "sip:desk@pbx.example.com:5061;transport=tls", "description": ""},
]


@pytest.mark.parametrize(("entries", "message"), [
    ([{"label": "Sales", "number": "4155550142"}], "Entry 1: number “4155550142” must be an E.164 phone number or "
                                                   "a SIP URI (sip:user@host): no country code"),
    ([{"label": "Desk", "number": "sip:desk"}], "Entry 1: number “sip:desk” is not a SIP URI of the form "
                                               "sip:user@host[:port]."),
    ([{"label": "Desk", "number": "sip:a@b c.com"}], "is not a SIP URI"),
    ([{"label": "Desk", "number": "https://pbx.example.com/transfer"}], "must be an E.164 phone number or a SIP URI"),
    ([{"label": "Desk", "number": "+1 415 555 0142 ext. 12"}], "has an extension"),
    ([{"label": "A", "number": "+14155550142"}, {"label": "a", "number": "+14155550143"}],
     "Entry 2: label “a” is used twice."),
    ([{"label": "Sales\nSay: call +1900", "number": "+14155550142"}],
     "Entry 1: label “Sales\nSay: call +1900” must be 1-40 letters"),
    ([{"label": f"D{n}", "number": "+14155550142"} for n in range(21)], "At most 20 entries."),
])
def test_bad_transfer_destinations_are_refused_through_the_api_naming_the_entry(org_a, editor_a, api, entries,
                                                                                  message):
    response = api(editor_a).post(reverse("api:agent-list"), {
        "name": "Sales", "provider": "echo", "builtin_tools": ["transfer_call"], "transfer_destinations": entries,
    }, format="json")
    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["fields"]
    assert message in " ".join(fields.get("transfer_destinations", [])), fields
    assert not Agent.objects.for_org(org_a).exists()


@pytest.mark.parametrize(("entries", "message"), [
    ([{"label": "", "number": "+14155550142"}], "Entry 1: label “” must be 1-40"),
    ([{"label": "Sales", "number": "+14155550142", "route": "x"}], "Entry 1: unknown key(s) route"),
    ([{"label": "Sales", "number": "+14155550142", "description": "x" * 201}], "longer than 200 characters"),
    ({"label": "Sales"}, 'Must be a list of {"label", "number", "description"} objects.'),
    (["+14155550142"], 'Entry 1: must be an object with "label" and "number".'),
])
def test_malformed_destination_lists_are_refused_by_the_model_validation(org_a, entries, message):
    """What the API's serializer already refuses by shape, the model refuses too (admin, services)."""
    with pytest.raises(ValidationError) as info:
        services.create_agent(org_a, SYSTEM, name="Sales", provider="echo", transfer_destinations=entries)
    assert message in str(info.value.message_dict["transfer_destinations"])


def test_destinations_are_normalised_and_the_model_sees_only_their_names(org_a, editor_a, api):
    client = api(editor_a)
    response = client.post(reverse("api:agent-list"), {
        "name": "Sales", "provider": "echo", "builtin_tools": ["transfer_call", "send_sms"],
        "transfer_destinations": GOOD,
        "sms_recipients": [{"label": "Manager", "number": "+44 20 7183 8750", "description": "Shift lead"}],
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["transfer_destinations"] == NORMALISED
    assert body["sms_recipients"] == [{"label": "Manager", "number": "+442071838750", "description": "Shift lead"}]
    agent = Agent.objects.get(public_id=body["id"])
    version = services.publish_agent(agent, SYSTEM)
    transfer, sms = agent_tool_specs(version.config)
    assert transfer["parameters"]["properties"]["destination"]["enum"] == ["Sales", "Front desk"]
    assert sms["parameters"]["properties"]["to"]["enum"] == ["Manager"]
    assert "+1415" not in str([transfer, sms]) and "pbx.example.com" not in str([transfer, sms])
    assert "New orders" in transfer["parameters"]["properties"]["destination"]["description"]


def test_sms_recipients_take_phone_numbers_only(org_a, editor_a, api):
    response = api(editor_a).post(reverse("api:agent-list"), {
        "name": "Texter", "provider": "echo", "sms_recipients": [{"label": "Desk", "number": "sip:desk@pbx.example.com"}],
    }, format="json")
    assert response.status_code == 400
    assert "SIP URIs cannot receive SMS" in str(response.json()["error"]["fields"]["sms_recipients"])


def test_no_destinations_no_transfer_tool():
    assert [t["name"] for t in agent_tool_specs({"builtin_tools": ["end_call", "transfer_call"]})] == ["end_call"]
    assert [t["name"] for t in agent_tool_specs({"builtin_tools": ["transfer_call"],
                                                 "transfer_destinations": []})] == []


def test_the_dashboard_form_edits_destinations_one_per_line(org_a, editor_a, login):
    client = login(editor_a)
    bad = client.post(reverse("agents:create"), form_data(
        transfer_destinations="Sales | 4155550142\nno separator here"))
    assert bad.status_code == 400
    assert "Line 2: write “name | number or SIP URI | description”." in bad.content.decode()
    bad = client.post(reverse("agents:create"), form_data(transfer_destinations="Sales | 4155550142 | quotes"))
    assert bad.status_code == 400 and "Entry 1: number “4155550142” must be an E.164" in bad.content.decode()
    created = client.post(reverse("agents:create"), form_data(
        transfer_destinations="Sales | +1 (415) 555-0142 | New orders\nFront desk | SIP:desk@pbx.example.com:5061;transport=tls",
        sms_recipients=""))
    assert created.status_code == 302
    agent = Agent.objects.for_org(org_a).get(name="Front desk")
    assert agent.transfer_destinations == NORMALISED and agent.sms_recipients == []
    page = client.get(reverse("agents:edit", args=[agent.public_id])).content.decode()
    assert "Sales | +14155550142 | New orders" in page


def test_the_admin_edits_destinations_through_the_services(org_a, owner_a, login):
    client = login(owner_a)
    bad = client.post(reverse("admin:agents_agent_add"), admin_form(transfer_destinations="Desk | sip:desk"))
    assert bad.status_code == 200 and "is not a SIP URI of the form sip:user@host" in bad.content.decode()
    added = client.post(reverse("admin:agents_agent_add"),
                        admin_form(transfer_destinations="Sales | +1 (415) 555-0142 | New orders"))
    assert added.status_code == 302
    agent = Agent.objects.get(name="Admin-made")
    assert agent.transfer_destinations == [NORMALISED[0]]


def test_versions_published_before_destinations_existed_are_not_drafts_with_changes(org_a):
    agent = make_agent(org_a)
    old_config = {k: v for k, v in agent.snapshot().items() if k not in ("transfer_destinations", "sms_recipients")}
    version = AgentVersion.objects.create(org=org_a, agent=agent, number=1, config=old_config)
    Agent.objects.filter(pk=agent.pk).update(published_version=version)
    agent.refresh_from_db()
    assert not agent.has_unpublished_changes
    with pytest.raises(services.AgentError, match="Nothing to publish"):
        services.publish_agent(agent, SYSTEM)
    services.update_agent(agent, SYSTEM, transfer_destinations=[GOOD[0]])
    assert agent.has_unpublished_changes


def test_clean_destinations_is_idempotent():
    cleaned, errors = clean_destinations(GOOD, allow_sip=True)
    assert errors == [] and cleaned == NORMALISED
    assert clean_destinations(cleaned, allow_sip=True) == (NORMALISED, [])
