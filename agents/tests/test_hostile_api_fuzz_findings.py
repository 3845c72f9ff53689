"""Regressions found by the schema fuzz (voiceplatform/tests/test_hostile_api_fuzz.py):
deleting an agent that a batch campaign or a schedule still uses was a 500
(``ProtectedError``); it is a clear refusal naming what uses it."""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from agents.models import Agent
from orgs.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("user", ["batch", "schedule"])
def test_deleting_an_agent_in_use_is_refused_and_names_the_user(user: str, org_a: Any, api_key_client: Any) -> None:
    from batches.tests.factories import make_batch, make_scheduled_call

    owner = make_batch(org_a, name="Spring campaign") if user == "batch" else make_scheduled_call(org_a, name="Daily")
    agent = owner.agent
    response = api_key_client(org_a, "admin").delete(reverse("api:agent-detail", args=[agent.public_id]))
    assert response.status_code == 400, response.content
    message = response.json()["error"]["message"]
    assert ("batch \u201cSpring campaign\u201d" if user == "batch" else "scheduled call \u201cDaily\u201d") in message
    assert Agent.objects.filter(pk=agent.pk).exists()
    assert not AuditLog.objects.filter(org=org_a, action="agent.deleted").exists()


def test_deleting_an_unused_agent_still_works(org_a: Any, api_key_client: Any) -> None:
    from agents.tests.factories import make_agent

    agent = make_agent(org_a)
    response = api_key_client(org_a, "admin").delete(reverse("api:agent-detail", args=[agent.public_id]))
    assert response.status_code == 204
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert AuditLog.objects.filter(org=org_a, action="agent.deleted").exists()


def test_dashboard_delete_of_an_agent_in_use_shows_why(org_a: Any, owner_a: Any, login: Any) -> None:
    from batches.tests.factories import make_batch

    agent = make_batch(org_a, name="Spring campaign").agent
    response = login(owner_a).post(reverse("agents:delete", args=[agent.public_id]), follow=True)
    assert response.status_code == 200
    assert "Spring campaign" in response.content.decode()
    assert Agent.objects.filter(pk=agent.pk).exists()
