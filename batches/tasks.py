"""Celery tasks of the batches app: thin wrappers around dispatch and scheduling.

- ``dispatch_batch``: one dispatcher run for a batch; re-enqueues itself while
  the batch needs it. ``kick_dispatch`` collapses concurrent kicks into one
  queued run per batch (a short Redis key), so chains do not multiply.
- ``sweep``: beat runs it every 15 s (see the data migration); it re-kicks
  running batches (a chain lost with a killed worker resumes), and moves
  scheduled-call runs along (outcomes, retries).
- ``fire_scheduled_call``: what each schedule's PeriodicTask runs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.utils import timezone

from batches import dispatch, scheduling
from batches.models import ACTIVE, Batch, BatchEntry, BatchStatus, ScheduledCall
from voiceplatform.tasks import OrgTask

logger = logging.getLogger(__name__)

KICK_KEY = "batches:dispatch-queued:{}"


def kick_dispatch(batch: Batch, countdown: float = 0.0) -> bool:
    """Queue a dispatcher run unless one is already queued. Returns whether it queued."""
    key = KICK_KEY.format(batch.public_id)
    if not cache.add(key, 1, timeout=int(countdown) + 10):
        return False
    dispatch_batch.apply_async((str(batch.org.public_id), str(batch.public_id)), countdown=max(0.0, countdown))
    return True


@shared_task(base=OrgTask, bind=True, name="batches.tasks.dispatch_batch", acks_late=True)
def dispatch_batch(self: Any, org_public_id: str, batch_public_id: str) -> None:
    cache.delete(KICK_KEY.format(batch_public_id))
    batch = Batch.objects.for_org(self.org).filter(public_id=batch_public_id).first()
    if batch is None:
        return
    wait = dispatch.run_dispatch(batch)
    if wait is not None:
        kick_dispatch(batch, countdown=wait)


@shared_task(name="batches.tasks.sweep")
def sweep() -> None:
    needing = Batch.objects.filter(status=BatchStatus.RUNNING).select_related("org")
    for batch in needing:
        kick_dispatch(batch)
    # Paused/canceled batches with calls still in progress need their outcomes recorded.
    waiting = (Batch.objects.filter(status__in=(BatchStatus.PAUSED, BatchStatus.CANCELED),
                                    entries__state__in=ACTIVE).distinct().select_related("org"))
    for batch in waiting:
        kick_dispatch(batch)
    scheduling.process_runs()
    purge_stale_uploads()


STASH_ROOT = "batch-uploads"
STASH_TTL = timedelta(hours=24)


def purge_stale_uploads(now: datetime | None = None) -> int:
    """Delete dashboard uploads that were previewed but never turned into a batch."""
    cutoff = (now or timezone.now()) - STASH_TTL
    removed = 0
    try:
        org_dirs, _ = default_storage.listdir(STASH_ROOT)
    except (FileNotFoundError, NotImplementedError):
        return 0
    for org_dir in org_dirs:
        _, files = default_storage.listdir(f"{STASH_ROOT}/{org_dir}")
        for name in files:
            path = f"{STASH_ROOT}/{org_dir}/{name}"
            if default_storage.get_modified_time(path) < cutoff:
                default_storage.delete(path)
                removed += 1
    return removed


@shared_task(base=OrgTask, bind=True, name="batches.tasks.fire_scheduled_call", acks_late=True)
def fire_scheduled_call(self: Any, org_public_id: str, scheduled_public_id: str) -> None:
    sc = (ScheduledCall.objects.for_org(self.org).filter(public_id=scheduled_public_id)
          .select_related("org", "agent", "from_number").first())
    if sc is None:
        return
    scheduling.fire(sc)


def on_call_ended(call_public_id: str) -> None:
    """A call ended (audit signal): wake the dispatcher of the batch it belongs to,
    so the next row is dialled within a second instead of at the next sweep."""
    entry = (BatchEntry.objects.filter(last_call__public_id=call_public_id)
             .select_related("batch__org").only("batch").first())
    if entry is not None:
        kick_dispatch(entry.batch)
    # A scheduled call's run records its outcome (and schedules a retry) at once.
    scheduling.record_outcome(call_public_id)
