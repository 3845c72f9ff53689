"""Agent tests through the API and the dashboard: scenarios validated on save (a check typo is
refused with its field), YAML out and back in, a run started through the API (a cost estimate
first) and read back as JUnit, comparison, rerun, and every page rendering for a member."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from agents.services import publish_agent, update_agent
from orgs.services import SYSTEM
from simulations.models import RunStatus, Scenario, ScenarioRun, Suite, SuiteRun
from simulations.tests.factories import make_suite_run

pytestmark = pytest.mark.django_db


def test_scenarios_are_validated_and_suites_round_trip_as_yaml(org_a: Any, owner_a: Any, api: Any) -> None:
    client = api(owner_a)
    run = make_suite_run(org_a)
    suite = run.suite
    bad = client.post("/api/v1/test-scenarios/", {
        "suite": str(suite.public_id), "name": "Typo", "persona": "p", "goal": "g",
        "checks": [{"type": "transfered", "destination": "Sales"}]}, format="json")
    assert bad.status_code == 400
    assert "checks" in bad.json()["error"]["fields"]
    assert "unknown type 'transfered'" in bad.json()["error"]["message"]
    stub = client.post("/api/v1/test-scenarios/", {
        "suite": str(suite.public_id), "name": "Stubbed", "persona": "p", "goal": "g",
        "tool_stubs": {"end_call": {"ok": True}}}, format="json")
    assert stub.status_code == 400 and "tool_stubs" in stub.json()["error"]["fields"]
    good = client.post("/api/v1/test-scenarios/", {
        "suite": str(suite.public_id), "name": "Asks for hours", "persona": "Lee, in a hurry", "goal": "Learn the hours",
        "checks": [{"type": "max_duration", "seconds": 60}], "rubric": ["The agent gives the opening hours."],
        "tool_stubs": {"lookup_order": {"status": "shipped"}}}, format="json")
    assert good.status_code == 201, good.json()

    exported = client.get(f"/api/v1/test-suites/{suite.public_id}/export/")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("application/yaml")
    data = yaml.safe_load(exported.content)
    assert [s["name"] for s in data["scenarios"]] == ["Asks for hours", "Wants a refund"]
    other_agent = suite.agent.__class__.objects.create(org=org_a, name="Second line", provider="echo")
    imported = client.post("/api/v1/test-suites/import/", {"agent": str(other_agent.public_id),
                                                          "yaml": exported.content.decode()}, format="json")
    assert imported.status_code == 201, imported.json()
    copy = Suite.objects.get(public_id=imported.json()["id"])
    assert copy.agent == other_agent and copy.scenarios.count() == 2
    assert Scenario.objects.get(suite=copy, name="Asks for hours").tool_stubs == {"lookup_order": {"status": "shipped"}}
    broken = client.post("/api/v1/test-suites/import/", {"agent": str(other_agent.public_id),
                                                        "yaml": "suite: [unclosed"}, format="json")
    assert broken.status_code == 400 and "not valid YAML" in broken.json()["error"]["message"]


def test_runs_through_the_api_estimate_junit_compare_and_rerun(org_a: Any, owner_a: Any, api: Any,
                                                                django_capture_on_commit_callbacks: Any) -> None:
    client = api(owner_a)
    first = make_suite_run(org_a)
    suite = first.suite
    estimate = client.get(f"/api/v1/test-suites/{suite.public_id}/estimate/")
    assert estimate.status_code == 200 and estimate.json()["scenarios"] == 1
    missing = client.post(f"/api/v1/test-suites/{suite.public_id}/run/", {"version": 9}, format="json")
    assert missing.status_code == 400
    assert missing.json()["error"]["fields"] == {"version": ["Support line has no version 9"]}
    with django_capture_on_commit_callbacks() as queued:
        started = client.post(f"/api/v1/test-suites/{suite.public_id}/run/", {}, format="json")
    assert started.status_code == 202 and started.json()["version"] is None and started.json()["status"] == "queued"
    assert any("enqueue_on_commit" in q.__qualname__ for q in queued)  # the dispatcher, once committed
    second = SuiteRun.objects.get(public_id=started.json()["id"])
    ScenarioRun.objects.filter(suite_run=second).update(status=RunStatus.FAILED)
    second.failed, second.status = 1, RunStatus.FAILED
    second.save()

    junit = client.get(f"/api/v1/test-runs/{first.public_id}/junit/")
    assert junit.status_code == 200
    assert ElementTree.fromstring(junit.content).find("testsuite").get("tests") == "1"  # type: ignore[union-attr]
    compared = client.get(f"/api/v1/test-runs/{first.public_id}/compare/", {"other": str(second.public_id)})
    assert compared.status_code == 200
    assert compared.json()["scenarios"] == [{"scenario": "Wants a refund", "first": "passed", "second": "failed"}]
    result = ScenarioRun.objects.get(suite_run=first)
    with django_capture_on_commit_callbacks():
        rerun = client.post(f"/api/v1/test-scenario-runs/{result.public_id}/rerun/")
    assert rerun.status_code == 202 and rerun.json()["total"] == 1 and rerun.json()["version"] == 1


def test_every_page_renders_for_a_viewer_and_the_editor_can_run(org_a: Any, owner_a: Any, viewer_a: Any,
                                                               login: Any,
                                                               django_capture_on_commit_callbacks: Any) -> None:
    run = make_suite_run(org_a)
    result = ScenarioRun.objects.get(suite_run=run)
    other = make_suite_run(org_a)
    pages = ["/tests/", f"/tests/suites/{run.suite.public_id}/", f"/tests/runs/{run.public_id}/",
             f"/tests/runs/{run.public_id}/progress/", f"/tests/results/{result.public_id}/",
             f"/tests/runs/{run.public_id}/compare/?other={other.public_id}",
             f"/tests/scenarios/{result.scenario.public_id}/",  # type: ignore[union-attr]
             f"/tests/suites/{run.suite.public_id}/scenarios/new/"]
    viewer = login(viewer_a)
    for page in pages[:6]:
        assert viewer.get(page).status_code == 200, page
    owner = login(owner_a)
    for page in pages:
        assert owner.get(page).status_code == 200, page
    assert viewer.post(f"/tests/suites/{run.suite.public_id}/", {"version": ""}).status_code == 403
    with django_capture_on_commit_callbacks():
        started = owner.post(f"/tests/suites/{run.suite.public_id}/", {"version": "1"})
    assert started.status_code == 302 and started["Location"].startswith("/tests/runs/")
    saved = owner.post(f"/tests/suites/{run.suite.public_id}/", {"settings": "1", "description": "Smoke",
                                                                 "concurrency": "3", "required_for_publish": "on"})
    assert saved.status_code == 302
    run.suite.refresh_from_db()
    assert (run.suite.concurrency, run.suite.required_for_publish) == (3, True)
    owner.post(f"/tests/suites/{run.suite.public_id}/", {"settings": "1", "concurrency": "11"})
    run.suite.refresh_from_db()
    assert run.suite.concurrency == 3  # refused: at most 10 at a time
    refused = owner.post(f"/tests/suites/{run.suite.public_id}/scenarios/new/", {
        "name": "Bad", "persona": "p", "goal": "g", "caller_provider": "openai_realtime", "mode": "voice", "max_turns": 5,
        "max_seconds": 60, "checks": '[{"type": "max_duration"}]'})
    assert refused.status_code == 400 and b"needs seconds" in refused.content


def test_the_publish_gate_counts_only_passing_runs_of_this_draft(org_a: Any) -> None:
    from simulations.services import SimulationError
    from voiceplatform.testing import refused

    run = make_suite_run(org_a)
    suite, agent = run.suite, run.suite.agent
    Suite.objects.filter(pk=suite.pk).update(required_for_publish=True)
    update_agent(agent, SYSTEM, system_prompt="A new prompt.")
    with refused(SimulationError, field=None, match="must pass on this draft"):
        publish_agent(agent, SYSTEM)
    # a passing run of the draft as it was before the change does not count either
    SuiteRun.objects.create(org=org_a, suite=suite, agent=agent, config={**agent.snapshot(), "system_prompt": "old"},
                            status=RunStatus.PASSED, total=1, passed=1)
    with refused(SimulationError, field=None, match="must pass on this draft"):
        publish_agent(agent, SYSTEM)
    SuiteRun.objects.create(org=org_a, suite=suite, agent=agent, config=agent.snapshot(), status=RunStatus.PASSED,
                            total=1, passed=1)
    assert publish_agent(agent, SYSTEM).number == 2
