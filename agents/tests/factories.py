from __future__ import annotations

from typing import Any

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
