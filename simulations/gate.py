"""The optional publish gate: an agent whose suite is marked ``required_for_publish`` can
be published only after a run of that whole suite on the draft, exactly as it is now, has
passed. Registered with ``agents.services.register_publish_check`` from
``SimulationsConfig.ready`` (agents is a lower layer and imports nothing from here)."""

from __future__ import annotations

from typing import Any

from agents.models import Agent, config_matches
from simulations.models import RunStatus, Suite, SuiteRun
from simulations.services import SimulationError


def check_publish(agent: Agent, config: dict[str, Any]) -> None:
    for suite in Suite.objects.for_org(agent.org).filter(agent=agent, required_for_publish=True):
        needed = suite.scenarios.count()
        runs = (SuiteRun.objects.for_org(agent.org)
                .filter(suite=suite, agent_version__isnull=True, status=RunStatus.PASSED, total__gte=needed)
                .order_by("-finished_at")[:20])
        if not any(config_matches(run.config, config) for run in runs):
            raise SimulationError(
                f"The test suite {suite.name} must pass on this draft before it is published: "
                "run it on the draft, and publish once it has passed.",
                code="tests_required", status=409)
