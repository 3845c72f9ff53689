"""Celery tasks: thin wrappers that take ids and call knowledge.services.

Retryable embedding failures (rate limits, timeouts, 5xx) are retried with
exponential backoff; after the last attempt the version fails with the reason.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from knowledge import services
from knowledge.embeddings import EmbeddingError
from voiceplatform.tasks import OrgTask

MAX_RETRIES = 5


def _retry_or_fail(task: Any, exc: EmbeddingError, version_public_id: str) -> None:
    if task.request.retries < MAX_RETRIES:
        raise task.retry(exc=exc, countdown=min(600, 10 * 2 ** task.request.retries))
    services.fail_after_retries(version_public_id, task.org, exc.message)


@shared_task(base=OrgTask, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def ingest_document_version(self: Any, org_public_id: str, version_public_id: str) -> None:
    try:
        services.ingest_version(version_public_id, self.org)
    except EmbeddingError as exc:
        _retry_or_fail(self, exc, version_public_id)


@shared_task(base=OrgTask, bind=True, max_retries=MAX_RETRIES, acks_late=True)
def reembed_document_version(self: Any, org_public_id: str, version_public_id: str) -> None:
    try:
        services.reembed_version(version_public_id, self.org)
    except EmbeddingError as exc:
        _retry_or_fail(self, exc, version_public_id)
