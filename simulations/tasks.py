"""Agent-test tasks: thin, by id, in the org's scope (DESIGN.md convention 4)."""

from __future__ import annotations

from celery import shared_task

from simulations.models import ScenarioRun, SuiteRun
from simulations.runner import run_scenario
from simulations.services import claim_next, refresh_counts
from voiceplatform.tasks import OrgTask

# A scenario runs in real time up to its limit (Scenario.max_seconds, at most 1800 s), then
# the judge: the task's limits leave room for both.
SCENARIO_SOFT_LIMIT_S = 1900
SCENARIO_HARD_LIMIT_S = 1960


@shared_task(base=OrgTask, bind=True, name="simulations.dispatch_suite_run", acks_late=True)
def dispatch_suite_run_task(self: OrgTask, org_public_id: str, suite_run_public_id: str) -> int:
    """Start as many queued scenarios as the concurrency allows; finish the run if none is left."""
    run = SuiteRun.objects.for_org(self.org).filter(public_id=suite_run_public_id).first()
    if run is None:
        return 0
    ids = claim_next(run)
    for pk in ids:
        public_id = ScenarioRun.objects.values_list("public_id", flat=True).get(pk=pk)
        run_scenario_task.delay(org_public_id, str(public_id))
    if not ids:
        refresh_counts(run)
    return len(ids)


@shared_task(base=OrgTask, bind=True, name="simulations.run_scenario", acks_late=True,
             soft_time_limit=SCENARIO_SOFT_LIMIT_S, time_limit=SCENARIO_HARD_LIMIT_S)
def run_scenario_task(self: OrgTask, org_public_id: str, scenario_run_public_id: str) -> str | None:
    scenario_run = ScenarioRun.objects.for_org(self.org).filter(public_id=scenario_run_public_id).first()
    if scenario_run is None:
        return None
    done = run_scenario(scenario_run.pk)
    refresh_counts(scenario_run.suite_run)
    dispatch_suite_run_task.delay(org_public_id, str(scenario_run.suite_run.public_id))
    return done.status if done is not None else None
