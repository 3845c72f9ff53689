"""Experiments: the lifecycle and its audit trail, one running experiment per agent (the
database says so too), ending promotes the winner, results per arm against figures
computed by hand, the API and the dashboard section — and another org sees nothing."""

from __future__ import annotations

import math
from decimal import Decimal
from statistics import NormalDist
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.experiments import stats
from agents.experiments.results import Comparison, MetricResult, experiment_results
from agents.experiments.services import (
    ArmSpec,
    ExperimentError,
    create_experiment,
    end_experiment,
    set_weights,
    start_experiment,
)
from agents.models import Agent, Experiment, ExperimentState
from agents.services import publish_agent
from calls.tests.factories import make_call, make_ready_agent
from orgs.models import AuditLog
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db


def cmp(metric: MetricResult) -> Comparison:
    assert metric.comparison is not None
    return metric.comparison


def published_number(agent: Agent) -> int:
    agent.refresh_from_db()
    assert agent.published_version is not None
    return agent.published_version.number


def two_versions(org: Any, name: str = "Support line") -> Agent:
    """A ready agent with versions 1 and 2 (v2 published)."""
    agent = make_ready_agent(org, name=name)
    agent.first_message = "Hello from version two."
    agent.save()
    publish_agent(agent, SYSTEM, note="shorter greeting")
    agent.refresh_from_db()
    return agent


def actions(org: Any) -> list[str]:
    return list(AuditLog.objects.filter(org=org).order_by("id").values_list("action", flat=True))


# -- lifecycle -------------------------------------------------------------------------------

def test_lifecycle_is_audited_and_ending_promotes_the_winner(org_a: Any) -> None:
    agent = two_versions(org_a)
    v1 = agent.versions.get(number=1)
    exp = create_experiment(agent, SYSTEM, name="Greeting", arms=[ArmSpec(2, 1), ArmSpec(1, 3)])
    assert [(a.label, a.version.number, a.weight) for a in exp.arms.all()] == [("A", 2, 1), ("B", 1, 3)]
    assert exp.state == ExperimentState.DRAFT
    start_experiment(exp, SYSTEM)
    set_weights(exp, SYSTEM, {"B": 1})
    end_experiment(exp, SYSTEM, exp.arms.get(label="B"))
    agent.refresh_from_db()
    exp.refresh_from_db()
    assert agent.published_version == v1  # promoted as itself, no new version number
    assert agent.versions.count() == 2
    assert exp.state == ExperimentState.ENDED and exp.winner is not None and exp.winner.label == "B"
    assert exp.ended_at is not None
    assert actions(org_a)[-5:] == ["experiment.created", "experiment.started", "experiment.weights_changed",
                                   "experiment.ended", "agent.promoted"]
    promoted = AuditLog.objects.filter(org=org_a, action="agent.promoted").get()
    assert promoted.changes["version"] == [2, 1]
    with pytest.raises(ExperimentError, match="Only a running experiment"):
        end_experiment(exp, SYSTEM, None)
    with pytest.raises(ExperimentError, match="has ended"):
        set_weights(exp, SYSTEM, {"A": 2})


def test_ending_without_a_winner_keeps_the_published_version(org_a: Any) -> None:
    agent = two_versions(org_a)
    exp = start_experiment(create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(2), ArmSpec(1)]), SYSTEM)
    end_experiment(exp, SYSTEM, None)
    assert published_number(agent) == 2
    assert "agent.promoted" not in actions(org_a)


@pytest.mark.parametrize(("arms", "message"), [
    ([ArmSpec(1)], "needs 2 to 6 arms"),
    ([ArmSpec(1), ArmSpec(1)], "different version"),
    ([ArmSpec(1), ArmSpec(9)], "no published version 9"),
    ([ArmSpec(1, 0), ArmSpec(2, 0)], "weight above 0"),
    ([ArmSpec(1, -1), ArmSpec(2)], "whole number from 0 to 1000"),
])
def test_bad_arms_are_refused_naming_the_problem(org_a: Any, arms: list[ArmSpec], message: str) -> None:
    agent = two_versions(org_a)
    with pytest.raises(ValidationError) as caught:
        create_experiment(agent, SYSTEM, name="G", arms=arms)
    assert "arms" in caught.value.message_dict and message in " ".join(caught.value.message_dict["arms"])
    assert not Experiment.objects.exists()


