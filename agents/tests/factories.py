from __future__ import annotations

from typing import Any

from agents.models import Agent, AgentVersion
from agents.services import create_agent, publish_agent
from orgs.services import SYSTEM
from voiceplatform.testing import register_factory


@register_factory(Agent)
def make_agent(org: Any, **values: Any) -> Agent:
    values.setdefault("name", "Support line")
    values.setdefault("provider", "openai_realtime")
    values.setdefault("system_prompt", "You help {{customer_name|the caller}} with orders.")
    return create_agent(org, SYSTEM, **values)


@register_factory(AgentVersion)
def make_version(org: Any) -> AgentVersion:
    return publish_agent(make_agent(org), SYSTEM, note="factory")
