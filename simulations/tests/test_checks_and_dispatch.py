"""The platform checks (pure: validation names the check and field; each type passes and
fails on the facts it reads) and the dispatcher's concurrency limit and finish."""

from __future__ import annotations

import re
from typing import Any

import pytest

from simulations import checks as c
from simulations.models import RunStatus, Scenario, ScenarioRun
from simulations.services import claim_next, refresh_counts, start_suite_run
from simulations.tests.factories import make_scenario

SALES = {"type": "object", "properties": {"destination": {"const": "Sales"}}, "required": ["destination"]}


@pytest.mark.parametrize(("checks", "message"), [
    ({"type": "transfer"}, "checks must be a list"),
    ([{"type": "transferred"}], "check 1 has an unknown type 'transferred'"),
    ([{"type": "tool_called"}], "check 1 (tool_called) needs tool"),
    ([{"type": "max_duration", "seconds": 0}], "check 1 (max_duration): seconds must be a positive number"),
    ([{"type": "no_tool_errors"}, {"type": "transfer", "to": "Sales"}], "check 2 (transfer) has unknown fields to"),
    ([{"type": "agent_ended_call", "expect": "yes"}], "expect must be true or false"),
    ([{"type": "tool_called", "tool": "x", "arguments_schema": {"type": "nope"}}], "tool_called"),
])
def test_invalid_checks_are_refused_by_name(checks: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        c.validate_checks(checks)


def test_each_check_reads_the_call() -> None:
    facts = c.CallFacts(
        tool_uses=[c.ToolUse("transfer_call", {"destination": "Sales"}, True),
                   c.ToolUse("lookup_order", {"order": "1"}, False, "timed out")],
        transferred_to="Sales", end_reason="transferred", duration_ms=42_000, first_audio_ms=900)
    checks = [
        {"type": "tool_called", "tool": "transfer_call", "arguments_schema": SALES},
        {"type": "tool_called", "tool": "transfer_call", "arguments_schema": {**SALES, "properties": {
            "destination": {"const": "London"}}}},
        {"type": "tool_called", "tool": "end_call", "expect": False},
        {"type": "transfer", "destination": "Sales"}, {"type": "transfer", "expect": False},
        {"type": "agent_ended_call"}, {"type": "no_tool_errors"},
        {"type": "max_duration", "seconds": 60}, {"type": "max_duration", "seconds": 30},
        {"type": "first_audio_within", "ms": 1000}, {"type": "first_audio_within", "ms": 500},
    ]
    results = c.evaluate(c.validate_checks(checks), facts)
    assert [r["passed"] for r in results] == [True, False, True, True, False, False, False, True, False, True, False]
    assert results[1]["detail"].startswith("called, but the arguments did not match: destination")
    assert results[6]["detail"] == "lookup_order: timed out"
    assert results[5]["detail"] == "the call ended: transferred"
    assert c.evaluate([{"type": "first_audio_within", "ms": 500}], c.CallFacts())[0]["detail"] == \
        "the agent never spoke"


@pytest.mark.django_db
def test_the_dispatcher_keeps_to_the_concurrency_and_finishes_the_run(org_a: Any,
                                                                      django_capture_on_commit_callbacks: Any) -> None:
    from orgs.services import SYSTEM

    first = make_scenario(org_a)
    suite = first.suite
    for name in ("B", "C"):
        Scenario.objects.create(org=org_a, suite=suite, name=name, persona="p", goal="g")
    suite.concurrency = 2
    suite.save()
    with django_capture_on_commit_callbacks():
        run = start_suite_run(suite, SYSTEM)
    first_claim = claim_next(run)
    assert len(first_claim) == 2 and claim_next(run) == []  # both slots are taken
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.started_at is not None
    ScenarioRun.objects.filter(pk=first_claim[0]).update(status=RunStatus.PASSED)
    assert len(claim_next(run)) == 1  # one slot freed, one scenario left
    ScenarioRun.objects.filter(suite_run=run, status=RunStatus.RUNNING).update(status=RunStatus.PASSED)
    finished = refresh_counts(run)
    assert (finished.status, finished.passed, finished.total) == (RunStatus.PASSED, 3, 3)
    assert finished.finished_at is not None


@pytest.mark.django_db
def test_a_scenario_whose_worker_died_is_stored_as_an_error_when_its_task_comes_back(org_a: Any) -> None:
    import datetime

    import time_machine
    from django.utils import timezone

    from simulations.runner import STALE_GRACE_S, run_scenario
    from simulations.tests.factories import make_suite_run

    run = make_suite_run(org_a, status=RunStatus.RUNNING)
    scenario_run = ScenarioRun.objects.get(suite_run=run)
    started = timezone.now()
    ScenarioRun.objects.filter(pk=scenario_run.pk).update(status=RunStatus.RUNNING, started_at=started,
                                                          spec={**scenario_run.spec, "max_seconds": 60})
    assert run_scenario(scenario_run.pk) is None  # redelivered while still running: left alone
    later = started + datetime.timedelta(seconds=60 + STALE_GRACE_S + 1)
    with time_machine.travel(later, tick=False):
        expired = run_scenario(scenario_run.pk)
    assert expired is not None and expired.status == RunStatus.ERROR
    assert expired.error == "the worker running this scenario stopped before it finished"
    assert refresh_counts(run).status == RunStatus.ERROR


def test_stubbed_tools_answer_with_the_scenario_response_and_every_run_is_logged() -> None:
    import asyncio

    from agents.bridges.base import SessionConfig
    from calls.media.result import SessionContext, ToolError
    from simulations.runner import instrument

    async def live(arguments: dict[str, Any], session: Any) -> dict[str, Any]:
        raise ToolError("the order system is down")

    spec = {"type": "object", "properties": {"order": {"type": "string"}}}
    context = SessionContext(call_public_id="sim", provider="echo", config=SessionConfig(tools=[
        {"name": "lookup_order", "parameters": spec}, {"name": "cancel_order", "parameters": spec},
        {"name": "end_call", "parameters": {"type": "object"}}]), tools={"cancel_order": live})
    log: list[dict[str, Any]] = []
    instrument(context, {"lookup_order": {"status": "shipped"}, "end_call": {"ok": True}}, log)
    stubbed: Any = asyncio.run(context.tools["lookup_order"]({"order": "7"}, None))  # type: ignore[arg-type]
    assert stubbed == {"status": "shipped"}
    with pytest.raises(ToolError):
        asyncio.run(context.tools["cancel_order"]({"order": "7"}, None))  # type: ignore[arg-type]
    assert log == [
        {"name": "lookup_order", "arguments": {"order": "7"}, "ok": True, "error": "", "stubbed": True},
        {"name": "cancel_order", "arguments": {"order": "7"}, "ok": False, "error": "the order system is down",
         "stubbed": False}]
    assert "end_call" in context.tools  # logged, but a call-control tool is never stubbed
