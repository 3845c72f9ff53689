"""Celery tasks of the privacy app: the retention purge.

``purge_expired`` (beat, hourly) queues one ``purge_org`` per org with a retention policy;
each deletes at most ``MAX_BATCHES`` batches per kind (``privacy.retention.purge_org``)
and queues itself again while more has expired, so no run holds a worker for long.
Purging is idempotent: a redelivered task finds nothing left to delete.
"""

from __future__ import annotations

from celery import shared_task

from privacy.retention import orgs_with_policies, purge_org
from voiceplatform.tasks import OrgTask


@shared_task(name="privacy.purge_expired")
def purge_expired() -> int:
    """Queue a purge of every org that has a retention policy; returns how many."""
    queued = 0
    for org_public_id in orgs_with_policies().values_list("public_id", flat=True):
        purge_org_task.delay(str(org_public_id))
        queued += 1
    return queued


@shared_task(base=OrgTask, bind=True, name="privacy.purge_org", acks_late=True)
def purge_org_task(self: OrgTask, org_public_id: str) -> dict[str, int]:
    assert self.org is not None
    result = purge_org(self.org)
    if result.more:
        purge_org_task.delay(org_public_id)
    return result.deleted
