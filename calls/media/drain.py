"""Graceful drain: what stopping one web process (a deploy, a restart) does to its calls.

Contract:

- ``live_sessions`` knows every ``CallSession`` this process holds: the ones prepared
  while the phone rings (``calls.media.registry``) and the ones joined to a media socket
  (``calls.consumers``). A session leaves it once it has ended and handed over its result.
- ``begin_drain()`` turns the process to draining for good; ``draining()`` then answers
  True. The Django side reads it: the readiness probe answers 503, new-call webhooks are
  answered 503 (the proxy retries them on another process), no session is prepared here
  any more and no stream URL names this process (``voiceplatform.nodes``).
- ``LiveSessions.drain(limit_s)`` lets the live calls end on their own for up to
  ``limit_s`` seconds, then ends the rest cleanly, each in parallel: the agent says
  ``GOODBYE`` (bounded by ``goodbye_s``), then the session ends with
  ``END_SERVER_SHUTDOWN``, which hangs the carrier leg up and stores the transcript,
  recording and reason like any other ending. It returns what happened (``DrainReport``).

Why: an ASGI server's own SIGTERM closes every WebSocket at once (uvicorn sends 1012),
which cut each live call off mid-sentence and left its carrier leg to the carrier.
``voiceplatform.serve`` runs uvicorn with this drain in front of its shutdown.

``PROCESS_TAG`` prefixes the stream claims this process takes (``calls.consumers``), so
the watcher of prepared sessions (``calls.services.orphans``) can tell a stream taken by
another process from one about to be taken here.

Nothing here runs per audio frame, and nothing imports Django.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agents.bridges.base import ProviderError
from calls.media.result import END_SERVER_SHUTDOWN

if TYPE_CHECKING:
    from calls.media.session import CallSession

logger = logging.getLogger("calls.media")

PROCESS_TAG = secrets.token_hex(4)
GOODBYE = "I'm sorry, I have to end our call now. Please call again if you need anything more. Goodbye."

# The goodbye (its response and its playback) may take this long; then the call ends anyway.
GOODBYE_WAIT_S = 8.0

_draining = False


def draining() -> bool:
    """Whether this process has been told to stop (it takes no new calls)."""
    return _draining


def begin_drain() -> None:
    """Stop taking new calls in this process (one way: a draining process only exits)."""
    global _draining
    _draining = True


@dataclass(frozen=True)
class DrainReport:
    """What a drain did: calls that ended on their own meanwhile, calls it ended at the
    limit (goodbye, hang-up, reason stored), and how long it took."""

    ended_on_their_own: int
    ended_at_limit: int
    seconds: float


class LiveSessions:
    """The call sessions of this process (see the module docstring)."""

    def __init__(self) -> None:
        self._sessions: set[CallSession] = set()
        self._waiters: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._ended_by_drain: set[CallSession] = set()
        self._hurry = False
        self.ended_while_draining = 0

    def track(self, session: CallSession) -> None:
        """Count ``session`` until it has ended (idempotent)."""
        if session in self._sessions:
            return
        self._sessions.add(session)
        waiter = asyncio.ensure_future(self._forget(session))
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)

    async def _forget(self, session: CallSession) -> None:
        try:
            await session.wait()
        finally:
            self._sessions.discard(session)
            if _draining and session not in self._ended_by_drain:
                self.ended_while_draining += 1
            self._ended_by_drain.discard(session)
            self._changed.set()

    def __len__(self) -> int:
        return len(self._sessions)

    def hurry(self) -> None:
        """Stop waiting for calls to end on their own (a second signal)."""
        self._hurry = True
        self._changed.set()

    def call_ids(self) -> list[str]:
        return sorted(session.call_public_id for session in self._sessions)

    async def drain(self, limit_s: float, *, goodbye: str = GOODBYE, goodbye_s: float = GOODBYE_WAIT_S) -> DrainReport:
        """Wait up to ``limit_s`` for the live calls to end, then end the rest cleanly."""
        begin_drain()
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        logger.info("drain started", extra={"calls": len(self._sessions), "limit_s": limit_s})
        while self._sessions and not self._hurry and loop.time() < deadline:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - loop.time()))
            except (TimeoutError, asyncio.TimeoutError):
                break
        remaining = list(self._sessions)
        self._ended_by_drain.update(remaining)
        if remaining:
            logger.info("drain limit reached: ending the remaining calls", extra={"calls": len(remaining)})
            await asyncio.gather(*(end_with_goodbye(s, goodbye, goodbye_s) for s in remaining),
                                 return_exceptions=True)
        report = DrainReport(self.ended_while_draining, len(remaining), round(time.monotonic() - started, 3))
        logger.info("drain finished", extra={"ended_on_their_own": report.ended_on_their_own,
                                             "ended_at_limit": report.ended_at_limit, "seconds": report.seconds})
        return report


async def end_with_goodbye(session: CallSession, goodbye: str, wait_s: float) -> None:
    """Have the agent say ``goodbye`` (if a caller is listening), then end the call with
    ``END_SERVER_SHUTDOWN`` and wait until its result is stored. Each wait is bounded."""
    bridge = session.bridge
    if not session.ending and session.streaming and bridge is not None and bridge.connected:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        try:
            await bridge.create_response(goodbye)
            if await session.wait_for_next_response(wait_s):
                await session.wait_for_playback(max(0.0, deadline - loop.time()))
        except ProviderError as exc:
            logger.info("drain goodbye failed", extra={"call": session.call_public_id, "error": repr(exc)})
    session.request_end(END_SERVER_SHUTDOWN)
    await session.wait()


live_sessions = LiveSessions()
