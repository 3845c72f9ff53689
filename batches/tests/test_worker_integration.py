"""Real Celery worker (and beat) subprocesses on the real Redis and Postgres,
dialling through the real twilio SDK into the fake Twilio server; the carrier's
side of each call is played by ``CarrierScript`` posting signed status callbacks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Count

from batches.models import Batch, BatchEntry, BatchStatus, EntryState, RunState, ScheduledCallRun
from batches.scheduling import ScheduleInput, create_scheduled_call
from batches.services import launch_batch
from batches.testing.processes import CarrierScript, CeleryProcess, wait_for
from batches.tests.helpers import make_batch, us_numbers
from calls.models import Call
from calls.tests.calls_fixtures import PUBLIC
from orgs.models import AuditLog
from orgs.services import SYSTEM
from voiceplatform.testing import (
    celery_processed_all,
    celery_purge,
    celery_queue_drained,
    celery_worker_idle,
    subprocess_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def procs() -> Iterator[list[CeleryProcess]]:
    celery_purge()  # no earlier test's messages for these workers to run or hold
    started: list[CeleryProcess] = []
    yield started
    for proc in started:
        proc.stop()


def env(**extra: str) -> dict[str, str]:
    return subprocess_env(PUBLIC_BASE_URL=PUBLIC, CELERY_VISIBILITY_TIMEOUT="3", CELERY_RESTORE_SWEEP_S="1",
                          BATCHES_STALE_CLAIM_S="4",
                          BATCHES_DIAL_THREADS="4",
                          **extra)


def test_batch_on_two_workers_honours_window_concurrency_and_retries(
        twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any, procs: list[CeleryProcess]) -> None:
    # Controlled clock: the worker believes it is 20 s before a 09:00 window opens in
    # New York (the callees' zone), so nothing may ring for the first 20 s.
    new_york = ZoneInfo("America/New_York")
    opening = (datetime.now(UTC).astimezone(new_york) + timedelta(days=1)).replace(hour=9, minute=0, second=0,
                                                                                   microsecond=0)
    offset = (opening - timedelta(seconds=20)) - datetime.now(UTC)
    window = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "17:00"}
    numbers = us_numbers(8)
    text = "phone,customer_name\n" + "".join(f"{n},C{i}\n" for i, n in enumerate(numbers))
    batch = make_batch(twilio_org, agent_a, twilio_number, text, concurrency=3, calls_per_second=20,
                       max_attempts=2, retry_delay_s=1, calling_window=window)
    busy_first = set(numbers[:3])
    script = CarrierScript(fake_twilio, PUBLIC, lambda to, n: ("busy", "") if to in busy_first and n == 1
                           else ("completed", ""), hold_s=0.6)

    # Two workers at once: claims, limits and retries must hold across them.
    for name in ("w1", "w2"):
        procs.append(CeleryProcess("worker", name, env(BATCHES_CLOCK_OFFSET_S=str(offset.total_seconds()))).start())
    launched = time.time()
    launch_batch(batch, SYSTEM)
    wait_for(lambda: batch_status(batch) == BatchStatus.COMPLETED, 120, "the batch to complete", tick=script.tick)

    assert script.first_dial_at is not None and script.first_dial_at - launched >= 15, "dialled outside the window"
    assert script.max_live <= 3, f"{script.max_live} calls live at once with concurrency 3"
    assert {n: script.per_number[n] for n in numbers} == {n: 2 if n in busy_first else 1 for n in numbers}
    states = dict(BatchEntry.objects.filter(batch=batch).values_list("e164", "state"))
    assert set(states.values()) == {EntryState.DONE}
    completed = AuditLog.objects.for_org(twilio_org).filter(action="batch.completed")
    assert completed.count() == 1 and completed.get().changes["done"] == 8


def batch_status(batch: Batch) -> str:
    return Batch.objects.get(pk=batch.pk).status


def claimed_not_placed(batch: Batch) -> bool:
    """A dispatcher holds a claim whose call is not placed yet (the carrier has the
    call before the row leaves "dialing")."""
    return BatchEntry.objects.filter(batch=batch, state=EntryState.DIALING).exists()


def placed_calls(script: CarrierScript) -> set[str]:
    """Carrier ids of the calls the carrier has and our database recorded (a worker killed
    between the carrier's answer and the write leaves a call the carrier never hears about again)."""
    return set(Call.objects.filter(carrier_call_id__in=list(script.started)).values_list("carrier_call_id", flat=True))


def test_killed_worker_loses_no_row_and_dials_none_twice(
        twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any, procs: list[CeleryProcess]) -> None:
    from batches.tasks import sweep

    numbers = us_numbers(12)
    text = "phone\n" + "".join(f"{n}\n" for n in numbers)
    batch = make_batch(twilio_org, agent_a, twilio_number, text, concurrency=4, calls_per_second=10)
    script = CarrierScript(fake_twilio, PUBLIC, lambda to, n: ("completed", ""), hold_s=1.5)
    first = CeleryProcess("worker", "first", env()).start()
    procs.append(first)
    launch_batch(batch, SYSTEM)
    wait_for(lambda: len(script.started) >= 4, 60, "the first calls", tick=script.tick)
    first.kill()
    # The carrier keeps its calls going while no worker runs: the outage lasts until every
    # call the dead worker had placed (its carrier id recorded) has ended at the carrier.
    wait_for(lambda: placed_calls(script) <= script.ended, 60, "the calls placed before the kill to end",
             tick=script.tick)
    second = CeleryProcess("worker", "second", env()).start()
    procs.append(second)
    # Beat's sweep re-kicks running batches; run it here the way beat would.
    last_sweep = [0.0]

    def tick() -> None:
        script.tick()
        if time.monotonic() - last_sweep[0] > 3:
            sweep.delay()
            last_sweep[0] = time.monotonic()

    wait_for(lambda: batch_status(batch) == BatchStatus.COMPLETED, 120, "the batch to complete after the kill",
             tick=tick)
    assert sorted(script.per_number) == sorted(numbers), "a row was lost"
    assert set(script.per_number.values()) == {1}, f"a number was dialled twice: {script.per_number}"
    assert set(BatchEntry.objects.filter(batch=batch).values_list("state", flat=True)) == {EntryState.DONE}
    assert script.max_live <= 4


def test_cron_schedule_fires_under_real_beat(twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any,
                                              procs: list[CeleryProcess]) -> None:
    sc = create_scheduled_call(twilio_org, SYSTEM, ScheduleInput(
        name="Every minute", agent=agent_a, from_number=twilio_number, to="+12125550199", kind="cron",
        cron="* * * * *", timezone="Asia/Kolkata", variables={"customer_name": "Ann"}))
    script = CarrierScript(fake_twilio, PUBLIC, lambda to, n: ("completed", ""), hold_s=0.5)
    procs.append(CeleryProcess("worker", "sched", env()).start())
    procs.append(CeleryProcess("beat", "beat", env()).start())
    runs = ScheduledCallRun.objects.filter(scheduled_call=sc)
    wait_for(lambda: runs.filter(state=RunState.DONE).exists(), 150, "a cron run to fire and finish",
             tick=script.tick, every=0.5)
    run = runs.filter(state=RunState.DONE).first()
    assert run.call is not None and run.call.to_number == "+12125550199"
    assert run.call.variables == {"customer_name": "Ann"}
    assert run.due_at.second == 0 and abs((run.fired_at - run.due_at).total_seconds()) < 30
    assert script.per_number["+12125550199"] == runs.count()


def test_pause_resume_and_cancel_take_effect(
        twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any, procs: list[CeleryProcess]) -> None:
    from batches.services import cancel_batch, pause_batch, resume_batch

    numbers = us_numbers(40)
    text = "phone\n" + "".join(f"{n}\n" for n in numbers)
    batch = make_batch(twilio_org, agent_a, twilio_number, text, concurrency=5, calls_per_second=2)
    script = CarrierScript(fake_twilio, PUBLIC, lambda to, n: ("completed", ""), hold_s=0.3)
    worker = CeleryProcess("worker", "pause", env()).start()
    procs.append(worker)
    launch_batch(batch, SYSTEM)
    wait_for(lambda: len(script.started) >= 3, 60, "the first calls", tick=script.tick)
    pause_batch(batch, SYSTEM)
    # A row claimed before the pause committed may still be dialled: wait until every
    # claim is placed (or handed back), however slow the machine. Then the calls in
    # progress end and the dispatcher, woken by each, finds the batch paused: once no call
    # is in progress and the worker has processed every message (none queued, none held),
    # nothing is left that could dial, and nothing more may have rung.
    wait_for(lambda: not claimed_not_placed(batch), 60, "claims made before the pause to be placed",
             tick=script.tick)
    count = len(fake_twilio.calls)
    # Only the campaign's tasks (which dial): each answered call also schedules its
    # finalisation two minutes on, which the worker rightly holds.
    wait_for(lambda: (not BatchEntry.objects.filter(batch=batch, state__in=["dialing", "in_call"]).exists()
                      and celery_queue_drained(tasks="batches.") and celery_worker_idle(worker.nodename, "batches.")),
             60, "the calls in progress to end and the worker to hold no campaign task", tick=script.tick,
             log_tail=celery_processed_all(worker.nodename, "batches."))
    assert len(fake_twilio.calls) == count, "dialled while paused"
    resume_batch(batch, SYSTEM)
    wait_for(lambda: len(fake_twilio.calls) > count, 60, "dialling to resume", tick=script.tick)
    cancel_batch(batch, SYSTEM)
    wait_for(lambda: not claimed_not_placed(batch), 60, "claims made before the cancel to be placed",
             tick=script.tick)
    count = len(fake_twilio.calls)
    wait_for(lambda: not BatchEntry.objects.filter(batch=batch, state__in=["dialing", "in_call"]).exists(), 30,
             "calls in progress to finish", tick=script.tick)
    assert len(fake_twilio.calls) == count, "dialled after cancel"
    counts = dict(BatchEntry.objects.filter(batch=batch).values_list("state").annotate(n=Count("id")))
    assert counts.get("pending", 0) == 0 and counts["canceled"] + counts["done"] == 40
    assert counts["done"] == len(script.started)
