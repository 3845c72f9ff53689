"""The browser test call one click away: "Talk to this agent" on the agents list and the agent
page (or, when the agent cannot take a call, why), and a web-call form that offers the
agent's own call variables from its published version, defaults as placeholders."""

from __future__ import annotations

from typing import Any

import pytest

from agents.services import update_agent
from agents.tests.factories import make_agent
from calls.models import Call
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.factories import make_ready_agent
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db


def _talk_cell(page: str, agent: Any) -> str:
    """The "Talk to this agent" control of ``agent``'s row, with what is said next to it."""
    row = page.split(f'href="/agents/{agent.public_id}/"', 1)[1].split("</tr>", 1)[0]
    return row.split('<span class="talk">', 1)[1]


def test_each_agent_row_links_to_a_web_call_or_says_why_it_cannot(login: Any, editor_a: Any, org_a: Any) -> None:
    ready = make_ready_agent(org_a, name="Echo desk")
    draft = make_agent(org_a, name="Draft only", provider="echo")
    keyless = make_ready_agent(org_a, name="Needs a key", provider="openai_realtime")
    page = login(editor_a).get("/agents/").content.decode()

    assert f'href="/calls/web/?agent={ready.public_id}">Talk to this agent</a>' in _talk_cell(page, ready)
    cell = _talk_cell(page, draft)
    assert "disabled" in cell and "publish it first" in cell and "/calls/web/" not in cell
    cell = _talk_cell(page, keyless)
    assert "disabled" in cell and 'href="/settings/credentials/">add its provider credential</a>' in cell


def test_viewers_see_the_button_disabled_with_the_role_it_needs(login: Any, viewer_a: Any, org_a: Any) -> None:
    ready = make_ready_agent(org_a, name="Echo desk")
    cell = _talk_cell(login(viewer_a).get("/agents/").content.decode(), ready)
    assert "disabled" in cell and "needs the editor role" in cell


def test_the_agent_page_has_the_button_and_its_reasons(login: Any, editor_a: Any, org_a: Any) -> None:
    ready = make_ready_agent(org_a, name="Echo desk")
    draft = make_agent(org_a, name="Draft only", provider="echo")
    client = login(editor_a)
    assert f'href="/calls/web/?agent={ready.public_id}">Talk to this agent</a>' in \
        client.get(f"/agents/{ready.public_id}/").content.decode()
    page = client.get(f"/agents/{draft.public_id}/").content.decode()
    assert "Cannot take a call yet: publish it first." in page and f"/calls/web/?agent={draft.public_id}" not in page


def test_the_form_offers_the_published_versions_own_variables(login: Any, editor_a: Any, org_a: Any) -> None:
    agent = make_ready_agent(org_a, name="Bakery", system_prompt="Serve {{customer_name|the caller}}.",
                             first_message="Hi {{first_name}}, welcome to {{shop|the bakery}}!",
                             voicemail_message="")
    plain = make_ready_agent(org_a, name="Plain", system_prompt="Be kind.", voicemail_message="")
    # a draft change is not what a call runs: not offered until published
    update_agent(agent, SYSTEM, system_prompt="Serve {{customer_name|the caller}} in {{language_name}}.")
    client = login(editor_a)

    page = client.get(f"/calls/web/?agent={agent.public_id}").content.decode()
    assert f'value="{agent.public_id}" selected' in page
    assert 'name="var_customer_name" value="" placeholder="the caller">' in page
    assert 'name="var_first_name" value="" required>' in page and "(required: no default)" in page
    assert 'name="var_shop" value="" placeholder="the bakery">' in page
    assert "var_language_name" not in page and "var_order_id" not in page

    page = client.get(f"/calls/web/?agent={plain.public_id}").content.decode()
    assert 'name="var_' not in page and "use no call variables" in page  # no hard-coded customer_name


def test_a_refused_start_names_the_missing_variable_and_keeps_the_values(login: Any, editor_a: Any,
                                                                         org_a: Any) -> None:
    agent = make_ready_agent(org_a, first_message="Hi {{first_name}}, about {{order_id}}.")
    response = login(editor_a).post("/calls/web/", {"agent": str(agent.public_id), "var_order_id": "A-17"})
    page = response.content.decode()
    assert response.status_code == 400
    # The refusal is the page's error message (voiceplatform.errors.show_error).
    assert "first_name" in page.split('<li class="msg error">', 1)[1].split("</li>", 1)[0]
    assert 'name="var_order_id" value="A-17"' in page
    assert not Call.objects.filter(direction="web").exists()


def test_an_agent_that_cannot_take_a_call_says_why_instead_of_failing_later(login: Any, editor_a: Any,
                                                                             org_a: Any) -> None:
    keyless = make_ready_agent(org_a, name="Needs a key", provider="openai_realtime")
    draft = make_agent(org_a, name="Draft only", provider="echo")
    client = login(editor_a)
    page = client.get(f"/calls/web/?agent={keyless.public_id}").content.decode()
    problems = page.split('id="web-call-problems"', 1)[1].split("</div>", 1)[0]
    assert "no OpenAI" in problems and 'href="/settings/credentials/">Add the credential</a>' in problems
    assert "<button type=\"submit\" disabled>Start a call from this browser</button>" in page
    page = client.get(f"/calls/web/?agent={draft.public_id}").content.decode()
    assert "no published version" in page and f'href="/agents/{draft.public_id}/">Open the agent</a>' in page
    assert "<button type=\"submit\" disabled>" in page


def test_no_agents_yet_points_to_creating_one(login: Any, editor_a: Any) -> None:
    page = login(editor_a).get("/calls/web/").content.decode()
    assert 'href="/agents/new/">Create an agent</a>' in page and 'name="agent"' not in page
