"""What an organisation's delete removes of this app, through this app's services.

``orgs.services.delete_organization`` runs ``teardown_org_campaigns`` (registered in
``BatchesConfig.ready``) inside its transaction, before the cascade, because the cascade
would skip what the services do:

- a schedule's django-celery-beat ``PeriodicTask`` is not scoped to the org (its link is
  ``SET_NULL`` from the schedule), so the cascade left it behind and beat kept firing a
  schedule that no longer existed; ``delete_scheduled_call`` deletes it;
- a running or paused campaign's dispatcher may be claiming rows right now: ``cancel_batch``
  takes the batch lock and cancels what waits (``delete_batch`` alone refuses a live batch);
- campaigns and schedules ``PROTECT`` the agents and numbers the cascade deletes, so they
  have to go first anyway.

A legal hold on any of these refuses the whole org delete before this runs (the org's
delete guard); the audit entries the services record go with the org's audit log.
"""
from __future__ import annotations

from batches.models import Batch, BatchStatus, ScheduledCall
from batches.scheduling import delete_scheduled_call
from batches.services import cancel_batch, delete_batch
from orgs.models import Organization
from orgs.services import Actor


def teardown_org_campaigns(org: Organization, actor: Actor) -> dict[str, int]:
    """Delete every schedule and campaign of ``org`` through their services; returns how many of each."""
    schedules = list(ScheduledCall.objects.for_org(org).order_by("pk"))
    for sc in schedules:
        delete_scheduled_call(sc, actor)
    batches = list(Batch.objects.for_org(org).order_by("pk"))
    for batch in batches:
        if batch.status in (BatchStatus.RUNNING, BatchStatus.PAUSED):
            cancel_batch(batch, actor)
        delete_batch(batch, actor)
    return {ScheduledCall._meta.label_lower: len(schedules), Batch._meta.label_lower: len(batches)}
