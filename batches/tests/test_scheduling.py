"""Scheduled calls in process: firing, duplicate delivery, missed-run policy,
retries, do-not-call — against the fake Twilio server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from batches import scheduling
from batches.models import MissedRunPolicy, RunState, ScheduledCallRun
from batches.scheduling import ScheduleInput, create_scheduled_call, fire
from batches.services import BatchError, add_do_not_call
from batches.tests.helpers import end_call
from orgs.models import AuditLog
from orgs.services import SYSTEM
from voiceplatform.testing import refused

pytestmark = pytest.mark.django_db
CALLS = r"/2010-04-01/Accounts/AC\w+/Calls\.json"


def schedule(org: Any, agent: Any, number: Any, **values: Any) -> Any:
    data = {"name": "Check-in", "agent": agent, "from_number": number, "to": "+12125550123", "kind": "cron",
            "cron": "*/5 * * * *", "timezone": "Europe/Paris", **values}
    return create_scheduled_call(org, SYSTEM, ScheduleInput(**data))


def test_fire_dials_once_even_if_delivered_twice(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                 fake_twilio: Any) -> None:
    sc = schedule(twilio_org, agent_a, twilio_number, variables={"customer_name": "Ann"})
    run = fire(sc)
    again = fire(sc)
    assert run is not None and again is not None and again.pk == run.pk
    run.refresh_from_db()
    assert run.state == RunState.IN_CALL and run.call.variables == {"customer_name": "Ann"}
    assert run.due_at.minute % 5 == 0 and run.due_at.second == 0
    assert len(fake_twilio.requests_to("POST", CALLS)) == 1
    end_call(fake_twilio, run.call, "completed")
    scheduling.process_runs()  # what beat's sweep does (the call-ended signal does it after commit)
    run.refresh_from_db()
    assert run.state == RunState.DONE and run.outcome == "completed"


def test_missed_run_policies(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any,
                             settings: Any) -> None:
    when = timezone.now() + timedelta(hours=1)
    skip = schedule(twilio_org, agent_a, twilio_number, kind="one_time", run_at=when,
                    missed_run_policy=MissedRunPolicy.SKIP)
    late = schedule(twilio_org, agent_a, twilio_number, kind="one_time", run_at=when, to="+12125550124")
    # Beat was down: the firing arrives two hours after the due time.
    settings.BATCHES_CLOCK_OFFSET_S = float(str(3 * 3600))
    skipped = fire(skip)
    assert skipped.state == RunState.MISSED and skipped.call is None and "skipped by policy" in skipped.error
    assert AuditLog.objects.for_org(twilio_org).filter(action="scheduled_call.missed").count() == 1
    ran = fire(late)
    ran.refresh_from_db()
    assert ran.state == RunState.IN_CALL
    assert [r.value("To") for r in fake_twilio.requests_to("POST", CALLS)] == ["+12125550124"]


def test_retries_after_busy(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any,
                            settings: Any) -> None:
    sc = schedule(twilio_org, agent_a, twilio_number, max_attempts=2, retry_delay_s=60)
    run = fire(sc)
    run.refresh_from_db()
    end_call(fake_twilio, run.call, "busy")
    scheduling.process_runs()
    run.refresh_from_db()
    assert run.state == RunState.RETRY_WAIT and run.attempts == 1
    assert scheduling.process_runs() == 0  # not due yet
    assert run.next_attempt_at is not None
    settings.BATCHES_CLOCK_OFFSET_S = float("120")
    scheduling.process_runs()
    run.refresh_from_db()
    assert run.state == RunState.IN_CALL and run.attempts == 2
    end_call(fake_twilio, run.call, "no_answer", sequence=20)
    scheduling.process_runs()
    run.refresh_from_db()
    assert (run.state, run.outcome) == (RunState.FAILED, "no_answer")
    assert len(fake_twilio.requests_to("POST", CALLS)) == 2


def test_do_not_call_blocks_a_scheduled_call(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                             fake_twilio: Any) -> None:
    sc = schedule(twilio_org, agent_a, twilio_number)
    add_do_not_call(twilio_org, SYSTEM, sc.to)
    run = fire(sc)
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "do-not-call" in run.error
    assert fake_twilio.requests_to("POST", CALLS) == []


def test_a_one_time_schedules_clock_goes_when_it_is_replaced_or_deleted(org_a: Any, agent_a: Any) -> None:
    """Each change of a one-time schedule makes a new ClockedSchedule; the one replaced, and
    the last on delete, are deleted too (no beat rows outlive their schedule)."""
    from django_celery_beat.models import ClockedSchedule, PeriodicTask

    from batches.scheduling import delete_scheduled_call, update_scheduled_call
    from calls.tests.factories import make_phone_number

    number = make_phone_number(org_a)
    values = {"name": "Once", "agent": agent_a, "from_number": number, "to": "+12125550123", "kind": "one_time",
              "timezone": "UTC"}
    kept = schedule(org_a, agent_a, number, kind="one_time", run_at=timezone.now() + timedelta(days=3))
    before = set(ClockedSchedule.objects.values_list("pk", flat=True))
    sc = create_scheduled_call(org_a, SYSTEM, ScheduleInput(**values, run_at=timezone.now() + timedelta(days=1)))
    for days in (2, 4):
        sc = update_scheduled_call(sc, SYSTEM, ScheduleInput(**values, run_at=timezone.now() + timedelta(days=days)))
    clock = PeriodicTask.objects.get(pk=sc.periodic_task_id).clocked
    assert set(ClockedSchedule.objects.values_list("pk", flat=True)) == before | {clock.pk}
    sc = update_scheduled_call(sc, SYSTEM, ScheduleInput(**{**values, "kind": "cron", "cron": "0 9 * * 1"}))
    assert set(ClockedSchedule.objects.values_list("pk", flat=True)) == before
    sc = update_scheduled_call(sc, SYSTEM, ScheduleInput(**values, run_at=timezone.now() + timedelta(days=5)))
    delete_scheduled_call(sc, SYSTEM)
    assert set(ClockedSchedule.objects.values_list("pk", flat=True)) == before
    assert PeriodicTask.objects.get(pk=kept.periodic_task_id).clocked_id in before  # another schedule's clock stays


def test_validation_messages(org_a: Any, agent_a: Any) -> None:
    from calls.tests.factories import make_phone_number

    number = make_phone_number(org_a)
    with refused(BatchError, field="to", match="^not a phone number"):
        schedule(org_a, agent_a, number, to="hello")
    with refused(BatchError, field="timezone", match="^'Mars/Base' is not a known time zone"):
        schedule(org_a, agent_a, number, timezone="Mars/Base")
    with refused(BatchError, field="run_at", match="^a one-time call needs a date and time"):
        schedule(org_a, agent_a, number, kind="one_time")
    with refused(BatchError, field="cron", match="^'0 9 31 2 \\*' never runs"):
        schedule(org_a, agent_a, number, cron="0 9 31 2 *")
    assert not ScheduledCallRun.objects.exists()


@pytest.mark.parametrize(("cron", "zone"), [("30 9 * * *", "America/New_York"), ("0 18 * * 1-5", "Asia/Kolkata"),
                                            ("15 */4 1 * *", "Europe/Paris")])
def test_preview_matches_what_beat_will_do(org_a: Any, agent_a: Any, cron: str, zone: str) -> None:
    """The CrontabSchedule we store, evaluated by celery's own crontab, is due at
    the same instant the preview shows."""
    from django_celery_beat.models import PeriodicTask

    from batches.schedule_rules import next_runs
    from calls.tests.factories import make_phone_number

    sc = schedule(org_a, agent_a, make_phone_number(org_a), cron=cron, timezone=zone)
    crontab = PeriodicTask.objects.get(pk=sc.periodic_task_id).crontab.schedule
    now = timezone.now()
    expected = next_runs(cron, zone, count=1, after=now)[0]
    remaining = crontab.remaining_estimate(now)
    assert abs((now + remaining - expected).total_seconds()) < 1.5


def test_fire_slightly_early_belongs_to_the_upcoming_run(twilio_org: Any, agent_a: Any, twilio_number: Any,
                                                         fake_twilio: Any, settings: Any) -> None:
    from batches import clock
    from batches.schedule_rules import next_runs

    sc = schedule(twilio_org, agent_a, twilio_number, cron="0 9 * * *", missed_run_policy=MissedRunPolicy.SKIP)
    upcoming = next_runs("0 9 * * *", "Europe/Paris", count=1, after=clock.now())[0]
    settings.BATCHES_CLOCK_OFFSET_S = float(str((upcoming - timezone.now()).total_seconds() - 0.5))
    run = fire(sc)
    assert run.due_at == upcoming and run.state != RunState.MISSED
