"""Factories for the org-isolation matrix (voiceplatform.testing) and the agent-test tests."""

from __future__ import annotations

from typing import Any

from calls.tests.factories import make_ready_agent
from simulations.models import RunStatus, Scenario, ScenarioRun, Suite, SuiteRun
from voiceplatform.testing import register_factory


@register_factory(Suite)
def make_suite(org: Any, **values: Any) -> Suite:
    values.setdefault("agent", make_ready_agent(org))
    values.setdefault("name", "Smoke tests")
    return Suite.objects.create(org=org, **values)


@register_factory(Scenario)
def make_scenario(org: Any, **values: Any) -> Scenario:
    values.setdefault("suite", make_suite(org))
    values.setdefault("name", "Wants a refund")
    values.setdefault("persona", "Sam, polite but firm; knows the order number 1234.")
    values.setdefault("goal", "Get a refund for order 1234.")
    values.setdefault("checks", [{"type": "no_tool_errors"}])
    values.setdefault("rubric", ["The agent asks for the order number."])
    return Scenario.objects.create(org=org, **values)


@register_factory(SuiteRun)
def make_suite_run(org: Any, **values: Any) -> SuiteRun:
    scenario = make_scenario(org)
    suite = scenario.suite
    values.setdefault("status", RunStatus.PASSED)
    run = SuiteRun.objects.create(org=org, suite=suite, agent=suite.agent, agent_version=suite.agent.published_version,
                                  config=suite.agent.snapshot(), total=1,
                                  passed=1 if values["status"] == RunStatus.PASSED else 0,
                                  failed=1 if values["status"] == RunStatus.FAILED else 0, **values)
    ScenarioRun.objects.create(org=org, suite_run=run, scenario=scenario, scenario_name=scenario.name,
                               spec={"name": scenario.name}, status=values["status"],
                               transcript=[{"role": "agent", "text": "Hello.", "start_ms": 0, "end_ms": 500}],
                               check_results=[{"check": "no tool errors", "type": "no_tool_errors",
                                               "passed": values["status"] == RunStatus.PASSED, "detail": ""}])
    return run


@register_factory(ScenarioRun)
def make_scenario_run(org: Any, **values: Any) -> ScenarioRun:
    return ScenarioRun.objects.get(suite_run=make_suite_run(org, **values))
