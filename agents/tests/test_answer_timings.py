"""The answer classification timings are versioned agent settings: the API, the dashboard
form and the admin take them within their bounds and refuse others with a message that
names the setting; a published version carries them (the call's session reads them from
there, see calls/tests/test_answer_timing_settings.py)."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
from django.urls import reverse

from agents.models import ANSWER_TIMINGS, Agent
from agents.tests.factories import make_agent
from agents.tests.test_agent_admin import admin_form
from agents.tests.test_agent_form import submitted, the_form

pytestmark = pytest.mark.django_db


def detail(agent: Agent, action: str | None = None) -> str:
    name = f"api:agent-{action}" if action else "api:agent-detail"
    return reverse(name, kwargs={"public_id": agent.public_id})


def test_api_versions_the_timings_and_refuses_out_of_range_values_by_name(org_a: Any, editor_a: Any,
                                                                          api: Any) -> None:
    client = api(editor_a)
    agent = make_agent(org_a, answer_detection=True)
    body = client.get(detail(agent)).json()
    assert [body[f] for f in ANSWER_TIMINGS] == [8.0, 6.0, 4.0, 20.0]  # the state machine's old constants
    assert client.post(detail(agent, "publish"), {}, format="json").status_code == 201
    changed = client.patch(detail(agent), {"answer_deadline_s": 3.5, "answer_revise_s": 0,
                                           "answer_beep_wait_s": 30, "answer_silence_s": 5}, format="json")
    assert changed.status_code == 200, changed.json()
    config = client.post(detail(agent, "publish"), {}, format="json").json()["config"]
    assert [config[f] for f in ANSWER_TIMINGS] == [5.0, 3.5, 0.0, 30.0]
    versions = client.get(detail(agent, "versions")).json()
    assert [v["config"]["answer_deadline_s"] for v in versions] == [3.5, 6.0]

    refused = client.patch(detail(agent), {"answer_deadline_s": 1, "answer_silence_s": 45,
                                           "answer_revise_s": -1, "answer_beep_wait_s": 61}, format="json")
    assert refused.status_code == 400
    fields = refused.json()["error"]["fields"]
    assert fields["answer_deadline_s"] == [
        "Undecided time before treating the line as a person must be between 2 and 15 seconds, not 1."]
    assert fields["answer_silence_s"] == [
        "Silence before hanging up on an empty line must be between 2 and 30 seconds, not 45."]
    assert fields["answer_revise_s"] == ["Window to take back a person must be between 0 and 10 seconds, not -1."]
    assert fields["answer_beep_wait_s"] == [
        "Longest wait for the voicemail beep must be between 5 and 60 seconds, not 61."]
    agent.refresh_from_db()
    assert agent.answer_deadline_s == 3.5  # nothing of the refused edit was kept


def test_dashboard_form_shows_bounds_and_refuses_a_value_outside_them(org_a: Any, editor_a: Any,
                                                                      login: Any) -> None:
    agent = make_agent(org_a, answer_detection=True)
    client = login(editor_a)
    url = reverse("agents:edit", kwargs={"public_id": agent.public_id})
    doc = lxml.html.fromstring(client.get(url).content.decode())
    (section,) = doc.xpath("//*[@id='section-answering']")
    deadline = section.xpath(".//input[@name='answer_deadline_s']")[0]
    assert (deadline.get("min"), deadline.get("max"), deadline.get("value")) == ("2", "15", "6.0")
    form = submitted(the_form(doc))

    refused = client.post(url, {**form, "answer_beep_wait_s": "90"})
    assert refused.status_code == 400
    assert "Longest wait for the voicemail beep must be between 5 and 60 seconds, not 90." in \
        refused.content.decode()
    saved = client.post(url, {**form, "answer_beep_wait_s": "12.5", "answer_deadline_s": "4"})
    assert saved.status_code == 302
    agent.refresh_from_db()
    assert (agent.answer_beep_wait_s, agent.answer_deadline_s, agent.answer_silence_s) == (12.5, 4.0, 8.0)

    # a form posted without the timings (made before they existed) keeps the agent's values
    old_form = {k: v for k, v in form.items() if k not in ANSWER_TIMINGS}
    assert client.post(url, {**old_form, "name": "Renamed"}).status_code == 302
    agent.refresh_from_db()
    assert (agent.name, agent.answer_beep_wait_s, agent.answer_deadline_s) == ("Renamed", 12.5, 4.0)


def test_admin_edits_the_timings_through_the_service(org_a: Any, owner_a: Any, login: Any) -> None:
    client = login(owner_a)
    agent = make_agent(org_a, provider="gemini_live", voice="Charon")
    change = reverse("admin:agents_agent_change", args=[agent.pk])
    assert client.post(change, admin_form(answer_revise_s="2")).status_code == 302
    agent.refresh_from_db()
    assert (agent.answer_revise_s, agent.answer_deadline_s) == (2.0, 6.0)  # left out: kept
    refused = client.post(change, admin_form(answer_revise_s="11"))
    assert refused.status_code == 200
    assert "Window to take back a person must be between 0 and 10 seconds, not 11." in refused.content.decode()
