"""A rolling restart of the Celery workers in the middle of a batch (README, "Deployment:
several processes and machines"): each worker gets SIGTERM as a deploy sends it, finishes
its running dispatcher task (the dials it claimed are placed or handed back), exits
cleanly, and a new worker takes over. The exactly-once guarantees of batches.dispatch hold
across it: every row dialled once, none lost, and no claim left behind for the stale-claim
recovery to find."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from batches.models import Batch, BatchEntry, BatchStatus, EntryState
from batches.services import launch_batch
from batches.testing.processes import CarrierScript, CeleryProcess, wait_for
from batches.tests.helpers import make_batch, us_numbers
from calls.tests.calls_fixtures import PUBLIC
from orgs.services import SYSTEM
from voiceplatform.testing import celery_purge, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def procs() -> Iterator[list[CeleryProcess]]:
    celery_purge()  # no earlier test's messages for these workers to run or hold
    started: list[CeleryProcess] = []
    yield started
    for proc in started:
        proc.stop()


def test_a_rolling_restart_of_the_workers_dials_every_row_exactly_once(
        twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any, procs: list[CeleryProcess]) -> None:
    from batches.tasks import sweep

    env = subprocess_env(PUBLIC_BASE_URL=PUBLIC, CELERY_VISIBILITY_TIMEOUT="3", CELERY_RESTORE_SWEEP_S="1",
                         BATCHES_STALE_CLAIM_S="4",
                         BATCHES_DIAL_THREADS="4")
    numbers = us_numbers(14)
    batch = make_batch(twilio_org, agent_a, twilio_number, "phone\n" + "".join(f"{n}\n" for n in numbers),
                       concurrency=4, calls_per_second=10)
    script = CarrierScript(fake_twilio, PUBLIC, lambda to, n: ("completed", ""), hold_s=1.0)
    last_sweep = [0.0]

    def tick() -> None:
        script.tick()
        if time.monotonic() - last_sweep[0] > 3:  # what beat's sweep does every few seconds
            sweep.delay()
            last_sweep[0] = time.monotonic()

    old = [CeleryProcess("worker", name, env).start() for name in ("old-a", "old-b")]
    procs.extend(old)
    for worker in old:  # a SIGTERM before the worker installed its handlers would kill it
        worker.wait_ready()
    launch_batch(batch, SYSTEM)
    dialled = 0
    for index, worker in enumerate(old):
        dialled += 4
        wait_for(lambda: len(script.started) >= dialled, 60,  # noqa: B023 - used at once, in this iteration
                 f"{dialled} calls before restarting a worker", tick=tick)
        worker.terminate()
        wait_for(worker.exited, 60, "the worker to finish its task and exit", tick=tick)
        assert worker.proc is not None and worker.proc.returncode == 0, worker.log()[-3000:]
        procs.append(CeleryProcess("worker", f"new-{index}", env).start())

    wait_for(lambda: Batch.objects.get(pk=batch.pk).status == BatchStatus.COMPLETED, 120,
             "the batch to complete across the restart", tick=tick)
    assert sorted(script.per_number) == sorted(numbers), "a row was lost"
    assert set(script.per_number.values()) == {1}, f"a number was dialled twice: {script.per_number}"
    entries = BatchEntry.objects.filter(batch=batch)
    assert set(entries.values_list("state", flat=True)) == {EntryState.DONE}
    assert not entries.filter(reason__contains="never confirmed").exists()
    # every claim was settled by the worker that took it: nothing for the recovery to find
    assert not any("batch.claim_recovered" in worker.log() for worker in procs)
    assert script.max_live <= 4
