"""Worker exhaustion (issue 11, item 5), proved with real Celery workers.

- Every registered task has a soft and a hard time limit and an explicit queue.
- Ingestion (content any editor can supply) runs on its own queue and worker: while a
  poisoned document holds the ingest worker, a call is still finalised and its webhook
  delivered, and a campaign dials and completes, on the default worker.
- An ingestion that outlives its soft time limit ends `failed` / `timed_out` with the
  limit in the message, and the ingest worker takes the next document.
"""
from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from calls.tests.calls_fixtures import *  # noqa: F401,F403 - carrier fakes wired into org A
from calls.tests.calls_fixtures import PUBLIC
from knowledge.models import DocumentVersion, IngestState
from knowledge.services import SourceInput, add_document, create_knowledge_base
from knowledge.testing.fake_embeddings import FakeOpenAIEmbeddings
from knowledge.testing.fake_server import RecordedRequest, Response
from orgs.services import SYSTEM, set_provider_credential
from voiceplatform.testing import subprocess_env, wait_until

ROOT = Path(__file__).resolve().parents[2]

# What must never wait behind tenant content, and what is tenant content.
CALL_CRITICAL = {"calls.finalize_call", "integrations.deliver_webhook", "batches.tasks.dispatch_batch",
                 "batches.tasks.fire_scheduled_call", "calls.expire_stale_calls", "batches.tasks.sweep"}
UNTRUSTED_CONTENT = {"knowledge.tasks.ingest_document_version", "knowledge.tasks.reembed_document_version"}


def _registered_tasks() -> dict[str, Any]:
    from voiceplatform.celery import app

    app.loader.import_default_modules()  # what a worker imports at start (autodiscovery)
    return dict(app.tasks)


def _explicit_queue(name: str) -> str | None:
    for pattern, route in django_settings.CELERY_TASK_ROUTES.items():
        if fnmatch.fnmatchcase(name, pattern):
            return route["queue"]
    return None


def test_every_registered_task_has_time_limits_and_an_explicit_queue() -> None:
    from voiceplatform.celery import app

    tasks = _registered_tasks()
    assert CALL_CRITICAL | UNTRUSTED_CONTENT <= set(tasks), "the guard must see the project's tasks"
    visibility = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    problems = []
    for name, task in sorted(tasks.items()):
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        if not (soft and hard and 0 < soft < hard < visibility):
            problems.append(f"{name}: soft {soft}, hard {hard} (need 0 < soft < hard < visibility {visibility})")
        queue = _explicit_queue(name)
        if queue not in (django_settings.CELERY_TASK_DEFAULT_QUEUE, django_settings.CELERY_INGEST_QUEUE):
            problems.append(f"{name}: no explicit route in CELERY_TASK_ROUTES (got {queue!r})")
        elif app.amqp.router.route({}, name)["queue"].name != queue:
            problems.append(f"{name}: Celery's router does not send it to {queue!r}")
    assert not problems, "\n".join(problems)
    for name in UNTRUSTED_CONTENT:
        assert _explicit_queue(name) == django_settings.CELERY_INGEST_QUEUE, name
        assert tasks[name].soft_time_limit == django_settings.KNOWLEDGE_TASK_SOFT_TIME_LIMIT
    for name in CALL_CRITICAL:
        assert _explicit_queue(name) == django_settings.CELERY_TASK_DEFAULT_QUEUE, name
    assert django_settings.CELERY_INGEST_QUEUE != django_settings.CELERY_TASK_DEFAULT_QUEUE


# --- two real workers ----------------------------------------------------------------------

class Worker:
    """`celery worker -Q <queue>` on the test database and broker."""

    def __init__(self, name: str, queue: str, **env: str) -> None:
        self.name, self.queue, self.env = name, queue, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(f"/tmp/vp-hostile-{name}-{os.getpid()}.log")

    def start(self) -> Worker:
        log = self.log_path.open("wb")  # kept for a post-mortem of a failed run
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "voiceplatform", "worker", "-l", "info", "-c", "1",
             "-Q", self.queue, "-n", f"{self.name}-{os.getpid()}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=subprocess_env(**self.env), start_new_session=True, stdout=log, stderr=log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a held task would stall a warm shutdown
            self.proc.wait(timeout=15)


