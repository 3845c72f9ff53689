"""Sessions prepared before their media stream arrives (per process).

The webhook that answers a call (inbound) or the service that places one
(outbound) runs in the same `web` process that will most likely accept the
media socket, so it can open the provider session while the phone rings:
`prepare_session(...)` builds and prepares a `CallSession`, and the consumer
`take`s it when the stream connects. Stream URLs name the process that prepared
the session (`voiceplatform.nodes`), so the socket normally lands here. If it lands
on another process that one prepares its own at connect time, and the unused session
here is closed within seconds by `calls.services.orphans` (also when the call ends
while ringing), or at the latest after `SessionContext.stream_wait_s`:
`stream_elsewhere` (no hang-up, no result) when `SessionContext.stream_elsewhere`
says another process's socket took the call's stream, else `stream_timeout`.
Every prepared session is counted in `calls.media.drain.live_sessions` until it ends.
"""

from __future__ import annotations

from typing import Any

from calls.media.drain import live_sessions
from calls.media.session import CallSession


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], CallSession] = {}

    def prepare(self, call_public_id: str, transport: str, **session_kwargs: Any) -> CallSession:
        key = (transport, call_public_id)
        existing = self._sessions.get(key)
        if existing is not None and not existing.ending:
            return existing
        session = CallSession(call_public_id, transport, **session_kwargs)
        self._sessions[key] = session
        session.prepare()
        live_sessions.track(session)

        # forget it once it ends, whether or not a stream ever took it
        async def forget() -> None:
            try:
                await session.wait()
            finally:
                if self._sessions.get(key) is session:
                    del self._sessions[key]

        session._spawn(forget(), "registry")
        return session

    def take(self, call_public_id: str, transport: str) -> CallSession | None:
        session = self._sessions.pop((transport, call_public_id), None)
        if session is None or session.ending:
            return None
        return session

    def waiting(self) -> list[CallSession]:
        """The prepared sessions no socket of this process has taken yet."""
        return [session for session in self._sessions.values() if not session.ending]

    def __len__(self) -> int:
        return len(self._sessions)


prepared_sessions = SessionRegistry()
