"""Celery tasks of the analytics app: the nightly reconciliation of the rollups.

``reconcile_recent_days`` (beat, nightly) fans out one ``rebuild_org_days`` per org
that had calls in the window; each rebuilds the org's recent local days from the
calls table in bounded batches (``analytics.rollups.rebuild_day``). Rebuilding is
idempotent, so a redelivered task only repeats the same result.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from celery import shared_task
from django.utils import timezone

from analytics.rollups import rebuild_days
from calls.models import Call
from orgs.models import Organization
from voiceplatform.tasks import OrgTask

#: Local days rebuilt each night, ending today: late costs and analyses land within them.
RECONCILE_DAYS = 3


@shared_task(name="analytics.reconcile_recent_days")
def reconcile_recent_days(days: int = RECONCILE_DAYS) -> int:
    """Queue a rebuild of each of the last ``days`` local days for every org with calls
    since; returns the number of orgs."""
    since = timezone.now() - timedelta(days=days + 1)
    org_ids = Call.objects.filter(created_at__gte=since).values_list("org_id", flat=True).distinct()
    queued = 0
    for org in Organization.objects.filter(pk__in=org_ids):
        today = timezone.now().astimezone(ZoneInfo(org.timezone)).date()
        # one task per day: each stays far below the task time limit whatever the org's volume
        for back in range(days):
            day = (today - timedelta(days=back)).isoformat()
            rebuild_org_days.delay(str(org.public_id), day, day)
        queued += 1
    return queued


@shared_task(base=OrgTask, bind=True, name="analytics.rebuild_org_days", acks_late=True)
def rebuild_org_days(self: OrgTask, org_public_id: str, first: str, last: str) -> int:
    """Rebuild the org's rollups for local days ``first``..``last`` (ISO dates)."""
    assert self.org is not None
    return rebuild_days(self.org, date.fromisoformat(first), date.fromisoformat(last))