@pytest.fixture
def workers() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(name: str, queue: str, **env: str) -> Worker:
        worker = Worker(name, queue, **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, workers: list[Worker] = ()) -> None:
    wait_until(predicate, what, timeout=timeout,
               log_tail=lambda: "\n".join(f"--- {w.name}\n{w.log()}" for w in workers))


class HeldEmbeddings(FakeOpenAIEmbeddings):
    """The OpenAI embeddings API, except that it answers only once released: the
    ingestion waiting on it holds its worker, like a document that takes forever."""

    def __init__(self) -> None:
        super().__init__(api_key="sk-held")
        self.held = threading.Event()
        self.release = threading.Event()

    def handle(self, request: RecordedRequest) -> Response:
        self.held.set()
        self.release.wait(300)
        return super().handle(request)

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        super().__exit__(*exc)


def _held_knowledge_base(org: Any, fake: HeldEmbeddings) -> Any:
    set_provider_credential(org, SYSTEM, "openai", {"api_key": "sk-held"}, config={"base_url": f"{fake.base_url}/v1"})
    return create_knowledge_base(org, SYSTEM, name="Poisoned", embedding_backend="openai",
                                 embedding_model="text-embedding-3-small", embedding_dimensions=1536)


def _version(document: Any) -> DocumentVersion:
    return DocumentVersion.objects.get(pk=document.latest_version_id)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_stuck_ingestion_never_delays_call_finalisation_its_webhook_or_a_campaign(
        org_a: Any, workers: Any, twilio_org: Any, agent_a: Any, twilio_number: Any, fake_twilio: Any) -> None:
    from batches.models import Batch, BatchStatus
    from batches.services import launch_batch
    from batches.testing.processes import CarrierScript
    from batches.tests.helpers import make_batch, us_numbers
    from calls.tasks import finalize_call_task
    from calls.tests.factories import make_call
    from integrations.services import create_webhook_endpoint
    from integrations.testing.webhook_receiver import WebhookReceiver

    with HeldEmbeddings() as fake, WebhookReceiver() as receiver:
        kb = _held_knowledge_base(org_a, fake)
        endpoint = create_webhook_endpoint(org_a, SYSTEM, url=receiver.hook_url, events=["call.ended"])
        receiver.secret = endpoint.secret
        started = [workers("ingest", django_settings.CELERY_INGEST_QUEUE),
                   workers("default", django_settings.CELERY_TASK_DEFAULT_QUEUE, PUBLIC_BASE_URL=PUBLIC)]

        # Two poisoned documents: the first holds the ingest worker, the second queues behind it.
        poisoned = [add_document(kb, SYSTEM, SourceInput(text=f"Refund policy {n}: paid within 30 days."))
                    for n in range(2)]
        wait_for(fake.held.is_set, 120, "the ingest worker to be held by the poisoned document", started)

        call = make_call(org_a, status="completed", ended_at=timezone.now())
        finalize_call_task.delay(str(org_a.public_id), str(call.public_id))

        def call_webhook_delivered() -> bool:
            return any(r.event_type == "call.ended" and r.status == 200 for r in receiver.received)

        wait_for(call_webhook_delivered, 120, "the call's finalisation and webhook on the default worker", started)
        call.refresh_from_db()
        assert call.finalized_at is not None
        # Ordering, not timing: the call was finalised and announced while every poisoned
        # document was still unfinished (the provider has not answered a single request).
        states = [_version(d).state for d in poisoned]
        assert states[0] == IngestState.EMBEDDING and states[1] == IngestState.QUEUED, states
        assert not fake.release.is_set()

        # A campaign launched now dials and completes on the default worker, the ingest
        # worker still held (the carrier's side played by signed status callbacks).
        numbers = us_numbers(3)
        batch = make_batch(twilio_org, agent_a, twilio_number,
                           "phone,customer_name\n" + "".join(f"{n},C{i}\n" for i, n in enumerate(numbers)),
                           concurrency=3, calls_per_second=20)
        script = CarrierScript(fake_twilio, PUBLIC, lambda to, n: ("completed", ""), hold_s=0.3)
        launch_batch(batch, SYSTEM)
        def campaign_completed() -> bool:
            script.tick()
            return Batch.objects.get(pk=batch.pk).status == BatchStatus.COMPLETED

        wait_until(campaign_completed, "the campaign to complete on the default worker", timeout=120,
                   log_tail=lambda: "\n".join(f"--- {w.name}\n{w.log()}" for w in started))
        assert {n: script.per_number[n] for n in numbers} == {n: 1 for n in numbers}
        assert [_version(d).state for d in poisoned] == states and not fake.release.is_set()

        fake.release.set()
        wait_for(lambda: all(_version(d).state == IngestState.READY for d in poisoned), 120,
                 "the poisoned documents to finish once the provider answers", started)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_ingestion_past_its_soft_time_limit_ends_failed_and_frees_the_worker(
        org_a: Any, workers: Any, settings: Any) -> None:
    # The limits travel in the task message, from the enqueuing process's settings; the
    # worker runs with the same ones.
    settings.KNOWLEDGE_TASK_SOFT_TIME_LIMIT, settings.KNOWLEDGE_TASK_TIME_LIMIT = 3, 60
    with HeldEmbeddings() as fake:
        kb = _held_knowledge_base(org_a, fake)
        started = [workers("ingest-limited", django_settings.CELERY_INGEST_QUEUE, KNOWLEDGE_TASK_SOFT_TIME_LIMIT="3",
                           KNOWLEDGE_TASK_TIME_LIMIT="60")]
        document = add_document(kb, SYSTEM, SourceInput(text="A document whose embedding never comes back."))
        wait_for(fake.held.is_set, 120, "the ingestion to reach the provider", started)
        # The provider never answers; the soft limit (3 s, well under the client's 30 s
        # timeout and the 60 s hard limit) is what ends the work.
        wait_for(lambda: _version(document).state == IngestState.FAILED, 120, "the version to fail", started)
        version = _version(document)
        assert version.error_code == "timed_out"
        assert "processing took longer than the limit of 3 s" in version.error_message
        assert version.finished_at is not None
        document.refresh_from_db()
        assert document.current_version_id is None  # nothing half-ingested went live

        # The worker is free and the next document (provider answering again) ingests.
        fake.release.set()
        healthy = add_document(kb, SYSTEM, SourceInput(text="Opening hours: nine to five."))
        wait_for(lambda: _version(healthy).state == IngestState.READY, 120, "the next document", started)