def test_another_agents_version_is_not_an_arm(org_a: Any) -> None:
    agent, other = two_versions(org_a), two_versions(org_a, name="Other")
    assert other.versions.filter(number=1).exists()
    exp = create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2)])
    assert {a.version.agent_id for a in exp.arms.all()} == {agent.pk}


def test_one_running_experiment_per_agent(org_a: Any) -> None:
    agent = two_versions(org_a)
    first = start_experiment(create_experiment(agent, SYSTEM, name="First", arms=[ArmSpec(1), ArmSpec(2)]), SYSTEM)
    second = create_experiment(agent, SYSTEM, name="Second", arms=[ArmSpec(2), ArmSpec(1)])
    with pytest.raises(ExperimentError, match="“First” is already running"):
        start_experiment(second, SYSTEM)
    # The database refuses it too, whatever path a write takes.
    with pytest.raises(IntegrityError), transaction.atomic():
        Experiment.objects.filter(pk=second.pk).update(state=ExperimentState.RUNNING)
    end_experiment(first, SYSTEM, None)
    assert start_experiment(second, SYSTEM).state == ExperimentState.RUNNING


# -- results ---------------------------------------------------------------------------------

def _calls(org: Any, arm: Any, n: int, **values: Any) -> None:
    now = timezone.now()
    for _ in range(n):
        make_call(org, agent=arm.experiment.agent, agent_version=arm.version, experiment_arm=arm,
                  **{"answered_at": now, **values})


def _results_fixture(org: Any) -> Experiment:
    """A: 40 calls, 20 answered (10 successes), durations 60 s, cost $0.02, latency on 5.
    B: 40 calls, 36 answered (20 successes, 2 transfers), durations 120 s, cost $0.03,
    latency on 5. Plus a live call on A and a call outside the experiment."""
    agent = two_versions(org)
    exp = start_experiment(create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2)]), SYSTEM)
    a, b = exp.arms.get(label="A"), exp.arms.get(label="B")
    priced = {"cost_breakdown": {"provider": {"currency": "USD"}}}
    ok, no = {"analysis": {"success": {"achieved": True}}}, {"analysis": {"success": {"achieved": False}}}
    _calls(org, a, 5, duration_s=60, provider_cost=Decimal("0.02"), latency_p50_ms=800.4, **ok, **priced)
    _calls(org, a, 5, duration_s=60, provider_cost=Decimal("0.02"), **ok, **priced)
    _calls(org, a, 10, duration_s=60, provider_cost=Decimal("0.02"), **no, **priced)
    _calls(org, a, 20, answered_at=None, status="no_answer", provider_cost=Decimal("0.02"), **priced)
    _calls(org, b, 5, duration_s=120, provider_cost=Decimal("0.03"), latency_p50_ms=600.0, **ok, **priced)
    _calls(org, b, 13, duration_s=120, provider_cost=Decimal("0.03"), **ok, **priced)
    _calls(org, b, 2, duration_s=120, provider_cost=Decimal("0.03"), end_reason="transferred", **ok, **priced)
    _calls(org, b, 16, duration_s=120, provider_cost=Decimal("0.03"), **no, **priced)
    _calls(org, b, 4, answered_at=None, status="busy", provider_cost=Decimal("0.03"), **priced)
    _calls(org, a, 1, status="in_progress", duration_s=None)
    make_call(org, agent=agent, agent_version=agent.published_version, answered_at=timezone.now(), duration_s=999)
    return exp


