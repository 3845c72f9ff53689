"""Real Celery workers: retries after 500s, and a worker killed with deliveries in flight —
after a restart every event reaches the receiver, none is accepted twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from integrations import webhooks
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from integrations.services import create_webhook_endpoint
from integrations.testing.webhook_receiver import WebhookReceiver
from orgs.services import SYSTEM, record_audit
from voiceplatform.testing import (
    celery_processed_all,
    celery_purge,
    celery_queue_drained,
    celery_worker_idle,
    celery_worker_nodename,
    subprocess_env,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_TASKS = "integrations."  # the names of the tasks that deliver webhooks start so
WORKER_ENV = {"WEBHOOK_RETRY_DELAYS": "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", "WEBHOOK_LEASE_S": "4",
              "WEBHOOK_TIMEOUT_S": "2", "CELERY_VISIBILITY_TIMEOUT": "3",
              "CELERY_RESTORE_SWEEP_S": "1"}


class Worker:
    """A `celery worker` subprocess on the test database and broker queue."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodename = celery_worker_nodename(name)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "voiceplatform", "worker", "-l", "warning", "-c", "2",
             "-n", self.nodename, "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=subprocess_env(**WORKER_ENV), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and pool children): no chance to ack or clean up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    # The workers read these at start (their environment); this process (the sweeper
    # the test runs) gets the same values as settings.
    for key, value in WORKER_ENV.items():
        monkeypatch.setenv(key, value)
    settings.WEBHOOK_RETRY_DELAYS = tuple(float(d) for d in WORKER_ENV["WEBHOOK_RETRY_DELAYS"].split(","))
    settings.WEBHOOK_LEASE_S = float(WORKER_ENV["WEBHOOK_LEASE_S"])
    settings.WEBHOOK_TIMEOUT_S = float(WORKER_ENV["WEBHOOK_TIMEOUT_S"])


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    celery_purge()  # no earlier test's messages for these workers to run or hold
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float, what: str, tick=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_no_event_lost_or_accepted_twice_across_worker_kill(org_a, worker_env, workers):
    with WebhookReceiver() as receiver:
        endpoint = create_webhook_endpoint(org_a, SYSTEM, url=receiver.hook_url, events=["batch.completed"])
        receiver.secret = endpoint.secret
        receiver.down = True  # every attempt fails until the worker has been killed

        first = Worker("first")
        workers.append(first)
        first.start()
        for n in range(12):
            with transaction.atomic():
                record_audit(org_a, SYSTEM, "batch.completed", None, {"n": n})
        assert WebhookEvent.objects.for_org(org_a).count() == 12

        deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
        wait_for(lambda: deliveries.filter(attempt_count__gte=2).count() == 12, 90,
                 "every delivery to have failed at least twice")
        first.kill()  # retries (ETA messages) die unacknowledged with it

        receiver.down = False
        second = Worker("second")
        workers.append(second)
        second.start()
        # Beat would run the sweeper every minute; run it more often here.
        wait_for(lambda: deliveries.filter(status=DeliveryStatus.SUCCEEDED).count() == 12, 90,
                 "every delivery to succeed after the restart", tick=webhooks.sweep_due)
        # The dead worker's unacked messages come back after the visibility timeout, and the
        # sweeps above enqueued duplicates: all of them must find nothing left to send. Wait
        # until every one was processed (none waiting or unacknowledged on the broker, none
        # held by the live worker), so a duplicate send could not still be on its way.
        # Only the webhook tasks: others on the queue (a call's finalisation minutes on, left
        # by an earlier test) may rightly be held for later.
        wait_until(lambda: celery_queue_drained(tasks=WEBHOOK_TASKS) and celery_worker_idle(second.nodename,
                                                                                             WEBHOOK_TASKS),
                   "every webhook task message to be processed and acked",
                   timeout=90, procs=[second.proc], log_tail=celery_processed_all(second.nodename, WEBHOOK_TASKS))
        assert webhooks.sweep_due() == 0, "a delivery was due again after all succeeded"

        accepted = receiver.accepted()
        event_ids = {e.event_id for e in WebhookEvent.objects.for_org(org_a)}
        assert set(accepted) == event_ids, "an event was lost"
        assert set(accepted.values()) == {1}, f"an event was accepted twice: {accepted}"
        assert all(r.signature_ok for r in receiver.received)
        failed_first = {r.event_id for r in receiver.received if r.status == 500}
        assert failed_first == event_ids  # each one really was retried after 500s
        # Every request the receiver saw is an attempt on record (no unrecorded sends).
        recorded = sum(d.attempts.exclude(error="worker stopped before the response was recorded").count()
                       for d in deliveries)
        assert recorded >= len(receiver.received) - 2  # at most the 2 pool slots were mid-request at the kill