@pytest.mark.django_db
def test_a_hard_time_limit_or_a_crash_still_ends_the_version_failed(org_a: Any) -> None:
    """After a hard time limit Celery kills the pool process and calls the task's
    `on_failure` in the worker's main process (no `self.org` there); an unexpected
    exception takes the same path in the pool process. Either way the version ends
    `failed` instead of reading "extracting" forever."""
    from celery.exceptions import TimeLimitExceeded

    from knowledge.tasks import ingest_document_version

    kb = create_knowledge_base(org_a, SYSTEM, name="Stuck")
    stuck = add_document(kb, SYSTEM, SourceInput(text="Killed mid-way."))
    crashed = add_document(kb, SYSTEM, SourceInput(text="Crashed mid-way."))
    DocumentVersion.objects.filter(document__in=[stuck, crashed]).update(state=IngestState.EXTRACTING)

    task = ingest_document_version._get_current_object()
    task.on_failure(TimeLimitExceeded(1860), "task-id", (str(org_a.public_id), str(_version(stuck).public_id)), {},
                    None)
    task.on_failure(KeyError("a secret value"), "task-id", (str(org_a.public_id), str(_version(crashed).public_id)),
                    {}, None)

    killed = _version(stuck)
    assert killed.state == IngestState.FAILED and killed.error_code == "timed_out"
    assert killed.error_message == ("Killed mid-way.: processing took longer than the limit of 1,860 s; "
                                    "split the document into smaller files")
    broken = _version(crashed)
    assert broken.state == IngestState.FAILED and broken.error_code == "internal_error"
    assert broken.error_message == "processing failed unexpectedly (KeyError)"  # no exception text

    # A finished version is never touched by a late failure report.
    task.on_failure(TimeLimitExceeded(1860), "task-id", (str(org_a.public_id), str(killed.public_id)), {}, None)
    assert _version(stuck).error_message == killed.error_message
