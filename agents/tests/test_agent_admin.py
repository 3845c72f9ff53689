"""The Django admin edits agents through the services (validated, audited) and never edits versions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import Agent, AgentVersion
from agents.tests.factories import make_agent
from orgs.models import AuditLog

pytestmark = pytest.mark.django_db


def admin_form(**overrides):
    data = {
        "name": "Admin-made", "provider": "gemini_live", "model": "", "voice": "Charon", "language": "en-GB",
        "system_prompt": "Hi", "first_message": "", "speaks_first": "caller", "temperature": "0.3",
        "max_call_duration_s": "300", "silence_timeout_s": "20", "allow_barge_in": "on", "vad_threshold": "0.4",
        "min_speech_ms": "200", "voicemail_message": "", "voicemail_action": "leave_message", "builtin_tools": '["end_call"]', "mcp_server_ids": "[]",
        "knowledge_base_ids": "[]", "analysis_summary": "on", "analysis_schema": "{}", "success_criteria": "",
        "webhook_events": "[]", "provider_options": "{}",
    }
    data.update(overrides)
    return data


def test_admin_add_change_and_publish_go_through_services(org_a, owner_a, login):
    client = login(owner_a)
    bad = client.post(reverse("admin:agents_agent_add"), admin_form(voice="marin"))
    assert bad.status_code == 200 and "Gemini Live has no voice “marin”" in bad.content.decode()

    added = client.post(reverse("admin:agents_agent_add"), admin_form())
    assert added.status_code == 302
    agent = Agent.objects.get(name="Admin-made")
    assert agent.org == org_a and agent.builtin_tools == ["end_call"]

    changed = client.post(reverse("admin:agents_agent_change", args=[agent.pk]), admin_form(voice="Puck"))
    assert changed.status_code == 302
    entry = AuditLog.objects.for_org(org_a).get(action="agent.updated")
    assert entry.changes == {"voice": ["Charon", "Puck"]} and entry.actor_label == owner_a.email

    client.post(reverse("admin:agents_agent_changelist"),
                {"action": "publish_selected", "_selected_action": [agent.pk]})
    agent.refresh_from_db()
    assert agent.published_version.number == 1 and agent.published_version.published_by == owner_a.email
    assert AuditLog.objects.for_org(org_a).filter(action="agent.created").count() == 1

    # the privacy choice for webhook numbers is on the admin form too, saved through the service
    client.post(reverse("admin:agents_agent_change", args=[agent.pk]),
                admin_form(voice="Puck", redact_webhook_numbers="on"))
    agent.refresh_from_db()
    assert agent.redact_webhook_numbers is True and agent.has_unpublished_changes
    assert AuditLog.objects.for_org(org_a).filter(action="agent.updated").latest("id").changes == {
        "redact_webhook_numbers": [False, True]}

    # video too (the form above leaves its numbers out: they keep their values); validated by the service
    client.post(reverse("admin:agents_agent_change", args=[agent.pk]),
                admin_form(voice="Puck", redact_webhook_numbers="on", video_input="on", video_fps="0.5"))
    agent.refresh_from_db()
    assert (agent.video_input, agent.video_fps, agent.video_max_edge_px) == (True, 0.5, 512)
    too_big = client.post(reverse("admin:agents_agent_change", args=[agent.pk]),
                          admin_form(voice="Puck", video_input="on", video_max_edge_px="4096"))
    assert too_big.status_code == 200 and "between 128 and 1536 pixels" in too_big.content.decode()


def test_versions_are_view_only_in_admin(org_a, owner_a, login):
    from agents.services import publish_agent
    from orgs.services import SYSTEM

    version = publish_agent(make_agent(org_a), SYSTEM)
    client = login(owner_a)
    url = reverse("admin:agents_agentversion_change", args=[version.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"note": "changed"}).status_code == 403
    assert client.get(reverse("admin:agents_agentversion_add")).status_code == 403
    assert AgentVersion.objects.get(pk=version.pk).note == ""


def test_admin_refuses_a_retired_provider_for_a_new_agent(org_a, owner_a, login):
    from agents.tests.factories import HUME_VOICE_ID

    refused = login(owner_a).post(reverse("admin:agents_agent_add"), admin_form(
        provider="hume_evi", voice=HUME_VOICE_ID, temperature="", provider_options='{"config_id": "c"}'))
    assert refused.status_code == 200
    assert "Hume EVI API access ended on 2026-11-13" in refused.content.decode()
    assert not Agent.objects.filter(name="Admin-made").exists()
