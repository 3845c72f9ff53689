"""/api/v1/agents/ and friends: CRUD through services, publish/restore/duplicate, isolation, roles."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import Agent
from agents.tests.factories import make_agent
from orgs.models import AuditLog
from orgs.services import SYSTEM, set_provider_credential

pytestmark = pytest.mark.django_db


def detail(agent, action: str | None = None) -> str:
    name = f"api:agent-{action}" if action else "api:agent-detail"
    return reverse(name, kwargs={"public_id": agent.public_id})


def test_create_edit_publish_restore_through_the_api(org_a, editor_a, api):
    client = api(editor_a)
    response = client.post(reverse("api:agent-list"), {
        "name": "Sales", "provider": "gemini_live", "voice": "Puck", "temperature": 0.5,
        "system_prompt": "Sell to {{customer_name}}.", "builtin_tools": ["end_call", "search_knowledge"],
        "analysis_schema": {"type": "object", "properties": {"interested": {"type": "boolean"}}},
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["published_version"] is None and body["has_unpublished_changes"] is True
    assert body["ready"] is False
    assert [p["code"] for p in body["problems"]] == ["not_published", "credential_missing"]
    assert "Gemini Live credential (gemini)" in body["problems"][1]["message"]
    agent = Agent.objects.get(public_id=body["id"])

    published = client.post(detail(agent, "publish"), {"note": "launch"}, format="json")
    assert published.status_code == 201 and published.json()["number"] == 1
    again = client.post(detail(agent, "publish"), {}, format="json")
    assert again.status_code == 400 and "Nothing to publish" in again.json()["error"]["message"]

    assert client.patch(detail(agent), {"voice": "Kore"}, format="json").status_code == 200
    assert client.post(detail(agent, "publish"), {}, format="json").json()["number"] == 2
    versions = client.get(detail(agent, "versions")).json()
    assert [v["number"] for v in versions] == [2, 1] and versions[1]["config"]["voice"] == "Puck"

    restored = client.post(detail(agent, "restore"), {"version": 1}, format="json")
    assert restored.status_code == 200 and restored.json()["voice"] == "Puck"
    assert restored.json()["published_version"] == 2
    missing = client.post(detail(agent, "restore"), {"version": 9}, format="json")
    assert missing.status_code == 400 and missing.json()["error"]["fields"]["version"] == ["This agent has no version 9."]

    copy = client.post(detail(agent, "duplicate"), {"name": "Sales B"}, format="json")
    assert copy.status_code == 201 and copy.json()["name"] == "Sales B"

    set_provider_credential(org_a, SYSTEM, "gemini", {"api_key": "g-key-123456"})
    assert client.get(detail(agent)).json()["ready"] is True
    audit = set(AuditLog.objects.for_org(org_a).values_list("action", flat=True))
    assert {"agent.created", "agent.published", "agent.updated", "agent.restored", "agent.duplicated"} <= audit


def test_validation_errors_name_the_field(editor_a, api):
    response = api(editor_a).post(reverse("api:agent-list"), {
        "name": "Bad", "provider": "openai_realtime", "voice": "Puck", "system_prompt": "Hi {{ first name }}",
    }, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "OpenAI Realtime has no voice “Puck”" in fields["voice"][0]
    assert "Malformed placeholder" in fields["system_prompt"][0]


def test_preview_reports_missing_variables(org_a, editor_a, api):
    agent = make_agent(org_a, system_prompt="Call {{customer_name}} about {{order_id}}.", first_message="Hi!")
    client = api(editor_a)
    no_version = client.post(detail(agent, "preview"), {"variables": {}}, format="json")
    assert no_version.status_code == 400
    client.post(detail(agent, "publish"), {}, format="json")
    bad = client.post(detail(agent, "preview"), {"variables": {"customer_name": "Ana"}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["system_prompt"] == ["Missing call variable(s): order_id."]
    good = client.post(detail(agent, "preview"), {"variables": {"customer_name": "Ana", "order_id": "7"}},
                       format="json")
    assert good.status_code == 200
    assert good.json()["system_prompt"] == "Call Ana about 7." and good.json()["variables"] == ["customer_name", "order_id"]


def test_roles_and_isolation_for_actions(org_a, owner_a, viewer_a, outsider, api, api_key_client):
    agent = make_agent(org_a)
    anonymous = api()
    assert anonymous.get(reverse("api:agent-list")).status_code == 401
    assert anonymous.post(detail(agent, "publish"), {}, format="json").status_code == 401

    viewer = api(viewer_a)
    assert viewer.get(detail(agent)).status_code == 200
    for action in ("publish", "restore", "duplicate"):
        assert viewer.post(detail(agent, action), {"version": 1}, format="json").status_code == 403, action
    assert viewer.post(reverse("api:agent-list"), {"name": "x"}, format="json").status_code == 403
    preview = viewer.post(detail(agent, "preview"), {"draft": True, "variables": {}}, format="json")
    assert preview.status_code == 200 and preview.json()["system_prompt"] == "You help the caller with orders."

    other = api(outsider)
    assert other.get(reverse("api:agent-list")).json()["results"] == []
    for action in ("publish", "restore", "duplicate", "versions", "preview"):
        method = other.get if action == "versions" else other.post
        assert method(detail(agent, action), {"version": 1}, format="json").status_code == 404, action
    assert other.patch(detail(agent), {"name": "pwned"}, format="json").status_code == 404

    version = api(owner_a).post(detail(agent, "publish"), {}, format="json").json()
    version_url = reverse("api:agent-version-detail", kwargs={"public_id": version["id"]})
    assert other.get(version_url).status_code == 404
    assert api(owner_a).delete(version_url).status_code == 405
    listed = api(owner_a).get(reverse("api:agent-version-list"), {"agent": str(agent.public_id)}).json()
    assert [v["number"] for v in listed["results"]] == [1]

    key_client = api_key_client(org_a, "viewer")
    assert key_client.get(detail(agent)).status_code == 200
    assert key_client.post(detail(agent, "publish"), {}, format="json").status_code == 403
    agent.refresh_from_db()
    assert agent.name == "Support line"


def test_provider_catalog_shows_real_voices_and_credential_state(org_a, viewer_a, api):
    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": "sk-test-abcdef"})
    rows = {row["name"]: row for row in api(viewer_a).get(reverse("api:agent-providers")).json()}
    assert set(rows) == {"openai_realtime", "gemini_live", "hume_evi", "deepgram_agent", "echo"}
    assert "marin" in rows["openai_realtime"]["voices"] and "Kore" in rows["gemini_live"]["voices"]
    assert rows["openai_realtime"]["credential_configured"] is True
    assert rows["gemini_live"]["credential_configured"] is False
    assert rows["echo"]["credential_configured"] is True
    assert rows["hume_evi"]["voices"] == [] and rows["hume_evi"]["voice_pattern"]
    assert rows["hume_evi"]["access_ends"] == "2026-11-13"
    assert api().get(reverse("api:agent-providers")).status_code == 401


def test_a_deepgram_agent_through_the_api_needs_a_deepgram_credential(org_a, editor_a, api):
    client = api(editor_a)
    bad = client.post(reverse("api:agent-list"), {"name": "DG", "provider": "deepgram_agent",
                                                  "voice": "marin"}, format="json")
    assert bad.status_code == 400 and "marin" in str(bad.json()["error"]["fields"]["voice"])
    response = client.post(reverse("api:agent-list"), {
        "name": "DG", "provider": "deepgram_agent", "model": "anthropic/claude-3-5-haiku-latest",
        "voice": "aura-2-luna-en", "temperature": 0.3, "provider_options": {"listen_model": "nova-3"},
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [p["code"] for p in body["problems"]] == ["not_published", "credential_missing"]
    assert "Deepgram Voice Agent credential (deepgram)" in body["problems"][1]["message"]
    agent = Agent.objects.get(public_id=body["id"])
    assert client.post(detail(agent, "publish"), {}, format="json").status_code == 201
    set_provider_credential(org_a, SYSTEM, "deepgram", {"api_key": "dg-key-123456"})
    assert client.get(detail(agent)).json()["ready"] is True
    row = {r["name"]: r for r in client.get(reverse("api:agent-providers")).json()}["deepgram_agent"]
    assert row["credential_configured"] is True and "aura-2-thalia-en" in row["voices"]
    assert row["models"][0] == "open_ai/gpt-4.1-mini"


def test_webhook_number_redaction_is_a_versioned_setting_through_the_api(org_a, editor_a, api):
    client = api(editor_a)
    agent = make_agent(org_a)
    assert client.get(detail(agent)).json()["redact_webhook_numbers"] is False  # default: numbers go out
    client.post(detail(agent, "publish"), {}, format="json")
    changed = client.patch(detail(agent), {"redact_webhook_numbers": True}, format="json")
    assert changed.status_code == 200 and changed.json()["redact_webhook_numbers"] is True
    assert changed.json()["has_unpublished_changes"] is True
    assert client.post(detail(agent, "publish"), {}, format="json").json()["config"]["redact_webhook_numbers"]
    versions = client.get(detail(agent, "versions")).json()
    assert [v["config"]["redact_webhook_numbers"] for v in versions] == [True, False]
    refused = client.patch(detail(agent), {"redact_webhook_numbers": "sometimes"}, format="json")
    assert refused.status_code == 400 and "redact_webhook_numbers" in refused.json()["error"]["fields"]


def test_video_is_a_versioned_setting_only_for_providers_that_take_images(org_a, editor_a, api):
    client = api(editor_a)
    agent = make_agent(org_a, provider="gemini_live", voice="Puck")
    body = client.get(detail(agent)).json()
    assert (body["video_input"], body["video_fps"], body["video_max_edge_px"]) == (False, 1.0, 512)  # off
    client.post(detail(agent, "publish"), {}, format="json")
    changed = client.patch(detail(agent), {"video_input": True, "video_fps": 2, "video_max_edge_px": 768},
                           format="json")
    assert changed.status_code == 200, changed.json()
    config = client.post(detail(agent, "publish"), {}, format="json").json()["config"]
    assert (config["video_input"], config["video_fps"], config["video_max_edge_px"]) == (True, 2.0, 768)
    versions = client.get(detail(agent, "versions")).json()
    assert [v["config"]["video_input"] for v in versions] == [True, False]

    too_fast = client.patch(detail(agent), {"video_fps": 30, "video_max_edge_px": 4000}, format="json")
    assert too_fast.status_code == 400
    fields = too_fast.json()["error"]["fields"]
    assert "between 0.2 and 5" in fields["video_fps"][0]
    assert "between 128 and 1536 pixels" in fields["video_max_edge_px"][0]

    # OpenAI Realtime takes no streamed images: switching the provider with video on is refused, clearly
    refused = client.patch(detail(agent), {"provider": "openai_realtime", "voice": "alloy"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["video_input"] == [
        "OpenAI Realtime takes no images during a call, so it cannot be shown the caller's video; "
        "turn video off or choose Gemini Live."]
    switched = client.patch(detail(agent), {"provider": "openai_realtime", "voice": "alloy", "video_input": False},
                            format="json")
    assert switched.status_code == 200, switched.json()
