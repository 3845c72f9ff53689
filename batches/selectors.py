"""Read-only queries of the batches app used by other apps."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet


def campaign_call_ids(org: Any, campaign_public_id: str) -> QuerySet[Any]:
    """The ids of the calls ``org``'s campaign ``campaign_public_id`` made (for the calls list's
    campaign filter; registered with ``calls.selectors``). Another org's campaign: none."""
    from batches.models import BatchCallAttempt

    return BatchCallAttempt.objects.filter(entry__batch__org=org, entry__batch__public_id=campaign_public_id,
                                           call__isnull=False).values("call_id")
