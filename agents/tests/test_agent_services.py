"""Agent lifecycle through the services: validation, publish, immutability, restore, duplicate, runtime."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError

from agents import services
from agents.bridges import SessionConfig
from agents.models import Agent, AgentVersion, VersionImmutable
from agents.providers import provider_info
from agents.runtime import AgentNotReady, build_session_config, ensure_ready, readiness_problems
from agents.selectors import diff_configs
from agents.tests.factories import BEFORE_HUME_RETIRED, HUME_VOICE_ID, make_agent, make_legacy_hume_agent
from agents.variables import MissingVariable
from orgs.credentials import MissingCredential
from orgs.models import AuditLog
from orgs.services import SYSTEM, set_provider_credential

pytestmark = pytest.mark.django_db


def actions(org) -> list[str]:
    return list(AuditLog.objects.for_org(org).order_by("created_at", "id").values_list("action", flat=True))


def test_create_validates_against_the_providers_real_voices_and_models(org_a):
    with pytest.raises(ValidationError) as info:
        services.create_agent(org_a, SYSTEM, name="x", provider="openai_realtime", voice="Kore",
                              model="gpt-5-turbo-voice", temperature=0.7, vad_threshold=3,
                              builtin_tools=["end_call", "launch_rocket"], system_prompt="Hi {{name")
    errors = info.value.message_dict
    assert "no voice “Kore”" in errors["voice"][0] and "marin" in errors["voice"][0]
    assert "no model" in errors["model"][0]
    assert "does not take a temperature" in errors["temperature"][0]
    assert "between 0 and 1" in errors["vad_threshold"][0]
    assert "launch_rocket" in errors["builtin_tools"][0]
    assert "Malformed placeholder near “Hi {{name”" in errors["system_prompt"][0]
    gemini = services.create_agent(org_a, SYSTEM, name="g", provider="gemini_live", voice="Kore", temperature=0.7)
    assert gemini.pk and not Agent.objects.filter(name="x").exists()
    with pytest.raises(ValidationError, match="Not an agent setting"):
        services.create_agent(org_a, SYSTEM, name="y", published_version=None)


def test_publish_restore_and_immutability(org_a):
    agent = make_agent(org_a, voice="marin")
    assert agent.has_unpublished_changes
    v1 = services.publish_agent(agent, SYSTEM, note="first")
    assert (v1.number, agent.published_version, agent.has_unpublished_changes) == (1, v1, False)
    with pytest.raises(services.AgentError, match="same as version 1"):
        services.publish_agent(agent, SYSTEM)

    services.update_agent(agent, SYSTEM, voice="cedar", system_prompt="New prompt")
    agent.refresh_from_db()
    assert agent.published_version == v1 and agent.has_unpublished_changes  # calls still run v1
    v2 = services.publish_agent(agent, SYSTEM)
    assert v2.number == 2 and v2.config["voice"] == "cedar"

    v1.note = "tampered"
    with pytest.raises(VersionImmutable):
        v1.save()
    assert AgentVersion.objects.get(pk=v1.pk).note == "first"

    services.restore_version(agent, v1, SYSTEM)
    agent.refresh_from_db()
    assert agent.voice == "marin" and agent.system_prompt == v1.config["system_prompt"]
    assert agent.published_version == v2  # restoring touches only the draft
    services.restore_version(agent, v1, SYSTEM, publish=True)
    agent.refresh_from_db()
    assert agent.published_version.number == 3 and agent.published_version.config == v1.config

    diff = {d.field: d for d in diff_configs(v2.config, v1.config)}
    assert set(diff) == {"voice", "system_prompt"} and diff["voice"].new == "marin"
    assert actions(org_a) == ["agent.created", "agent.published", "agent.updated", "agent.published",
                              "agent.restored", "agent.restored", "agent.published"]
    updated = AuditLog.objects.for_org(org_a).get(action="agent.updated")
    assert updated.changes == {"voice": ["marin", "cedar"], "system_prompt": "changed"}


def test_restore_rejects_another_agents_version(org_a):
    a, b = make_agent(org_a), make_agent(org_a, name="Other")
    version = services.publish_agent(b, SYSTEM)
    with pytest.raises(services.AgentError, match="another agent"):
        services.restore_version(a, version, SYSTEM)


def test_duplicate_copies_the_draft_without_versions(org_a):
    agent = make_agent(org_a, builtin_tools=["end_call"])
    services.publish_agent(agent, SYSTEM)
    copy = services.duplicate_agent(agent, SYSTEM)
    assert copy.name == "Copy of Support line" and copy.published_version is None
    assert {k: v for k, v in copy.snapshot().items() if k != "name"} == \
           {k: v for k, v in agent.snapshot().items() if k != "name"}
    assert AuditLog.objects.for_org(org_a).get(action="agent.duplicated").changes == {"source": str(agent.public_id)}


def test_runtime_config_renders_variables_and_needs_credentials(org_a):
    agent = make_agent(org_a, system_prompt="Help {{customer_name}} with order {{order_id}}.",
                       first_message="Hi {{customer_name|there}}!", builtin_tools=["end_call", "transfer_call"],
                       transfer_destinations=[{"label": "Billing", "number": "+1 415 555 0100"}])
    assert [(p.code, p.message) for p in readiness_problems(agent)] == [
        ("not_published", "The agent has no published version; publish it first."),
        ("credential_missing", "The organisation has no OpenAI Realtime credential (openai); "
                               "add it under Settings → Provider credentials."),
    ]
    with pytest.raises(AgentNotReady):
        ensure_ready(agent)
    version = services.publish_agent(agent, SYSTEM)
    with pytest.raises(MissingVariable) as info:
        build_session_config(version, {"customer_name": "Ana"})
    assert info.value.names == ["order_id"]
    with pytest.raises(MissingCredential):
        build_session_config(version, {"customer_name": "Ana", "order_id": "7"})

    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": "sk-live-123456"})
    agent.refresh_from_db()
    assert ensure_ready(agent) == version
    config = build_session_config(version, {"customer_name": "Ana", "order_id": "7"})
    assert isinstance(config, SessionConfig)
    assert config.instructions == "Help Ana with order 7." and config.first_message == "Hi Ana!"
    assert config.credentials["api_key"] == "sk-live-123456"
    assert config.model == "gpt-realtime" and config.voice == "marin"
    assert [t["name"] for t in config.tools] == ["end_call", "transfer_call"]
    # the model picks a configured destination by name; the number never reaches it
    assert config.tools[1]["parameters"]["properties"]["destination"]["enum"] == ["Billing"]
    assert "+14155550100" not in str(config.tools)


def test_echo_needs_no_credential(org_a):
    agent = make_agent(org_a, provider="echo", system_prompt="")
    version = services.publish_agent(agent, SYSTEM)
    assert readiness_problems(agent) == []
    assert build_session_config(version, {}).credentials == {}


def test_hume_voices_are_ids_and_its_retirement_is_reported(org_a):
    # Before the retirement Hume agents were validated like any other (voices are ids).
    with time_machine.travel(BEFORE_HUME_RETIRED, tick=False):
        with pytest.raises(ValidationError) as info:
            services.create_agent(org_a, SYSTEM, name="h", provider="hume_evi", voice="KORA", model="evi-3")
    errors = info.value.message_dict
    assert "voice id (a UUID" in errors["voice"][0]
    assert "set in its EVI configuration" in errors["model"][0]
    agent = make_legacy_hume_agent(org_a)
    set_provider_credential(org_a, SYSTEM, "hume", {"api_key": "hume-key-123456"})
    info_ = provider_info("hume_evi")
    assert not info_.retired(datetime.date(2026, 11, 12)) and info_.retired(datetime.date(2026, 11, 13))
    with time_machine.travel(BEFORE_HUME_RETIRED, tick=False):
        assert readiness_problems(agent) == []
    with time_machine.travel(datetime.datetime(2026, 11, 13, 0, 0, 1, tzinfo=datetime.UTC), tick=False):
        assert [p.code for p in readiness_problems(agent)] == ["provider_retired"]
        with pytest.raises(AgentNotReady, match="Hume EVI API access ended on 2026-11-13"):
            ensure_ready(agent)
    config = build_session_config(agent.published_version, {})
    assert config.model is None and config.voice == HUME_VOICE_ID
    assert config.provider_options == {"config_id": "cfg-1"}


def test_knowledge_bases_and_mcp_servers_must_belong_to_the_org(org_a, org_b):
    from knowledge.models import KnowledgeBase

    mine = KnowledgeBase.objects.create(org=org_a, name="FAQ")
    theirs = KnowledgeBase.objects.create(org=org_b, name="Secret")
    with pytest.raises(ValidationError) as info:
        services.create_agent(org_a, SYSTEM, name="kb", knowledge_base_ids=[str(mine.public_id), str(theirs.public_id)],
                              mcp_server_ids=["not-an-id"])
    errors = info.value.message_dict
    assert errors["knowledge_base_ids"] == [f"No such knowledge base in this organisation: {theirs.public_id}."]
    assert "not-an-id" in errors["mcp_server_ids"][0]
    agent = services.create_agent(org_a, SYSTEM, name="kb", knowledge_base_ids=[str(mine.public_id)])
    with pytest.raises(ValidationError):
        services.update_agent(agent, SYSTEM, knowledge_base_ids=[str(theirs.public_id)])
