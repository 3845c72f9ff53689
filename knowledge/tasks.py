"""Celery tasks: thin wrappers that take ids and call knowledge.services.

They run on the ingest queue (settings.CELERY_TASK_ROUTES), apart from call-critical
work, because they chew on content any editor can supply. Each has a soft and a hard
time limit (KNOWLEDGE_TASK_SOFT_TIME_LIMIT / KNOWLEDGE_TASK_TIME_LIMIT): the soft one
interrupts the work and the version ends `failed` with `timed_out`; the hard one
(the work was stuck where Python cannot interrupt it) kills the pool process, and
the worker's `on_failure` records the same state, so no version stays "processing".

Retryable embedding failures (rate limits, timeouts, 5xx) are retried with
exponential backoff; after the last attempt the version fails with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_process_init
from django.conf import settings

from knowledge import services
from knowledge.embeddings import EmbeddingError
from knowledge.models import DocumentVersion, IngestState
from orgs.models import Organization
from voiceplatform import metrics
from voiceplatform.tasks import OrgTask

MAX_RETRIES = 5


def consumes_ingest_queue() -> bool:
    """True in a worker that takes ingest work (its ``-Q`` names the ingest queue; without ``-Q`` a
    worker consumes only the default queue)."""
    from voiceplatform.celery import app

    return settings.CELERY_INGEST_QUEUE in (app.amqp.queues.consume_from or {})


@worker_process_init.connect(dispatch_uid="knowledge-warm-embedding-model")
def warm_embedding_model(**_: Any) -> None:
    """Each pool process of an ingest worker loads the local model at start, in a thread (process
    init has a time limit), so the first document ingested is not the one that waits for it."""
    if settings.KNOWLEDGE_WARM_LOCAL_MODEL and consumes_ingest_queue():
        from knowledge.embeddings.local import warm_in_background

        warm_in_background("worker")


class IngestTask(OrgTask):
    """Leaves the version in a final state however the task ends."""

    abstract = True
    soft_time_limit = settings.KNOWLEDGE_TASK_SOFT_TIME_LIMIT
    time_limit = settings.KNOWLEDGE_TASK_TIME_LIMIT

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        # The limits travel in the message; read them from the settings when enqueuing
        # (Celery caches a task's options on first use).
        options.setdefault("soft_time_limit", settings.KNOWLEDGE_TASK_SOFT_TIME_LIMIT)
        options.setdefault("time_limit", settings.KNOWLEDGE_TASK_TIME_LIMIT)
        return super().apply_async(args, kwargs, **options)

    def on_failure(self, exc: Exception, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                   einfo: Any) -> None:
        # Runs in the pool process for an exception, and in the worker's main process
        # after a hard time limit killed the pool process (self.org is not loaded there).
        if len(args) < 2:
            return
        org = Organization.objects.filter(public_id=args[0]).first()
        if org is None:
            return
        if isinstance(exc, TimeLimitExceeded):
            services.fail_timed_out(args[1], org, exc.args[0] if exc.args else self.time_limit)
        else:
            services.fail_unexpectedly(args[1], org, exc)


def _interrupted(exc: BaseException | None) -> bool:
    """Whether the soft time limit is behind `exc`: SDKs wrap whatever interrupts a
    request (the OpenAI client turns it into a retryable connection error), which
    would otherwise send a timed-out task into retries instead of ending it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SoftTimeLimitExceeded):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _soft_limit(task: Any) -> float | None:
    # The limit the message carried as (hard, soft), from the producer's settings; else
    # the task's own.
    limits = task.request.timelimit or (None, None)
    return limits[1] or task.soft_time_limit


def _retry_or_fail(task: Any, exc: EmbeddingError, version_public_id: str) -> None:
    if _interrupted(exc):
        services.fail_timed_out(version_public_id, task.org, _soft_limit(task))
        return
    if task.request.retries < MAX_RETRIES:
        raise task.retry(exc=exc, countdown=min(600, 10 * 2 ** task.request.retries))
    services.fail_after_retries(version_public_id, task.org, exc.message)


def _run_timed(task: Any, version_public_id: str, run: Callable[[str, Organization], None]) -> None:
    """Run one ingestion step, timed into vp_knowledge_ingest_seconds by how it ended:
    ok, failed (the version's content or the backend), retry, timed_out."""
    with metrics.timed_ingestion() as outcome:
        try:
            run(version_public_id, task.org)
        except EmbeddingError as exc:
            outcome["result"] = "retry"
            _retry_or_fail(task, exc, version_public_id)
        except SoftTimeLimitExceeded:
            outcome["result"] = "timed_out"
            services.fail_timed_out(version_public_id, task.org, _soft_limit(task))
        state = (DocumentVersion.objects.for_org(task.org).filter(public_id=version_public_id)
                 .values_list("state", flat=True).first())
        if state == IngestState.FAILED and outcome["result"] in ("ok", "retry"):
            outcome["result"] = "failed"


@shared_task(base=IngestTask, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def ingest_document_version(self: Any, org_public_id: str, version_public_id: str) -> None:
    _run_timed(self, version_public_id, services.ingest_version)


@shared_task(base=IngestTask, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def reembed_document_version(self: Any, org_public_id: str, version_public_id: str) -> None:
    _run_timed(self, version_public_id, services.reembed_version)
