"""Dashboard pages for custom HTTP tools (plain client; the browser check is below)."""
from __future__ import annotations

import json
from typing import Any, cast

import pytest

from integrations.models import HttpTool, HttpToolGrant
from integrations.testing.tool_endpoint import FakeToolEndpoint
from integrations.tests.factories import make_http_tool

pytestmark = pytest.mark.django_db

LIST = "/integrations/http-tools/"
SCHEMA = {"type": "object", "properties": {"order": {"type": "string", "minLength": 2}}, "required": ["order"]}


def form(**changes: Any) -> dict[str, Any]:
    data = {"name": "lookup_order", "description": "Look up an order", "parameters": json.dumps(SCHEMA),
            "url": "https://tools.example.com/t", "method": "POST", "timeout_s": "5", "filler_text": "One moment.",
            "enabled": "on", "header_name_0": "Authorization", "header_value_0": "Bearer dash-secret"}
    data.update(changes)
    return data


def test_add_shows_the_secret_once_and_never_the_header_values(admin_a: Any, org_a: Any, login: Any) -> None:
    client = login(admin_a)
    added = client.post(LIST, form())
    assert added.status_code == 201, added.content.decode()[:3000]
    tool = HttpTool.objects.for_org(org_a).get()
    page = added.content.decode()
    assert tool.signing_secret in page and "dash-secret" not in page
    assert tool.headers == {"Authorization": "Bearer dash-secret"} and tool.filler_text == "One moment."
    again = client.get(f"{LIST}{tool.public_id}/").content.decode()
    assert tool.signing_secret not in again and "dash-secret" not in again and "Authorization" in again
    # edit: an empty value keeps the stored one; a new row adds one
    saved = client.post(f"{LIST}{tool.public_id}/", form(header_value_0="", header_name_1="X-Api-Key",
                                                         header_value_1="k2", timeout_s="8", action="save"))
    assert saved.status_code == 302, saved.content.decode()[:3000]
    tool.refresh_from_db()
    assert tool.headers == {"Authorization": "Bearer dash-secret", "X-Api-Key": "k2"} and tool.timeout_s == 8


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"parameters": "{oops"}, "parameters", "Not valid JSON"),
    ({"parameters": '{"type": "string"}'}, "parameters", "object schema"),
    ({"name": "has space"}, "name", "letters, digits or underscores"),
    ({"header_name_1": "", "header_value_1": "orphan"}, "header_name_1", "Give this header a name"),
])
def test_bad_input_is_shown_on_the_field(admin_a: Any, login: Any, changes: dict[str, Any], field: str,
                                         words: str) -> None:
    response = login(admin_a).post(LIST, form(**changes))
    assert response.status_code == 400
    assert words in str(response.context["form"].errors[field])
    assert not HttpTool.objects.exists()


def test_test_button_sends_a_signed_sample_and_shows_status(admin_a: Any, org_a: Any, login: Any) -> None:
    with FakeToolEndpoint(secret="htsec_dash") as server:
        endpoint = cast(FakeToolEndpoint, server)
        tool = make_http_tool(org_a, url=f"{endpoint.url}/echo", parameters=SCHEMA, signing_secret="htsec_dash")
        page = login(admin_a).post(f"{LIST}{tool.public_id}/", {"action": "test"}).content.decode()
        (got,) = endpoint.received
    assert got.signature_ok and got.document["arguments"] == {"order": "example"}
    assert 'class="badge ok">HTTP 200<' in page and "shipped" in page


def test_agents_are_granted_and_other_orgs_get_404(admin_a: Any, outsider: Any, org_a: Any, login: Any) -> None:
    from agents.tests.factories import make_agent

    tool = make_http_tool(org_a)
    agent = make_agent(org_a)
    client = login(admin_a)
    assert client.post(f"{LIST}{tool.public_id}/", {"action": "agents", "agents": [str(agent.public_id)]}
                       ).status_code == 302
    assert list(HttpToolGrant.objects.values_list("agent", flat=True)) == [agent.pk]
    other = login(outsider)
    assert other.get(f"{LIST}{tool.public_id}/").status_code == 404
    assert other.post(f"{LIST}{tool.public_id}/", {"action": "delete"}).status_code == 404
    assert str(tool.public_id) not in other.get(LIST).content.decode()


@pytest.fixture
def browser_owner(transactional_db: Any) -> tuple[str, str, Any]:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from orgs.services import create_organization

    password = "Browser-test-pw-55"
    user = get_user_model().objects.create_user("tools@browser.test", "tools@browser.test", password, is_staff=True)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user.email, password, create_organization("Tools Org", user)


def test_a_user_adds_a_tool_copies_the_secret_and_tests_it_at_phone_width(
        browser_owner: Any, live_server: Any, browser: Any) -> None:
    from voiceplatform.browsing import document_overflow, open_page, sign_in

    email, password, _org = browser_owner
    with FakeToolEndpoint() as server:
        endpoint = cast(FakeToolEndpoint, server)
        page, problems = open_page(browser, 390, 844)
        sign_in(page, live_server.url, email, password)
        page.goto(f"{live_server.url}{LIST}")
        page.get_by_label("Name:", exact=True).fill("lookup_order")
        page.get_by_label("Parameters (JSON Schema):").fill(json.dumps(SCHEMA))
        page.get_by_label("Endpoint URL:").fill(f"{endpoint.url}/echo")
        page.get_by_label("Header 1 name").fill("Authorization")
        page.get_by_label("Header 1 value").fill("Bearer browser-secret")
        page.get_by_role("button", name="Add tool").click()
        secret = page.locator("#new-secret").inner_text().strip()
        assert secret.startswith("htsec_") and "browser-secret" not in page.content()
        endpoint.secret = secret  # the receiver now verifies with the secret the user copied
        page.get_by_role("button", name="Test", exact=True).click()
        result = page.locator("#test-result")
        result.wait_for()
        assert result.locator(".badge.ok").inner_text() == "HTTP 200"
        assert "shipped" in result.inner_text()
        assert document_overflow(page) == 0
        problems.assert_none()
        (got,) = endpoint.received
    assert got.signature_ok and got.headers["authorization"] == "Bearer browser-secret"
