"""Prepared sessions nobody will take are closed within seconds, not after a minute.

A session prepared while the phone rings (``calls.media.registry``) waits for its media
stream in this process. Stream URLs name the process that prepared it
(``voiceplatform.nodes``), but the stream may still be taken by another process (the
named node was unreachable and the proxy fell back, or an older URL without a node was
used), and the caller may hang up before answering. Either way the session here holds
an idle, billed provider connection, and once its ``stream_wait_s`` ran out it used to
hang the carrier leg up, ending a call that another process was serving.

``watch_prepared_sessions`` runs on the server's loop while this process has prepared
sessions waiting: every ``ORPHAN_CHECK_S`` it asks the database, in one query for all of
them, which of their calls ended or had their stream taken by a socket of another
process (a stream claim without this process's ``PROCESS_TAG``), and ends those sessions
with ``END_STREAM_ELSEWHERE``: no hang-up, no result, the provider connection closed.
"""

from __future__ import annotations

import asyncio
import logging

from django.db.models import Q

from calls.media.drain import PROCESS_TAG
from calls.media.registry import prepared_sessions
from calls.media.result import END_STREAM_ELSEWHERE
from calls.models import FINAL, Call
from calls.services.base import in_db_thread

logger = logging.getLogger(__name__)

ORPHAN_CHECK_S = 2.0
_watcher: asyncio.Task[None] | None = None


def orphaned_calls(call_public_ids: list[str]) -> set[str]:
    """Of these calls, the ones whose prepared session here will never be used."""
    taken_elsewhere = Q(stream_connected_at__isnull=False) & ~Q(stream_claim__startswith=PROCESS_TAG)
    rows = (Call.objects.filter(public_id__in=call_public_ids)
            .filter(Q(status__in=FINAL) | taken_elsewhere).values_list("public_id", flat=True))
    return {str(public_id) for public_id in rows}


def ensure_watching() -> None:
    """Start the watcher on the running loop unless it runs already."""
    global _watcher
    if _watcher is None or _watcher.done():
        _watcher = asyncio.ensure_future(watch_prepared_sessions())


async def watch_prepared_sessions(interval_s: float = ORPHAN_CHECK_S) -> None:
    """Until no prepared session waits here (``ensure_watching`` starts it again)."""
    while prepared_sessions.waiting():
        await asyncio.sleep(interval_s)
        waiting = {session.call_public_id: session for session in prepared_sessions.waiting()}
        if not waiting:
            return
        try:
            orphaned = await in_db_thread(orphaned_calls, list(waiting))
        except Exception as exc:  # noqa: BLE001 - try again next round; the stream wait still bounds it
            logger.warning("prepared session check failed", extra={"error": repr(exc)})
            continue
        for call_id in orphaned:
            session = waiting[call_id]
            if not session.streaming and not session.ending:
                logger.info("prepared session closed: its stream went elsewhere or its call ended",
                            extra={"call": call_id})
                session.request_end(END_STREAM_ELSEWHERE)
