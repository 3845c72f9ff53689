"""The call's timeline: durable ``CallEvent`` rows and the live view's short-lived feed.

``add_event`` is how every service records what happened to a call (or to an org, for
events with no call: refused webhooks…). ``push_live_update``/``live_updates`` carry the
transcript and events of a call in progress to the dashboard's live view through the
cache; ``calls.services.lifecycle`` drops that feed once the session's result is stored.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.utils import timezone

from calls.models import Call, CallEvent
from orgs.models import Organization

LIVE_CACHE_PREFIX = "calls:live:"
LIVE_CACHE_TTL_S = 6 * 3600
LIVE_CACHE_MAX_ITEMS = 500


def add_event(call: Call | None, kind: str, *, source: str = "system", org: Organization | None = None,
              offset_ms: int | None = None, **data: Any) -> CallEvent:
    """Put ``kind`` on ``call``'s timeline (or the org's, for an event with no call)."""
    return CallEvent.objects.create(
        org=call.org if call is not None else org,
        call=call,
        kind=kind,
        source=source,
        at=timezone.now(),
        offset_ms=offset_ms,
        data=data,
    )


LIVE_KINDS = frozenset({"transcript", "event"})


def push_live_update(call_public_id: str, kind: str, data: dict[str, Any]) -> None:
    """Live transcript/events for the dashboard's live view: Redis cache, per turn.

    Each update gets its own key under an atomic counter, so updates pushed at the same
    moment (a turn and an event) cannot overwrite each other. Word-by-word
    ``transcript_delta`` updates are skipped: the page shows whole turns.
    """
    if kind not in LIVE_KINDS:
        return
    counter = LIVE_CACHE_PREFIX + str(call_public_id)
    cache.add(counter, 0, LIVE_CACHE_TTL_S)
    number = cache.incr(counter)
    cache.set(f"{counter}:{number}", {"kind": kind, "data": data, "at": timezone.now().isoformat()},
              LIVE_CACHE_TTL_S)


def live_updates(call_public_id: str, limit: int = LIVE_CACHE_MAX_ITEMS) -> list[dict[str, Any]]:
    """The latest ``limit`` live updates of a call, oldest first (empty once it ended)."""
    counter = LIVE_CACHE_PREFIX + str(call_public_id)
    last = cache.get(counter) or 0
    keys = [f"{counter}:{n}" for n in range(max(1, last - limit + 1), last + 1)]
    found = cache.get_many(keys)
    return [found[key] for key in keys if key in found]
