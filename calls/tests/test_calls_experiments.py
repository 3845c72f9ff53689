"""Experiment assignment on every path a call starts by: the inbound webhook (through
the real view), the calls API, a batch's dispatch, a scheduled call and a web call —
each records the arm and runs its version, and a repeat caller gets the same arm."""

from __future__ import annotations

from typing import Any

import pytest

from agents.experiments.assignment import pick_arm
from agents.experiments.services import ArmSpec, create_experiment, end_experiment, start_experiment
from agents.models import Experiment, ExperimentArm
from agents.services import publish_agent
from batches import dispatch
from batches.scheduling import ScheduleInput, create_scheduled_call, fire
from batches.services import launch_batch
from batches.tests.helpers import make_batch, us_numbers
from calls.models import Call
from calls.services.placement import start_web_call
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import post_twilio
from orgs.services import SYSTEM, Actor

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_secret_in_logs")]


@pytest.fixture
def experiment(agent_a: Any) -> Experiment:
    """agent_a with versions 1 and 2 split 1:1 by a running experiment."""
    agent_a.first_message = "Hi, this is version two."
    agent_a.save()
    publish_agent(agent_a, SYSTEM, note="B")
    exp = create_experiment(agent_a, SYSTEM, name="Greeting", arms=[ArmSpec(1, 1), ArmSpec(2, 1)])
    return start_experiment(exp, SYSTEM)


def expected_arm(experiment: Experiment, caller_key: str) -> ExperimentArm:
    """The arm the assignment function gives ``caller_key`` (computed apart from the call path)."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class A:
        key: str
        weight: int
        arm: ExperimentArm

    arms = [A(str(a.public_id), a.weight, a) for a in experiment.arms.all()]
    return pick_arm(str(experiment.public_id), arms, caller_key).arm


def assert_runs_its_arm(call: Call, experiment: Experiment, caller_key: str) -> None:
    arm = expected_arm(experiment, caller_key)
    assert call.experiment_arm_id == arm.pk
    assert call.agent_version_id == arm.version_id


def test_inbound_webhook_assigns_sticky_arms(fake_twilio: Any, twilio_number: Any, experiment: Experiment) -> None:
    callers = [f"+1415555{7000 + i:04d}" for i in range(16)]
    for round_ in range(2):  # everyone calls twice
        for i, caller in enumerate(callers):
            sid = f"CA{round_:02d}{i:030d}"
            params = fake_twilio.voice_params(call_sid=sid, from_=caller, to=twilio_number.e164)
            assert post_twilio(fake_twilio, "/webhooks/twilio/voice", params).status_code == 200
            assert_runs_its_arm(Call.objects.get(carrier_call_id=sid), experiment, caller)
    by_caller: dict[str, set[int]] = {}
    for call in Call.objects.filter(direction="inbound"):
        by_caller.setdefault(call.from_number, set()).add(call.experiment_arm_id)
    assert all(len(arms) == 1 for arms in by_caller.values())
    assert len({a for arms in by_caller.values() for a in arms}) == 2  # both arms got callers
    # A withheld caller id is no key: the call is still assigned (at random) and runs its arm.
    params = fake_twilio.voice_params(call_sid="CA" + "f" * 32, from_="anonymous", to=twilio_number.e164)
    assert post_twilio(fake_twilio, "/webhooks/twilio/voice", params).status_code == 200
    anonymous = Call.objects.get(carrier_call_id="CA" + "f" * 32)
    assert anonymous.experiment_arm is not None and anonymous.agent_version_id == anonymous.experiment_arm.version_id


def test_api_call_records_the_arm_and_its_version(api: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any,
                                                  agent_a: Any, experiment: Experiment) -> None:
    client = api(owner_a)
    for callee in ("+14155557777", "+14155557777", "+14155558888"):
        response = client.post("/api/v1/calls/", {"agent": str(agent_a.public_id), "to": callee,
                                                  "from_number": twilio_number.e164}, format="json")
        assert response.status_code == 201, response.json()
        call = Call.objects.get(public_id=response.json()["id"])
        assert_runs_its_arm(call, experiment, callee)
        assert response.json()["agent_version"] == call.agent_version.number
        assert response.json()["experiment"] == {"id": str(experiment.public_id), "arm": call.experiment_arm.label}
    page = client.get(f"/calls/{call.public_id}/").content.decode()
    assert f"experiment “Greeting”, arm {call.experiment_arm.label}" in page


def test_batch_dispatch_assigns_each_row_by_its_number(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                       fake_twilio: Any, experiment: Experiment, settings: Any) -> None:
    settings.BATCHES_DIAL_THREADS = 1  # dial in this thread: it sees the test's uncommitted rows
    numbers = us_numbers(6)
    batch = make_batch(twilio_org, agent_a, twilio_number, "phone\n" + "\n".join(numbers) + "\n",
                       concurrency=6, calls_per_second=50)
    launch_batch(batch, SYSTEM)
    dispatch.run_dispatch(batch, budget_s=0)
    calls = list(Call.objects.filter(direction="outbound"))
    assert sorted(c.to_number for c in calls) == sorted(numbers)
    for call in calls:
        assert_runs_its_arm(call, experiment, call.to_number)


def test_scheduled_call_is_assigned(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any,
                                    experiment: Experiment) -> None:
    sc = create_scheduled_call(twilio_org, SYSTEM, ScheduleInput(
        name="Check-in", agent=agent_a, from_number=twilio_number, to="+12125550123", kind="cron",
        cron="*/5 * * * *", timezone="Europe/Paris"))
    run = fire(sc)
    assert run is not None
    run.refresh_from_db()
    assert run.call is not None
    assert_runs_its_arm(run.call, experiment, "+12125550123")


def test_web_calls_stick_to_the_signed_in_user(org_a: Any, owner_a: Any, editor_a: Any, agent_a: Any,
                                               experiment: Experiment) -> None:
    for user in (owner_a, editor_a):
        calls = [start_web_call(org_a, agent_a, Actor(user=user)).call for _ in range(3)]
        for call in calls:
            assert_runs_its_arm(call, experiment, f"user:{user.pk}")
    # without a user or key (the system) the call is still assigned, just not sticky
    call = start_web_call(org_a, agent_a, SYSTEM).call
    assert call.experiment_arm is not None and call.agent_version_id == call.experiment_arm.version_id


def test_ending_stops_assignment_and_new_calls_run_the_winner(api: Any, owner_a: Any, fake_twilio: Any,
                                                              twilio_number: Any, agent_a: Any,
                                                              experiment: Experiment) -> None:
    winner = experiment.arms.get(label="A")
    end_experiment(experiment, SYSTEM, winner)
    response = api(owner_a).post("/api/v1/calls/", {"agent": str(agent_a.public_id), "to": "+14155557777",
                                                    "from_number": twilio_number.e164}, format="json")
    call = Call.objects.get(public_id=response.json()["id"])
    assert call.experiment_arm is None and call.agent_version_id == winner.version_id
