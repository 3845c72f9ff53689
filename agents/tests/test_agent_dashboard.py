"""Dashboard pages: list/create/edit/publish/versions/restore, validation messages, isolation, roles."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import Agent
from agents.tests.factories import make_agent
from orgs.services import SYSTEM, set_provider_credential

pytestmark = pytest.mark.django_db


def form_data(**overrides):
    data = {
        "name": "Front desk", "provider": "openai_realtime", "model": "", "voice": "coral", "language": "en-US",
        "system_prompt": "Greet {{customer_name|the caller}}.", "first_message": "Hello!", "speaks_first": "agent",
        "temperature": "", "max_call_duration_s": "600", "silence_timeout_s": "30", "allow_barge_in": "on",
        "vad_threshold": "0.5", "min_speech_ms": "250", "voicemail_message": "", "voicemail_action": "leave_message", "builtin_tools": ["end_call"],
        "analysis_summary": "on", "analysis_schema": "", "success_criteria": "", "webhook_events": ["call.ended"],
        "provider_options": "",
    }
    data.update(overrides)
    return data


def test_create_edit_publish_and_history(org_a, editor_a, login):
    client = login(editor_a)
    bad = client.post(reverse("agents:create"), form_data(voice="Kore", vad_threshold="7", language="English"))
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "OpenAI Realtime has no voice “Kore”" in page and "between 0 and 1" in page
    assert "not a BCP-47 language tag" in page

    created = client.post(reverse("agents:create"), form_data())
    assert created.status_code == 302
    agent = Agent.objects.for_org(org_a).get(name="Front desk")
    assert agent.builtin_tools == ["end_call"] and agent.webhook_events == ["call.ended"]

    edit = client.get(reverse("agents:edit", args=[agent.public_id])).content.decode()
    assert "Add your OpenAI Realtime key" in edit and "customer_name" in edit

    client.post(reverse("agents:publish", args=[agent.public_id]), {"note": "go live"})
    client.post(reverse("agents:edit", args=[agent.public_id]), form_data(voice="sage", system_prompt="Be brief."))
    agent.refresh_from_db()
    assert agent.voice == "sage" and agent.published_version.number == 1
    client.post(reverse("agents:publish", args=[agent.public_id]), {})

    history = client.get(reverse("agents:versions", args=[agent.public_id])).content.decode()
    assert "v2" in history and "go live" in history
    assert "<td>coral</td><td>sage</td>" in history.replace("\n", "").replace("    ", "")

    restored = client.post(reverse("agents:restore", args=[agent.public_id, 1]))
    assert restored.status_code == 302
    agent.refresh_from_db()
    assert agent.voice == "coral" and agent.published_version.number == 2

    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": "sk-test-999999"})
    listing = client.get(reverse("agents:list")).content.decode()
    assert "Front desk" in listing and "unpublished changes" in listing and "credential missing" not in listing


def test_list_flags_missing_credentials(org_a, viewer_a, login):
    make_agent(org_a, name="Gemini line", provider="gemini_live", voice="Kore")
    page = login(viewer_a).get(reverse("agents:list")).content.decode()
    assert "credential missing" in page and "Gemini Live" in page
    assert "New agent" not in page  # viewers cannot create


def test_isolation_and_roles(org_a, viewer_a, outsider, login, client):
    agent = make_agent(org_a)
    pages = [reverse("agents:edit", args=[agent.public_id]), reverse("agents:versions", args=[agent.public_id])]
    posts = [reverse(f"agents:{name}", args=[agent.public_id]) for name in ("publish", "duplicate", "delete")]

    for url in [reverse("agents:list"), *pages]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url

    other = login(outsider)
    for url in pages:
        assert other.get(url).status_code == 404, url
    for url in posts:
        assert other.post(url).status_code == 404, url
    assert agent.name not in other.get(reverse("agents:list")).content.decode()

    viewer = login(viewer_a)
    page = viewer.get(pages[0]).content.decode()
    assert "editing needs the editor role" in page and "Publish draft" not in page
    for url in [*posts, pages[0], reverse("agents:create")]:
        assert viewer.post(url, form_data()).status_code == 403, url
    assert Agent.objects.for_org(org_a).count() == 1 and Agent.objects.get(pk=agent.pk).published_version is None