def test_results_match_hand_computed_figures(org_a: Any) -> None:
    exp = _results_fixture(org_a)
    results = experiment_results(exp)
    a, b = results.arms
    assert (a.calls, a.live, b.calls, b.live) == (40, 1, 40, 0)

    # answer rate: 20/40 vs 36/40; pooled 56/80 = .7, se = √(.7·.3·(1/40 + 1/40)) = .10247, z = .4/.10247
    ans_a, ans_b = a.metrics["answer_rate"], b.metrics["answer_rate"]
    assert (ans_a.n, ans_a.estimate, ans_b.n, ans_b.estimate) == (40, 0.5, 40, 0.9)
    assert (ans_a.low, ans_a.high) == pytest.approx((0.3520, 0.6480), abs=1e-4)  # Wilson, 20/40
    comparison = cmp(ans_b)
    assert comparison.method == "two-proportion z-test"
    assert comparison.statistic == pytest.approx(0.4 / math.sqrt(0.7 * 0.3 * (2 / 40)), rel=1e-9)
    assert comparison.p_value == pytest.approx(2 * (1 - NormalDist().cdf(3.9036)), rel=1e-3)
    assert comparison.statement == "B's answer rate is higher than A's, significant at 95 %."

    # success rate among analysed calls: 10/20 vs 20/36 — not significant; the sample size
    # for .5 vs .5556 at 95 % and 80 % power, less the 20 calls the smaller arm has.
    suc_b = b.metrics["success_rate"]
    assert (a.metrics["success_rate"].n, a.metrics["success_rate"].estimate) == (20, 0.5)
    assert (suc_b.n, suc_b.estimate) == (36, pytest.approx(20 / 36))
    p1, p2, z = 0.5, 20 / 36, NormalDist()
    za, zb = z.inv_cdf(0.975), z.inv_cdf(0.8)
    pbar = (p1 + p2) / 2
    needed = math.ceil((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
                       / (p1 - p2) ** 2)
    assert not cmp(suc_b).significant and cmp(suc_b).more_needed == needed - 20
    assert cmp(suc_b).statement == (f"B's success rate is higher so far, not significant yet: about "
                                          f"{needed - 20} more calls per arm would be needed to tell at 95 %.")

    # transfer rate among answered calls: 0/20 vs 2/36: expected counts below 5 → Fisher
    tr = b.metrics["transfer_rate"]
    assert (a.metrics["transfer_rate"].estimate, tr.n, tr.successes) == (0.0, 36, 2)
    assert cmp(tr).method == "Fisher's exact test" and not cmp(tr).significant
    assert cmp(tr).p_value == pytest.approx(stats.fisher_exact(0, 20, 2, 36).p_value)

    # duration of answered calls: every B call is longer than every A call → U = 36·20
    dur_a, dur_b = a.metrics["duration"], b.metrics["duration"]
    assert (dur_a.n, dur_a.estimate, dur_b.n, dur_b.estimate) == (20, 60.0, 36, 120.0)
    assert cmp(dur_b).statistic == 720.0 and cmp(dur_b).significant
    assert cmp(dur_b).statement == "B's duration is higher than A's, significant at 95 %."

    # cost of every final call with its cost known: $0.02 ×40 vs $0.03 ×40
    assert (a.metrics["cost"].n, a.metrics["cost"].estimate, b.metrics["cost"].estimate) == (40, 0.02, 0.03)
    assert cmp(b.metrics["cost"]).direction == "higher" and cmp(b.metrics["cost"]).significant

    # latency on 5 calls per arm (rounded to whole ms): too few to test
    lat = b.metrics["latency"]
    assert (a.metrics["latency"].estimate, lat.estimate, lat.n) == (800.0, 600.0, 5)
    assert cmp(lat).statement == ("Too few calls to compare response latency: 5 so far in the smaller arm, "
                                        "at least 10 per arm are needed.")


def test_results_of_an_experiment_without_calls(org_a: Any) -> None:
    agent = two_versions(org_a)
    exp = create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2)])
    results = experiment_results(exp)
    assert [r.calls for r in results.arms] == [0, 0]
    assert results.arms[1].metrics["answer_rate"].estimate is None
    assert cmp(results.arms[1].metrics["answer_rate"]).statement.startswith("Too few calls")


# -- API ---------------------------------------------------------------------------------------

def _url(agent: Any, *rest: str) -> str:
    return "/".join([f"/api/v1/agents/{agent.public_id}/experiments", *rest]) + "/"


