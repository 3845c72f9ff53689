"""``manage.py run_agent_tests <agent> [--version N] [--suite NAME] [--junit FILE] [--org SLUG]``:
run an agent's test suites (all, or the one named) here and now, against a published version
or the draft, print each scenario's result, write JUnit XML, and exit non-zero unless every
scenario passed. For CI: the same runs, checks and judge as the dashboard's, stored alike."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.models import Agent
from orgs.services import SYSTEM
from simulations.junit import junit_xml
from simulations.models import RunStatus, ScenarioRun, Suite
from simulations.services import run_in_process, start_suite_run
from voiceplatform.errors import ServiceError


def _agent(ref: str, org_slug: str | None) -> Agent:
    agents = Agent.objects.select_related("org")
    if org_slug:
        agents = agents.filter(org__slug=org_slug)
    try:
        found = list(agents.filter(public_id=uuid.UUID(ref)))
    except ValueError:
        found = list(agents.filter(name=ref))
    if not found:
        raise CommandError(f"no agent {ref!r}{f' in {org_slug}' if org_slug else ''}")
    if len(found) > 1:
        raise CommandError(f"{len(found)} agents are named {ref!r}: give its id, or --org with the organisation's slug")
    return found[0]


class Command(BaseCommand):
    help = "Run an agent's test suites against simulated callers; exits 1 unless every scenario passed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent", help="The agent's id, or its name.")
        # --version is the agent's version here, not Django's "print the version and exit"
        parser.conflict_handler = parser._optionals.conflict_handler = "resolve"
        parser.add_argument("--version", type=int, help="A published version number (default: the draft).")
        parser.add_argument("--suite", help="Only the suite with this name.")
        parser.add_argument("--junit", help="Write JUnit XML to this file.")
        parser.add_argument("--org", help="The organisation's slug (when agent names repeat across orgs).")

    def handle(self, *args: Any, **options: Any) -> None:
        agent = _agent(options["agent"], options["org"])
        suites = Suite.objects.for_org(agent.org).filter(agent=agent).order_by("name")
        if options["suite"]:
            suites = suites.filter(name=options["suite"])
        if not suites:
            named = f" named {options['suite']!r}" if options["suite"] else ""
            raise CommandError(f"{agent.name} has no test suite{named}")
        runs = []
        for suite in suites:
            try:
                run = start_suite_run(suite, SYSTEM, version_number=options["version"], dispatch=False)
            except ServiceError as exc:
                raise CommandError(f"{suite.name}: {exc.message}") from exc
            estimate = f"~${run.estimated_cost} at most" if run.estimated_cost is not None else "cost unknown"
            self.stdout.write(f"{suite.name} on {run.version_label}: {run.total} scenario(s), {estimate}")
            run = run_in_process(run)
            for case in ScenarioRun.objects.filter(suite_run=run).order_by("scenario_name"):
                self.stdout.write(f"  {case.status.upper():7} {case.scenario_name}"
                                  + (f" — {case.error}" if case.error else ""))
            self.stdout.write(f"  {run.passed}/{run.total} passed, cost ${run.cost if run.cost is not None else '?'}")
            runs.append(run)
        if options["junit"]:
            Path(options["junit"]).write_bytes(junit_xml(runs))
        if any(run.status != RunStatus.PASSED for run in runs):
            raise SystemExit(1)
