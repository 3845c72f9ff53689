"""Agent tests: suites and scenarios (create, update, YAML), runs (start, dispatch, finish,
rerun), and comparing two runs.

A suite run is dispatched like a campaign: ``dispatch_suite_run`` claims queued scenario
runs up to the suite's concurrency (``select_for_update(skip_locked=True)``, so two
dispatchers never start the same one) and queues one Celery task per claimed run; each
finished run dispatches again, and the last one finishes the suite run (counts, status,
cost). Progress is the counts on the suite run, read by the live page and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from agents.models import Agent, AgentVersion
from agents.providers import provider_info
from agents.runtime import MissingCredential, MissingVariable, build_session_config
from orgs.models import Organization
from orgs.services import Actor, record_audit
from simulations.checks import validate_checks
from simulations.costs import estimate_scenarios
from simulations.models import FINAL, RunStatus, Scenario, ScenarioRun, Suite, SuiteRun
from voiceplatform.errors import ServiceError
from voiceplatform.tasks import enqueue_on_commit


class SimulationError(ServiceError):
    """A refused agent-test request (a scenario's field, an unknown version, a gate)."""

    code = "simulation_invalid"


#: providers whose bridge answers in text (``output_modality: text``): text mode needs them on both sides
TEXT_MODE_PROVIDERS = frozenset({"openai_realtime", "gemini_live"})

SCENARIO_FIELDS = ("name", "persona", "goal", "opening_line", "variables", "caller_provider", "mode", "max_turns",
                   "max_seconds", "checks", "rubric", "tool_stubs")


# ------------------------------------------------------------------ scenarios


def clean_scenario_values(values: dict[str, Any]) -> dict[str, Any]:
    """Check the JSON fields a form or an API body gives; a problem names its field."""
    if "checks" in values:
        try:
            values["checks"] = validate_checks(values["checks"])
        except ValueError as exc:
            raise SimulationError(str(exc), field="checks") from exc
    rubric = values.get("rubric")
    if rubric is not None and (not isinstance(rubric, list)
                               or not all(isinstance(r, str) and r.strip() for r in rubric)):
        raise SimulationError("the rubric must be a list of criteria, each a sentence", field="rubric")
    for name in ("variables", "tool_stubs"):
        if name in values and not isinstance(values[name], dict):
            raise SimulationError(f"{name.replace('_', ' ')} must be an object of names to values", field=name)
    if values.get("mode") == "text":
        caller = values.get("caller_provider", "openai_realtime")
        if caller not in TEXT_MODE_PROVIDERS:
            raise SimulationError(f"text mode needs OpenAI Realtime or Gemini Live for the caller, not {caller}",
                                  field="caller_provider")
        audio = [c["type"] for c in values.get("checks") or [] if c.get("type") == "first_audio_within"]
        if audio:
            raise SimulationError("first_audio_within measures audio: it has no meaning in text mode",
                                  field="checks")
    stubs = values.get("tool_stubs") or {}
    acting = sorted(set(stubs) & {"end_call", "transfer_call", "send_dtmf"})
    if acting:
        raise SimulationError(f"{', '.join(acting)} act on the call itself and cannot be stubbed", field="tool_stubs")
    return values


def save_scenario(scenario: Scenario, actor: Actor) -> Scenario:
    """Validate and save a scenario (new or changed)."""
    clean_scenario_values({f: getattr(scenario, f) for f in SCENARIO_FIELDS})
    scenario.full_clean(exclude=["org", "suite"])
    scenario.save()
    record_audit(scenario.org, actor, "simulation.scenario_saved", scenario, {"suite": str(scenario.suite.public_id)})
    return scenario


def create_suite(org: Organization, actor: Actor, agent: Agent, **values: Any) -> Suite:
    """A new, empty suite for ``agent``."""
    suite = Suite(org=org, agent=agent, **values)
    suite.full_clean(exclude=["org", "agent"])
    suite.save()
    record_audit(org, actor, "simulation.suite_created", suite, {"agent": str(agent.public_id)})
    return suite


def update_suite(suite: Suite, actor: Actor, **values: Any) -> Suite:
    """Change a suite's name, description, concurrency or publish requirement."""
    changed = {k: v for k, v in values.items() if getattr(suite, k) != v}
    for key, value in changed.items():
        setattr(suite, key, value)
    try:
        suite.full_clean(exclude=["org", "agent"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise SimulationError("; ".join(messages), field=field) from exc
    suite.save()
    record_audit(suite.org, actor, "simulation.suite_changed", suite, {"fields": sorted(changed)})
    return suite


# ----------------------------------------------------------------------- YAML


def export_suite(suite: Suite) -> dict[str, Any]:
    """The suite as a plain dict (``simulations.yaml_io`` writes it as YAML)."""
    return {
        "suite": suite.name, "description": suite.description, "concurrency": suite.concurrency,
        "required_for_publish": suite.required_for_publish,
        "scenarios": [{f: getattr(s, f) for f in SCENARIO_FIELDS} for s in suite.scenarios.order_by("name")],
    }


def import_suite(org: Organization, actor: Actor, agent: Agent, data: Any) -> Suite:
    """Create or update the suite named in ``data`` (and its scenarios, by name) for ``agent``.
    All or nothing: the first problem (named with its scenario) refuses the whole file."""
    if not isinstance(data, dict) or not isinstance(data.get("suite"), str) or not data["suite"].strip():
        raise SimulationError("the file must be a mapping with a 'suite' name and a 'scenarios' list", field="file")
    scenarios = data.get("scenarios") or []
    if not isinstance(scenarios, list):
        raise SimulationError("'scenarios' must be a list", field="file")
    with transaction.atomic():
        suite, _ = Suite.objects.for_org(org).get_or_create(org=org, agent=agent, name=data["suite"].strip()[:120])
        for key in ("description", "concurrency", "required_for_publish"):
            if key in data:
                setattr(suite, key, data[key])
        try:
            suite.full_clean(exclude=["org", "agent"])
        except ValidationError as exc:
            raise SimulationError(f"suite {suite.name}: {'; '.join(exc.messages)}", field="file") from exc
        suite.save()
        for i, item in enumerate(scenarios, 1):
            if not isinstance(item, dict) or not item.get("name"):
                raise SimulationError(f"scenario {i} needs a name", field="file")
            unknown = set(item) - set(SCENARIO_FIELDS)
            if unknown:
                raise SimulationError(f"scenario {item['name']}: unknown keys {', '.join(sorted(unknown))}",
                                      field="file")
            scenario = Scenario.objects.for_org(org).filter(suite=suite, name=item["name"]).first() \
                or Scenario(org=org, suite=suite)
            for key, value in item.items():
                setattr(scenario, key, value)
            try:
                clean_scenario_values(dict(item))
                scenario.full_clean(exclude=["org", "suite"])
            except (ServiceError, ValidationError) as exc:
                text = exc.message if isinstance(exc, ServiceError) else "; ".join(exc.messages)
                raise SimulationError(f"scenario {item['name']}: {text}", field="file") from exc
            scenario.save()
        record_audit(org, actor, "simulation.suite_imported", suite, {"scenarios": len(scenarios)})
    return suite


# ----------------------------------------------------------------------- runs


def _version(agent: Agent, number: int | None) -> AgentVersion | None:
    if number is None:
        return None
    version = AgentVersion.objects.for_org(agent.org).filter(agent=agent, number=number).first()
    if version is None:
        raise SimulationError(f"{agent.name} has no version {number}", field="version")
    return version


def _spec(scenario: Scenario) -> dict[str, Any]:
    return {f: getattr(scenario, f) for f in SCENARIO_FIELDS}


@dataclass(frozen=True)
class Plan:
    """What ``start_suite_run`` will run: the version (None: the draft) and its scenarios."""

    version: AgentVersion | None
    config: dict[str, Any]
    scenarios: list[Scenario]
    estimated_cost: Decimal | None


def plan_run(suite: Suite, version_number: int | None = None, scenarios: list[Scenario] | None = None) -> Plan:
    """What a run would test, checked runnable (every scenario's variables, the agent's
    credential), with its cost estimate."""
    agent = suite.agent
    version = _version(agent, version_number)
    config = version.config if version is not None else agent.snapshot()
    chosen = scenarios if scenarios is not None else list(suite.scenarios.order_by("name"))
    if not chosen:
        raise SimulationError(f"the suite {suite.name} has no scenarios yet", field="suite")
    probe = version if version is not None else AgentVersion(org=suite.org, agent=agent, number=0, config=config)
    for scenario in chosen:
        try:
            build_session_config(probe, scenario.variables or {})
        except MissingVariable as exc:
            raise SimulationError(f"scenario {scenario.name}: {exc}", field="variables") from exc
        except MissingCredential as exc:
            raise SimulationError(str(exc), field="agent") from exc
    settings = probe.settings
    text = sorted(s.name for s in chosen if s.mode == "text")
    if text and settings.provider not in TEXT_MODE_PROVIDERS:
        raise SimulationError(f"text mode (scenario {', '.join(text)}) needs an OpenAI Realtime or Gemini Live "
                              f"agent; {agent.name} uses {provider_info(settings.provider).label}", field="suite")
    estimate = estimate_scenarios(settings.provider, settings.model or None,
                                  [(s.caller_provider, float(s.max_seconds)) for s in chosen])
    return Plan(version, config, chosen, estimate)


def start_suite_run(suite: Suite, actor: Actor, *, version_number: int | None = None,
                    scenarios: list[Scenario] | None = None, dispatch: bool = True) -> SuiteRun:
    """Queue a run of ``suite`` (or of some of its scenarios) against a published version,
    or the draft when ``version_number`` is None. ``dispatch=False``: the caller runs it
    (``run_in_process``) instead of the Celery workers."""
    plan = plan_run(suite, version_number, scenarios)
    with transaction.atomic():
        run = SuiteRun.objects.create(
            org=suite.org, suite=suite, agent=suite.agent, agent_version=plan.version, config=plan.config,
            concurrency=suite.concurrency, total=len(plan.scenarios), estimated_cost=plan.estimated_cost,
            requested_by=actor.label[:200],
        )
        ScenarioRun.objects.bulk_create([
            ScenarioRun(org=suite.org, suite_run=run, scenario=s, scenario_name=s.name, spec=_spec(s))
            for s in plan.scenarios
        ])
        record_audit(suite.org, actor, "simulation.run_started", run,
                     {"suite": suite.name, "version": plan.version.number if plan.version else None})
        if dispatch:
            from simulations.tasks import dispatch_suite_run_task

            enqueue_on_commit(dispatch_suite_run_task, str(suite.org.public_id), str(run.public_id))
    return run


def run_in_process(run: SuiteRun) -> SuiteRun:
    """Run a suite run here and now (the CI command), ``concurrency`` scenarios at a time
    in threads, with the same claims the workers take."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from simulations.runner import run_scenario

    def one(pk: int) -> None:
        try:
            run_scenario(pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=run.concurrency) as pool:
        while ids := claim_next(run):
            list(pool.map(one, ids))
            refresh_counts(run)
    return refresh_counts(run)


def rerun_scenario(scenario_run: ScenarioRun, actor: Actor) -> SuiteRun:
    """Run one scenario again, as it is now, against the same version (the draft as it is now)."""
    if scenario_run.scenario is None:
        raise SimulationError("the scenario has been deleted since this run", code="scenario_deleted", status=409)
    previous = scenario_run.suite_run
    number = previous.agent_version.number if previous.agent_version is not None else None
    return start_suite_run(previous.suite, actor, version_number=number, scenarios=[scenario_run.scenario])


def claim_next(run: SuiteRun) -> list[int]:
    """Mark queued scenario runs running, up to the concurrency; their ids to start."""
    with transaction.atomic():
        locked = SuiteRun.objects.select_for_update().get(pk=run.pk)
        if locked.status in FINAL:
            return []
        running = ScenarioRun.objects.filter(suite_run=locked, status=RunStatus.RUNNING).count()
        room = max(0, locked.concurrency - running)
        ids = list(ScenarioRun.objects.select_for_update(skip_locked=True)
                   .filter(suite_run=locked, status=RunStatus.QUEUED).order_by("scenario_name", "pk")
                   .values_list("pk", flat=True)[:room])
        ScenarioRun.objects.filter(pk__in=ids).update(status=RunStatus.RUNNING, updated_at=timezone.now())
        if locked.status == RunStatus.QUEUED:
            locked.status, locked.started_at = RunStatus.RUNNING, timezone.now()
            locked.save(update_fields=["status", "started_at", "updated_at"])
    return ids


def refresh_counts(run: SuiteRun) -> SuiteRun:
    """Recount the finished scenario runs; finish the suite run when none is left."""
    with transaction.atomic():
        locked = SuiteRun.objects.select_for_update().get(pk=run.pk)
        counts = ScenarioRun.objects.filter(suite_run=locked).aggregate(
            passed=Count("pk", filter=Q(status=RunStatus.PASSED)),
            failed=Count("pk", filter=Q(status=RunStatus.FAILED)),
            errored=Count("pk", filter=Q(status=RunStatus.ERROR)),
            open=Count("pk", filter=Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])),
            priced=Count("pk", filter=Q(cost__isnull=False)),
            cost=Sum("cost"),
        )
        locked.passed, locked.failed, locked.errored = counts["passed"], counts["failed"], counts["errored"]
        locked.cost = counts["cost"] if counts["priced"] == locked.total - counts["open"] else None
        if counts["open"] == 0 and locked.status not in FINAL:
            locked.status = (RunStatus.PASSED if locked.failed == locked.errored == 0
                             else RunStatus.ERROR if locked.errored == locked.total else RunStatus.FAILED)
            locked.finished_at = timezone.now()
            record_audit(locked.org, _system(), "simulation.run_finished", locked,
                         {"status": locked.status, "passed": locked.passed, "total": locked.total})
        locked.save()
    return locked


def _system() -> Actor:
    from orgs.services import SYSTEM

    return SYSTEM


# -------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Comparison:
    """Two runs' results, scenario by scenario."""

    first: SuiteRun
    second: SuiteRun
    #: (scenario name, status in the first run or None, status in the second or None)
    rows: list[tuple[str, str | None, str | None]]


def compare_runs(first: SuiteRun, second: SuiteRun) -> Comparison:
    """Two runs side by side, scenario by scenario (both must be of the same org's suites)."""
    if first.org_id != second.org_id:
        raise SimulationError("both runs must belong to this organisation", field="other")

    def statuses(run: SuiteRun) -> dict[str, str]:
        return dict(ScenarioRun.objects.filter(suite_run=run).values_list("scenario_name", "status"))

    a, b = statuses(first), statuses(second)
    return Comparison(first, second, [(name, a.get(name), b.get(name)) for name in sorted(set(a) | set(b))])



def delete_suite(suite: Suite, actor: Actor) -> None:
    """Delete a suite with its scenarios and runs."""
    record_audit(suite.org, actor, "simulation.suite_deleted", suite, {"name": suite.name})
    suite.delete()


def delete_scenario(scenario: Scenario, actor: Actor) -> None:
    """Delete a scenario; its past runs keep their results (and the scenario as it was run)."""
    record_audit(scenario.org, actor, "simulation.scenario_deleted", scenario, {"name": scenario.name})
    scenario.delete()