def test_api_create_start_end_and_results(api: Any, org_a: Any, editor_a: Any) -> None:
    agent = two_versions(org_a)
    client = api(editor_a)
    response = client.post(_url(agent), {"name": "Greeting", "hypothesis": "Shorter greets better",
                                         "arms": [{"version": 2, "weight": 1}, {"version": 1, "weight": 3}]},
                           format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "draft" and body["agent"] == str(agent.public_id)
    assert [(a["label"], a["version"], a["weight"], a["share"]) for a in body["arms"]] == [
        ("A", 2, 1, 0.25), ("B", 1, 3, 0.75)]
    exp_id = body["id"]
    assert client.get(_url(agent)).json()["results"][0]["id"] == exp_id
    assert client.post(_url(agent, exp_id, "start"), format="json").json()["state"] == "running"

    other = client.post(_url(agent), {"name": "Next", "arms": [{"version": 1}, {"version": 2}]}, format="json").json()
    conflict = client.post(_url(agent, other["id"], "start"), format="json")
    assert conflict.status_code == 409 and "“Greeting” is already running" in conflict.json()["error"]["message"]

    weights = client.post(_url(agent, exp_id, "weights"), {"weights": {"A": 1, "B": 1}}, format="json")
    assert [a["share"] for a in weights.json()["arms"]] == [0.5, 0.5]
    bad = client.post(_url(agent, exp_id, "weights"), {"weights": {"Q": 1}}, format="json")
    assert bad.status_code == 400 and "No arm Q" in str(bad.json())

    make_call(org_a, agent=agent, agent_version=agent.published_version,
              experiment_arm=agent.experiments.get(public_id=exp_id).arms.get(label="A"), answered_at=timezone.now(),
              duration_s=30)
    results = client.get(_url(agent, exp_id, "results")).json()
    assert [(r["label"], r["version"], r["calls"]) for r in results["arms"]] == [("A", 2, 1), ("B", 1, 0)]
    answer = next(m for m in results["arms"][1]["metrics"] if m["key"] == "answer_rate")
    assert answer["comparison"]["statement"].startswith("Too few calls") and answer["comparison"]["p_value"] is None

    unknown = client.post(_url(agent, exp_id, "end"), {"winner": "Z"}, format="json")
    assert unknown.status_code == 400 and "winner" in unknown.json()["error"]["fields"]
    ended = client.post(_url(agent, exp_id, "end"), {"winner": "B"}, format="json")
    assert ended.status_code == 200 and ended.json()["state"] == "ended" and ended.json()["winner"] == "B"
    assert published_number(agent) == 1
    assert client.post(_url(agent, exp_id, "end"), {"winner": "B"}, format="json").status_code == 409


def test_api_bad_input_names_the_field(api: Any, org_a: Any, editor_a: Any) -> None:
    agent = two_versions(org_a)
    response = api(editor_a).post(_url(agent), {"name": "G", "arms": [{"version": 1}]}, format="json")
    assert response.status_code == 400
    assert "arms" in response.json()["error"]["fields"] and "2 to 6 arms" in response.json()["error"]["message"]
    response = api(editor_a).post(_url(agent), {"arms": [{"version": 1}, {"version": 2}]}, format="json")
    assert response.status_code == 400 and "name" in response.json()["error"]["fields"]


def test_another_org_cannot_see_or_touch_an_experiment(api: Any, org_a: Any, editor_a: Any, viewer_a: Any,
                                                       outsider: Any) -> None:
    agent = two_versions(org_a)
    exp = start_experiment(create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2)]), SYSTEM)
    other = api(outsider)
    assert other.get(_url(agent)).status_code == 404
    assert other.post(_url(agent), {"name": "X", "arms": [{"version": 1}, {"version": 2}]},
                      format="json").status_code == 404
    for path, method in [((), "get"), (("results",), "get"), (("start",), "post"), (("end",), "post"),
                         (("weights",), "post")]:
        response = getattr(other, method)(_url(agent, str(exp.public_id), *path), {"winner": "A"}, format="json")
        assert response.status_code == 404, path
    # and through another org's own agent URL, the experiment id is not found either
    their_agent = two_versions(outsider.memberships.get().org, name="Theirs")
    assert other.get(_url(their_agent, str(exp.public_id))).status_code == 404
    assert api(viewer_a).post(_url(agent, str(exp.public_id), "end"), {"winner": "A"},
                              format="json").status_code == 403
    exp.refresh_from_db()
    assert exp.state == ExperimentState.RUNNING and Experiment.objects.filter(agent=their_agent).count() == 0


# -- dashboard ---------------------------------------------------------------------------------

