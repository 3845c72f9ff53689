"""``AgentSettings``: an agent's configuration parsed once, with one default per key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.db import models

from agents.agent_settings import DEFAULTS, AgentSettings
from agents.models import CONFIG_FIELDS, Agent
from agents.services import publish_agent
from agents.tests.factories import make_agent
from orgs.services import SYSTEM


def test_it_has_exactly_the_fields_a_version_freezes() -> None:
    assert {spec.name for spec in dataclasses.fields(AgentSettings)} == set(CONFIG_FIELDS)


def _draft_default(name: str) -> Any:
    field = Agent._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field.get_default()


def test_each_default_is_the_agent_forms_default() -> None:
    """One default per key: the draft's (what the agent form shows a new agent with)."""
    drafted = {name: _draft_default(name) for name in CONFIG_FIELDS}
    drafted.pop("webhook_events")  # absent from a version: the agent's current choice (None)
    assert AgentSettings.parse(drafted) == DEFAULTS
    assert DEFAULTS.max_call_duration_s == _draft_default("max_call_duration_s") == 600
    assert DEFAULTS.min_speech_ms == _draft_default("min_speech_ms") == 250


def test_missing_and_null_keys_read_as_the_default() -> None:
    parsed = AgentSettings.parse({"provider": "echo", "max_call_duration_s": None, "unknown_key": 1})
    assert parsed.provider == "echo"
    assert parsed.max_call_duration_s == 600 and parsed.silence_timeout_s == 30 and parsed.min_speech_ms == 250
    assert parsed.allow_barge_in is True and parsed.analysis_summary is True and parsed.keep_keypad_digits is False
    assert parsed.webhook_events is None  # the version does not say
    assert AgentSettings.parse({"webhook_events": []}).webhook_events == ()
    assert AgentSettings.parse(None) == DEFAULTS


def test_it_is_frozen_and_its_mappings_read_only() -> None:
    parsed = AgentSettings.parse({"analysis_schema": {"type": "object", "properties": {}},
                                  "provider_options": {"config_id": "x"}, "builtin_tools": ["end_call"]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.max_call_duration_s = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        parsed.provider_options["config_id"] = "y"  # type: ignore[index]
    assert parsed.builtin_tools == ("end_call",) and dict(parsed.analysis_schema)["type"] == "object"


def test_a_published_version_is_parsed_once_with_the_agents_values(org_a: Any) -> None:
    agent = make_agent(org_a, provider="echo", max_call_duration_s=300, silence_timeout_s=12, min_speech_ms=80,
                       vad_threshold=0.7, allow_barge_in=False, keep_keypad_digits=True,
                       builtin_tools=["end_call"], webhook_events=["call.ended"])
    version = publish_agent(agent, SYSTEM, note="t")
    settings = version.settings
    assert settings is version.settings  # parsed once per loaded version
    assert (settings.provider, settings.max_call_duration_s, settings.silence_timeout_s) == ("echo", 300, 12)
    assert (settings.min_speech_ms, settings.vad_threshold, settings.allow_barge_in) == (80, 0.7, False)
    assert settings.keep_keypad_digits is True and settings.builtin_tools == ("end_call",)
    assert settings.webhook_events == ("call.ended",)
