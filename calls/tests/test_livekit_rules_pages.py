"""The LiveKit dispatch rules pages: admins list, create, edit and delete rules through the
same service (and checks) as the API; other members read them only; another
organisation's rule is a 404; the LiveKit credential's note links to the page.
(The browser test drives the same pages as a user: test_livekit_rules_browser.py.)"""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
from django.urls import reverse

from calls.models import LiveKitDispatchRule
from calls.tests.factories import make_livekit_rule
from orgs.models import AuditLog, ProviderCredential
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db

RULES = "/livekit/rules/"
NEW = "/livekit/rules/new/"


def _form(agent_: Any, **overrides: str) -> dict[str, str]:
    return {"name": "Support rooms", "agent": str(agent_.public_id), "room_prefix": "support-",
            "participant_kind": "sip", "attributes": '{"department": "support"}', "priority": "10",
            "enabled": "on", **overrides}


def _errors(response: Any) -> dict[str, str]:
    """Field name → the error shown next to it (the form's rendered ``errorlist``)."""
    doc = lxml.html.fromstring(response.content.decode())
    out = {}
    for field in doc.xpath("//form//*[@name]"):
        paragraph = field.getparent()
        listed = paragraph.xpath("./ul[@class='errorlist']") + paragraph.xpath("preceding-sibling::ul[1]")
        if listed:
            out[field.get("name")] = listed[0].text_content().strip()
    return out


def test_an_admin_creates_edits_and_deletes_a_rule(org_a: Any, admin_a: Any, login: Any) -> None:
    from agents.tests.factories import make_agent

    agent = make_agent(org_a, name="Desk")
    client = login(admin_a)
    assert reverse("calls:livekit-rules") == RULES and reverse("calls:livekit-rule-create") == NEW
    empty = client.get(RULES).content.decode()
    assert "No dispatch rules yet" in empty and f'href="{NEW}"' in empty
    assert "/webhooks/livekit/" in empty  # the address LiveKit must call

    created = client.post(NEW, _form(agent))
    assert created.status_code == 302 and created["Location"] == RULES
    rule = LiveKitDispatchRule.objects.for_org(org_a).get()
    assert (rule.name, rule.agent, rule.room_prefix, rule.participant_kind, rule.attributes, rule.priority,
            rule.enabled) == ("Support rooms", agent, "support-", "sip", {"department": "support"}, 10, True)
    listed = client.get(RULES).content.decode()
    assert "Support rooms" in listed and "department=support" in listed and "Phone call (LiveKit SIP)" in listed

    edit = reverse("calls:livekit-rule", args=[rule.public_id])
    page = client.get(edit).content.decode()
    assert 'value="support-"' in page and "Delete rule" in page
    changed = client.post(edit, _form(agent, room_prefix="help-", attributes="", enabled=""))
    assert changed.status_code == 302
    rule.refresh_from_db()
    assert (rule.room_prefix, rule.attributes, rule.enabled) == ("help-", {}, False)

    assert client.post(edit, {"action": "delete"}).status_code == 302
    assert not LiveKitDispatchRule.objects.for_org(org_a).exists()
    assert list(AuditLog.objects.for_org(org_a).filter(action__startswith="livekit_rule.")
                .order_by("id").values_list("action", flat=True)) == [
        "livekit_rule.created", "livekit_rule.updated", "livekit_rule.deleted"]


def test_the_services_checks_are_shown_on_their_fields(org_a: Any, org_b: Any, owner_a: Any, login: Any) -> None:
    from agents.tests.factories import make_agent

    agent = make_agent(org_a, name="Desk")
    foreign = make_agent(org_b, name="Theirs")
    client = login(owner_a)
    for overrides, field, message in (
        ({"room_prefix": "two words"}, "room_prefix", "at most 128 characters, without spaces"),
        ({"attributes": '["support"]'}, "attributes", "must be a JSON object of names to values"),
        ({"attributes": '{"tier": {"gold": 1}}'}, "attributes", "must have a name and a text or number value"),
        ({"name": "   "}, "name", "This field is required"),
        ({"agent": str(foreign.public_id)}, "agent", "Select a valid choice"),
    ):
        refused = client.post(NEW, _form(agent, **overrides))
        assert refused.status_code == 400, overrides
        assert message in _errors(refused).get(field, ""), (field, _errors(refused))
    assert not LiveKitDispatchRule.objects.exists()


def test_other_members_read_only_and_other_orgs_rules_are_404(org_a: Any, org_b: Any, viewer_a: Any,
                                                              editor_a: Any, outsider: Any, login: Any) -> None:
    rule = make_livekit_rule(org_a)
    edit = reverse("calls:livekit-rule", args=[rule.public_id])
    for member in (viewer_a, editor_a):
        client = login(member)
        listed = client.get(RULES).content.decode()
        assert "Support rooms" in listed and f'href="{NEW}"' not in listed
        page = client.get(edit)
        assert page.status_code == 200
        body = page.content.decode()
        assert "Read only" in body and "Delete rule" not in body and "Save rule" not in body
        assert 'name="room_prefix"' in body and "disabled" in body
        assert client.get(NEW).status_code == 403
        assert client.post(NEW, {"name": "x"}).status_code == 403
        assert client.post(edit, {"action": "delete"}).status_code == 403
    assert LiveKitDispatchRule.objects.filter(pk=rule.pk).exists()

    theirs = login(outsider)
    assert theirs.get(edit).status_code == 404
    assert theirs.post(edit, {"action": "delete"}).status_code == 404
    assert "Support rooms" not in theirs.get(RULES).content.decode()


def test_the_livekit_credential_links_to_the_rules(org_a: Any, owner_a: Any, login: Any) -> None:
    from orgs.services import set_provider_credential

    set_provider_credential(org_a, SYSTEM, "livekit",
                            {"url": "wss://lk.example.com", "api_key": "APIkey", "api_secret": "s" * 32})
    assert ProviderCredential.objects.for_org(org_a).filter(provider="livekit").exists()
    page = lxml.html.fromstring(login(owner_a).get(reverse("orgs:credentials")).content.decode())
    (panel,) = page.xpath("//*[@id='provider-livekit']")
    assert panel.xpath(".//a[text()='LiveKit dispatch rules']/@href") == [RULES]