def test_dashboard_creates_starts_and_ends_an_experiment(login: Any, org_a: Any, editor_a: Any) -> None:
    agent = two_versions(org_a)
    client = login(editor_a)
    page = client.get(f"/agents/{agent.public_id}/")
    assert page.status_code == 200 and b'id="experiments"' in page.content and b"New experiment" in page.content
    created = client.post(f"/agents/{agent.public_id}/experiments/new/",
                          {"name": "Greeting", "arm0_version": "2", "arm0_weight": "1", "arm1_version": "1",
                           "arm1_weight": "1", "arm2_version": ""}, follow=True)
    assert "Created the experiment “Greeting”" in created.content.decode()
    exp = Experiment.objects.get(agent=agent)
    client.post(f"/agents/{agent.public_id}/experiments/{exp.public_id}/start/")
    exp.refresh_from_db()
    assert exp.state == ExperimentState.RUNNING
    _calls(org_a, exp.arms.get(label="A"), 12, duration_s=40)
    _calls(org_a, exp.arms.get(label="B"), 12, duration_s=90)
    page = client.get(f"/agents/{agent.public_id}/").content.decode()
    assert "Results: Greeting" in page and "B&#x27;s duration is higher than A&#x27;s, significant at 95 %." in page
    saved = client.post(f"/agents/{agent.public_id}/experiments/{exp.public_id}/weights/",
                        {"weight_A": "1", "weight_B": "4"}, follow=True)
    assert "Saved the weights of “Greeting”" in saved.content.decode()
    assert list(exp.arms.values_list("label", "weight")) == [("A", 1), ("B", 4)]
    bad = client.post(f"/agents/{agent.public_id}/experiments/{exp.public_id}/weights/",
                      {"weight_A": "x", "weight_B": "4"}, follow=True)
    assert "Arm A&#x27;s weight must be a whole number" in bad.content.decode()
    ended = client.post(f"/agents/{agent.public_id}/experiments/{exp.public_id}/end/", {"winner": "B"}, follow=True)
    assert "version 1 (arm B) is now published" in ended.content.decode()
    assert published_number(agent) == 1


def test_dashboard_refusals_are_shown_and_viewers_cannot_change(login: Any, org_a: Any, editor_a: Any,
                                                               viewer_a: Any, outsider: Any) -> None:
    agent = two_versions(org_a)
    refused = login(editor_a).post(f"/agents/{agent.public_id}/experiments/new/",
                                   {"name": "", "arm0_version": "1", "arm1_version": "2"}, follow=True)
    assert "The experiment was not created. name: An experiment needs a name." in refused.content.decode()
    exp = create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2)])
    assert login(viewer_a).post(f"/agents/{agent.public_id}/experiments/{exp.public_id}/start/").status_code == 403
    assert login(outsider).post(f"/agents/{agent.public_id}/experiments/{exp.public_id}/start/").status_code == 404
    exp.refresh_from_db()
    assert exp.state == ExperimentState.DRAFT


def test_deleting_an_agent_takes_its_experiments_and_keeps_its_calls(org_a: Any) -> None:
    from agents.services import delete_agent
    from calls.models import Call

    agent = two_versions(org_a)
    exp = start_experiment(create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2)]), SYSTEM)
    call = make_call(org_a, agent=agent, agent_version=agent.published_version, experiment_arm=exp.arms.first())
    delete_agent(agent, SYSTEM)
    assert not Experiment.objects.filter(pk=exp.pk).exists()
    call.refresh_from_db()
    assert call.experiment_arm is None and Call.objects.filter(pk=call.pk).exists()


def test_results_cost_a_fixed_number_of_queries_however_many_calls(org_a: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    agent = two_versions(org_a)
    exp = start_experiment(create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2)]), SYSTEM)
    counts = []
    for _ in range(2):
        for arm, duration in ((exp.arms.get(label="A"), 30), (exp.arms.get(label="B"), 45)):
            _calls(org_a, arm, 15, duration_s=duration, latency_p50_ms=700.0)
        fresh = Experiment.objects.select_related("org").get(pk=exp.pk)
        with CaptureQueriesContext(connection) as queries:
            experiment_results(fresh)
        counts.append(len(queries))
    assert counts[0] == counts[1] == 6  # arms, rates, live, one per value metric
    calls_queries = [q["sql"] for q in queries.captured_queries if '"calls_call"' in q["sql"]]
    assert len(calls_queries) == 5 and all("GROUP BY" in sql for sql in calls_queries)


def test_three_arms_compare_each_with_a_at_a_stricter_level(org_a: Any) -> None:
    agent = two_versions(org_a)
    agent.first_message = "Version three speaking."
    agent.save()
    publish_agent(agent, SYSTEM)
    exp = start_experiment(create_experiment(agent, SYSTEM, name="G", arms=[ArmSpec(1), ArmSpec(2), ArmSpec(3)]),
                           SYSTEM)
    for label, duration in (("A", 30), ("B", 60), ("C", 90)):
        _calls(org_a, exp.arms.get(label=label), 12, duration_s=duration)
    results = experiment_results(exp)
    assert results.alpha == pytest.approx(0.025)  # 0.05 / 2 comparisons (Bonferroni)
    assert cmp(results.arms[2].metrics["duration"]).statement == (
        "C's duration is higher than A's, significant at 97.5 %.")
