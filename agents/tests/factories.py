from __future__ import annotations

import datetime
from typing import Any

import time_machine

from agents.experiments.services import ArmSpec, create_experiment
from agents.models import Agent, AgentVersion, Experiment, ExperimentArm
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


#: A moment before Hume EVI's API access ended (2026-11-13), when Hume agents could still be made.
BEFORE_HUME_RETIRED = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
HUME_VOICE_ID = "5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c"


def make_legacy_hume_agent(org: Any, *, publish: bool = True, **values: Any) -> Agent:
    """A Hume EVI agent as one made (and published) before Hume was retired: no agent can
    choose Hume any more, but agents made earlier still exist and must be shown as retired."""
    values.setdefault("name", "Hume line")
    values.setdefault("voice", HUME_VOICE_ID)
    values.setdefault("provider_options", {"config_id": "cfg-1"})
    with time_machine.travel(BEFORE_HUME_RETIRED, tick=False):
        agent = make_agent(org, provider="hume_evi", **values)
        if publish:
            publish_agent(agent, SYSTEM, note="before the retirement")
    agent.refresh_from_db()
    return agent
@register_factory(Experiment)
def make_experiment(org: Any) -> Experiment:
    agent = make_agent(org)
    publish_agent(agent, SYSTEM, note="A")
    agent.first_message = "Hello there!"
    agent.save()
    publish_agent(agent, SYSTEM, note="B")
    return create_experiment(agent, SYSTEM, name="Greeting test", arms=[ArmSpec(1, 1), ArmSpec(2, 1)])


@register_factory(ExperimentArm)
def make_experiment_arm(org: Any) -> ExperimentArm:
    return make_experiment(org).arms.get(label="B")
